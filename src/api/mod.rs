//! The API layer: finds the RPC for a request, authenticates the caller, runs the RPC and
//! encodes its answer. The behaviour lives in `phone`; encodings differ only in `rest` (JSON).

mod grpc;
pub mod phone;
pub mod proto;
#[cfg(test)]
mod proptests;
mod rest;

use crate::auth::{self, Issuer, Principal};
use crate::config::Config;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::platform::{Clock, Http, Random};
use crate::record::{UserRecord, record_key};
use crate::sms::Sms;
use crate::store::{KeyValue, Updater};
use crate::time::Timestamp;

/// Why a key-value store could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

/// Opens a key-value store by label.
pub type StoreOpener = dyn Fn(&str) -> Result<Box<dyn KeyValue>, OpenError>;

/// Everything the API needs from its host.
pub struct Services<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub open_store: &'a StoreOpener,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
    /// Outgoing HTTP, to the identity provider.
    pub http: &'a dyn Http,
}

/// An authenticated request: configuration, caller, and the caller's store.
pub struct Caller<'a> {
    pub services: &'a Services<'a>,
    pub config: Config,
    pub principal: Principal,
    pub record_key: String,
    kv: Box<dyn KeyValue>,
}

impl<'a> Caller<'a> {
    pub fn updater(&self) -> Updater<'_> {
        Updater {
            kv: self.kv.as_ref(),
            clock: self.services.clock,
            random: self.services.random,
        }
    }

    pub fn new_record(&self, now: Timestamp) -> UserRecord {
        UserRecord::new(&self.principal.user_id, &self.principal.resource_owner, now)
    }
}

/// The answer to send now, and what to do once it is sent.
pub struct Reply<'a> {
    pub response: Response,
    pub followup: Option<Followup<'a>>,
}

/// After-response work: deliver a code by SMS and record the outcome.
pub struct Followup<'a> {
    job: phone::SmsJob,
    caller: Caller<'a>,
}

impl Followup<'_> {
    pub fn run(self, sms: &dyn Sms) {
        self.job.deliver(sms, &self.caller.updater());
    }
}

/// The phone RPCs of zitadel.auth.v1.AuthService this service implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    SetMyPhone,
    GetMyPhone,
    VerifyMyPhone,
    ResendMyPhoneVerification,
    RemoveMyPhone,
}

/// An RPC's request message, decoded from whichever encoding carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// SetMyPhoneRequest.phone
    Phone(String),
    /// VerifyMyPhoneRequest.code
    Code(String),
    /// Requests without fields.
    Empty,
}

/// An RPC's response message before encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Details(phone::Details),
    Phone(phone::Details, Option<phone::PhoneView>),
}

/// Runs `rpc` for an authenticated caller: the one code path all encodings share.
pub fn call<'a>(
    rpc: Rpc,
    input: Input,
    caller: Caller<'a>,
) -> Result<(Output, Option<Followup<'a>>), Error> {
    let text = |input: Input| match input {
        Input::Phone(text) | Input::Code(text) => text,
        Input::Empty => String::new(),
    };
    let (output, job) = match rpc {
        Rpc::SetMyPhone => {
            let (details, job) = phone::set_my_phone(&caller, &text(input))?;
            (Output::Details(details), Some(job))
        }
        Rpc::GetMyPhone => {
            let (details, view) = phone::get_my_phone(&caller)?;
            (Output::Phone(details, view), None)
        }
        Rpc::VerifyMyPhone => (
            Output::Details(phone::verify_my_phone(&caller, &text(input))?),
            None,
        ),
        Rpc::ResendMyPhoneVerification => {
            let (details, job) = phone::resend_my_phone_verification(&caller)?;
            (Output::Details(details), Some(job))
        }
        Rpc::RemoveMyPhone => (Output::Details(phone::remove_my_phone(&caller)?), None),
    };
    Ok((output, job.map(|job| Followup { job, caller })))
}

/// Handles one HTTP request.
/// The encoding (JSON, gRPC or gRPC-Web) follows the request's content type.
pub fn handle<'a>(request: &Request, services: &'a Services<'a>) -> Reply<'a> {
    match request.media_type().as_deref().and_then(grpc::flavor) {
        Some(flavor) => grpc::handle(request, services, flavor),
        None => rest::handle(request, services),
    }
}

/// Reads configuration, opens the store (which also caches what authentication learns from the
/// issuer) and verifies the token.
fn authorize<'a>(
    services: &'a Services<'a>,
    authorization: Option<&str>,
) -> Result<Caller<'a>, Error> {
    let config = Config::from_lookup(services.env)?;
    // Without any header there is nothing to look up: answer before touching the store.
    if authorization.is_none() {
        return Err(Error::AuthHeaderMissing);
    }
    let kv = (services.open_store)(&config.kv_store).map_err(|e| match e {
        OpenError::NoSuchStore => Error::Config {
            variable: "KV_STORE",
            problem: format!(
                "names store {:?}, which the host does not provide",
                config.kv_store
            ),
        },
        OpenError::AccessDenied => Error::Config {
            variable: "KV_STORE",
            problem: format!(
                "names store {:?}, which this component may not use",
                config.kv_store
            ),
        },
        OpenError::Other(why) => Error::StoreUnavailable(why),
    })?;
    let issuer = Issuer {
        config: &config,
        kv: kv.as_ref(),
        http: services.http,
        clock: services.clock,
        random: services.random,
    };
    let principal = auth::authenticate(authorization, &issuer)?;
    let record_key = record_key(&principal.resource_owner, &principal.user_id);
    Ok(Caller {
        services,
        config,
        principal,
        record_key,
        kv,
    })
}

/// One log line per server-side problem; client errors are not logged.
fn log(error: &Error) {
    if let Some(detail) = error.log_detail() {
        eprintln!("set-my-phone: {detail}");
    }
}

//! The API layer: finds the RPC for a request (`mod.rs`), authenticates the caller
//! (`authorize.rs`), runs the RPC's rules (`crate::domain`) and encodes the answer as JSON
//! (`rest.rs`), gRPC or gRPC-Web in binary or text mode (`grpc.rs`, messages in `proto.rs`).
//! Which encoding a request uses is the wire crate's rule (`Protocol::of_content_type`).

mod authorize;
mod grpc;
#[cfg(test)]
mod proptests;
pub(crate) mod proto;
mod rest;

use crate::domain::{self, Caller, ChangeQuery, ChangeView, Details, Followup, PhoneView};
use crate::error::Error;
use crate::http::{Request, Response};
use crate::platform::Services;
use authorize::authorize;

/// The answer to send now, and what to do once it is sent.
pub struct Reply<'a> {
    pub response: Response,
    pub followup: Option<Followup<'a>>,
}

use set_my_phone_wire::Protocol;
/// The RPCs this service implements, named and routed by the wire crate (shared with the hosts).
pub use set_my_phone_wire::Rpc;

/// An RPC's request message, decoded from whichever encoding carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// SetMyPhoneRequest.phone
    Phone(String),
    /// VerifyMyPhoneRequest.code
    Code(String),
    /// ListMyUserChangesRequest.query
    Changes(ChangeQuery),
    /// Requests without fields.
    Empty,
}

/// An RPC's response message before encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Details(Details),
    Phone(Details, Option<PhoneView>),
    /// ListMyUserChangesResponse.result
    Changes(Vec<ChangeView>),
    /// HealthzResponse
    Empty,
}

/// Runs `rpc` for an authenticated caller: the one code path all encodings share.
pub fn call<'a>(
    rpc: Rpc,
    input: Input,
    caller: Caller<'a>,
) -> Result<(Output, Option<Followup<'a>>), Error> {
    let text = |input: Input| match input {
        Input::Phone(text) | Input::Code(text) => text,
        Input::Changes(_) | Input::Empty => String::new(),
    };
    let (output, job) = match rpc {
        Rpc::SetMyPhone => {
            let (details, job) = domain::set_my_phone(&caller, &text(input))?;
            (Output::Details(details), Some(job))
        }
        Rpc::GetMyPhone => {
            let (details, view) = domain::get_my_phone(&caller)?;
            (Output::Phone(details, view), None)
        }
        Rpc::VerifyMyPhone => (
            Output::Details(domain::verify_my_phone(&caller, &text(input))?),
            None,
        ),
        Rpc::ResendMyPhoneVerification => {
            let (details, job) = domain::resend_my_phone_verification(&caller)?;
            (Output::Details(details), Some(job))
        }
        Rpc::RemoveMyPhone => (Output::Details(domain::remove_my_phone(&caller)?), None),
        Rpc::ListMyUserChanges => {
            let query = match input {
                Input::Changes(query) => query,
                _ => ChangeQuery::default(),
            };
            let changes = domain::list_my_user_changes(&caller, query)?;
            (Output::Changes(changes), None)
        }
        Rpc::Healthz => (Output::Empty, None),
    };
    Ok((output, job.map(|job| Followup { job, caller })))
}

/// Handles one HTTP request.
/// The encoding (JSON, gRPC, gRPC-Web binary or text) follows the request's content type. The
/// answer carries the request's id in `x-request-id` (the client's own when it is sane), and
/// the request is logged as one line (`crate::log`).
pub fn handle<'a>(request: &Request, services: &'a Services<'a>) -> Reply<'a> {
    let protocol = Protocol::of_content_type(request.header("content-type"));
    let id = crate::log::request_id_for(request.header("x-request-id"), services.random);
    let rpc = if protocol.is_grpc() {
        Rpc::from_grpc_path(&request.path)
    } else {
        match Rpc::from_rest(&request.method, &request.path) {
            set_my_phone_wire::RestRoute::Rpc(rpc) => Some(rpc),
            _ => None,
        }
    };
    let preflight = crate::cors::is_preflight(request);
    let rpc = if preflight {
        "preflight"
    } else {
        rpc.map_or("unknown", Rpc::name)
    };
    let logged = crate::log::enter_request(id.clone(), rpc.to_owned(), protocol.label());
    let mut reply = match crate::cors::Origins::from_settings(services.settings) {
        // A preflight is answered before routing: no token, no store, no counters.
        Ok(origins) if preflight => Reply {
            response: crate::cors::preflight(request, &origins),
            followup: None,
        },
        Ok(origins) => {
            let mut reply = if protocol.is_grpc() {
                grpc::handle(request, services, protocol)
            } else {
                rest::handle(request, services)
            };
            crate::cors::decorate(&mut reply.response, request, &origins);
            reply
        }
        // Fails closed: an unreadable or malformed CORS_ALLOWED_ORIGINS answers every request
        // with the config error (without CORS headers, so browsers see a network error).
        Err(error) => {
            log(&error);
            let response = if protocol.is_grpc() {
                grpc::error_response(protocol, &error)
            } else {
                rest::error_response(&error)
            };
            Reply {
                response,
                followup: None,
            }
        }
    };
    reply.response.headers.push(("x-request-id".into(), id));
    logged.finish(reply.response.status);
    reply
}

/// Notes an error answer for the request's log line, and logs the detail the client is not told
/// (scrubbed of anything that could be a number or a secret): a server-side problem as an error,
/// why a token was refused as a warning (the caller's fault, but operators need the reason).
fn log(error: &Error) {
    let status = error.status();
    crate::log::failed(status.code as i32, status.http_status);
    if let Some(detail) = error.log_detail() {
        let level = if status.http_status >= 500 {
            crate::log::Level::Error
        } else {
            crate::log::Level::Warn
        };
        crate::log::line(
            level,
            "request failed",
            &[("error", crate::log::scrub(&detail, &[]).into())],
        );
    }
}

/// Names the abuse guard that refused, in the answer's `set-my-phone-refusal` header, for the
/// host's metrics (`set_my_phone_wire::refusal`).
fn name_refusal(response: &mut Response, error: &Error) {
    if let Some(reason) = error.refusal_reason() {
        response
            .headers
            .push((set_my_phone_wire::refusal::HEADER.into(), reason.into()));
    }
}

/// Upstream refuses limits over its configured maximum (1000 by default); so do we.
const MAX_CHANGES_LIMIT: u64 = 1000;

/// ListMyUserChangesRequest.query from its decoded fields, with the limit checked.
fn change_query(sequence: u64, limit: u64, asc: bool) -> Result<ChangeQuery, Error> {
    let limit = u32::try_from(limit)
        .ok()
        .filter(|limit| u64::from(*limit) <= MAX_CHANGES_LIMIT)
        .ok_or_else(|| {
            Error::MalformedBody(format!(
                "invalid ChangeQuery.Limit: value must be at most {MAX_CHANGES_LIMIT} (0 for the default)"
            ))
        })?;
    Ok(ChangeQuery {
        sequence,
        limit,
        asc,
    })
}

//! The core's host traits implemented over WIT imports: wasi:keyvalue (draft2), our sms
//! interface, wasi:clocks, wasi:random, wasi:cli/environment and wasi:config.

#[cfg(not(feature = "sms-inside"))]
use super::bindings::set_my_phone::sms::sender;
#[cfg(not(feature = "standalone"))]
use super::bindings::wasi::config::store as config_store;
#[cfg(not(feature = "file-store-inside"))]
use super::bindings::wasi::keyvalue::{atomics, store};
#[cfg(not(feature = "file-store-inside"))]
use crate::platform::OpenError;
use crate::platform::SettingsUnavailable;
use crate::platform::{Answer, Clock, Failure, Http, Random, Request};
use crate::sms::{Message, SendError, Sms};
#[cfg(not(feature = "file-store-inside"))]
use crate::store::{Cas, KeyValue, StoreError, SwapError};
use crate::time::Timestamp;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use wasip2::clocks::{monotonic_clock, wall_clock};

/// The settings as the host passes them: the environment, read once per instance, and
/// `wasi:config/store` (Spin variables), read once per request; combined by the wire crate's
/// precedence.
pub struct HostSettings {
    maps: Rc<SettingsMaps>,
    generation: u64,
}

/// The settings by name, as looked up.
struct SettingsMaps {
    env: Rc<HashMap<String, String>>,
    config: Result<HashMap<String, String>, SettingsUnavailable>,
}

/// What the config store passed: its pairs, or its error.
type ConfigPairs = Result<Vec<(String, String)>, SettingsUnavailable>;

thread_local! {
    /// The environment, read at the instance's first request. `get-environment` returns the
    /// same values for an instance's whole life (WASI calls it "morally a value import"), and
    /// reading it again cost every request a copy of every pair. Never read while pre-initialising
    /// (`wizer-initialize` reads no setting), so a snapshot holds no build machine's environment.
    static ENVIRONMENT: OnceCell<Rc<HashMap<String, String>>> = const { OnceCell::new() };
    /// The last request's config pairs, their maps and their generation: a request whose pairs
    /// are the same gets the same generation and maps, so that nothing is parsed or hashed again.
    static LAST: RefCell<Option<(ConfigPairs, Rc<SettingsMaps>, u64)>> = const { RefCell::new(None) };
}

impl HostSettings {
    pub fn read() -> Self {
        let config = config_pairs();
        LAST.with_borrow_mut(|last| {
            if let Some((seen, maps, generation)) = last.as_ref()
                && *seen == config
            {
                return HostSettings {
                    maps: Rc::clone(maps),
                    generation: *generation,
                };
            }
            let generation = last.as_ref().map_or(0, |(_, _, seen)| seen.wrapping_add(1));
            let env = ENVIRONMENT.with(|env| {
                Rc::clone(env.get_or_init(|| {
                    Rc::new(
                        wasip2::cli::environment::get_environment()
                            .into_iter()
                            .collect(),
                    )
                }))
            });
            let maps = Rc::new(SettingsMaps {
                env,
                config: config
                    .as_ref()
                    .map(|pairs| pairs.iter().cloned().collect())
                    .map_err(Clone::clone),
            });
            *last = Some((config, Rc::clone(&maps), generation));
            HostSettings { maps, generation }
        })
    }

    /// The same for two requests of this instance only if the host passed both the same
    /// settings (`Services::settings_generation`); consecutive requests with the same settings
    /// always share it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A setting by its environment name; a failed config store fails every lookup, so that
    /// no request runs on half its settings.
    pub fn get(&self, name: &str) -> Result<Option<String>, SettingsUnavailable> {
        let config = self.maps.config.as_ref().map_err(Clone::clone)?;
        Ok(set_my_phone_wire::settings::resolve(
            name,
            |name| self.maps.env.get(name).cloned(),
            |key| config.get(key).cloned(),
        ))
    }
}

/// What the host's config store holds.
#[cfg(not(feature = "standalone"))]
fn config_pairs() -> ConfigPairs {
    config_store::get_all().map_err(|error| {
        SettingsUnavailable(match error {
            config_store::Error::Upstream(why) => format!("wasi:config upstream: {why}"),
            config_store::Error::Io(why) => format!("wasi:config io: {why}"),
        })
    })
}

/// Built without wasi:config (`standalone`): every setting comes from the environment.
#[cfg(feature = "standalone")]
fn config_pairs() -> ConfigPairs {
    Ok(Vec::new())
}

#[cfg(not(feature = "file-store-inside"))]
fn store_error(error: store::Error) -> StoreError {
    StoreError(match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    })
}

#[cfg(not(feature = "file-store-inside"))]
pub fn open_store(label: &str) -> Result<Box<dyn KeyValue>, OpenError> {
    match store::open(label) {
        Ok(bucket) => Ok(Box::new(WasiBucket(bucket))),
        Err(store::Error::NoSuchStore) => Err(OpenError::NoSuchStore),
        Err(store::Error::AccessDenied) => Err(OpenError::AccessDenied),
        Err(store::Error::Other(message)) => Err(OpenError::Other(message)),
    }
}

#[cfg(not(feature = "file-store-inside"))]
struct WasiBucket(store::Bucket);

#[cfg(not(feature = "file-store-inside"))]
struct WasiCas {
    cas: atomics::Cas,
    current: Option<Vec<u8>>,
}

#[cfg(not(feature = "file-store-inside"))]
impl KeyValue for WasiBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(store_error)
    }

    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
        let cas = atomics::Cas::new(&self.0, key).map_err(store_error)?;
        let current = cas.current().map_err(store_error)?;
        Ok(Box::new(WasiCas { cas, current }))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.0, key, delta).map_err(store_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(store_error)
    }
}

#[cfg(not(feature = "file-store-inside"))]
impl Cas for WasiCas {
    fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError> {
        match atomics::swap(self.cas, &value) {
            Ok(()) => Ok(()),
            // The fresh handle is dropped: the update loop re-reads through a new one.
            Err(atomics::CasError::CasFailed(_)) => Err(SwapError::Conflict),
            Err(atomics::CasError::StoreError(e)) => Err(SwapError::Store(store_error(e))),
        }
    }
}

pub struct WasiClock;

impl Clock for WasiClock {
    fn now(&self) -> Timestamp {
        let now = wall_clock::now();
        Timestamp::new(
            i64::try_from(now.seconds).unwrap_or(i64::MAX),
            now.nanoseconds,
        )
    }

    fn sleep(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::subscribe_duration(nanos).block();
    }
}

pub struct WasiRandom;

impl Random for WasiRandom {
    fn fill(&self, buf: &mut [u8]) {
        let bytes = wasip2::random::random::get_random_bytes(buf.len() as u64);
        // The host returns exactly the requested length; zip guards against a short answer.
        for (slot, byte) in buf.iter_mut().zip(bytes) {
            *slot = byte;
        }
    }
}

/// The SMS provider behind the `set-my-phone:sms/sender` import.
#[cfg(not(feature = "sms-inside"))]
pub struct WasiSms;

#[cfg(not(feature = "sms-inside"))]
impl Sms for WasiSms {
    fn makes_codes(&self) -> bool {
        sender::makes_codes()
    }

    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError> {
        sender::check(recipient, code).map_err(from_wit)
    }

    fn send(&self, message: &Message) -> Result<String, SendError> {
        let message = sender::Message {
            recipient: message.recipient.clone(),
            text: message.text.clone(),
            code: message.code.clone(),
            user_id: message.user_id.clone(),
            org_id: message.org_id.clone(),
            language: message.language.clone(),
        };
        sender::send(&message).map_err(from_wit)
    }
}

#[cfg(not(feature = "sms-inside"))]
fn from_wit(error: sender::SendError) -> SendError {
    match error {
        sender::SendError::Retryable(why) => SendError::Retryable(why),
        sender::SendError::Permanent(why) => SendError::Permanent(why),
    }
}

/// The SMS provider compiled in (`sms-inside`): adapters/sms-provider's sending, with the
/// request's settings (the provider component reads the same ones: the environment over
/// wasi:config, by the wire crate's precedence).
#[cfg(feature = "sms-inside")]
pub struct ProviderInside<'a>(pub &'a HostSettings);

#[cfg(feature = "sms-inside")]
impl ProviderInside<'_> {
    /// The settings as the provider reads them; a config store that failed is worth a retry
    /// (as the provider component answers when it cannot read its settings).
    fn settings(&self) -> Result<impl Fn(&str) -> Option<String> + '_, SendError> {
        self.0
            .get("SMS_PROVIDER")
            .map_err(|SettingsUnavailable(why)| {
                SendError::Retryable(format!(
                    "the host's settings store (wasi:config) failed: {why}"
                ))
            })?;
        // The store answered above, and its answer is kept for the request: no lookup fails.
        Ok(|name: &str| self.0.get(name).ok().flatten())
    }
}

#[cfg(feature = "sms-inside")]
impl Sms for ProviderInside<'_> {
    fn makes_codes(&self) -> bool {
        self.settings()
            .is_ok_and(|lookup| set_my_phone_sms_provider::provider::makes_codes(&lookup))
    }

    fn check(&self, recipient: &str, code: &str) -> Result<bool, SendError> {
        set_my_phone_sms_provider::wasi::check(&self.settings()?, recipient, code)
    }

    fn send(&self, message: &Message) -> Result<String, SendError> {
        set_my_phone_sms_provider::wasi::send(&self.settings()?, message)
    }
}

pub struct WasiHttp;

impl Http for WasiHttp {
    fn exchange(&self, request: &Request) -> Result<Answer, Failure> {
        set_my_phone_outgoing_http::exchange(request)
    }
}

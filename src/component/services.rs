//! The core's host traits implemented over WIT imports: wasi:clocks, wasi:random,
//! wasi:http's outgoing requests, and the settings from wasi:cli/environment and wasi:config.
//! The store and the SMS sender are modules of their own, one per way the core is built.

#[cfg(not(feature = "standalone"))]
use super::bindings::wasi::config::store as config_store;
use crate::platform::SettingsUnavailable;
use crate::platform::{Answer, Clock, Failure, Http, Random, Request};
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

pub struct WasiHttp;

impl Http for WasiHttp {
    fn exchange(&self, request: &Request) -> Result<Answer, Failure> {
        set_my_phone_outgoing_http::exchange(request)
    }
}

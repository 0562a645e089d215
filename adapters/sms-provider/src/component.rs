//! The wasm32 side: exports `set-my-phone:sms/sender` and makes the provider's request with
//! wasi:http/outgoing-handler (`set-my-phone-outgoing-http`). Nothing here decides behaviour.

use crate::provider::{self, Answer, Message, Outgoing, SendError};
use crate::retry::{self, Platform};
use crate::twilio_verify;
use set_my_phone_outgoing_http::{Failure, exchange};
use std::time::Duration;
use wasip2::clocks::{monotonic_clock, wall_clock};

#[expect(
    unsafe_code,
    reason = "wit-bindgen's generated glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "set-my-phone:service/sms-provider",
        // One copy of each wasi type: the wasip2 crate's.
        with: {
            "wasi:http/types@0.2.4": wasip2::http::types,
            "wasi:http/outgoing-handler@0.2.4": wasip2::http::outgoing_handler,
            "wasi:io/error@0.2.4": wasip2::io::error,
            "wasi:io/poll@0.2.4": wasip2::io::poll,
            "wasi:io/streams@0.2.4": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.4": wasip2::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.4": wasip2::clocks::wall_clock,
            "wasi:cli/environment@0.2.4": wasip2::cli::environment,
            "wasi:config/store@0.2.0-draft-2024-09-27": generate,
            "set-my-phone:sms/sender@0.2.0": generate,
        },
    });

    use super::Component;
    export!(Component with_types_in self);
}

use bindings::exports::set_my_phone::sms::sender;
use bindings::wasi::config::store as config_store;

struct Component;

/// The provider's settings: the environment, else the host's config store (the wire crate's
/// precedence). A store that cannot be read may work on the next attempt: a retryable failure.
fn settings() -> Result<impl Fn(&str) -> Option<String>, SendError> {
    let env = wasip2::cli::environment::get_environment();
    let config = match config_store::get_all() {
        Ok(pairs) => pairs,
        Err(config_store::Error::Upstream(why) | config_store::Error::Io(why)) => {
            return Err(SendError::Retryable(format!(
                "the host's settings store (wasi:config) failed: {why}"
            )));
        }
    };
    let find = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Ok(move |name: &str| {
        set_my_phone_wire::settings::resolve(name, |n| find(&env, n), |key| find(&config, key))
    })
}

fn to_wit(error: SendError) -> sender::SendError {
    match error {
        SendError::Retryable(why) => sender::SendError::Retryable(why),
        SendError::Permanent(why) => sender::SendError::Permanent(why),
    }
}

impl sender::Guest for Component {
    fn makes_codes() -> bool {
        // Settings that cannot be read now: the send or check that follows reports it.
        settings().is_ok_and(|lookup| provider::makes_codes(&lookup))
    }

    fn send(message: sender::Message) -> Result<String, sender::SendError> {
        let lookup = settings().map_err(to_wit)?;
        let message = Message {
            recipient: message.recipient,
            text: message.text,
            code: message.code,
            user_id: message.user_id,
            org_id: message.org_id,
            language: message.language,
        };
        let now = wall_clock::now().seconds;
        let plan = provider::plan(&lookup, &message, now);
        retry::deliver(plan, &mut Wasi::start()).map_err(to_wit)
    }

    fn check(recipient: String, code: String) -> Result<bool, sender::SendError> {
        let lookup = settings().map_err(to_wit)?;
        let request = provider::check(&lookup, &recipient, &code).map_err(to_wit)?;
        retry::exchange(
            &request,
            &twilio_verify::interpret_check,
            retry::CHECK_BUDGET,
            &mut Wasi::start(),
        )
        .map_err(to_wit)
    }
}

/// Deliveries on wasi: wasi:http, the monotonic clock and its timers.
struct Wasi {
    started: monotonic_clock::Instant,
}

impl Wasi {
    fn start() -> Self {
        Wasi {
            started: monotonic_clock::now(),
        }
    }
}

impl Platform for Wasi {
    fn exchange(&mut self, request: &Outgoing) -> Result<Answer, Failure> {
        exchange(request)
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(monotonic_clock::now().saturating_sub(self.started))
    }

    fn sleep(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::subscribe_duration(nanos).block();
    }

    fn now(&self) -> u64 {
        wall_clock::now().seconds
    }
}

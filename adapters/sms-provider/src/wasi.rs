//! Deliveries over wasi: the provider's requests through wasi:http/outgoing-handler
//! (`set-my-phone-outgoing-http`), its waits on the monotonic clock. The component's export
//! (`component.rs`) and the core built with the provider inside both send through here, so the
//! two send alike; each passes the settings as it reads them.

use crate::provider::{self, Answer, Message, Outgoing, SendError};
use crate::retry::{self, Platform};
use crate::twilio_verify;
use set_my_phone_outgoing_http::{Failure, exchange};
use std::time::Duration;
use wasip2::clocks::{monotonic_clock, wall_clock};

/// Sends `message` by the provider `settings` choose; answers the provider's message id.
pub fn send(
    settings: &dyn Fn(&str) -> Option<String>,
    message: &Message,
) -> Result<String, SendError> {
    let now = wall_clock::now().seconds;
    let plan = provider::plan(settings, message, now);
    retry::deliver(plan, &mut Wasi::start())
}

/// Whether the provider approves `code` for `recipient` (providers that make their own codes).
pub fn check(
    settings: &dyn Fn(&str) -> Option<String>,
    recipient: &str,
    code: &str,
) -> Result<bool, SendError> {
    let request = provider::check(settings, recipient, code)?;
    retry::exchange(
        &request,
        &twilio_verify::interpret_check,
        retry::CHECK_BUDGET,
        &mut Wasi::start(),
    )
}

/// One delivery's clock and transport.
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

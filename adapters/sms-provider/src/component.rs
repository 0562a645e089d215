//! The wasm32 side's WIT glue: exports `set-my-phone:sms/sender`, with the settings from the
//! environment and the host's config store; the sending is `wasi.rs`'s. Nothing here decides
//! behaviour.

use crate::provider::{self, Message, SendError};
use crate::wasi;

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
        wasi::send(&lookup, &message).map_err(to_wit)
    }

    fn check(recipient: String, code: String) -> Result<bool, sender::SendError> {
        let lookup = settings().map_err(to_wit)?;
        wasi::check(&lookup, &recipient, &code).map_err(to_wit)
    }
}

//! The wire vocabulary of set-my-phone, shared by the core component (which answers requests)
//! and the hosts (which classify them for metrics and answer for a guest that failed):
//!
//! - [`Protocol`]: which encoding a request's content type asks for;
//! - [`Rpc`]: the RPCs, by gRPC method name and by REST route;
//! - [`Code`]: gRPC status codes, their names and the HTTP status grpc-gateway gives each;
//! - [`percent_encode_message`]: the `grpc-message` encoding;
//! - [`text`]: the base64 bodies of gRPC-Web text mode;
//! - [`settings`]: every setting the components read, and where (environment, `wasi:config`);
//! - [`sms`]: the SMS message and delivery error on both sides of `set-my-phone:sms/sender`;
//! - [`refusal`]: the header naming which abuse guard refused a code.
//!
//! docs/api.md describes the same rules for users.

mod code;
mod protocol;
pub mod refusal;
mod rpc;
pub mod settings;
pub mod sms;
pub mod text;

pub use code::Code;
pub use protocol::Protocol;
pub use rpc::{GRPC_SERVICE, RestRoute, Rpc};

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except `%` stays as it is, every
/// other byte of the UTF-8 text becomes `%XX`.
pub fn percent_encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(
            percent_encode_message("Phone not changed (COMMAND-wF94r)"),
            "Phone not changed (COMMAND-wF94r)"
        );
        assert_eq!(percent_encode_message("50% é\n"), "50%25 %C3%A9%0A");
    }
}

//! The one error type of the core and the one place that maps it to gRPC codes and HTTP statuses.

use std::fmt;

/// gRPC status codes and the HTTP status grpc-gateway gives each: the wire crate's, shared
/// with the hosts.
pub use set_my_phone_wire::Code;

/// Everything that can go wrong in a request, named by cause.
///
/// Variants with an upstream counterpart carry upstream's id and i18n text, so clients that
/// match on `ErrorDetail.id` keep working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    // --- transport ---
    /// No route for this path.
    NotFound,
    /// A known path with a method it does not serve; carries the allowed methods.
    MethodNotAllowed(&'static str),
    /// Body larger than the limit.
    BodyTooLarge {
        limit: usize,
    },
    /// Body that is not a valid request message (JSON syntax, wrong field types, bad frame).
    MalformedBody(String),
    /// A gRPC method (or HTTP method on a gRPC path) this service does not have.
    UnknownRpc(String),
    /// A compressed gRPC message; carries the declared `grpc-encoding`.
    CompressedMessage(String),

    // --- authentication ---
    AuthHeaderMissing,
    AuthHeaderInvalid,
    /// Any token that does not verify; the reason is logged, never sent.
    TokenInvalid(String),
    /// The token verified but lacks the claim naming the user's organisation.
    ResourceOwnerMissing(String),
    /// The issuer (discovery, keys or introspection) could not be asked and nothing usable is
    /// cached: the caller did nothing wrong, so this is not a 401.
    IssuerUnavailable(String),

    // --- phone ---
    PhoneLength,
    PhoneInvalid,
    PhoneNotChanged,
    /// No phone to act on; carries the RPC's upstream id (Resend and Remove differ).
    PhoneNotFound(&'static str),
    PhoneAlreadyVerified,
    /// The number's region or calling code is not on `PHONE_ALLOWED_REGIONS`.
    RegionNotAllowed,

    // --- codes ---
    CodeEmpty,
    CodeLength,
    CodeNotFound,
    /// Wrong, expired, or void after too many wrong attempts.
    CodeInvalid,
    /// A code was issued less than the cooldown ago; retry after the given seconds.
    ResendCooldown {
        retry_after: u64,
    },
    /// The hourly cap of codes is reached; retry after the given seconds.
    HourlyCap {
        retry_after: u64,
    },

    /// A limit across accounts on codes (`domain::sms_limits`) is reached for this request.
    SendLimit {
        limit: SendLimit,
        retry_after: u64,
    },
    /// The SMS-pumping guard (`domain::pumping`) paused codes into the number's range or
    /// country; `tripped` when this request is the one that found the low verified share.
    PumpingBlock {
        retry_after: u64,
        tripped: bool,
    },

    // --- server side ---
    /// A required setting is missing or malformed; names the variable, never its value.
    Config {
        variable: &'static str,
        problem: String,
    },
    /// The host's settings store (`wasi:config`) failed; holds why, never a value.
    SettingsUnavailable(String),
    /// The key-value store failed or is unreachable.
    StoreUnavailable(String),
    /// A stored record could not be read back.
    CorruptRecord(String),
    /// Compare-and-swap retries ran out under contention; nothing was changed.
    TooMuchContention,
    /// ZITADEL (write-through) could not be reached or failed; nothing was changed here.
    ZitadelUnavailable(String),
    /// ZITADEL refused the service user (401/403): it lacks `user.write`, or its credentials
    /// are wrong; holds ZITADEL's answer (status, error id), never a token.
    ZitadelDenied(String),
    /// ZITADEL refused the call otherwise (a 4xx); holds its answer for the log.
    ZitadelRefused(String),
    /// The SMS provider that makes codes (Twilio Verify) could not check one now (network,
    /// 5xx, 429); nothing was changed and no attempt was counted. Holds why, scrubbed.
    CodeCheckUnavailable(String),
    /// The SMS provider refused to check a code (bad credentials or settings: a lasting fault
    /// of this deployment); nothing was changed. Holds why, scrubbed.
    CodeCheckRefused(String),
}

/// The limits across accounts on codes sent, each counted in fixed windows in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendLimit {
    /// `PHONE_CODES_PER_NUMBER_PER_HOUR`
    NumberHour,
    /// `PHONE_CODES_PER_NUMBER_PER_DAY`
    NumberDay,
    /// `PHONE_CODES_PER_RANGE_PER_HOUR`
    RangeHour,
    /// `PHONE_SMS_PER_ORG_PER_HOUR`
    OrgHour,
    /// `PHONE_SMS_PER_HOUR`
    DeploymentHour,
}

impl SendLimit {
    /// The reason word in audit lines, the refusal header and the host's metric.
    pub fn reason(self) -> &'static str {
        match self {
            SendLimit::NumberHour => "number_hour",
            SendLimit::NumberDay => "number_day",
            SendLimit::RangeHour => "range_hour",
            SendLimit::OrgHour => "org_hour",
            SendLimit::DeploymentHour => "deployment_hour",
        }
    }
}

/// google.rpc.Status with a zitadel.v1.ErrorDetail, independent of the wire encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub http_status: u16,
    pub message: String,
    pub detail: Option<ErrorDetail>,
    /// Seconds after which a retry can succeed (rate limits).
    pub retry_after: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDetail {
    pub id: &'static str,
    pub message: String,
}

impl Error {
    /// A setting that is missing or malformed: `variable` and what is wrong with it.
    pub fn config(variable: &'static str, problem: impl Into<String>) -> Error {
        Error::Config {
            variable,
            problem: problem.into(),
        }
    }

    /// Upstream-style status: message `"<text> (<id>)"` plus an ErrorDetail, or a bare message.
    pub fn status(&self) -> Status {
        use Code::*;
        let (code, id, text): (Code, Option<&'static str>, String) = match self {
            Error::NotFound => (NotFound, None, "Not Found".into()),
            Error::MethodNotAllowed(_) => (Unimplemented, None, "Method Not Allowed".into()),
            Error::BodyTooLarge { limit } => (
                ResourceExhausted,
                None,
                format!("request body larger than {limit} bytes"),
            ),
            Error::MalformedBody(why) => (InvalidArgument, None, why.clone()),
            Error::UnknownRpc(what) => (Unimplemented, None, format!("unknown method {what}")),
            Error::CompressedMessage(encoding) => (
                Unimplemented,
                None,
                format!("compressed messages ({encoding}) are not supported: send them uncompressed"),
            ),
            Error::AuthHeaderMissing => (Unauthenticated, None, "auth header missing".into()),
            Error::AuthHeaderInvalid => (
                Unauthenticated,
                Some("AUTH-toLo1"),
                "invalid auth header".into(),
            ),
            Error::TokenInvalid(_) => (
                Unauthenticated,
                Some("AUTH-7fs1e"),
                "Errors.Token.Invalid".into(),
            ),
            Error::ResourceOwnerMissing(claim) => (
                Unauthenticated,
                Some("AUTH-7fs1e"),
                format!("Errors.Token.Invalid: the token has no {claim:?} claim"),
            ),
            Error::IssuerUnavailable(_) => (
                Unavailable,
                Some("SMP-AUTH1"),
                "the identity provider cannot be reached to check the token; try again later"
                    .into(),
            ),
            Error::PhoneLength => (
                InvalidArgument,
                None,
                "invalid SetMyPhoneRequest.Phone: value length must be between 1 and 50 runes, inclusive"
                    .into(),
            ),
            Error::PhoneInvalid => (InvalidArgument, Some("PHONE-so0wa"), "Phone is invalid".into()),
            Error::PhoneNotChanged => (
                FailedPrecondition,
                Some("COMMAND-wF94r"),
                "Phone not changed".into(),
            ),
            Error::PhoneNotFound(id) => (NotFound, Some(*id), "Phone not found".into()),
            Error::PhoneAlreadyVerified => (
                FailedPrecondition,
                Some("COMMAND-2M9sf"),
                "Phone already verified".into(),
            ),
            Error::RegionNotAllowed => (
                InvalidArgument,
                Some("SMP-PHONE1"),
                "Phone numbers from this region are not accepted".into(),
            ),
            Error::CodeEmpty => (InvalidArgument, Some("COMMAND-wMe9f"), "Code is empty".into()),
            Error::CodeLength => (
                InvalidArgument,
                None,
                "invalid VerifyMyPhoneRequest.Code: value length must be between 1 and 200 runes, inclusive"
                    .into(),
            ),
            Error::CodeNotFound => (NotFound, Some("COMMAND-Rsj8c"), "Code not found".into()),
            Error::CodeInvalid => (InvalidArgument, Some("COMMAND-sM0cs"), "Code is invalid".into()),
            Error::ResendCooldown { retry_after } => (
                ResourceExhausted,
                Some("SMP-RATE1"),
                format!("A code was sent moments ago; ask again in {retry_after} s"),
            ),
            Error::HourlyCap { retry_after } => (
                ResourceExhausted,
                Some("SMP-RATE2"),
                format!("Too many codes sent this hour; ask again in {retry_after} s"),
            ),
            Error::SendLimit { limit, retry_after } => {
                let (id, what) = match limit {
                    SendLimit::NumberHour => ("SMP-RATE3", "Too many codes sent to this number this hour"),
                    SendLimit::NumberDay => ("SMP-RATE3", "Too many codes sent to this number today"),
                    SendLimit::RangeHour => ("SMP-RATE4", "Too many codes sent to numbers like this one this hour"),
                    SendLimit::OrgHour => ("SMP-RATE5", "The organisation's SMS budget for this hour is spent"),
                    SendLimit::DeploymentHour => ("SMP-RATE6", "The service's SMS budget for this hour is spent"),
                };
                (
                    ResourceExhausted,
                    Some(id),
                    format!("{what}; ask again in {retry_after} s"),
                )
            }
            Error::PumpingBlock { retry_after, .. } => (
                ResourceExhausted,
                Some("SMP-PUMP1"),
                format!(
                    "Codes to numbers like this one are paused: too few of them were verified; ask again in {retry_after} s"
                ),
            ),
            Error::Config { variable, problem } => (
                Internal,
                Some("SMP-CONF1"),
                // Both spellings: the environment's and wasi:config's (a Spin variable).
                format!(
                    "configuration error: {variable} ({}) {problem}",
                    set_my_phone_wire::settings::config_key(variable)
                ),
            ),
            Error::SettingsUnavailable(_) => (
                Unavailable,
                Some("SMP-CONF2"),
                "the host's settings store cannot be read; try again later".into(),
            ),
            Error::StoreUnavailable(_) => (
                Unavailable,
                Some("SMP-STORE1"),
                "key-value store unavailable, try again later".into(),
            ),
            Error::CorruptRecord(_) => (
                Internal,
                Some("SMP-STORE2"),
                "stored user record is unreadable".into(),
            ),
            Error::TooMuchContention => (
                Aborted,
                Some("SMP-CAS01"),
                "too many concurrent changes to this user, nothing was changed; try again".into(),
            ),
            Error::ZitadelUnavailable(_) => (
                Unavailable,
                Some("SMP-ZITADEL1"),
                "ZITADEL cannot be reached to keep the phone in step; nothing was changed, try again later"
                    .into(),
            ),
            Error::ZitadelDenied(_) => (
                Internal,
                Some("SMP-ZITADEL2"),
                "ZITADEL refused the service user: it lacks the user.write permission (a role such as ORG_USER_MANAGER) or its credentials are wrong; nothing was changed"
                    .into(),
            ),
            Error::ZitadelRefused(_) => (
                Internal,
                Some("SMP-ZITADEL3"),
                "ZITADEL refused the change; nothing was changed".into(),
            ),
            Error::CodeCheckUnavailable(_) => (
                Unavailable,
                Some("SMP-SMS1"),
                "the SMS provider cannot check the code now; nothing was changed, try again later"
                    .into(),
            ),
            Error::CodeCheckRefused(_) => (
                Internal,
                Some("SMP-SMS2"),
                "the SMS provider refused to check the code (see the service's log); nothing was changed"
                    .into(),
            ),
        };
        let http_status = match self {
            Error::MethodNotAllowed(_) => 405,
            Error::BodyTooLarge { .. } => 413,
            _ => code.http_status(),
        };
        let (message, detail) = match id {
            Some(id) => (
                format!("{text} ({id})"),
                Some(ErrorDetail { id, message: text }),
            ),
            None => (text, None),
        };
        let retry_after = match self {
            Error::ResendCooldown { retry_after }
            | Error::HourlyCap { retry_after }
            | Error::SendLimit { retry_after, .. }
            | Error::PumpingBlock { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        Status {
            code,
            http_status,
            message,
            detail,
            retry_after,
        }
    }

    /// Which abuse guard refused a code, in a word: for the audit line, the
    /// `set-my-phone-refusal` answer header and the reference host's metric
    /// (`set_my_phone_wire::refusal::REASONS` lists them all).
    pub fn refusal_reason(&self) -> Option<&'static str> {
        Some(match self {
            Error::ResendCooldown { .. } => "cooldown",
            Error::HourlyCap { .. } => "hourly_cap",
            Error::RegionNotAllowed => "region_not_allowed",
            Error::SendLimit { limit, .. } => limit.reason(),
            Error::PumpingBlock { tripped: true, .. } => "pumping_tripped",
            Error::PumpingBlock { tripped: false, .. } => "pumping_block",
            _ => return None,
        })
    }

    /// Server-side detail worth a log line (never sent to clients).
    pub fn log_detail(&self) -> Option<String> {
        match self {
            Error::TokenInvalid(why) => Some(format!("token rejected: {why}")),
            Error::IssuerUnavailable(why) => Some(format!("identity provider: {why}")),
            Error::Config { variable, problem } => {
                Some(format!("configuration: {variable} {problem}"))
            }
            Error::SettingsUnavailable(why) => Some(format!("settings store: {why}")),
            Error::StoreUnavailable(why) => Some(format!("key-value store: {why}")),
            Error::CorruptRecord(why) => Some(format!("corrupt record: {why}")),
            Error::TooMuchContention => Some("compare-and-swap retries exhausted".into()),
            Error::ZitadelUnavailable(why) => Some(format!("ZITADEL unavailable: {why}")),
            Error::ZitadelDenied(why) => Some(format!("ZITADEL denied the service user: {why}")),
            Error::ZitadelRefused(why) => Some(format!("ZITADEL refused: {why}")),
            Error::CodeCheckUnavailable(why) | Error::CodeCheckRefused(why) => {
                Some(format!("SMS provider's code check: {why}"))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status().message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_carry_id_in_message_and_detail() {
        let status = Error::PhoneNotChanged.status();
        assert_eq!(status.code, Code::FailedPrecondition);
        assert_eq!(status.http_status, 400);
        assert_eq!(status.message, "Phone not changed (COMMAND-wF94r)");
        assert_eq!(
            status.detail,
            Some(ErrorDetail {
                id: "COMMAND-wF94r",
                message: "Phone not changed".into()
            })
        );
    }

    #[test]
    fn transport_errors_override_the_http_status() {
        assert_eq!(Error::MethodNotAllowed("GET").status().http_status, 405);
        assert_eq!(
            Error::MethodNotAllowed("GET").status().code,
            Code::Unimplemented
        );
        assert_eq!(Error::BodyTooLarge { limit: 1 }.status().http_status, 413);
        assert_eq!(
            Error::AuthHeaderMissing.status().message,
            "auth header missing"
        );
        assert_eq!(Error::AuthHeaderMissing.status().detail, None);
    }

    #[test]
    fn config_errors_name_the_variable_in_both_spellings_only() {
        let status = Error::Config {
            variable: "AUTH_ISSUER",
            problem: "is not set".into(),
        }
        .status();
        assert_eq!((status.http_status, status.code), (500, Code::Internal));
        assert!(
            status
                .message
                .contains("AUTH_ISSUER (auth_issuer) is not set"),
            "{}",
            status.message
        );
    }

    #[test]
    fn a_failing_settings_store_is_unavailable_and_says_no_more() {
        let error = Error::SettingsUnavailable("vault: token expired".into());
        let status = error.status();
        assert_eq!((status.http_status, status.code), (503, Code::Unavailable));
        assert!(!status.message.contains("vault"), "{}", status.message);
        assert_eq!(status.detail.map(|d| d.id), Some("SMP-CONF2"));
        assert_eq!(
            error.log_detail().as_deref(),
            Some("settings store: vault: token expired")
        );
    }
}

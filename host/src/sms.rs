//! SMS for the guest: the native [`SmsSender`] trait behind `set-my-phone:sms/sender`, a recording
//! fake for tests and a stderr logger for local runs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use wasmtime::component::HasData;

use crate::bindings::sender;

/// One verification message, already rendered by the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsMessage {
    /// Recipient in E.164 form, e.g. `+41710000000`.
    pub recipient: String,
    /// The full text to deliver.
    pub text: String,
    /// The verification code inside `text`.
    pub code: String,
    /// The user the code belongs to.
    pub user_id: String,
    /// The user's organisation (resource owner).
    pub org_id: String,
}

/// Why a message was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Trying again later may succeed.
    Retryable(String),
    /// Trying again will not help.
    Permanent(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(reason) => write!(f, "retryable: {reason}"),
            Self::Permanent(reason) => write!(f, "permanent: {reason}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Delivers SMS on behalf of the guest.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `message`; answers the provider's message id.
    async fn send(&self, message: SmsMessage) -> Result<String, SendError>;
}

/// How [`RecordingSms`] answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SmsReply {
    /// Success, with a message id `sms-<n>` (n counts from 1).
    #[default]
    Sent,
    /// `retryable(reason)`.
    Retryable(String),
    /// `permanent(reason)`.
    Permanent(String),
}

/// One call to [`RecordingSms::send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentSms {
    /// What the guest asked to send.
    pub message: SmsMessage,
    /// When the guest asked.
    pub at: SystemTime,
    /// What the guest was answered.
    pub outcome: Result<String, SendError>,
}

/// A fake provider that records every message; clones share the record and the settings.
///
/// A call is recorded when it answers, that is after the configured delay.
#[derive(Clone, Debug, Default)]
pub struct RecordingSms {
    inner: Arc<Mutex<Recording>>,
}

#[derive(Debug, Default)]
struct Recording {
    sent: Vec<SentSms>,
    reply: SmsReply,
    delay: Duration,
}

impl RecordingSms {
    /// A recorder that answers success without delay.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        // No code panics while holding the lock, and the record stays consistent if one did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers later calls with `reply`.
    pub fn set_reply(&self, reply: SmsReply) {
        self.lock().reply = reply;
    }

    /// Waits `delay` before answering later calls.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Every call so far, oldest first (failed ones included).
    pub fn messages(&self) -> Vec<SentSms> {
        self.lock().sent.clone()
    }

    /// The latest call.
    pub fn last(&self) -> Option<SentSms> {
        self.lock().sent.last().cloned()
    }

    /// Forgets the calls recorded so far.
    pub fn clear(&self) {
        self.lock().sent.clear();
    }
}

#[async_trait::async_trait]
impl SmsSender for RecordingSms {
    async fn send(&self, message: SmsMessage) -> Result<String, SendError> {
        let at = SystemTime::now();
        let delay = self.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut recording = self.lock();
        let outcome = match &recording.reply {
            SmsReply::Sent => Ok(format!("sms-{}", recording.sent.len() + 1)),
            SmsReply::Retryable(reason) => Err(SendError::Retryable(reason.clone())),
            SmsReply::Permanent(reason) => Err(SendError::Permanent(reason.clone())),
        };
        recording.sent.push(SentSms {
            message,
            at,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// A provider for local runs: prints each message, code included, to stderr and reports success.
#[derive(Debug, Default)]
pub struct LogSms {
    sent: AtomicU64,
}

impl LogSms {
    /// A logger that has sent nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl SmsSender for LogSms {
    async fn send(&self, message: SmsMessage) -> Result<String, SendError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!(
            "sms #{n} to {} (user {}, org {}): code {}: {}",
            message.recipient, message.user_id, message.org_id, message.code, message.text
        );
        Ok(format!("log-{n}"))
    }
}

/// Selects [`SmsView`] as what the SMS bindings see of the store's data.
pub(crate) struct Sms;

impl HasData for Sms {
    type Data<'a> = SmsView<'a>;
}

/// A borrowed view of the host's SMS sender.
pub(crate) struct SmsView<'a> {
    pub(crate) sender: &'a dyn SmsSender,
}

impl From<sender::Message> for SmsMessage {
    fn from(message: sender::Message) -> Self {
        Self {
            recipient: message.recipient,
            text: message.text,
            code: message.code,
            user_id: message.user_id,
            org_id: message.org_id,
        }
    }
}

impl From<SendError> for sender::SendError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Retryable(reason) => Self::Retryable(reason),
            SendError::Permanent(reason) => Self::Permanent(reason),
        }
    }
}

impl sender::Host for SmsView<'_> {
    async fn send(
        &mut self,
        message: sender::Message,
    ) -> wasmtime::Result<Result<String, sender::SendError>> {
        Ok(self.sender.send(message.into()).await.map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(code: &str) -> SmsMessage {
        SmsMessage {
            recipient: "+41710000000".into(),
            text: format!("Your code is {code}"),
            code: code.into(),
            user_id: "u1".into(),
            org_id: "o1".into(),
        }
    }

    #[tokio::test]
    async fn recording_sms_records_and_answers_as_configured() {
        let sms = RecordingSms::new();
        let handle = sms.clone();
        assert_eq!(sms.send(message("111111")).await, Ok("sms-1".into()));
        handle.set_reply(SmsReply::Retryable("busy".into()));
        assert_eq!(
            sms.send(message("222222")).await,
            Err(SendError::Retryable("busy".into()))
        );
        handle.set_reply(SmsReply::Permanent("bad number".into()));
        assert_eq!(
            sms.send(message("333333")).await,
            Err(SendError::Permanent("bad number".into()))
        );
        let sent = handle.messages();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].message, message("111111"));
        assert_eq!(handle.last().map(|s| s.message.code), Some("333333".into()));
        handle.clear();
        assert!(handle.messages().is_empty());
    }

    #[tokio::test]
    async fn recording_sms_delays_and_records_on_answer() {
        let sms = RecordingSms::new();
        sms.set_delay(Duration::from_millis(300));
        let task = tokio::spawn({
            let sms = sms.clone();
            async move { sms.send(message("123456")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(sms.messages().is_empty());
        assert_eq!(task.await.ok(), Some(Ok("sms-1".into())));
        assert_eq!(sms.messages().len(), 1);
    }

    #[tokio::test]
    async fn log_sms_counts_ids() {
        let sms = LogSms::new();
        assert_eq!(sms.send(message("1")).await, Ok("log-1".into()));
        assert_eq!(sms.send(message("2")).await, Ok("log-2".into()));
    }
}

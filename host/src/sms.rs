//! SMS for the guest: the native [`SmsSender`] trait behind `set-my-phone:sms/sender`, a recording
//! fake for tests and a stderr logger for local runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use wasmtime::component::HasData;

use crate::bindings::sender;

pub use set_my_phone_wire::sms::{SendError, SmsMessage};

/// Delivers SMS on behalf of the guest.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync {
    /// Delivers `message`; answers the provider's message id.
    async fn send(&self, message: SmsMessage) -> Result<String, SendError>;

    /// Whether this provider makes and checks codes itself (as Twilio Verify does): the guest
    /// then sends messages without a code and asks [`check`](SmsSender::check). Most don't.
    fn makes_codes(&self) -> bool {
        false
    }

    /// Whether the provider approves `code` for `recipient`; asked only when
    /// [`makes_codes`](SmsSender::makes_codes) answers `true`.
    async fn check(&self, _recipient: String, _code: String) -> Result<bool, SendError> {
        Err(SendError::Permanent(
            "this SMS sender does not check codes".into(),
        ))
    }
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
/// A call is recorded when it answers, that is after the configured delay and while the
/// recorder is not [held](RecordingSms::hold).
#[derive(Clone, Debug, Default)]
pub struct RecordingSms {
    inner: Arc<Mutex<Recording>>,
    /// Woken whenever a call starts or the recorder is released.
    changed: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Recording {
    sent: Vec<SentSms>,
    reply: SmsReply,
    delay: Duration,
    started: usize,
    held: bool,
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

    /// Makes later answers wait until [`release`](Self::release): calls start (and count in
    /// [`calls_started`](Self::calls_started)) but neither answer nor are recorded.
    pub fn hold(&self) {
        self.lock().held = true;
    }

    /// Lets held calls, and later ones, answer.
    pub fn release(&self) {
        self.lock().held = false;
        self.changed.notify_waiters();
    }

    /// How many calls have started, answered or not.
    pub fn calls_started(&self) -> usize {
        self.lock().started
    }

    /// Waits until at least `count` calls have started.
    pub async fn wait_for_calls(&self, count: usize) {
        loop {
            // Registered before the check, so a call starting in between still wakes it.
            let changed = self.changed.notified();
            if self.calls_started() >= count {
                return;
            }
            changed.await;
        }
    }

    async fn wait_while_held(&self) {
        loop {
            let changed = self.changed.notified();
            if !self.lock().held {
                return;
            }
            changed.await;
        }
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
        let delay = {
            let mut recording = self.lock();
            recording.started += 1;
            recording.delay
        };
        self.changed.notify_waiters();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.wait_while_held().await;
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

/// The binary's sender when nothing can deliver: the core alone, without `--print-sms` or
/// `--dev`. Every delivery fails permanently with a reason that says what to do, so a
/// production host never writes codes and numbers to its logs.
#[derive(Debug, Default)]
pub struct NoSms;

pub(crate) const NO_SMS_REASON: &str = "no SMS provider: serve the composed artifact \
     (set-my-phone.wasm with SMS_PROVIDER) or, for local runs, pass --print-sms";

#[async_trait::async_trait]
impl SmsSender for NoSms {
    async fn send(&self, _message: SmsMessage) -> Result<String, SendError> {
        Err(SendError::Permanent(NO_SMS_REASON.into()))
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
            language: message.language,
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
    async fn makes_codes(&mut self) -> wasmtime::Result<bool> {
        Ok(self.sender.makes_codes())
    }

    async fn check(
        &mut self,
        recipient: String,
        code: String,
    ) -> wasmtime::Result<Result<bool, sender::SendError>> {
        Ok(self.sender.check(recipient, code).await.map_err(Into::into))
    }

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
            language: "en".into(),
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
    async fn recording_sms_records_a_call_when_it_answers() {
        let sms = RecordingSms::new();
        sms.hold();
        let task = tokio::spawn({
            let sms = sms.clone();
            async move { sms.send(message("123456")).await }
        });
        sms.wait_for_calls(1).await;
        // Started and held: it cannot have answered, so it must not be recorded yet.
        assert!(sms.messages().is_empty());
        assert!(!task.is_finished());
        sms.release();
        assert_eq!(task.await.ok(), Some(Ok("sms-1".into())));
        assert_eq!(sms.messages().len(), 1);
        assert_eq!(sms.calls_started(), 1);
    }

    #[tokio::test]
    async fn recording_sms_answers_after_its_delay() {
        let sms = RecordingSms::new();
        let delay = Duration::from_millis(200);
        sms.set_delay(delay);
        let started = std::time::Instant::now();
        assert_eq!(sms.send(message("123456")).await, Ok("sms-1".into()));
        // A lower bound only: a busy machine may take longer, never shorter.
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn log_sms_counts_ids() {
        let sms = LogSms::new();
        assert_eq!(sms.send(message("1")).await, Ok("log-1".into()));
        assert_eq!(sms.send(message("2")).await, Ok("log-2".into()));
    }
}

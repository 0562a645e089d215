//! Codes a provider makes and checks itself (Twilio Verify): nothing of the code is made or
//! stored here, the provider is asked once per VerifyMyPhone, and the guards still apply.

use super::tests::World;
use crate::error::Error;
use crate::sms::SendError;
use crate::test_support::RecordingSms;

const NUMBER: &str = "+41446681800";

/// A world whose provider makes codes and approves `123456`, without a code secret.
fn provider_world() -> World {
    let mut world = World::new()
        .with("SMS_PROVIDER", "twilio-verify")
        .with("PHONE_CODE_SECRET", "");
    world.provider = RecordingSms::making_codes("123456");
    world
}

#[test]
fn no_code_is_made_or_stored_here() {
    let world = provider_world();
    world.set(NUMBER, &world.provider).unwrap();
    let sent = world.provider.sent.borrow();
    let message = sent.last().expect("a verification started");
    assert_eq!(message.recipient, NUMBER);
    assert_eq!((message.code.as_str(), message.text.as_str()), ("", ""));
    assert_eq!(message.language, "en");
    let code = world.record().phone.and_then(|p| p.code).expect("pending");
    assert!(code.by_provider && code.hash.is_empty(), "{code:?}");
    // No code secret was needed, so none was made and stored.
    assert!(
        !world
            .kv
            .data
            .borrow()
            .contains_key(super::STORED_SECRET_KEY)
    );
}

#[test]
fn the_provider_judges_each_typed_code_once() {
    let world = provider_world();
    world.set(NUMBER, &world.provider).unwrap();
    assert_eq!(world.verify("654321"), Err(Error::CodeInvalid));
    let code = world.record().phone.and_then(|p| p.code).expect("pending");
    assert_eq!(code.failed_attempts, 1, "a refused code counts an attempt");
    let details = world.verify(" 123456 ").unwrap();
    assert_eq!(details.sequence, 4, "changed, code added, failed, verified");
    assert_eq!(world.get().1.map(|p| p.is_phone_verified), Some(true));
    assert_eq!(
        *world.provider.checks.borrow(),
        [
            (NUMBER.to_string(), "654321".to_string()),
            (NUMBER.to_string(), "123456".to_string())
        ]
    );
    // Used: nothing pending, so the provider is not asked again.
    assert_eq!(world.verify("123456"), Err(Error::CodeNotFound));
    assert_eq!(world.provider.checks.borrow().len(), 2);
}

#[test]
fn void_or_expired_codes_are_refused_without_asking() {
    let world = provider_world().with("PHONE_CODE_MAX_ATTEMPTS", "1");
    world.set(NUMBER, &world.provider).unwrap();
    assert_eq!(world.verify("000000"), Err(Error::CodeInvalid));
    assert_eq!(world.verify("123456"), Err(Error::CodeInvalid), "void");
    assert_eq!(world.provider.checks.borrow().len(), 1);

    let world = provider_world().with("PHONE_CODE_EXPIRY", "60s");
    world.set(NUMBER, &world.provider).unwrap();
    world.clock.seconds.set(super::tests::START + 61);
    assert_eq!(world.verify("123456"), Err(Error::CodeInvalid), "expired");
    assert!(world.provider.checks.borrow().is_empty());
}

#[test]
fn a_provider_that_cannot_check_changes_nothing() {
    let world = provider_world();
    world.set(NUMBER, &world.provider).unwrap();
    let before = world.record();
    *world.provider.check_error.borrow_mut() = Some(SendError::Retryable(format!(
        "provider answered 503 for {NUMBER} and code 123456"
    )));
    match world.verify("123456") {
        Err(Error::CodeCheckUnavailable(why)) => {
            assert!(!why.contains("123456") && !why.contains("6681800"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    *world.provider.check_error.borrow_mut() =
        Some(SendError::Permanent("provider answered 401".into()));
    assert!(matches!(
        world.verify("123456"),
        Err(Error::CodeCheckRefused(_))
    ));
    assert_eq!(world.record(), before, "no attempt counted, nothing stored");
    *world.provider.check_error.borrow_mut() = None;
    assert!(world.verify("123456").is_ok());
}

#[test]
fn switching_providers_leaves_each_code_to_its_maker() {
    // A code made here before the switch to a provider that makes codes still verifies here.
    let mut world = World::new();
    let made_here = RecordingSms::new();
    world.set(NUMBER, &made_here).unwrap();
    world.provider = RecordingSms::making_codes("123456");
    let code = made_here.sent.borrow()[0].code.clone();
    assert!(world.verify(&code).is_ok());
    assert!(world.provider.checks.borrow().is_empty());

    // A provider's code after a switch away from it cannot be checked: a new code is needed.
    let mut world = provider_world().with("PHONE_CODE_SECRET", "native-test-secret-0123456789");
    world.set(NUMBER, &world.provider).unwrap();
    world.provider = RecordingSms::new();
    assert_eq!(world.verify("123456"), Err(Error::CodeInvalid));
}

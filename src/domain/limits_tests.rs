//! The limits across accounts and the SMS-pumping guard (`sms_limits.rs`, `pumping.rs`), over the
//! in-memory store: many users of one deployment, one clock the tests move.
//! tests/e2e/tests/it/sms_limits.rs races real requests through a host.

use super::tests::{ORG, START, World};
use crate::error::{Error, SendLimit};
use crate::store::KeyValue as _;
use crate::test_support::RecordingSms;

fn user(i: usize) -> String {
    format!("user-{i}")
}

/// 40 accounts each set `number(i)`: how many were answered 200, and the errors of the others.
fn forty_accounts(
    world: &World,
    sms: &RecordingSms,
    number: impl Fn(usize) -> String,
) -> (usize, Vec<Error>) {
    let mut refused = Vec::new();
    let mut ok = 0;
    for i in 0..40 {
        match world.set_as(&user(i), ORG, &number(i), sms) {
            Ok(_) => ok += 1,
            Err(error) => refused.push(error),
        }
    }
    (ok, refused)
}

#[test]
fn forty_accounts_send_at_most_five_codes_to_one_number() {
    let world = World::new();
    let sms = RecordingSms::new();
    let (ok, refused) = forty_accounts(&world, &sms, |_| "+41 79 555 00 00".into());
    assert_eq!((ok, sms.sent.borrow().len()), (5, 5));
    let left_in_hour = 3600 - (START % 3600) as u64;
    assert!(refused.iter().all(|error| *error
        == Error::SendLimit {
            limit: SendLimit::NumberHour,
            retry_after: left_in_hour
        }));
    // Refusals changed nothing: no record for the refused accounts, the counter at the limit.
    for i in 5..40 {
        assert!(world.record_of(&user(i), ORG).is_none(), "user {i}");
    }
    let hour = START / 3600;
    assert_eq!(
        world
            .kv
            .counter(&format!("sms-guard:h{hour}:number:+41795550000")),
        5
    );
}

#[test]
fn forty_numbers_in_one_range_get_at_most_twenty_codes() {
    // The pumping guard off, to see the range limit alone.
    let world = World::new().with("PHONE_PUMPING_MIN_VERIFIED", "0");
    let sms = RecordingSms::new();
    let (ok, refused) = forty_accounts(&world, &sms, |i| format!("+41 79 555 01 {i:02}"));
    assert_eq!((ok, sms.sent.borrow().len()), (20, 20));
    assert!(refused.iter().all(|error| matches!(
        error,
        Error::SendLimit {
            limit: SendLimit::RangeHour,
            ..
        }
    )));
    // Another range is not affected.
    assert!(world.set_as("other", ORG, "+41 79 556 00 00", &sms).is_ok());
}

#[test]
fn with_the_defaults_an_unverified_range_is_paused_after_ten_codes() {
    let world = World::new();
    let sms = RecordingSms::new();
    let (ok, refused) = forty_accounts(&world, &sms, |i| format!("+41 79 555 01 {i:02}"));
    assert_eq!((ok, sms.sent.borrow().len()), (10, 10));
    assert_eq!(
        refused[0],
        Error::PumpingBlock {
            retry_after: 86_400,
            tripped: true
        }
    );
    assert!(
        refused[1..]
            .iter()
            .all(|error| matches!(error, Error::PumpingBlock { tripped: false, .. }))
    );
}

#[test]
fn windows_expire_hour_by_hour_within_the_daily_limit() {
    let world = World::new();
    let sms = RecordingSms::new();
    let number = "+41 79 555 00 00";
    let mut accounts = (0..).map(user);
    let mut send = || world.set_as(&accounts.next().unwrap_or_default(), ORG, number, &sms);
    for _ in 0..5 {
        send().unwrap();
    }
    assert!(matches!(
        send(),
        Err(Error::SendLimit {
            limit: SendLimit::NumberHour,
            ..
        })
    ));
    world.clock.seconds.set(START + 3600);
    for _ in 0..5 {
        send().unwrap();
    }
    // Ten today: the next hour opens, but the day's limit holds until the UTC day ends.
    world.clock.seconds.set(START + 7200);
    let left_in_day = 86_400 - ((START + 7200) % 86_400) as u64;
    assert_eq!(
        send(),
        Err(Error::SendLimit {
            limit: SendLimit::NumberDay,
            retry_after: left_in_day
        })
    );
    world.clock.seconds.set(START + 7200 + left_in_day as i64);
    send().unwrap();
}

#[test]
fn verified_codes_keep_a_range_open_and_the_guard_trips_below_the_share() {
    let world = World::new();
    let sms = RecordingSms::new();
    // Ten codes into one range, two of them verified: 20 % verified, not under the minimum.
    for i in 0..10 {
        world
            .set_as(&user(i), ORG, &format!("+41 79 555 01 {i:02}"), &sms)
            .unwrap();
        if i < 2 {
            let code = sms
                .sent
                .borrow()
                .last()
                .map(|m| m.code.clone())
                .unwrap_or_default();
            world.verify_as(&user(i), ORG, &code).unwrap();
        }
    }
    world
        .set_as(&user(10), ORG, "+41 79 555 01 10", &sms)
        .unwrap();
    // Eleven sent, two verified: 18 %, under 20 %: paused for a day, from this code on.
    assert_eq!(
        world.set_as(&user(11), ORG, "+41 79 555 01 11", &sms),
        Err(Error::PumpingBlock {
            retry_after: 86_400,
            tripped: true
        })
    );
    let blocks = world
        .kv
        .get("sms-guard:blocks")
        .unwrap()
        .unwrap_or_default();
    let blocks: serde_json::Value = serde_json::from_slice(&blocks).unwrap();
    assert_eq!(blocks["blocks"][0]["prefix"], "+41795550");
    assert_eq!(blocks["blocks"][0]["scope"], "range");
    assert_eq!(
        (
            blocks["blocks"][0]["codes"].as_u64(),
            blocks["blocks"][0]["verified"].as_u64()
        ),
        (Some(11), Some(2))
    );
    // Resends into the range are refused too, and the refused requests sent nothing.
    let sent = sms.sent.borrow().len();
    assert!(matches!(
        world.resend_as(&user(5), ORG, &sms),
        Err(Error::PumpingBlock { tripped: false, .. })
    ));
    assert_eq!(sms.sent.borrow().len(), sent);
    // Other ranges are open; a day later, so is this one.
    world
        .set_as("elsewhere", ORG, "+41 79 556 00 00", &sms)
        .unwrap();
    world.clock.seconds.set(START + 86_400);
    world
        .set_as(&user(12), ORG, "+41 79 555 01 12", &sms)
        .unwrap();
}

#[test]
fn a_lifted_block_lets_codes_through_and_is_not_tripped_again_that_day() {
    let world = World::new().with("PHONE_PUMPING_MIN_CODES", "2");
    let sms = RecordingSms::new();
    for i in 0..2 {
        world
            .set_as(&user(i), ORG, &format!("+41 79 555 01 {i:02}"), &sms)
            .unwrap();
    }
    assert!(
        world
            .set_as(&user(2), ORG, "+41 79 555 01 02", &sms)
            .is_err()
    );
    // What the reference host's admin endpoint does: mark the block lifted.
    let bytes = world
        .kv
        .get("sms-guard:blocks")
        .unwrap()
        .unwrap_or_default();
    let mut blocks: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    blocks["blocks"][0]["lifted"] = true.into();
    world
        .kv
        .set("sms-guard:blocks", blocks.to_string().as_bytes())
        .unwrap();
    for i in 2..6 {
        world
            .set_as(&user(i), ORG, &format!("+41 79 555 01 {i:02}"), &sms)
            .unwrap();
    }
}

#[test]
fn zero_turns_every_limit_off() {
    let world = World::new()
        .with("PHONE_CODES_PER_NUMBER_PER_HOUR", "0")
        .with("PHONE_CODES_PER_NUMBER_PER_DAY", "0")
        .with("PHONE_CODES_PER_RANGE_PER_HOUR", "0")
        .with("PHONE_PUMPING_MIN_VERIFIED", "0%");
    let sms = RecordingSms::new();
    let (ok, _) = forty_accounts(&world, &sms, |_| "+41 79 555 00 00".into());
    assert_eq!(ok, 40);
    assert!(
        world
            .kv
            .counters
            .borrow()
            .keys()
            .all(|key| !key.starts_with("sms-guard:")),
        "no counter is even read"
    );
}

#[test]
fn organisation_and_deployment_budgets() {
    let world = World::new()
        .with("PHONE_SMS_PER_ORG_PER_HOUR", "3")
        .with("PHONE_SMS_PER_HOUR", "5");
    let sms = RecordingSms::new();
    let set = |user: &str, org: &str, n: usize| {
        world.set_as(user, org, &format!("+41 79 55{n} 00 00"), &sms)
    };
    for i in 0..3 {
        set(&user(i), "org-a", i).unwrap();
    }
    assert!(matches!(
        set("user-3", "org-a", 3),
        Err(Error::SendLimit {
            limit: SendLimit::OrgHour,
            ..
        })
    ));
    set("user-4", "org-b", 4).unwrap();
    set("user-5", "org-b", 5).unwrap();
    assert!(matches!(
        set("user-6", "org-c", 6),
        Err(Error::SendLimit {
            limit: SendLimit::DeploymentHour,
            ..
        })
    ));
    assert_eq!(sms.sent.borrow().len(), 5);
}

#[test]
fn resends_count_and_a_refused_change_gives_its_slot_back() {
    let world = World::new();
    let sms = RecordingSms::new();
    world.set_as("u", ORG, "+41 79 555 00 00", &sms).unwrap();
    // The same number again is refused (unchanged): its slot is given back.
    assert_eq!(
        world.set_as("u", ORG, "+41 79 555 00 00", &sms),
        Err(Error::PhoneNotChanged)
    );
    let hour = START / 3600;
    assert_eq!(
        world
            .kv
            .counter(&format!("sms-guard:h{hour}:number:+41795550000")),
        1
    );
    for _ in 0..4 {
        world.resend_as("u", ORG, &sms).unwrap();
    }
    assert!(matches!(
        world.resend_as("u", ORG, &sms),
        Err(Error::SendLimit {
            limit: SendLimit::NumberHour,
            ..
        })
    ));
    assert_eq!(sms.sent.borrow().len(), 5);
    assert_eq!(
        world
            .kv
            .counter(&format!("sms-guard:h{hour}:number:+41795550000")),
        5
    );
}

#[test]
fn a_refusal_is_an_audit_line_with_its_reason() {
    let world = World::new().with("PHONE_CODES_PER_NUMBER_PER_HOUR", "1");
    let sms = RecordingSms::new();
    world
        .set_as("first", ORG, "+41 79 555 00 00", &sms)
        .unwrap();
    let (refused, lines) =
        super::tests::audited(|| world.set_as("second", ORG, "+41 79 555 00 00", &sms));
    assert!(matches!(refused, Err(Error::SendLimit { .. })));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "user.human.phone.code.refused");
    assert_eq!(lines[0]["reason"], "number_hour");
    assert_eq!(lines[0]["user"], "second");
    assert_eq!(lines[0]["phone"], "…00");
    assert!(lines[0].get("sequence").is_none(), "nothing stored");
}

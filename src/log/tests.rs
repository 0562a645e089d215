use super::scrub::MAX_TEXT;
use super::*;
use crate::test_support::CountingRandom;
use std::cell::Cell;

fn parse(line: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {line} ({other:?})"),
    }
}

#[test]
fn a_line_is_one_json_object_with_time_level_msg_and_fields_in_order() {
    let ((), lines) = capture(|| {
        line(
            Level::Warn,
            "sms not delivered",
            &[("retryable", Value::from(true)), ("n", Value::from(3))],
        );
    });
    assert_eq!(lines.len(), 1);
    let text = &lines[0];
    assert!(!text.contains('\n'));
    assert!(
        text.starts_with(r#"{"time":""#)
            && text.contains(r#","level":"warn","msg":"sms not delivered","#),
        "{text}"
    );
    let map = parse(text);
    assert_eq!(map["retryable"], true);
    assert_eq!(map["n"], 3);
    let time = map["time"].as_str().unwrap();
    // 2026-11-27T17:44:44.123Z
    assert_eq!(time.len(), 24, "{time}");
    assert_eq!((&time[4..5], &time[10..11], &time[19..20]), ("-", "T", "."));
    assert!(time.ends_with('Z'));
}

#[test]
fn hostile_values_stay_inside_their_json_string() {
    let hostile = "a\"b\\c\nd\r{\"level\":\"error\"}\u{0}\u{2028}";
    let ((), lines) = capture(|| line(Level::Info, hostile, &[(hostile, Value::from(hostile))]));
    assert_eq!(lines.len(), 1);
    assert!(!lines[0].contains('\n') && !lines[0].contains('\r'));
    let map = parse(&lines[0]);
    assert_eq!(map["msg"], hostile);
    assert_eq!(map[hostile], hostile);
    assert_eq!(map["level"], "info");
}

#[test]
fn request_ids_from_clients_are_kept_only_when_sane() {
    let random = CountingRandom(Cell::new(0));
    for good in [
        "abc",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        &"x".repeat(MAX_REQUEST_ID),
    ] {
        assert_eq!(request_id_for(Some(good), &random), good);
    }
    for bad in [
        "",
        "a b",
        "line\nbreak",
        "cr\rlf",
        "quote\"d",
        "back\\slash",
        "{\"level\":\"error\"}",
        "tab\there",
        "ünïcode",
        "semi;colon",
        "<script>",
        &"x".repeat(MAX_REQUEST_ID + 1),
        &"y".repeat(10 * 1024),
    ] {
        let made = request_id_for(Some(bad), &random);
        assert_ne!(made, bad);
        assert_eq!(made.len(), 16, "{made}");
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
    }
    let made = request_id_for(None, &random);
    assert_eq!(made.len(), 16);
    // Made-up ids differ from request to request.
    assert_ne!(request_id_for(None, &random), made);
}

#[test]
fn the_request_line_names_the_request_and_other_lines_carry_its_id() {
    let ((), lines) = capture(|| {
        let request = enter_request("req-1".into(), "SetMyPhone".into(), "grpc-web");
        authenticated("user-1", "org-1");
        line(Level::Error, "request failed", &[]);
        failed(14, 503);
        request.finish(200);
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = parse(&lines[0]);
    assert_eq!(first["request_id"], "req-1");
    let request = parse(&lines[1]);
    assert_eq!(request["msg"], "request");
    assert_eq!(request["level"], "error");
    assert_eq!(request["request_id"], "req-1");
    assert_eq!(request["rpc"], "SetMyPhone");
    assert_eq!(request["protocol"], "grpc-web");
    assert_eq!(request["http_status"], 200);
    assert_eq!(request["grpc_code"], 14);
    assert!(request["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(request["user_id"], "user-1");
    assert_eq!(request["org_id"], "org-1");

    // The next request starts afresh: no caller, no failure of the previous one.
    let ((), lines) =
        capture(|| enter_request("req-2".into(), "unknown".into(), "json").finish(404));
    let request = parse(&lines[0]);
    assert_eq!(request["request_id"], "req-2");
    assert_eq!(request["grpc_code"], 0);
    assert_eq!(request["level"], "info");
    assert!(!request.contains_key("user_id") && !request.contains_key("org_id"));
}

/// Sends a request without a token through `api::handle`; the answer and the lines logged.
fn serve(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (crate::http::Response, Vec<serde_json::Map<String, Value>>) {
    use crate::platform::{OpenError, Services};
    use crate::store::KeyValue;
    use crate::test_support::{FixedClock, MemoryKv, NoIssuer};
    let env = |name: &str| {
        match name {
        "AUTH_ISSUER" => Some("https://issuer.example".to_owned()),
        "AUTH_JWKS" => Some(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.to_owned()),
        _ => None,
    }
    };
    let open =
        |_: &str| -> Result<Box<dyn KeyValue>, OpenError> { Ok(Box::new(MemoryKv::default())) };
    let (clock, random) = (FixedClock::at(1_800_000_000), CountingRandom(Cell::new(7)));
    let services = Services {
        settings: &|name: &str| Ok(env(name)),
        settings_generation: None,
        open_store: &open,
        clock: &clock,
        random: &random,
        http: &NoIssuer,
        sms: &crate::test_support::RecordingSms::new(),
    };
    let request = crate::http::Request {
        method: method.into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: Ok(Vec::new()),
    };
    let (reply, lines) = capture(|| crate::api::handle(&request, &services));
    (reply.response, lines.iter().map(|l| parse(l)).collect())
}

fn header<'r>(response: &'r crate::http::Response, name: &str) -> Vec<&'r str> {
    response
        .headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn every_answer_carries_its_request_id_and_is_logged_once() {
    let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIrNDE3MTAwMDAwMjAifQ.c2lnbmF0dXJl";
    let (response, lines) = serve(
        "PUT",
        "/auth/v1/users/me/phone",
        &[
            ("x-request-id", "client-id-1"),
            ("authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(response.status, 401);
    assert_eq!(header(&response, "x-request-id"), ["client-id-1"]);
    let request: Vec<_> = lines.iter().filter(|l| l["msg"] == "request").collect();
    assert_eq!(request.len(), 1, "{lines:?}");
    let line = request[0];
    assert_eq!(line["request_id"], "client-id-1");
    assert_eq!(line["rpc"], "SetMyPhone");
    assert_eq!(line["protocol"], "json");
    assert_eq!(line["http_status"], 401);
    assert_eq!(line["grpc_code"], 16);
    assert_eq!(line["level"], "info");
    // Why the token was refused is for operators: a warning, not an error.
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| l["msg"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0]["level"], "warn");
    assert_eq!(failed[0]["request_id"], "client-id-1");
    for line in &lines {
        let text = Value::Object(line.clone()).to_string();
        assert!(
            !text.contains("signature") && !text.contains("c2lnbmF0dXJl"),
            "{text}"
        );
    }

    // gRPC-Web, an unknown method, a hostile id: replaced, and the same id answered.
    let (response, lines) = serve(
        "POST",
        "/zitadel.auth.v1.AuthService/NoSuchThing",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-request-id", "evil\n{\"level\":\"error\"}"),
        ],
    );
    let id = header(&response, "x-request-id");
    assert_eq!(id.len(), 1);
    assert_eq!(id[0].len(), 16, "{id:?}");
    let line = lines.iter().find(|l| l["msg"] == "request").unwrap();
    assert_eq!(line["request_id"], id[0]);
    assert_eq!(line["rpc"], "unknown");
    assert_eq!(line["protocol"], "grpc-web");
    assert_eq!(line["http_status"], 200);
    assert_eq!(line["grpc_code"], 12);

    let (response, lines) = serve("GET", "/nowhere", &[]);
    assert_eq!(response.status, 404);
    let line = lines.iter().find(|l| l["msg"] == "request").unwrap();
    assert_eq!(line["rpc"], "unknown");
    assert_eq!(line["grpc_code"], 5);
    assert!(!Value::Object(line.clone()).to_string().contains("nowhere"));
}

#[test]
fn records_flatten_into_the_line() {
    #[derive(Serialize)]
    struct Event {
        time: &'static str,
        msg: &'static str,
        sequence: u64,
        r#type: &'static str,
    }
    let ((), lines) = capture(|| {
        record(
            Level::Info,
            "audit",
            &Event {
                time: "2026-11-27T17:00:00Z",
                msg: "ignored",
                sequence: 7,
                r#type: "user.human.phone.removed",
            },
        );
    });
    let map = parse(&lines[0]);
    assert_eq!(map["msg"], "audit");
    assert_eq!(map["time"], "2026-11-27T17:00:00Z");
    assert_eq!(lines[0].matches("\"msg\"").count(), 1, "{}", lines[0]);
    assert_eq!(map["sequence"], 7);
    assert_eq!(map["type"], "user.human.phone.removed");
}

#[test]
fn scrub_masks_numbers_in_any_form_and_named_secrets() {
    for (text, want) in [
        ("to +41710000020: bad", "to [redacted]: bad"),
        ("number 41710000020", "number [redacted]"),
        ("number 710000020.", "number [redacted]."),
        ("+41 71 000 00 20 refused", "[redacted] refused"),
        ("(071) 000-00-20", "([redacted]"),
        ("01.23.45.67.89", "[redacted]"),
        (
            "provider answered 503; retry after 30 s",
            "provider answered 503; retry after 30 s",
        ),
        (
            "connect 127.0.0.1:8080 refused",
            "connect 127.0.0.1:8080 refused",
        ),
        ("kid 283746637281726354", "kid 283746637281726354"),
        ("kid ab12345cd", "kid ab12345cd"),
    ] {
        assert_eq!(scrub(text, &[]), want, "{text}");
    }
    assert_eq!(
        scrub("code Ab12Cd for you, AB12CD again", &["AB12CD"]),
        "code [redacted] for you, [redacted] again"
    );
    let long = "é".repeat(1000);
    let cut = scrub(&long, &[]);
    assert!(cut.len() <= MAX_TEXT + "…".len() && cut.ends_with('…'));
}

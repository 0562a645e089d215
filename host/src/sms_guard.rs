//! The SMS-pumping guard's blocks on the admin listener: `GET /sms-guard/blocks` lists them and
//! `DELETE /sms-guard/blocks/{prefix}` lifts one. The component keeps them in one JSON document
//! (`sms-guard:blocks`, written by the core's `domain/pumping.rs`); lifting marks the block
//! `"lifted": true` with a compare-and-swap, so codes flow again and the same day's counts do
//! not trip it again before it would have ended. docs/operating.md.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::keyvalue::{Backend, Swap, Version};

/// Where the component keeps the blocks.
pub(crate) const BLOCKS_KEY: &str = "sms-guard:blocks";
/// Compare-and-swap attempts when lifting.
const MAX_ATTEMPTS: u32 = 10;

fn json_answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The document's blocks that have not ended, or why they cannot be read.
fn running(document: &Value, now: i64) -> Vec<Value> {
    document["blocks"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|block| block["until"].as_i64().is_some_and(|until| until > now))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn parse(value: Option<&[u8]>) -> Result<Value, String> {
    match value {
        None => Ok(json!({"blocks": []})),
        Some(bytes) => serde_json::from_slice::<Value>(bytes)
            .ok()
            .filter(|document| document["blocks"].is_array())
            .ok_or_else(|| format!("{BLOCKS_KEY} is not a blocks document")),
    }
}

/// `GET /sms-guard/blocks`: the blocks that have not ended.
pub(crate) async fn list(store: &dyn Backend, bucket: &str) -> Response<Full<Bytes>> {
    match store.get(bucket, BLOCKS_KEY).await {
        Err(err) => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": format!("store unavailable: {}", err.message())}),
        ),
        Ok(read) => match parse(read.value.as_deref()) {
            Ok(document) => json_answer(
                StatusCode::OK,
                &json!({"blocks": running(&document, now_seconds())}),
            ),
            Err(problem) => json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": problem}),
            ),
        },
    }
}

/// `DELETE /sms-guard/blocks/{prefix}`: marks the running blocks of `prefix` (`+41795550`, or a
/// calling code such as `+41`; the `+` may be left out) lifted.
pub(crate) async fn lift(store: &dyn Backend, bucket: &str, prefix: &str) -> Response<Full<Bytes>> {
    let digits = prefix.trim_start_matches('+');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return json_answer(
            StatusCode::BAD_REQUEST,
            &json!({"error": "the prefix is a number range or calling code: digits, with or without a leading +"}),
        );
    }
    let prefix = format!("+{digits}");
    for _ in 0..MAX_ATTEMPTS {
        let read = match store.get(bucket, BLOCKS_KEY).await {
            Ok(read) => read,
            Err(err) => {
                return json_answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": format!("store unavailable: {}", err.message())}),
                );
            }
        };
        let mut document = match parse(read.value.as_deref()) {
            Ok(document) => document,
            Err(problem) => {
                return json_answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": problem}),
                );
            }
        };
        let now = now_seconds();
        let mut lifted = 0;
        if let Some(blocks) = document["blocks"].as_array_mut() {
            for block in blocks.iter_mut() {
                let runs = block["until"].as_i64().is_some_and(|until| until > now);
                if runs && block["prefix"] == prefix.as_str() && block["lifted"] != true {
                    block["lifted"] = Value::Bool(true);
                    lifted += 1;
                }
            }
        }
        if lifted == 0 || read.version == Version::Absent {
            return json_answer(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no running block for {prefix}")}),
            );
        }
        match store
            .compare_and_swap(
                bucket,
                BLOCKS_KEY,
                read.version,
                document.to_string().into_bytes(),
            )
            .await
        {
            Ok(Swap::Swapped) => {
                tracing::info!(
                    message = "SMS-pumping block lifted",
                    prefix = prefix.as_str()
                );
                return json_answer(
                    StatusCode::OK,
                    &json!({"lifted": prefix, "blocks": running(&document, now)}),
                );
            }
            Ok(Swap::Conflict) => {}
            Err(err) => {
                return json_answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": format!("store unavailable: {}", err.message())}),
                );
            }
        }
    }
    json_answer(
        StatusCode::CONFLICT,
        &json!({"error": "the blocks kept changing; try again"}),
    )
}

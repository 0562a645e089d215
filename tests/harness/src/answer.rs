//! An HTTP answer as the Rust suites look at it, and the paths of the phone API.

use serde_json::Value;

pub const PHONE_URL: &str = "/auth/v1/users/me/phone";
pub const VERIFY_URL: &str = "/auth/v1/users/me/phone/_verify";
pub const RESEND_URL: &str = "/auth/v1/users/me/phone/_resend_verification";

/// A response read whole: its status, headers and body (JSON, or the text when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// `response` as an [`Answer`]; `Err` when the body did not arrive whole.
pub async fn answer(response: reqwest::Response) -> Result<Answer, reqwest::Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Answer {
    /// The google.rpc.Status code of an error body; -1 when there is none.
    pub fn code(&self) -> i64 {
        self.body["code"].as_i64().unwrap_or(-1)
    }

    /// The ErrorDetail id, if any.
    pub fn detail_id(&self) -> Option<&str> {
        self.body["details"][0]["id"].as_str()
    }

    /// `details.sequence`, 0 when absent (proto3's JSON leaves a zero out: a new record's).
    pub fn sequence(&self) -> u64 {
        self.try_sequence().unwrap_or(0)
    }

    /// `details.sequence`; `None` when absent.
    pub fn try_sequence(&self) -> Option<u64> {
        self.body["details"]["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
    }

    /// The phone number of a GetMyPhone answer.
    pub fn phone(&self) -> Option<&str> {
        self.body["phone"]["phone"].as_str()
    }
}

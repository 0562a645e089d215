//! REST with JSON bodies, as grpc-gateway serves ZITADEL's auth API (protojson rules).

use super::{Input, Output, Reply, Rpc, Services, authorize, change_query, log};
use crate::api;
use crate::domain::{ChangeView, Details, PhoneView};
use crate::error::Error;
use crate::http::{Request, Response};
use serde::Serialize;
use serde_json::Value;
use set_my_phone_wire::RestRoute;

pub fn handle<'a>(request: &Request, services: &'a Services<'a>) -> Reply<'a> {
    match dispatch(request, services) {
        Ok(reply) => reply,
        Err(error) => {
            log(&error);
            Reply {
                response: error_response(&error),
                followup: None,
            }
        }
    }
}

/// The RPC a path and method name, as grpc-gateway maps them (the wire crate's table).
pub(super) fn route(path: &str, method: &str) -> Result<Rpc, Error> {
    match Rpc::from_rest(method, path) {
        RestRoute::Rpc(rpc) => Ok(rpc),
        RestRoute::MethodNotAllowed(allowed) => Err(Error::MethodNotAllowed(allowed)),
        RestRoute::NotFound => Err(Error::NotFound),
    }
}

fn dispatch<'a>(request: &Request, services: &'a Services<'a>) -> Result<Reply<'a>, Error> {
    let rpc = route(&request.path, &request.method)?;
    if rpc == Rpc::Healthz {
        // No authentication, no configuration, no store: the component answers, so it is up.
        return Ok(Reply {
            response: Response::json(200, b"{}".to_vec()),
            followup: None,
        });
    }
    let input = input(rpc, request)?;
    let caller = authorize(services, request)?;
    let (output, followup) = api::call(rpc, input, caller)?;
    // Our response structs hold only strings and numbers: serialising them cannot fail.
    let body = match output {
        Output::Details(details) => serde_json::to_vec(&DetailsResponse {
            details: details.into(),
        }),
        Output::Phone(details, view) => serde_json::to_vec(&GetMyPhoneResponse {
            details: details.into(),
            phone: Some(view.into()),
        }),
        Output::Changes(changes) => serde_json::to_vec(&ListMyUserChangesResponse {
            result: changes.into_iter().map(ChangeJson::from).collect(),
        }),
        Output::Empty => Ok(b"{}".to_vec()),
    }
    .unwrap_or_default();
    Ok(Reply {
        response: Response::json(200, body),
        followup,
    })
}

/// The request message of `rpc` from a JSON body (GET and DELETE have none).
pub(super) fn input(rpc: Rpc, request: &Request) -> Result<Input, Error> {
    Ok(match rpc {
        Rpc::SetMyPhone => Input::Phone(string_field(
            &json_body(request)?,
            "phone",
            "SetMyPhoneRequest",
        )?),
        Rpc::VerifyMyPhone => Input::Code(string_field(
            &json_body(request)?,
            "code",
            "VerifyMyPhoneRequest",
        )?),
        Rpc::ResendMyPhoneVerification => {
            json_body(request)?;
            Input::Empty
        }
        Rpc::ListMyUserChanges => Input::Changes(query_field(&json_body(request)?)?),
        Rpc::GetMyPhone | Rpc::RemoveMyPhone | Rpc::Healthz => Input::Empty,
    })
}

/// ListMyUserChangesRequest.query, protojson: integers as numbers or decimal strings, absent
/// or `null` fields at their defaults, unknown fields ignored.
fn query_field(body: &serde_json::Map<String, Value>) -> Result<crate::domain::ChangeQuery, Error> {
    let query = match body.get("query") {
        None | Some(Value::Null) => return change_query(0, 0, false),
        Some(Value::Object(query)) => query,
        Some(_) => {
            return Err(Error::MalformedBody(
                "invalid ListMyUserChangesRequest.query: expected an object".into(),
            ));
        }
    };
    let sequence = unsigned_field(query, "sequence", u64::MAX)?;
    let limit = unsigned_field(query, "limit", u64::from(u32::MAX))?;
    let asc = match query.get("asc") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(asc)) => *asc,
        Some(_) => {
            return Err(Error::MalformedBody(
                "invalid ChangeQuery.asc: expected true or false".into(),
            ));
        }
    };
    change_query(sequence, limit, asc)
}

/// An unsigned integer field of at most `max`, as a JSON number or a decimal string.
fn unsigned_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
    max: u64,
) -> Result<u64, Error> {
    let value = match object.get(name) {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) if !text.starts_with('+') => text.parse::<u64>().ok(),
        Some(_) => None,
    };
    value.filter(|value| *value <= max).ok_or_else(|| {
        Error::MalformedBody(format!(
            "invalid ChangeQuery.{name}: expected an integer from 0 to {max}"
        ))
    })
}

/// Reads a JSON object body. An empty body is an empty message, as grpc-gateway treats it.
/// The body as a JSON object, whatever its content type says: grpc-gateway's default marshaler
/// reads any content type it has no other marshaler for as JSON (curl's `-d` sends
/// `application/x-www-form-urlencoded`), and so do we.
fn json_body(request: &Request) -> Result<serde_json::Map<String, Value>, Error> {
    let bytes = request.body.as_ref().map_err(Clone::clone)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::MalformedBody(
            "invalid request body: expected a JSON object".into(),
        )),
        Err(e) => Err(Error::MalformedBody(format!("invalid JSON body: {e}"))),
    }
}

/// A string field; absent or `null` is the empty string (protojson), anything else an error.
fn string_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    message: &str,
) -> Result<String, Error> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(Error::MalformedBody(format!(
            "invalid {message}.{name}: expected a string"
        ))),
    }
}

/// google.rpc.Status as JSON, with the HTTP status its code maps to.
pub fn error_response(error: &Error) -> Response {
    let status = error.status();
    let body = StatusJson {
        code: status.code as i32,
        message: status.message,
        details: status
            .detail
            .into_iter()
            .map(|detail| ErrorDetailJson {
                type_url: "type.googleapis.com/zitadel.v1.ErrorDetail",
                id: detail.id,
                message: detail.message,
            })
            .collect(),
    };
    let mut response = Response::json(
        status.http_status,
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    if let Error::MethodNotAllowed(allowed) = error {
        response.headers.push(("allow".into(), (*allowed).into()));
    }
    super::name_refusal(&mut response, error);
    if let Some(seconds) = status.retry_after {
        response
            .headers
            .push(("retry-after".into(), seconds.to_string()));
    }
    response
}

#[derive(Serialize)]
struct StatusJson {
    code: i32,
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<ErrorDetailJson>,
}

#[derive(Serialize)]
struct ErrorDetailJson {
    #[serde(rename = "@type")]
    type_url: &'static str,
    id: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailsJson {
    /// uint64 travels as a JSON string in protojson.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<String>,
    creation_date: String,
    change_date: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    resource_owner: String,
}

impl From<Details> for DetailsJson {
    fn from(details: Details) -> Self {
        DetailsJson {
            sequence: (details.sequence > 0).then(|| details.sequence.to_string()),
            creation_date: details.creation_date.to_string(),
            change_date: details.change_date.to_string(),
            resource_owner: details.resource_owner,
        }
    }
}

/// zitadel.user.v1.Phone; an absent phone is the empty object, as upstream answers it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_phone_verified: Option<bool>,
}

impl From<Option<PhoneView>> for PhoneJson {
    fn from(view: Option<PhoneView>) -> Self {
        match view {
            Some(view) => PhoneJson {
                phone: Some(view.phone),
                is_phone_verified: Some(view.is_phone_verified),
            },
            None => PhoneJson {
                phone: None,
                is_phone_verified: None,
            },
        }
    }
}

/// zitadel.change.v1.Change.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeJson {
    change_date: String,
    event_type: LocalizedMessageJson,
    sequence: String,
    editor_id: String,
    resource_owner_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalizedMessageJson {
    key: &'static str,
    localized_message: &'static str,
}

impl From<ChangeView> for ChangeJson {
    fn from(change: ChangeView) -> Self {
        ChangeJson {
            change_date: change.change_date.to_string(),
            event_type: LocalizedMessageJson {
                key: change.kind.key(),
                localized_message: change.kind.message(),
            },
            sequence: change.sequence.to_string(),
            editor_id: change.editor_id,
            resource_owner_id: change.resource_owner_id,
        }
    }
}

/// ListMyUserChangesResponse; an empty `result` is omitted, like every zero field.
#[derive(Serialize)]
struct ListMyUserChangesResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    result: Vec<ChangeJson>,
}

#[derive(Serialize)]
struct DetailsResponse {
    details: DetailsJson,
}

#[derive(Serialize)]
struct GetMyPhoneResponse {
    details: DetailsJson,
    phone: Option<PhoneJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_matches_upstream_shape() {
        let response = error_response(&Error::PhoneNotChanged);
        assert_eq!(response.status, 400);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code":9,"message":"Phone not changed (COMMAND-wF94r)",
                "details":[{"@type":"type.googleapis.com/zitadel.v1.ErrorDetail",
                            "id":"COMMAND-wF94r","message":"Phone not changed"}]})
        );
        let plain: Value =
            serde_json::from_slice(&error_response(&Error::AuthHeaderMissing).body).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"code":16,"message":"auth header missing"})
        );
    }

    fn query(body: &str) -> Result<crate::domain::ChangeQuery, Error> {
        match serde_json::from_str::<Value>(body).unwrap() {
            Value::Object(map) => query_field(&map),
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn change_queries_take_protojson_and_refuse_bad_limits() {
        let q = |sequence, limit, asc| crate::domain::ChangeQuery {
            sequence,
            limit,
            asc,
        };
        assert_eq!(query("{}"), Ok(q(0, 0, false)));
        assert_eq!(query(r#"{"query":null}"#), Ok(q(0, 0, false)));
        assert_eq!(
            query(r#"{"query":{"sequence":"18446744073709551615","limit":"1000","asc":true}}"#),
            Ok(q(u64::MAX, 1000, true))
        );
        assert_eq!(
            query(r#"{"query":{"sequence":5,"limit":20,"unknown":1}}"#),
            Ok(q(5, 20, false))
        );
        for bad in [
            r#"{"query":{"limit":-1}}"#,
            r#"{"query":{"limit":1001}}"#,
            r#"{"query":{"limit":4294967296}}"#,
            r#"{"query":{"limit":1.5}}"#,
            r#"{"query":{"limit":"ten"}}"#,
            r#"{"query":{"limit":"+5"}}"#,
            r#"{"query":{"sequence":"-1"}}"#,
            r#"{"query":{"sequence":"18446744073709551616"}}"#,
            r#"{"query":{"asc":"yes"}}"#,
            r#"{"query":[]}"#,
        ] {
            let error = query(bad).expect_err(bad);
            assert!(matches!(error, Error::MalformedBody(_)), "{bad}: {error:?}");
            assert_eq!(error.status().http_status, 400, "{bad}");
        }
    }

    #[test]
    fn healthz_and_changes_are_routed() {
        assert_eq!(route("/auth/v1/healthz", "GET"), Ok(Rpc::Healthz));
        assert_eq!(
            route("/auth/v1/healthz", "POST"),
            Err(Error::MethodNotAllowed("GET"))
        );
        assert_eq!(
            route("/auth/v1/users/me/changes/_search", "POST"),
            Ok(Rpc::ListMyUserChanges)
        );
        assert_eq!(
            route("/auth/v1/users/me/changes/_search", "GET"),
            Err(Error::MethodNotAllowed("POST"))
        );
    }
}

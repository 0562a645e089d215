//! gRPC over HTTP/2 (tonic) and gRPC-Web over HTTP/1.1 (tonic-web's client layer) against the
//! served component, plus hand-made malformed frames. Messages are declared here from upstream's
//! field numbers (listed in docs/api.md), independently of the component's own.

use crate::support::{self, TestHost};
use crate::tokens::{self, ORG};
use http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tonic::client::GrpcService;
use tonic::{Code, Status};
use tonic_web::{GrpcWebCall, GrpcWebClientService};

#[derive(Clone, PartialEq, Message)]
pub struct SetMyPhoneRequest {
    #[prost(string, tag = "1")]
    pub phone: String,
}
#[derive(Clone, PartialEq, Message)]
pub struct VerifyMyPhoneRequest {
    #[prost(string, tag = "1")]
    pub code: String,
}
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}
#[derive(Clone, PartialEq, Message)]
pub struct ObjectDetails {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(message, optional, tag = "2")]
    pub creation_date: Option<Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub change_date: Option<Timestamp>,
    #[prost(string, tag = "4")]
    pub resource_owner: String,
}
#[derive(Clone, PartialEq, Message)]
pub struct DetailsResponse {
    #[prost(message, optional, tag = "1")]
    pub details: Option<ObjectDetails>,
}
#[derive(Clone, PartialEq, Message)]
pub struct Phone {
    #[prost(string, tag = "1")]
    pub phone: String,
    #[prost(bool, tag = "2")]
    pub is_phone_verified: bool,
}
#[derive(Clone, PartialEq, Message)]
pub struct GetMyPhoneResponse {
    #[prost(message, optional, tag = "1")]
    pub details: Option<ObjectDetails>,
    #[prost(message, optional, tag = "2")]
    pub phone: Option<Phone>,
}
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}
#[derive(Clone, PartialEq, Message)]
pub struct ErrorDetail {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A tonic client over either transport (`changes.rs` uses it too).
pub(crate) struct PhoneClient<T> {
    grpc: tonic::client::Grpc<T>,
}

impl<T> PhoneClient<T>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(crate) async fn call<Req, Resp>(
        &mut self,
        method: &'static str,
        token: Option<&str>,
        message: Req,
    ) -> Result<Resp, Status>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("not ready: {}", e.into())))?;
        let mut request = tonic::Request::new(message);
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ascii"),
            );
        }
        let path = PathAndQuery::from_static(method);
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        self.grpc
            .unary(request, path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn set(&mut self, token: Option<&str>, phone: &str) -> Result<DetailsResponse, Status> {
        self.call(
            "/zitadel.auth.v1.AuthService/SetMyPhone",
            token,
            SetMyPhoneRequest {
                phone: phone.into(),
            },
        )
        .await
    }

    async fn get(&mut self, token: Option<&str>) -> Result<GetMyPhoneResponse, Status> {
        self.call("/zitadel.auth.v1.AuthService/GetMyPhone", token, Empty {})
            .await
    }

    async fn verify(&mut self, token: Option<&str>, code: &str) -> Result<DetailsResponse, Status> {
        self.call(
            "/zitadel.auth.v1.AuthService/VerifyMyPhone",
            token,
            VerifyMyPhoneRequest { code: code.into() },
        )
        .await
    }

    async fn resend(&mut self, token: Option<&str>) -> Result<DetailsResponse, Status> {
        self.call(
            "/zitadel.auth.v1.AuthService/ResendMyPhoneVerification",
            token,
            Empty {},
        )
        .await
    }

    async fn remove(&mut self, token: Option<&str>) -> Result<DetailsResponse, Status> {
        self.call(
            "/zitadel.auth.v1.AuthService/RemoveMyPhone",
            token,
            Empty {},
        )
        .await
    }
}

pub(crate) async fn grpc_client(host: &TestHost) -> PhoneClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(host.running.url())
        .expect("url")
        .connect()
        .await
        .expect("HTTP/2 connection");
    PhoneClient {
        grpc: tonic::client::Grpc::new(channel),
    }
}

pub(crate) type WebService = GrpcWebClientService<
    Client<hyper_util::client::legacy::connect::HttpConnector, GrpcWebCall<tonic::body::Body>>,
>;

pub(crate) fn grpc_web_client(host: &TestHost) -> PhoneClient<WebService> {
    // HTTP/1.1 only, as on hosts like `wasmtime serve`.
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let origin = host.running.url().parse().expect("uri");
    PhoneClient {
        grpc: tonic::client::Grpc::with_origin(GrpcWebClientService::new(http1), origin),
    }
}

/// The ErrorDetail carried in grpc-status-details-bin.
fn detail(status: &Status) -> ErrorDetail {
    let rpc =
        RpcStatus::decode(status.details()).expect("google.rpc.Status in grpc-status-details-bin");
    assert_eq!(rpc.code, status.code() as i32);
    assert_eq!(rpc.message, status.message());
    let any = rpc.details.first().expect("an ErrorDetail");
    assert_eq!(any.type_url, "type.googleapis.com/zitadel.v1.ErrorDetail");
    ErrorDetail::decode(&any.value[..]).expect("ErrorDetail")
}

/// Reads a JSON timestamp (`2026-11-27T14:20:00.123456Z`) as protobuf's seconds and nanos,
/// independently of the core's own encoder, so a wrong conversion in either form fails.
fn from_rfc3339(text: &str) -> (i64, i32) {
    let number = |s: &str| s.parse::<i64>().expect(text);
    let (date, time) = text.split_once('T').expect(text);
    let time = time.strip_suffix('Z').expect(text);
    let mut ymd = date.split('-').map(number);
    let (y, m, d) = (
        ymd.next().unwrap(),
        ymd.next().unwrap(),
        ymd.next().unwrap(),
    );
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.split(':').map(number);
    let (h, min, sec) = (
        hms.next().unwrap(),
        hms.next().unwrap(),
        hms.next().unwrap(),
    );
    // Days since 1970-01-01 in the proleptic Gregorian calendar, counted from March so
    // that the leap day ends a year.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era_days = y.div_euclid(400) * 146_097;
    let year_of_era = y.rem_euclid(400);
    let day_of_year = (153 * m + 2) / 5 + d - 1;
    let days =
        era_days + year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year - 719_468;
    let nanos = if fraction.is_empty() {
        0
    } else {
        number(&format!("{fraction:0<9}")[..9]) as i32
    };
    (days * 86_400 + h * 3_600 + min * 60 + sec, nanos)
}

fn seconds_nanos(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp");
    (t.seconds, t.nanos)
}

/// The cases both transports must pass, ending with the JSON view of the same user.
async fn exercise<T>(
    host: &TestHost,
    client: &mut PhoneClient<T>,
    user: &str,
    number: &str,
    e164: &str,
) where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let token = tokens::token(user);
    let set = client.set(Some(&token), number).await.expect("SetMyPhone");
    let details = set.details.expect("details");
    assert_eq!(
        (details.sequence, details.resource_owner.as_str()),
        (2, ORG)
    );
    assert!(details.creation_date.is_some() && details.change_date.is_some());

    let unchanged = client
        .set(Some(&token), number)
        .await
        .expect_err("unchanged");
    assert_eq!(unchanged.code(), Code::FailedPrecondition);
    assert_eq!(unchanged.message(), "Phone not changed (COMMAND-wF94r)");
    assert_eq!(
        detail(&unchanged),
        ErrorDetail {
            id: "COMMAND-wF94r".into(),
            message: "Phone not changed".into()
        }
    );

    let invalid = client
        .set(Some(&token), "not a phone")
        .await
        .expect_err("invalid");
    assert_eq!(
        (invalid.code(), detail(&invalid).id.as_str()),
        (Code::InvalidArgument, "PHONE-so0wa")
    );

    let missing = client.set(None, number).await.expect_err("no token");
    assert_eq!(
        (missing.code(), missing.message()),
        (Code::Unauthenticated, "auth header missing")
    );
    let forged = client
        .set(Some(&tokens::forged(user)), number)
        .await
        .expect_err("forged");
    assert_eq!(
        (forged.code(), detail(&forged).id.as_str()),
        (Code::Unauthenticated, "AUTH-7fs1e")
    );

    // The same data as JSON.
    let get = client.get(Some(&token)).await.expect("GetMyPhone");
    let json = host.get_phone(user).await.body;
    let details = get.details.expect("details");
    assert_eq!(json["details"]["sequence"], details.sequence.to_string());
    assert_eq!(
        from_rfc3339(
            json["details"]["creationDate"]
                .as_str()
                .expect("creationDate")
        ),
        seconds_nanos(&details.creation_date)
    );
    assert_eq!(
        from_rfc3339(json["details"]["changeDate"].as_str().expect("changeDate")),
        seconds_nanos(&details.change_date)
    );
    assert_eq!(json["details"]["resourceOwner"], details.resource_owner);
    let phone = get.phone.expect("phone");
    assert_eq!(
        (phone.phone.as_str(), phone.is_phone_verified),
        (e164, false)
    );
    assert_eq!(json["phone"]["phone"], e164);

    // The lifecycle.
    let code = host.last_code(e164).await;
    let wrong = client
        .verify(Some(&token), "WRONG1")
        .await
        .expect_err("wrong code");
    assert_eq!(
        (wrong.code(), detail(&wrong).id.as_str()),
        (Code::InvalidArgument, "COMMAND-sM0cs")
    );
    assert_eq!(
        client
            .verify(Some(&token), &code)
            .await
            .expect("verify")
            .details
            .expect("details")
            .sequence,
        4
    );
    assert!(
        client
            .get(Some(&token))
            .await
            .expect("get")
            .phone
            .expect("phone")
            .is_phone_verified
    );
    let resend = client
        .resend(Some(&token))
        .await
        .expect_err("already verified");
    assert_eq!(
        (resend.code(), detail(&resend).id.as_str()),
        (Code::FailedPrecondition, "COMMAND-2M9sf")
    );
    assert_eq!(
        client
            .remove(Some(&token))
            .await
            .expect("remove")
            .details
            .expect("details")
            .sequence,
        5
    );
    assert_eq!(
        client
            .get(Some(&token))
            .await
            .expect("get")
            .phone
            .expect("phone"),
        Phone::default()
    );
    let gone = client
        .remove(Some(&token))
        .await
        .expect_err("nothing to remove");
    assert_eq!(
        (gone.code(), detail(&gone).id.as_str()),
        (Code::NotFound, "COMMAND-p6rsc")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_http2() {
    let host = support::start().await;
    let mut client = grpc_client(&host).await;
    exercise(
        &host,
        &mut client,
        "grpc-user",
        "+41 71 000 00 10",
        "+41710000010",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_http1() {
    let host = support::start().await;
    let mut client = grpc_web_client(&host);
    exercise(
        &host,
        &mut client,
        "web-user",
        "+41 71 000 00 11",
        "+41710000011",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented() {
    let host = support::start().await;
    let mut client = grpc_client(&host).await;
    let token = tokens::token("x");
    let status = client
        .call::<Empty, Empty>(
            "/zitadel.auth.v1.AuthService/GetMyEmail",
            Some(&token),
            Empty {},
        )
        .await;
    assert_eq!(status.expect_err("unknown").code(), Code::Unimplemented);
}

/// Sends a raw gRPC-Web body and returns (grpc-status, grpc-message) from its trailer frame.
async fn raw_grpc_web(host: &TestHost, body: Vec<u8>, encoding: Option<&str>) -> (String, String) {
    let mut request = host
        .client
        .post(host.url("/zitadel.auth.v1.AuthService/SetMyPhone"))
        .header("content-type", "application/grpc-web+proto")
        .header(
            "authorization",
            format!("Bearer {}", tokens::token("framer")),
        )
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("grpc-encoding", encoding);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "gRPC answers 200 even for errors");
    let bytes = response.bytes().await.expect("body");
    // Walk the frames: data frames (flag 0), then one trailer frame (flag 0x80).
    let mut rest = &bytes[..];
    let mut trailer = None;
    while let Some((header, tail)) = rest.split_first_chunk::<5>() {
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let (payload, next) = tail.split_at(length.min(tail.len()));
        if header[0] == 0x80 {
            trailer = Some(String::from_utf8_lossy(payload).into_owned());
        }
        rest = next;
    }
    let text = trailer.unwrap_or_else(|| panic!("no trailer frame in {bytes:?}"));
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (field("grpc-status"), field("grpc-message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_clear_statuses_and_change_nothing() {
    let host = support::start().await;
    let message = SetMyPhoneRequest {
        phone: "+41 71 000 00 12".into(),
    }
    .encode_to_vec();
    let framed = |flag: u8, length: u32, payload: &[u8]| {
        let mut body = vec![flag];
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(payload);
        body
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>, &str)> = vec![
        ("truncated length prefix", vec![0, 0, 0], None, "3"),
        ("empty body", vec![], None, "3"),
        (
            "length larger than the body",
            framed(0, message.len() as u32 + 10, &message),
            None,
            "3",
        ),
        (
            "two messages",
            [framed(0, message.len() as u32, &message), framed(0, 0, &[])].concat(),
            None,
            "3",
        ),
        (
            "compressed flag",
            framed(1, message.len() as u32, &message),
            Some("gzip"),
            "12",
        ),
        (
            "garbage protobuf",
            framed(0, 3, &[0x0a, 0x05, 0x41]),
            None,
            "3",
        ),
    ];
    for (name, body, encoding, expected) in cases {
        let (status, message) = raw_grpc_web(&host, body, encoding).await;
        assert_eq!(status, expected, "{name}: {message}");
        assert!(!message.is_empty(), "{name}");
    }
    // Plain gRPC over HTTP/1.1: the status comes as Trailers-Only headers.
    let response = host
        .client
        .post(host.url("/zitadel.auth.v1.AuthService/SetMyPhone"))
        .header("content-type", "application/grpc")
        .body(vec![0, 0])
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["grpc-status"], "3");

    host.running.idle().await;
    assert!(host.user_keys().is_empty(), "nothing stored");
    assert!(host.sms.messages().is_empty(), "nothing sent");
    // The host keeps serving.
    let (status, _) = raw_grpc_web(&host, framed(0, message.len() as u32, &message), None).await;
    assert_eq!(status, "0", "a valid frame is answered");
    assert_eq!(
        host.get_phone("framer").await.body["phone"]["phone"],
        "+41710000012"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_answer_resource_exhausted_on_both_transports() {
    let host = support::start_with_env(support::guarded_env()).await;
    let mut grpc = grpc_client(&host).await;
    let mut web = grpc_web_client(&host);
    let token = tokens::token("guarded");
    grpc.set(Some(&token), "+41 71 000 00 13")
        .await
        .expect("first code");
    let over_grpc = grpc.resend(Some(&token)).await.expect_err("cooldown");
    assert_eq!(
        (over_grpc.code(), detail(&over_grpc).id.as_str()),
        (Code::ResourceExhausted, "SMP-RATE1")
    );
    let over_web = web
        .set(Some(&token), "+41 71 000 00 14")
        .await
        .expect_err("cooldown");
    assert_eq!(
        (over_web.code(), detail(&over_web).id.as_str()),
        (Code::ResourceExhausted, "SMP-RATE1")
    );
    host.running.idle().await;
    assert_eq!(host.sms.messages().len(), 1, "nothing more sent");
}

/// One HTTP/2 frame: 9-byte head (length, type, flags, stream id), then the payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// HPACK "literal header field without indexing, new name", no Huffman (names and values here
/// are shorter than 127 bytes).
fn hpack_literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    for text in [name, value] {
        assert!(text.len() < 127, "{text} needs a multi-byte length");
        block.push(u8::try_from(text.len()).expect("short"));
        block.extend_from_slice(text.as_bytes());
    }
}

/// The frames (type, flags) the server sends on stream 1 for one h2c gRPC request, up to the
/// frame that ends the stream; spoken by hand so that the exact framing shows.
async fn h2_frames_of_one_call(host: &TestHost, path: &str, message: &[u8]) -> Vec<(u8, u8)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const HEADERS: u8 = 0x1;
    const DATA: u8 = 0x0;
    const SETTINGS: u8 = 0x4;
    const RST_STREAM: u8 = 0x3;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    const ACK: u8 = 0x1;

    let mut stream = tokio::net::TcpStream::connect(host.running.addr())
        .await
        .expect("connect");
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        hpack_literal(&mut block, name, value);
    }
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    body.extend_from_slice(message);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(SETTINGS, 0, 0, &[]));
    out.extend(h2_frame(HEADERS, END_HEADERS, 1, &block));
    out.extend(h2_frame(DATA, END_STREAM, 1, &body));
    stream.write_all(&out).await.expect("write");

    let mut seen = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.expect("frame head");
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; length];
            stream
                .read_exact(&mut payload)
                .await
                .expect("frame payload");
            if kind == SETTINGS && flags & ACK == 0 {
                stream
                    .write_all(&h2_frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .expect("settings ack");
            }
            if id != 1 {
                continue;
            }
            seen.push((kind, flags));
            if kind == RST_STREAM || flags & END_STREAM != 0 {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("stream 1 did not end; frames so far: {seen:?}"));
    seen
}

/// An error answer is Trailers-Only: one HEADERS frame that ends the stream. Clients such as
/// grpc-js read a status from the first HEADERS frame only when it carries END_STREAM; headers
/// followed by an empty DATA frame ending the stream reach them as "Call ended without gRPC
/// status". A success is HEADERS, DATA, then trailers ending the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_is_one_headers_frame_ending_the_stream() {
    let host = support::start().await;
    // Not protobuf: code 3, answered before the token is looked at.
    let frames = h2_frames_of_one_call(
        &host,
        "/zitadel.auth.v1.AuthService/SetMyPhone",
        &[0xff, 0xff],
    )
    .await;
    assert_eq!(
        frames,
        [(0x1, 0x1 | 0x4)],
        "HEADERS with END_STREAM | END_HEADERS"
    );
    // Unknown method: code 12, the same way.
    let frames = h2_frames_of_one_call(&host, "/zitadel.auth.v1.AuthService/Nope", &[]).await;
    assert_eq!(
        frames,
        [(0x1, 0x1 | 0x4)],
        "HEADERS with END_STREAM | END_HEADERS"
    );
}

//! A tiny HTTP server on 127.0.0.1 standing in for an SMS provider (webhook receiver, Twilio):
//! it records every request and answers with a configurable status, or hangs, or answers each
//! request as a test's router says (Twilio Verify's two resources).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    Answer(u16),
    /// Never answer (the provider hangs).
    Hang,
}

/// Answers a request with a status and a body.
pub type Router = Arc<dyn Fn(&Captured) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
pub struct FakeServer {
    pub url: String,
    captured: Arc<Mutex<Vec<Captured>>>,
    behaviour: Arc<Mutex<(Behaviour, String)>>,
    router: Arc<Mutex<Option<Router>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeServer {
    /// Starts answering `status` with `body` to every request.
    pub async fn start(status: u16, body: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new((Behaviour::Answer(status), body.to_string())));
        let router: Arc<Mutex<Option<Router>>> = Arc::default();
        let (seen, answer, route) = (captured.clone(), behaviour.clone(), router.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, answer, route) = (seen.clone(), answer.clone(), route.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let (seen, answer, route) = (seen.clone(), answer.clone(), route.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let captured = Captured {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let routed = route
                                .lock()
                                .expect("lock")
                                .clone()
                                .map(|router| router(&captured));
                            seen.lock().expect("lock").push(captured);
                            let (behaviour, text) = answer.lock().expect("lock").clone();
                            let (status, text) = match (behaviour, routed) {
                                (_, Some(routed)) => routed,
                                (Behaviour::Answer(status), None) => (status, text),
                                (Behaviour::Hang, None) => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    (500, text)
                                }
                            };
                            let response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                                .expect("response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer {
            url,
            captured,
            behaviour,
            router,
            task: Arc::new(task),
        }
    }

    pub fn set(&self, behaviour: Behaviour, body: &str) {
        *self.behaviour.lock().expect("lock") = (behaviour, body.to_string());
    }

    /// Answers every later request as `router` says (instead of the fixed answer).
    pub fn route(&self, router: impl Fn(&Captured) -> (u16, String) + Send + Sync + 'static) {
        *self.router.lock().expect("lock") = Some(Arc::new(router));
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().expect("lock").clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

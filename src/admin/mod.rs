//! The admin listener (`[admin] listen_address`): one small HTTP/1.1 server (hyper) for the
//! people who run the broker.
//!
//! - `GET /health`: 200 while the process runs.
//! - `GET /ready`: 200 once the listeners accept and storage is loaded, 503 while shutting down.
//! - `GET /metrics`: the Prometheus text exposition (`prometheus.rs`, names in
//!   `docs/metrics.md`).
//! - `/api/v1/*`, with `Authorization: Bearer <token>` (`admin.token` or `admin.token_file`;
//!   without one configured, the API answers 403): clients, one client, disconnecting a client
//!   (DELETE, 5.0 clients get DISCONNECT 0x98; `?session=true` also discards its session),
//!   subscriptions, retained messages (GET by filter, DELETE by topic), stats.
//!
//! With `admin.tls = true` it speaks HTTPS with the `[tls]` certificate and key (reloaded by
//! SIGHUP like the MQTT listeners'). It reads what the registry, the router and the counters
//! expose and never holds a lock across an `.await`.

mod api;
pub(crate) mod prometheus;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AdminConfig;
use crate::context::Context;

/// A bound admin listener.
#[derive(Debug)]
pub(crate) struct Admin {
    listener: TcpListener,
    token: Option<String>,
    /// Whether it speaks HTTPS with the `[tls]` files.
    tls: bool,
}

/// A response body.
type Body = Full<Bytes>;

/// Longest a TLS handshake on the admin listener may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Admin {
    /// Binds `[admin] listen_address`, if set; reads `token_file` if that is how the token is
    /// given.
    pub(crate) async fn bind(config: &AdminConfig) -> io::Result<Option<Admin>> {
        let Some(address) = config.listen_address.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let token = match (&config.token, &config.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io::Error::other(format!("admin.token_file {path}: cannot read it: {e}")))?;
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    return Err(io::Error::other(format!("admin.token_file {path}: it holds no token")));
                }
                Some(token)
            }
            (None, None) => None,
        };
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("admin.listen_address {address}: {e}")))?;
        Ok(Some(Admin { listener, token, tls: config.tls }))
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`; each connection in a task of `tracker`.
    pub(crate) async fn run(self, context: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
        if self.token.is_none() {
            tracing::warn!(
                "[admin] has no token: /api/v1/* answers 403 until admin.token or admin.token_file is set"
            );
        }
        let token: Arc<Option<String>> = Arc::new(self.token);
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (context, token, shutdown) = (Arc::clone(&context), Arc::clone(&token), shutdown.clone());
            let tls = if self.tls { context.tls.clone() } else { None };
            tracker.spawn(async move {
                let service = service_fn(move |request| {
                    let (context, token) = (Arc::clone(&context), Arc::clone(&token));
                    async move { Ok::<_, Infallible>(route(&context, token.as_deref(), request).await) }
                });
                let http = http1::Builder::new();
                let served = async {
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(tls) => {
                            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
                            if let Ok(Ok((stream, _))) = handshake {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = served => {}
                }
            });
        }
    }
}

/// A response with `status` and a body of `content_type`.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", format!("{value}\n"))
}

/// An error as JSON: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

async fn route(context: &Arc<Context>, token: Option<&str>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/health") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/ready") => {
            if context.is_ready() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", prometheus::render(context))
        }
        (_, api) if api.starts_with("/api/v1/") => match refusal(token, &request) {
            Some(refusal) => refusal,
            None => api::handle(context, &request).await,
        },
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// The refusal of a request that does not carry the configured bearer token (compared in
/// constant time); `None` when it does.
fn refusal(token: Option<&str>, request: &Request<Incoming>) -> Option<Response<Body>> {
    let Some(token) = token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "no admin token is configured (admin.token or admin.token_file)",
        ));
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return None;
    }
    let mut refusal = error(StatusCode::UNAUTHORIZED, "a valid Authorization: Bearer token is required");
    refusal.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
    Some(refusal)
}

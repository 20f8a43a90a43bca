//! The local HTTP route: every request goes to [`Ingest::handle`], exactly as in the Lambda.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::ingest::{Ingest, IngestRequest, MAX_BODY_BYTES};

/// Bodies beyond this are not read at all; those up to it reach ingest, which returns 413 above
/// [`MAX_BODY_BYTES`] with the prefix in its log line.
const READ_LIMIT: usize = 4 * MAX_BODY_BYTES;

/// Builds the router. Tests call it with `oneshot`; `serve` binds it to a socket. Every path
/// but `GET /healthz` (a liveness check for tunnels and process supervisors) goes to ingest.
pub fn app(ingest: Ingest) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .fallback(webhook)
        .with_state(ingest)
}

async fn health() -> &'static str {
    "ok"
}

async fn webhook(State(ingest): State<Ingest>, request: Request) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let (parts, body) = request.into_parts();

    let Ok(body) = to_bytes(body, READ_LIMIT).await else {
        tracing::warn!(
            status = 413,
            source,
            path = parts.uri.path(),
            "webhook body over the read limit rejected"
        );
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body exceeds the 1 MiB limit",
        )
            .into_response();
    };

    let answer = ingest
        .handle(IngestRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
            source: &source,
        })
        .await;

    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

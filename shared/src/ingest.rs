//! The webhook receiver: one function from an HTTP request to an HTTP response, used by the
//! local server of `autonumber serve` and by the ingest Lambda.
//!
//! [`Ingest::handle`] checks, in this order, and returns:
//! 1. method other than POST: 405;
//! 2. no route (`/webhooks/{PREFIX}` or `?prefix=`) or an invalid prefix: 404;
//! 3. body over [`MAX_BODY_BYTES`]: 413, before anything is hashed;
//! 4. a prefix with no stored secret and no pending registration: 404;
//! 5. a handshake (`X-Hook-Secret`): 200 echoing the header when a registration of the prefix is
//!    pending, else 403 with the stored secrets untouched;
//! 6. missing or wrong signature: 401;
//! 7. invalid JSON or no `events` array: 400;
//! 8. events selected and enqueued: 200, or 503 when the queue did not accept them all, so
//!    Asana redelivers. Nothing here waits for Asana.
//!
//! A store failure returns 503 too. Each rejection logs a warning (info for 405 and routing 404s)
//! with the prefix and the source address, never a secret or signature.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use tracing::{debug, info, warn};

use crate::error::IngestError;
use crate::event::{parse_delivery, select};
use crate::queue::Queue;
use crate::route::{parse_route, Route};
use crate::signature::{signature_header, verify};
use crate::store::Store;

/// Largest accepted body: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const HOOK_SECRET_HEADER: &str = "x-hook-secret";

/// An HTTP request as the route and the Lambda see it.
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The client address, for logs.
    pub source: &'a str,
}

/// The response to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl IngestResponse {
    fn json(status: StatusCode, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>) -> Self {
        Self { store, queue }
    }

    /// Handles one webhook request. Never panics on request data.
    pub async fn handle(&self, request: IngestRequest<'_>) -> IngestResponse {
        match self.accept(request).await {
            Ok(response) => response,
            Err(error) => {
                error.log(request.source);
                IngestResponse::json(
                    error.status(),
                    serde_json::json!({ "error": error.public_message() }),
                )
            }
        }
    }

    async fn accept(&self, request: IngestRequest<'_>) -> Result<IngestResponse, IngestError> {
        if request.method != Method::POST {
            return Err(IngestError::MethodNotAllowed(request.method.to_string()));
        }
        let route = parse_route(request.path, request.query)?;
        if request.body.len() > MAX_BODY_BYTES {
            return Err(IngestError::TooLarge {
                prefix: route.prefix,
                bytes: request.body.len(),
            });
        }

        let secrets = self.store.secrets(&route.prefix).await?;
        if secrets.is_empty() && !self.store.registration_pending(&route.prefix).await? {
            return Err(IngestError::UnknownPrefix(route.prefix));
        }
        if let Some(secret) = request.headers.get(HOOK_SECRET_HEADER) {
            let secret = secret.to_str().unwrap_or_default().to_string();
            return self.handshake(&route, secret, request.source).await;
        }

        let signature = signature_header(request.headers);
        verify(
            signature,
            request.body,
            secrets.iter().map(|s| s.secret.as_str()),
        )
        .map_err(|reason| IngestError::Signature {
            prefix: route.prefix.clone(),
            reason,
        })?;

        self.enqueue(&route, request.body).await
    }

    async fn handshake(
        &self,
        route: &Route,
        secret: String,
        source: &str,
    ) -> Result<IngestResponse, IngestError> {
        if secret.is_empty()
            || !self
                .store
                .complete_registration(&route.prefix, &secret)
                .await?
        {
            return Err(IngestError::UnexpectedHandshake(route.prefix.clone()));
        }
        info!(prefix = %route.prefix, source, "webhook handshake accepted; secret stored");
        let mut response = IngestResponse::json(StatusCode::OK, serde_json::json!({}));
        response.headers.push(("X-Hook-Secret".into(), secret));
        Ok(response)
    }

    async fn enqueue(&self, route: &Route, body: &[u8]) -> Result<IngestResponse, IngestError> {
        let delivery = parse_delivery(body).map_err(|error| IngestError::InvalidBody {
            prefix: route.prefix.clone(),
            reason: error.to_string(),
        })?;
        if delivery.malformed > 0 {
            warn!(
                prefix = %route.prefix,
                malformed = delivery.malformed,
                "events without the expected fields were left out of the delivery"
            );
        }
        let selection = select(route, &delivery);
        for (task_gid, reason) in &selection.dropped {
            debug!(prefix = %route.prefix, task_gid, ?reason, "event dropped");
        }

        if !selection.jobs.is_empty() {
            self.queue
                .enqueue(&selection.jobs)
                .await
                .map_err(|error| IngestError::Queue {
                    prefix: route.prefix.clone(),
                    error,
                })?;
        }
        info!(
            prefix = %route.prefix,
            events = delivery.events.len(),
            enqueued = selection.jobs.len(),
            dropped = selection.dropped.len(),
            task_gids = ?selection.jobs.iter().map(|job| job.task_gid.as_str()).collect::<Vec<_>>(),
            "delivery accepted"
        );
        Ok(IngestResponse::json(
            StatusCode::OK,
            serde_json::json!({ "enqueued": selection.jobs.len(), "dropped": selection.dropped.len() }),
        ))
    }
}

/// Logs a rejection once, at the level its cause deserves.
impl IngestError {
    fn log(&self, source: &str) {
        let status = self.status().as_u16();
        match self {
            // Scanners hit any public URL, so these stay below warn.
            IngestError::MethodNotAllowed(_) | IngestError::Route(_) => {
                info!(status, source, error = %self, "webhook request rejected")
            }
            IngestError::Store(_) | IngestError::Queue { .. } => {
                tracing::error!(status, source, prefix = self.prefix(), error = %self, "webhook delivery not accepted; Asana will redeliver")
            }
            _ => {
                warn!(status, source, prefix = self.prefix(), error = %self, "webhook request rejected")
            }
        }
    }
}

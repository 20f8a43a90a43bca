//! Errors of the webhook receiver and their one mapping to HTTP status codes.

use http::StatusCode;

use crate::queue::QueueError;
use crate::route::RouteError;
use crate::signature::SignatureError;
use crate::store::StoreError;

/// Reason a webhook request was not accepted. Messages never contain a secret or a signature.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("method {0} not allowed: webhooks are delivered with POST")]
    MethodNotAllowed(String),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("body of {bytes} bytes exceeds the 1 MiB limit")]
    TooLarge { prefix: String, bytes: usize },
    #[error("no webhook registration is pending for prefix {0}: run `autonumber webhooks create` to register one")]
    UnexpectedHandshake(String),
    #[error("unknown prefix {0}: no webhook is registered for it")]
    UnknownPrefix(String),
    #[error("signature rejected: {reason}")]
    Signature {
        prefix: String,
        reason: SignatureError,
    },
    #[error("invalid body: {reason}")]
    InvalidBody { prefix: String, reason: String },
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("events not enqueued: {error}")]
    Queue { prefix: String, error: QueueError },
}

impl IngestError {
    /// Maps the error to its HTTP status. No other code maps errors to statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::Route(_) | IngestError::UnknownPrefix(_) => StatusCode::NOT_FOUND,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::UnexpectedHandshake(_) => StatusCode::FORBIDDEN,
            IngestError::Signature { .. } => StatusCode::UNAUTHORIZED,
            IngestError::InvalidBody { .. } => StatusCode::BAD_REQUEST,
            IngestError::Store(_) | IngestError::Queue { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the message for the response body. Store and queue failures stay in the log:
    /// their text names internal services, which a caller on the internet has no use for.
    pub fn public_message(&self) -> String {
        match self {
            IngestError::Store(_) | IngestError::Queue { .. } => {
                "temporarily unavailable; the delivery was not accepted, retry later".to_string()
            }
            other => other.to_string(),
        }
    }

    /// Returns the prefix the request was routed to, when routing got that far.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            IngestError::TooLarge { prefix, .. }
            | IngestError::Signature { prefix, .. }
            | IngestError::InvalidBody { prefix, .. }
            | IngestError::Queue { prefix, .. } => Some(prefix),
            IngestError::UnexpectedHandshake(prefix) | IngestError::UnknownPrefix(prefix) => {
                Some(prefix)
            }
            _ => None,
        }
    }
}

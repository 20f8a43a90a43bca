//! Webhook registration with Asana's handshake, and signed event delivery.
//!
//! `POST /webhooks` sends the handshake while the create call waits: a POST to the target with
//! an empty body and an `X-Hook-Secret` header of 64 random hex digits. The target must respond
//! with 200 or 204 and echo that header, otherwise the create call gets a 400.
//!
//! Each webhook has one delivery task that sends its queued events in order, one POST per
//! queued batch. The body is `{"events":[...]}` as compact JSON, and the `X-Hook-Signature`
//! header is the lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the secret.
//! Every attempt is recorded, and none is retried.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use hmac::{Hmac, Mac};
use http_body::{Frame, SizeHint};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc::{self, UnboundedSender};

use super::api::{check_gid, ApiError};
use super::render;
use super::state::{Emitted, Event, Shared, State as FakeState, Webhook};
use super::Delivery;

/// Header of the handshake request, echoed by the target.
pub const HOOK_SECRET_HEADER: &str = "X-Hook-Secret";
/// Header of each delivery, holding the hex HMAC-SHA256 of the body.
pub const HOOK_SIGNATURE_HEADER: &str = "X-Hook-Signature";

struct CreateRequest {
    resource: String,
    target: String,
    filters: Vec<Value>,
}

/// Handles `POST /webhooks`: validates the request, performs the handshake and stores the
/// webhook. The 201 body carries the secret as `X-Hook-Secret`, or the override a test set.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = parse_create(&body)?;
    check_registration(&shared.lock(), &request)?;

    let secret = handshake(&shared.http, &request.target).await?;

    let mut state = shared.lock();
    // Another create call for the same pair may have finished during the handshake.
    check_registration(&state, &request)?;
    let gid = state.new_gid();
    let created_at = state.timestamp();
    let queue = spawn_delivery(&shared, &gid, &request.target, &secret);
    let reported_secret = state
        .secret_override
        .clone()
        .unwrap_or_else(|| secret.clone());
    let webhook = Webhook {
        gid,
        resource_gid: request.resource,
        target: request.target,
        secret,
        filters: request.filters,
        // The handshake is the first successful contact with the target.
        last_success_at: Some(created_at.clone()),
        created_at,
        last_failure_at: None,
        last_failure_content: None,
        queue,
    };
    let data = render::webhook(&state, &webhook);
    state.webhooks.push(webhook);

    let body = json!({"data": data, "X-Hook-Secret": reported_secret});
    Ok((StatusCode::CREATED, Json(body)))
}

fn parse_create(body: &[u8]) -> Result<CreateRequest, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("Invalid JSON in request body: {error}")))?;
    let Some(data) = body.get("data") else {
        return Err(ApiError::bad_request("data: Missing input"));
    };
    let text = |field: &str| match data.get(field).and_then(Value::as_str) {
        Some(value) => Ok(value.to_owned()),
        None => Err(ApiError::bad_request(format!("{field}: Missing input"))),
    };
    let resource = text("resource")?;
    let target = text("target")?;
    check_gid("resource", &resource)?;

    // NOTE: Asana requires https and rejects hosts such as localhost (403). The fake accepts
    // any http or https URL, because the receivers in tests listen on 127.0.0.1.
    let scheme = reqwest::Url::parse(&target).map(|url| url.scheme().to_owned());
    if !matches!(scheme.as_deref(), Ok("http" | "https")) {
        return Err(ApiError::bad_request(format!(
            "target: Not a valid URL: {target}"
        )));
    }

    let filters = match data.get("filters") {
        None => Vec::new(),
        Some(Value::Array(filters)) => filters.clone(),
        Some(_) => return Err(ApiError::bad_request("filters: Not an array")),
    };
    filters.iter().try_for_each(check_filter)?;
    Ok(CreateRequest {
        resource,
        target,
        filters,
    })
}

/// Applies Asana's rule that `fields` is valid only in a filter with `action: "changed"`.
fn check_filter(filter: &Value) -> Result<(), ApiError> {
    if !filter.is_object() {
        return Err(ApiError::bad_request(format!(
            "filters: Not an object: {filter}"
        )));
    }
    let has_fields = filter.get("fields").is_some();
    let action = filter.get("action").and_then(Value::as_str);
    if has_fields && action != Some("changed") {
        let message = "filters: fields can only be used with action \"changed\"";
        return Err(ApiError::bad_request(message));
    }
    Ok(())
}

fn check_registration(state: &FakeState, request: &CreateRequest) -> Result<(), ApiError> {
    if state.project(&request.resource).is_none() {
        return Err(ApiError::not_found("resource", &request.resource));
    }
    let duplicate = state.webhooks.iter().any(|webhook| {
        webhook.resource_gid == request.resource && webhook.target == request.target
    });
    if duplicate {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Duplicated webhook"));
    }
    Ok(())
}

/// Sends the handshake to `target` and returns the secret once the target echoed it.
async fn handshake(http: &reqwest::Client, target: &str) -> Result<String, ApiError> {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let failed = |detail: &str| {
        let message =
            format!("Could not complete activation handshake with target URL {target}: {detail}");
        ApiError::bad_request(message)
    };

    let response = http
        .post(target)
        .header(HOOK_SECRET_HEADER, &secret)
        .body(Vec::new())
        .send()
        .await
        .map_err(|error| failed(&error.to_string()))?;
    let status = response.status();
    if status != StatusCode::OK && status != StatusCode::NO_CONTENT {
        return Err(failed(&format!(
            "the target responded with {status}, expected 200 or 204"
        )));
    }
    let echoed = response.headers().get(HOOK_SECRET_HEADER);
    if echoed.map(|value| value.as_bytes()) != Some(secret.as_bytes()) {
        return Err(failed("the target did not echo the X-Hook-Secret header"));
    }
    Ok(secret)
}

/// Where and how one webhook's events are sent.
struct Destination {
    webhook_gid: String,
    url: String,
    secret: String,
}

#[derive(Serialize)]
struct EventsBody {
    events: Vec<Event>,
}

/// Starts the delivery task of a webhook and returns its queue. The task ends once the webhook
/// is deleted and the queue is drained, or when the fake is dropped.
fn spawn_delivery(
    shared: &Arc<Shared>,
    webhook_gid: &str,
    url: &str,
    secret: &str,
) -> UnboundedSender<Vec<Event>> {
    let (queue, mut batches) = mpsc::unbounded_channel::<Vec<Event>>();
    let destination = Destination {
        webhook_gid: webhook_gid.to_owned(),
        url: url.to_owned(),
        secret: secret.to_owned(),
    };
    let task_shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        while let Some(events) = batches.recv().await {
            deliver(&task_shared, &destination, events).await;
        }
    });
    let mut background = shared.background.lock().unwrap_or_else(|e| e.into_inner());
    background.push(task);
    queue
}

/// Sends one signed POST and records its outcome in the delivery log and on the webhook.
async fn deliver(shared: &Shared, destination: &Destination, events: Vec<Event>) {
    let body = serde_json::to_vec(&EventsBody { events }).expect("events serialise to JSON");
    let signature = sign(&destination.secret, &body);
    let sent_at = Instant::now();

    let result = shared
        .http
        .post(&destination.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(HOOK_SIGNATURE_HEADER, &signature)
        .body(body.clone())
        .send()
        .await;
    let (status, error) = match result {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(error) => (None, Some(error.to_string())),
    };
    if status.is_none_or(|status| !(200..300).contains(&status)) {
        tracing::debug!(webhook_gid = %destination.webhook_gid, ?status, ?error, "delivery failed");
    }

    let mut state = shared.lock();
    let now = state.timestamp();
    if let Some(webhook) = state
        .webhooks
        .iter_mut()
        .find(|w| w.gid == destination.webhook_gid)
    {
        match (status, &error) {
            (Some(200..=299), _) => webhook.last_success_at = Some(now),
            _ => {
                webhook.last_failure_at = Some(now);
                let content = error.clone().unwrap_or_else(|| format!("HTTP {status:?}"));
                webhook.last_failure_content = Some(content);
            }
        }
    }
    state.deliveries.push(Delivery {
        webhook_gid: destination.webhook_gid.clone(),
        target: destination.url.clone(),
        body,
        signature,
        status,
        error,
        sent_at,
    });
}

/// Returns the lowercase hex HMAC-SHA256 of `body` keyed with the bytes of `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Dispatches `emitted` once hyper has taken the whole response body, so a client sees the
/// response to its own request before the events it caused, as with Asana.
pub(crate) fn dispatch_after_response(
    response: Response,
    shared: Arc<Shared>,
    emitted: Vec<Emitted>,
) -> Response {
    if emitted.is_empty() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = DispatchOnDrop {
        body,
        pending: Some((shared, emitted)),
    };
    Response::from_parts(parts, Body::new(body))
}

/// A response body that dispatches events when hyper drops it, which happens once the body has
/// been written or the connection is gone.
struct DispatchOnDrop {
    body: Body,
    pending: Option<(Arc<Shared>, Vec<Emitted>)>,
}

impl HttpBody for DispatchOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for DispatchOnDrop {
    fn drop(&mut self) {
        if let Some((shared, emitted)) = self.pending.take() {
            shared.lock().dispatch(emitted);
        }
    }
}

//! A small Asana REST client: the calls the pipeline makes, typed errors and a client-side rate
//! limit.
//!
//! Errors are sorted by what the caller does next: [`AsanaError::RateLimited`] (wait the
//! `Retry-After` seconds), [`AsanaError::Transient`] (5xx, timeouts, connection errors: back off
//! and retry), [`AsanaError::NotFound`] and [`AsanaError::Permanent`] (400, 401, 402, 403 and
//! other 4xx: do not retry). Every request passes through a [`RateLimiter`] that keeps the
//! process under Asana's per-token budget and its concurrency caps.

mod limiter;
mod types;

pub use limiter::{RateLimiter, RateLimits};
pub use types::*;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

pub const DEFAULT_API_URL: &str = "https://app.asana.com/api/1.0";

/// The wait used when a 429 carries no readable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The fields the worker needs from a task.
pub const TASK_FIELDS: &str = "name,parent,memberships.project,created_at,resource_subtype";

/// The webhook fields the operator commands show. Asana leaves out all but `active`,
/// `resource` and `target` unless they are asked for.
pub const WEBHOOK_FIELDS: &str = "active,resource,resource.name,target,created_at,\
    last_success_at,last_failure_at,last_failure_content,delivery_retry_count,\
    failure_deletion_timestamp";

#[derive(Debug, Clone, thiserror::Error)]
pub enum AsanaError {
    #[error("Asana rate limit reached; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("Asana request failed transiently: {0}")]
    Transient(String),
    #[error("Asana resource not found")]
    NotFound,
    #[error("Asana rejected the request (HTTP {status}): {message}")]
    Permanent { status: u16, message: String },
}

impl AsanaError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AsanaError::RateLimited { .. } | AsanaError::Transient(_)
        )
    }
}

#[derive(Clone)]
pub struct AsanaClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
    limiter: RateLimiter,
}

impl std::fmt::Debug for AsanaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsanaClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl AsanaClient {
    pub fn new(http: reqwest::Client, base_url: &str, token: &str, limits: RateLimits) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            limiter: RateLimiter::new(limits),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /tasks/{gid}` with the fields the worker needs.
    pub async fn get_task(&self, gid: &str) -> Result<Task, AsanaError> {
        let request = self
            .request(Method::GET, &format!("/tasks/{gid}"))
            .query(&[("opt_fields", TASK_FIELDS)]);
        self.send_data(request, false).await
    }

    /// `PUT /tasks/{gid}` changing only the name.
    pub async fn update_task_name(&self, gid: &str, name: &str) -> Result<Task, AsanaError> {
        let request = self
            .request(Method::PUT, &format!("/tasks/{gid}"))
            .query(&[("opt_fields", "name")])
            .json(&json!({ "data": { "name": name } }));
        self.send_data(request, true).await
    }

    /// `GET /users/me`.
    pub async fn get_me(&self) -> Result<User, AsanaError> {
        self.send_data(self.request(Method::GET, "/users/me"), false)
            .await
    }

    /// `GET /projects/{gid}/tasks`: one page of top-level tasks, oldest first as Asana lists them.
    pub async fn get_project_tasks(
        &self,
        project_gid: &str,
        limit: u32,
        offset: Option<&str>,
    ) -> Result<Page<Task>, AsanaError> {
        let mut request = self
            .request(Method::GET, &format!("/projects/{project_gid}/tasks"))
            .query(&[
                ("limit", limit.to_string().as_str()),
                ("opt_fields", TASK_FIELDS),
            ]);
        if let Some(offset) = offset {
            request = request.query(&[("offset", offset)]);
        }
        let response = self.send(request, false).await?;
        parse_json(response).await
    }

    /// `POST /webhooks`. Returns the webhook and the `X-Hook-Secret` of the 201 body.
    pub async fn create_webhook(
        &self,
        resource: &str,
        target: &str,
        filters: &serde_json::Value,
    ) -> Result<CreatedWebhook, AsanaError> {
        let body =
            json!({ "data": { "resource": resource, "target": target, "filters": filters } });
        let request = self.request(Method::POST, "/webhooks").json(&body);
        let response = self.send(request, true).await?;
        parse_json(response).await
    }

    /// `GET /webhooks?workspace=` (optionally for one resource), following every page.
    pub async fn get_webhooks(
        &self,
        workspace: &str,
        resource: Option<&str>,
    ) -> Result<Vec<Webhook>, AsanaError> {
        let mut webhooks = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut request = self.request(Method::GET, "/webhooks").query(&[
                ("workspace", workspace),
                ("limit", "100"),
                ("opt_fields", WEBHOOK_FIELDS),
            ]);
            if let Some(resource) = resource {
                request = request.query(&[("resource", resource)]);
            }
            if let Some(offset) = &offset {
                request = request.query(&[("offset", offset.as_str())]);
            }
            let page: Page<Webhook> = parse_json(self.send(request, false).await?).await?;
            webhooks.extend(page.data);
            match page.next_page {
                Some(next) => offset = Some(next.offset),
                None => return Ok(webhooks),
            }
        }
    }

    /// `GET /webhooks/{gid}`.
    pub async fn get_webhook(&self, gid: &str) -> Result<Webhook, AsanaError> {
        let request = self
            .request(Method::GET, &format!("/webhooks/{gid}"))
            .query(&[("opt_fields", WEBHOOK_FIELDS)]);
        self.send_data(request, false).await
    }

    /// `GET /projects/{gid}` with the project's name and workspace.
    pub async fn get_project(&self, gid: &str) -> Result<Project, AsanaError> {
        let request = self
            .request(Method::GET, &format!("/projects/{gid}"))
            .query(&[("opt_fields", "name,workspace")]);
        self.send_data(request, false).await
    }

    /// `DELETE /webhooks/{gid}`.
    pub async fn delete_webhook(&self, gid: &str) -> Result<(), AsanaError> {
        let request = self.request(Method::DELETE, &format!("/webhooks/{gid}"));
        self.send(request, true).await.map(drop)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
    }

    async fn send_data<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        write: bool,
    ) -> Result<T, AsanaError> {
        let response = self.send(request, write).await?;
        let envelope: Data<T> = parse_json(response).await?;
        Ok(envelope.data)
    }

    /// Sends one request under the rate limit and sorts failures into [`AsanaError`].
    async fn send(&self, request: RequestBuilder, write: bool) -> Result<Response, AsanaError> {
        let _permit = self.limiter.acquire(write).await;
        let response = request.send().await.map_err(|error| {
            AsanaError::Transient(format!("request to Asana failed: {}", without_url(&error)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }

        let retry_after = retry_after(&response);
        let message = error_message(response).await;
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => AsanaError::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            StatusCode::NOT_FOUND => AsanaError::NotFound,
            status if status.is_server_error() => {
                AsanaError::Transient(format!("HTTP {}: {message}", status.as_u16()))
            }
            status => AsanaError::Permanent {
                status: status.as_u16(),
                message,
            },
        })
    }
}

/// Reads `Retry-After` as whole seconds.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Returns the first `errors[].message` of an Asana error body, or the status text.
async fn error_message(response: Response) -> String {
    let status = response.status();
    let body: Option<ErrorBody> = response.json().await.ok();
    body.and_then(|body| body.errors.into_iter().next())
        .map(|error| error.message)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unknown error")
                .to_string()
        })
}

async fn parse_json<T: DeserializeOwned>(response: Response) -> Result<T, AsanaError> {
    let status = response.status().as_u16();
    // Reading the body can fail in transit (timeout, reset); only a body that arrived and is
    // not the expected JSON is permanent.
    let body = response.bytes().await.map_err(|error| {
        AsanaError::Transient(format!(
            "reading the response failed: {}",
            without_url(&error)
        ))
    })?;
    serde_json::from_slice(&body).map_err(|error| AsanaError::Permanent {
        status,
        message: format!("unexpected response body: {error}"),
    })
}

/// Describes a reqwest error without its URL, whose query could carry ids of no use in logs.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_decode() {
        "invalid body"
    } else {
        "request error"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

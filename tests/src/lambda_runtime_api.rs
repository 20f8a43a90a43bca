//! A small emulator of the Lambda Runtime API, enough to run a function binary built with
//! `lambda_runtime` outside Lambda.
//!
//! The function polls `GET /2018-06-01/runtime/invocation/next`, which waits until
//! [`RuntimeApi::invoke`] queues an event and then returns it with the
//! `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` and
//! `Lambda-Runtime-Invoked-Function-Arn` headers. The function responds with
//! `POST .../invocation/{id}/response` or `POST .../invocation/{id}/error`, which completes the
//! `invoke` call. `POST /2018-06-01/runtime/init/error` is recorded for
//! [`RuntimeApi::init_errors`]. Start the binary with `AWS_LAMBDA_RUNTIME_API` set to
//! [`RuntimeApi::address`] and the variables of [`function_env`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How the function finished an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationResult {
    /// The body posted to `.../response`.
    Response(Value),
    /// The body posted to `.../error`.
    Error(Value),
}

/// Returns the variables that `lambda_runtime` reads at start, besides `AWS_LAMBDA_RUNTIME_API`.
pub fn function_env(function_name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
    ]
}

struct Pending {
    request_id: String,
    event: Value,
    deadline_ms: u64,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<InvocationResult>>>,
    init_errors: Mutex<Vec<Value>>,
    sequence: Mutex<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The emulator, on a free port of 127.0.0.1. It stops when dropped.
pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the Runtime API emulator to 127.0.0.1")?;
        let address = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(post_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(post_error),
            )
            .route("/2018-06-01/runtime/init/error", post(post_init_error))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "Runtime API emulator failed");
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `127.0.0.1:PORT`, the form `AWS_LAMBDA_RUNTIME_API` takes.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Queues `event` with a deadline `run_time` from now and waits up to `timeout` for the
    /// function's response.
    pub async fn invoke(
        &self,
        event: Value,
        run_time: Duration,
        timeout: Duration,
    ) -> anyhow::Result<InvocationResult> {
        let request_id = {
            let mut sequence = lock(&self.shared.sequence);
            *sequence += 1;
            format!("request-{}", *sequence)
        };
        let deadline = SystemTime::now() + run_time;
        let deadline_ms = deadline.duration_since(UNIX_EPOCH)?.as_millis() as u64;

        let (done, result) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), done);
        lock(&self.shared.queue).push_back(Pending {
            request_id: request_id.clone(),
            event,
            deadline_ms,
        });
        self.shared.queued.notify_one();

        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => anyhow::bail!("the emulator dropped invocation {request_id}"),
            Err(_) => anyhow::bail!("no response to invocation {request_id} within {timeout:?}"),
        }
    }

    /// Bodies posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<Value> {
        lock(&self.shared.init_errors).clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Returns the next queued event, waiting for one if none is queued.
async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    let pending = loop {
        let queued = shared.queued.notified();
        if let Some(pending) = lock(&shared.queue).pop_front() {
            break pending;
        }
        queued.await;
    };

    let mut headers = HeaderMap::new();
    let values = [
        ("lambda-runtime-aws-request-id", pending.request_id),
        (
            "lambda-runtime-deadline-ms",
            pending.deadline_ms.to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:test".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in values {
        match HeaderValue::from_str(&value) {
            Ok(value) => headers.insert(name, value),
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    (headers, pending.event.to_string()).into_response()
}

async fn post_response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    finish(&shared, &id, InvocationResult::Response(parse(&body)))
}

async fn post_error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    finish(&shared, &id, InvocationResult::Error(parse(&body)))
}

async fn post_init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    lock(&shared.init_errors).push(parse(&body));
    StatusCode::ACCEPTED
}

fn finish(shared: &Shared, id: &str, result: InvocationResult) -> StatusCode {
    match lock(&shared.waiting).remove(id) {
        Some(done) => {
            // An error means the test stopped waiting, which needs no response.
            let _ = done.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

/// Parses a body as JSON, keeping a body that is not JSON as a string.
fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}

//! A stateful, in-process fake of the Asana REST API.
//!
//! [`AsanaFake`] serves a subset of Asana's API at the root of `http://127.0.0.1:PORT`, with
//! paths such as `/tasks/{gid}` and no `/api/1.0` prefix, so a client under test takes
//! [`AsanaFake::url`] as its base URL:
//!
//! - `GET /tasks/{gid}` and `PUT /tasks/{gid}` (only `name` can change),
//! - `GET /projects/{gid}` (name and workspace),
//! - `GET /projects/{gid}/tasks` with `limit`/`offset` pagination, top-level tasks only,
//! - `GET /users/me`,
//! - `POST /webhooks` with a real handshake, `GET /webhooks`, `GET /webhooks/{gid}`,
//!   `DELETE /webhooks/{gid}`.
//!
//! Every request needs `Authorization: Bearer <token>` with the token given to
//! [`AsanaFake::start`]. Bodies are `{"data": ...}` and errors `{"errors":[{"message": ...}]}`.
//! The shapes pass Prism's validation against Asana's OpenAPI description (see `prism.rs`).
//!
//! Tests change the data directly ([`AsanaFake::add_task`], [`AsanaFake::set_task_name`], ...)
//! and the fake sends the webhook events Asana would send, signed with each webhook's secret.
//! [`AsanaFake::fail_next`] and [`AsanaFake::set_delay`] inject errors and slow responses. The
//! request, rename and delivery logs let tests check what a client did and when.
//!
//! Layout: `state` stores the data and the logs, `render` turns it into JSON, `gate` logs,
//! delays, authenticates and fails requests, `api` routes and serves them, and `webhooks`
//! handles registration, handshakes and signed deliveries.

mod api;
mod gate;
mod render;
mod state;
mod webhooks;

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use state::{Actor, Fault, Shared};
pub use webhooks::{sign, HOOK_SECRET_HEADER, HOOK_SIGNATURE_HEADER};

/// Time limit of the handshake and of each delivery. Asana gives a receiver 10 seconds to
/// respond to a delivery. Asana does not document a time limit for the handshake.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An endpoint of the fake, for [`AsanaFake::fail_next`] and [`AsanaFake::set_delay`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /tasks/{gid}`
    GetTask,
    /// `PUT /tasks/{gid}`
    UpdateTask,
    /// `GET /projects/{gid}`
    GetProject,
    /// `GET /projects/{gid}/tasks`
    ListProjectTasks,
    /// `GET /users/{gid}`, including `/users/me`
    GetUser,
    /// `POST /webhooks`
    CreateWebhook,
    /// `GET /webhooks`
    ListWebhooks,
    /// `GET /webhooks/{gid}`
    GetWebhook,
    /// `DELETE /webhooks/{gid}`
    DeleteWebhook,
    /// Every request, including requests to paths the fake does not serve.
    Any,
}

impl Route {
    /// Classifies a request. Returns `None` for a method and path the fake does not serve.
    pub fn of(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let route = match (method.as_str(), segments.as_slice()) {
            ("GET", ["tasks", _]) => Route::GetTask,
            ("PUT", ["tasks", _]) => Route::UpdateTask,
            ("GET", ["projects", _]) => Route::GetProject,
            ("GET", ["projects", _, "tasks"]) => Route::ListProjectTasks,
            ("GET", ["users", _]) => Route::GetUser,
            ("POST", ["webhooks"]) => Route::CreateWebhook,
            ("GET", ["webhooks"]) => Route::ListWebhooks,
            ("GET", ["webhooks", _]) => Route::GetWebhook,
            ("DELETE", ["webhooks", _]) => Route::DeleteWebhook,
            _ => return None,
        };
        Some(route)
    }

    fn matches(self, route: Option<Route>) -> bool {
        self == Route::Any || Some(self) == route
    }
}

/// A request as the fake received it, before authentication, delays and faults.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string without the `?`.
    pub query: Option<String>,
    pub body: Vec<u8>,
    pub route: Option<Route>,
    pub received_at: Instant,
}

/// A `PUT /tasks/{gid}` that set a name, also when the name stayed the same.
#[derive(Clone, Debug)]
pub struct Rename {
    pub task_gid: String,
    pub old_name: String,
    pub new_name: String,
    pub at: Instant,
}

/// One POST of events to a webhook target.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub webhook_gid: String,
    pub target: String,
    /// The exact body bytes that were signed and sent.
    pub body: Vec<u8>,
    /// Value of the `X-Hook-Signature` header.
    pub signature: String,
    /// HTTP status of the target's response, `None` when no response arrived.
    pub status: Option<u16>,
    /// Transport error when no response arrived.
    pub error: Option<String>,
    pub sent_at: Instant,
}

/// A registered webhook, for asserts.
#[derive(Clone, Debug)]
pub struct WebhookRecord {
    pub gid: String,
    /// Gid of the project the webhook watches.
    pub resource_gid: String,
    pub target: String,
    /// Secret of the handshake, which keys the delivery signatures.
    pub secret: String,
    pub filters: Vec<Value>,
}

/// The fake Asana server. It stops when dropped.
pub struct AsanaFake {
    shared: Arc<Shared>,
    url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl AsanaFake {
    /// Starts the fake on a free port of 127.0.0.1. Requests must carry `token` as bearer token.
    pub async fn start(token: &str) -> anyhow::Result<AsanaFake> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the Asana fake to 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("failed to build the HTTP client for handshakes and deliveries")?;
        let shared = Arc::new(Shared::new(token, url.clone(), http));

        let (stop, stopped) = oneshot::channel::<()>();
        let app = api::router(Arc::clone(&shared));
        tokio::spawn(async move {
            let shutdown = async {
                // An error means the fake was dropped, which also requests a stop.
                let _ = stopped.await;
            };
            let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
            if let Err(error) = serve.await {
                tracing::warn!(%error, "Asana fake server failed");
            }
        });
        Ok(AsanaFake {
            shared,
            url,
            stop: Some(stop),
        })
    }

    /// Base URL of the API, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Gid of the only workspace, which contains every project.
    pub fn workspace_gid(&self) -> String {
        self.shared.lock().workspace_gid.clone()
    }

    /// Gid of the token's user, the `user` of events caused by API calls.
    pub fn user_gid(&self) -> String {
        self.shared.lock().token_user_gid.clone()
    }

    /// Gid of the person who makes the changes done with the test helpers, as if in the UI.
    pub fn person_gid(&self) -> String {
        self.shared.lock().person_gid.clone()
    }

    /// Adds a project of the workspace.
    ///
    /// # Panics
    /// When an object with this gid exists already.
    pub fn add_project(&self, gid: &str) {
        self.shared.lock().add_project(gid);
    }

    /// Creates a task in a project, as a person in the UI would, and returns its gid. Emits an
    /// `added` event with the project as parent.
    ///
    /// # Panics
    /// When the project does not exist.
    pub fn add_task(&self, project_gid: &str, name: &str) -> String {
        let mut state = self.shared.lock();
        assert!(
            state.project(project_gid).is_some(),
            "unknown project {project_gid}"
        );
        let emitted = state.add_task(Some(project_gid), None, name);
        let gid = emitted.event.resource.gid.clone();
        state.dispatch(vec![emitted]);
        gid
    }

    /// Creates a subtask and returns its gid. Emits an `added` event with the parent task as
    /// parent, to the webhooks of the top-level ancestor's projects.
    ///
    /// # Panics
    /// When the parent task does not exist.
    pub fn add_subtask(&self, parent_task_gid: &str, name: &str) -> String {
        let mut state = self.shared.lock();
        assert!(
            state.tasks.contains_key(parent_task_gid),
            "unknown task {parent_task_gid}"
        );
        let emitted = state.add_task(None, Some(parent_task_gid), name);
        let gid = emitted.event.resource.gid.clone();
        state.dispatch(vec![emitted]);
        gid
    }

    /// Returns a task's name, `None` when there is no such task.
    pub fn task_name(&self, gid: &str) -> Option<String> {
        self.shared
            .lock()
            .tasks
            .get(gid)
            .map(|task| task.name.clone())
    }

    /// Renames a task as a person in the UI would. Emits a `changed`/`name` event when the name
    /// differs from the current one.
    ///
    /// # Panics
    /// When the task does not exist.
    pub fn set_task_name(&self, gid: &str, name: &str) {
        let mut state = self.shared.lock();
        assert!(state.tasks.contains_key(gid), "unknown task {gid}");
        let emitted = state.rename_task(gid, name, Actor::Person);
        state.dispatch(emitted.into_iter().collect());
    }

    /// Deletes a task and its subtasks. Emits a `deleted` event for the task.
    ///
    /// # Panics
    /// When the task does not exist.
    pub fn delete_task(&self, gid: &str) {
        let mut state = self.shared.lock();
        let emitted = state.delete_task(gid);
        assert!(emitted.is_some(), "unknown task {gid}");
        state.dispatch(emitted.into_iter().collect());
    }

    /// Makes the 201 responses of later `POST /webhooks` calls report `secret` instead of the
    /// handshake's secret, or stops doing so with `None`.
    pub fn set_secret_override(&self, secret: Option<&str>) {
        self.shared.lock().secret_override = secret.map(str::to_owned);
    }

    /// Fails the next `count` requests on `route` with `status`, an Asana error body and, when
    /// given, a `Retry-After` header in seconds. Faults on one route are used in the order set.
    ///
    /// # Panics
    /// When `status` is not a valid HTTP status code.
    pub fn fail_next(&self, route: Route, count: usize, status: u16, retry_after: Option<u64>) {
        let status = StatusCode::from_u16(status).expect("a valid HTTP status code");
        self.shared.lock().faults.push(Fault {
            route,
            remaining: count,
            status,
            retry_after,
        });
    }

    /// Delays every response on `route` by `delay`; `Duration::ZERO` removes the delay. A delay
    /// set on a route takes precedence over one set on [`Route::Any`].
    pub fn set_delay(&self, route: Route, delay: Duration) {
        let mut state = self.shared.lock();
        if delay.is_zero() {
            state.delays.remove(&route);
        } else {
            state.delays.insert(route, delay);
        }
    }

    /// Requests received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Renames by `PUT /tasks/{gid}` so far.
    pub fn renames(&self) -> Vec<Rename> {
        self.shared.lock().renames.clone()
    }

    /// Deliveries so far, in the order they finished.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Registered webhooks in order of creation.
    pub fn webhooks(&self) -> Vec<WebhookRecord> {
        let state = self.shared.lock();
        let records = state.webhooks.iter().map(|webhook| WebhookRecord {
            gid: webhook.gid.clone(),
            resource_gid: webhook.resource_gid.clone(),
            target: webhook.target.clone(),
            secret: webhook.secret.clone(),
            filters: webhook.filters.clone(),
        });
        records.collect()
    }

    /// Waits until at least `count` deliveries have finished and returns all of them.
    pub async fn wait_for_deliveries(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Delivery>> {
        let description = format!("{count} webhook deliveries");
        self.wait_until(&description, timeout, |fake| {
            fake.deliveries().len() >= count
        })
        .await?;
        Ok(self.deliveries())
    }

    /// Polls `condition` every 10 ms until it holds, or fails after `timeout` naming `description`.
    pub async fn wait_until(
        &self,
        description: &str,
        timeout: Duration,
        condition: impl Fn(&AsanaFake) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !condition(self) {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("timed out after {timeout:?} waiting for {description}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Stops the server: it takes no new connections and closes the open ones once the
    /// responses to their current requests are sent. Dropping the fake does the same.
    pub fn shutdown(mut self) {
        self.stop_server();
    }

    fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the server task has ended already.
            let _ = stop.send(());
        }
        let background = self
            .shared
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for task in background.iter() {
            task.abort();
        }
    }
}

impl Drop for AsanaFake {
    fn drop(&mut self) {
        self.stop_server();
    }
}

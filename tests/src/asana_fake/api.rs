//! Routes and handlers of the fake's REST API, and its error responses.
//!
//! Handlers parse the request, change or read the state and render the response. Every request
//! has passed [`super::gate::check`] (log, delay, authentication, injected faults) before it
//! gets here. Events caused by a request are dispatched only once its response is on its way,
//! see [`super::webhooks::dispatch_after_response`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::render::{self, Fields, PageRequest};
use super::state::{Actor, Shared};
use super::{gate, webhooks, Rename};

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/tasks/{gid}", get(get_task).put(update_task))
        .route("/projects/{gid}", get(get_project))
        .route("/projects/{gid}/tasks", get(list_project_tasks))
        .route("/users/{gid}", get(get_user))
        .route("/webhooks", get(list_webhooks).post(webhooks::create))
        .route("/webhooks/{gid}", get(get_webhook).delete(delete_webhook))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(shared.clone(), gate::check))
        .with_state(shared)
}

/// An error response in Asana's shape, `{"errors":[{"message": ..., "help": ...}]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(kind: &str, gid: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{kind}: Unknown object: {gid}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let help = "For more information on API status codes and how to handle them, \
                    read the docs on errors: https://developers.asana.com/docs/errors";
        let body = json!({"errors": [{"message": self.message, "help": help}]});
        (self.status, Json(body)).into_response()
    }
}

/// Rejects a gid that is not a number, as Asana does.
pub(crate) fn check_gid(kind: &str, gid: &str) -> Result<(), ApiError> {
    if gid.is_empty() || !gid.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "{kind}: Not a recognized ID: {gid}"
        )));
    }
    Ok(())
}

async fn get_task(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    check_gid("task", &gid)?;
    let fields = Fields::parse(params.get("opt_fields"), Fields::Full);

    let state = shared.lock();
    let task = state
        .tasks
        .get(&gid)
        .ok_or_else(|| ApiError::not_found("task", &gid))?;
    Ok(Json(json!({"data": render::task(&state, task, &fields)})))
}

/// Changes a task's name, records the write in the rename log and emits a `changed`/`name`
/// event when the name changed.
async fn update_task(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_gid("task", &gid)?;
    let name = parse_task_update(&body)?;
    let fields = Fields::parse(params.get("opt_fields"), Fields::Full);

    let mut state = shared.lock();
    let old_name = match state.tasks.get(&gid) {
        Some(task) => task.name.clone(),
        None => return Err(ApiError::not_found("task", &gid)),
    };
    let mut emitted = Vec::new();
    if let Some(name) = name {
        emitted.extend(state.rename_task(&gid, &name, Actor::TokenUser));
        state.renames.push(Rename {
            task_gid: gid.clone(),
            old_name,
            new_name: name,
            at: std::time::Instant::now(),
        });
    }
    let data = render::task(&state, &state.tasks[&gid], &fields);
    drop(state);

    let response = Json(json!({"data": data})).into_response();
    Ok(webhooks::dispatch_after_response(response, shared, emitted))
}

/// Parses `{"data":{"name": "..."}}`. Returns `None` when `data` has no `name`.
fn parse_task_update(body: &[u8]) -> Result<Option<String>, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("Invalid JSON in request body: {error}")))?;
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return Err(ApiError::bad_request("data: Missing input"));
    };
    if let Some(field) = data.keys().find(|field| *field != "name") {
        let message = format!("{field}: the Asana fake can only change `name` of a task");
        return Err(ApiError::bad_request(message));
    }
    match data.get("name") {
        None => Ok(None),
        Some(Value::String(name)) => Ok(Some(name.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "name: Not a string: {other}"
        ))),
    }
}

async fn list_project_tasks(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    check_gid("project", &gid)?;
    let fields = Fields::parse(params.get("opt_fields"), Fields::Compact);
    let page = PageRequest::parse(params.get("limit"), params.get("offset"))?;

    let mut state = shared.lock();
    if state.project(&gid).is_none() {
        return Err(ApiError::not_found("project", &gid));
    }
    let tasks = state.project_tasks(&gid);
    let items = tasks
        .iter()
        .map(|task| render::task(&state, task, &fields))
        .collect();
    let list_path = format!("/projects/{gid}/tasks");
    let query: Vec<(&str, &String)> = params
        .get_key_value("opt_fields")
        .into_iter()
        .map(as_pair)
        .collect();
    let body = render::paginate(
        &mut state,
        &shared.base_url,
        items,
        &page,
        &list_path,
        &query,
    )?;
    Ok(Json(body))
}

/// Returns a project with its name and workspace, whatever `opt_fields` requests.
async fn get_project(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_gid("project", &gid)?;

    let state = shared.lock();
    let project = state
        .project(&gid)
        .ok_or_else(|| ApiError::not_found("project", &gid))?;
    let data = json!({
        "gid": project.gid,
        "resource_type": "project",
        "name": project.name,
        "workspace": {"gid": state.workspace_gid, "resource_type": "workspace"},
    });
    Ok(Json(json!({ "data": data })))
}

async fn get_user(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = shared.lock();
    if gid != "me" && gid != state.token_user_gid {
        return Err(ApiError::not_found("user", &gid));
    }
    Ok(Json(json!({"data": render::user(&state)})))
}

/// Lists the webhooks of the fake's workspace, optionally only those on one `resource`.
async fn list_webhooks(
    State(shared): State<Arc<Shared>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let Some(workspace) = params.get("workspace") else {
        return Err(ApiError::bad_request("workspace: Missing input"));
    };
    check_gid("workspace", workspace)?;
    let page = PageRequest::parse(params.get("limit"), params.get("offset"))?;
    let resource = params.get("resource");

    let mut state = shared.lock();
    if *workspace != state.workspace_gid {
        return Err(ApiError::not_found("workspace", workspace));
    }
    let on_resource = |gid: &String| resource.is_none_or(|resource| resource == gid);
    let items = state
        .webhooks
        .iter()
        .filter(|webhook| on_resource(&webhook.resource_gid))
        .map(|webhook| render::webhook(&state, webhook))
        .collect();
    let query: Vec<(&str, &String)> = ["workspace", "resource"]
        .iter()
        .filter_map(|key| params.get_key_value(*key))
        .map(as_pair)
        .collect();
    let body = render::paginate(
        &mut state,
        &shared.base_url,
        items,
        &page,
        "/webhooks",
        &query,
    )?;
    Ok(Json(body))
}

/// Returns a webhook in full, whatever `opt_fields` requests.
async fn get_webhook(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_gid("webhook", &gid)?;

    let state = shared.lock();
    let webhook = state
        .webhooks
        .iter()
        .find(|webhook| webhook.gid == gid)
        .ok_or_else(|| ApiError::not_found("webhook", &gid))?;
    Ok(Json(json!({ "data": render::webhook(&state, webhook) })))
}

/// Deletes a webhook. Its delivery task still sends what was queued before, as Asana may
/// deliver an event that was in flight when the webhook was deleted.
async fn delete_webhook(
    State(shared): State<Arc<Shared>>,
    Path(gid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_gid("webhook", &gid)?;

    let mut state = shared.lock();
    let Some(index) = state.webhooks.iter().position(|webhook| webhook.gid == gid) else {
        return Err(ApiError::not_found("webhook", &gid));
    };
    state.webhooks.remove(index);
    Ok(Json(json!({"data": {}})))
}

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "No matching route for request")
}

fn as_pair<'a>((key, value): (&'a String, &'a String)) -> (&'a str, &'a String) {
    (key.as_str(), value)
}

//! JSON representations of the fake's objects, shaped to pass Prism's checks against Asana's
//! OpenAPI description, and `limit`/`offset` pagination.
//!
//! Asana's spec declares most timestamps as non-nullable strings, so fields without a value are
//! left out instead of being sent as `null`. `parent` is the exception: the spec allows `null`.

use serde_json::{json, Map, Value};

use super::api::ApiError;
use super::state::{PageCursor, State, Task, Webhook};

/// Fields the client asked for with `opt_fields`, or the endpoint's default set.
pub(crate) enum Fields {
    /// Every field the fake models, as `GET /tasks/{gid}` without `opt_fields` returns.
    Full,
    /// `gid`, `resource_type`, `name` and `resource_subtype`, as listings return.
    Compact,
    /// `gid` plus the fields named in `opt_fields`, with dotted paths for nested fields.
    Listed(Vec<String>),
}

impl Fields {
    pub fn parse(opt_fields: Option<&String>, default: Fields) -> Fields {
        match opt_fields {
            Some(list) => Fields::Listed(list.split(',').map(|f| f.trim().to_owned()).collect()),
            None => default,
        }
    }

    fn wants(&self, field: &str) -> bool {
        match self {
            Fields::Full => true,
            Fields::Compact => matches!(field, "resource_type" | "name" | "resource_subtype"),
            Fields::Listed(listed) => listed.iter().any(|listed| {
                listed == field
                    || listed
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.'))
            }),
        }
    }

    /// Returns whether a nested object at `path` (such as `parent` or `memberships.project`) shows its
    /// `name`. Nested objects always show `gid` and `resource_type`.
    fn wants_name(&self, path: &str) -> bool {
        match self {
            Fields::Full => true,
            Fields::Compact => false,
            Fields::Listed(listed) => listed
                .iter()
                .any(|listed| *listed == format!("{path}.name")),
        }
    }
}

/// Renders a task with the requested fields.
///
/// NOTE: fields the fake does not model (assignee, notes, custom fields, ...) are left out
/// even when `opt_fields` names them.
pub(crate) fn task(state: &State, task: &Task, fields: &Fields) -> Value {
    let mut data = Map::new();
    data.insert("gid".into(), json!(task.gid));
    let mut put = |field: &str, value: Value| {
        if fields.wants(field) {
            data.insert(field.into(), value);
        }
    };

    put("resource_type", json!("task"));
    put("name", json!(task.name));
    put("resource_subtype", json!("default_task"));
    put("created_at", json!(task.created_at));
    put("modified_at", json!(task.modified_at));
    put("completed", json!(false));
    put("parent", parent(state, task, fields));
    put("memberships", memberships(state, task, fields));
    put("projects", projects(state, task, fields));
    put("num_subtasks", json!(subtask_count(state, &task.gid)));
    put(
        "workspace",
        json!({"gid": state.workspace_gid, "resource_type": "workspace"}),
    );
    Value::Object(data)
}

fn parent(state: &State, task: &Task, fields: &Fields) -> Value {
    let Some(parent) = task.parent.as_ref().and_then(|gid| state.tasks.get(gid)) else {
        return Value::Null;
    };
    let mut value = json!({"gid": parent.gid, "resource_type": "task"});
    if fields.wants_name("parent") {
        value["name"] = json!(parent.name);
    }
    value
}

fn memberships(state: &State, task: &Task, fields: &Fields) -> Value {
    let show_name = fields.wants_name("memberships.project");
    let memberships = task
        .projects
        .iter()
        .map(|gid| json!({"project": project_reference(state, gid, show_name)}));
    Value::Array(memberships.collect())
}

fn projects(state: &State, task: &Task, fields: &Fields) -> Value {
    let show_name = fields.wants_name("projects");
    let projects = task
        .projects
        .iter()
        .map(|gid| project_reference(state, gid, show_name));
    Value::Array(projects.collect())
}

fn project_reference(state: &State, gid: &str, show_name: bool) -> Value {
    let mut value = json!({"gid": gid, "resource_type": "project"});
    if let (true, Some(project)) = (show_name, state.project(gid)) {
        value["name"] = json!(project.name);
    }
    value
}

fn subtask_count(state: &State, gid: &str) -> usize {
    let is_child = |task: &&Task| task.parent.as_deref() == Some(gid);
    state.tasks.values().filter(is_child).count()
}

/// Renders a webhook in full.
pub(crate) fn webhook(state: &State, webhook: &Webhook) -> Value {
    let project_name = state
        .project(&webhook.resource_gid)
        .map(|project| project.name.clone());
    let mut data = json!({
        "gid": webhook.gid,
        "resource_type": "webhook",
        "active": true,
        "resource": {
            "gid": webhook.resource_gid,
            "resource_type": "project",
            "name": project_name.unwrap_or_default(),
        },
        "target": webhook.target,
        "created_at": webhook.created_at,
        "filters": webhook.filters,
        "delivery_retry_count": 0,
    });
    let optional = [
        ("last_success_at", &webhook.last_success_at),
        ("last_failure_at", &webhook.last_failure_at),
        ("last_failure_content", &webhook.last_failure_content),
    ];
    for (field, value) in optional {
        if let Some(value) = value {
            data[field] = json!(value);
        }
    }
    data
}

/// Renders the token's user, a member of the fake's one workspace.
pub(crate) fn user(state: &State) -> Value {
    json!({
        "gid": state.token_user_gid,
        "resource_type": "user",
        "name": "Asana Fake Bot",
        "email": "bot@example.com",
        "workspaces": [{
            "gid": state.workspace_gid,
            "resource_type": "workspace",
            "name": "Fake Workspace",
        }],
    })
}

/// A `limit`/`offset` request on a listing.
pub(crate) struct PageRequest {
    pub limit: Option<usize>,
    pub offset: Option<String>,
}

impl PageRequest {
    pub fn parse(limit: Option<&String>, offset: Option<&String>) -> Result<PageRequest, ApiError> {
        let limit = match limit {
            None => None,
            Some(text) => match text.parse::<usize>() {
                Ok(limit @ 1..=100) => Some(limit),
                _ => {
                    let message = format!("limit: Value {text} is not an integer from 1 to 100");
                    return Err(ApiError::bad_request(message));
                }
            },
        };
        Ok(PageRequest {
            limit,
            offset: offset.cloned(),
        })
    }
}

/// Cuts one page out of `items` and builds the response body.
///
/// Without `limit` all items come back and `next_page` is absent. With `limit`, `next_page` is
/// `null` on the last page and otherwise contains a fresh offset token, the relative `path` and the
/// absolute `uri` of the next page. `list_path` identifies the listing, so a token only works on
/// the listing that issued it. `query` contains the parameters to repeat in the next page's path.
pub(crate) fn paginate(
    state: &mut State,
    base_url: &str,
    items: Vec<Value>,
    page: &PageRequest,
    list_path: &str,
    query: &[(&str, &String)],
) -> Result<Value, ApiError> {
    let start = match &page.offset {
        None => 0,
        Some(token) => match state.cursors.get(token) {
            Some(cursor) if cursor.list == list_path => cursor.index,
            _ => {
                let message = format!("offset: Your pagination token is invalid: {token}");
                return Err(ApiError::bad_request(message));
            }
        },
    };
    let Some(limit) = page.limit else {
        return Ok(json!({"data": items.into_iter().skip(start).collect::<Vec<_>>()}));
    };

    let total = items.len();
    let end = start.saturating_add(limit).min(total);
    let data: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let next_page = if end < total {
        next_page(state, base_url, list_path, limit, end, query)
    } else {
        Value::Null
    };
    Ok(json!({"data": data, "next_page": next_page}))
}

fn next_page(
    state: &mut State,
    base_url: &str,
    list_path: &str,
    limit: usize,
    index: usize,
    query: &[(&str, &String)],
) -> Value {
    let token = hex::encode(rand::random::<[u8; 16]>());
    let cursor = PageCursor {
        list: list_path.to_owned(),
        index,
    };
    state.cursors.insert(token.clone(), cursor);

    let mut url = reqwest::Url::parse(&format!("{base_url}{list_path}"))
        .expect("the fake's own URL and a list path form a valid URL");
    url.query_pairs_mut()
        .append_pair("limit", &limit.to_string())
        .append_pair("offset", &token)
        .extend_pairs(query.iter().map(|(key, value)| (*key, value.as_str())));
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    json!({"offset": token, "path": path, "uri": url.as_str()})
}

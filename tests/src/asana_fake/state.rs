//! The fake's data: one workspace, its projects, tasks and webhooks, and the logs tests read.
//!
//! Everything lives in one [`State`] behind the mutex in [`Shared`]. Handlers and test helpers
//! lock it briefly and never hold the guard across an `.await`. Changes that Asana reports to
//! webhooks return [`Emitted`] events, which [`State::dispatch`] queues for delivery.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::{Delivery, RecordedRequest, Rename, Route};

/// First gid handed out; numeric like Asana's and far from the gids in `tests/data/events`.
const FIRST_GID: u64 = 1_209_000_000_000_001;

/// State and HTTP client shared by the server, the delivery tasks and [`super::AsanaFake`].
pub(crate) struct Shared {
    pub token: String,
    pub base_url: String,
    pub http: reqwest::Client,
    state: Mutex<State>,
    /// Delivery tasks, aborted when the fake is dropped.
    pub background: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub fn new(token: &str, base_url: String, http: reqwest::Client) -> Shared {
        Shared {
            token: token.to_owned(),
            base_url,
            http,
            state: Mutex::new(State::new()),
            background: Mutex::new(Vec::new()),
        }
    }

    /// Locks the state. A panic elsewhere never leaves the state half-changed, so a poisoned
    /// lock is used as it is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Project {
    pub gid: String,
    pub name: String,
}

pub(crate) struct Task {
    pub gid: String,
    /// Creation order, for listings.
    pub seq: u64,
    pub name: String,
    pub created_at: String,
    pub modified_at: String,
    /// Parent task of a subtask.
    pub parent: Option<String>,
    /// Projects of a top-level task; a subtask belongs to none.
    pub projects: Vec<String>,
}

pub(crate) struct Webhook {
    pub gid: String,
    pub resource_gid: String,
    pub target: String,
    pub secret: String,
    /// Filters as the client sent them.
    pub filters: Vec<Value>,
    pub created_at: String,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_failure_content: Option<String>,
    /// Queue of the webhook's delivery task; one element is one POST.
    pub queue: UnboundedSender<Vec<Event>>,
}

/// A webhook event, serialised with Asana's key order.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Event {
    pub user: Option<Reference>,
    pub created_at: String,
    pub action: &'static str,
    pub resource: Reference,
    pub parent: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Reference {
    pub gid: String,
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_subtype: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Change {
    pub field: &'static str,
    pub action: &'static str,
}

/// An event and the projects whose webhooks receive it.
pub(crate) struct Emitted {
    pub event: Event,
    pub projects: Vec<String>,
}

/// Who caused a change: the token's user (our own API calls) or a person in the Asana UI.
#[derive(Clone, Copy)]
pub(crate) enum Actor {
    TokenUser,
    Person,
}

/// A page position handed out as an opaque `offset` token.
pub(crate) struct PageCursor {
    pub list: String,
    pub index: usize,
}

pub(crate) struct Fault {
    pub route: Route,
    pub remaining: usize,
    pub status: axum::http::StatusCode,
    pub retry_after: Option<u64>,
}

pub(crate) struct State {
    next_gid: u64,
    next_seq: u64,
    last_timestamp: DateTime<Utc>,
    pub workspace_gid: String,
    pub token_user_gid: String,
    pub person_gid: String,
    pub projects: Vec<Project>,
    pub tasks: HashMap<String, Task>,
    pub webhooks: Vec<Webhook>,
    pub cursors: HashMap<String, PageCursor>,
    pub faults: Vec<Fault>,
    pub delays: HashMap<Route, Duration>,
    pub secret_override: Option<String>,
    pub requests: Vec<RecordedRequest>,
    pub renames: Vec<Rename>,
    pub deliveries: Vec<Delivery>,
}

impl State {
    fn new() -> State {
        let mut state = State {
            next_gid: FIRST_GID,
            next_seq: 0,
            last_timestamp: DateTime::<Utc>::MIN_UTC,
            workspace_gid: String::new(),
            token_user_gid: String::new(),
            person_gid: String::new(),
            projects: Vec::new(),
            tasks: HashMap::new(),
            webhooks: Vec::new(),
            cursors: HashMap::new(),
            faults: Vec::new(),
            delays: HashMap::new(),
            secret_override: None,
            requests: Vec::new(),
            renames: Vec::new(),
            deliveries: Vec::new(),
        };
        state.workspace_gid = state.new_gid();
        state.token_user_gid = state.new_gid();
        state.person_gid = state.new_gid();
        state
    }

    /// Returns a gid no other object of the fake has.
    pub fn new_gid(&mut self) -> String {
        loop {
            let gid = self.next_gid.to_string();
            self.next_gid += 1;
            let in_use = self.tasks.contains_key(&gid) || self.project(&gid).is_some();
            if !in_use {
                return gid;
            }
        }
    }

    /// Returns the current time as Asana writes it (RFC 3339, milliseconds, `Z`), strictly later
    /// than every timestamp returned before.
    pub fn timestamp(&mut self) -> String {
        let now = Utc::now().trunc_subsecs(3);
        let next = if now > self.last_timestamp {
            now
        } else {
            self.last_timestamp + chrono::Duration::milliseconds(1)
        };
        self.last_timestamp = next;
        next.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn project(&self, gid: &str) -> Option<&Project> {
        self.projects.iter().find(|project| project.gid == gid)
    }

    pub fn add_project(&mut self, gid: &str) {
        assert!(self.project(gid).is_none(), "project {gid} exists already");
        assert!(!self.tasks.contains_key(gid), "gid {gid} is a task already");
        self.projects.push(Project {
            gid: gid.to_owned(),
            name: format!("Project {gid}"),
        });
    }

    /// Creates a task in `project` or, with `parent`, a subtask of that task.
    pub fn add_task(&mut self, project: Option<&str>, parent: Option<&str>, name: &str) -> Emitted {
        let gid = self.new_gid();
        let created_at = self.timestamp();
        self.next_seq += 1;
        self.tasks.insert(
            gid.clone(),
            Task {
                gid: gid.clone(),
                seq: self.next_seq,
                name: name.to_owned(),
                created_at: created_at.clone(),
                modified_at: created_at.clone(),
                parent: parent.map(str::to_owned),
                projects: project.map(str::to_owned).into_iter().collect(),
            },
        );

        let event_parent = match (project, parent) {
            (_, Some(task)) => reference(task, "task"),
            (Some(project), None) => reference(project, "project"),
            (None, None) => unreachable!("a task needs a project or a parent"),
        };
        let event = Event {
            user: Some(self.user_reference(Actor::Person)),
            created_at,
            action: "added",
            resource: task_reference(&gid),
            parent: Some(event_parent),
            change: None,
        };
        self.emitted(&gid, event)
    }

    /// Sets a task's name. Returns the `changed`/`name` event, or `None` when the name stays
    /// the same.
    ///
    /// NOTE: Asana is believed not to emit an event for a write that changes nothing; this is
    /// not confirmed.
    pub fn rename_task(&mut self, gid: &str, name: &str, actor: Actor) -> Option<Emitted> {
        let created_at = self.timestamp();
        let task = self.tasks.get_mut(gid)?;
        if task.name == name {
            return None;
        }
        task.name = name.to_owned();
        task.modified_at = created_at.clone();

        let event = Event {
            user: Some(self.user_reference(actor)),
            created_at,
            action: "changed",
            resource: task_reference(gid),
            parent: None,
            change: Some(Change {
                field: "name",
                action: "changed",
            }),
        };
        Some(self.emitted(gid, event))
    }

    /// Deletes a task and its subtasks. Returns the `deleted` event for the task itself.
    pub fn delete_task(&mut self, gid: &str) -> Option<Emitted> {
        if !self.tasks.contains_key(gid) {
            return None;
        }
        let event = Event {
            user: Some(self.user_reference(Actor::Person)),
            created_at: self.timestamp(),
            action: "deleted",
            resource: task_reference(gid),
            parent: None,
            change: None,
        };
        let emitted = self.emitted(gid, event);

        let mut doomed = vec![gid.to_owned()];
        while let Some(gid) = doomed.pop() {
            self.tasks.remove(&gid);
            let children = self
                .tasks
                .values()
                .filter(|task| task.parent.as_deref() == Some(&gid));
            doomed.extend(children.map(|task| task.gid.clone()));
        }
        Some(emitted)
    }

    /// Top-level tasks of a project in creation order.
    pub fn project_tasks(&self, project: &str) -> Vec<&Task> {
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|task| task.parent.is_none() && task.projects.iter().any(|p| p == project))
            .collect();
        tasks.sort_by_key(|task| task.seq);
        tasks
    }

    /// Queues each event for every active webhook on one of the event's projects whose filters
    /// let it pass. The events of one call that reach a webhook travel in one POST.
    pub fn dispatch(&mut self, emitted: Vec<Emitted>) {
        for webhook in &self.webhooks {
            let events: Vec<Event> = emitted
                .iter()
                .filter(|emitted| emitted.projects.contains(&webhook.resource_gid))
                .filter(|emitted| passes_filters(&webhook.filters, &emitted.event))
                .map(|emitted| emitted.event.clone())
                .collect();
            if events.is_empty() {
                continue;
            }
            // A closed queue means the delivery task was aborted because the fake is stopping.
            let _ = webhook.queue.send(events);
        }
    }

    pub fn user_reference(&self, actor: Actor) -> Reference {
        let gid = match actor {
            Actor::TokenUser => &self.token_user_gid,
            Actor::Person => &self.person_gid,
        };
        reference(gid, "user")
    }

    /// Wraps an event on `task_gid` with the projects whose webhooks see it: those of the task,
    /// or for a subtask those of its top-level ancestor.
    fn emitted(&self, task_gid: &str, event: Event) -> Emitted {
        let mut task = self.tasks.get(task_gid);
        while let Some(parent) = task.and_then(|task| task.parent.as_ref()) {
            task = self.tasks.get(parent);
        }
        let projects = task.map(|task| task.projects.clone()).unwrap_or_default();
        Emitted { event, projects }
    }
}

pub(crate) fn reference(gid: &str, resource_type: &'static str) -> Reference {
    Reference {
        gid: gid.to_owned(),
        resource_type,
        resource_subtype: None,
    }
}

fn task_reference(gid: &str) -> Reference {
    Reference {
        gid: gid.to_owned(),
        resource_type: "task",
        resource_subtype: Some("default_task"),
    }
}

/// Applies Asana's filter rule: no filters pass everything, otherwise an event passes when every
/// key of at least one filter matches it.
fn passes_filters(filters: &[Value], event: &Event) -> bool {
    filters.is_empty() || filters.iter().any(|filter| filter_matches(filter, event))
}

fn filter_matches(filter: &Value, event: &Event) -> bool {
    let key_matches =
        |key: &str, actual: Option<&str>| match filter.get(key).and_then(Value::as_str) {
            Some(expected) => actual == Some(expected),
            None => true,
        };
    let fields_match = match filter.get("fields").and_then(Value::as_array) {
        Some(fields) => event.change.as_ref().is_some_and(|change| {
            fields
                .iter()
                .any(|field| field.as_str() == Some(change.field))
        }),
        None => true,
    };

    key_matches("resource_type", Some(event.resource.resource_type))
        && key_matches("resource_subtype", event.resource.resource_subtype)
        && key_matches("action", Some(event.action))
        && fields_match
}

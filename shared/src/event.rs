//! Asana webhook events and the selection of those that can need a number.
//!
//! A delivery body is `{"events":[...]}`. Only two kinds of event can leave a task without a
//! number: a task `added` to a project (the parent is a project), and a `changed` event whose
//! `change.field` is `name` (a rename, including our own rename echoed back and a user deleting
//! the number). Everything else (subtasks, whose parent is a task; stories; sections; other
//! fields; removals and deletions) is dropped. The kept events become [`Job`]s, one per task in
//! delivery order: a task named twice in one delivery is enqueued once.

use serde::Deserialize;

use crate::job::Job;
use crate::route::Route;

/// A parsed delivery. Events that do not have the expected shape are counted in `malformed`
/// and left out, so one odd event does not make Asana retry (and finally delete the webhook
/// over) the whole delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub events: Vec<Event>,
    pub malformed: usize,
}

#[derive(Debug, Clone, Deserialize)]
struct RawDelivery {
    events: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub action: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub created_at: String,
    pub resource: Resource,
    #[serde(default)]
    pub parent: Option<Resource>,
    #[serde(default)]
    pub change: Option<Change>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    pub gid: String,
    #[serde(default)]
    pub resource_type: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
}

/// Reason an event was dropped, for the debug log and the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    NotATask,
    Subtask,
    NotInProject,
    OtherField,
    OtherAction,
    Duplicate,
}

/// The outcome of selecting the events of one delivery.
#[derive(Debug, Default)]
pub struct Selection {
    pub jobs: Vec<Job>,
    pub dropped: Vec<(String, DropReason)>,
}

/// Parses a delivery body. Fails on invalid JSON or a missing `events` array.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, serde_json::Error> {
    let raw: RawDelivery = serde_json::from_slice(body)?;
    let total = raw.events.len();
    let events: Vec<Event> = raw
        .events
        .into_iter()
        .filter_map(|value| serde_json::from_value(value).ok())
        .collect();
    Ok(Delivery {
        malformed: total - events.len(),
        events,
    })
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// Returns why `event` cannot need a number, or `None` when it can.
pub fn drop_reason(event: &Event) -> Option<DropReason> {
    if event.resource.resource_type != "task" {
        return Some(DropReason::NotATask);
    }
    match event.action.as_str() {
        "added" => match event.parent.as_ref().map(|p| p.resource_type.as_str()) {
            Some("project") => None,
            Some("task") => Some(DropReason::Subtask),
            _ => Some(DropReason::NotInProject),
        },
        "changed" => match event.change.as_ref().map(|c| c.field.as_str()) {
            Some("name") => None,
            _ => Some(DropReason::OtherField),
        },
        _ => Some(DropReason::OtherAction),
    }
}

/// Selects the events of `delivery` that can need a number under `route`.
pub fn select(route: &Route, delivery: &Delivery) -> Selection {
    let mut selection = Selection::default();
    for event in &delivery.events {
        let gid = event.resource.gid.clone();
        if let Some(reason) = drop_reason(event) {
            selection.dropped.push((gid, reason));
            continue;
        }
        if selection.jobs.iter().any(|job| job.task_gid == gid) {
            selection.dropped.push((gid, DropReason::Duplicate));
            continue;
        }
        selection.jobs.push(Job {
            prefix: route.prefix.clone(),
            counter_key: route.counter_key.clone(),
            task_gid: gid,
            action: event.action.clone(),
            field: event.change.as_ref().map(|c| c.field.clone()),
            created_at: event.created_at.clone(),
        });
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/events");

    fn selected(name: &str) -> Vec<String> {
        let body = std::fs::read(format!("{EVENTS}/{name}")).expect("fixture exists");
        let delivery = parse_delivery(&body).expect("fixture parses");
        let route = Route {
            prefix: "BUG".into(),
            counter_key: "BUG".into(),
        };
        select(&route, &delivery)
            .jobs
            .into_iter()
            .map(|job| job.task_gid)
            .collect()
    }

    #[test]
    fn selection_over_every_fixture() {
        let expected: &[(&str, &[&str])] = &[
            ("heartbeat.json", &[]),
            ("task_added.json", &["1208200000000101"]),
            ("task_renamed.json", &["1208200000000101"]),
            ("task_completed.json", &[]),
            ("subtask_added.json", &[]),
            ("mixed_batch.json", &["1208200000000103"]),
            ("other_actions.json", &[]),
            ("spaced_escaped.json", &["1208200000000107"]),
        ];
        let mut files: Vec<String> = std::fs::read_dir(EVENTS)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".json"))
            .collect();
        files.sort();
        assert_eq!(
            files.len(),
            expected.len(),
            "a fixture has no expectation here: {files:?}"
        );

        for (file, gids) in expected {
            assert_eq!(selected(file), *gids, "selection of {file}");
        }
    }

    #[test]
    fn selection_keeps_event_fields_in_job() {
        let body = std::fs::read(format!("{EVENTS}/task_renamed.json")).unwrap();
        let delivery = parse_delivery(&body).unwrap();
        let route = Route {
            prefix: "PLAT".into(),
            counter_key: "plat".into(),
        };
        let job = &select(&route, &delivery).jobs[0];

        assert_eq!(job.prefix, "PLAT");
        assert_eq!(job.counter_key, "plat");
        assert_eq!(job.action, "changed");
        assert_eq!(job.field.as_deref(), Some("name"));
        assert_eq!(job.created_at, "2026-11-02T09:14:09.027Z");
    }

    #[test]
    fn selection_counts_drop_reasons() {
        let body = std::fs::read(format!("{EVENTS}/mixed_batch.json")).unwrap();
        let delivery = parse_delivery(&body).unwrap();
        let route = Route {
            prefix: "BUG".into(),
            counter_key: "BUG".into(),
        };
        let reasons: Vec<DropReason> = select(&route, &delivery)
            .dropped
            .into_iter()
            .map(|(_, reason)| reason)
            .collect();

        assert_eq!(
            reasons,
            [
                DropReason::NotATask,
                DropReason::NotATask,
                DropReason::NotInProject,
                DropReason::Duplicate
            ]
        );
    }

    #[test]
    fn malformed_event_is_left_out() {
        let body = br#"{"events":[{"action":"added"},{"action":"changed","created_at":null,"resource":{"gid":"1","resource_type":"task"},"change":{"field":"name"}}]}"#;
        let delivery = parse_delivery(body).unwrap();
        assert_eq!(delivery.malformed, 1);
        assert_eq!(delivery.events.len(), 1);
        assert_eq!(delivery.events[0].created_at, "");
    }

    #[test]
    fn delivery_without_events_is_invalid() {
        assert!(parse_delivery(br#"{"data":[]}"#).is_err());
        assert!(parse_delivery(b"not json").is_err());
        assert!(parse_delivery(br#"{"events":{}}"#).is_err());
    }

    #[test]
    fn dedup_id_differs_per_event() {
        let job = Job {
            prefix: "BUG".into(),
            counter_key: "BUG".into(),
            task_gid: "1".into(),
            action: "changed".into(),
            field: Some("name".into()),
            created_at: "2026-11-02T09:14:09.027Z".into(),
        };
        let later = Job {
            created_at: "2026-11-02T09:14:10.000Z".into(),
            ..job.clone()
        };
        let other_prefix = Job {
            prefix: "OPS".into(),
            ..job.clone()
        };

        assert_eq!(job.dedup_id(), job.clone().dedup_id());
        assert_eq!(job.dedup_id().len(), 64);
        assert_ne!(job.dedup_id(), later.dedup_id());
        assert_ne!(job.dedup_id(), other_prefix.dedup_id());
    }
}

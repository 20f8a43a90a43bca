//! The unit of work that ingest enqueues and the worker processes.
//!
//! A [`Job`] names one task under one prefix. It is serialised as JSON into a queue message whose
//! message group is the task gid (so messages of one task are processed in order) and whose
//! deduplication id is [`Job::dedup_id`], a SHA-256 over the fields that identify the event.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One event that may need a number: the task, the prefix it is numbered under and the counter
/// that hands out the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub prefix: String,
    pub counter_key: String,
    pub task_gid: String,
    /// Asana event action: `added` or `changed`.
    pub action: String,
    /// `change.field` of a `changed` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `created_at` of the event, as Asana sent it.
    pub created_at: String,
}

impl Job {
    /// Returns the queue message group: the task gid.
    pub fn group_id(&self) -> &str {
        &self.task_gid
    }

    /// Returns the deduplication id: lowercase hex SHA-256 over prefix, task gid, action, field
    /// and `created_at`, separated by NUL bytes. 64 characters, within SQS's limit of 128.
    pub fn dedup_id(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.prefix.as_str(),
            self.task_gid.as_str(),
            self.action.as_str(),
            self.field.as_deref().unwrap_or(""),
            self.created_at.as_str(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        hex::encode(hasher.finalize())
    }

    /// Serialises the job as a queue message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a Job always serialises")
    }

    /// Parses a queue message body.
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

//! Durable queues between ingest and the worker.
//!
//! [`Queue::enqueue`] is the only call ingest makes: it returns Ok only when every job was
//! accepted durably, so the webhook is answered 2xx only then. Messages carry the task gid as
//! their message group (one task's messages are processed in order, one at a time) and
//! [`Job::dedup_id`] as their deduplication id. Two implementations: [`SqliteQueue`] (embedded,
//! with visibility timeouts and a dead-letter table) and [`SqsQueue`] (SQS FIFO).

mod sqlite;
mod sqs;

pub use sqlite::{DeadLetterRow, Received, SqliteQueue, MAX_RECEIVES};
pub use sqs::{
    DeadLetter, MessageCounts, ReceivedMessage, SqsQueue, ENTRY_RETRIES, MAX_BATCH_ENTRIES,
    ORIGINAL_MESSAGE_ID_ATTRIBUTE, PREFIX_ATTRIBUTE, REASON_ATTRIBUTE, RECEIVE_COUNT_ATTRIBUTE,
    TASK_GID_ATTRIBUTE,
};

use async_trait::async_trait;

use crate::job::Job;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue did not accept every message; the caller must not acknowledge the events.
    #[error("queue did not accept {failed} of {total} messages: {reason}")]
    NotAccepted {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues every job durably, or fails. Duplicates (same deduplication id within the
    /// queue's deduplication window) are accepted and dropped.
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError>;
}

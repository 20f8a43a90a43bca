//! Dead-lettered messages, for operators: list them, move them back to the work queue, purge
//! them.
//!
//! [`DeadLetterQueue`] has two implementations: [`EmbeddedDeadLetters`] over the dead-letter
//! table of the embedded queue, and [`SqsDeadLetters`] over an SQS FIFO dead-letter queue and
//! the work queue its messages came from. A replay keeps at least one copy of each message at
//! every moment. The embedded queue moves a message in one transaction. On SQS the copy goes to
//! the work queue before the original is deleted, with a deduplication id that makes a repeated
//! send within 5 minutes a no-op.

mod embedded;
mod sqs;

pub use embedded::EmbeddedDeadLetters;
pub use sqs::{SqsDeadLetters, HOLD_VISIBILITY, LIST_VISIBILITY, MAX_RECEIVES_REASON};

use std::time::Duration;

use async_trait::async_trait;

use crate::job::Job;
use crate::queue::QueueError;

/// One dead-lettered message, read without consuming it.
#[derive(Debug, Clone)]
pub struct DeadLetterEntry {
    /// Message id: on the embedded queue the id of the queue row, which `serve` logs as
    /// `message_id`, and on SQS the dead-letter queue's message id.
    pub id: String,
    /// Message group: the task gid.
    pub group_id: String,
    pub body: String,
    /// Reason the message was dead-lettered.
    pub reason: String,
    /// Receives before the message was dead-lettered, when known.
    pub receive_count: Option<u32>,
    /// Time since the message entered the dead-letter queue.
    pub age: Duration,
    /// SQS receipt handle of the receive that returned this message.
    pub(crate) receipt_handle: Option<String>,
    /// SQS attributes that identify this stay in the dead-letter queue, for the deduplication
    /// id of a replay.
    pub(crate) replay_key: String,
}

impl DeadLetterEntry {
    /// Parses the body as a [`Job`]. Returns `None` for a body that is not one.
    pub fn job(&self) -> Option<Job> {
        Job::from_body(&self.body).ok()
    }

    /// Returns the prefix of the job in the body, if the body is a job.
    pub fn prefix(&self) -> Option<String> {
        self.job().map(|job| job.prefix)
    }
}

/// How many messages a queue and its dead-letter queue hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Messages waiting in the work queue.
    pub queued: u64,
    /// Messages of the work queue received and not yet deleted, when the queue reports them.
    pub in_flight: Option<u64>,
    /// Messages in the dead-letter queue.
    pub dead: u64,
}

/// Filter and limit of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Moves at most this many messages; `None` moves all.
    pub max: Option<usize>,
    /// Moves only messages whose job has this prefix.
    pub prefix: Option<String>,
    /// Reports what would move without moving anything.
    pub dry_run: bool,
}

impl ReplayOptions {
    fn wants(&self, letter: &DeadLetterEntry) -> bool {
        match &self.prefix {
            None => true,
            Some(prefix) => letter.prefix().as_deref() == Some(prefix.as_str()),
        }
    }

    fn reached_max(&self, moved: usize) -> bool {
        self.max.is_some_and(|max| moved >= max)
    }
}

/// Result of a replay for one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Moved back to the work queue.
    Replayed,
    /// `dry_run`: would have been moved.
    WouldReplay,
    /// Left in the dead-letter queue, with the reason.
    Skipped(String),
    /// Moving failed; the message stays in the dead-letter queue.
    Failed(String),
}

/// Counts of a replay's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub replayed: usize,
    pub would_replay: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl ReplaySummary {
    fn count(&mut self, outcome: &ReplayOutcome) {
        match outcome {
            ReplayOutcome::Replayed => self.replayed += 1,
            ReplayOutcome::WouldReplay => self.would_replay += 1,
            ReplayOutcome::Skipped(_) => self.skipped += 1,
            ReplayOutcome::Failed(_) => self.failed += 1,
        }
    }

    /// Returns the messages that moved or would have moved, the count `max` limits.
    fn moved(&self) -> usize {
        self.replayed + self.would_replay
    }
}

/// Receives each outcome of a replay as it happens.
pub type ReplayReporter<'a> = dyn FnMut(&DeadLetterEntry, &ReplayOutcome) + Send + 'a;

#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Names the queues, for messages: a path or the queue URLs.
    fn describe(&self) -> String;

    /// Names the dead-letter queue alone, for messages about an action on it: a path or the
    /// dead-letter queue's URL.
    fn describe_dead_letters(&self) -> String;

    /// Returns the number of messages in the work queue and in the dead-letter queue.
    async fn depth(&self) -> Result<Depth, QueueError>;

    /// Returns the number of messages in the dead-letter queue, reading only that queue where
    /// the two are separate.
    async fn dead_count(&self) -> Result<u64, QueueError> {
        Ok(self.depth().await?.dead)
    }

    /// Returns up to `limit` dead letters, oldest first where the queue keeps an order, and
    /// leaves them in the queue. On SQS this receives them, which adds one to each message's
    /// receive count.
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, QueueError>;

    /// Moves dead letters back to the work queue, calling `report` once per message seen.
    async fn replay(
        &self,
        options: &ReplayOptions,
        report: &mut ReplayReporter<'_>,
    ) -> Result<ReplaySummary, QueueError>;

    /// Deletes every dead letter. Returns how many there were (approximate on SQS).
    async fn purge(&self) -> Result<u64, QueueError>;
}

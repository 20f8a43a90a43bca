//! The worker's batch core: the messages of one SQS FIFO batch in, the ids of the failed ones
//! out. The worker Lambda reports those ids as batch item failures, so SQS delivers only them
//! again.
//!
//! [`BatchWorker::process`] keeps the FIFO rules of SQS:
//! - messages of one message group run one after the other, in batch order;
//! - once a message of a group fails, it and every later message of that group in the batch are
//!   reported failed, and the later ones are not processed, so none overtakes the failed one;
//! - the groups are independent: they run concurrently, at most
//!   [`DEFAULT_MAX_CONCURRENT_GROUPS`] at once unless set otherwise, and a failure in one does
//!   not hold back another.
//!
//! A message fails when [`Worker::process`] returns [`ProcessError::Transient`], when the
//! invocation deadline arrives first, or when it cannot be moved to the dead-letter queue. A body
//! that is not a [`Job`] and a [`ProcessError::Permanent`] failure go to the dead-letter queue at
//! once and then count as handled: retrying cannot help them. Transient failures reach the
//! dead-letter queue through the work queue's redrive policy once SQS has delivered them
//! `maxReceiveCount` times.
//!
//! Nothing here depends on Lambda's types, so tests call it directly with messages received from SQS.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, error, field, info, info_span, warn, Instrument};

use crate::job::Job;
use crate::queue::{DeadLetter, SqsQueue};
use crate::worker::{ProcessError, Worker};

/// Message groups processed at once by default. Each group makes about three Asana and store
/// calls per message, and a FIFO batch contains at most 10 messages.
pub const DEFAULT_MAX_CONCURRENT_GROUPS: usize = 4;

/// A message of the batch, as SQS delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub message_id: String,
    pub group_id: String,
    pub body: String,
    /// How often SQS has delivered the message, this time included, when known.
    pub receive_count: Option<u32>,
}

/// The result of processing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Processed, skipped or moved to the dead-letter queue: SQS may delete it.
    Handled,
    /// To be delivered again.
    Failed,
}

/// Processes SQS batches with a [`Worker`], moving messages that cannot succeed to the
/// dead-letter queue.
#[derive(Clone)]
pub struct BatchWorker {
    worker: Worker,
    dead_letters: SqsQueue,
    max_concurrent_groups: usize,
}

impl BatchWorker {
    /// `dead_letters` is the dead-letter queue of the work queue.
    pub fn new(worker: Worker, dead_letters: SqsQueue) -> Self {
        Self {
            worker,
            dead_letters,
            max_concurrent_groups: DEFAULT_MAX_CONCURRENT_GROUPS,
        }
    }

    /// Sets how many message groups run at once; 0 counts as 1.
    pub fn with_max_concurrent_groups(mut self, max_concurrent_groups: usize) -> Self {
        self.max_concurrent_groups = max_concurrent_groups.max(1);
        self
    }

    /// Processes one batch and returns the ids of the messages that failed, in batch order.
    /// No message starts, and no wait runs, past `deadline`.
    pub async fn process(
        &self,
        messages: Vec<BatchMessage>,
        deadline: Option<Instant>,
    ) -> Vec<String> {
        let batch_order: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
        let permits = Arc::new(Semaphore::new(self.max_concurrent_groups));
        let mut groups = Vec::new();

        // Groups start in the order of their first message, and only when a permit is free.
        for group in split_groups(messages) {
            let message_ids: Vec<String> = group.iter().map(|m| m.message_id.clone()).collect();
            // The semaphore is never closed, so acquiring only waits and cannot fail.
            let permit = Arc::clone(&permits).acquire_owned().await.ok();
            let batch = self.clone();
            let task = tokio::spawn(
                async move {
                    let _permit = permit;
                    batch.process_group(group, deadline).await
                }
                .in_current_span(),
            );
            groups.push((message_ids, task));
        }

        let mut failed = HashSet::new();
        for (message_ids, task) in groups {
            match task.await {
                Ok(group_failed) => failed.extend(group_failed),
                Err(join_error) => {
                    error!(error = %join_error, ?message_ids, "processing a message group panicked; its messages are reported failed");
                    failed.extend(message_ids);
                }
            }
        }
        batch_order
            .into_iter()
            .filter(|id| failed.contains(id))
            .collect()
    }

    /// Processes the messages of one group in order and returns the ids of those that failed.
    async fn process_group(
        &self,
        messages: Vec<BatchMessage>,
        deadline: Option<Instant>,
    ) -> Vec<String> {
        let mut failed: Vec<String> = Vec::new();
        for message in messages {
            if let Some(first_failed) = failed.first() {
                info!(
                    message_id = %message.message_id,
                    group_id = %message.group_id,
                    earlier_message_id = %first_failed,
                    "message not processed because an earlier message of its group failed; reported failed"
                );
                failed.push(message.message_id);
                continue;
            }
            if self.process_message(&message, deadline).await == Disposition::Failed {
                failed.push(message.message_id);
            }
        }
        failed
    }

    async fn process_message(
        &self,
        message: &BatchMessage,
        deadline: Option<Instant>,
    ) -> Disposition {
        let span = info_span!(
            "message",
            message_id = %message.message_id,
            task_gid = field::Empty,
            prefix = field::Empty
        );
        async {
            let job = match Job::from_body(&message.body) {
                Ok(job) => job,
                Err(parse_error) => {
                    let reason = format!("message body is not a job: {parse_error}");
                    return self.dead_letter(message, None, &reason).await;
                }
            };
            let span = tracing::Span::current();
            span.record("task_gid", job.task_gid.as_str());
            span.record("prefix", job.prefix.as_str());

            match self.run_worker(&job, deadline).await {
                Ok(outcome) => {
                    debug!(?outcome, "message processed");
                    Disposition::Handled
                }
                Err(ProcessError::Transient { reason, retry_after }) => {
                    warn!(%reason, retry_after_ms = retry_after.map(|wait| wait.as_millis() as u64), "message failed; SQS delivers it again after its visibility timeout");
                    Disposition::Failed
                }
                Err(ProcessError::Permanent { reason }) => self.dead_letter(message, Some(&job), &reason).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Runs the worker, cut off at `deadline`. A message cut off is a transient failure: the
    /// task keeps any number already recorded for it, so the next delivery reuses it.
    async fn run_worker(
        &self,
        job: &Job,
        deadline: Option<Instant>,
    ) -> Result<crate::Outcome, ProcessError> {
        let Some(deadline) = deadline else {
            return self.worker.process(job, None).await;
        };
        if Instant::now() >= deadline {
            return Err(ProcessError::Transient {
                reason: "no time left before the invocation deadline".into(),
                retry_after: None,
            });
        }
        match tokio::time::timeout_at(deadline, self.worker.process(job, Some(deadline))).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ProcessError::Transient {
                reason: "processing stopped at the invocation deadline".into(),
                retry_after: None,
            }),
        }
    }

    /// Sends a message to the dead-letter queue. When that fails the message stays on the work
    /// queue: SQS delivers it again, and its redrive policy moves it after `maxReceiveCount`.
    async fn dead_letter(
        &self,
        message: &BatchMessage,
        job: Option<&Job>,
        reason: &str,
    ) -> Disposition {
        let letter = DeadLetter {
            body: &message.body,
            group_id: &message.group_id,
            dedup_id: &message.message_id,
            reason,
            original_message_id: &message.message_id,
            receive_count: message.receive_count,
            task_gid: job.map(|job| job.task_gid.as_str()),
            prefix: job.map(|job| job.prefix.as_str()),
        };
        match self.dead_letters.send_dead_letter(&letter).await {
            Ok(()) => {
                error!(%reason, "message moved to the dead-letter queue; inspect and replay it once the cause is fixed");
                Disposition::Handled
            }
            Err(send_error) => {
                error!(%reason, error = %send_error, "sending the message to the dead-letter queue failed; reported failed");
                Disposition::Failed
            }
        }
    }
}

/// Splits a batch into its message groups, in the order of each group's first message, keeping
/// the batch order inside each group.
fn split_groups(messages: Vec<BatchMessage>) -> Vec<Vec<BatchMessage>> {
    let mut groups: Vec<Vec<BatchMessage>> = Vec::new();
    for message in messages {
        match groups
            .iter_mut()
            .find(|group| group[0].group_id == message.group_id)
        {
            Some(group) => group.push(message),
            None => groups.push(vec![message]),
        }
    }
    groups
}

/// Converts an invocation deadline in milliseconds since the Unix epoch, as Lambda gives it, to
/// an [`Instant`] `margin` earlier, leaving time to return the response. A deadline already
/// past, or closer than `margin`, gives the current instant.
pub fn invocation_deadline(deadline_epoch_ms: u64, margin: Duration) -> Instant {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_epoch_ms);
    let remaining = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(message_id: &str, group_id: &str) -> BatchMessage {
        BatchMessage {
            message_id: message_id.into(),
            group_id: group_id.into(),
            body: String::new(),
            receive_count: None,
        }
    }

    #[test]
    fn groups_keep_batch_order() {
        let batch = vec![
            message("1", "a"),
            message("2", "b"),
            message("3", "a"),
            message("4", "c"),
        ];
        let groups: Vec<Vec<String>> = split_groups(batch)
            .into_iter()
            .map(|group| group.into_iter().map(|m| m.message_id).collect())
            .collect();
        assert_eq!(groups, vec![vec!["1", "3"], vec!["2"], vec!["4"]]);
    }

    #[test]
    fn deadline_leaves_the_margin() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let deadline = invocation_deadline(now_ms + 10_000, Duration::from_secs(2));
        let remaining = deadline - Instant::now();
        assert!(remaining <= Duration::from_secs(8), "{remaining:?} left");
        assert!(remaining > Duration::from_secs(7), "{remaining:?} left");
    }

    #[test]
    fn past_deadline_is_now() {
        let before = Instant::now();
        let deadline = invocation_deadline(1_000, Duration::from_secs(2));
        assert!(deadline >= before);
        assert!(deadline <= Instant::now());
    }
}

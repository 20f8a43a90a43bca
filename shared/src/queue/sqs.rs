//! The SQS FIFO implementation of [`Queue`], plus the calls the worker and operators make on the
//! dead-letter queue.
//!
//! [`SqsQueue::enqueue`] sends jobs with `SendMessageBatch`, at most [`MAX_BATCH_ENTRIES`] per
//! call, one call after the other so that SQS keeps their order. Each message has the task gid
//! as its message group id, [`Job::dedup_id`] as its deduplication id and [`Job::to_body`] as its
//! body. SQS may accept a call and still reject some of its entries: entries rejected through no
//! fault of the sender are sent again up to [`ENTRY_RETRIES`] times with a short backoff. An
//! entry that is still rejected, an entry rejected as the sender's fault, or a failed call is a
//! [`QueueError`], so ingest responds with 503 and Asana redelivers the events. The jobs SQS did
//! accept then come again with the same deduplication ids, and SQS drops them when they arrive
//! within its 5-minute deduplication window.
//!
//! One `SqsQueue` stands for one queue URL: the work queue in ingest, the dead-letter queue in
//! the worker. [`SqsQueue::send_dead_letter`] records why a message failed in message attributes
//! ([`REASON_ATTRIBUTE`] and the others below); [`SqsQueue::receive`], [`SqsQueue::delete`],
//! [`SqsQueue::send_message`], [`SqsQueue::message_counts`] and [`SqsQueue::purge`] serve tests
//! and the operator commands that list, replay and purge dead letters.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use tracing::warn;

use super::{Queue, QueueError};
use crate::job::Job;

/// Most entries SQS accepts in one `SendMessageBatch` or `ReceiveMessage` call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// How often entries that SQS rejected inside an accepted call are sent again.
pub const ENTRY_RETRIES: usize = 3;

/// Message attribute of a dead letter: why it failed.
pub const REASON_ATTRIBUTE: &str = "reason";
/// Message attribute of a dead letter: the task gid, when the body was a job.
pub const TASK_GID_ATTRIBUTE: &str = "task_gid";
/// Message attribute of a dead letter: the prefix, when the body was a job.
pub const PREFIX_ATTRIBUTE: &str = "prefix";
/// Message attribute of a dead letter: the id the message had on the work queue.
pub const ORIGINAL_MESSAGE_ID_ATTRIBUTE: &str = "original_message_id";
/// Message attribute of a dead letter: how often the work queue had delivered it.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "receive_count";

/// Maximum length of the reason kept in a dead letter, in bytes. A longer reason is cut at a
/// character boundary.
const MAX_REASON_BYTES: usize = 1024;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// A message that failed for good, with the context the worker has about it.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The message body, unchanged.
    pub body: &'a str,
    /// The message group id the message had on the work queue.
    pub group_id: &'a str,
    /// Deduplication id on the dead-letter queue. The worker uses the original message id, so a
    /// second send after a crash within 5 minutes is dropped.
    pub dedup_id: &'a str,
    pub reason: &'a str,
    pub original_message_id: &'a str,
    /// How often the work queue had delivered the message, when known.
    pub receive_count: Option<u32>,
    /// Task gid and prefix, known when the body is a job.
    pub task_gid: Option<&'a str>,
    pub prefix: Option<&'a str>,
}

/// A message as [`SqsQueue::receive`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Handle for [`SqsQueue::delete`], valid until the visibility timeout ends.
    pub receipt_handle: String,
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// How often SQS has handed out the message, this time included.
    pub receive_count: u32,
    /// The string message attributes, such as [`REASON_ATTRIBUTE`].
    pub attributes: BTreeMap<String, String>,
}

/// Approximate message counts from `GetQueueAttributes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages available for receiving.
    pub visible: u64,
    /// Messages received and neither deleted nor visible again yet.
    pub in_flight: u64,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_string(),
        }
    }

    /// Builds an SQS client from the standard AWS environment: `AWS_REGION`, the credential
    /// variables that Lambda sets, and `AWS_ENDPOINT_URL` when set (tests point it at a local
    /// emulator). `operation_timeout` bounds one call, retries included.
    pub async fn client_from_env(operation_timeout: Duration) -> aws_sdk_sqs::Client {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_timeout(operation_timeout)
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await;
        aws_sdk_sqs::Client::new(&config)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends one message and returns its message id.
    pub async fn send_message(
        &self,
        body: &str,
        group_id: &str,
        dedup_id: &str,
    ) -> Result<String, QueueError> {
        self.send_with_attributes(body, group_id, dedup_id, BTreeMap::new())
            .await
    }

    /// Sends a message that failed for good to this queue, the dead-letter queue, with the reason,
    /// the original message id and, when known, the task gid and prefix as message attributes.
    pub async fn send_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), QueueError> {
        let mut attributes = BTreeMap::new();
        attributes.insert(
            REASON_ATTRIBUTE,
            truncate(letter.reason, MAX_REASON_BYTES).to_string(),
        );
        attributes.insert(
            ORIGINAL_MESSAGE_ID_ATTRIBUTE,
            letter.original_message_id.to_string(),
        );
        if let Some(receive_count) = letter.receive_count {
            attributes.insert(RECEIVE_COUNT_ATTRIBUTE, receive_count.to_string());
        }
        if let Some(task_gid) = letter.task_gid {
            attributes.insert(TASK_GID_ATTRIBUTE, task_gid.to_string());
        }
        if let Some(prefix) = letter.prefix {
            attributes.insert(PREFIX_ATTRIBUTE, prefix.to_string());
        }

        self.send_with_attributes(letter.body, letter.group_id, letter.dedup_id, attributes)
            .await
            .map(drop)
    }

    async fn send_with_attributes(
        &self,
        body: &str,
        group_id: &str,
        dedup_id: &str,
        attributes: BTreeMap<&str, String>,
    ) -> Result<String, QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(group_id)
            .message_deduplication_id(dedup_id);
        // SQS rejects empty attribute values, so an empty one is left out.
        for (name, value) in attributes
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
        {
            request = request.message_attributes(name, string_attribute(&value)?);
        }

        let output = request
            .send()
            .await
            .map_err(|error| unavailable("SendMessage", error))?;
        Ok(output.message_id().unwrap_or_default().to_string())
    }

    /// Receives up to `max_messages` (1 to 10) messages with their attributes, waiting up to
    /// `wait` (at most 20 s) for the first. `visibility_timeout` overrides the queue's.
    pub async fn receive(
        &self,
        max_messages: usize,
        wait: Duration,
        visibility_timeout: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let max_messages = max_messages.clamp(1, MAX_BATCH_ENTRIES) as i32;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max_messages)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .set_visibility_timeout(visibility_timeout.map(|timeout| timeout.as_secs() as i32))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|error| unavailable("ReceiveMessage", error))?;

        Ok(output
            .messages()
            .iter()
            .filter_map(received_message)
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|error| unavailable("DeleteMessage", error))?;
        Ok(())
    }

    /// Returns the approximate numbers of visible and in-flight messages.
    pub async fn message_counts(&self) -> Result<MessageCounts, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|error| unavailable("GetQueueAttributes", error))?;

        let count = |name: &QueueAttributeName| {
            output
                .attributes()
                .and_then(|attributes| attributes.get(name))
                .and_then(|value| value.parse::<u64>().ok())
        };
        Ok(MessageCounts {
            visible: count(&QueueAttributeName::ApproximateNumberOfMessages).unwrap_or(0),
            in_flight: count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .unwrap_or(0),
        })
    }

    /// Deletes every message of the queue. SQS allows one purge per queue every 60 seconds.
    pub async fn purge(&self) -> Result<(), QueueError> {
        self.client
            .purge_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|error| unavailable("PurgeQueue", error))?;
        Ok(())
    }

    /// Sends one chunk of at most [`MAX_BATCH_ENTRIES`] jobs, sending rejected entries again.
    async fn enqueue_chunk(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let mut pending = jobs
            .iter()
            .enumerate()
            .map(batch_entry)
            .collect::<Result<Vec<_>, _>>()?;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(ENTRY_RETRIES)
            .with_jitter()
            .build();

        loop {
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|error| unavailable("SendMessageBatch", error))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }

            let reason = failed
                .iter()
                .map(|entry| format!("{}: {}", entry.code(), entry.message().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ");
            let not_accepted = || QueueError::NotAccepted {
                failed: failed.len(),
                total: jobs.len(),
                reason: reason.clone(),
            };
            // An entry rejected as the sender's fault, such as an invalid parameter, fails again.
            if failed.iter().any(|entry| entry.sender_fault()) {
                return Err(not_accepted());
            }
            let Some(delay) = delays.next() else {
                return Err(not_accepted());
            };

            warn!(
                failed = failed.len(),
                total = jobs.len(),
                %reason,
                wait_ms = delay.as_millis() as u64,
                "SQS rejected some batch entries; sending them again"
            );
            pending.retain(|entry| failed.iter().any(|failure| failure.id() == entry.id()));
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    // NOTE: an entry sent again lands behind the entries of its call that SQS accepted the first
    // time. Ingest enqueues one job per task per delivery, so this cannot reorder the jobs of a
    // task there, and the worker re-reads the task for every job anyway.
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        for chunk in jobs.chunks(MAX_BATCH_ENTRIES) {
            self.enqueue_chunk(chunk).await?;
        }
        Ok(())
    }
}

/// Builds the batch entry of the job at `index` of its chunk, with the index as entry id.
fn batch_entry((index, job): (usize, &Job)) -> Result<SendMessageBatchRequestEntry, QueueError> {
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(job.to_body())
        .message_group_id(job.group_id())
        .message_deduplication_id(job.dedup_id())
        .build()
        .map_err(|error| {
            QueueError::Unavailable(format!("invalid SendMessageBatch entry: {error}"))
        })
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|error| QueueError::Unavailable(format!("invalid message attribute: {error}")))
}

/// Converts an SQS message. A message without an id or a receipt handle is logged and skipped.
fn received_message(message: &aws_sdk_sqs::types::Message) -> Option<ReceivedMessage> {
    let (Some(message_id), Some(receipt_handle)) = (message.message_id(), message.receipt_handle())
    else {
        warn!("SQS returned a message without a message id or receipt handle; message skipped");
        return None;
    };
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|attributes| attributes.get(&name))
            .cloned()
    };
    let attributes = message.message_attributes().into_iter().flatten();
    let attributes = attributes
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_string())))
        .collect();

    Some(ReceivedMessage {
        message_id: message_id.to_string(),
        receipt_handle: receipt_handle.to_string(),
        body: message.body().unwrap_or_default().to_string(),
        group_id: system(MessageSystemAttributeName::MessageGroupId),
        dedup_id: system(MessageSystemAttributeName::MessageDeduplicationId),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse().ok())
            .unwrap_or(0),
        attributes,
    })
}

/// Maps a failed SQS call, with the error code and message SQS returned.
fn unavailable<E>(operation: &str, error: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = match error.code() {
        Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
        None => DisplayErrorContext(&error).to_string(),
    };
    QueueError::Unavailable(format!("SQS {operation} failed: {detail}"))
}

/// Cuts `text` to at most `max_bytes` bytes at a character boundary.
fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let end = (0..=max_bytes)
        .rev()
        .find(|&end| text.is_char_boundary(end))
        .unwrap_or(0);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}

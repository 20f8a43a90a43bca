//! [`DeadLetterQueue`] over an SQS FIFO dead-letter queue and its work queue.
//!
//! Messages reach the dead-letter queue two ways. SQS moves a message there after the work
//! queue's `maxReceiveCount` receives, without a reason attribute, so the reason shown is
//! [`MAX_RECEIVES_REASON`]. The worker sends a permanent failure there with
//! [`SqsQueue::send_dead_letter`], which puts the reason in the [`REASON_ATTRIBUTE`] message
//! attribute.
//!
//! Reading a message from SQS means receiving it, which hides it for a visibility timeout and
//! adds one to its receive count. SQS has no other way to read a message, so every `list`
//! raises the receive count of the messages it shows by one. `list` and a replay make the
//! messages they leave behind visible again at once with `ChangeMessageVisibility` 0. If the
//! process dies first, they reappear after [`LIST_VISIBILITY`] or [`HOLD_VISIBILITY`].
//!
//! A replay sends the copy to the work queue and only then deletes the original. The copy keeps
//! the message group and carries a deduplication id derived from the dead letter's message id,
//! sequence number and sent timestamp. If the run stops between the send and the delete, the
//! original reappears and the next replay sends it again with the same id, which SQS drops
//! within its 5-minute deduplication window. After that window the work queue gets a second
//! copy, which the worker handles like any redelivery: the task keeps its one number.
//!
//! NOTE: a FIFO queue returns no message of a message group while an earlier message of that
//! group is hidden, so `list` and a replay can miss later messages of a task whose first dead
//! letter they hold. Running the replay again picks them up.

mod errors;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use sha2::{Digest, Sha256};

use errors::{failed, locate, DLQ_URL_VARIABLE, QUEUE_URL_VARIABLE};

use super::{
    DeadLetterEntry, DeadLetterQueue, Depth, ReplayOptions, ReplayOutcome, ReplayReporter,
    ReplaySummary,
};
use crate::db::now_millis;
use crate::queue::{
    MessageCounts, QueueError, SqsQueue, MAX_BATCH_ENTRIES, REASON_ATTRIBUTE,
    RECEIVE_COUNT_ATTRIBUTE,
};

/// The reason shown for a message that SQS moved after too many receives.
pub const MAX_RECEIVES_REASON: &str = "max receives exceeded";

/// How long a received dead letter stays hidden while a replay works on it.
pub const HOLD_VISIBILITY: Duration = Duration::from_secs(60);

/// How long a dead letter stays hidden while `list` pages through the queue. Shorter than
/// [`HOLD_VISIBILITY`] because `list` only reads, and the messages must stay hidden only until
/// the listing ends, when they are made visible again anyway.
pub const LIST_VISIBILITY: Duration = Duration::from_secs(30);

/// Long-poll wait of each receive. A long poll queries all of SQS's servers, so an empty
/// response means the queue has no visible message.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Upper bound of one SQS call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A work queue and its dead-letter queue, both SQS FIFO.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    work: SqsQueue,
    dead: SqsQueue,
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl SqsDeadLetters {
    /// `queue_url` is the work queue (`AUTONUMBER_QUEUE_URL`), `dlq_url` its dead-letter queue
    /// (`AUTONUMBER_DLQ_URL`).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str, dlq_url: &str) -> Self {
        Self {
            work: SqsQueue::new(client.clone(), queue_url),
            dead: SqsQueue::new(client.clone(), dlq_url),
            client,
        }
    }

    /// Builds the client from the AWS SDK's default configuration, which reads the region,
    /// the credentials and `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` from the environment.
    pub async fn from_env(queue_url: &str, dlq_url: &str) -> Self {
        let client = SqsQueue::client_from_env(OPERATION_TIMEOUT).await;
        Self::new(client, queue_url, dlq_url)
    }

    /// Receives up to 10 dead letters and hides them for `visibility`.
    pub async fn receive(&self, visibility: Duration) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let url = self.dead.queue_url();
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(seconds(RECEIVE_WAIT))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|error| failed("ReceiveMessage", url, DLQ_URL_VARIABLE, error))?;
        let now = now_millis();
        Ok(output
            .messages()
            .iter()
            .map(|message| entry(message, now))
            .collect())
    }

    /// Sends a copy of `letter` to the work queue, in the same message group, with a
    /// deduplication id that is the same for every receive of this dead letter.
    pub async fn forward(&self, letter: &DeadLetterEntry) -> Result<(), QueueError> {
        self.work
            .send_message(&letter.body, &letter.group_id, &replay_dedup_id(letter))
            .await
            .map(drop)
            .map_err(|error| locate(self.work.queue_url(), QUEUE_URL_VARIABLE, error))
    }

    /// Deletes a received dead letter.
    pub async fn delete(&self, letter: &DeadLetterEntry) -> Result<(), QueueError> {
        self.dead
            .delete(receipt_handle(letter)?)
            .await
            .map_err(|error| locate(self.dead.queue_url(), DLQ_URL_VARIABLE, error))
    }

    /// Makes received dead letters visible again at once.
    pub async fn release(&self, letters: &[DeadLetterEntry]) -> Result<(), QueueError> {
        let url = self.dead.queue_url();
        for chunk in letters.chunks(MAX_BATCH_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (index, letter) in chunk.iter().enumerate() {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(receipt_handle(letter)?)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|error| {
                        QueueError::Unavailable(format!(
                            "cannot build a ChangeMessageVisibilityBatch entry: {error}"
                        ))
                    })?;
                entries.push(entry);
            }
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| {
                    failed("ChangeMessageVisibilityBatch", url, DLQ_URL_VARIABLE, error)
                })?;
            if let Some(failed) = output.failed().first() {
                return Err(QueueError::Unavailable(format!(
                    "SQS ChangeMessageVisibilityBatch on {url} failed for {} messages: {}",
                    output.failed().len(),
                    failed.message().unwrap_or(failed.code())
                )));
            }
        }
        Ok(())
    }

    /// Makes received messages visible again. A failure only delays them, because they reappear
    /// after their visibility timeout anyway, so it is logged and not returned.
    async fn release_in_flight(&self, in_flight: InFlight) {
        let letters: Vec<DeadLetterEntry> = in_flight.0.into_values().collect();
        if let Err(error) = self.release(&letters).await {
            tracing::warn!(
                count = letters.len(),
                %error,
                "could not make dead letters visible again; they reappear after the visibility timeout"
            );
        }
    }

    async fn dead_counts(&self) -> Result<MessageCounts, QueueError> {
        self.dead
            .message_counts()
            .await
            .map_err(|error| locate(self.dead.queue_url(), DLQ_URL_VARIABLE, error))
    }

    /// Replays one received dead letter. Every outcome but `Replayed` leaves it received.
    async fn replay_one(&self, options: &ReplayOptions, letter: &DeadLetterEntry) -> ReplayOutcome {
        if !options.wants(letter) {
            return ReplayOutcome::Skipped("other prefix".into());
        }
        if options.dry_run {
            return ReplayOutcome::WouldReplay;
        }
        if let Err(error) = self.forward(letter).await {
            return ReplayOutcome::Failed(error.to_string());
        }
        match self.delete(letter).await {
            Ok(()) => ReplayOutcome::Replayed,
            Err(error) => ReplayOutcome::Failed(format!(
                "sent to the work queue, but deleting it from the dead-letter queue failed, so \
                 run the replay again within 5 minutes: {error}"
            )),
        }
    }
}

/// Dead letters received and not deleted, by message id. A message received again replaces the
/// earlier copy, because only the latest receipt handle can change its visibility.
#[derive(Default)]
struct InFlight(HashMap<String, DeadLetterEntry>);

impl InFlight {
    fn keep(&mut self, letter: DeadLetterEntry) {
        self.0.insert(letter.id.clone(), letter);
    }
}

/// Builds the deduplication id of a replay: SHA-256 over the dead letter's message id, FIFO
/// sequence number and sent timestamp. These stay the same while the message waits in the
/// dead-letter queue. Real SQS resets the sent timestamp when it moves a message to a FIFO
/// dead-letter queue, so a message dead-lettered again gets a new id.
fn replay_dedup_id(letter: &DeadLetterEntry) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"replay\0");
    hasher.update(letter.replay_key.as_bytes());
    hex::encode(hasher.finalize())
}

fn receipt_handle(letter: &DeadLetterEntry) -> Result<&str, QueueError> {
    letter.receipt_handle.as_deref().ok_or_else(|| {
        QueueError::Unavailable(format!("dead letter {} has no receipt handle", letter.id))
    })
}

fn entry(message: &Message, now: i64) -> DeadLetterEntry {
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|attributes| attributes.get(&name))
            .cloned()
    };
    let custom = |name: &str| {
        message
            .message_attributes()
            .and_then(|attributes| attributes.get(name))
            .and_then(|value| value.string_value())
            .map(str::to_owned)
    };
    let reason = custom(REASON_ATTRIBUTE);
    let id = message.message_id().unwrap_or_default().to_owned();
    let sent_at = system(MessageSystemAttributeName::SentTimestamp);
    let sequence = system(MessageSystemAttributeName::SequenceNumber);
    let age_millis = sent_at
        .as_deref()
        .and_then(|sent| sent.parse::<i64>().ok())
        .map_or(0, |sent| {
            u64::try_from(now.saturating_sub(sent)).unwrap_or(0)
        });

    // The worker records the work queue's count in an attribute. A message SQS moved keeps its
    // receive count instead, to which this receive adds one.
    // NOTE: the carried-over count was checked against moto 5, not against AWS.
    let receive_count = match reason {
        Some(_) => custom(RECEIVE_COUNT_ATTRIBUTE).and_then(|count| count.parse::<u32>().ok()),
        None => system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse::<u32>().ok())
            .map(|count| count.saturating_sub(1)),
    };

    DeadLetterEntry {
        group_id: system(MessageSystemAttributeName::MessageGroupId).unwrap_or_default(),
        body: message.body().unwrap_or_default().to_owned(),
        reason: reason.unwrap_or_else(|| MAX_RECEIVES_REASON.to_owned()),
        receive_count,
        age: Duration::from_millis(age_millis),
        receipt_handle: message.receipt_handle().map(str::to_owned),
        replay_key: format!(
            "{id}\0{}\0{}",
            sequence.unwrap_or_default(),
            sent_at.unwrap_or_default()
        ),
        id,
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetters {
    fn describe(&self) -> String {
        format!(
            "SQS queue {} with dead-letter queue {}",
            self.work.queue_url(),
            self.dead.queue_url()
        )
    }

    fn describe_dead_letters(&self) -> String {
        format!("SQS dead-letter queue {}", self.dead.queue_url())
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let work = self
            .work
            .message_counts()
            .await
            .map_err(|error| locate(self.work.queue_url(), QUEUE_URL_VARIABLE, error))?;
        let dead = self.dead_counts().await?;
        Ok(Depth {
            queued: work.visible,
            in_flight: Some(work.in_flight),
            dead: dead.visible + dead.in_flight,
        })
    }

    async fn list(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let mut listed: Vec<DeadLetterEntry> = Vec::new();
        let mut in_flight = InFlight::default();
        let mut seen = HashSet::new();
        let result = async {
            while listed.len() < limit {
                let batch = self.receive(LIST_VISIBILITY).await?;
                let before = listed.len();
                for letter in batch {
                    if seen.insert(letter.id.clone()) && listed.len() < limit {
                        listed.push(letter.clone());
                    }
                    in_flight.keep(letter);
                }
                if listed.len() == before {
                    return Ok(());
                }
            }
            Ok::<(), QueueError>(())
        }
        .await;
        self.release_in_flight(in_flight).await;
        result.map(|()| listed)
    }

    async fn replay(
        &self,
        options: &ReplayOptions,
        report: &mut ReplayReporter<'_>,
    ) -> Result<ReplaySummary, QueueError> {
        let mut summary = ReplaySummary::default();
        let mut in_flight = InFlight::default();
        let mut seen = HashSet::new();
        let result = async {
            while !options.reached_max(summary.moved()) {
                let batch = self.receive(HOLD_VISIBILITY).await?;
                let mut fresh = false;
                for letter in batch {
                    if !seen.insert(letter.id.clone()) || options.reached_max(summary.moved()) {
                        in_flight.keep(letter);
                        continue;
                    }
                    fresh = true;
                    let outcome = self.replay_one(options, &letter).await;
                    summary.count(&outcome);
                    report(&letter, &outcome);
                    if outcome != ReplayOutcome::Replayed {
                        in_flight.keep(letter);
                    }
                }
                if !fresh {
                    return Ok(());
                }
            }
            Ok::<(), QueueError>(())
        }
        .await;
        self.release_in_flight(in_flight).await;
        result.map(|()| summary)
    }

    async fn dead_count(&self) -> Result<u64, QueueError> {
        let dead = self.dead_counts().await?;
        Ok(dead.visible + dead.in_flight)
    }

    async fn purge(&self) -> Result<u64, QueueError> {
        let before = self.dead_counts().await?;
        self.dead
            .purge()
            .await
            .map_err(|error| locate(self.dead.queue_url(), DLQ_URL_VARIABLE, error))?;
        Ok(before.visible + before.in_flight)
    }
}

//! SQS queues in moto, the AWS emulator that `scripts/with-services` starts.
//!
//! [`sqs_client`] talks to the moto server named by `AUTONUMBER_TEST_SQS_ENDPOINT` with dummy
//! credentials, so a test can never reach AWS. [`FifoQueues::create`] makes a FIFO work queue
//! and its FIFO dead-letter queue under names no other test uses, and [`EventSource`] hands
//! their messages to a worker as Lambda's event source mapping does.
//!
//! NOTE: moto 5 drops a deduplication id once its message is deleted, while SQS keeps it for 5
//! minutes, and moto does not implement `StartMessageMoveTask`. Tests depend on neither.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Value};

/// Name of the variable that contains moto's URL.
pub const SQS_ENDPOINT_VAR: &str = "AUTONUMBER_TEST_SQS_ENDPOINT";

/// Region used with moto.
pub const REGION: &str = "us-east-1";

/// Returns moto's URL.
///
/// # Panics
/// When `AUTONUMBER_TEST_SQS_ENDPOINT` is not set.
pub fn sqs_endpoint() -> String {
    std::env::var(SQS_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{SQS_ENDPOINT_VAR} is not set: run the tests through scripts/test or \
             scripts/with-services"
        )
    })
}

/// Returns a client configuration for moto with dummy credentials, for tests that add
/// interceptors or change timeouts before building the client.
pub fn sqs_config() -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(sqs_endpoint())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
}

/// Returns a client for moto.
pub fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config().build())
}

/// Returns a queue name, without the `.fifo` suffix, that no other test or earlier run uses.
pub fn unique_name(label: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{nanos}-{sequence}", std::process::id())
}

/// A FIFO work queue whose redrive policy moves messages to a FIFO dead-letter queue.
#[derive(Debug, Clone)]
pub struct FifoQueues {
    pub queue_url: String,
    pub dlq_url: String,
    /// ARN of the work queue, for SQS events.
    pub queue_arn: String,
}

impl FifoQueues {
    /// Creates the two queues. SQS moves a message to the dead-letter queue on the receive after
    /// its `max_receive_count`-th; `visibility_timeout_seconds` is the work queue's default.
    pub async fn create(
        client: &aws_sdk_sqs::Client,
        label: &str,
        max_receive_count: u32,
        visibility_timeout_seconds: u32,
    ) -> anyhow::Result<FifoQueues> {
        let name = unique_name(label);
        let dlq_url = create_fifo_queue(client, &format!("{name}-dlq"), Vec::new()).await?;
        let dlq_arn = queue_arn(client, &dlq_url).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count,
        });
        let attributes = vec![
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_seconds.to_string(),
            ),
        ];
        let queue_url = create_fifo_queue(client, &name, attributes).await?;
        let queue_arn = queue_arn(client, &queue_url).await?;
        Ok(FifoQueues {
            queue_url,
            dlq_url,
            queue_arn,
        })
    }
}

/// Creates a FIFO queue without content-based deduplication and returns its URL.
pub async fn create_fifo_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> anyhow::Result<String> {
    let mut request = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    for (name, value) in attributes {
        request = request.attributes(name, value);
    }
    let output = request
        .send()
        .await
        .with_context(|| format!("failed to create the FIFO queue {name} in moto"))?;
    output
        .queue_url()
        .map(str::to_owned)
        .context("CreateQueue returned no queue URL")
}

/// Returns the ARN of a queue.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<String> {
    let output = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("failed to read the attributes of {queue_url}"))?;
    let arn = output
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn));
    arn.cloned()
        .context("GetQueueAttributes returned no QueueArn")
}

/// An emulation of Lambda's SQS event source mapping with `ReportBatchItemFailures`: it
/// receives a batch, hands it over as the SQS event JSON that Lambda sends, and deletes the
/// messages that the function's response does not name as failed.
#[derive(Debug, Clone)]
pub struct EventSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
}

/// One received batch.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The event as Lambda sends it to the function.
    pub event: Value,
    /// Message ids in batch order.
    pub message_ids: Vec<String>,
    receipt_handles: HashMap<String, String>,
}

impl EventSource {
    pub fn new(client: aws_sdk_sqs::Client, queues: &FifoQueues) -> EventSource {
        EventSource {
            client,
            queue_url: queues.queue_url.clone(),
            queue_arn: queues.queue_arn.clone(),
        }
    }

    /// Receives up to 10 messages, waiting up to 1 s. `visibility_timeout` overrides the
    /// queue's, in seconds; 0 makes a failed message visible again at once.
    pub async fn receive(&self, visibility_timeout: Option<i32>) -> anyhow::Result<ReceivedEvent> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .set_visibility_timeout(visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .context("ReceiveMessage on moto failed")?;

        let mut records = Vec::new();
        let mut message_ids = Vec::new();
        let mut receipt_handles = HashMap::new();
        for message in output.messages() {
            let message_id = message.message_id().context("message without id")?;
            let receipt_handle = message
                .receipt_handle()
                .context("message without receipt")?;
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.as_str())))
                .collect();
            records.push(json!({
                "messageId": message_id,
                "receiptHandle": receipt_handle,
                "body": message.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": REGION,
            }));
            message_ids.push(message_id.to_owned());
            receipt_handles.insert(message_id.to_owned(), receipt_handle.to_owned());
        }
        Ok(ReceivedEvent {
            event: json!({ "Records": records }),
            message_ids,
            receipt_handles,
        })
    }

    /// Deletes the messages of `event` that `failed` does not name.
    pub async fn settle(&self, event: &ReceivedEvent, failed: &[String]) -> anyhow::Result<()> {
        for message_id in &event.message_ids {
            if failed.contains(message_id) {
                continue;
            }
            self.client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(&event.receipt_handles[message_id])
                .send()
                .await
                .with_context(|| format!("DeleteMessage of {message_id} on moto failed"))?;
        }
        Ok(())
    }
}

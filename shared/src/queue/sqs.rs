//! The SQS FIFO implementation of [`Queue`].

use async_trait::async_trait;

use super::{Queue, QueueError};
use crate::job::Job;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        Self { client, queue_url: queue_url.to_string() }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let _ = (&self.client, &self.queue_url, jobs);
        Err(QueueError::Unavailable("SQS queue not implemented yet".into()))
    }
}

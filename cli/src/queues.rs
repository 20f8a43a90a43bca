//! The work queue and dead-letter queue a command works against, chosen from the environment:
//! SQS when `AUTONUMBER_QUEUE_URL` and `AUTONUMBER_DLQ_URL` are set, else the embedded queue in
//! the data directory that `serve` uses. The AWS SDK reads the region, the credentials and
//! `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` itself.

use std::sync::Arc;

use autonumber_shared::config::{self, ConfigError};
use autonumber_shared::dlq::{DeadLetterQueue, EmbeddedDeadLetters, SqsDeadLetters};

use crate::backend::StoreArgs;

/// The SQS queue URLs, when the environment names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsUrls {
    pub queue_url: String,
    pub dlq_url: String,
}

/// Reads `AUTONUMBER_QUEUE_URL` and `AUTONUMBER_DLQ_URL`: both or neither.
pub fn sqs_urls_from_env() -> Result<Option<SqsUrls>, ConfigError> {
    let missing = |variable: &'static str, other: &str, what: &str| ConfigError {
        variable,
        problem: "is not set".into(),
        fix: format!("set it to the URL of the {what}, or unset {other} to use the embedded queue"),
    };
    match (config::var(config::QUEUE_URL), config::var(config::DLQ_URL)) {
        (None, None) => Ok(None),
        (Some(queue_url), Some(dlq_url)) => {
            config::check_http_url(config::QUEUE_URL, &queue_url)?;
            config::check_http_url(config::DLQ_URL, &dlq_url)?;
            Ok(Some(SqsUrls { queue_url, dlq_url }))
        }
        (Some(_), None) => Err(missing(
            config::DLQ_URL,
            config::QUEUE_URL,
            "SQS FIFO dead-letter queue",
        )),
        (None, Some(_)) => Err(missing(
            config::QUEUE_URL,
            config::DLQ_URL,
            "SQS FIFO work queue",
        )),
    }
}

/// Opens the dead-letter queue: SQS when its variables are set, else the embedded one.
pub async fn dead_letter_queue(store: &StoreArgs) -> anyhow::Result<Arc<dyn DeadLetterQueue>> {
    if let Some(urls) = sqs_urls_from_env()? {
        let queue = SqsDeadLetters::from_env(&urls.queue_url, &urls.dlq_url).await;
        return Ok(Arc::new(queue));
    }
    let db = crate::backend::open_database(&store.data_dir())?;
    Ok(Arc::new(EmbeddedDeadLetters::new(db)))
}

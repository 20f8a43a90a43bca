//! The worker Lambda: SQS FIFO batches from the work queue go through [`BatchWorker::process`],
//! which numbers and renames the tasks, and the ids of the messages that failed go back as
//! batch item failures, so SQS delivers only those again.
//!
//! Configuration, read once per cold start: `ASANA_PERSONAL_KEY` and `ASANA_API_URL`,
//! `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`, `AUTONUMBER_DLQ_URL` (the
//! dead-letter queue), `AUTONUMBER_NAME_FORMAT`, `AUTONUMBER_ASANA_REQUESTS_PER_MINUTE`,
//! `RUST_LOG` and `AUTONUMBER_LOG_FORMAT`, plus the AWS variables Lambda sets. A missing or
//! invalid variable stops the process with a message naming it.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use autonumber_shared::asana::{AsanaClient, RateLimits};
use autonumber_shared::batch::{invocation_deadline, BatchWorker};
use autonumber_shared::config::{self, ConfigError};
use autonumber_shared::lambda::{batch_messages, batch_response, init_logging};
use autonumber_shared::naming::{NameFormat, DEFAULT_NAME_FORMAT};
use autonumber_shared::queue::SqsQueue;
use autonumber_shared::store::UpstashStore;
use autonumber_shared::Worker;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use tracing::info;

/// Time kept free before the invocation deadline to send the response: no message starts and
/// no wait runs inside it.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Upper bound of one Asana request.
const ASANA_TIMEOUT: Duration = Duration::from_secs(15);

/// Upper bound of one Upstash request; the store applies its own, shorter limit too.
const UPSTASH_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound of one SQS call to the dead-letter queue, retries included.
const SQS_TIMEOUT: Duration = Duration::from_secs(10);

/// Asana requests per minute when `AUTONUMBER_ASANA_REQUESTS_PER_MINUTE` is unset: the limit
/// of a paid workspace.
const DEFAULT_REQUESTS_PER_MINUTE: u32 = 1500;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(error) = init_logging() {
        eprintln!("worker: {error}");
        return ExitCode::FAILURE;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "worker stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let batch_worker = build_batch_worker().await?;
    let batch_worker = &batch_worker;

    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Infallible>(process_event(batch_worker, event).await)
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|error| anyhow::anyhow!(error))
        .context("the Lambda runtime failed")
}

async fn process_event(
    batch_worker: &BatchWorker,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let deadline = invocation_deadline(event.context.deadline, DEADLINE_MARGIN);
    let messages = batch_messages(event.payload);
    let received = messages.len();

    let failed = batch_worker.process(messages, Some(deadline)).await;
    info!(received, failed = failed.len(), "batch processed");
    batch_response(failed)
}

/// Reads the configuration and builds the worker and the clients, once per cold start.
async fn build_batch_worker() -> anyhow::Result<BatchWorker> {
    let asana = config::asana_from_env()?;
    let upstash = config::upstash_from_env()?.ok_or_else(|| ConfigError {
        variable: config::UPSTASH_URL,
        problem: "is not set".into(),
        fix: "set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN of the Upstash database"
            .into(),
    })?;
    let dlq_url = config::var(config::DLQ_URL).ok_or_else(|| ConfigError {
        variable: config::DLQ_URL,
        problem: "is not set".into(),
        fix: "set it to the URL of the SQS FIFO dead-letter queue".into(),
    })?;
    let format = name_format()?;
    let requests_per_minute =
        config::positive_from_env(config::REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_MINUTE)?;

    let limits = RateLimits {
        requests_per_minute,
        ..RateLimits::default()
    };
    let asana_client = AsanaClient::new(
        http_client(ASANA_TIMEOUT)?,
        &asana.api_url,
        asana.token.expose(),
        limits,
    );
    let store = UpstashStore::new(
        &upstash.url,
        upstash.token.expose(),
        http_client(UPSTASH_TIMEOUT)?,
    );
    let worker = Worker::new(asana_client, Arc::new(store), format);
    let dead_letters = SqsQueue::new(SqsQueue::client_from_env(SQS_TIMEOUT).await, &dlq_url);

    info!(
        asana_api_url = asana.api_url,
        dlq_url, requests_per_minute, "worker configured"
    );
    Ok(BatchWorker::new(worker, dead_letters))
}

/// Reads `AUTONUMBER_NAME_FORMAT`, or the default format when unset.
fn name_format() -> Result<NameFormat, ConfigError> {
    let template = config::var(config::NAME_FORMAT).unwrap_or_else(|| DEFAULT_NAME_FORMAT.into());
    NameFormat::parse(&template).map_err(|error| ConfigError {
        variable: config::NAME_FORMAT,
        problem: format!("is invalid: {error}"),
        fix: format!("set a template such as {DEFAULT_NAME_FORMAT:?}"),
    })
}

fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("asana-autonumber/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("failed to build the HTTP client")
}

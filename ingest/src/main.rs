//! The ingest Lambda: Asana webhook deliveries arrive through the function URL and go to
//! [`Ingest::handle`], which verifies them and enqueues their jobs on the SQS FIFO work queue.
//!
//! Configuration, read once per cold start: `AUTONUMBER_QUEUE_URL` (the work queue),
//! `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` (webhook secrets), `RUST_LOG` and
//! `AUTONUMBER_LOG_FORMAT`, plus the AWS variables Lambda sets. A missing variable stops the
//! process with a message naming it.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use autonumber_shared::config::{self, ConfigError};
use autonumber_shared::lambda::{handle_function_url, init_logging};
use autonumber_shared::queue::SqsQueue;
use autonumber_shared::store::UpstashStore;
use autonumber_shared::Ingest;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{service_fn, LambdaEvent};

/// Upper bound of one SQS call, retries included. Asana expects a response within 10 s and the
/// function times out after 5 s.
const SQS_TIMEOUT: Duration = Duration::from_secs(3);

/// Upper bound of one Upstash request; the store applies its own, shorter limit too.
const UPSTASH_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(error) = init_logging() {
        eprintln!("ingest: {error}");
        return ExitCode::FAILURE;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "ingest stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let ingest = build_ingest().await?;
    let ingest = &ingest;

    let handler = service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Infallible>(handle_function_url(ingest, event.payload).await)
        },
    );
    lambda_runtime::run(handler)
        .await
        .map_err(|error| anyhow::anyhow!(error))
        .context("the Lambda runtime failed")
}

/// Reads the configuration and builds the clients, once per cold start.
async fn build_ingest() -> anyhow::Result<Ingest> {
    let queue_url = config::var(config::QUEUE_URL).ok_or_else(|| ConfigError {
        variable: config::QUEUE_URL,
        problem: "is not set".into(),
        fix: "set it to the URL of the SQS FIFO work queue".into(),
    })?;
    let upstash = config::upstash_from_env()?.ok_or_else(|| ConfigError {
        variable: config::UPSTASH_URL,
        problem: "is not set".into(),
        fix: "set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN of the Upstash database"
            .into(),
    })?;

    let http = reqwest::Client::builder()
        .timeout(UPSTASH_TIMEOUT)
        .build()
        .context("failed to build the HTTP client")?;
    let store = UpstashStore::new(&upstash.url, upstash.token.expose(), http);
    let sqs = SqsQueue::client_from_env(SQS_TIMEOUT).await;
    let queue = SqsQueue::new(sqs, &queue_url);
    tracing::info!(queue_url, "ingest configured");
    Ok(Ingest::new(Arc::new(store), Arc::new(queue)))
}

//! `autonumber serve`: the webhook route, the embedded durable queue and a worker pool in one
//! process. SIGTERM or Ctrl-C stops accepting requests, lets in-flight messages finish and
//! leaves the rest queued for the next start.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autonumber_shared::config;
use autonumber_shared::db::Database;
use autonumber_shared::local::{app, WorkerPool, WorkerPoolConfig};
use autonumber_shared::naming::{NameFormat, DEFAULT_NAME_FORMAT};
use autonumber_shared::queue::SqliteQueue;
use autonumber_shared::{Ingest, Worker};
use clap::Args;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::backend::{asana_client, AsanaArgs, Backend, StoreArgs};
use crate::UsageError;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port the webhook route listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: SocketAddr,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,

    /// Log the renames that would be made instead of making them. Numbers are still assigned.
    #[arg(long)]
    dry_run: bool,

    /// New task name, from the placeholders {prefix}, {number} and {name}.
    #[arg(long, env = autonumber_shared::config::NAME_FORMAT, default_value = DEFAULT_NAME_FORMAT, value_name = "FORMAT")]
    name_format: String,

    /// Messages processed at once (different tasks; one task's messages never run together).
    #[arg(long, default_value_t = 8, value_name = "COUNT", value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,

    /// How long a received message stays invisible before it is delivered again if its
    /// worker dies, in seconds. A live worker keeps extending it while it works.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(5..=43_200))]
    visibility_timeout: u64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let format = NameFormat::parse(&args.name_format)
        .map_err(|e| UsageError(format!("--name-format (AUTONUMBER_NAME_FORMAT): {e}")))?;
    let (asana, _config) = asana_client(&args.asana)?;
    let data_dir = args.store.data_dir();
    let _lock = lock_data_dir(&data_dir)?;

    // The queue always lives in the data directory, so serve creates it without a warning.
    let db = Database::open(&data_dir).with_context(|| {
        format!(
            "cannot open the embedded database in {}",
            data_dir.display()
        )
    })?;
    let backend = Backend::from_env(&args.store)?;
    let store = backend.store();
    let queue = SqliteQueue::new(db, Duration::from_secs(args.visibility_timeout));
    let reset = queue.reset_in_flight().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;

    info!(
        listen = %args.listen,
        data_dir = %data_dir.display(),
        store = %backend.describe(),
        asana_api_url = %asana.base_url(),
        asana_token = "set (masked)",
        name_format = %format.as_str(),
        dry_run = args.dry_run,
        concurrency = args.concurrency,
        visibility_timeout_s = args.visibility_timeout,
        asana_timeout_s = args.asana.asana_timeout,
        requests_per_minute = args.asana.requests_per_minute,
        messages_redelivered_after_restart = reset,
        "autonumber serve starting"
    );

    if config::var(config::QUEUE_URL).is_some() || config::var(config::DLQ_URL).is_some() {
        warn!(
            data_dir = %data_dir.display(),
            "AUTONUMBER_QUEUE_URL or AUTONUMBER_DLQ_URL is set, but serve always uses the embedded queue in its data directory; dlq and doctor run with the same variables inspect SQS instead"
        );
    }

    let worker = Worker::new(asana, store.clone(), format).with_dry_run(args.dry_run);
    let pool_config = WorkerPoolConfig {
        concurrency: usize::from(args.concurrency),
        ..WorkerPoolConfig::default()
    };
    let pool = WorkerPool::new(queue.clone(), worker, queue.wake(), pool_config);
    let (stop, stopped) = watch::channel(false);
    let pool = tokio::spawn(pool.run(stopped));

    let ingest = Ingest::new(store, Arc::new(queue));
    info!(listen = %listener.local_addr()?, "listening for webhooks at POST /webhooks/{{PREFIX}}");
    axum::serve(
        listener,
        app(ingest).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server failed")?;

    info!("stopping: finishing messages in flight; the rest stay queued");
    let _ = stop.send(true);
    pool.await.context("worker pool panicked")?;
    info!("autonumber serve stopped");
    Ok(ExitCode::SUCCESS)
}

/// Takes an exclusive lock on the data directory, so two `serve` processes never hand out the
/// same queued messages.
fn lock_data_dir(dir: &PathBuf) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join("serve.lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(UsageError(format!(
            "another `autonumber serve` is running on {}: stop it or pass another --data-dir",
            dir.display()
        ))
        .into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    info!("shutdown signal received");
}

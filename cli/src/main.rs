//! `autonumber`: runs the whole pipeline on one machine and manages webhooks, counters, the
//! dead-letter queue and backfills. Each subcommand lives in its own module; this file parses
//! arguments, sets up logging and maps failures to exit codes (0 success, 1 failed operation,
//! 2 bad usage or configuration).

mod backend;
mod backfill;
mod counters;
mod dlq;
mod doctor;
mod logging;
mod progress;
mod queues;
mod serve;
mod text;
mod webhook_admin;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// Gives Asana tasks stable ticket numbers such as `BUG-42: Fix login`.
#[derive(Debug, Parser)]
#[command(name = "autonumber", version, about, propagate_version = true, after_help = ENVIRONMENT)]
struct Cli {
    /// Log format: `text` for terminals, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "AUTONUMBER_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook route, the durable queue and the workers in one process.
    Serve(serve::ServeArgs),
    /// Create, list and delete Asana webhooks.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Read and set the counters that numbers come from.
    #[command(subcommand)]
    Counters(counters::CountersCommand),
    /// List, replay and purge dead-lettered messages (embedded queue or SQS).
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Number a project's tasks that have no number yet, oldest first.
    Backfill(backfill::BackfillArgs),
    /// Check the configuration, Asana, the store, the queues and each registered prefix.
    Doctor(doctor::DoctorArgs),
}

/// Environment variables, shown under every command's `--help`.
const ENVIRONMENT: &str = "\
Environment:
  ASANA_PERSONAL_KEY        Asana personal access token (required by commands that call Asana)
  ASANA_API_URL             Asana API base URL [default: https://app.asana.com/api/1.0]
  UPSTASH_REDIS_REST_URL    Upstash Redis REST URL; with the token, replaces the embedded store
  UPSTASH_REDIS_REST_TOKEN  Upstash Redis REST token
  AUTONUMBER_QUEUE_URL      SQS work queue URL (dlq and doctor; with AUTONUMBER_DLQ_URL)
  AUTONUMBER_DLQ_URL        SQS dead-letter queue URL
  AUTONUMBER_DATA_DIR       embedded database directory (same as --data-dir)
  RUST_LOG                  log filter [default: info]";

/// A failure that is the user's to fix (exit code 2), as opposed to a failed operation (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[tokio::main]
async fn main() -> ExitCode {
    // NOTE: Rust ignores SIGPIPE, so `autonumber doctor | head -1` would panic on the closed
    // pipe. The default action ends the process quietly, as other command-line tools do.
    // SAFETY: called before any thread writes to a pipe; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(message) = logging::init(cli.log_format) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }

    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<UsageError>().is_some()
                || error
                    .downcast_ref::<autonumber_shared::config::ConfigError>()
                    .is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Webhooks(command) => webhooks::run(command).await,
        Command::Counters(command) => counters::run(command).await,
        Command::Dlq(command) => dlq::run(command).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
    }
}

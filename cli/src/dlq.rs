//! `autonumber dlq`: list, replay and purge dead-lettered messages, on the embedded queue of
//! `serve` or on the SQS dead-letter queue of the Lambdas (see `queues.rs` for the choice).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use autonumber_shared::dlq::{DeadLetterEntry, ReplayOptions, ReplayOutcome};
use autonumber_shared::route::is_valid_prefix;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::backend::StoreArgs;
use crate::queues::dead_letter_queue;
use crate::text::{count, format_age};
use crate::UsageError;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered messages without removing them: id, prefix, task, receive count,
    /// time since the message was dead-lettered, and reason.
    ///
    /// On the embedded queue the id is the message id that `serve` logs as `message_id`. On SQS
    /// it is the dead-letter queue's message id, and listing receives the messages, because SQS
    /// has no other way to read them: each `dlq list` adds one to their receive count. They are
    /// made visible again as soon as the listing ends (within 30 seconds if it is interrupted).
    List(ListArgs),
    /// Move dead-lettered messages back to the work queue, printing one line per message.
    ///
    /// Each message is sent to the work queue before it leaves the dead-letter queue, so an
    /// interrupted replay loses nothing. Running it again finishes the job; within the
    /// queue's 5-minute deduplication window the repeated send is dropped, and after it a
    /// second copy only makes the worker reuse the task's number.
    /// Exits with status 1 when a message could not be moved.
    Replay(ReplayArgs),
    /// Delete every dead-lettered message. Asks for confirmation unless --yes is given.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Maximum number of messages to show, oldest first on the embedded queue (SQS returns
    /// them in no fixed order).
    #[arg(long, default_value_t = 100, value_name = "COUNT",
          value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,

    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Maximum number of messages to move. Default: all.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,

    /// Move only the messages of this prefix.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,

    /// Print the messages that would move without moving them.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete without asking. Required when standard input is not a terminal.
    #[arg(long)]
    yes: bool,

    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Replay(args) => replay(args).await,
        DlqCommand::Purge(args) => purge(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let queue = dead_letter_queue(&args.store).await?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let letters = queue.list(limit).await.with_context(|| {
        format!(
            "cannot list the dead letters of the {}",
            queue.describe_dead_letters()
        )
    })?;

    if args.json {
        let rows: Vec<_> = letters.iter().map(letter_json).collect();
        println!("{:#}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    if letters.is_empty() {
        println!(
            "No dead-lettered messages in the {}.",
            queue.describe_dead_letters()
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&letters);
    Ok(ExitCode::SUCCESS)
}

fn letter_json(letter: &DeadLetterEntry) -> serde_json::Value {
    let job = letter.job();
    json!({
        "id": letter.id,
        "prefix": job.as_ref().map(|job| &job.prefix),
        "task_gid": job.as_ref().map(|job| &job.task_gid),
        "group_id": letter.group_id,
        "reason": letter.reason,
        "receive_count": letter.receive_count,
        "age_seconds": letter.age.as_secs(),
        "body": letter.body,
    })
}

fn print_table(letters: &[DeadLetterEntry]) {
    let rows: Vec<[String; 6]> = letters
        .iter()
        .map(|letter| {
            let job = letter.job();
            [
                letter.id.clone(),
                job.as_ref().map_or("-".into(), |job| job.prefix.clone()),
                job.as_ref()
                    .map_or_else(|| letter.group_id.clone(), |job| job.task_gid.clone()),
                letter
                    .receive_count
                    .map_or("-".into(), |count| count.to_string()),
                format_age(letter.age),
                letter.reason.clone(),
            ]
        })
        .collect();
    let header = ["ID", "PREFIX", "TASK", "RECEIVES", "AGE", "REASON"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate().take(5) {
            text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
        }
        text.push_str(cells[5]);
        text
    };
    println!("{}", line(header));
    for row in &rows {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if let Some(prefix) = args.prefix.as_deref().filter(|p| !is_valid_prefix(p)) {
        bail!(UsageError(format!(
            "--prefix {prefix:?} is invalid: use 1 to 16 characters A-Z and 0-9, starting with \
             a letter"
        )));
    }
    let queue = dead_letter_queue(&args.store).await?;
    let options = ReplayOptions {
        max: args
            .max
            .map(|max| usize::try_from(max).unwrap_or(usize::MAX)),
        prefix: args.prefix.clone(),
        dry_run: args.dry_run,
    };

    let mut report = |letter: &DeadLetterEntry, outcome: &ReplayOutcome| {
        let job = letter.job();
        let prefix = job.as_ref().map_or("-", |job| job.prefix.as_str());
        let task = job
            .as_ref()
            .map_or(letter.group_id.as_str(), |job| job.task_gid.as_str());
        let (verb, detail) = match outcome {
            ReplayOutcome::Replayed => ("replayed", String::new()),
            ReplayOutcome::WouldReplay => ("would replay", String::new()),
            ReplayOutcome::Skipped(why) => ("skipped", format!(": {why}")),
            ReplayOutcome::Failed(error) => ("failed", format!(": {error}")),
        };
        println!(
            "{verb} message {} (prefix {prefix}, task {task}){detail}",
            letter.id
        );
    };
    let summary = queue
        .replay(&options, &mut report)
        .await
        .with_context(|| format!("replay from the {} stopped", queue.describe_dead_letters()))?;

    if args.dry_run {
        println!(
            "dry run: would replay {}, skipped {}; nothing was moved",
            summary.would_replay, summary.skipped
        );
    } else {
        println!(
            "replayed {}, skipped {}, failed {}",
            summary.replayed, summary.skipped, summary.failed
        );
    }
    if summary.failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    if !args.yes && !std::io::stdin().is_terminal() {
        bail!(UsageError(
            "dlq purge needs --yes when standard input is not a terminal, because it cannot ask \
             for confirmation"
                .into()
        ));
    }
    let queue = dead_letter_queue(&args.store).await?;
    let dead = queue.dead_count().await.with_context(|| {
        format!(
            "cannot count the dead letters of the {}",
            queue.describe_dead_letters()
        )
    })?;
    if dead == 0 {
        println!(
            "No dead-lettered messages in the {}.",
            queue.describe_dead_letters()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirm(dead, &queue.describe_dead_letters())? {
        println!("Purge cancelled; nothing was deleted.");
        return Ok(ExitCode::from(1));
    }

    let purged = queue.purge().await.with_context(|| {
        format!(
            "cannot purge the dead letters of the {}",
            queue.describe_dead_letters()
        )
    })?;
    println!(
        "Purged {} from the {}.",
        count(purged, "dead-lettered message"),
        queue.describe_dead_letters()
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks for confirmation on the terminal. Returns true only for `yes` or `y`.
fn confirm(dead: u64, queue: &str) -> anyhow::Result<bool> {
    eprint!(
        "Delete all {} of the {queue}? This cannot be undone. [y/N] ",
        count(dead, "dead-lettered message")
    );
    std::io::stderr().flush().ok();
    let mut reply = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut reply)
        .context("reading the confirmation from standard input failed")?;
    Ok(matches!(
        reply.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

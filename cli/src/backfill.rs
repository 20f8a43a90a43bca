//! `autonumber backfill`: numbers the tasks of a project that have no number yet, oldest first.
//!
//! Backfill pages through `GET /projects/{gid}/tasks` (100 tasks a page, following
//! `next_page.offset` until it is null) and keeps the top-level tasks whose names carry no
//! number. It sorts them by `created_at` and numbers each with [`Worker::process`], the
//! worker's own path. That path re-reads the task, so a rename made since the listing is kept,
//! and gets the number from the same atomic store call. Tasks numbered already are skipped and keep their numbers,
//! so a run can be stopped at any point and started again. Every Asana request passes through
//! the client's rate limiter.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use autonumber_shared::asana::{AsanaClient, AsanaError, Task};
use autonumber_shared::config::NAME_FORMAT;
use autonumber_shared::naming::{NameFormat, DEFAULT_NAME_FORMAT};
use autonumber_shared::{Job, Outcome, Worker};
use clap::Args;
use tracing::{info, warn};

use crate::backend::{asana_client, AsanaArgs, Backend, StoreArgs};
use crate::counters::{resolve_counter_key, CounterKeyArgs};
use crate::progress::Progress;
use crate::UsageError;

const SCHEDULE_HELP: &str = "\
Asana delivers each webhook event at most once, so a lost delivery leaves a task without a
number. Run backfill on a schedule as the reconciliation sweep; numbered tasks are skipped, so
each run only numbers what the webhook missed. For example, every 15 minutes with cron:

  */15 * * * * autonumber backfill --project 1200000000000001 --prefix BUG

or with an EventBridge Scheduler schedule (rate(15 minutes)) that starts the same command, for
example as an ECS task with the Lambdas' environment variables. Runs of the worker and of
backfill may overlap: both take numbers from the same atomic store call.";

/// Page size of `GET /projects/{gid}/tasks`, Asana's maximum.
const PAGE_SIZE: u32 = 100;

/// Attempts per listing page when Asana responds 429 or fails transiently.
const PAGE_ATTEMPTS: u32 = 5;

/// Consecutive failed tasks after which the run stops: the cause is then likely shared.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

#[derive(Debug, Args)]
#[command(after_long_help = SCHEDULE_HELP)]
pub struct BackfillArgs {
    /// Gid of the Asana project whose tasks to number.
    #[arg(long, value_name = "GID")]
    project: String,

    /// Prefix of the numbers, such as BUG.
    #[arg(long, value_name = "PREFIX")]
    prefix: String,

    #[command(flatten)]
    key: CounterKeyArgs,

    /// Start numbering under a prefix this store has no record of yet (no webhook secret,
    /// no recorded counter key, counter at 0). Without it such a prefix is rejected as a
    /// likely typo or wrong store.
    #[arg(long)]
    pub new_prefix: bool,

    /// Print the plan (task gid, current name, estimated number) without numbering anything.
    #[arg(long)]
    dry_run: bool,

    /// Number at most this many tasks in this run, the oldest first. Default: all.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,

    /// New task name, from the placeholders {prefix}, {number} and {name}. Must match the
    /// worker's format, so that names it numbered count as numbered.
    #[arg(long, env = NAME_FORMAT, default_value = DEFAULT_NAME_FORMAT, value_name = "FORMAT")]
    name_format: String,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,
}

/// The project's tasks, sorted into those to number and those that need none.
struct Scan {
    /// Tasks without a number, oldest first.
    unnumbered: Vec<Task>,
    numbered: usize,
    blank: usize,
    subtasks: usize,
}

/// Counts of a numbering run.
#[derive(Debug, Default)]
struct Tally {
    numbered: u64,
    skipped: u64,
    failed: u64,
}

impl Tally {
    fn summary(&self) -> String {
        format!(
            "numbered {}, skipped {}, failed {}",
            self.numbered, self.skipped, self.failed
        )
    }
}

/// Returns true when the store has anything for the prefix: a webhook secret (the earlier
/// implementation's `{prefix}_hook_secret` included), a recorded counter key, or a counter
/// above 0.
async fn prefix_is_known(
    store: &dyn autonumber_shared::store::Store,
    prefix: &str,
    counter_key: &str,
) -> anyhow::Result<bool> {
    if !store.secrets(prefix).await?.is_empty() {
        return Ok(true);
    }
    if store
        .prefixes()
        .await?
        .iter()
        .any(|(known, _)| known == prefix)
    {
        return Ok(true);
    }
    Ok(store.counter(counter_key).await? > 0)
}

pub async fn run(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let format = NameFormat::parse(&args.name_format)
        .map_err(|e| UsageError(format!("--name-format: {e}")))?;
    let (asana, _) = asana_client(&args.asana)?;
    let store = Backend::from_env(&args.store)?.store();
    let counter_key = resolve_counter_key(store.as_ref(), &args.prefix, &args.key).await?;
    if let (Some(asked), Some(recorded)) = (&args.key.counter_key, &counter_key.recorded) {
        if asked != recorded {
            bail!(UsageError(format!(
                "--counter-key {asked} differs from the counter key {recorded} recorded for \
                 prefix {}: numbers from two counters would repeat. Leave out --counter-key",
                args.prefix
            )));
        }
    }
    if !args.new_prefix && !prefix_is_known(store.as_ref(), &args.prefix, &counter_key.key).await? {
        bail!(UsageError(format!(
            "prefix {} is unknown to this store: no webhook secret, no recorded counter key and \
             counter {} at 0. Check --prefix and the store (--data-dir or the Upstash variables), \
             or pass --new-prefix to start numbering under it",
            args.prefix, counter_key.key
        )));
    }
    let worker = Worker::new(asana.clone(), store.clone(), format);

    let mut scan = scan_project(&asana, &worker, &args.project, &args.prefix).await?;
    info!(
        project = %args.project,
        prefix = %args.prefix,
        counter_key = %counter_key.key,
        unnumbered = scan.unnumbered.len(),
        numbered = scan.numbered,
        blank = scan.blank,
        "project scanned"
    );
    if let Some(limit) = args.limit {
        scan.unnumbered
            .truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }

    if args.dry_run {
        print_plan(&args, &worker, &counter_key.key, &scan).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let tally = number_tasks(&worker, &args.prefix, &counter_key.key, scan.unnumbered).await;
    println!(
        "project {}, prefix {}: {}",
        args.project,
        args.prefix,
        tally.summary()
    );
    if tally.failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists every top-level task of the project and sorts out the ones without a number.
async fn scan_project(
    asana: &AsanaClient,
    worker: &Worker,
    project: &str,
    prefix: &str,
) -> anyhow::Result<Scan> {
    let mut scan = Scan {
        unnumbered: Vec::new(),
        numbered: 0,
        blank: 0,
        subtasks: 0,
    };
    let mut offset: Option<String> = None;
    loop {
        let page = get_page(asana, project, offset.as_deref()).await?;
        for task in page.data {
            match worker.skip_reason(prefix, &task) {
                None => scan.unnumbered.push(task),
                Some(Outcome::AlreadyNumbered) => scan.numbered += 1,
                Some(Outcome::Subtask) => scan.subtasks += 1,
                // The only other reason `skip_reason` returns is a blank name.
                Some(_) => scan.blank += 1,
            }
        }
        match page.next_page {
            Some(next) => offset = Some(next.offset),
            None => break,
        }
    }

    // Asana writes `created_at` in one fixed RFC 3339 form, so text order is time order. Tasks
    // without it go last, in listing order.
    scan.unnumbered
        .sort_by_key(|task| (task.created_at.is_none(), task.created_at.clone()));
    Ok(scan)
}

/// Reads one page, waiting out 429s and retrying transient failures.
async fn get_page(
    asana: &AsanaClient,
    project: &str,
    offset: Option<&str>,
) -> anyhow::Result<autonumber_shared::asana::Page<Task>> {
    let mut attempt = 1;
    loop {
        let error = match asana.get_project_tasks(project, PAGE_SIZE, offset).await {
            Ok(page) => return Ok(page),
            Err(error) => error,
        };
        let wait = match &error {
            AsanaError::RateLimited { retry_after } => *retry_after,
            AsanaError::Transient(_) => Duration::from_secs(1 << attempt.min(5)),
            AsanaError::NotFound => bail!(
                "project {project} not found: check the gid and that the token's user can see it"
            ),
            AsanaError::Permanent { .. } => {
                bail!("cannot list the tasks of project {project}: {error}")
            }
        };
        if attempt >= PAGE_ATTEMPTS {
            bail!("cannot list the tasks of project {project} after {attempt} attempts: {error}");
        }
        warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "listing tasks failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Prints what a run would do. Numbers are an estimate: the next free number counted up from
/// the counter, unless the store recorded a number for the task already.
async fn print_plan(
    args: &BackfillArgs,
    worker: &Worker,
    counter_key: &str,
    scan: &Scan,
) -> anyhow::Result<()> {
    let store = worker.store();
    let counter = store
        .counter(counter_key)
        .await
        .with_context(|| format!("cannot read counter {counter_key}"))?;
    println!(
        "dry run: project {}, prefix {}, counter {counter_key} at {counter}: {} to number, \
         oldest first ({} numbered already, {} with blank names). Nothing is written.",
        args.project,
        args.prefix,
        crate::text::count(scan.unnumbered.len() as u64, "task"),
        scan.numbered,
        scan.blank
    );

    let mut next_free = counter;
    for task in &scan.unnumbered {
        let recorded = store
            .task_number(&args.prefix, &task.gid)
            .await
            .with_context(|| format!("cannot read the number recorded for task {}", task.gid))?;
        let number = match recorded {
            Some(number) => format!("{}-{number} (recorded earlier)", args.prefix),
            None => {
                next_free += 1;
                format!("{}-{next_free} (next free)", args.prefix)
            }
        };
        println!("{}  {number}  {:?}", task.gid, task.name);
    }
    Ok(())
}

/// Numbers the tasks in order, counting outcomes, until done or too many fail in a row.
async fn number_tasks(worker: &Worker, prefix: &str, counter_key: &str, tasks: Vec<Task>) -> Tally {
    let progress = Progress::new(tasks.len() as u64, std::io::stderr().is_terminal());
    let run = async {
        let mut tally = Tally::default();
        let mut failures_in_a_row = 0;
        for task in tasks {
            let job = Job {
                prefix: prefix.to_owned(),
                counter_key: counter_key.to_owned(),
                task_gid: task.gid.clone(),
                action: "backfill".to_owned(),
                field: None,
                created_at: task.created_at.clone().unwrap_or_default(),
            };
            match worker.process(&job, None).await {
                Ok(Outcome::Renamed { number, name }) => {
                    tally.numbered += 1;
                    failures_in_a_row = 0;
                    info!(task_gid = %task.gid, number, new_name = %name, "backfill numbered task");
                }
                Ok(outcome) => {
                    tally.skipped += 1;
                    failures_in_a_row = 0;
                    info!(task_gid = %task.gid, ?outcome, "backfill skipped task");
                }
                Err(error) => {
                    tally.failed += 1;
                    failures_in_a_row += 1;
                    warn!(task_gid = %task.gid, %error, "backfill failed to number task");
                }
            }
            progress.update(&tally.summary());
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES {
                warn!(
                    failures_in_a_row,
                    "stopping: several tasks in a row failed; fix the cause and run backfill \
                     again, numbered tasks keep their numbers"
                );
                break;
            }
        }
        tally
    };
    let tally = progress.run(run).await;
    progress.finish();
    tally
}

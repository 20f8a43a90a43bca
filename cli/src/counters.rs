//! `autonumber counters`: read and set the counter that a prefix's numbers come from.
//!
//! A counter's value is the last number handed out, so the next task gets value + 1. The
//! earlier Python implementation used the same meaning and kept the counter under the bare key
//! `{counter_key}` in Redis, so a team moving from it points this tool at the same Upstash
//! database and keeps counting. `set` rejects a value below the highest number already handed
//! out (the counter's value or the highest number recorded for a task), because the next task
//! would get a number that exists already.

use std::process::ExitCode;

use anyhow::{bail, Context};
use autonumber_shared::route::{is_valid_counter_key, is_valid_prefix};
use autonumber_shared::store::Store;
use clap::{Args, Subcommand};
use serde_json::json;
use tracing::warn;

use crate::backend::{Backend, StoreArgs};
use crate::UsageError;

#[derive(Debug, Subcommand)]
pub enum CountersCommand {
    /// Show a prefix's counter: the last number handed out, the next number and the highest
    /// number recorded for a task.
    Get(GetArgs),
    /// Set a prefix's counter to N, so the next task gets N+1.
    ///
    /// Exits with status 2, changing nothing, when N is below the highest number already handed
    /// out, unless --force is given.
    Set(SetArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Prefix of the numbers, such as BUG.
    prefix: String,

    #[command(flatten)]
    key: CounterKeyArgs,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Prefix of the numbers, such as BUG.
    prefix: String,

    /// New counter value: the last number handed out. The next task gets N+1.
    #[arg(value_name = "N")]
    value: u64,

    /// Set N even when it is below the highest number already handed out, so numbers repeat.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    key: CounterKeyArgs,

    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CounterKeyArgs {
    /// Store key of the counter. Default: the key recorded for the prefix, else the prefix.
    /// Counters kept from the earlier Python deployment use its `counter_key` value.
    #[arg(long, value_name = "KEY")]
    pub counter_key: Option<String>,
}

/// The counter key a command uses, and the one the store records for the prefix.
#[derive(Debug, Clone)]
pub struct CounterKey {
    pub key: String,
    pub recorded: Option<String>,
}

/// Checks the prefix and finds its counter key: `--counter-key`, else the key recorded in
/// the store, else the prefix.
pub async fn resolve_counter_key(
    store: &dyn Store,
    prefix: &str,
    args: &CounterKeyArgs,
) -> anyhow::Result<CounterKey> {
    if !is_valid_prefix(prefix) {
        bail!(UsageError(format!(
            "prefix {prefix:?} is invalid: use 1 to 16 characters A-Z and 0-9, starting with a letter"
        )));
    }
    if let Some(key) = &args.counter_key {
        if !is_valid_counter_key(key) {
            bail!(UsageError(format!(
                "--counter-key {key:?} is invalid: use 1 to 64 characters A-Z, a-z, 0-9, _ : . -"
            )));
        }
    }

    let prefixes = store
        .prefixes()
        .await
        .context("cannot read the registered prefixes")?;
    let recorded = prefixes
        .into_iter()
        .find(|(known, _)| known == prefix)
        .map(|(_, key)| key);
    let key = args
        .counter_key
        .clone()
        .or_else(|| recorded.clone())
        .unwrap_or_else(|| prefix.to_owned());
    Ok(CounterKey { key, recorded })
}

pub async fn run(command: CountersCommand) -> anyhow::Result<ExitCode> {
    match command {
        CountersCommand::Get(args) => get(args).await,
        CountersCommand::Set(args) => set(args).await,
    }
}

async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let store = Backend::from_env(&args.store)?.store();
    let counter_key = resolve_counter_key(store.as_ref(), &args.prefix, &args.key).await?;
    let value = store
        .counter(&counter_key.key)
        .await
        .with_context(|| format!("cannot read counter {}", counter_key.key))?;
    let max_assigned = store
        .max_assigned(&args.prefix)
        .await
        .with_context(|| format!("cannot read the numbers recorded for {}", args.prefix))?;
    let behind = max_assigned.filter(|max| *max > value);

    if args.json {
        let output = json!({
            "prefix": args.prefix,
            "counter_key": counter_key.key,
            "value": value,
            "next": value.saturating_add(1),
            "max_assigned": max_assigned,
        });
        println!("{output:#}");
    } else {
        let max = max_assigned.map_or_else(|| "none".to_owned(), |max| max.to_string());
        println!("prefix:        {}", args.prefix);
        println!("counter key:   {}", counter_key.key);
        println!("value:         {value} (last number handed out)");
        println!("next:          {}-{}", args.prefix, value.saturating_add(1));
        println!("max assigned:  {max} (highest number recorded for a task)");
    }
    if let Some(max) = behind {
        warn!(
            prefix = %args.prefix,
            "the counter ({value}) is below the highest recorded number ({max}), so the next \
             task would repeat {}-{}: run `autonumber counters set {} {max}`",
            args.prefix,
            value.saturating_add(1),
            args.prefix
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    if i64::try_from(args.value).is_err() {
        bail!(UsageError(format!(
            "N {} is too large: Redis and SQLite keep counters as signed 64-bit integers, so \
             use at most {}",
            args.value,
            i64::MAX
        )));
    }
    let store = Backend::from_env(&args.store)?.store();
    let counter_key = resolve_counter_key(store.as_ref(), &args.prefix, &args.key).await?;
    let current = store
        .counter(&counter_key.key)
        .await
        .with_context(|| format!("cannot read counter {}", counter_key.key))?;
    let max_assigned = store
        .max_assigned(&args.prefix)
        .await
        .with_context(|| format!("cannot read the numbers recorded for {}", args.prefix))?;
    let handed_out = current.max(max_assigned.unwrap_or(0));
    let prefix = &args.prefix;

    if args.value < handed_out {
        if !args.force {
            bail!(UsageError(format!(
                "counters set {prefix} {} rejected: numbers up to {prefix}-{handed_out} were \
                 already handed out, so the next task would get {prefix}-{}, which exists \
                 already. Set {handed_out} or more, or pass --force to accept repeated numbers",
                args.value,
                args.value.saturating_add(1),
            )));
        }
        warn!(
            prefix = %prefix,
            "--force: numbers {prefix}-{} to {prefix}-{handed_out} will be handed out again",
            args.value.saturating_add(1)
        );
    }

    // NOTE: reading the counter and setting it are two store calls. A number handed out
    // between them is overwritten, so run this while no deliveries arrive for the prefix.
    store
        .set_counter(&counter_key.key, args.value)
        .await
        .with_context(|| format!("cannot set counter {}", counter_key.key))?;
    println!(
        "{prefix}: counter {} set to {} (was {current}); the next task gets {prefix}-{}",
        counter_key.key,
        args.value,
        args.value.saturating_add(1)
    );
    Ok(ExitCode::SUCCESS)
}

//! `autonumber counters`: read and set the counter that a prefix's numbers come from.
//!
//! A counter's value is the last number handed out, so the next task gets value + 1. The
//! earlier Python implementation used the same meaning and kept the counter under the bare key
//! `{counter_key}` in Redis, so a team moving from it points this tool at the same Upstash
//! database and keeps counting. That implementation recorded no task numbers, so the numbers up
//! to a counter's value may have been handed out even where no task record shows them. `set`
//! therefore rejects a value below the counter's value or below the highest number recorded for
//! a task, unless `--force` is given.

mod repeat;

use std::process::ExitCode;

use anyhow::{bail, Context};
use autonumber_shared::route::{is_valid_counter_key, is_valid_prefix};
use autonumber_shared::store::Store;
use clap::{Args, Subcommand};
use serde_json::json;
use tracing::warn;

use crate::backend::{Backend, StoreArgs};
use crate::UsageError;
use repeat::repeat_risk;

#[derive(Debug, Subcommand)]
pub enum CountersCommand {
    /// Show a prefix's counter: the last number handed out, the next number and the highest
    /// number recorded for a task.
    ///
    /// Warns on stderr when the store has nothing for the prefix (no webhook secret, no
    /// recorded counter key, no numbers), which usually means a misspelt prefix or another
    /// store than the one the webhooks use.
    Get(GetArgs),
    /// Set a prefix's counter to N, so the next task gets N+1.
    ///
    /// Exits with status 2, changing nothing, when N is below the counter's value or below the
    /// highest number recorded for a task, unless --force is given. With --counter-key, records
    /// KEY as the prefix's counter key, and exits with status 2 when another key is recorded.
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

    /// Set N even when it is below the counter's value or the highest number recorded for a
    /// task, so numbers may repeat.
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

impl CounterKey {
    /// Returns the recorded key when the command uses another one (from `--counter-key`).
    pub fn conflicting_record(&self) -> Option<&str> {
        self.recorded
            .as_deref()
            .filter(|recorded| *recorded != self.key)
    }

    /// Returns the `--counter-key` option that a suggested command needs to use the same key:
    /// empty when the key is the one used without the option.
    fn option(&self, prefix: &str) -> String {
        if self.key == self.recorded.as_deref().unwrap_or(prefix) {
            return String::new();
        }
        format!(" --counter-key {}", self.key)
    }
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

/// A counter's value and the highest number recorded for a task of its prefix.
struct CounterState {
    value: u64,
    max_assigned: Option<u64>,
}

async fn read_state(
    store: &dyn Store,
    prefix: &str,
    counter_key: &CounterKey,
) -> anyhow::Result<CounterState> {
    let value = store
        .counter(&counter_key.key)
        .await
        .with_context(|| format!("cannot read counter {}", counter_key.key))?;
    let max_assigned = store
        .max_assigned(prefix)
        .await
        .with_context(|| format!("cannot read the numbers recorded for {prefix}"))?;
    Ok(CounterState {
        value,
        max_assigned,
    })
}

async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::from_env(&args.store)?;
    let store = backend.store();
    let prefix = &args.prefix;
    let counter_key = resolve_counter_key(store.as_ref(), prefix, &args.key).await?;
    let CounterState {
        value,
        max_assigned,
    } = read_state(store.as_ref(), prefix, &counter_key).await?;

    if args.json {
        let output = json!({
            "prefix": prefix,
            "counter_key": counter_key.key,
            "value": value,
            "next": value.saturating_add(1),
            "max_assigned": max_assigned,
        });
        println!("{output:#}");
    } else {
        let max = max_assigned.map_or_else(|| "none".to_owned(), |max| max.to_string());
        println!("prefix:        {prefix}");
        println!("counter key:   {}", counter_key.key);
        println!("value:         {value} (last number handed out)");
        println!("next:          {prefix}-{}", value.saturating_add(1));
        println!("max assigned:  {max} (highest number recorded for a task)");
    }

    // NOTE: the worker records the key of each number it hands out, so new tasks do not take
    // their numbers from a key other than the recorded one. A suggested `counters set` for that
    // key would be rejected, so this case gets the key warning and no suggestion.
    if let Some(recorded) = counter_key.conflicting_record() {
        warn!(
            prefix = %prefix,
            "counter {} is not the counter key recorded for {prefix}, which is {recorded}, so \
             new {prefix} tasks do not take their numbers from it. Leave out --counter-key to \
             see the counter they use",
            counter_key.key
        );
    } else if let Some(max) = max_assigned.filter(|max| *max > value) {
        warn_counter_behind(prefix, &counter_key, value, max);
    }
    if value == 0 && max_assigned.is_none() && counter_key.recorded.is_none() {
        warn_if_unknown(store.as_ref(), &backend, prefix, &counter_key.key).await?;
    }
    Ok(ExitCode::SUCCESS)
}

fn warn_counter_behind(prefix: &str, counter_key: &CounterKey, value: u64, max: u64) {
    warn!(
        prefix = %prefix,
        "the counter ({value}) is below the highest recorded number ({max}), so the next task \
         would repeat {prefix}-{}: run `autonumber counters set {prefix} {max}{}`",
        value.saturating_add(1),
        counter_key.option(prefix)
    );
}

/// Warns when the store has nothing for the prefix: no webhook secret (the earlier
/// implementation's `{prefix}_hook_secret` included), no recorded counter key, no numbers
/// recorded for tasks and a counter at 0. The caller checks all but the secrets.
async fn warn_if_unknown(
    store: &dyn Store,
    backend: &Backend,
    prefix: &str,
    key: &str,
) -> anyhow::Result<()> {
    let secrets = store
        .secrets(prefix)
        .await
        .with_context(|| format!("cannot read the webhook secrets of {prefix}"))?;
    if !secrets.is_empty() {
        return Ok(());
    }
    let check = match backend {
        Backend::Embedded { .. } => "--data-dir (or AUTONUMBER_DATA_DIR) is the one serve uses",
        Backend::Upstash(_) => "UPSTASH_REDIS_REST_URL names the database the Lambdas use",
    };
    warn!(
        prefix = %prefix,
        "the {} has nothing for prefix {prefix}: no webhook secret, no recorded counter key, \
         no number recorded for a task, and counter {key} is 0 or unset. Check the spelling of \
         the prefix and that {check}",
        backend.describe()
    );
    Ok(())
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
    let prefix = &args.prefix;
    let counter_key = resolve_counter_key(store.as_ref(), prefix, &args.key).await?;
    if let Some(recorded) = counter_key.conflicting_record() {
        bail!(UsageError(format!(
            "--counter-key {} differs from the counter key {recorded} recorded for prefix \
             {prefix} (by its webhook, its last numbered task or an earlier `counters set`), \
             so nothing was changed. Leave out --counter-key to set counter {recorded}. To \
             number {prefix} from {} instead, delete its webhook and create it again with \
             `autonumber webhooks create --prefix {prefix} --counter-key {} ...`, which records \
             the new key",
            counter_key.key, counter_key.key, counter_key.key
        )));
    }
    let state = read_state(store.as_ref(), prefix, &counter_key).await?;

    if let Some(risk) = repeat_risk(prefix, args.value, &state) {
        if !args.force {
            bail!(UsageError(format!(
                "counters set {prefix} {} rejected: {}. Set {} or more, or pass --force {}",
                args.value,
                risk.text,
                risk.minimum,
                risk.force_hint()
            )));
        }
        warn!(prefix = %prefix, "--force: {}", risk.text);
    }

    let recording = args.key.counter_key.is_some() && counter_key.recorded.is_none();
    if recording {
        store
            .set_counter_key(prefix, &counter_key.key)
            .await
            .with_context(|| {
                format!("cannot record counter key {} for {prefix}", counter_key.key)
            })?;
    }
    // NOTE: reading the counter and setting it are two store calls. A number handed out
    // between them is overwritten, so run this while no deliveries arrive for the prefix.
    store
        .set_counter(&counter_key.key, args.value)
        .await
        .with_context(|| format!("cannot set counter {}", counter_key.key))?;

    let recorded_note = if recording {
        format!(
            "; counter key {} is now recorded for {prefix}",
            counter_key.key
        )
    } else {
        String::new()
    };
    println!(
        "{prefix}: counter {} set to {} (was {}); the next task gets {prefix}-{}{recorded_note}",
        counter_key.key,
        args.value,
        state.value,
        args.value.saturating_add(1)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_key_option_only_for_other_key() {
        let key = |key: &str, recorded: Option<&str>| CounterKey {
            key: key.into(),
            recorded: recorded.map(str::to_owned),
        };

        assert_eq!(key("BUG", None).option("BUG"), "");
        assert_eq!(key("legacy", Some("legacy")).option("BUG"), "");
        assert_eq!(key("OTHER", None).option("BUG"), " --counter-key OTHER");
        assert_eq!(
            key("BUG", Some("legacy")).option("BUG"),
            " --counter-key BUG"
        );
    }
}

//! `autonumber webhooks`: create, list and delete Asana webhooks.
//!
//! `create` marks a registration pending in the store (so the receiver accepts one handshake for
//! the prefix), calls `POST /webhooks`, which blocks until the receiver has responded to Asana's
//! handshake, and checks that the secret in the 201 body is one the receiver stored. Otherwise
//! someone else handled the handshake, and the webhook is deleted again. Whatever the outcome,
//! the registration window is then closed. When Asana rejects
//! the webhook as a duplicate, `create` looks up the existing one and describes how to reuse or
//! remove it.
//!
//! `list` shows Asana's view of each webhook (active, last success, retries, deletion time) next
//! to the prefix whose secret this store holds for it. `delete` removes the webhook in Asana and
//! its secret from the store.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::{bail, Context};
use autonumber_shared::asana::{AsanaClient, AsanaError};
use autonumber_shared::route::{is_valid_counter_key, is_valid_prefix};
use autonumber_shared::store::{Store, REGISTRATION_TTL};
use clap::{Args, Subcommand};
use serde_json::json;
use tracing::{info, warn};

use crate::backend::{asana_client, AsanaArgs, Backend, StoreArgs};
use crate::webhook_admin as admin;
use crate::UsageError;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook for a project, numbering its tasks under PREFIX.
    Create(CreateArgs),
    /// List the webhooks of a workspace with Asana's delivery status and the stored prefix.
    List(admin::ListArgs),
    /// Delete a webhook in Asana and remove its secret from the store.
    Delete(admin::DeleteArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Gid of the Asana project to watch.
    #[arg(long, value_name = "GID")]
    project: String,

    /// Prefix of the numbers, 1 to 16 characters A-Z and 0-9 starting with a letter.
    #[arg(long, value_name = "PREFIX")]
    prefix: String,

    /// Public base URL of the receiver (a tunnel to `serve`, or the ingest function URL);
    /// `/webhooks/PREFIX` is appended.
    #[arg(long, value_name = "URL")]
    target_url: String,

    /// Counter the numbers come from, when it is not named like the prefix (for counters kept
    /// from the earlier Python deployment).
    #[arg(long, value_name = "KEY")]
    counter_key: Option<String>,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,
}

/// The filters Asana applies before delivering: new tasks and name changes.
pub fn filters() -> serde_json::Value {
    json!([
        { "resource_type": "task", "action": "added" },
        { "resource_type": "task", "action": "changed", "fields": ["name"] }
    ])
}

pub async fn run(command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::Create(args) => create(args).await,
        WebhooksCommand::List(args) => admin::list(args).await,
        WebhooksCommand::Delete(args) => admin::delete(args).await,
    }
}

/// Builds `{base}/webhooks/{prefix}`, with `?counter_key=` when it differs from the prefix.
pub fn target_for(base: &str, prefix: &str, counter_key: Option<&str>) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(base)
        .map_err(|e| UsageError(format!("--target-url {base:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(UsageError(format!(
            "--target-url {base:?} must start with https:// (or http:// for local tests)"
        )));
    }
    // Accept the full target form too (`.../webhooks/PREFIX`), as the template's output shows it.
    let mut base = base.trim_end_matches('/');
    if let Some((rest, given)) = base.rsplit_once("/webhooks/") {
        if given != prefix {
            bail!(UsageError(format!(
                "--target-url ends in /webhooks/{given}, but --prefix is {prefix}: pass the base URL without /webhooks/..."
            )));
        }
        base = rest;
    }
    let mut target = format!("{base}/webhooks/{prefix}");
    if let Some(key) = counter_key.filter(|key| *key != prefix) {
        target.push_str(&format!("?counter_key={key}"));
    }
    Ok(target)
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    if !is_valid_prefix(&args.prefix) {
        bail!(UsageError(format!(
            "--prefix {:?} is invalid: use 1 to 16 characters A-Z and 0-9, starting with a letter",
            args.prefix
        )));
    }
    let (asana, _) = asana_client(&args.asana)?;
    let backend = Backend::from_env(&args.store)?;
    let store = backend.store();
    let counter_key = resolve_counter_key(store.as_ref(), &args).await?;
    let target = target_for(&args.target_url, &args.prefix, Some(&counter_key))?;
    if target.starts_with("http://") {
        warn!(target = %target, "plain http target: Asana only delivers to public https URLs, so use this only against a local fake");
    }

    let before: HashSet<String> = store
        .secrets(&args.prefix)
        .await?
        .into_iter()
        .map(|stored| stored.secret)
        .collect();
    store
        .begin_registration(&args.prefix, REGISTRATION_TTL)
        .await
        .context("cannot mark the registration pending")?;
    info!(prefix = %args.prefix, project = %args.project, target = %target, store = %backend.describe(), "creating webhook; Asana now sends the handshake to the target");

    let result = register(&asana, store.as_ref(), &backend, &args, &target).await;
    let confirmed = result.as_ref().ok().map(|(_, secret)| secret.as_str());
    close_registration(store.as_ref(), &args.prefix, &before, confirmed).await?;
    let (webhook_gid, _) = result?;

    store.set_counter_key(&args.prefix, &counter_key).await?;
    info!(webhook_gid = %webhook_gid, prefix = %args.prefix, "webhook created");
    println!("{webhook_gid}");
    Ok(ExitCode::SUCCESS)
}

/// Returns the counter the new webhook numbers from: `--counter-key`, else the key recorded for
/// the prefix, else the prefix. A key that differs from the recorded one is rejected, because
/// two projects of one prefix counting from two counters would repeat numbers.
async fn resolve_counter_key(store: &dyn Store, args: &CreateArgs) -> anyhow::Result<String> {
    let recorded = store
        .prefixes()
        .await?
        .into_iter()
        .find(|(prefix, _)| *prefix == args.prefix)
        .map(|(_, key)| key);
    let key = match (&args.counter_key, recorded) {
        (Some(asked), Some(recorded)) if *asked != recorded => bail!(UsageError(format!(
            "--counter-key {asked} differs from the counter key {recorded} recorded for prefix {}: \
             numbers from two counters would repeat. Leave out --counter-key to use {recorded}",
            args.prefix
        ))),
        (Some(asked), _) => asked.clone(),
        (None, Some(recorded)) => recorded,
        (None, None) => args.prefix.clone(),
    };
    if !is_valid_counter_key(&key) {
        bail!(UsageError(format!(
            "--counter-key {key:?} is invalid: use 1 to 64 characters A-Z, a-z, 0-9, _ : . -"
        )));
    }
    Ok(key)
}

/// Calls `POST /webhooks` and checks the secret of Asana's response against the store.
/// Returns the webhook gid and its secret.
async fn register(
    asana: &AsanaClient,
    store: &dyn Store,
    backend: &Backend,
    args: &CreateArgs,
    target: &str,
) -> anyhow::Result<(String, String)> {
    let created = match asana.create_webhook(&args.project, target, &filters()).await {
        Ok(created) => created,
        Err(AsanaError::Permanent { status: 403, message }) if message.contains("Duplicated") => {
            let existing =
                admin::describe_duplicate(asana, store, &args.project, &args.prefix, target).await;
            bail!("Asana rejected the webhook (HTTP 403 {message:?}): {existing}");
        }
        Err(AsanaError::NotFound) => bail!(
            "project {} not found in Asana: check the gid (the number in the project's URL) and that the token's user can see the project",
            args.project
        ),
        Err(error) => bail!(
            "creating the webhook failed: {}. Check that `autonumber serve` (or the ingest Lambda) responds at {target}, that it uses the same store as this command ({}; the same --data-dir or Upstash database), and that the handshake arrives within {} minutes",
            error.to_string().trim_end_matches('.'),
            backend.describe(),
            REGISTRATION_TTL.as_secs() / 60
        ),
    };
    let webhook_gid = created.data.gid.clone();

    let secrets = store.secrets(&args.prefix).await?;
    let ours = created
        .secret
        .filter(|secret| secrets.iter().any(|stored| stored.secret == *secret));
    let Some(secret) = ours else {
        warn!(webhook_gid = %webhook_gid, prefix = %args.prefix, "the handshake secret in Asana's response is not one this receiver stored; deleting the webhook");
        asana.delete_webhook(&webhook_gid).await.ok();
        bail!("the handshake for {target} was handled by another receiver: webhook {webhook_gid} was deleted again. Check that the target URL reaches this deployment's store");
    };
    store
        .set_webhook_gid(&args.prefix, &secret, &webhook_gid)
        .await?;
    Ok((webhook_gid, secret))
}

/// Ends the registration window: clears the pending mark, so no later handshake is accepted,
/// and removes every secret stored during the window other than the one Asana's response
/// confirmed, since only a handshake from someone else can have stored it.
async fn close_registration(
    store: &dyn Store,
    prefix: &str,
    before: &HashSet<String>,
    confirmed: Option<&str>,
) -> anyhow::Result<()> {
    store
        .cancel_registration(prefix)
        .await
        .context("cannot clear the pending registration")?;
    for stored in store.secrets(prefix).await? {
        if before.contains(&stored.secret) || Some(stored.secret.as_str()) == confirmed {
            continue;
        }
        warn!(
            prefix,
            "removing a secret stored during the registration that Asana did not confirm"
        );
        store.remove_secret(prefix, &stored.secret).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_appends_route() {
        let target = target_for("https://x.example/", "BUG", None).unwrap();
        assert_eq!(target, "https://x.example/webhooks/BUG");
    }

    #[test]
    fn target_accepts_full_form() {
        let target = target_for("https://x.example/webhooks/BUG", "BUG", None).unwrap();
        assert_eq!(target, "https://x.example/webhooks/BUG");
    }

    #[test]
    fn target_rejects_other_prefix() {
        assert!(target_for("https://x.example/webhooks/OPS", "BUG", None).is_err());
        assert!(target_for("ftp://x.example", "BUG", None).is_err());
    }

    #[test]
    fn target_keeps_legacy_counter_key() {
        let target = target_for("https://x.example", "PLAT", Some("plat_counter")).unwrap();
        assert_eq!(
            target,
            "https://x.example/webhooks/PLAT?counter_key=plat_counter"
        );
        let same = target_for("https://x.example", "PLAT", Some("PLAT")).unwrap();
        assert_eq!(same, "https://x.example/webhooks/PLAT");
    }
}

//! `autonumber webhooks list` and `webhooks delete`, and the lookup that `webhooks create`
//! makes when Asana rejects a webhook as a duplicate.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use autonumber_shared::asana::{AsanaClient, AsanaError, Webhook};
use autonumber_shared::store::Store;
use clap::Args;
use serde_json::json;
use tracing::warn;

use crate::backend::{asana_client, AsanaArgs, Backend, StoreArgs};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Gid of the Asana workspace whose webhooks to list (`autonumber doctor` prints the
    /// token's workspaces).
    #[arg(long, value_name = "GID")]
    workspace: String,

    /// Print a JSON array instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Gid of the webhook, as `webhooks list` prints it.
    #[arg(value_name = "GID")]
    gid: String,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (asana, _) = asana_client(&args.asana)?;
    let store = Backend::from_env(&args.store)?.store();
    let webhooks = asana
        .get_webhooks(&args.workspace, None)
        .await
        .with_context(|| format!("cannot list the webhooks of workspace {}", args.workspace))?;
    let prefixes = match stored_prefixes(store.as_ref()).await {
        Ok(prefixes) => prefixes,
        Err(error) => {
            warn!(error = %format!("{error:#}"), "cannot read the stored webhooks; the prefix column stays empty");
            HashMap::new()
        }
    };

    if args.json {
        let rows: Vec<_> = webhooks
            .iter()
            .map(|webhook| webhook_json(webhook, prefixes.get(&webhook.gid)))
            .collect();
        println!("{:#}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    if webhooks.is_empty() {
        println!("No webhooks in workspace {}.", args.workspace);
    }
    for webhook in &webhooks {
        print_webhook(webhook, prefixes.get(&webhook.gid));
    }
    Ok(ExitCode::SUCCESS)
}

/// Maps each webhook gid recorded in the store to its prefix.
async fn stored_prefixes(store: &dyn Store) -> anyhow::Result<HashMap<String, String>> {
    let mut prefixes = HashMap::new();
    for (prefix, _) in store.prefixes().await? {
        for secret in store.secrets(&prefix).await? {
            if let Some(gid) = secret.webhook_gid {
                prefixes.insert(gid, prefix.clone());
            }
        }
    }
    Ok(prefixes)
}

fn webhook_json(webhook: &Webhook, prefix: Option<&String>) -> serde_json::Value {
    json!({
        "gid": webhook.gid,
        "resource": webhook.resource.as_ref().map(|resource| json!({
            "gid": resource.gid,
            "name": resource.name,
        })),
        "target": webhook.target,
        "active": webhook.active,
        "created_at": webhook.created_at,
        "last_success_at": webhook.last_success_at,
        "last_failure_at": webhook.last_failure_at,
        "last_failure_content": webhook.last_failure_content,
        "delivery_retry_count": webhook.delivery_retry_count,
        "failure_deletion_timestamp": webhook.failure_deletion_timestamp,
        "prefix": prefix,
    })
}

fn print_webhook(webhook: &Webhook, prefix: Option<&String>) {
    let or_dash = |value: Option<&String>| value.map_or("-".to_owned(), Clone::clone);
    let project = match &webhook.resource {
        Some(resource) => match &resource.name {
            Some(name) => format!("{} ({name})", resource.gid),
            None => resource.gid.clone(),
        },
        None => "-".to_owned(),
    };
    let active = match webhook.active {
        Some(true) => "active",
        Some(false) => "INACTIVE",
        None => "active: unknown",
    };
    let prefix = prefix.map_or_else(
        || "no secret in this store".to_owned(),
        |prefix| format!("prefix {prefix}"),
    );

    println!("{}  {active}  project {project}  {prefix}", webhook.gid);
    println!("    target:        {}", or_dash(webhook.target.as_ref()));
    println!(
        "    last success:  {}",
        or_dash(webhook.last_success_at.as_ref())
    );
    if let Some(failure) = &webhook.last_failure_at {
        let content = or_dash(webhook.last_failure_content.as_ref());
        println!("    last failure:  {failure}: {content}");
    }
    if let Some(count) = webhook.delivery_retry_count {
        println!("    retries:       {count}");
    }
    if let Some(deletion) = &webhook.failure_deletion_timestamp {
        println!("    deleted at:    {deletion} unless a delivery succeeds before");
    }
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let (asana, _) = asana_client(&args.asana)?;
    let backend = Backend::from_env(&args.store)?;
    let store = backend.store();
    let gid = &args.gid;

    // The secret stays while the webhook may still deliver, so a failed delete in Asana leaves
    // both in place.
    let in_asana = match asana.delete_webhook(gid).await {
        Ok(()) => true,
        Err(AsanaError::NotFound) => false,
        Err(error) => bail!("cannot delete webhook {gid} in Asana: {error}. Nothing was changed"),
    };
    let prefix = store
        .remove_webhook(gid)
        .await
        .with_context(|| match in_asana {
            true => format!(
            "webhook {gid} was deleted in Asana, but removing its secret from the store failed: \
             run the delete again"
        ),
            false => format!("cannot remove the secret of webhook {gid} from the store"),
        })?;

    match (in_asana, prefix) {
        (true, Some(prefix)) => {
            println!("Deleted webhook {gid} in Asana and removed its secret from prefix {prefix}.")
        }
        (true, None) => println!(
            "Deleted webhook {gid} in Asana. The store ({}) held no secret for it.",
            backend.describe()
        ),
        (false, Some(prefix)) => println!(
            "Webhook {gid} no longer exists in Asana; removed its secret from prefix {prefix}."
        ),
        (false, None) => bail!(
            "webhook {gid} was not found in Asana nor in the store ({}): check the gid with \
             `autonumber webhooks list --workspace GID`",
            backend.describe()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds the webhook that made `POST /webhooks` fail as a duplicate and describes how to reuse
/// or remove it. A failed lookup is described instead of returned, because the create call has
/// failed already.
pub async fn describe_duplicate(
    asana: &AsanaClient,
    store: &dyn Store,
    project: &str,
    prefix: &str,
    target: &str,
) -> String {
    let existing = match find_webhook(asana, project, target).await {
        Ok(Some(webhook)) => webhook,
        Ok(None) => {
            return format!(
                "a webhook for project {project} and target {target} exists, but the token \
                 cannot see it (another user made it). Ask that user to delete it, or create \
                 this one with another --target-url"
            )
        }
        Err(error) => {
            return format!(
                "a webhook for project {project} and target {target} exists, and looking it up \
                 failed ({error:#}). Find it with `autonumber webhooks list --workspace GID`"
            )
        }
    };

    let gid = &existing.gid;
    let ours = match store.secrets(prefix).await {
        Ok(secrets) => secrets
            .iter()
            .any(|secret| secret.webhook_gid.as_deref() == Some(gid)),
        Err(_) => false,
    };
    if ours {
        format!(
            "webhook {gid} already watches project {project} with target {target}, and this \
             store holds its secret under prefix {prefix}. Keep using it, or remove it with \
             `autonumber webhooks delete {gid}` and create it again"
        )
    } else {
        format!(
            "webhook {gid} already watches project {project} with target {target}, but this \
             store holds no secret for it under prefix {prefix}, so its deliveries are rejected. \
             Remove it with `autonumber webhooks delete {gid}`, then run this create again"
        )
    }
}

/// Finds the project's webhook with `target`: the project's workspace from
/// `GET /projects/{gid}`, then `GET /webhooks?workspace=&resource=`.
async fn find_webhook(
    asana: &AsanaClient,
    project: &str,
    target: &str,
) -> anyhow::Result<Option<Webhook>> {
    let project_data = asana
        .get_project(project)
        .await
        .with_context(|| format!("cannot read project {project}"))?;
    let Some(workspace) = project_data.workspace else {
        bail!("Asana returned project {project} without its workspace");
    };
    let webhooks = asana
        .get_webhooks(&workspace.gid, Some(project))
        .await
        .with_context(|| format!("cannot list the webhooks of workspace {}", workspace.gid))?;
    Ok(webhooks
        .into_iter()
        .find(|webhook| webhook.target.as_deref() == Some(target)))
}

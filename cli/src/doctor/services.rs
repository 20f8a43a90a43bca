//! The service checks of `doctor`: the Asana token, the store, the queues, and each registered
//! prefix with its counter, secrets and webhooks.

use std::sync::Arc;

use autonumber_shared::asana::{AsanaClient, AsanaError};
use autonumber_shared::config;
use autonumber_shared::store::{Store, StoreError};

use super::Check;
use crate::backend::StoreArgs;
use crate::queues::dead_letter_queue;
use crate::text::count;

pub async fn check_token(asana: &AsanaClient) -> Check {
    let name = "Asana token";
    match asana.get_me().await {
        Ok(user) => {
            let workspaces: Vec<String> = user
                .workspaces
                .iter()
                .map(|w| format!("{} ({})", w.gid, w.name.as_deref().unwrap_or("unnamed")))
                .collect();
            let detail = format!(
                "authenticated as {} ({}); workspaces: {}",
                user.name.as_deref().unwrap_or("unnamed user"),
                user.gid,
                workspaces.join(", ")
            );
            Check::pass(name, detail)
        }
        Err(AsanaError::Permanent {
            status: 401,
            message,
        }) => Check::fail(
            name,
            format!("Asana rejected the token (HTTP 401): {message}"),
            format!(
                "set {} to a valid personal access token",
                config::ASANA_PERSONAL_KEY
            ),
        ),
        Err(error) => Check::fail(
            name,
            format!("GET /users/me failed: {error}"),
            format!(
                "check {} and the network path to Asana",
                config::ASANA_API_URL
            ),
        ),
    }
}

pub async fn check_store(store: &dyn Store, describe: &str) -> Check {
    let name = "store";
    match store.ping().await {
        Ok(()) => Check::pass(
            name,
            format!("a write and a read succeeded on the {describe}"),
        ),
        Err(error @ StoreError::Unauthorized { .. }) => Check::fail(
            name,
            error.to_string(),
            format!(
                "set {} to the database's read-write REST token",
                config::UPSTASH_TOKEN
            ),
        ),
        Err(error) => Check::fail(
            name,
            error.to_string(),
            format!(
                "check {} and the network path to the store",
                config::UPSTASH_URL
            ),
        ),
    }
}

pub async fn check_queues(store_args: &StoreArgs, checks: &mut Vec<Check>) {
    let queue = match dead_letter_queue(store_args).await {
        Ok(queue) => queue,
        Err(error) => {
            let fix = "fix the queue configuration above";
            checks.push(Check::fail("queue", format!("{error:#}"), fix));
            return;
        }
    };
    let depth = match queue.depth().await {
        Ok(depth) => depth,
        Err(error) => {
            let fix = "check the queue URLs, the AWS credentials and the IAM permission \
                       sqs:GetQueueAttributes";
            checks.push(Check::fail("queue", error.to_string(), fix));
            return;
        }
    };

    let in_flight = depth
        .in_flight
        .map_or(String::new(), |count| format!(", {count} in flight"));
    let detail = format!(
        "{} waiting{in_flight} in the {}",
        count(depth.queued, "message"),
        queue.describe()
    );
    checks.push(Check::pass("queue", detail));
    let name = "dead-letter queue";
    if depth.dead == 0 {
        checks.push(Check::pass(name, "empty"));
    } else {
        checks.push(Check::warn(
            name,
            count(depth.dead, "dead-lettered message"),
            "inspect them with `autonumber dlq list`, fix the cause, then `autonumber dlq replay` \
             (or `autonumber dlq purge`)",
        ));
    }
}

pub async fn check_prefixes(
    store: &Arc<dyn Store>,
    asana: Option<&AsanaClient>,
    checks: &mut Vec<Check>,
) {
    let prefixes = match store.prefixes().await {
        Ok(prefixes) => prefixes,
        Err(error) => {
            checks.push(Check::fail(
                "prefixes",
                error.to_string(),
                "fix the store check above",
            ));
            return;
        }
    };
    if prefixes.is_empty() {
        checks.push(Check::warn(
            "prefixes",
            "no prefix is registered in the store",
            "register one with `autonumber webhooks create --project GID --prefix PREFIX --target-url URL`",
        ));
    }
    for (prefix, counter_key) in prefixes {
        check_prefix(store.as_ref(), asana, &prefix, &counter_key, checks).await;
    }
}

async fn check_prefix(
    store: &dyn Store,
    asana: Option<&AsanaClient>,
    prefix: &str,
    counter_key: &str,
    checks: &mut Vec<Check>,
) {
    let name = format!("prefix {prefix}");
    let read = async {
        let counter = store.counter(counter_key).await?;
        let max = store.max_assigned(prefix).await?;
        let secrets = store.secrets(prefix).await?;
        Ok::<_, StoreError>((counter, max, secrets))
    };
    let (counter, max, secrets) = match read.await {
        Ok(values) => values,
        Err(error) => {
            checks.push(Check::fail(
                name,
                error.to_string(),
                "fix the store check above",
            ));
            return;
        }
    };

    let detail = format!(
        "counter {counter_key} at {counter} (next {prefix}-{}), highest recorded number {}, {} \
         stored",
        counter.saturating_add(1),
        max.map_or("none".into(), |max| max.to_string()),
        count(secrets.len() as u64, "webhook secret")
    );
    let check = match max.filter(|max| *max > counter) {
        Some(max) => Check::fail(
            name.clone(),
            format!(
                "{detail}; the next task would repeat {prefix}-{}",
                counter + 1
            ),
            format!("run `autonumber counters set {prefix} {max}`"),
        ),
        None if secrets.is_empty() => Check::warn(
            name.clone(),
            format!("{detail}; deliveries for {prefix} are rejected without a secret"),
            format!("register a webhook with `autonumber webhooks create --prefix {prefix} ...`"),
        ),
        None => Check::pass(name.clone(), detail),
    };
    checks.push(check);

    for secret in &secrets {
        let check = match (&secret.webhook_gid, asana) {
            (None, _) => Check::warn(
                format!("webhook of {prefix}"),
                "a secret without a recorded webhook gid (kept from the earlier implementation, or \
                 from an interrupted `webhooks create`), so it cannot be checked",
                "find the webhook with `autonumber webhooks list --workspace GID`",
            ),
            (Some(gid), None) => Check::warn(
                format!("webhook {gid} ({prefix})"),
                "not checked: the Asana configuration failed",
                "fix the Asana configuration above",
            ),
            (Some(gid), Some(asana)) => check_webhook(asana, gid, prefix).await,
        };
        checks.push(check);
    }
}

async fn check_webhook(asana: &AsanaClient, gid: &str, prefix: &str) -> Check {
    let name = format!("webhook {gid} ({prefix})");
    let recreate = format!(
        "run `autonumber webhooks delete {gid}`, then `autonumber webhooks create --prefix {prefix} ...`"
    );
    match asana.get_webhook(gid).await {
        Ok(webhook) if webhook.active == Some(false) => Check::fail(
            name,
            "inactive: Asana no longer delivers its events",
            recreate,
        ),
        Ok(webhook) => {
            let mut detail = format!(
                "active, last success {}",
                webhook.last_success_at.as_deref().unwrap_or("never")
            );
            if let Some(deletion) = &webhook.failure_deletion_timestamp {
                detail.push_str(&format!(
                    ", Asana deletes it at {deletion} unless a delivery succeeds"
                ));
                let fix = "check that the receiver answers 2xx within 10 seconds";
                return Check::warn(name, detail, fix);
            }
            Check::pass(name, detail)
        }
        Err(AsanaError::NotFound) => Check::fail(
            name,
            "no longer exists in Asana (deleted, or its deliveries failed for 24 hours)",
            recreate,
        ),
        Err(error) => Check::fail(
            name,
            format!("GET /webhooks/{gid} failed: {error}"),
            "check the Asana token check above",
        ),
    }
}

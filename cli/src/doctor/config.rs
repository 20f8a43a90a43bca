//! The configuration checks of `doctor`: which store and queue the environment selects, and
//! whether the Asana variables are usable. Secrets show only their length.

use autonumber_shared::asana::AsanaClient;
use autonumber_shared::config::{self, UpstashConfig};
use autonumber_shared::naming::NameFormat;

use super::Check;
use crate::backend::{asana_client, AsanaArgs, Backend, StoreArgs};
use crate::queues::sqs_urls_from_env;

/// Describes a secret's length, the only fact about it that doctor prints.
fn length(secret: &config::Secret) -> String {
    match secret.expose().chars().count() {
        1 => "1 character".to_string(),
        count => format!("{count} characters"),
    }
}

pub fn check_store_config(args: &StoreArgs, checks: &mut Vec<Check>) -> Option<Backend> {
    let name = "store configuration";
    let upstash: Option<UpstashConfig> = match config::upstash_from_env() {
        Ok(upstash) => upstash,
        Err(error) => {
            checks.push(Check::fail(name, error.to_string(), error.fix.clone()));
            return None;
        }
    };
    let backend = match Backend::from_env(args) {
        Ok(backend) => backend,
        Err(error) => {
            let fix = "pass --data-dir (or set AUTONUMBER_DATA_DIR) to a writable directory";
            checks.push(Check::fail(name, format!("{error:#}"), fix));
            return None;
        }
    };
    let detail = match &upstash {
        Some(upstash) => format!(
            "{}; {} set ({})",
            backend.describe(),
            config::UPSTASH_TOKEN,
            length(&upstash.token)
        ),
        None => format!(
            "{} ({} and {} are not set)",
            backend.describe(),
            config::UPSTASH_URL,
            config::UPSTASH_TOKEN
        ),
    };
    checks.push(Check::pass(name, detail));
    Some(backend)
}

pub fn check_queue_config(checks: &mut Vec<Check>) {
    let name = "queue configuration";
    match sqs_urls_from_env() {
        Ok(Some(urls)) => {
            let region = config::var("AWS_REGION")
                .or_else(|| config::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "from the AWS profile".into());
            let endpoint = config::var("AWS_ENDPOINT_URL_SQS")
                .or_else(|| config::var("AWS_ENDPOINT_URL"))
                .map_or(String::new(), |url| format!(", endpoint {url}"));
            let detail = format!(
                "SQS work queue {}, dead-letter queue {}, region {region}{endpoint}",
                urls.queue_url, urls.dlq_url
            );
            checks.push(Check::pass(name, detail));
        }
        Ok(None) => checks.push(Check::pass(
            name,
            format!(
                "embedded queue in the data directory ({} and {} are not set)",
                config::QUEUE_URL,
                config::DLQ_URL
            ),
        )),
        Err(error) => checks.push(Check::fail(name, error.to_string(), error.fix.clone())),
    }
}

pub fn check_asana_config(args: &AsanaArgs, checks: &mut Vec<Check>) -> Option<AsanaClient> {
    let name = "Asana configuration";
    let (client, asana) = match asana_client(args) {
        Ok(pair) => pair,
        Err(error) => {
            let fix = error
                .downcast_ref::<config::ConfigError>()
                .map_or_else(|| "check the Asana variables".to_owned(), |e| e.fix.clone());
            checks.push(Check::fail(name, format!("{error:#}"), fix));
            return None;
        }
    };
    let mut detail = format!(
        "{} set ({}), API {}, {} requests per minute",
        config::ASANA_PERSONAL_KEY,
        length(&asana.token),
        asana.api_url,
        args.requests_per_minute
    );
    if let Some(format) = config::var(config::NAME_FORMAT) {
        if let Err(error) = NameFormat::parse(&format) {
            let fix = format!(
                "set {} to a template such as \"{{prefix}}-{{number}}: {{name}}\"",
                config::NAME_FORMAT
            );
            checks.push(Check::fail(
                name,
                format!("{}: {error}", config::NAME_FORMAT),
                fix,
            ));
            return Some(client);
        }
        detail.push_str(&format!(", name format {format:?}"));
    }
    checks.push(Check::pass(name, detail));
    Some(client)
}

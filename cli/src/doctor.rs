//! `autonumber doctor`: checks the configuration and every service the pipeline depends on,
//! and prints one line per check with what to do when it fails.
//!
//! Checks: the configuration (store, queue, Asana), the Asana token (`GET /users/me`), the store
//! (`Store::ping`), the queue and the dead-letter queue (depths), and per registered prefix its
//! counter, its secrets and each recorded webhook (`GET /webhooks/{gid}`). Secrets show only
//! that they are set and their length. The exit status is 1 when any check failed; warnings
//! do not change it.

mod config;
mod services;

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::backend::{AsanaArgs, Backend, StoreArgs};
use crate::text::count;
use config::{check_asana_config, check_queue_config, check_store_config};
use services::{check_prefixes, check_queues, check_store, check_token};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    asana: AsanaArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
    /// Advice for a warning or a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Pass, detail, None)
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Warn, detail, Some(fix.into()))
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Fail, detail, Some(fix.into()))
    }

    fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();

    let backend = check_store_config(&args.store, &mut checks);
    check_queue_config(&mut checks);
    let asana = check_asana_config(&args.asana, &mut checks);
    if let Some(asana) = &asana {
        checks.push(check_token(asana).await);
    }
    let store = backend.as_ref().map(Backend::store);
    if let (Some(store), Some(backend)) = (&store, &backend) {
        checks.push(check_store(store.as_ref(), &backend.describe()).await);
    }
    check_queues(&args.store, &mut checks).await;
    if let Some(store) = &store {
        check_prefixes(store, asana.as_ref(), &mut checks).await;
    }

    print(&checks, args.json);
    let failed = checks.iter().any(|check| check.status == Status::Fail);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(checks: &[Check], as_json: bool) {
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warnings = checks.iter().filter(|c| c.status == Status::Warn).count();
    if as_json {
        let output =
            json!({ "ok": failed == 0, "failed": failed, "warnings": warnings, "checks": checks });
        println!("{output:#}");
        return;
    }

    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in checks {
        let status = match check.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{status}  {:<width$}  {}", check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("      {:<width$}  fix: {fix}", "");
        }
    }
    println!(
        "{}: {failed} failed, {}.",
        count(checks.len() as u64, "check"),
        count(warnings as u64, "warning")
    );
}

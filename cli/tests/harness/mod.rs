//! Helpers of the operator command tests: the real `autonumber` binary run with a chosen
//! environment, and the services it works against (the Asana fake, the embedded database, the
//! Upstash stand-in, moto).
//!
//! The binary runs with a cleared environment plus exactly the variables a test sets, so no
//! variable of the developer's shell (an Upstash URL, AWS credentials) reaches it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autonumber_shared::db::Database;
use autonumber_shared::store::{SqliteStore, Store, UpstashStore, REGISTRATION_TTL};
use autonumber_tests::asana_fake::{AsanaFake, WebhookRecord, HOOK_SECRET_HEADER};
use autonumber_tests::moto::{self, FifoQueues};
pub use autonumber_tests::services::{env_var as service_var, upstash_command};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const TOKEN: &str = "operations-test-asana-token";
pub const PROJECT: &str = "1208400000000001";

/// Maximum run time of one command. Every command here finishes in seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished command returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Parses stdout as JSON.
    ///
    /// # Panics
    /// When stdout is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{self}"))
    }

    /// Stdout and stderr together, for searching.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Returns a prefix no other test or earlier run uses: `label` followed by upper-case letters
/// and digits, 16 characters in all.
pub fn unique_prefix(label: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut seed = nanos ^ (u128::from(std::process::id()) << 64) ^ (u128::from(sequence) << 96);
    let mut suffix = String::new();
    while suffix.len() + label.len() < 16 {
        let digit = (seed % 36) as u32;
        suffix.push(char::from_digit(digit, 36).unwrap().to_ascii_uppercase());
        seed /= 36;
    }
    format!("{label}{suffix}")
}

/// One test's environment for the binary: a data directory, the Asana fake with one project,
/// and optionally the Upstash stand-in and SQS queues in moto.
pub struct Setup {
    pub data_dir: TempDir,
    pub fake: AsanaFake,
    vars: BTreeMap<String, String>,
}

impl Setup {
    /// Creates a new data directory for the embedded store and queue, and starts the Asana fake.
    pub async fn embedded() -> Setup {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let fake = AsanaFake::start(TOKEN).await.expect("Asana fake starts");
        fake.add_project(PROJECT);

        let mut vars = BTreeMap::new();
        let dir = data_dir.path().display().to_string();
        vars.insert("ASANA_PERSONAL_KEY".into(), TOKEN.into());
        vars.insert("ASANA_API_URL".into(), fake.url().into());
        vars.insert("AUTONUMBER_DATA_DIR".into(), dir.clone());
        vars.insert("HOME".into(), dir);
        vars.insert(
            "AUTONUMBER_ASANA_REQUESTS_PER_MINUTE".into(),
            "60000".into(),
        );
        vars.insert("RUST_LOG".into(), "info".into());
        if let Ok(path) = std::env::var("PATH") {
            vars.insert("PATH".into(), path);
        }
        Setup {
            data_dir,
            fake,
            vars,
        }
    }

    /// Creates the embedded setup with the store on the Upstash stand-in.
    pub async fn upstash() -> Setup {
        let mut setup = Setup::embedded().await;
        setup.set(
            "UPSTASH_REDIS_REST_URL",
            &service_var("AUTONUMBER_TEST_UPSTASH_URL"),
        );
        setup.set(
            "UPSTASH_REDIS_REST_TOKEN",
            &service_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        );
        setup
    }

    /// Points the queue commands at `queues` in moto.
    pub fn use_sqs(&mut self, queues: &FifoQueues) {
        self.set("AUTONUMBER_QUEUE_URL", &queues.queue_url);
        self.set("AUTONUMBER_DLQ_URL", &queues.dlq_url);
        self.set("AWS_ENDPOINT_URL", &moto::sqs_endpoint());
        self.set("AWS_REGION", moto::REGION);
        self.set("AWS_ACCESS_KEY_ID", "testing");
        self.set("AWS_SECRET_ACCESS_KEY", "testing");
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.into(), value.into());
    }

    /// Runs the binary with `args` and standard input on /dev/null.
    pub async fn run(&self, args: &[&str]) -> Output {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_autonumber"))
            .args(args)
            .env_clear()
            .envs(&self.vars)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child)
            .await
            .unwrap_or_else(|_| panic!("autonumber {args:?} ran longer than {COMMAND_TIMEOUT:?}"))
            .expect("the autonumber binary starts");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Opens the embedded database of the data directory.
    pub fn database(&self) -> Database {
        Database::open(self.data_dir.path()).expect("embedded database opens")
    }

    /// Returns the embedded store of the data directory.
    pub fn sqlite_store(&self) -> SqliteStore {
        SqliteStore::new(self.database())
    }
}

/// Returns a store client of the Upstash stand-in.
pub fn upstash_store() -> UpstashStore {
    UpstashStore::new(
        &service_var("AUTONUMBER_TEST_UPSTASH_URL"),
        &service_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        reqwest::Client::new(),
    )
}

/// A receiver that completes Asana's handshake by echoing `X-Hook-Secret` and accepts every
/// delivery. It stops when dropped.
pub struct EchoReceiver {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl EchoReceiver {
    pub async fn start() -> EchoReceiver {
        async fn echo(headers: HeaderMap) -> impl IntoResponse {
            let mut response = StatusCode::OK.into_response();
            if let Some(secret) = headers.get(HOOK_SECRET_HEADER) {
                response
                    .headers_mut()
                    .insert(HOOK_SECRET_HEADER, secret.clone());
            }
            response
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver binds 127.0.0.1");
        let address: SocketAddr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(echo);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        EchoReceiver {
            url: format!("http://{address}"),
            task,
        }
    }
}

impl Drop for EchoReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers a webhook on `PROJECT` with target `{receiver}/webhooks/{prefix}` through the
/// fake's API, and records its secret and gid in `store` as `webhooks create` would.
pub async fn register_webhook(
    setup: &Setup,
    store: &dyn Store,
    receiver: &EchoReceiver,
    prefix: &str,
) -> WebhookRecord {
    let target = format!("{}/webhooks/{prefix}", receiver.url);
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks", setup.fake.url()))
        .bearer_auth(TOKEN)
        .json(&json!({"data": {"resource": PROJECT, "target": target, "filters": []}}))
        .send()
        .await
        .expect("Asana fake reachable");
    assert_eq!(response.status(), StatusCode::CREATED, "webhook created");
    let webhook = setup
        .fake
        .webhooks()
        .into_iter()
        .find(|webhook| webhook.target == target)
        .expect("the fake lists the new webhook");

    store
        .begin_registration(prefix, REGISTRATION_TTL)
        .await
        .unwrap();
    assert!(store
        .complete_registration(prefix, &webhook.secret)
        .await
        .unwrap());
    store
        .set_webhook_gid(prefix, &webhook.secret, &webhook.gid)
        .await
        .unwrap();
    store.set_counter_key(prefix, prefix).await.unwrap();
    webhook
}

/// Deletes a webhook through the fake's API, as if it had been removed in Asana.
pub async fn delete_in_asana(setup: &Setup, gid: &str) {
    let response = reqwest::Client::new()
        .delete(format!("{}/webhooks/{gid}", setup.fake.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("Asana fake reachable");
    assert_eq!(response.status(), StatusCode::OK, "webhook {gid} deleted");
}

/// Creates a FIFO work queue and dead-letter queue in moto; SQS moves a message to the
/// dead-letter queue on its second receive.
pub async fn sqs_queues(label: &str) -> FifoQueues {
    FifoQueues::create(&moto::sqs_client(), label, 1, 30)
        .await
        .expect("queues created in moto")
}

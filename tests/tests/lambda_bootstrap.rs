//! The real `ingest` and `worker` binaries under an emulator of the Lambda Runtime API: what a
//! deployment runs, minus AWS.
//!
//! With `AUTONUMBER_TEST_LAMBDA_DIR` set, the tests run the packaged `bootstrap` files that
//! `cargo lambda build --release` wrote there. Otherwise each test builds both binaries with
//! `cargo build -p ingest -p worker` (a no-op when they are current), starts one with `AWS_LAMBDA_RUNTIME_API` pointing at the emulator, the function
//! variables `lambda_runtime` reads, and the configuration the function needs, then sends it
//! events. The AWS SDK inside the binaries reaches moto through `AWS_ENDPOINT_URL`.
//!
//! moto and the Upstash stand-in are named by `AUTONUMBER_TEST_SQS_ENDPOINT`,
//! `AUTONUMBER_TEST_UPSTASH_URL` and `AUTONUMBER_TEST_UPSTASH_TOKEN`, which
//! `scripts/with-services` sets.

use autonumber_tests::services::{env_var, unique_prefix};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autonumber_shared::queue::{Queue, SqsQueue, REASON_ATTRIBUTE};
use autonumber_shared::signature::sign;
use autonumber_shared::store::{Store, UpstashStore};
use autonumber_shared::Job;
use autonumber_tests::asana_fake::AsanaFake;
use autonumber_tests::lambda_runtime_api::{function_env, InvocationResult, RuntimeApi};
use autonumber_tests::moto::{self, EventSource, FifoQueues};
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

const TASK_ADDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/events/task_added.json");
const TASK_GID: &str = "1208200000000101";
const SECRET: &str = "00112233445566778899aabbccddeeff";
const ASANA_TOKEN: &str = "asana-token-for-bootstrap";
const PROJECT: &str = "1209100000000001";

/// How long one invocation may take, and the deadline the emulator announces.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds both binaries once per test run and returns the directory that contains them.
/// Returns the executable of `binary`: the `cargo lambda build` artefact
/// `$AUTONUMBER_TEST_LAMBDA_DIR/<binary>/bootstrap` when that variable is set (as
/// `scripts/test` does after packaging), else the debug build.
async fn executable(binary: &str) -> PathBuf {
    match std::env::var_os("AUTONUMBER_TEST_LAMBDA_DIR") {
        Some(dir) => {
            let path = PathBuf::from(dir).join(binary).join("bootstrap");
            assert!(
                path.is_file(),
                "{} does not exist: run cargo lambda build --release",
                path.display()
            );
            path
        }
        None => binary_dir().await.join(binary),
    }
}

async fn binary_dir() -> PathBuf {
    static BUILT: OnceCell<PathBuf> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let output = Command::new(cargo)
                .args(["build", "--quiet", "-p", "ingest", "-p", "worker"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .output()
                .await
                .expect("cargo runs");
            assert!(
                output.status.success(),
                "cargo build -p ingest -p worker failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // Integration tests get CARGO_TARGET_TMPDIR = <target dir>/tmp.
            let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("..");
            target_dir.join("debug")
        })
        .await
        .clone()
}

/// A function binary running under the emulator. It is killed when dropped.
struct Function {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Function {
    /// Starts `binary` with only the given variables, the Lambda variables and dummy AWS
    /// credentials for moto, so nothing from the test's environment leaks in.
    async fn start(binary: &str, runtime: &RuntimeApi, env: &[(&str, String)]) -> Function {
        let mut command = Command::new(executable(binary).await);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .envs(function_env(binary))
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", moto::sqs_endpoint())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .env("AUTONUMBER_LOG_FORMAT", "json")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("{binary} starts: {error}"));

        let logs = Arc::new(Mutex::new(Vec::new()));
        let streams = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ];
        for stream in streams.into_iter().flatten() {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        Function { child, logs }
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Kills the process by its pid and waits for it.
    async fn stop(mut self) -> Vec<String> {
        self.child.start_kill().expect("kill the function");
        self.child.wait().await.expect("wait for the function");
        // Give the reader tasks a moment to take the last lines from the closed pipes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.logs()
    }
}

fn upstash_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "UPSTASH_REDIS_REST_URL",
            env_var("AUTONUMBER_TEST_UPSTASH_URL"),
        ),
        (
            "UPSTASH_REDIS_REST_TOKEN",
            env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        ),
    ]
}

fn upstash_store() -> UpstashStore {
    UpstashStore::new(
        &env_var("AUTONUMBER_TEST_UPSTASH_URL"),
        &env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        reqwest::Client::new(),
    )
}

fn function_url_event(path: &str, headers: Value, body: &str, base64: bool) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "urlid",
            "domainName": "urlid.lambda-url.us-east-1.on.aws",
            "domainPrefix": "urlid",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "Asana"
            },
            "requestId": "5f1b7c2e-0a4d-4e8b-9c3f-2d6e8a1b4c70",
            "routeKey": "$default",
            "stage": "$default",
            "time": "02/Nov/2026:09:14:04 +0000",
            "timeEpoch": 1793610844000_i64
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

async fn invoke(runtime: &RuntimeApi, event: Value) -> Value {
    match runtime
        .invoke(event, INVOKE_TIMEOUT, INVOKE_TIMEOUT)
        .await
        .unwrap()
    {
        InvocationResult::Response(response) => response,
        InvocationResult::Error(error) => panic!("the function reported an error: {error}"),
    }
}

/// Asserts that every log line is a JSON object and that none contains `secrets`.
fn assert_json_logs_without(logs: &[String], secrets: &[&str]) {
    assert!(!logs.is_empty(), "the function logged nothing");
    for line in logs {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|value| value.is_object()),
            "not a JSON log line: {line}"
        );
        for secret in secrets {
            assert!(!line.contains(secret), "a secret reached the logs: {line}");
        }
    }
}

#[tokio::test]
async fn ingest_binary_answers_function_url_events() {
    let prefix = unique_prefix('B');
    let store = upstash_store();
    store
        .begin_registration(&prefix, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.complete_registration(&prefix, SECRET).await.unwrap());
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "bootingest", 5, 30)
        .await
        .unwrap();
    let runtime = RuntimeApi::start().await.unwrap();
    let mut env = upstash_env();
    env.push(("AUTONUMBER_QUEUE_URL", queues.queue_url.clone()));
    let function = Function::start("ingest", &runtime, &env).await;

    let body = std::fs::read(TASK_ADDED).unwrap();
    let signature = sign(SECRET, &body);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
    let path = format!("/webhooks/{prefix}");
    let headers = json!({ "content-type": "application/json", "x-hook-signature": signature });
    let accepted = invoke(
        &runtime,
        function_url_event(&path, headers.clone(), &encoded, true),
    )
    .await;
    let rejected = invoke(
        &runtime,
        function_url_event(&path, headers, "@@not base64@@", true),
    )
    .await;
    let logs = function.stop().await;

    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    assert_eq!(rejected["statusCode"], 400, "{rejected}");
    let queue = SqsQueue::new(client, &queues.queue_url);
    let received = queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].group_id.as_deref(), Some(TASK_GID));
    assert_eq!(Job::from_body(&received[0].body).unwrap().prefix, prefix);
    let upstash_token = env_var("AUTONUMBER_TEST_UPSTASH_TOKEN");
    assert_json_logs_without(&logs, &[SECRET, &signature, &upstash_token]);
}

#[tokio::test]
async fn worker_binary_processes_sqs_event() {
    let prefix = unique_prefix('B');
    let fake = AsanaFake::start(ASANA_TOKEN).await.unwrap();
    fake.add_project(PROJECT);
    let task = fake.add_task(PROJECT, "Fix login");
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "bootworker", 5, 30)
        .await
        .unwrap();
    let work_queue = SqsQueue::new(client.clone(), &queues.queue_url);
    let job = Job {
        prefix: prefix.clone(),
        counter_key: prefix.clone(),
        task_gid: task.clone(),
        action: "added".into(),
        field: None,
        created_at: "2026-11-02T09:14:03.511Z".into(),
    };
    work_queue.enqueue(&[job]).await.unwrap();
    work_queue
        .send_message("not a job", "poison-group", "poison-1")
        .await
        .unwrap();
    let events = EventSource::new(client.clone(), &queues);
    let received = events.receive(None).await.unwrap();
    assert_eq!(received.message_ids.len(), 2);
    let runtime = RuntimeApi::start().await.unwrap();
    let mut env = upstash_env();
    env.push(("ASANA_PERSONAL_KEY", ASANA_TOKEN.to_owned()));
    env.push(("ASANA_API_URL", fake.url().to_owned()));
    env.push(("AUTONUMBER_DLQ_URL", queues.dlq_url.clone()));
    let function = Function::start("worker", &runtime, &env).await;

    let response = invoke(&runtime, received.event.clone()).await;
    let logs = function.stop().await;

    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(
        fake.task_name(&task).unwrap(),
        format!("{prefix}-1: Fix login")
    );
    let dlq = SqsQueue::new(client, &queues.dlq_url);
    let letters = dlq.receive(10, Duration::from_secs(1), None).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, "not a job");
    assert!(letters[0].attributes[REASON_ATTRIBUTE].contains("not a job"));
    let upstash_token = env_var("AUTONUMBER_TEST_UPSTASH_TOKEN");
    assert_json_logs_without(&logs, &[ASANA_TOKEN, &upstash_token]);
    let spans = logs
        .iter()
        .filter(|line| line.contains(&received.message_ids[0]))
        .count();
    assert!(
        spans > 0,
        "no log line names message {}",
        received.message_ids[0]
    );
}

/// Runs `binary` with `env` and returns its exit status and output, or fails after 20 s.
async fn run_until_exit(binary: &str, env: &[(&str, String)]) -> (bool, String) {
    let runtime = RuntimeApi::start().await.unwrap();
    let function = Function::start(binary, &runtime, env).await;
    let Function { mut child, logs } = function;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let status = status
        .unwrap_or_else(|_| panic!("{binary} still running after 20 s"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let output = logs.lock().unwrap().join("\n");
    (status.success(), output)
}

#[tokio::test]
async fn ingest_binary_stops_without_queue_url() {
    let (success, output) = run_until_exit("ingest", &upstash_env()).await;

    assert!(!success, "ingest exited with success: {output}");
    assert!(output.contains("AUTONUMBER_QUEUE_URL"), "{output}");
}

#[tokio::test]
async fn worker_binary_stops_without_asana_key() {
    let mut env = upstash_env();
    env.push((
        "AUTONUMBER_DLQ_URL",
        "http://127.0.0.1:9/1/dlq.fifo".to_owned(),
    ));

    let (success, output) = run_until_exit("worker", &env).await;

    assert!(!success, "worker exited with success: {output}");
    assert!(output.contains("ASANA_PERSONAL_KEY"), "{output}");
}

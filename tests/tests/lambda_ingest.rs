//! The ingest Lambda's handler (`handle_function_url`) without the runtime: function URL events
//! against the Upstash stand-in as store and a FIFO queue in moto.
//!
//! moto and the Upstash stand-in are named by `AUTONUMBER_TEST_SQS_ENDPOINT`,
//! `AUTONUMBER_TEST_UPSTASH_URL` and `AUTONUMBER_TEST_UPSTASH_TOKEN`, which
//! `scripts/with-services` sets.

use autonumber_tests::services::{env_var, unique_prefix};
use std::sync::Arc;
use std::time::Duration;

use autonumber_shared::lambda::handle_function_url;
use autonumber_shared::queue::SqsQueue;
use autonumber_shared::signature::sign;
use autonumber_shared::store::{Store, UpstashStore};
use autonumber_shared::{Ingest, Job};
use autonumber_tests::moto::{self, FifoQueues};
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use serde_json::{json, Value};

const TASK_ADDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/events/task_added.json");
const TASK_GID: &str = "1208200000000101";
const SECRET: &str = "fedcba9876543210fedcba9876543210";

struct Setup {
    ingest: Ingest,
    queue: SqsQueue,
    prefix: String,
}

/// Builds an ingest over a fresh prefix registered under [`SECRET`] and a new FIFO queue, or over
/// `queue_url` when given.
async fn setup(queue_url: Option<String>) -> Setup {
    let store = UpstashStore::new(
        &env_var("AUTONUMBER_TEST_UPSTASH_URL"),
        &env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        reqwest::Client::new(),
    );
    let prefix = unique_prefix('I');
    store
        .begin_registration(&prefix, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.complete_registration(&prefix, SECRET).await.unwrap());

    let client = moto::sqs_client();
    let queue_url = match queue_url {
        Some(url) => url,
        None => {
            FifoQueues::create(&client, "ingest", 5, 30)
                .await
                .unwrap()
                .queue_url
        }
    };
    let queue = SqsQueue::new(client, &queue_url);
    let ingest = Ingest::new(Arc::new(store), Arc::new(queue.clone()));
    Setup {
        ingest,
        queue,
        prefix,
    }
}

/// A function URL event (payload format 2.0) for `raw_path` and `raw_query`.
fn event(
    raw_path: &str,
    raw_query: &str,
    headers: Value,
    body: &str,
    base64: bool,
) -> LambdaFunctionUrlRequest {
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "urlid",
            "domainName": "urlid.lambda-url.us-east-1.on.aws",
            "domainPrefix": "urlid",
            "http": {
                "method": "POST",
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "Asana"
            },
            "requestId": "0b5a3f0e-6b1c-4f7e-8a4e-1f2d3c4b5a69",
            "routeKey": "$default",
            "stage": "$default",
            "time": "02/Nov/2026:09:14:04 +0000",
            "timeEpoch": 1793610844000_i64
        },
        "body": body,
        "isBase64Encoded": base64
    });
    serde_json::from_value(event).unwrap()
}

/// A signed delivery of the `task_added.json` fixture, base64-encoded as Lambda passes
/// `application/json` bodies that it does not treat as text.
fn signed_delivery(raw_path: &str, raw_query: &str) -> LambdaFunctionUrlRequest {
    let body = std::fs::read(TASK_ADDED).unwrap();
    let headers = json!({
        "content-type": "application/json",
        "x-hook-signature": sign(SECRET, &body),
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
    event(raw_path, raw_query, headers, &encoded, true)
}

fn body_json(response: &LambdaFunctionUrlResponse) -> Value {
    serde_json::from_str(response.body.as_deref().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn signed_base64_delivery_is_enqueued() {
    let setup = setup(None).await;
    let path = format!("/webhooks/{}", setup.prefix);

    let response = handle_function_url(&setup.ingest, signed_delivery(&path, "")).await;

    assert_eq!(response.status_code, 200, "{:?}", response.body);
    assert_eq!(body_json(&response)["enqueued"], 1);
    let received = setup
        .queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    let job = Job::from_body(&received[0].body).unwrap();
    assert_eq!(job.prefix, setup.prefix);
    assert_eq!(job.task_gid, TASK_GID);
    assert_eq!(received[0].group_id.as_deref(), Some(TASK_GID));
    assert_eq!(
        received[0].dedup_id.as_deref(),
        Some(job.dedup_id().as_str())
    );
}

#[tokio::test]
async fn legacy_query_route_uses_counter_key() {
    let setup = setup(None).await;
    let query = format!("prefix={}&counter_key=legacy_counter", setup.prefix);

    let response = handle_function_url(&setup.ingest, signed_delivery("/", &query)).await;

    assert_eq!(response.status_code, 200, "{:?}", response.body);
    let received = setup
        .queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .unwrap();
    let job = Job::from_body(&received[0].body).unwrap();
    assert_eq!(job.counter_key, "legacy_counter");
}

#[tokio::test]
async fn invalid_base64_is_400() {
    let setup = setup(None).await;
    let path = format!("/webhooks/{}", setup.prefix);
    let headers = json!({ "x-hook-signature": "00" });

    let response = handle_function_url(
        &setup.ingest,
        event(&path, "", headers, "%%% not base64", true),
    )
    .await;

    assert_eq!(response.status_code, 400);
    let error = body_json(&response)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("base64"), "{error}");
    assert_eq!(setup.queue.message_counts().await.unwrap().visible, 0);
}

#[tokio::test]
async fn wrong_signature_is_401() {
    let setup = setup(None).await;
    let path = format!("/webhooks/{}", setup.prefix);
    let mut delivery = signed_delivery(&path, "");
    delivery
        .headers
        .insert("x-hook-signature", "ab".repeat(32).parse().unwrap());

    let response = handle_function_url(&setup.ingest, delivery).await;

    assert_eq!(response.status_code, 401);
}

#[tokio::test]
async fn missing_queue_is_503() {
    let missing = format!(
        "{}/123456789012/{}.fifo",
        moto::sqs_endpoint(),
        moto::unique_name("nq")
    );
    let setup = setup(Some(missing)).await;
    let path = format!("/webhooks/{}", setup.prefix);

    let response = handle_function_url(&setup.ingest, signed_delivery(&path, "")).await;

    assert_eq!(response.status_code, 503, "Asana redelivers on 503");
}

#[tokio::test]
async fn handshake_echoes_secret_header() {
    let store = UpstashStore::new(
        &env_var("AUTONUMBER_TEST_UPSTASH_URL"),
        &env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
        reqwest::Client::new(),
    );
    let setup = setup(None).await;
    store
        .begin_registration(&setup.prefix, Duration::from_secs(60))
        .await
        .unwrap();
    let path = format!("/webhooks/{}", setup.prefix);
    let headers = json!({ "x-hook-secret": "second-secret-0123456789" });

    let response = handle_function_url(&setup.ingest, event(&path, "", headers, "", false)).await;

    assert_eq!(response.status_code, 200);
    assert_eq!(
        response.headers.get("x-hook-secret").unwrap(),
        "second-secret-0123456789"
    );
}

//! `autonumber serve` with the Upstash REST store (the stand-in over a real redis-server): the
//! pending registration that `webhooks create` writes to Upstash is where the receiver finds
//! it, and numbers come from the Upstash counter.

mod support;

use support::{Pipeline, EXTRA_ENV, PROJECT};

fn use_upstash() {
    let url = std::env::var("AUTONUMBER_TEST_UPSTASH_URL").expect(
        "AUTONUMBER_TEST_UPSTASH_URL is not set: run the tests through scripts/test or scripts/with-services",
    );
    let token = std::env::var("AUTONUMBER_TEST_UPSTASH_TOKEN")
        .expect("AUTONUMBER_TEST_UPSTASH_TOKEN is not set: run the tests through scripts/test");
    let mut env = EXTRA_ENV.lock().unwrap();
    env.clear();
    env.push(("UPSTASH_REDIS_REST_URL".into(), url));
    env.push(("UPSTASH_REDIS_REST_TOKEN".into(), token));
}

/// Deletes the keys of prefix `BUG` so that reruns on the same Redis start from 1.
async fn reset_bug_keys() {
    let url = std::env::var("AUTONUMBER_TEST_UPSTASH_URL").unwrap();
    let token = std::env::var("AUTONUMBER_TEST_UPSTASH_TOKEN").unwrap();
    let command = serde_json::json!([
        "DEL",
        "BUG",
        "BUG_hook_secret",
        "autonumber:secrets:BUG",
        "autonumber:numbers:BUG",
        "autonumber:pending:BUG",
        "autonumber:secret_webhooks:BUG"
    ]);
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&command)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn upstash_backed_serve_numbers_tasks() {
    use_upstash();
    reset_bug_keys().await;
    let pipeline = Pipeline::start(&[]).await;
    assert!(
        pipeline.serve.log().contains("Upstash REST"),
        "{}",
        pipeline.serve.log()
    );

    let first = pipeline.fake.add_task(PROJECT, "Stored in Redis");
    pipeline
        .wait_for_name(&first, "BUG-1: Stored in Redis")
        .await;
    let second = pipeline.fake.add_task(PROJECT, "Second");
    pipeline.wait_for_name(&second, "BUG-2: Second").await;
}

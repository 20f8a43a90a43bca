//! `autonumber serve` with the Upstash REST store (the stand-in over a real redis-server): the
//! pending registration that `webhooks create` writes to Upstash is where the receiver finds
//! it, and numbers come from the Upstash counter.

mod support;

use autonumber_tests::services::{env_var, upstash_command};
use support::{Pipeline, EXTRA_ENV, PROJECT};

fn use_upstash() {
    let mut env = EXTRA_ENV.lock().unwrap();
    env.clear();
    env.push((
        "UPSTASH_REDIS_REST_URL".into(),
        env_var("AUTONUMBER_TEST_UPSTASH_URL"),
    ));
    env.push((
        "UPSTASH_REDIS_REST_TOKEN".into(),
        env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
    ));
}

/// Deletes the keys of prefix `BUG` so that reruns on the same Redis start from 1.
async fn reset_bug_keys() {
    upstash_command(&[
        "DEL",
        "BUG",
        "BUG_hook_secret",
        "autonumber:secrets:BUG",
        "autonumber:numbers:BUG",
        "autonumber:pending:BUG",
        "autonumber:secret_webhooks:BUG",
    ])
    .await;
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

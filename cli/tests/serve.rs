//! `autonumber serve` end to end: the real binary, a webhook registered with the real
//! handshake, and the stateful Asana fake sending signed deliveries and echoing renames.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use autonumber_tests::asana_fake::{Route, HOOK_SIGNATURE_HEADER};
use support::{Pipeline, Serve, PROJECT, WAIT};

#[tokio::test]
async fn new_task_gets_first_number() {
    let pipeline = Pipeline::start(&[]).await;
    let deliveries_before = pipeline.delivered();

    let task = pipeline.fake.add_task(PROJECT, "Fix login");
    pipeline.wait_for_name(&task, "BUG-1: Fix login").await;

    // The rename comes back as a name-change event, which must be a no-op.
    pipeline.settle(deliveries_before + 2).await;
    assert_eq!(pipeline.fake.renames().len(), 1);
    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "BUG-1: Fix login");
    assert!(pipeline
        .fake
        .deliveries()
        .iter()
        .all(|d| d.status == Some(200)));
}

#[tokio::test]
async fn webhook_registration_stores_the_secret() {
    let pipeline = Pipeline::start(&[]).await;
    let webhooks = pipeline.fake.webhooks();

    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0].resource_gid, PROJECT);
    assert_eq!(
        webhooks[0].target,
        format!("{}/webhooks/BUG", pipeline.serve.url())
    );
    let log = pipeline.serve.log();
    assert!(log.contains("webhook handshake accepted"), "{log}");
    assert!(
        !log.contains(&webhooks[0].secret),
        "the secret reached the log"
    );
}

#[tokio::test]
async fn duplicate_delivery_keeps_one_number() {
    let pipeline = Pipeline::start(&[]).await;
    let task = pipeline.fake.add_task(PROJECT, "First");
    pipeline.wait_for_name(&task, "BUG-1: First").await;
    pipeline.settle(pipeline.delivered()).await;

    // Deliver every recorded body again, exactly as Asana would on a redelivery.
    let client = reqwest::Client::new();
    for delivery in pipeline.fake.deliveries() {
        let response = client
            .post(&delivery.target)
            .header(HOOK_SIGNATURE_HEADER, &delivery.signature)
            .body(delivery.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    pipeline.wait_until_idle().await;

    let second = pipeline.fake.add_task(PROJECT, "Second");
    pipeline.wait_for_name(&second, "BUG-2: Second").await;
    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "BUG-1: First");
    assert_eq!(pipeline.fake.renames().len(), 2);
}

#[tokio::test]
async fn deleted_number_comes_back() {
    let pipeline = Pipeline::start(&[]).await;
    let task = pipeline.fake.add_task(PROJECT, "Fix login");
    pipeline.wait_for_name(&task, "BUG-1: Fix login").await;
    let other = pipeline.fake.add_task(PROJECT, "Other");
    pipeline.wait_for_name(&other, "BUG-2: Other").await;

    pipeline.fake.set_task_name(&task, "Fix login properly");
    pipeline
        .wait_for_name(&task, "BUG-1: Fix login properly")
        .await;
}

#[tokio::test]
async fn empty_name_waits_for_a_real_name() {
    let pipeline = Pipeline::start(&[]).await;
    let before = pipeline.delivered();
    let task = pipeline.fake.add_task(PROJECT, "");
    pipeline.settle(before + 1).await;
    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "");
    assert!(pipeline.fake.renames().is_empty());

    pipeline.fake.set_task_name(&task, "  ");
    pipeline.settle(before + 2).await;
    assert!(pipeline.fake.renames().is_empty());

    pipeline.fake.set_task_name(&task, "Now named");
    pipeline.wait_for_name(&task, "BUG-1: Now named").await;
}

#[tokio::test]
async fn existing_number_is_left_alone() {
    let pipeline = Pipeline::start(&[]).await;
    let before = pipeline.delivered();
    let task = pipeline.fake.add_task(PROJECT, "BUG-77: Imported");
    let middle = pipeline.fake.add_task(PROJECT, "See BUG-3 first");
    pipeline
        .wait_for_name(&middle, "BUG-1: See BUG-3 first")
        .await;
    pipeline.settle(before + 3).await;

    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "BUG-77: Imported");
    assert_eq!(pipeline.fake.renames().len(), 1);
}

#[tokio::test]
async fn subtask_is_not_numbered() {
    let pipeline = Pipeline::start(&[]).await;
    let parent = pipeline.fake.add_task(PROJECT, "Parent");
    pipeline.wait_for_name(&parent, "BUG-1: Parent").await;
    let before = pipeline.delivered();

    let subtask = pipeline.fake.add_subtask(&parent, "Child");
    pipeline.fake.set_task_name(&subtask, "Child renamed");
    pipeline.wait_until_idle().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    pipeline.wait_until_idle().await;

    assert_eq!(pipeline.fake.task_name(&subtask).unwrap(), "Child renamed");
    assert_eq!(
        pipeline.fake.renames().len(),
        1,
        "deliveries since: {}",
        pipeline.delivered() - before
    );
}

#[tokio::test]
async fn missing_task_consumes_no_number() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.fail_next(Route::GetTask, 1, 404, None);
    let before = pipeline.delivered();
    let gone = pipeline.fake.add_task(PROJECT, "Vanishes");
    pipeline.settle(before + 1).await;
    assert_eq!(pipeline.fake.task_name(&gone).unwrap(), "Vanishes");

    let next = pipeline.fake.add_task(PROJECT, "Next");
    pipeline.wait_for_name(&next, "BUG-1: Next").await;
    assert!(pipeline.serve.log().contains("task not found"));
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.fail_next(Route::UpdateTask, 1, 429, Some(2));

    let task = pipeline.fake.add_task(PROJECT, "Throttled");
    pipeline.wait_for_name(&task, "BUG-1: Throttled").await;

    let path = format!("/tasks/{task}");
    let puts: Vec<_> = pipeline
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == path)
        .collect();
    assert_eq!(puts.len(), 2, "one rejected and one accepted rename");
    let waited = puts[1].received_at - puts[0].received_at;
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, before Retry-After"
    );
    assert!(pipeline.serve.log().contains("retrying"));
}

#[tokio::test]
async fn server_errors_are_retried() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.fail_next(Route::GetTask, 2, 503, None);
    pipeline.fake.fail_next(Route::UpdateTask, 1, 500, None);

    let task = pipeline.fake.add_task(PROJECT, "Flaky");
    pipeline.wait_for_name(&task, "BUG-1: Flaky").await;
}

#[tokio::test]
async fn forbidden_rename_goes_to_dead_letters() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.fail_next(Route::UpdateTask, 1, 403, None);
    let before = pipeline.delivered();
    let task = pipeline.fake.add_task(PROJECT, "Locked");
    pipeline.settle(before + 1).await;

    let db = autonumber_shared::db::Database::open(pipeline.dir.path()).unwrap();
    let queue = autonumber_shared::queue::SqliteQueue::new(db, Duration::from_secs(30));
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group_id, task);
    assert!(dead[0].reason.contains("403"), "reason: {}", dead[0].reason);
}

#[tokio::test]
async fn ack_does_not_wait_for_slow_asana() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline
        .fake
        .set_delay(Route::GetTask, Duration::from_secs(3));
    let before = pipeline.delivered();

    let task = pipeline.fake.add_task(PROJECT, "Slow");
    let deliveries = pipeline
        .fake
        .wait_for_deliveries(before + 1, WAIT)
        .await
        .unwrap();

    // The delivery gets its response while the worker still waits for the task read.
    assert_eq!(deliveries.last().unwrap().status, Some(200));
    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "Slow");
    assert!(pipeline.fake.renames().is_empty());
    pipeline.wait_for_name(&task, "BUG-1: Slow").await;
}

#[tokio::test]
async fn concurrent_tasks_get_one_to_n() {
    let pipeline = Pipeline::start(&[]).await;
    let tasks: Vec<String> = (0..40)
        .map(|i| pipeline.fake.add_task(PROJECT, &format!("Task {i}")))
        .collect();

    let mut numbers = BTreeSet::new();
    for task in &tasks {
        let fake = &pipeline.fake;
        fake.wait_until("task to be numbered", WAIT, |fake| {
            fake.task_name(task)
                .is_some_and(|name| name.starts_with("BUG-"))
        })
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", pipeline.serve.log()));
        let name = fake.task_name(task).unwrap();
        let number: u64 = name["BUG-".len()..name.find(':').unwrap()].parse().unwrap();
        assert!(numbers.insert(number), "number {number} given twice");
    }
    assert_eq!(numbers, (1..=40).collect::<BTreeSet<u64>>());
}

#[tokio::test]
async fn dry_run_renames_nothing() {
    let pipeline = Pipeline::start(&["--dry-run"]).await;
    let before = pipeline.delivered();
    let task = pipeline.fake.add_task(PROJECT, "Untouched");
    pipeline.settle(before + 1).await;

    assert_eq!(pipeline.fake.task_name(&task).unwrap(), "Untouched");
    assert!(pipeline.serve.log().contains("BUG-1: Untouched"));
}

#[tokio::test]
async fn custom_name_format_is_used() {
    let pipeline = Pipeline::start(&["--name-format", "[{prefix}-{number}] {name}"]).await;
    let task = pipeline.fake.add_task(PROJECT, "Formatted");
    pipeline.wait_for_name(&task, "[BUG-1] Formatted").await;
    pipeline.settle(pipeline.delivered()).await;
    assert_eq!(pipeline.fake.renames().len(), 1);
}

#[tokio::test]
async fn kill_then_restart_loses_nothing_acknowledged() {
    let mut pipeline = Pipeline::start(&[]).await;
    pipeline
        .fake
        .set_delay(Route::GetTask, Duration::from_secs(60));
    let before = pipeline.delivered();
    let tasks: Vec<String> = (0..10)
        .map(|i| pipeline.fake.add_task(PROJECT, &format!("Survivor {i}")))
        .collect();
    let deliveries = pipeline
        .fake
        .wait_for_deliveries(before + 10, WAIT)
        .await
        .unwrap();
    assert!(deliveries[before..].iter().all(|d| d.status == Some(200)));

    pipeline.serve.kill_hard();
    pipeline.fake.set_delay(Route::GetTask, Duration::ZERO);
    let port = pipeline.serve.port;
    pipeline.serve = Serve::start(pipeline.fake.url(), pipeline.dir.path(), port, &[]).await;

    let mut names = BTreeSet::new();
    for task in &tasks {
        pipeline
            .fake
            .wait_until("task to be numbered", WAIT, |fake| {
                fake.task_name(task)
                    .is_some_and(|name| name.starts_with("BUG-"))
            })
            .await
            .unwrap_or_else(|error| panic!("{error}\n{}", pipeline.serve.log()));
        names.insert(
            pipeline
                .fake
                .task_name(task)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(names.len(), 10, "each task has its own number: {names:?}");
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_queue() {
    let mut pipeline = Pipeline::start(&[]).await;
    let status = pipeline.serve.terminate();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        pipeline.serve.log()
    );
    assert!(pipeline.serve.log().contains("autonumber serve stopped"));

    pipeline.serve = Serve::start(pipeline.fake.url(), pipeline.dir.path(), 0, &[]).await;
}

#[tokio::test]
async fn second_serve_on_same_data_dir_is_refused() {
    let pipeline = Pipeline::start(&[]).await;
    let output = support::autonumber(pipeline.fake.url(), pipeline.dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("another `autonumber serve`"));
}

#[tokio::test]
async fn handshake_answered_elsewhere_deletes_webhook() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.add_project("1208300000000002");
    pipeline
        .fake
        .set_secret_override(Some("someone-elses-secret"));

    let mut command = support::autonumber(pipeline.fake.url(), pipeline.dir.path());
    command
        .args([
            "webhooks",
            "create",
            "--project",
            "1208300000000002",
            "--prefix",
            "OPS",
        ])
        .args(["--target-url", &pipeline.serve.url()]);
    // The fake runs on this test's runtime, so the blocking wait goes to another thread.
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("handled by another receiver"),
        "{stderr}\nserve log:\n{}",
        pipeline.serve.log()
    );
    assert!(!stderr.contains("someone-elses-secret"));
    assert_eq!(
        pipeline.fake.webhooks().len(),
        1,
        "the second webhook was deleted"
    );
}

#[tokio::test]
async fn missing_token_stops_with_variable_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::autonumber("http://127.0.0.1:9", dir.path())
        .env_remove("ASANA_PERSONAL_KEY")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ASANA_PERSONAL_KEY is not set"));
}

#[tokio::test]
async fn slow_message_is_not_received_twice() {
    let pipeline = Pipeline::start(&["--visibility-timeout", "5"]).await;
    pipeline
        .fake
        .set_delay(Route::GetTask, Duration::from_secs(8));

    let task = pipeline.fake.add_task(PROJECT, "Slow read");
    pipeline.wait_for_name(&task, "BUG-1: Slow read").await;

    // Count the reads before the rename: the rename's echo event is read once more.
    let requests = pipeline.fake.requests();
    let path = format!("/tasks/{task}");
    let renamed_at = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path == path)
        .unwrap()
        .received_at;
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == path && r.received_at < renamed_at)
        .count();
    assert_eq!(
        reads, 1,
        "the in-flight message was received again while its worker waited"
    );
}

#[tokio::test]
async fn zero_concurrency_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::autonumber("http://127.0.0.1:9", dir.path())
        .args(["serve", "--concurrency", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--concurrency"));
}

#[tokio::test]
async fn failed_create_closes_registration() {
    let pipeline = Pipeline::start(&[]).await;
    let mut command = support::autonumber(pipeline.fake.url(), pipeline.dir.path());
    command.args([
        "webhooks",
        "create",
        "--project",
        "1208399999999999",
        "--prefix",
        "NEW",
    ]);
    command.args(["--target-url", &pipeline.serve.url()]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));

    let handshake = reqwest::Client::new()
        .post(format!("{}/webhooks/NEW", pipeline.serve.url()))
        .header("X-Hook-Secret", "late-handshake")
        .send()
        .await
        .unwrap();
    assert_eq!(
        handshake.status(),
        404,
        "a handshake after the failed create was accepted"
    );
}

#[tokio::test]
async fn unconfirmed_handshake_secret_is_removed() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.add_project("1208300000000002");
    // Hold Asana's create call so that another handshake arrives while it waits.
    pipeline
        .fake
        .set_delay(Route::CreateWebhook, Duration::from_secs(2));
    let mut command = support::autonumber(pipeline.fake.url(), pipeline.dir.path());
    command.args([
        "webhooks",
        "create",
        "--project",
        "1208300000000002",
        "--prefix",
        "OPS",
    ]);
    command.args(["--target-url", &pipeline.serve.url()]);
    let create = tokio::task::spawn_blocking(move || command.output().unwrap());

    tokio::time::sleep(Duration::from_millis(700)).await;
    let forged = reqwest::Client::new()
        .post(format!("{}/webhooks/OPS", pipeline.serve.url()))
        .header("X-Hook-Secret", "forged-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        200,
        "the forged handshake came inside the window"
    );

    let output = create.await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "Asana's own handshake found no pending registration"
    );
    let db = autonumber_shared::db::Database::open(pipeline.dir.path()).unwrap();
    let store = autonumber_shared::store::SqliteStore::new(db);
    let secrets = autonumber_shared::store::Store::secrets(&store, "OPS")
        .await
        .unwrap();
    assert!(secrets.is_empty(), "the unconfirmed secret is still stored");
}

#[tokio::test]
async fn two_prefixes_on_one_task_settle() {
    let pipeline = Pipeline::start(&[]).await;
    let output = support::create_webhook(
        pipeline.fake.url(),
        pipeline.dir.path(),
        &pipeline.serve,
        "OPS",
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let task = pipeline.fake.add_task(PROJECT, "Shared");
    pipeline
        .fake
        .wait_until("both prefixes to number the task", WAIT, |fake| {
            fake.renames().len() >= 2
        })
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", pipeline.serve.log()));
    // Let the echoes of both renames come back and be processed.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pipeline.wait_until_idle().await;
    }

    let name = pipeline.fake.task_name(&task).unwrap();
    assert_eq!(
        pipeline.fake.renames().len(),
        2,
        "the task kept being renamed: {name}"
    );
    assert!(
        name == "OPS-1: BUG-1: Shared" || name == "BUG-1: OPS-1: Shared",
        "unexpected name {name}"
    );
}

#[tokio::test]
async fn second_project_keeps_recorded_counter_key() {
    let pipeline = Pipeline::start(&[]).await;
    pipeline.fake.add_project("1208300000000002");
    let create = |counter_key: Option<&str>| {
        let mut command = support::autonumber(pipeline.fake.url(), pipeline.dir.path());
        command.args([
            "webhooks",
            "create",
            "--project",
            "1208300000000002",
            "--prefix",
            "BUG",
        ]);
        command.args(["--target-url", &pipeline.serve.url()]);
        if let Some(key) = counter_key {
            command.args(["--counter-key", key]);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };

    let conflicting = create(Some("other_counter")).await.unwrap();
    assert_eq!(conflicting.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&conflicting.stderr).contains("recorded for prefix BUG"));

    let output = create(None).await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = pipeline.fake.add_task(PROJECT, "From project one");
    pipeline
        .wait_for_name(&first, "BUG-1: From project one")
        .await;
    let second = pipeline
        .fake
        .add_task("1208300000000002", "From project two");
    pipeline
        .wait_for_name(&second, "BUG-2: From project two")
        .await;
}

#[tokio::test]
async fn invalid_rust_log_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::autonumber("http://127.0.0.1:9", dir.path())
        .env("RUST_LOG", "autonumber=loud")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RUST_LOG"));
}

//! The operator commands of `autonumber` (`counters`, `webhooks list/delete`, `dlq`,
//! `backfill`, `doctor`) run as the real binary against real components: the embedded SQLite
//! store and queue, the Upstash stand-in over redis-server, SQS queues in moto, and the Asana
//! fake. Run through `scripts/with-services`, which starts those services; a test that needs a
//! missing service panics.

mod harness;

use std::time::Duration;

use autonumber_shared::dlq::SqsDeadLetters;
use autonumber_shared::queue::{DeadLetter, Queue, SqliteQueue, SqsQueue};
use autonumber_shared::store::Store;
use autonumber_shared::Job;
use autonumber_tests::asana_fake::Route;
use autonumber_tests::moto;
use harness::{
    delete_in_asana, register_webhook, sqs_queues, unique_prefix, upstash_command, upstash_store,
    EchoReceiver, Setup, PROJECT, TOKEN,
};
use serde_json::Value;

fn job(prefix: &str, task_gid: &str) -> Job {
    Job {
        prefix: prefix.into(),
        counter_key: prefix.into(),
        task_gid: task_gid.into(),
        action: "added".into(),
        field: None,
        created_at: "2026-03-02T10:12:25.274Z".into(),
    }
}

/// Hands out `count` numbers under `prefix` to made-up tasks.
async fn assign(store: &dyn Store, prefix: &str, count: u64) {
    for task in 0..count {
        store
            .assign_number(prefix, prefix, &format!("90{task}"))
            .await
            .unwrap();
    }
}

/// Puts `jobs` in the embedded dead-letter table with `reason`, each after one receive.
async fn dead_letter_embedded(setup: &Setup, jobs: &[Job], reason: &str) {
    let queue = SqliteQueue::new(setup.database(), Duration::from_secs(30));
    queue.enqueue(jobs).await.unwrap();
    for _ in jobs {
        let message = queue.receive().await.unwrap().expect("a queued message");
        queue.dead_letter(message.id, reason).await.unwrap();
    }
}

fn find<'a>(rows: &'a Value, key: &str, value: &str) -> &'a Value {
    rows.as_array()
        .expect("a JSON array")
        .iter()
        .find(|row| row[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value} in {rows:#}"))
}

// --- counters ----------------------------------------------------------------------------

#[tokio::test]
async fn counters_get_reports_value_next_and_max() {
    let setup = Setup::embedded().await;
    assign(&setup.sqlite_store(), "BUG", 3).await;

    let output = setup.run(&["counters", "get", "BUG", "--json"]).await;

    assert_eq!(output.code, 0, "{output}");
    let json = output.json();
    assert_eq!(json["prefix"], "BUG");
    assert_eq!(json["counter_key"], "BUG");
    assert_eq!(json["value"], 3);
    assert_eq!(json["next"], 4);
    assert_eq!(json["max_assigned"], 3);
}

#[tokio::test]
async fn counters_get_text_names_next_number() {
    let setup = Setup::embedded().await;
    assign(&setup.sqlite_store(), "OPS", 2).await;

    let output = setup.run(&["counters", "get", "OPS"]).await;

    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.contains("value:         2"), "{output}");
    assert!(output.stdout.contains("next:          OPS-3"), "{output}");
}

#[tokio::test]
async fn counters_set_below_max_is_rejected() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    assign(&store, "BUG", 5).await;

    let output = setup.run(&["counters", "set", "BUG", "2"]).await;

    assert_eq!(output.code, 2, "{output}");
    assert!(
        output.stderr.contains("BUG-3"),
        "names the repeated number: {output}"
    );
    assert!(output.stderr.contains("--force"), "{output}");
    assert_eq!(store.counter("BUG").await.unwrap(), 5, "counter unchanged");
}

#[tokio::test]
async fn counters_set_below_max_with_force() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    assign(&store, "BUG", 5).await;

    let output = setup.run(&["counters", "set", "BUG", "2", "--force"]).await;

    assert_eq!(output.code, 0, "{output}");
    assert_eq!(store.counter("BUG").await.unwrap(), 2);
    assert!(output.stderr.contains("BUG-3 to BUG-5"), "warns: {output}");
}

#[tokio::test]
async fn counters_set_above_max_moves_next_number() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    assign(&store, "BUG", 5).await;

    let output = setup.run(&["counters", "set", "BUG", "50"]).await;
    let next = store.assign_number("BUG", "BUG", "new-task").await.unwrap();

    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains("the next task gets BUG-51"),
        "{output}"
    );
    assert_eq!(next.number, 51);
}

#[tokio::test]
async fn counters_reject_invalid_prefix() {
    let setup = Setup::embedded().await;

    let output = setup.run(&["counters", "get", "bug-1"]).await;

    assert_eq!(output.code, 2, "{output}");
    assert!(output.stderr.contains("\"bug-1\""), "{output}");
}

#[tokio::test]
async fn counters_on_upstash_use_recorded_counter_key() {
    let setup = Setup::upstash().await;
    let prefix = unique_prefix("CNT");
    let key = format!("legacy_{}", prefix.to_lowercase());
    let store = upstash_store();
    store.set_counter_key(&prefix, &key).await.unwrap();
    store.set_counter(&key, 41).await.unwrap();

    let get = setup.run(&["counters", "get", &prefix, "--json"]).await;
    let rejected = setup.run(&["counters", "set", &prefix, "40"]).await;
    let set = setup.run(&["counters", "set", &prefix, "45"]).await;

    assert_eq!(get.code, 0, "{get}");
    assert_eq!(get.json()["counter_key"], key.as_str());
    assert_eq!(get.json()["value"], 41);
    assert_eq!(get.json()["next"], 42);
    assert_eq!(rejected.code, 2, "{rejected}");
    assert!(
        rejected.stderr.contains(&format!("{prefix}-41")),
        "{rejected}"
    );
    assert_eq!(set.code, 0, "{set}");
    assert_eq!(store.counter(&key).await.unwrap(), 45);
}

#[tokio::test]
async fn counters_explicit_key_overrides_recorded_key() {
    let setup = Setup::upstash().await;
    let prefix = unique_prefix("KEY");
    let other = format!("{prefix}_other");

    let set = setup
        .run(&["counters", "set", &prefix, "9", "--counter-key", &other])
        .await;
    let get = setup
        .run(&[
            "counters",
            "get",
            &prefix,
            "--counter-key",
            &other,
            "--json",
        ])
        .await;

    assert_eq!(set.code, 0, "{set}");
    assert_eq!(upstash_store().counter(&other).await.unwrap(), 9);
    assert_eq!(upstash_store().counter(&prefix).await.unwrap(), 0);
    assert_eq!(get.json()["value"], 9);
}

#[tokio::test]
async fn counters_set_with_key_records_it() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();

    let set = setup
        .run(&[
            "counters",
            "set",
            "NEWX",
            "30",
            "--counter-key",
            "newx_counter",
        ])
        .await;
    let get = setup.run(&["counters", "get", "NEWX", "--json"]).await;
    let next = store
        .assign_number("NEWX", "newx_counter", "new-task")
        .await
        .unwrap();

    assert_eq!(set.code, 0, "{set}");
    assert!(
        set.stdout
            .contains("counter key newx_counter is now recorded for NEWX"),
        "{set}"
    );
    assert_eq!(
        store.prefixes().await.unwrap(),
        vec![("NEWX".to_owned(), "newx_counter".to_owned())]
    );
    assert_eq!(get.json()["counter_key"], "newx_counter", "{get}");
    assert_eq!(get.json()["value"], 30, "{get}");
    assert_eq!(next.number, 31);
}

#[tokio::test]
async fn counters_set_rejects_other_recorded_key() {
    let setup = Setup::upstash().await;
    let prefix = unique_prefix("REC");
    let recorded = format!("{}_counter", prefix.to_lowercase());
    let store = upstash_store();
    store.set_counter_key(&prefix, &recorded).await.unwrap();
    store.set_counter(&recorded, 4).await.unwrap();

    let output = setup
        .run(&[
            "counters",
            "set",
            &prefix,
            "30",
            "--counter-key",
            "other_counter",
        ])
        .await;

    assert_eq!(output.code, 2, "{output}");
    assert!(
        output.stderr.contains("--counter-key other_counter"),
        "{output}"
    );
    assert!(
        output.stderr.contains(&recorded),
        "names the recorded key: {output}"
    );
    assert!(
        output.stderr.contains("Leave out --counter-key"),
        "{output}"
    );
    assert!(output.stderr.contains("webhooks create"), "{output}");
    assert_eq!(
        store.counter("other_counter").await.unwrap(),
        0,
        "nothing set"
    );
    assert_eq!(store.counter(&recorded).await.unwrap(), 4);
    let prefixes = store.prefixes().await.unwrap();
    let entry = prefixes.iter().find(|(known, _)| *known == prefix);
    assert_eq!(
        entry,
        Some(&(prefix.clone(), recorded.clone())),
        "record kept"
    );
}

#[tokio::test]
async fn counters_set_below_counter_says_numbers_may_exist() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    assign(&store, "BUG", 5).await;
    let raised = setup.run(&["counters", "set", "BUG", "100"]).await;

    let rejected = setup.run(&["counters", "set", "BUG", "50"]).await;
    let forced = setup
        .run(&["counters", "set", "BUG", "50", "--force"])
        .await;

    assert_eq!(raised.code, 0, "{raised}");
    assert_eq!(rejected.code, 2, "{rejected}");
    let message = &rejected.stderr;
    assert!(message.contains("BUG's counter is at 100"), "{rejected}");
    assert!(message.contains("may have been handed out"), "{rejected}");
    assert!(
        message.contains("the highest recorded for a task is BUG-5"),
        "{rejected}"
    );
    assert!(
        message.contains("BUG-51 to BUG-100 again if they were"),
        "{rejected}"
    );
    assert!(message.contains("Set 100 or more"), "{rejected}");
    assert!(!message.contains("exists already"), "{rejected}");
    assert_eq!(forced.code, 0, "{forced}");
    assert!(
        forced
            .stderr
            .contains("BUG-51 to BUG-100 again if they were"),
        "{forced}"
    );
    assert_eq!(store.counter("BUG").await.unwrap(), 50);
}

#[tokio::test]
async fn counters_get_suggestion_uses_recorded_key() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    store.set_counter_key("BUG", "legacy_bug").await.unwrap();
    for task in ["901", "902"] {
        store
            .assign_number("BUG", "legacy_bug", task)
            .await
            .unwrap();
    }
    store.set_counter("legacy_bug", 1).await.unwrap();

    let output = setup.run(&["counters", "get", "BUG"]).await;

    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains("run `autonumber counters set BUG 2`"),
        "the recorded key needs no option: {output}"
    );
}

#[tokio::test]
async fn counters_get_other_key_warns_about_record() {
    let setup = Setup::embedded().await;
    assign(&setup.sqlite_store(), "BUG", 5).await;

    let output = setup
        .run(&["counters", "get", "BUG", "--counter-key", "OTHER"])
        .await;

    assert_eq!(output.code, 0, "{output}");
    assert!(
        output
            .stderr
            .contains("counter OTHER is not the counter key recorded for BUG, which is BUG"),
        "{output}"
    );
    assert!(
        !output.stderr.contains("counters set BUG 5`"),
        "no suggestion without the key: {output}"
    );
}

#[tokio::test]
async fn counters_get_unknown_prefix_warns() {
    let setup = Setup::embedded().await;
    assign(&setup.sqlite_store(), "BUG", 1).await;

    let unknown = setup.run(&["counters", "get", "NOPE"]).await;
    let known = setup.run(&["counters", "get", "BUG"]).await;

    assert_eq!(unknown.code, 0, "{unknown}");
    assert!(
        unknown.stdout.contains("next:          NOPE-1"),
        "{unknown}"
    );
    assert!(
        unknown.stderr.contains("has nothing for prefix NOPE"),
        "{unknown}"
    );
    assert!(unknown.stderr.contains("--data-dir"), "{unknown}");
    assert!(
        !unknown.stdout.contains("nothing for prefix"),
        "the warning goes to stderr: {unknown}"
    );
    assert_eq!(known.code, 0, "{known}");
    assert!(!known.stderr.contains("has nothing for prefix"), "{known}");
}

#[tokio::test]
async fn counters_get_legacy_secret_makes_prefix_known() {
    let setup = Setup::upstash().await;
    let legacy = unique_prefix("OLD");
    let unknown = unique_prefix("NEW");
    upstash_command(&["SET", &format!("{legacy}_hook_secret"), "legacy-secret"]).await;

    let with_secret = setup.run(&["counters", "get", &legacy]).await;
    let without = setup.run(&["counters", "get", &unknown]).await;

    assert_eq!(with_secret.code, 0, "{with_secret}");
    assert!(
        !with_secret.stderr.contains("has nothing for prefix"),
        "{with_secret}"
    );
    assert_eq!(without.code, 0, "{without}");
    assert!(
        without
            .stderr
            .contains(&format!("has nothing for prefix {unknown}")),
        "{without}"
    );
    assert!(
        without.stderr.contains("UPSTASH_REDIS_REST_URL"),
        "{without}"
    );
}

// --- webhooks list / delete / create duplicate ---------------------------------------------

#[tokio::test]
async fn webhooks_list_shows_asana_status_and_prefix() {
    let setup = Setup::embedded().await;
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &setup.sqlite_store(), &receiver, "BUG").await;
    let workspace = setup.fake.workspace_gid();

    let output = setup
        .run(&["webhooks", "list", "--workspace", &workspace, "--json"])
        .await;

    assert_eq!(output.code, 0, "{output}");
    let rows = output.json();
    let row = find(&rows, "gid", &webhook.gid);
    assert_eq!(row["resource"]["gid"], PROJECT);
    assert_eq!(row["target"], webhook.target.as_str());
    assert_eq!(row["active"], true);
    assert!(row["last_success_at"].is_string(), "{row}");
    assert_eq!(row["delivery_retry_count"], 0);
    assert_eq!(row["prefix"], "BUG");
    let listing = setup
        .fake
        .requests()
        .into_iter()
        .find(|request| request.route == Some(Route::ListWebhooks))
        .expect("GET /webhooks was called");
    let query = listing.query.unwrap_or_default();
    assert!(
        query.contains("last_success_at"),
        "asks for the fields: {query}"
    );
}

#[tokio::test]
async fn webhooks_list_text_names_target() {
    let setup = Setup::embedded().await;
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &setup.sqlite_store(), &receiver, "BUG").await;
    let workspace = setup.fake.workspace_gid();

    let output = setup
        .run(&["webhooks", "list", "--workspace", &workspace])
        .await;

    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.contains(&webhook.gid), "{output}");
    assert!(output.stdout.contains("prefix BUG"), "{output}");
    assert!(output.stdout.contains(&webhook.target), "{output}");
}

#[tokio::test]
async fn webhooks_delete_removes_secret() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &store, &receiver, "BUG").await;

    let output = setup.run(&["webhooks", "delete", &webhook.gid]).await;

    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.contains("prefix BUG"), "{output}");
    assert!(setup.fake.webhooks().is_empty(), "deleted in Asana");
    assert!(
        store.secrets("BUG").await.unwrap().is_empty(),
        "secret removed"
    );
}

#[tokio::test]
async fn webhooks_delete_of_unknown_gid_fails() {
    let setup = Setup::embedded().await;

    let output = setup.run(&["webhooks", "delete", "1208499999999999"]).await;

    assert_eq!(output.code, 1, "{output}");
    assert!(output.stderr.contains("not found"), "{output}");
}

#[tokio::test]
async fn webhooks_delete_after_asana_deletion() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &store, &receiver, "BUG").await;
    delete_in_asana(&setup, &webhook.gid).await;

    let output = setup.run(&["webhooks", "delete", &webhook.gid]).await;

    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains("no longer exists in Asana"),
        "{output}"
    );
    assert!(store.secrets("BUG").await.unwrap().is_empty());
}

#[tokio::test]
async fn webhooks_create_duplicate_names_existing_webhook() {
    let setup = Setup::embedded().await;
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &setup.sqlite_store(), &receiver, "BUG").await;

    let output = setup
        .run(&[
            "webhooks",
            "create",
            "--project",
            PROJECT,
            "--prefix",
            "BUG",
            "--target-url",
            &receiver.url,
        ])
        .await;

    assert_eq!(output.code, 1, "{output}");
    assert!(output.stderr.contains("Duplicated webhook"), "{output}");
    assert!(output.stderr.contains(&webhook.gid), "{output}");
    assert!(output.stderr.contains(&webhook.target), "{output}");
    let delete = format!("autonumber webhooks delete {}", webhook.gid);
    assert!(output.stderr.contains(&delete), "{output}");
    assert!(
        output.stderr.contains("Keep using it"),
        "secret is stored: {output}"
    );
    assert_eq!(setup.fake.webhooks().len(), 1, "no second webhook");
}

#[tokio::test]
async fn webhooks_create_duplicate_without_stored_secret() {
    let setup = Setup::embedded().await;
    let receiver = EchoReceiver::start().await;
    // Registered with another store, so this data directory contains no secret for it.
    let other = tempfile::tempdir().unwrap();
    let other_store = autonumber_shared::store::SqliteStore::new(
        autonumber_shared::db::Database::open(other.path()).unwrap(),
    );
    let webhook = register_webhook(&setup, &other_store, &receiver, "BUG").await;

    let output = setup
        .run(&[
            "webhooks",
            "create",
            "--project",
            PROJECT,
            "--prefix",
            "BUG",
            "--target-url",
            &receiver.url,
        ])
        .await;

    assert_eq!(output.code, 1, "{output}");
    assert!(output.stderr.contains(&webhook.gid), "{output}");
    assert!(output.stderr.contains("holds no secret"), "{output}");
}

// --- dlq, embedded -----------------------------------------------------------------------

#[tokio::test]
async fn dlq_list_embedded_shows_reason_and_task() {
    let setup = Setup::embedded().await;
    dead_letter_embedded(
        &setup,
        &[job("BUG", "7001"), job("OPS", "7002")],
        "HTTP 403",
    )
    .await;

    let output = setup.run(&["dlq", "list", "--json"]).await;
    let again = setup.run(&["dlq", "list", "--json"]).await;

    assert_eq!(output.code, 0, "{output}");
    let rows = output.json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let row = find(&rows, "task_gid", "7001");
    assert_eq!(row["prefix"], "BUG");
    assert_eq!(row["reason"], "HTTP 403");
    assert_eq!(row["receive_count"], 1);
    assert!(row["age_seconds"].is_u64(), "{row}");
    assert_eq!(again.json(), rows, "listing consumes nothing");
}

#[tokio::test]
async fn dlq_list_embedded_limit_and_table() {
    let setup = Setup::embedded().await;
    let jobs: Vec<Job> = (0..3).map(|i| job("BUG", &format!("710{i}"))).collect();
    dead_letter_embedded(&setup, &jobs, "failed for good").await;

    let limited = setup.run(&["dlq", "list", "--limit", "2", "--json"]).await;
    let table = setup.run(&["dlq", "list"]).await;

    assert_eq!(limited.json().as_array().unwrap().len(), 2);
    assert!(table.stdout.starts_with("ID"), "{table}");
    assert!(table.stdout.contains("failed for good"), "{table}");
    assert!(table.stdout.contains("7102"), "{table}");
}

#[tokio::test]
async fn dlq_list_embedded_id_is_message_id() {
    let setup = Setup::embedded().await;
    let queue = SqliteQueue::new(setup.database(), Duration::from_secs(30));
    queue
        .enqueue(&[job("BUG", "7501"), job("BUG", "7502")])
        .await
        .unwrap();
    let done = queue.receive().await.unwrap().expect("the first message");
    queue.delete(done.id).await.unwrap();
    let failed = queue.receive().await.unwrap().expect("the second message");
    queue.dead_letter(failed.id, "HTTP 403").await.unwrap();

    let output = setup.run(&["dlq", "list", "--json"]).await;
    let replay = setup.run(&["dlq", "replay", "--dry-run"]).await;

    assert_eq!(output.code, 0, "{output}");
    let rows = output.json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows:#}");
    assert_eq!(failed.id, 2, "the dead letter is not the first queue row");
    assert_eq!(rows[0]["id"], "2", "{rows:#}");
    assert!(
        replay.stdout.contains("would replay message 2 "),
        "{replay}"
    );
}

#[tokio::test]
async fn dlq_replay_embedded_moves_only_prefix() {
    let setup = Setup::embedded().await;
    dead_letter_embedded(
        &setup,
        &[job("BUG", "7201"), job("OPS", "7202")],
        "HTTP 403",
    )
    .await;
    let queue = SqliteQueue::new(setup.database(), Duration::from_secs(30));

    let dry = setup
        .run(&["dlq", "replay", "--prefix", "BUG", "--dry-run"])
        .await;
    let after_dry = queue.depth().await.unwrap();
    let replay = setup.run(&["dlq", "replay", "--prefix", "BUG"]).await;

    assert_eq!(dry.code, 0, "{dry}");
    assert!(dry.stdout.contains("would replay"), "{dry}");
    assert_eq!(after_dry, (0, 2), "dry run moves nothing");
    assert_eq!(replay.code, 0, "{replay}");
    assert!(
        replay
            .stdout
            .contains("replayed message 1 (prefix BUG, task 7201)"),
        "{replay}"
    );
    assert!(
        replay
            .stdout
            .contains("skipped message 2 (prefix OPS, task 7202)"),
        "{replay}"
    );
    assert_eq!(queue.depth().await.unwrap(), (1, 1));
    let message = queue
        .receive()
        .await
        .unwrap()
        .expect("the replayed message");
    assert_eq!(Job::from_body(&message.body).unwrap(), job("BUG", "7201"));
}

#[tokio::test]
async fn dlq_replay_embedded_respects_max() {
    let setup = Setup::embedded().await;
    let jobs: Vec<Job> = (0..3).map(|i| job("BUG", &format!("730{i}"))).collect();
    dead_letter_embedded(&setup, &jobs, "HTTP 403").await;

    let output = setup.run(&["dlq", "replay", "--max", "2"]).await;

    assert_eq!(output.code, 0, "{output}");
    assert!(
        output.stdout.contains("replayed 2, skipped 0, failed 0"),
        "{output}"
    );
    let queue = SqliteQueue::new(setup.database(), Duration::from_secs(30));
    assert_eq!(queue.depth().await.unwrap(), (2, 1));
}

#[tokio::test]
async fn dlq_purge_needs_yes_without_terminal() {
    let setup = Setup::embedded().await;
    dead_letter_embedded(&setup, &[job("BUG", "7401")], "HTTP 403").await;
    let queue = SqliteQueue::new(setup.database(), Duration::from_secs(30));

    let without_yes = setup.run(&["dlq", "purge"]).await;
    let after_rejection = queue.depth().await.unwrap();
    let purged = setup.run(&["dlq", "purge", "--yes"]).await;

    assert_eq!(without_yes.code, 2, "{without_yes}");
    assert!(without_yes.stderr.contains("--yes"), "{without_yes}");
    assert_eq!(after_rejection, (0, 1));
    assert_eq!(purged.code, 0, "{purged}");
    assert!(purged.stdout.contains("Purged 1"), "{purged}");
    assert_eq!(queue.depth().await.unwrap(), (0, 0));
}

// --- dlq, SQS in moto ----------------------------------------------------------------------

/// Puts one worker-sent dead letter (BUG, task 8001) and one that SQS moved after too many
/// receives (OPS, task 8002) in the dead-letter queue.
async fn seed_sqs_dead_letters(queues: &moto::FifoQueues) {
    let client = moto::sqs_client();
    let dead = SqsQueue::new(client.clone(), &queues.dlq_url);
    let body = job("BUG", "8001").to_body();
    dead.send_dead_letter(&DeadLetter {
        body: &body,
        group_id: "8001",
        dedup_id: "original-8001",
        reason: "Asana rejected the request (HTTP 403): Forbidden",
        original_message_id: "original-8001",
        receive_count: Some(1),
        task_gid: Some("8001"),
        prefix: Some("BUG"),
    })
    .await
    .unwrap();

    let work = SqsQueue::new(client, &queues.queue_url);
    work.enqueue(&[job("OPS", "8002")]).await.unwrap();
    let first = work
        .receive(10, Duration::from_secs(1), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        first.len(),
        1,
        "the work queue delivers the OPS message once"
    );
    // The receive after maxReceiveCount (1) moves the message to the dead-letter queue.
    let second = work
        .receive(10, Duration::from_secs(1), Some(Duration::ZERO))
        .await
        .unwrap();
    assert!(second.is_empty(), "moved instead of delivered again");
}

async fn sqs_counts(url: &str) -> (u64, u64) {
    let counts = SqsQueue::new(moto::sqs_client(), url)
        .message_counts()
        .await
        .unwrap();
    (counts.visible, counts.in_flight)
}

/// Receives and deletes every message of the queue.
async fn drain_sqs(url: &str) -> Vec<autonumber_shared::queue::ReceivedMessage> {
    let queue = SqsQueue::new(moto::sqs_client(), url);
    let mut messages = Vec::new();
    loop {
        let batch = queue
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(30)))
            .await
            .unwrap();
        if batch.is_empty() {
            return messages;
        }
        for message in batch {
            queue.delete(&message.receipt_handle).await.unwrap();
            messages.push(message);
        }
    }
}

#[tokio::test]
async fn dlq_list_sqs_both_reasons() {
    let mut setup = Setup::embedded().await;
    let queues = sqs_queues("dlqlist").await;
    setup.use_sqs(&queues);
    seed_sqs_dead_letters(&queues).await;

    let output = setup.run(&["dlq", "list", "--json"]).await;
    let visible_after_list = sqs_counts(&queues.dlq_url).await;
    let again = setup.run(&["dlq", "list", "--json"]).await;

    assert_eq!(output.code, 0, "{output}");
    assert_eq!(visible_after_list, (2, 0), "visible again at once");
    let rows = output.json();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows:#}");
    let sent = find(&rows, "task_gid", "8001");
    assert_eq!(sent["prefix"], "BUG");
    assert_eq!(
        sent["reason"],
        "Asana rejected the request (HTTP 403): Forbidden"
    );
    assert_eq!(sent["receive_count"], 1);
    let moved = find(&rows, "task_gid", "8002");
    assert_eq!(moved["prefix"], "OPS");
    assert_eq!(moved["reason"], "max receives exceeded");
    assert!(moved["receive_count"].as_u64().unwrap() >= 1, "{moved}");
    let again = again.json();
    assert_eq!(
        again.as_array().unwrap().len(),
        2,
        "listing consumes nothing"
    );
    assert_eq!(
        find(&again, "task_gid", "8002")["receive_count"],
        moved["receive_count"].as_u64().unwrap() + 1,
        "each list receives the moved message once more, as the help says"
    );
    assert_eq!(
        find(&again, "task_gid", "8001")["receive_count"],
        1,
        "the worker's recorded count does not change"
    );
    assert_eq!(
        sqs_counts(&queues.dlq_url).await,
        (2, 0),
        "visible again at once"
    );
}

#[tokio::test]
async fn dlq_list_sqs_wrong_url_prints_one_line() {
    let mut setup = Setup::embedded().await;
    let queues = sqs_queues("dlqwrong").await;
    setup.use_sqs(&queues);
    let wrong = format!("{}/123456789012/nope.fifo", moto::sqs_endpoint());
    setup.set("AUTONUMBER_DLQ_URL", &wrong);

    let output = setup.run(&["dlq", "list"]).await;

    assert_eq!(output.code, 1, "{output}");
    assert_eq!(output.stdout, "", "{output}");
    let error = output.stderr.trim_end();
    assert_eq!(error.lines().count(), 1, "{output}");
    assert!(error.len() < 600, "{} bytes: {output}", error.len());
    assert!(error.contains("ReceiveMessage"), "{output}");
    assert!(error.contains(&wrong), "{output}");
    assert!(error.contains("NonExistentQueue"), "{output}");
    assert!(error.contains("Check AUTONUMBER_DLQ_URL"), "{output}");
    assert!(
        !error.contains(&queues.queue_url),
        "names only the DLQ: {output}"
    );
}

#[tokio::test]
async fn dlq_replay_sqs_moves_prefix_to_work_queue() {
    let mut setup = Setup::embedded().await;
    let queues = sqs_queues("dlqreplay").await;
    setup.use_sqs(&queues);
    seed_sqs_dead_letters(&queues).await;

    let dry = setup
        .run(&["dlq", "replay", "--prefix", "BUG", "--dry-run"])
        .await;
    let after_dry = (
        sqs_counts(&queues.queue_url).await,
        sqs_counts(&queues.dlq_url).await,
    );
    let replay = setup.run(&["dlq", "replay", "--prefix", "BUG"]).await;

    assert_eq!(dry.code, 0, "{dry}");
    assert!(dry.stdout.contains("would replay 1"), "{dry}");
    assert_eq!(after_dry, ((0, 0), (2, 0)), "dry run moves nothing");
    assert_eq!(replay.code, 0, "{replay}");
    assert!(
        replay.stdout.contains("replayed 1, skipped 1, failed 0"),
        "{replay}"
    );
    let work = drain_sqs(&queues.queue_url).await;
    assert_eq!(work.len(), 1);
    assert_eq!(
        work[0].group_id.as_deref(),
        Some("8001"),
        "same message group"
    );
    assert_eq!(Job::from_body(&work[0].body).unwrap(), job("BUG", "8001"));
    assert_eq!(sqs_counts(&queues.dlq_url).await, (1, 0), "OPS stays");
}

#[tokio::test]
async fn dlq_replay_after_interruption_leaves_one_copy() {
    let mut setup = Setup::embedded().await;
    let queues = sqs_queues("dlqresume").await;
    setup.use_sqs(&queues);
    seed_sqs_dead_letters(&queues).await;
    let dead_letters = SqsDeadLetters::new(moto::sqs_client(), &queues.queue_url, &queues.dlq_url);

    // A replay that stops after sending and before deleting: the copy is in the work queue,
    // the original still in the dead-letter queue.
    let received = dead_letters.receive(Duration::from_secs(30)).await.unwrap();
    let bug = received
        .iter()
        .find(|letter| letter.prefix().as_deref() == Some("BUG"))
        .expect("the BUG dead letter");
    dead_letters.forward(bug).await.unwrap();
    dead_letters.release(&received).await.unwrap();
    let (queued_after_send, _) = sqs_counts(&queues.queue_url).await;

    let output = setup.run(&["dlq", "replay", "--prefix", "BUG"]).await;

    assert_eq!(queued_after_send, 1);
    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.contains("replayed 1"), "{output}");
    let work = drain_sqs(&queues.queue_url).await;
    let copies: Vec<_> = work
        .iter()
        .filter(|m| m.group_id.as_deref() == Some("8001"))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the second send was dropped as a duplicate"
    );
    assert_eq!(
        sqs_counts(&queues.dlq_url).await,
        (1, 0),
        "only OPS is left"
    );
}

#[tokio::test]
async fn dlq_purge_sqs_with_yes() {
    let mut setup = Setup::embedded().await;
    let queues = sqs_queues("dlqpurge").await;
    setup.use_sqs(&queues);
    seed_sqs_dead_letters(&queues).await;

    let without_yes = setup.run(&["dlq", "purge"]).await;
    let purged = setup.run(&["dlq", "purge", "--yes"]).await;

    assert_eq!(without_yes.code, 2, "{without_yes}");
    assert_eq!(purged.code, 0, "{purged}");
    assert_eq!(
        purged.stdout.trim_end(),
        format!(
            "Purged 2 dead-lettered messages from the SQS dead-letter queue {}.",
            queues.dlq_url
        )
    );
    assert_eq!(sqs_counts(&queues.dlq_url).await, (0, 0));
}

#[tokio::test]
async fn dlq_rejects_half_sqs_configuration() {
    let mut setup = Setup::embedded().await;
    setup.set("AUTONUMBER_QUEUE_URL", "http://127.0.0.1:9/queue.fifo");

    let output = setup.run(&["dlq", "list"]).await;

    assert_eq!(output.code, 2, "{output}");
    assert!(output.stderr.contains("AUTONUMBER_DLQ_URL"), "{output}");
}

// --- backfill ------------------------------------------------------------------------------

/// Adds a project's tasks in creation order: one numbered by hand, one blank, then `count`
/// tasks named `Task {i}`. Returns the gids of the `Task {i}` tasks.
fn add_tasks(setup: &Setup, count: usize) -> (String, String, Vec<String>) {
    let numbered = setup.fake.add_task(PROJECT, "BUG-900: Numbered by hand");
    let blank = setup.fake.add_task(PROJECT, "");
    let tasks = (0..count)
        .map(|i| setup.fake.add_task(PROJECT, &format!("Task {i}")))
        .collect();
    (numbered, blank, tasks)
}

#[tokio::test]
async fn backfill_resumed_after_limit_numbers_in_creation_order() {
    let setup = Setup::embedded().await;
    let (numbered, blank, tasks) = add_tasks(&setup, 228);
    setup.fake.add_subtask(&tasks[0], "A subtask");
    let args = [
        "backfill",
        "--project",
        PROJECT,
        "--prefix",
        "BUG",
        "--new-prefix",
    ];

    let first = setup.run(&[&args[..], &["--limit", "100"]].concat()).await;
    let named_after_first: Vec<String> = tasks
        .iter()
        .map(|t| setup.fake.task_name(t).unwrap())
        .collect();
    let second = setup.run(&args).await;

    assert_eq!(first.code, 0, "{first}");
    assert!(
        first.stdout.contains("numbered 100, skipped 0, failed 0"),
        "{first}"
    );
    for (i, name) in named_after_first.iter().enumerate() {
        let expected = match i < 100 {
            true => format!("BUG-{}: Task {i}", i + 1),
            false => format!("Task {i}"),
        };
        assert_eq!(*name, expected, "after the first run");
    }
    assert_eq!(second.code, 0, "{second}");
    assert!(
        second.stdout.contains("numbered 128, skipped 0, failed 0"),
        "{second}"
    );
    for (i, task) in tasks.iter().enumerate() {
        let name = setup.fake.task_name(task).unwrap();
        assert_eq!(
            name,
            format!("BUG-{}: Task {i}", i + 1),
            "after the second run"
        );
    }
    assert_eq!(setup.fake.renames().len(), 228, "each task renamed once");
    assert_eq!(
        setup.fake.task_name(&numbered).unwrap(),
        "BUG-900: Numbered by hand"
    );
    assert_eq!(setup.fake.task_name(&blank).unwrap(), "");
    assert_eq!(setup.sqlite_store().counter("BUG").await.unwrap(), 228);
    let pages: Vec<_> = setup
        .fake
        .requests()
        .into_iter()
        .filter(|request| request.route == Some(Route::ListProjectTasks))
        .collect();
    assert_eq!(pages.len(), 6, "three pages per run");
    let follow_ups = pages
        .iter()
        .filter(|p| p.query.as_deref().unwrap_or("").contains("offset="))
        .count();
    assert_eq!(follow_ups, 4, "two pages per run follow next_page.offset");
}

#[tokio::test]
async fn backfill_dry_run_prints_plan_without_writing() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    store.set_counter("BUG", 10).await.unwrap();
    let (_, _, tasks) = add_tasks(&setup, 3);

    let output = setup
        .run(&[
            "backfill",
            "--project",
            PROJECT,
            "--prefix",
            "BUG",
            "--dry-run",
        ])
        .await;

    assert_eq!(output.code, 0, "{output}");
    assert!(output.stdout.contains("3 tasks to number"), "{output}");
    let expected = format!("{}  BUG-11 (next free)  \"Task 0\"", tasks[0]);
    assert!(output.stdout.contains(&expected), "{output}");
    let expected = format!("{}  BUG-13 (next free)  \"Task 2\"", tasks[2]);
    assert!(output.stdout.contains(&expected), "{output}");
    assert!(setup.fake.renames().is_empty(), "nothing renamed");
    assert_eq!(
        store.counter("BUG").await.unwrap(),
        10,
        "no number handed out"
    );
}

#[tokio::test]
async fn backfill_keeps_numbers_recorded_by_the_worker() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    let (_, _, tasks) = add_tasks(&setup, 3);
    // The worker numbered task 2 but its rename never reached Asana.
    store.assign_number("BUG", "BUG", &tasks[2]).await.unwrap();

    let output = setup
        .run(&["backfill", "--project", PROJECT, "--prefix", "BUG"])
        .await;

    assert_eq!(output.code, 0, "{output}");
    assert_eq!(setup.fake.task_name(&tasks[0]).unwrap(), "BUG-2: Task 0");
    assert_eq!(setup.fake.task_name(&tasks[1]).unwrap(), "BUG-3: Task 1");
    assert_eq!(setup.fake.task_name(&tasks[2]).unwrap(), "BUG-1: Task 2");
}

#[tokio::test]
async fn backfill_reports_failed_tasks() {
    let setup = Setup::embedded().await;
    let (_, _, tasks) = add_tasks(&setup, 2);
    setup.fake.fail_next(Route::UpdateTask, 1, 403, None);

    let output = setup
        .run(&[
            "backfill",
            "--project",
            PROJECT,
            "--prefix",
            "BUG",
            "--new-prefix",
        ])
        .await;

    assert_eq!(output.code, 1, "{output}");
    assert!(
        output.stdout.contains("numbered 1, skipped 0, failed 1"),
        "{output}"
    );
    assert_eq!(setup.fake.task_name(&tasks[1]).unwrap(), "BUG-2: Task 1");
}

#[tokio::test]
async fn backfill_rejects_counter_key_other_than_recorded() {
    let setup = Setup::embedded().await;
    setup
        .sqlite_store()
        .set_counter_key("BUG", "BUG")
        .await
        .unwrap();

    let output = setup
        .run(&[
            "backfill",
            "--project",
            PROJECT,
            "--prefix",
            "BUG",
            "--counter-key",
            "other",
        ])
        .await;

    assert_eq!(output.code, 2, "{output}");
    assert!(output.stderr.contains("--counter-key other"), "{output}");
}

#[tokio::test]
async fn migration_from_python_keeps_counting() {
    let setup = Setup::upstash().await;
    let prefix = unique_prefix("PLAT");
    upstash_command(&["SET", &format!("{prefix}_hook_secret"), "legacy-secret"]).await;
    upstash_command(&["SET", &prefix, "7"]).await;
    let older = setup
        .fake
        .add_task(PROJECT, &format!("{prefix}-6: Older task"));
    let old = setup
        .fake
        .add_task(PROJECT, &format!("{prefix}-7: Old task"));
    let new = setup.fake.add_task(PROJECT, "New task");

    let backfill = setup
        .run(&["backfill", "--project", PROJECT, "--prefix", &prefix])
        .await;
    let counter = setup.run(&["counters", "get", &prefix, "--json"]).await;

    assert_eq!(backfill.code, 0, "{backfill}");
    assert_eq!(
        setup.fake.task_name(&new).unwrap(),
        format!("{prefix}-8: New task")
    );
    assert_eq!(
        setup.fake.task_name(&old).unwrap(),
        format!("{prefix}-7: Old task")
    );
    assert_eq!(
        setup.fake.task_name(&older).unwrap(),
        format!("{prefix}-6: Older task")
    );
    assert_eq!(
        setup.fake.renames().len(),
        1,
        "only the new task is renamed"
    );
    assert_eq!(
        counter.json()["counter_key"],
        prefix.as_str(),
        "the bare legacy key"
    );
    assert_eq!(counter.json()["value"], 8);
    let secrets = upstash_store().secrets(&prefix).await.unwrap();
    assert_eq!(
        secrets[0].secret, "legacy-secret",
        "the legacy secret stays"
    );
}

// --- doctor --------------------------------------------------------------------------------

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    find(&report["checks"], "name", name)
}

#[tokio::test]
async fn doctor_passes_on_healthy_embedded_setup() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &store, &receiver, "BUG").await;
    assign(&store, "BUG", 4).await;

    let output = setup.run(&["doctor", "--json"]).await;

    assert_eq!(output.code, 0, "{output}");
    let report = output.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(check(&report, "Asana token")["status"], "pass");
    assert!(check(&report, "Asana token")["detail"]
        .as_str()
        .unwrap()
        .contains("Asana Fake Bot"));
    assert_eq!(check(&report, "store")["status"], "pass");
    assert_eq!(check(&report, "queue")["status"], "pass");
    assert_eq!(check(&report, "dead-letter queue")["status"], "pass");
    let prefix = check(&report, "prefix BUG");
    assert_eq!(prefix["status"], "pass");
    assert!(
        prefix["detail"]
            .as_str()
            .unwrap()
            .contains("counter BUG at 4"),
        "{prefix}"
    );
    let name = format!("webhook {} (BUG)", webhook.gid);
    assert_eq!(check(&report, &name)["status"], "pass");
    let config = check(&report, "Asana configuration")["detail"]
        .as_str()
        .unwrap();
    assert!(
        config.contains(&format!("set ({} characters)", TOKEN.len())),
        "{config}"
    );
    assert!(
        !output.all().contains(TOKEN),
        "the token reached the output"
    );
}

#[tokio::test]
async fn doctor_fails_for_webhook_gone_in_asana() {
    let setup = Setup::embedded().await;
    let store = setup.sqlite_store();
    let receiver = EchoReceiver::start().await;
    let webhook = register_webhook(&setup, &store, &receiver, "BUG").await;
    delete_in_asana(&setup, &webhook.gid).await;

    let output = setup.run(&["doctor"]).await;

    assert_eq!(output.code, 1, "{output}");
    let line = format!("FAIL  webhook {} (BUG)", webhook.gid);
    assert!(output.stdout.contains(&line), "{output}");
    let fix = format!("autonumber webhooks delete {}", webhook.gid);
    assert!(output.stdout.contains(&fix), "{output}");
}

#[tokio::test]
async fn doctor_fails_for_rejected_token() {
    let mut setup = Setup::embedded().await;
    setup.set("ASANA_PERSONAL_KEY", "wrong-token-value");

    let output = setup.run(&["doctor", "--json"]).await;

    assert_eq!(output.code, 1, "{output}");
    let token = check(&output.json(), "Asana token").clone();
    assert_eq!(token["status"], "fail");
    assert!(token["fix"]
        .as_str()
        .unwrap()
        .contains("ASANA_PERSONAL_KEY"));
    assert!(!output.all().contains("wrong-token-value"));
}

#[tokio::test]
async fn doctor_sqs_upstash_dead_letters() {
    let mut setup = Setup::upstash().await;
    let queues = sqs_queues("doctor").await;
    setup.use_sqs(&queues);
    seed_sqs_dead_letters(&queues).await;

    let output = setup.run(&["doctor", "--json"]).await;

    let report = output.json();
    let queue = check(&report, "queue");
    assert_eq!(queue["status"], "pass", "{queue}");
    assert!(queue["detail"].as_str().unwrap().contains("SQS"), "{queue}");
    let dead = check(&report, "dead-letter queue");
    assert_eq!(dead["status"], "warn");
    assert!(
        dead["detail"].as_str().unwrap().contains("2 dead-lettered"),
        "{dead}"
    );
    assert_eq!(check(&report, "store")["status"], "pass");
    let upstash_token = harness::service_var("AUTONUMBER_TEST_UPSTASH_TOKEN");
    let store_config = check(&report, "store configuration")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    let length = format!("set ({} characters)", upstash_token.len());
    assert!(store_config.contains(&length), "{store_config}");
    assert!(
        !output.all().contains(&upstash_token),
        "the Upstash token reached the output"
    );
}

//! `UpstashStore` against an Upstash REST server in front of a real Redis.
//!
//! The server is named by `AUTONUMBER_TEST_UPSTASH_URL` and `AUTONUMBER_TEST_UPSTASH_TOKEN`,
//! which `scripts/with-services` sets. Each test works under its own prefix and counter key, so
//! the tests can share one Redis and run again without cleanup.

use autonumber_tests::services::{env_var, upstash_command};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autonumber_shared::store::{Store, StoreError, StoredSecret, UpstashStore};
use serde_json::json;

fn url() -> String {
    env_var("AUTONUMBER_TEST_UPSTASH_URL")
}

fn token() -> String {
    env_var("AUTONUMBER_TEST_UPSTASH_TOKEN")
}

fn store() -> UpstashStore {
    UpstashStore::new(&url(), &token(), reqwest::Client::new())
}

/// Returns a prefix no other test or earlier run uses, starting with `label`.
fn unique_prefix(label: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{label}{}x{nanos}x{sequence}", std::process::id())
}

/// Runs a registration of `prefix` through to a stored `secret`.
async fn register(store: &UpstashStore, prefix: &str, secret: &str) {
    store
        .begin_registration(prefix, Duration::from_secs(60))
        .await
        .expect("begin registration");
    let completed = store
        .complete_registration(prefix, secret)
        .await
        .expect("complete registration");
    assert!(completed, "registration of {prefix} was not pending");
}

fn secret(secret: &str, webhook_gid: Option<&str>) -> StoredSecret {
    StoredSecret {
        secret: secret.to_owned(),
        webhook_gid: webhook_gid.map(str::to_owned),
    }
}

#[tokio::test]
async fn handshake_completes_once() {
    let store = store();
    let prefix = unique_prefix("HS");

    store
        .begin_registration(&prefix, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.registration_pending(&prefix).await.unwrap());

    assert!(store.complete_registration(&prefix, "first").await.unwrap());
    assert!(!store.registration_pending(&prefix).await.unwrap());
    assert!(!store
        .complete_registration(&prefix, "second")
        .await
        .unwrap());

    let secrets = store.secrets(&prefix).await.unwrap();
    assert_eq!(secrets, vec![secret("first", None)]);
}

#[tokio::test]
async fn handshake_without_pending_changes_nothing() {
    let store = store();
    let prefix = unique_prefix("NOPEND");

    assert!(!store
        .complete_registration(&prefix, "intruder")
        .await
        .unwrap());
    assert_eq!(store.secrets(&prefix).await.unwrap(), vec![]);

    register(&store, &prefix, "genuine").await;
    assert!(!store
        .complete_registration(&prefix, "intruder")
        .await
        .unwrap());
    assert_eq!(
        store.secrets(&prefix).await.unwrap(),
        vec![secret("genuine", None)]
    );
}

#[tokio::test]
async fn pending_registration_expires() {
    let store = store();
    let prefix = unique_prefix("EXP");

    store
        .begin_registration(&prefix, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(store.registration_pending(&prefix).await.unwrap());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!store.registration_pending(&prefix).await.unwrap());
    assert!(!store.complete_registration(&prefix, "late").await.unwrap());
    assert_eq!(store.secrets(&prefix).await.unwrap(), vec![]);
}

#[tokio::test]
async fn secrets_keep_order_and_webhook_gids() {
    let store = store();
    let prefix = unique_prefix("MULTI");

    for name in ["one", "two", "three"] {
        register(&store, &prefix, name).await;
    }
    store.set_webhook_gid(&prefix, "two", "1202").await.unwrap();

    let expected = vec![
        secret("one", None),
        secret("two", Some("1202")),
        secret("three", None),
    ];
    assert_eq!(store.secrets(&prefix).await.unwrap(), expected);
}

#[tokio::test]
async fn repeated_secret_is_stored_once() {
    let store = store();
    let prefix = unique_prefix("DUP");

    register(&store, &prefix, "same").await;
    register(&store, &prefix, "same").await;

    assert_eq!(
        store.secrets(&prefix).await.unwrap(),
        vec![secret("same", None)]
    );
}

#[tokio::test]
async fn legacy_secret_comes_first() {
    let store = store();
    let prefix = unique_prefix("LEG");
    upstash_command(&["SET", &format!("{prefix}_hook_secret"), "legacy"]).await;

    register(&store, &prefix, "newer").await;

    let expected = vec![secret("legacy", None), secret("newer", None)];
    assert_eq!(store.secrets(&prefix).await.unwrap(), expected);
}

#[tokio::test]
async fn set_webhook_gid_rejects_unknown_secret() {
    let store = store();
    let prefix = unique_prefix("UNK");
    register(&store, &prefix, "known").await;

    let result = store.set_webhook_gid(&prefix, "unknown", "1203").await;

    assert!(
        matches!(result, Err(StoreError::Backend(_))),
        "got {result:?}"
    );
    assert_eq!(store.remove_webhook("1203").await.unwrap(), None);
}

#[tokio::test]
async fn remove_webhook_removes_only_its_secret() {
    let store = store();
    let prefix = unique_prefix("RM");
    let (gid_a, gid_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    register(&store, &prefix, "a").await;
    register(&store, &prefix, "b").await;
    store.set_webhook_gid(&prefix, "a", &gid_a).await.unwrap();
    store.set_webhook_gid(&prefix, "b", &gid_b).await.unwrap();

    assert_eq!(
        store.remove_webhook(&gid_a).await.unwrap(),
        Some(prefix.clone())
    );

    let expected = vec![secret("b", Some(&gid_b))];
    assert_eq!(store.secrets(&prefix).await.unwrap(), expected);
    assert_eq!(store.remove_webhook(&gid_a).await.unwrap(), None);
    assert_eq!(store.remove_webhook("no-such-webhook").await.unwrap(), None);
}

#[tokio::test]
async fn legacy_secret_survives_other_removals() {
    let store = store();
    let prefix = unique_prefix("LEGKEEP");
    let gid = format!("{prefix}-new");
    upstash_command(&["SET", &format!("{prefix}_hook_secret"), "legacy"]).await;
    register(&store, &prefix, "new").await;
    store.set_webhook_gid(&prefix, "new", &gid).await.unwrap();

    assert_eq!(
        store.remove_webhook(&gid).await.unwrap(),
        Some(prefix.clone())
    );

    assert_eq!(
        store.secrets(&prefix).await.unwrap(),
        vec![secret("legacy", None)]
    );
}

#[tokio::test]
async fn remove_webhook_deletes_legacy_secret_by_gid() {
    let store = store();
    let prefix = unique_prefix("LEGRM");
    let gid = format!("{prefix}-old");
    let legacy_key = format!("{prefix}_hook_secret");
    upstash_command(&["SET", &legacy_key, "legacy"]).await;

    store
        .set_webhook_gid(&prefix, "legacy", &gid)
        .await
        .unwrap();
    let expected = vec![secret("legacy", Some(&gid))];
    assert_eq!(store.secrets(&prefix).await.unwrap(), expected);

    assert_eq!(
        store.remove_webhook(&gid).await.unwrap(),
        Some(prefix.clone())
    );
    assert_eq!(store.secrets(&prefix).await.unwrap(), vec![]);
    assert_eq!(upstash_command(&["EXISTS", &legacy_key]).await, json!(0));
}

#[tokio::test]
async fn assign_number_reuses_and_increments() {
    let store = store();
    let prefix = unique_prefix("AS");

    let first = store
        .assign_number(&prefix, &prefix, "task-1")
        .await
        .unwrap();
    let second = store
        .assign_number(&prefix, &prefix, "task-2")
        .await
        .unwrap();
    let again = store
        .assign_number(&prefix, &prefix, "task-1")
        .await
        .unwrap();

    assert_eq!((first.number, first.fresh), (1, true));
    assert_eq!((second.number, second.fresh), (2, true));
    assert_eq!((again.number, again.fresh), (1, false));
    assert_eq!(store.task_number(&prefix, "task-1").await.unwrap(), Some(1));
    assert_eq!(store.task_number(&prefix, "task-3").await.unwrap(), None);
    assert_eq!(store.counter(&prefix).await.unwrap(), 2);
}

#[tokio::test]
async fn concurrent_assign_gives_one_number_per_task() {
    const TASKS: u64 = 50;
    const CALLERS_PER_TASK: usize = 4;
    let store = Arc::new(store());
    let prefix = unique_prefix("CONC");

    let mut calls = Vec::new();
    for caller in 0..CALLERS_PER_TASK {
        for task in 0..TASKS {
            // Interleave the callers so that calls for one task race each other.
            let task_gid = format!("task-{}", (task + caller as u64 * 7) % TASKS);
            let (store, prefix) = (Arc::clone(&store), prefix.clone());
            calls.push(tokio::spawn(async move {
                let assignment = store.assign_number(&prefix, &prefix, &task_gid).await;
                (task_gid, assignment.expect("assign_number"))
            }));
        }
    }

    let mut numbers: HashMap<String, BTreeSet<u64>> = HashMap::new();
    let mut fresh_count = 0;
    for call in calls {
        let (task_gid, assignment) = call.await.expect("call task panicked");
        numbers
            .entry(task_gid)
            .or_default()
            .insert(assignment.number);
        fresh_count += usize::from(assignment.fresh);
    }

    assert_eq!(numbers.len(), TASKS as usize);
    for (task_gid, task_numbers) in &numbers {
        assert_eq!(task_numbers.len(), 1, "{task_gid} got {task_numbers:?}");
    }
    let handed_out: BTreeSet<u64> = numbers.values().flatten().copied().collect();
    assert_eq!(handed_out, (1..=TASKS).collect::<BTreeSet<u64>>());
    assert_eq!(fresh_count, TASKS as usize);
    assert_eq!(store.counter(&prefix).await.unwrap(), TASKS);
    assert_eq!(store.max_assigned(&prefix).await.unwrap(), Some(TASKS));
}

#[tokio::test]
async fn counter_set_moves_next_number() {
    let store = store();
    let prefix = unique_prefix("CTR");

    assert_eq!(store.counter(&prefix).await.unwrap(), 0);
    store.set_counter(&prefix, 41).await.unwrap();
    assert_eq!(store.counter(&prefix).await.unwrap(), 41);

    let assignment = store.assign_number(&prefix, &prefix, "task").await.unwrap();
    assert_eq!(assignment.number, 42);
    assert_eq!(store.counter(&prefix).await.unwrap(), 42);
}

#[tokio::test]
async fn counter_rejects_non_integer_value() {
    let store = store();
    let counter_key = unique_prefix("BAD");
    upstash_command(&["SET", &counter_key, "not-a-number"]).await;

    let result = store.counter(&counter_key).await;

    assert!(
        matches!(result, Err(StoreError::Backend(_))),
        "got {result:?}"
    );
}

#[tokio::test]
async fn max_assigned_follows_assignments() {
    let store = store();
    let prefix = unique_prefix("MAX");

    assert_eq!(store.max_assigned(&prefix).await.unwrap(), None);

    store.set_counter(&prefix, 9).await.unwrap();
    store.assign_number(&prefix, &prefix, "a").await.unwrap();
    store.set_counter(&prefix, 2).await.unwrap();
    store.assign_number(&prefix, &prefix, "b").await.unwrap();

    assert_eq!(store.max_assigned(&prefix).await.unwrap(), Some(10));
}

#[tokio::test]
async fn prefixes_lists_counter_keys_sorted() {
    let store = store();
    let first = unique_prefix("PFXA");
    let second = unique_prefix("PFXB");
    let second_counter = format!("{second}-counter");

    store
        .assign_number(&second, &second_counter, "task")
        .await
        .unwrap();
    store
        .set_counter_key(&first, "shared-counter")
        .await
        .unwrap();

    let prefixes = store.prefixes().await.unwrap();
    let ours: Vec<&(String, String)> = prefixes
        .iter()
        .filter(|(prefix, _)| *prefix == first || *prefix == second)
        .collect();
    assert_eq!(
        ours,
        vec![
            &(first.clone(), "shared-counter".to_owned()),
            &(second.clone(), second_counter.clone()),
        ]
    );
    assert!(prefixes.windows(2).all(|pair| pair[0].0 <= pair[1].0));
}

#[tokio::test]
async fn migration_keeps_legacy_secret_and_counter() {
    let store = store();
    // The earlier implementation's prefix and counter key were both "PLAT". A unique suffix
    // keeps runs apart on a shared Redis.
    let prefix = unique_prefix("PLAT");
    upstash_command(&["SET", &format!("{prefix}_hook_secret"), "python-era-secret"]).await;
    upstash_command(&["SET", &prefix, "7"]).await;

    let secrets = store.secrets(&prefix).await.unwrap();
    let assignment = store
        .assign_number(&prefix, &prefix, "new-task")
        .await
        .unwrap();

    assert_eq!(secrets, vec![secret("python-era-secret", None)]);
    assert_eq!(assignment.number, 8);
    assert!(assignment.fresh);
    assert_eq!(upstash_command(&["GET", &prefix]).await, json!("8"));
}

#[tokio::test]
async fn ping_succeeds() {
    store().ping().await.unwrap();
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let store = UpstashStore::new(&url(), "wrong-token", reqwest::Client::new());

    let error = store.ping().await.unwrap_err();

    assert!(
        matches!(error, StoreError::Unauthorized { status: 401 }),
        "got {error:?}"
    );
    assert!(!error.is_transient());
    assert!(!error.to_string().contains("wrong-token"), "{error}");
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let store = UpstashStore::new(&closed, "some-token", reqwest::Client::new());

    let error = store.counter("any").await.unwrap_err();

    assert!(matches!(error, StoreError::Unavailable(_)), "got {error:?}");
    assert!(error.is_transient());
    assert!(!error.to_string().contains("some-token"), "{error}");
}

/// Starts a loopback server that replies to every POST with `status` and `body`, and returns its URL.
async fn serve_fixed_reply(status: u16, body: &'static str) -> String {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || async move { (status, body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Names an error's variant, with the status or message the mapping tests check.
fn describe(error: &StoreError) -> String {
    match error {
        StoreError::Unauthorized { status } => format!("unauthorized {status}"),
        StoreError::Unavailable(_) => "unavailable".to_owned(),
        StoreError::Backend(message) => format!("backend: {message}"),
    }
}

#[tokio::test]
async fn replies_map_to_store_errors() {
    let cases = [
        (
            400,
            r#"{"error":"ERR wrong kind"}"#,
            "backend: ERR wrong kind",
        ),
        (
            200,
            r#"{"unexpected":1}"#,
            "backend: unexpected reply with HTTP 200",
        ),
        (404, "Not Found", "backend: unexpected reply with HTTP 404"),
        (403, "Forbidden", "unauthorized 403"),
        (429, r#"{"error":"too many requests"}"#, "unavailable"),
        (503, "offline", "unavailable"),
        (
            400,
            r#"{"error":"ERR unknown command 'NOPE', with args beginning with: 'secret' "}"#,
            "backend: ERR unknown command 'NOPE'",
        ),
    ];

    for (status, body, expected) in cases {
        let url = serve_fixed_reply(status, body).await;
        let store = UpstashStore::new(&url, "token", reqwest::Client::new());

        let error = store.counter("any").await.unwrap_err();

        let described = describe(&error);
        assert!(
            described.starts_with(expected),
            "HTTP {status} {body} gave {described}, expected {expected}"
        );
        assert!(!described.contains("secret"), "{described}");
    }
}

#[tokio::test]
async fn invalid_url_is_backend_error() {
    let store = UpstashStore::new("not a url", "token", reqwest::Client::new());

    let error = store.counter("any").await.unwrap_err();

    assert!(matches!(error, StoreError::Backend(_)), "got {error:?}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn debug_output_hides_token() {
    let store = UpstashStore::new(
        "http://127.0.0.1:1",
        "very-secret-token",
        reqwest::Client::new(),
    );

    let debug = format!("{store:?}");

    assert!(!debug.contains("very-secret-token"), "{debug}");
    assert!(debug.contains("127.0.0.1:1"), "{debug}");
}

#[tokio::test]
async fn cancelled_registration_rejects_handshake() {
    let store = store();
    let prefix = unique_prefix("CR");
    store
        .begin_registration(&prefix, Duration::from_secs(60))
        .await
        .unwrap();

    store.cancel_registration(&prefix).await.unwrap();
    assert!(!store.registration_pending(&prefix).await.unwrap());
    assert!(!store.complete_registration(&prefix, "late").await.unwrap());
    assert!(store.secrets(&prefix).await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_secret_keeps_the_others() {
    let store = store();
    let prefix = unique_prefix("RS");
    upstash_command(&["SET", &format!("{prefix}_hook_secret"), "legacy"]).await;
    register(&store, &prefix, "keep").await;
    register(&store, &prefix, "drop").await;
    store.set_webhook_gid(&prefix, "drop", "777").await.unwrap();

    store.remove_secret(&prefix, "drop").await.unwrap();
    store.remove_secret(&prefix, "legacy").await.unwrap();

    let secrets = store.secrets(&prefix).await.unwrap();
    assert_eq!(secrets, vec![secret("legacy", None), secret("keep", None)]);
}

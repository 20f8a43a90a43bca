//! The embedded store: handshake registrations, secrets and the atomic get-or-assign, also
//! under concurrency from several connections (as `serve` and the CLI share the file).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use autonumber_shared::db::Database;
use autonumber_shared::store::{SqliteStore, Store, REGISTRATION_TTL};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    (dir, SqliteStore::new(db))
}

#[tokio::test]
async fn registration_accepts_one_handshake() {
    let (_dir, store) = store();
    assert!(!store.complete_registration("BUG", "early").await.unwrap());
    assert!(store.secrets("BUG").await.unwrap().is_empty());

    store
        .begin_registration("BUG", REGISTRATION_TTL)
        .await
        .unwrap();
    assert!(store.registration_pending("BUG").await.unwrap());
    assert!(store.complete_registration("BUG", "first").await.unwrap());
    assert!(!store.complete_registration("BUG", "second").await.unwrap());

    let secrets: Vec<String> = store
        .secrets("BUG")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.secret)
        .collect();
    assert_eq!(secrets, ["first"]);
}

#[tokio::test]
async fn registration_expires() {
    let (_dir, store) = store();
    store
        .begin_registration("BUG", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(!store.registration_pending("BUG").await.unwrap());
    assert!(!store.complete_registration("BUG", "late").await.unwrap());
}

#[tokio::test]
async fn webhook_removal_clears_its_secret() {
    let (_dir, store) = store();
    for (secret, gid) in [("one", "111"), ("two", "222")] {
        store
            .begin_registration("BUG", REGISTRATION_TTL)
            .await
            .unwrap();
        assert!(store.complete_registration("BUG", secret).await.unwrap());
        store.set_webhook_gid("BUG", secret, gid).await.unwrap();
    }

    assert_eq!(
        store.remove_webhook("111").await.unwrap().as_deref(),
        Some("BUG")
    );
    assert_eq!(store.remove_webhook("111").await.unwrap(), None);
    let left = store.secrets("BUG").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].webhook_gid.as_deref(), Some("222"));
}

#[tokio::test]
async fn assign_number_reuses_and_increments() {
    let (_dir, store) = store();
    let first = store.assign_number("BUG", "BUG", "t1").await.unwrap();
    let again = store.assign_number("BUG", "BUG", "t1").await.unwrap();
    let second = store.assign_number("BUG", "BUG", "t2").await.unwrap();

    assert_eq!((first.number, first.fresh), (1, true));
    assert_eq!((again.number, again.fresh), (1, false));
    assert_eq!(second.number, 2);
    assert_eq!(store.counter("BUG").await.unwrap(), 2);
    assert_eq!(store.max_assigned("BUG").await.unwrap(), Some(2));
    assert_eq!(store.task_number("BUG", "t1").await.unwrap(), Some(1));
}

#[tokio::test]
async fn counter_set_moves_next_number() {
    let (_dir, store) = store();
    store.set_counter("plat", 7).await.unwrap();
    let next = store.assign_number("PLAT", "plat", "new").await.unwrap();
    assert_eq!(next.number, 8);
    assert_eq!(
        store.prefixes().await.unwrap(),
        [("PLAT".to_string(), "plat".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_assignment_gives_one_to_n() {
    let dir = tempfile::tempdir().unwrap();
    // Four connections, as four processes sharing the file would have.
    let stores: Vec<Arc<SqliteStore>> = (0..4)
        .map(|_| Arc::new(SqliteStore::new(Database::open(dir.path()).unwrap())))
        .collect();

    let mut calls = tokio::task::JoinSet::new();
    for store in &stores {
        for task in 0..50 {
            let store = store.clone();
            calls.spawn(async move {
                let assignment = store
                    .assign_number("BUG", "BUG", &format!("task-{task}"))
                    .await
                    .unwrap();
                (task, assignment.number)
            });
        }
    }
    let mut numbers: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
    while let Some(result) = calls.join_next().await {
        let (task, number) = result.unwrap();
        numbers.entry(task).or_default().insert(number);
    }

    assert!(
        numbers.values().all(|set| set.len() == 1),
        "a task got two numbers: {numbers:?}"
    );
    let all: BTreeSet<u64> = numbers.values().flatten().copied().collect();
    assert_eq!(all, (1..=50).collect::<BTreeSet<u64>>());
}

#[tokio::test]
async fn cancelled_registration_rejects_handshake() {
    let (_dir, store) = store();
    store
        .begin_registration("BUG", REGISTRATION_TTL)
        .await
        .unwrap();
    store.cancel_registration("BUG").await.unwrap();
    assert!(!store.complete_registration("BUG", "late").await.unwrap());
    assert!(store.secrets("BUG").await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_secret_keeps_the_others() {
    let (_dir, store) = store();
    for secret in ["keep", "drop"] {
        store
            .begin_registration("BUG", REGISTRATION_TTL)
            .await
            .unwrap();
        assert!(store.complete_registration("BUG", secret).await.unwrap());
    }
    store.remove_secret("BUG", "drop").await.unwrap();
    let left: Vec<String> = store
        .secrets("BUG")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.secret)
        .collect();
    assert_eq!(left, ["keep"]);
}

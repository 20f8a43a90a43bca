//! The embedded queue behaves like an SQS FIFO queue: one message of a group in flight at a
//! time, redelivery after the visibility timeout, dead letters after five receives, and
//! deduplication of repeated ids.

use std::time::Duration;

use autonumber_shared::db::Database;
use autonumber_shared::queue::{Queue, SqliteQueue, MAX_RECEIVES};
use autonumber_shared::Job;

fn job(task_gid: &str, created_at: &str) -> Job {
    Job {
        prefix: "BUG".into(),
        counter_key: "BUG".into(),
        task_gid: task_gid.into(),
        action: "changed".into(),
        field: Some("name".into()),
        created_at: created_at.into(),
    }
}

fn queue(visibility: Duration) -> (tempfile::TempDir, SqliteQueue) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    (dir, SqliteQueue::new(db, visibility))
}

#[tokio::test]
async fn group_has_one_message_in_flight() {
    let (_dir, queue) = queue(Duration::from_secs(30));
    queue
        .enqueue(&[job("1", "a"), job("1", "b"), job("2", "a")])
        .await
        .unwrap();

    let first = queue.receive().await.unwrap().unwrap();
    let second = queue.receive().await.unwrap().unwrap();
    assert_eq!(first.group_id, "1");
    assert_eq!(
        second.group_id, "2",
        "task 1's second message waits for its first"
    );
    assert!(queue.receive().await.unwrap().is_none());

    queue.delete(first.id).await.unwrap();
    let third = queue.receive().await.unwrap().unwrap();
    assert_eq!(Job::from_body(&third.body).unwrap().created_at, "b");
}

#[tokio::test]
async fn unacknowledged_message_is_redelivered() {
    let (_dir, queue) = queue(Duration::from_millis(100));
    queue.enqueue(&[job("1", "a")]).await.unwrap();

    let first = queue.receive().await.unwrap().unwrap();
    assert!(queue.receive().await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(150)).await;

    let again = queue.receive().await.unwrap().unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.receive_count, 2);
}

#[tokio::test]
async fn released_message_waits_its_delay() {
    let (_dir, queue) = queue(Duration::from_secs(30));
    queue.enqueue(&[job("1", "a")]).await.unwrap();
    let message = queue.receive().await.unwrap().unwrap();

    queue
        .release(message.id, Duration::from_millis(100), "HTTP 503")
        .await
        .unwrap();
    assert!(queue.receive().await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(queue.receive().await.unwrap().is_some());
}

#[tokio::test]
async fn fifth_failure_moves_to_dead_letters() {
    let (_dir, queue) = queue(Duration::from_secs(30));
    queue.enqueue(&[job("1", "a")]).await.unwrap();

    for attempt in 1..=MAX_RECEIVES {
        let message = queue
            .receive()
            .await
            .unwrap()
            .expect("message is delivered again");
        assert_eq!(message.receive_count, attempt);
        queue
            .release(message.id, Duration::ZERO, "HTTP 500 from Asana")
            .await
            .unwrap();
    }
    assert!(queue.receive().await.unwrap().is_none());

    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "HTTP 500 from Asana");
    assert_eq!(dead[0].receive_count, MAX_RECEIVES);
    assert_eq!(queue.depth().await.unwrap(), (0, 1));
}

#[tokio::test]
async fn repeated_dedup_id_is_dropped() {
    let (_dir, queue) = queue(Duration::from_secs(30));
    queue
        .enqueue(&[job("1", "a"), job("1", "a")])
        .await
        .unwrap();
    queue.enqueue(&[job("1", "a")]).await.unwrap();
    queue.enqueue(&[job("1", "b")]).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), (2, 0));
}

#[tokio::test]
async fn in_flight_messages_reset_at_start() {
    let (_dir, queue) = queue(Duration::from_secs(300));
    queue.enqueue(&[job("1", "a")]).await.unwrap();
    let taken = queue.receive().await.unwrap().unwrap();
    assert!(queue.receive().await.unwrap().is_none());

    assert_eq!(queue.reset_in_flight().await.unwrap(), 1);
    let again = queue.receive().await.unwrap().unwrap();
    assert_eq!(again.id, taken.id);
}

#[tokio::test]
async fn dead_letter_replay_moves_one_copy_back() {
    let (_dir, queue) = queue(Duration::from_secs(30));
    queue.enqueue(&[job("1", "a")]).await.unwrap();
    let message = queue.receive().await.unwrap().unwrap();
    queue.dead_letter(message.id, "HTTP 403").await.unwrap();

    let dead = queue.dead_letters(10).await.unwrap();
    assert!(queue.replay_dead_letter(dead[0].id).await.unwrap());
    assert!(!queue.replay_dead_letter(dead[0].id).await.unwrap());
    assert_eq!(queue.depth().await.unwrap(), (1, 0));
}

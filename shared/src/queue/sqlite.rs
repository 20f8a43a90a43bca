//! The embedded FIFO queue of `autonumber serve`, in the SQLite database.
//!
//! It behaves like an SQS FIFO queue: only the oldest message of each message group can be
//! received, and only while no other message of that group is in flight, so one task's messages
//! are processed in order and never concurrently. A received message stays invisible for the
//! visibility timeout; if it is neither deleted nor released by then, it is received again.
//! A message received [`MAX_RECEIVES`] times without success moves to the dead-letter table with
//! the last error as its reason. Deduplication ids are remembered for five minutes, as on SQS.

use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tokio::sync::Notify;

use super::{Queue, QueueError};
use crate::db::{now_millis, Database};
use crate::job::Job;

/// Receives before a message moves to the dead-letter table.
pub const MAX_RECEIVES: u32 = 5;

const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// A received message. `id` identifies it for [`SqliteQueue::delete`] and friends.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: i64,
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
    pub receive_count: u32,
    pub enqueued_at: i64,
}

/// A dead-lettered message of the embedded queue.
#[derive(Debug, Clone)]
pub struct DeadLetterRow {
    pub id: i64,
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
    pub enqueued_at: i64,
    pub dead_at: i64,
}

#[derive(Clone, Debug)]
pub struct SqliteQueue {
    db: Database,
    visibility_timeout: Duration,
    wake: Arc<Notify>,
}

fn unavailable(error: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("embedded queue: {error}"))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

impl SqliteQueue {
    pub fn new(db: Database, visibility_timeout: Duration) -> Self {
        Self {
            db,
            visibility_timeout,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Returns the notifier that wakes idle workers of this process after each enqueue.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Receives the oldest visible message whose group has nothing in flight. Messages that
    /// reached [`MAX_RECEIVES`] move to the dead-letter table on the way.
    pub async fn receive(&self) -> Result<Option<Received>, QueueError> {
        let visibility = millis(self.visibility_timeout);
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_millis();
                loop {
                    let head = tx
                        .query_row(
                            // The oldest visible message that is the head of its group: the
                            // index on (group_id, id) resolves NOT EXISTS without a scan.
                            "SELECT id, group_id, dedup_id, body, receive_count, enqueued_at, \
                             last_error FROM queue AS q WHERE visible_at <= ?1 \
                             AND NOT EXISTS (SELECT 1 FROM queue AS p \
                             WHERE p.group_id = q.group_id AND p.id < q.id) \
                             ORDER BY id LIMIT 1",
                            [now],
                            |row| {
                                Ok((
                                    Received {
                                        id: row.get(0)?,
                                        group_id: row.get(1)?,
                                        dedup_id: row.get(2)?,
                                        body: row.get(3)?,
                                        receive_count: row.get(4)?,
                                        enqueued_at: row.get(5)?,
                                    },
                                    row.get::<_, Option<String>>(6)?,
                                ))
                            },
                        )
                        .optional()?;
                    let Some((mut message, last_error)) = head else {
                        tx.commit()?;
                        return Ok(None);
                    };

                    if message.receive_count >= MAX_RECEIVES {
                        let reason = last_error.unwrap_or_else(|| {
                            format!("received {MAX_RECEIVES} times without success")
                        });
                        move_to_dead_letters(&tx, message.id, &reason, now)?;
                        tracing::warn!(
                            message_id = message.id,
                            task_gid = %message.group_id,
                            receive_count = message.receive_count,
                            reason = %reason,
                            "message moved to the dead-letter table"
                        );
                        continue;
                    }

                    tx.execute(
                        "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2, \
                         in_flight = 1 WHERE id = ?1",
                        params![message.id, now + visibility],
                    )?;
                    tx.commit()?;
                    message.receive_count += 1;
                    return Ok(Some(message));
                }
            })
            .await
            .map_err(unavailable)
    }

    /// Returns how long a received message stays invisible.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// Pushes back the visibility timeout of an in-flight message, so a worker that is still
    /// busy with it (retries with backoff) keeps it to itself.
    pub async fn extend_visibility(&self, id: i64) -> Result<(), QueueError> {
        let visible_at = now_millis() + millis(self.visibility_timeout);
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue SET visible_at = ?2 WHERE id = ?1 AND in_flight = 1",
                    params![id, visible_at],
                )
            })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Deletes a message that was processed.
    pub async fn delete(&self, id: i64) -> Result<(), QueueError> {
        self.db
            .call(move |conn| conn.execute("DELETE FROM queue WHERE id = ?1", [id]))
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Makes a message visible again after `delay`, recording why it failed.
    pub async fn release(&self, id: i64, delay: Duration, error: &str) -> Result<(), QueueError> {
        let error = error.to_string();
        let visible_at = now_millis() + millis(delay);
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue SET visible_at = ?2, last_error = ?3, in_flight = 0 WHERE id = ?1",
                    params![id, visible_at, error],
                )
            })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Moves a message to the dead-letter table at once, with `reason`.
    pub async fn dead_letter(&self, id: i64, reason: &str) -> Result<(), QueueError> {
        let reason = reason.to_string();
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                move_to_dead_letters(&tx, id, &reason, now_millis())?;
                tx.commit()
            })
            .await
            .map_err(unavailable)
    }

    /// Makes every in-flight message visible now. `serve` calls this at start, when the data
    /// directory lock guarantees that no other process holds messages.
    pub async fn reset_in_flight(&self) -> Result<usize, QueueError> {
        self.db
            .call(|conn| {
                conn.execute(
                    "UPDATE queue SET visible_at = ?1, in_flight = 0 WHERE in_flight = 1",
                    [now_millis()],
                )
            })
            .await
            .map_err(unavailable)
    }

    /// Returns the number of messages in the queue and in the dead-letter table.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        self.db
            .call(|conn| {
                let queued: i64 = conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
                let dead: i64 =
                    conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
                Ok((
                    u64::try_from(queued).unwrap_or(0),
                    u64::try_from(dead).unwrap_or(0),
                ))
            })
            .await
            .map_err(unavailable)
    }

    /// Returns up to `limit` dead letters, oldest first, without removing them.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterRow>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT id, group_id, dedup_id, body, reason, receive_count, enqueued_at, \
                     dead_at FROM dead_letters ORDER BY id LIMIT ?1",
                )?;
                let rows = statement.query_map([limit], |row| {
                    Ok(DeadLetterRow {
                        id: row.get(0)?,
                        group_id: row.get(1)?,
                        dedup_id: row.get(2)?,
                        body: row.get(3)?,
                        reason: row.get(4)?,
                        receive_count: row.get(5)?,
                        enqueued_at: row.get(6)?,
                        dead_at: row.get(7)?,
                    })
                })?;
                rows.collect()
            })
            .await
            .map_err(unavailable)
    }

    /// Moves one dead letter back to the queue in one transaction (so an interruption leaves
    /// exactly one copy). Returns false when the dead letter no longer exists.
    pub async fn replay_dead_letter(&self, id: i64) -> Result<bool, QueueError> {
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_millis();
                let moved = tx.execute(
                    "INSERT INTO queue (group_id, dedup_id, body, enqueued_at, visible_at) \
                     SELECT group_id, dedup_id, body, ?2, ?2 FROM dead_letters WHERE id = ?1",
                    params![id, now],
                )?;
                tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id])?;
                tx.commit()?;
                Ok(moved == 1)
            })
            .await
            .map_err(unavailable)
    }

    /// Deletes every dead letter. Returns how many were deleted.
    pub async fn purge_dead_letters(&self) -> Result<usize, QueueError> {
        self.db
            .call(|conn| conn.execute("DELETE FROM dead_letters", []))
            .await
            .map_err(unavailable)
    }
}

fn move_to_dead_letters(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    reason: &str,
    now: i64,
) -> rusqlite::Result<()> {
    // The dead letter keeps the message's id, which the logs name as `message_id`, so that
    // `dlq list` shows the same id. A row dead-lettered before ids were kept can hold that id
    // already, and then NULL makes SQLite pick a new one.
    tx.execute(
        "INSERT INTO dead_letters \
         (id, group_id, dedup_id, body, reason, receive_count, enqueued_at, dead_at) \
         SELECT CASE WHEN EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1) THEN NULL \
         ELSE id END, group_id, dedup_id, body, ?2, receive_count, enqueued_at, ?3 \
         FROM queue WHERE id = ?1",
        params![id, reason, now],
    )?;
    tx.execute("DELETE FROM queue WHERE id = ?1", [id])?;
    Ok(())
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let messages: Vec<(String, String, String)> = jobs
            .iter()
            .map(|job| (job.group_id().to_string(), job.dedup_id(), job.to_body()))
            .collect();
        let total = messages.len();
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_millis();
                tx.execute("DELETE FROM queue_dedup WHERE expires_at <= ?1", [now])?;
                for (group_id, dedup_id, body) in messages {
                    let fresh = tx.execute(
                        "INSERT OR IGNORE INTO queue_dedup (dedup_id, expires_at) VALUES (?1, ?2)",
                        params![dedup_id, now + millis(DEDUP_WINDOW)],
                    )?;
                    if fresh == 0 {
                        continue;
                    }
                    tx.execute(
                        "INSERT INTO queue (group_id, dedup_id, body, enqueued_at, visible_at) \
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                        params![group_id, dedup_id, body, now],
                    )?;
                }
                tx.commit()
            })
            .await
            .map_err(|error| QueueError::NotAccepted {
                failed: total,
                total,
                reason: format!("embedded queue: {error}"),
            })?;
        self.wake.notify_waiters();
        Ok(())
    }
}

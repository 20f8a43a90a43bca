//! [`DeadLetterQueue`] over the dead-letter table of the embedded queue.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    DeadLetterEntry, DeadLetterQueue, Depth, ReplayOptions, ReplayOutcome, ReplayReporter,
    ReplaySummary,
};
use crate::db::{now_millis, Database};
use crate::queue::{DeadLetterRow, QueueError, SqliteQueue};

/// The dead letters of the embedded queue in the SQLite database of `autonumber serve`.
#[derive(Debug, Clone)]
pub struct EmbeddedDeadLetters {
    queue: SqliteQueue,
    db: Database,
}

impl EmbeddedDeadLetters {
    pub fn new(db: Database) -> Self {
        // The visibility timeout only matters for receiving, which this type never does.
        let queue = SqliteQueue::new(db.clone(), Duration::from_secs(300));
        Self { queue, db }
    }
}

fn dead_letter(row: DeadLetterRow, now: i64) -> DeadLetterEntry {
    let age_millis = u64::try_from(now.saturating_sub(row.dead_at)).unwrap_or(0);
    DeadLetterEntry {
        id: row.id.to_string(),
        group_id: row.group_id,
        body: row.body,
        reason: row.reason,
        receive_count: Some(row.receive_count),
        age: Duration::from_millis(age_millis),
        receipt_handle: None,
        replay_key: row.dedup_id,
    }
}

#[async_trait]
impl DeadLetterQueue for EmbeddedDeadLetters {
    fn describe(&self) -> String {
        format!("embedded queue in {}", self.db.path().display())
    }

    fn describe_dead_letters(&self) -> String {
        self.describe()
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let (queued, dead) = self.queue.depth().await?;
        Ok(Depth {
            queued,
            in_flight: None,
            dead,
        })
    }

    async fn list(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let now = now_millis();
        let rows = self.queue.dead_letters(limit).await?;
        Ok(rows.into_iter().map(|row| dead_letter(row, now)).collect())
    }

    async fn replay(
        &self,
        options: &ReplayOptions,
        report: &mut ReplayReporter<'_>,
    ) -> Result<ReplaySummary, QueueError> {
        let mut summary = ReplaySummary::default();
        // NOTE: every row is read at once. The table only grows by failed messages, so it stays
        // small next to the memory of the process.
        for letter in self.list(usize::MAX).await? {
            if options.reached_max(summary.moved()) {
                break;
            }
            let outcome = self.replay_one(options, &letter).await;
            summary.count(&outcome);
            report(&letter, &outcome);
        }
        Ok(summary)
    }

    async fn purge(&self) -> Result<u64, QueueError> {
        let deleted = self.queue.purge_dead_letters().await?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }
}

impl EmbeddedDeadLetters {
    async fn replay_one(&self, options: &ReplayOptions, letter: &DeadLetterEntry) -> ReplayOutcome {
        if !options.wants(letter) {
            return ReplayOutcome::Skipped("other prefix".into());
        }
        if options.dry_run {
            return ReplayOutcome::WouldReplay;
        }
        let Ok(id) = letter.id.parse::<i64>() else {
            return ReplayOutcome::Failed(format!("invalid row id {:?}", letter.id));
        };
        match self.queue.replay_dead_letter(id).await {
            Ok(true) => ReplayOutcome::Replayed,
            Ok(false) => ReplayOutcome::Skipped("no longer in the dead-letter table".into()),
            Err(error) => ReplayOutcome::Failed(error.to_string()),
        }
    }
}

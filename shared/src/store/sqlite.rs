//! The embedded [`Store`]: tables in the SQLite database of `autonumber serve`.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{Assignment, Store, StoreError, StoredSecret};
use crate::db::{now_millis, Database};

#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Database,
}

impl SqliteStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(format!("embedded database busy: {error}"))
        }
        error => StoreError::Backend(format!("embedded database: {error}")),
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn secrets(&self, prefix: &str) -> Result<Vec<StoredSecret>, StoreError> {
        let prefix = prefix.to_string();
        self.db
            .call(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT secret, webhook_gid FROM secrets WHERE prefix = ?1 \
                     ORDER BY created_at, rowid",
                )?;
                let rows = statement.query_map([prefix], |row| {
                    Ok(StoredSecret {
                        secret: row.get(0)?,
                        webhook_gid: row.get(1)?,
                    })
                })?;
                rows.collect()
            })
            .await
            .map_err(backend)
    }

    async fn begin_registration(&self, prefix: &str, ttl: Duration) -> Result<(), StoreError> {
        let prefix = prefix.to_string();
        let expires_at = now_millis() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO pending_registrations (prefix, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (prefix) DO UPDATE SET expires_at = excluded.expires_at",
                    params![prefix, expires_at],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn registration_pending(&self, prefix: &str) -> Result<bool, StoreError> {
        let prefix = prefix.to_string();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM pending_registrations \
                     WHERE prefix = ?1 AND expires_at > ?2)",
                    params![prefix, now_millis()],
                    |row| row.get(0),
                )
            })
            .await
            .map_err(backend)
    }

    async fn remove_secret(&self, prefix: &str, secret: &str) -> Result<(), StoreError> {
        let (prefix, secret) = (prefix.to_string(), secret.to_string());
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM secrets WHERE prefix = ?1 AND secret = ?2",
                    params![prefix, secret],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn cancel_registration(&self, prefix: &str) -> Result<(), StoreError> {
        let prefix = prefix.to_string();
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM pending_registrations WHERE prefix = ?1",
                    [prefix],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn complete_registration(&self, prefix: &str, secret: &str) -> Result<bool, StoreError> {
        let (prefix, secret) = (prefix.to_string(), secret.to_string());
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_millis();
                let taken = tx.execute(
                    "DELETE FROM pending_registrations WHERE prefix = ?1 AND expires_at > ?2",
                    params![prefix, now],
                )?;
                if taken == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT OR IGNORE INTO secrets (prefix, secret, created_at) VALUES (?1, ?2, ?3)",
                    params![prefix, secret, now],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
            .map_err(backend)
    }

    async fn set_webhook_gid(
        &self,
        prefix: &str,
        secret: &str,
        webhook_gid: &str,
    ) -> Result<(), StoreError> {
        let (prefix, secret, gid) = (
            prefix.to_string(),
            secret.to_string(),
            webhook_gid.to_string(),
        );
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE secrets SET webhook_gid = ?3 WHERE prefix = ?1 AND secret = ?2",
                    params![prefix, secret, gid],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn remove_webhook(&self, webhook_gid: &str) -> Result<Option<String>, StoreError> {
        let gid = webhook_gid.to_string();
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let prefix: Option<String> = tx
                    .query_row(
                        "SELECT prefix FROM secrets WHERE webhook_gid = ?1",
                        [&gid],
                        |row| row.get(0),
                    )
                    .optional()?;
                tx.execute("DELETE FROM secrets WHERE webhook_gid = ?1", [&gid])?;
                tx.commit()?;
                Ok(prefix)
            })
            .await
            .map_err(backend)
    }

    async fn assign_number(
        &self,
        prefix: &str,
        counter_key: &str,
        task_gid: &str,
    ) -> Result<Assignment, StoreError> {
        let (prefix, key, gid) = (
            prefix.to_string(),
            counter_key.to_string(),
            task_gid.to_string(),
        );
        self.db
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let existing: Option<i64> = tx
                    .query_row(
                        "SELECT number FROM task_numbers WHERE prefix = ?1 AND task_gid = ?2",
                        params![prefix, gid],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(number) = existing {
                    return Ok(Assignment {
                        number: to_u64(number),
                        fresh: false,
                    });
                }

                let number: i64 = tx.query_row(
                    "INSERT INTO counters (counter_key, value) VALUES (?1, 1) \
                     ON CONFLICT (counter_key) DO UPDATE SET value = value + 1 RETURNING value",
                    [&key],
                    |row| row.get(0),
                )?;
                tx.execute(
                    "INSERT INTO task_numbers (prefix, task_gid, number) VALUES (?1, ?2, ?3)",
                    params![prefix, gid, number],
                )?;
                tx.execute(
                    "INSERT INTO prefixes (prefix, counter_key) VALUES (?1, ?2) \
                     ON CONFLICT (prefix) DO UPDATE SET counter_key = excluded.counter_key",
                    params![prefix, key],
                )?;
                tx.commit()?;
                Ok(Assignment {
                    number: to_u64(number),
                    fresh: true,
                })
            })
            .await
            .map_err(backend)
    }

    async fn task_number(&self, prefix: &str, task_gid: &str) -> Result<Option<u64>, StoreError> {
        let (prefix, gid) = (prefix.to_string(), task_gid.to_string());
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT number FROM task_numbers WHERE prefix = ?1 AND task_gid = ?2",
                    params![prefix, gid],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
            })
            .await
            .map(|number| number.map(to_u64))
            .map_err(backend)
    }

    async fn counter(&self, counter_key: &str) -> Result<u64, StoreError> {
        let key = counter_key.to_string();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT value FROM counters WHERE counter_key = ?1",
                    [key],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
            })
            .await
            .map(|value| value.map(to_u64).unwrap_or(0))
            .map_err(backend)
    }

    async fn set_counter(&self, counter_key: &str, value: u64) -> Result<(), StoreError> {
        let key = counter_key.to_string();
        let value = to_i64(value);
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO counters (counter_key, value) VALUES (?1, ?2) \
                     ON CONFLICT (counter_key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn max_assigned(&self, prefix: &str) -> Result<Option<u64>, StoreError> {
        let prefix = prefix.to_string();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT MAX(number) FROM task_numbers WHERE prefix = ?1",
                    [prefix],
                    |row| row.get::<_, Option<i64>>(0),
                )
            })
            .await
            .map(|number| number.map(to_u64))
            .map_err(backend)
    }

    async fn prefixes(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.db
            .call(|conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT prefix, counter_key FROM prefixes \
                     UNION SELECT DISTINCT prefix, prefix FROM secrets \
                     WHERE prefix NOT IN (SELECT prefix FROM prefixes) ORDER BY 1",
                )?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await
            .map_err(backend)
    }

    async fn set_counter_key(&self, prefix: &str, counter_key: &str) -> Result<(), StoreError> {
        let (prefix, key) = (prefix.to_string(), counter_key.to_string());
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO prefixes (prefix, counter_key) VALUES (?1, ?2) \
                     ON CONFLICT (prefix) DO UPDATE SET counter_key = excluded.counter_key",
                    params![prefix, key],
                )
            })
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .call(|conn| {
                let tx = conn.transaction()?;
                tx.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS ping (x); INSERT INTO ping VALUES (1);",
                )?;
                tx.query_row("SELECT COUNT(*) FROM ping", [], |row| row.get::<_, i64>(0))?;
                tx.rollback()
            })
            .await
            .map_err(backend)
    }
}

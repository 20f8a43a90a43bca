//! The embedded SQLite database behind [`SqliteStore`](crate::store::SqliteStore) and
//! [`SqliteQueue`](crate::queue::SqliteQueue): one file under the data directory.
//!
//! The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives a
//! crash or `kill -9` of the process (the operating system keeps the written WAL pages), though
//! not a power loss of the machine. Several processes may open the file (`serve` and the CLI);
//! writers wait up to `BUSY_TIMEOUT` for each other.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub const DATABASE_FILE: &str = "autonumber.sqlite3";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS secrets (
    prefix      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    webhook_gid TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (prefix, secret)
);
CREATE TABLE IF NOT EXISTS pending_registrations (
    prefix     TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    counter_key TEXT PRIMARY KEY,
    value       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS prefixes (
    prefix      TEXT PRIMARY KEY,
    counter_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_numbers (
    prefix   TEXT NOT NULL,
    task_gid TEXT NOT NULL,
    number   INTEGER NOT NULL,
    PRIMARY KEY (prefix, task_gid)
);
CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    in_flight     INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS queue_group ON queue (group_id, id);
CREATE TABLE IF NOT EXISTS queue_dedup (
    dedup_id   TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dedup_expiry ON queue_dedup (expires_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
);
";

/// A shared handle on the database file. Calls run on the blocking thread pool.
#[derive(Clone, Debug)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> rusqlite::Result<Self> {
        if let Err(error) = std::fs::create_dir_all(data_dir) {
            let message = format!("cannot create directory {}: {error}", data_dir.display());
            return Err(rusqlite::Error::ToSqlConversionFailure(message.into()));
        }
        let path = data_dir.join(DATABASE_FILE);
        let connection = Connection::open(&path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// Returns true when `data_dir` already contains a database file.
    pub fn exists_in(data_dir: &Path) -> bool {
        data_dir.join(DATABASE_FILE).is_file()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
        .await
        .unwrap_or_else(|join_error| match join_error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // The runtime is shutting down; the work may or may not have run.
            Err(_) => Err(rusqlite::Error::ToSqlConversionFailure(
                "the database call was cancelled because the runtime is shutting down".into(),
            )),
        })
    }
}

/// Returns the current Unix time in milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

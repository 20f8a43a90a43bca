//! Durable state: webhook secrets, pending registrations, counters and task numbers.
//!
//! Two implementations: [`SqliteStore`] (embedded, for `autonumber serve`) and [`UpstashStore`]
//! (Upstash Redis REST, for the Lambdas). Both keep the earlier Python implementation's meaning of
//! a counter: its value is the last number handed out, so the next task gets `value + 1`.

mod sqlite;
mod upstash;

pub use sqlite::SqliteStore;
pub use upstash::UpstashStore;

use std::time::Duration;

use async_trait::async_trait;

/// How long a registration started by `webhooks create` accepts a handshake.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(300);

/// The number a task holds, and whether this call handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub number: u64,
    /// `true` when the counter was incremented by this call, `false` when the task already had
    /// this number.
    pub fresh: bool,
}

/// A stored webhook secret. `webhook_gid` is recorded once `webhooks create` has the gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub secret: String,
    pub webhook_gid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store rejected the credentials (Upstash 401).
    #[error("store rejected the credentials (HTTP {status}): check UPSTASH_REDIS_REST_TOKEN")]
    Unauthorized { status: u16 },
    /// The store could not be reached or failed for a reason that may pass.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store returned an error or a reply this code does not understand.
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Returns true when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Returns the secrets of every webhook registered under `prefix`, oldest first.
    async fn secrets(&self, prefix: &str) -> Result<Vec<StoredSecret>, StoreError>;

    /// Marks a registration of `prefix` as pending for `ttl`, so one handshake is accepted.
    async fn begin_registration(&self, prefix: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Returns true while a registration of `prefix` is pending and not expired.
    async fn registration_pending(&self, prefix: &str) -> Result<bool, StoreError>;

    /// Removes one secret of `prefix` that no webhook was confirmed for (a handshake that
    /// arrived while `webhooks create` waited, from someone other than Asana's request). The
    /// legacy `{prefix}_hook_secret` of the earlier implementation is never removed here.
    async fn remove_secret(&self, prefix: &str, secret: &str) -> Result<(), StoreError>;

    /// Clears a pending registration of `prefix`, so no handshake is accepted for it; called
    /// when `webhooks create` fails after marking the registration pending.
    async fn cancel_registration(&self, prefix: &str) -> Result<(), StoreError>;

    /// Atomically checks that a registration of `prefix` is pending, adds `secret` to the
    /// prefix's secrets and clears the pending mark. Returns false, changing nothing, when no
    /// registration is pending.
    async fn complete_registration(&self, prefix: &str, secret: &str) -> Result<bool, StoreError>;

    /// Records which webhook a stored secret belongs to.
    async fn set_webhook_gid(
        &self,
        prefix: &str,
        secret: &str,
        webhook_gid: &str,
    ) -> Result<(), StoreError>;

    /// Removes the secret recorded for `webhook_gid`. Returns the prefix it belonged to.
    async fn remove_webhook(&self, webhook_gid: &str) -> Result<Option<String>, StoreError>;

    /// Returns the task's number under `prefix`, or increments the counter `counter_key` and
    /// records the new number for the task, in one atomic step.
    async fn assign_number(
        &self,
        prefix: &str,
        counter_key: &str,
        task_gid: &str,
    ) -> Result<Assignment, StoreError>;

    /// Returns the number recorded for a task, if any.
    async fn task_number(&self, prefix: &str, task_gid: &str) -> Result<Option<u64>, StoreError>;

    /// Returns the counter's value: the last number handed out, 0 when unset.
    async fn counter(&self, counter_key: &str) -> Result<u64, StoreError>;

    /// Sets the counter's value, so the next task gets `value + 1`.
    async fn set_counter(&self, counter_key: &str, value: u64) -> Result<(), StoreError>;

    /// Returns the highest number recorded for a task under `prefix`.
    async fn max_assigned(&self, prefix: &str) -> Result<Option<u64>, StoreError>;

    /// Returns every known prefix with its counter key, sorted by prefix.
    async fn prefixes(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Records the counter key used by `prefix`.
    async fn set_counter_key(&self, prefix: &str, counter_key: &str) -> Result<(), StoreError>;

    /// Performs a write and a read, to check the store works.
    async fn ping(&self) -> Result<(), StoreError>;
}

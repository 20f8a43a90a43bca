//! The numbering worker: one function per queued message.
//!
//! [`Worker::process`] re-reads the task (events carry no names), skips tasks that need no
//! number, gets the task's number with one atomic store call (the task's earlier number, else
//! the next one from the counter) and renames the task. Asana calls and store calls are retried
//! in place with exponential backoff and jitter; a 429 waits its `Retry-After` instead. When the
//! retries run out the message is returned as [`ProcessError::Transient`] so the queue redelivers
//! it; 400/401/402/403 come back as [`ProcessError::Permanent`] for the dead-letter queue.
//!
//! Because a number is recorded for the task before the rename, a retry, a duplicate delivery or
//! a crash between the two steps reuses the same number: numbers never repeat or burn.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::asana::{AsanaClient, AsanaError, Task};
use crate::job::Job;
use crate::naming::{contains_number, has_number, is_blank, NameFormat};
use crate::store::{Store, StoreError};

/// Result of a message processed without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Renamed {
        number: u64,
        name: String,
    },
    /// `--dry-run`: the rename that would have been made.
    WouldRename {
        number: u64,
        name: String,
    },
    AlreadyNumbered,
    BlankName,
    Subtask,
    TaskNotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// May succeed later: redeliver, after `retry_after` when set.
    #[error("transient failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not succeed by retrying: dead-letter with the reason.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

/// Retry settings for the calls of one processing attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    asana: AsanaClient,
    store: Arc<dyn Store>,
    format: NameFormat,
    dry_run: bool,
    retry: RetryPolicy,
}

impl Worker {
    pub fn new(asana: AsanaClient, store: Arc<dyn Store>, format: NameFormat) -> Self {
        Self {
            asana,
            store,
            format,
            dry_run: false,
            retry: RetryPolicy::default(),
        }
    }

    /// Logs the renames it would make instead of making them.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn asana(&self) -> &AsanaClient {
        &self.asana
    }

    /// Processes one message. No wait starts that would end after `deadline`.
    #[tracing::instrument(skip_all, fields(prefix = %job.prefix, task_gid = %job.task_gid))]
    pub async fn process(
        &self,
        job: &Job,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ProcessError> {
        let task = match self
            .call("get task", deadline, || self.asana.get_task(&job.task_gid))
            .await
        {
            Ok(task) => task,
            Err(AsanaError::NotFound) => {
                info!("task not found; it was deleted or is not visible to the token");
                return Ok(Outcome::TaskNotFound);
            }
            Err(error) => return Err(error.into()),
        };
        self.number_task(job, &task, deadline).await
    }

    /// Numbers a task already read from Asana: the path shared by the worker and backfill.
    pub async fn number_task(
        &self,
        job: &Job,
        task: &Task,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ProcessError> {
        if let Some(skip) = self.skip_reason(&job.prefix, task) {
            tracing::debug!(?skip, "task skipped");
            return Ok(skip);
        }
        if self.carries_recorded_number(job, task, deadline).await? {
            tracing::debug!("task name carries its recorded number after another prefix's");
            return Ok(Outcome::AlreadyNumbered);
        }

        let assignment = self
            .call("assign number", deadline, || {
                self.store
                    .assign_number(&job.prefix, &job.counter_key, &job.task_gid)
            })
            .await?;
        let name = self
            .format
            .render(&job.prefix, assignment.number, &task.name);

        if self.dry_run {
            info!(number = assignment.number, new_name = %name, "dry run: would rename task");
            return Ok(Outcome::WouldRename {
                number: assignment.number,
                name,
            });
        }
        match self
            .call("rename task", deadline, || {
                self.asana.update_task_name(&task.gid, &name)
            })
            .await
        {
            Ok(_) => {}
            Err(AsanaError::NotFound) => {
                info!(
                    number = assignment.number,
                    "task deleted before the rename; number kept for it"
                );
                return Ok(Outcome::TaskNotFound);
            }
            Err(error) => return Err(error.into()),
        }
        info!(number = assignment.number, fresh = assignment.fresh, new_name = %name, "task renamed");
        Ok(Outcome::Renamed {
            number: assignment.number,
            name,
        })
    }

    /// Returns true when the name contains the number recorded for this task under this prefix
    /// anywhere, not only at the start. A task in two numbered projects is named
    /// `OPS-1: BUG-1: Fix` once both have numbered it. Without this check each prefix would
    /// put its number in front again, forever.
    async fn carries_recorded_number(
        &self,
        job: &Job,
        task: &Task,
        deadline: Option<Instant>,
    ) -> Result<bool, ProcessError> {
        let recorded = self
            .call("read task number", deadline, || {
                self.store.task_number(&job.prefix, &job.task_gid)
            })
            .await?;
        Ok(recorded.is_some_and(|number| contains_number(&job.prefix, number, &task.name)))
    }

    /// Returns why a task needs no number, if it does not.
    pub fn skip_reason(&self, prefix: &str, task: &Task) -> Option<Outcome> {
        if task.parent.is_some() {
            return Some(Outcome::Subtask);
        }
        if is_blank(&task.name) {
            return Some(Outcome::BlankName);
        }
        if has_number(prefix, &self.format, &task.name) {
            return Some(Outcome::AlreadyNumbered);
        }
        None
    }

    /// Runs `operation` with the retry policy: backoff with jitter for transient errors,
    /// `Retry-After` for rate limits, and no wait that would end past `deadline`.
    async fn call<T, E, F, Fut>(
        &self,
        what: &str,
        deadline: Option<Instant>,
        operation: F,
    ) -> Result<T, E>
    where
        E: Retry + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1))
            .with_jitter();
        let mut attempt = 1;

        operation
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|error: &E| error.is_transient())
            .adjust(|error: &E, delay| {
                // `delay` is None once the attempts are used up; a 429 does not extend them.
                let delay = error.retry_after().unwrap_or(delay?);
                let fits = deadline.is_none_or(|deadline| Instant::now() + delay < deadline);
                fits.then_some(delay)
            })
            .notify(|error: &E, wait: Duration| {
                warn!(attempt, wait_ms = wait.as_millis() as u64, reason = %error, "{what} failed; retrying");
                attempt += 1;
            })
            .await
    }
}

/// Retry properties of an error.
trait Retry {
    fn is_transient(&self) -> bool;
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retry for AsanaError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AsanaError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl Retry for StoreError {
    fn is_transient(&self) -> bool {
        StoreError::is_transient(self)
    }
}

impl From<AsanaError> for ProcessError {
    fn from(error: AsanaError) -> Self {
        match error {
            AsanaError::RateLimited { retry_after } => ProcessError::Transient {
                reason: error.to_string(),
                retry_after: Some(retry_after),
            },
            AsanaError::Transient(_) => ProcessError::Transient {
                reason: error.to_string(),
                retry_after: None,
            },
            AsanaError::NotFound | AsanaError::Permanent { .. } => ProcessError::Permanent {
                reason: error.to_string(),
            },
        }
    }
}

impl From<StoreError> for ProcessError {
    fn from(error: StoreError) -> Self {
        // Every store failure may pass: a wrong Upstash token is fixed by an operator, after
        // which the redelivered message succeeds.
        ProcessError::Transient {
            reason: error.to_string(),
            retry_after: None,
        }
    }
}

//! A pool of workers over the embedded queue.
//!
//! Each of `concurrency` loops receives one message at a time. The queue hands out only the
//! oldest message of a task and none while another of that task is in flight, so one task's
//! messages run in order and never concurrently while different tasks run in parallel. A
//! processed message is deleted. A transient failure makes it visible again after a delay that
//! grows with its receive count, or after `Retry-After`. A permanent failure or a body that is
//! not a job moves it to the dead-letter table with the reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::job::Job;
use crate::queue::{QueueError, Received, SqliteQueue};
use crate::worker::{ProcessError, Worker};

#[derive(Debug, Clone, Copy)]
pub struct WorkerPoolConfig {
    /// Messages processed at once.
    pub concurrency: usize,
    /// Maximum sleep between polls when no enqueue wakes the pool.
    pub poll_interval: Duration,
    /// Maximum redelivery delay after a transient failure.
    pub max_redelivery_delay: Duration,
}

impl Default for WorkerPoolConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            poll_interval: Duration::from_millis(500),
            max_redelivery_delay: Duration::from_secs(60),
        }
    }
}

pub struct WorkerPool {
    queue: SqliteQueue,
    worker: Worker,
    wake: Arc<Notify>,
    config: WorkerPoolConfig,
}

impl WorkerPool {
    /// Creates a pool. The queue notifies `wake` after each enqueue, so idle workers start at once.
    pub fn new(
        queue: SqliteQueue,
        worker: Worker,
        wake: Arc<Notify>,
        config: WorkerPoolConfig,
    ) -> Self {
        Self {
            queue,
            worker,
            wake,
            config,
        }
    }

    /// Runs until `shutdown` turns true, then finishes the messages in flight and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let pool = Arc::new(self);
        let mut loops = JoinSet::new();
        for _ in 0..pool.config.concurrency.max(1) {
            loops.spawn(pool.clone().work(shutdown.clone()));
        }
        while loops.join_next().await.is_some() {}
        info!("worker pool stopped");
    }

    async fn work(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.queue.receive().await {
                Ok(Some(message)) => self.handle(message).await,
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    error!(%error, "receiving from the embedded queue failed");
                    tokio::time::sleep(self.config.poll_interval).await;
                }
            }
        }
    }

    async fn handle(&self, message: Received) {
        let job = match Job::from_body(&message.body) {
            Ok(job) => job,
            Err(error) => {
                let reason = format!("message body is not a job: {error}");
                self.settle(
                    message.id,
                    self.queue.dead_letter(message.id, &reason).await,
                );
                return;
            }
        };

        // Dropping the guard stops the heartbeat, also when processing panics.
        let heartbeat = AbortOnDrop(self.keep_invisible(message.id));
        let processed = self.worker.process(&job, None).await;
        drop(heartbeat);

        let result = match processed {
            Ok(_) => self.queue.delete(message.id).await,
            Err(ProcessError::Transient {
                reason,
                retry_after,
            }) => {
                let delay =
                    retry_after.unwrap_or_else(|| self.redelivery_delay(message.receive_count));
                warn!(
                    prefix = %job.prefix, task_gid = %job.task_gid, message_id = message.id,
                    receive_count = message.receive_count, delay_ms = delay.as_millis() as u64,
                    %reason, "message returned to the queue for redelivery"
                );
                self.queue.release(message.id, delay, &reason).await
            }
            Err(ProcessError::Permanent { reason }) => {
                warn!(
                    prefix = %job.prefix, task_gid = %job.task_gid, message_id = message.id,
                    %reason, "message moved to the dead-letter table"
                );
                self.queue.dead_letter(message.id, &reason).await
            }
        };
        self.settle(message.id, result);
    }

    /// Extends the message's visibility timeout at a third of its length until aborted, so no
    /// other worker receives the message while this one still retries it.
    fn keep_invisible(&self, message_id: i64) -> tokio::task::JoinHandle<()> {
        let queue = self.queue.clone();
        let period = queue.visibility_timeout() / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(error) = queue.extend_visibility(message_id).await {
                    warn!(message_id, %error, "extending the visibility timeout failed");
                }
            }
        })
    }

    /// Logs a failed queue update; the message then reappears after its visibility timeout.
    fn settle(&self, message_id: i64, result: Result<(), QueueError>) {
        if let Err(error) = result {
            error!(message_id, %error, "updating the embedded queue failed; the message will be redelivered");
        }
    }

    /// Returns 2^receive_count seconds, capped.
    fn redelivery_delay(&self, receive_count: u32) -> Duration {
        let seconds = 1u64 << receive_count.min(16);
        Duration::from_secs(seconds).min(self.config.max_redelivery_delay)
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

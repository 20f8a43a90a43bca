//! Benchmarks of the ingest path: signature verification, event selection, and a whole
//! `Ingest::handle` call that commits to the embedded queue, on an empty queue and with a
//! backlog. The worker's receive query is measured with a backlog too.
//!
//! Run with `cargo bench -p autonumber-shared --bench ingest`; figures are in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autonumber_shared::db::{now_millis, Database};
use autonumber_shared::event::{parse_delivery, select};
use autonumber_shared::queue::SqliteQueue;
use autonumber_shared::route::Route;
use autonumber_shared::signature::{sign, verify};
use autonumber_shared::store::{SqliteStore, Store, REGISTRATION_TTL};
use autonumber_shared::{Ingest, IngestRequest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, Method};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A delivery of `count` distinct task-added events, shaped like Asana's.
fn delivery(count: usize, salt: usize) -> Vec<u8> {
    let events: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"user":{{"gid":"1208100000000001","resource_type":"user"}},"created_at":"2026-11-02T09:14:03.{salt}Z","action":"added","resource":{{"gid":"12082{i:011}","resource_type":"task","resource_subtype":"default_task"}},"parent":{{"gid":"1208300000000001","resource_type":"project"}}}}"#
            )
        })
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(",")).into_bytes()
}

fn signature(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_signature");
    for count in [1, 100] {
        let body = delivery(count, 0);
        let header = sign(SECRET, &body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{count}_events"), |b| {
            b.iter(|| verify(Some(&header), &body, [SECRET]).unwrap())
        });
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    let route = Route {
        prefix: "BUG".into(),
        counter_key: "BUG".into(),
    };
    let body = delivery(100, 0);
    c.bench_function("parse_and_select_100_events", |b| {
        b.iter(|| select(&route, &parse_delivery(&body).unwrap()).jobs.len())
    });
}

/// Queue backlogs at which one delivery and one receive are measured. The worker drains about
/// 25 tasks a second under the default Asana budget, so a bulk import of thousands of tasks
/// leaves about as many rows in the queue and in the deduplication table.
const BACKLOG_ROWS: [usize; 3] = [100, 10_000, 50_000];

/// An ingest over a fresh embedded database whose prefix BUG is registered with [`SECRET`].
struct Fixture {
    runtime: tokio::runtime::Runtime,
    db: Database,
    queue: SqliteQueue,
    ingest: Ingest,
    /// Rows of the backlog, whose queue ids are 1 to `backlog_rows`.
    backlog_rows: usize,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let store = Arc::new(SqliteStore::new(db.clone()));
        runtime.block_on(async {
            store
                .begin_registration("BUG", REGISTRATION_TTL)
                .await
                .unwrap();
            store.complete_registration("BUG", SECRET).await.unwrap();
        });
        let queue = SqliteQueue::new(db.clone(), Duration::from_secs(30));
        let ingest = Ingest::new(store, Arc::new(queue.clone()));
        Self {
            runtime,
            db,
            queue,
            ingest,
            backlog_rows: 0,
            _dir: dir,
        }
    }

    /// Inserts `rows` messages of distinct tasks into the queue and their ids into the
    /// deduplication table, as a backlog the worker has not drained yet. The ids expire in a
    /// day rather than in five minutes, so none expires while the benchmark runs.
    fn fill_backlog(&mut self, rows: usize) {
        let work = move |conn: &mut rusqlite::Connection| {
            let tx = conn.transaction()?;
            let expires_at = now_millis() + 86_400_000;
            for i in 0..rows {
                let task_gid = format!("12089{i:011}");
                let dedup_id = format!("backlog-{i}");
                let body = format!(
                    r#"{{"prefix":"BUG","counter_key":"BUG","task_gid":"{task_gid}","action":"added","created_at":"2026-11-02T09:14:03.000Z"}}"#
                );
                tx.execute(
                    "INSERT INTO queue_dedup (dedup_id, expires_at) VALUES (?1, ?2)",
                    rusqlite::params![dedup_id, expires_at],
                )?;
                tx.execute(
                    "INSERT INTO queue (group_id, dedup_id, body, enqueued_at, visible_at) \
                     VALUES (?1, ?2, ?3, 0, 0)",
                    rusqlite::params![task_gid, dedup_id, body],
                )?;
            }
            tx.commit()
        };
        self.runtime.block_on(self.db.call(work)).unwrap();
        self.backlog_rows = rows;
    }

    /// Deletes what one delivery of `body` enqueued, so every iteration starts from the same
    /// backlog. Queue ids only grow, so the delivery's rows are those above the backlog's.
    fn remove_delivery(&self, body: &[u8]) {
        let route = Route {
            prefix: "BUG".into(),
            counter_key: "BUG".into(),
        };
        let jobs = select(&route, &parse_delivery(body).unwrap()).jobs;
        let dedup_ids: Vec<String> = jobs.iter().map(|job| job.dedup_id()).collect();
        let backlog = self.backlog_rows as i64;
        let work = move |conn: &mut rusqlite::Connection| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM queue WHERE id > ?1", [backlog])?;
            for dedup_id in &dedup_ids {
                tx.execute("DELETE FROM queue_dedup WHERE dedup_id = ?1", [dedup_id])?;
            }
            tx.commit()
        };
        self.runtime.block_on(self.db.call(work)).unwrap();
    }

    /// Times `iterations` calls of `Ingest::handle` with distinct signed deliveries of `count`
    /// events. The rows each call enqueues are deleted outside the timed part.
    fn time_handle(&self, iterations: u64, count: usize, salt: &mut usize) -> Duration {
        let method = Method::POST;
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            *salt += 1;
            let body = delivery(count, *salt);
            let mut headers = HeaderMap::new();
            headers.insert("x-hook-signature", sign(SECRET, &body).parse().unwrap());
            let request = IngestRequest {
                method: &method,
                path: "/webhooks/BUG",
                query: None,
                headers: &headers,
                body: &body,
                source: "bench",
            };

            let start = Instant::now();
            let response = self.runtime.block_on(self.ingest.handle(request));
            total += start.elapsed();

            assert_eq!(response.status, 200, "{}", response.body);
            self.remove_delivery(&body);
        }
        total
    }

    /// Times `iterations` calls of `SqliteQueue::receive`, the worker's query for the next
    /// message. The received message is made visible again outside the timed part.
    fn time_receive(&self, iterations: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            let start = Instant::now();
            let message = self.runtime.block_on(self.queue.receive()).unwrap();
            total += start.elapsed();

            let id = message.expect("the backlog is never empty").id;
            let reset = move |conn: &mut rusqlite::Connection| {
                conn.execute(
                    "UPDATE queue SET in_flight = 0, receive_count = 0, visible_at = 0 \
                     WHERE id = ?1",
                    [id],
                )
            };
            self.runtime.block_on(self.db.call(reset)).unwrap();
        }
        total
    }
}

/// Measures one `Ingest::handle` call, signature to SQLite commit, on an empty queue. Each
/// iteration's rows are deleted again, so the tables stay empty however many iterations run.
fn handle(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = c.benchmark_group("ingest_handle_sqlite");
    for count in [1, 10] {
        let mut salt = 0;
        group.bench_function(format!("{count}_events"), |b| {
            b.iter_custom(|iterations| fixture.time_handle(iterations, count, &mut salt))
        });
    }
    group.finish();
}

/// Measures one `Ingest::handle` call of one event with a backlog of queued and deduplicated
/// rows.
fn handle_backlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_handle_sqlite_backlog");
    group.sample_size(30);
    for rows in BACKLOG_ROWS {
        let mut fixture = Fixture::new();
        fixture.fill_backlog(rows);
        let mut salt = 0;
        group.bench_function(format!("{rows}_rows"), |b| {
            b.iter_custom(|iterations| fixture.time_handle(iterations, 1, &mut salt))
        });
    }
    group.finish();
}

/// Measures one `SqliteQueue::receive` call, the worker's poll, with a backlog of one message
/// per task. The call locks the database connection that ingest's commits also need.
fn receive_backlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_receive_backlog");
    group.sample_size(30);
    for rows in BACKLOG_ROWS {
        let mut fixture = Fixture::new();
        fixture.fill_backlog(rows);
        group.bench_function(format!("{rows}_rows"), |b| {
            b.iter_custom(|iterations| fixture.time_receive(iterations))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    signature,
    selection,
    handle,
    handle_backlog,
    receive_backlog
);
criterion_main!(benches);

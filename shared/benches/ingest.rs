//! Benchmarks of the ingest path: signature verification, event selection, and a whole
//! `Ingest::handle` call that commits to the embedded queue.
//!
//! Run with `cargo bench -p autonumber-shared --bench ingest`; figures are in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Duration;

use autonumber_shared::db::Database;
use autonumber_shared::event::{parse_delivery, select};
use autonumber_shared::queue::SqliteQueue;
use autonumber_shared::route::Route;
use autonumber_shared::signature::{sign, verify};
use autonumber_shared::store::{SqliteStore, Store, REGISTRATION_TTL};
use autonumber_shared::{Ingest, IngestRequest};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
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

fn handle(c: &mut Criterion) {
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
    let ingest = Ingest::new(
        store,
        Arc::new(SqliteQueue::new(db, Duration::from_secs(30))),
    );
    let method = Method::POST;

    let mut group = c.benchmark_group("ingest_handle_sqlite");
    for count in [1, 10] {
        let mut salt = 0;
        group.bench_function(format!("{count}_events"), |b| {
            b.iter_batched(
                || {
                    salt += 1;
                    let body = delivery(count, salt);
                    let mut headers = HeaderMap::new();
                    headers.insert("x-hook-signature", sign(SECRET, &body).parse().unwrap());
                    (body, headers)
                },
                |(body, headers)| {
                    let request = IngestRequest {
                        method: &method,
                        path: "/webhooks/BUG",
                        query: None,
                        headers: &headers,
                        body: &body,
                        source: "bench",
                    };
                    let response = runtime.block_on(ingest.handle(request));
                    assert_eq!(response.status, 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, signature, selection, handle);
criterion_main!(benches);

//! The webhook route of `autonumber serve`, called through the axum router without a socket:
//! every answer of the ingest contract, against the embedded store and queue.

use std::sync::Arc;
use std::time::Duration;

use autonumber_shared::db::Database;
use autonumber_shared::local::app;
use autonumber_shared::queue::SqliteQueue;
use autonumber_shared::signature::sign;
use autonumber_shared::store::{SqliteStore, Store, REGISTRATION_TTL};
use autonumber_shared::{Ingest, Job};
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use failing::FailingQueue;
use tower::ServiceExt;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/events");
const SECRET: &str = "0123456789abcdef0123456789abcdef";

mod failing {
    //! A queue that rejects everything, standing in for a queue that is down.
    use autonumber_shared::queue::{Queue, QueueError};
    use autonumber_shared::Job;

    pub struct FailingQueue;

    #[autonumber_shared::async_trait]
    impl Queue for FailingQueue {
        async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
            Err(QueueError::Unavailable(format!(
                "queue down, {} jobs refused",
                jobs.len()
            )))
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    queue: SqliteQueue,
    router: Router,
}

/// A router over a fresh embedded database, with `BUG` registered under [`SECRET`].
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::new(db.clone()));
    let queue = SqliteQueue::new(db, Duration::from_secs(30));
    store
        .begin_registration("BUG", REGISTRATION_TTL)
        .await
        .unwrap();
    assert!(store.complete_registration("BUG", SECRET).await.unwrap());

    let router = app(Ingest::new(store.clone(), Arc::new(queue.clone())));
    Setup {
        _dir: dir,
        store,
        queue,
        router,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{EVENTS}/{name}")).unwrap()
}

fn signed(uri: &str, body: Vec<u8>, secret: &str) -> Request<Body> {
    Request::post(uri)
        .header("X-Hook-Signature", sign(secret, &body))
        .body(Body::from(body))
        .unwrap()
}

async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn queued_jobs(queue: &SqliteQueue) -> Vec<Job> {
    let mut jobs = Vec::new();
    while let Some(message) = queue.receive().await.unwrap() {
        jobs.push(Job::from_body(&message.body).unwrap());
        queue.delete(message.id).await.unwrap();
    }
    jobs
}

#[tokio::test]
async fn signed_delivery_is_enqueued() {
    let setup = setup().await;
    let (status, _, _) = send(
        &setup.router,
        signed("/webhooks/BUG", fixture("task_added.json"), SECRET),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    let jobs = queued_jobs(&setup.queue).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].task_gid, "1208200000000101");
    assert_eq!(jobs[0].prefix, "BUG");
}

#[tokio::test]
async fn spaced_escaped_body_verifies_on_raw_bytes() {
    let setup = setup().await;
    let (status, _, _) = send(
        &setup.router,
        signed("/webhooks/BUG", fixture("spaced_escaped.json"), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queued_jobs(&setup.queue).await.len(), 1);
}

#[tokio::test]
async fn heartbeat_answers_ok_and_enqueues_nothing() {
    let setup = setup().await;
    let (status, _, _) = send(
        &setup.router,
        signed("/webhooks/BUG", fixture("heartbeat.json"), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(queued_jobs(&setup.queue).await.is_empty());
}

#[tokio::test]
async fn duplicate_delivery_is_enqueued_once() {
    let setup = setup().await;
    for _ in 0..3 {
        let (status, _, _) = send(
            &setup.router,
            signed("/webhooks/BUG", fixture("task_renamed.json"), SECRET),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(queued_jobs(&setup.queue).await.len(), 1);
}

#[tokio::test]
async fn legacy_query_route_keeps_counter_key() {
    let setup = setup().await;
    let uri = "/?counter_key=bug_counter&prefix=BUG";
    let (status, _, _) = send(
        &setup.router,
        signed(uri, fixture("task_added.json"), SECRET),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    let jobs = queued_jobs(&setup.queue).await;
    assert_eq!(jobs[0].counter_key, "bug_counter");
}

#[tokio::test]
async fn fallback_signature_header_is_accepted() {
    let setup = setup().await;
    let body = fixture("task_added.json");
    let request = Request::post("/webhooks/BUG")
        .header("x-asana-request-signature", sign(SECRET, &body))
        .body(Body::from(body))
        .unwrap();
    let (status, _, _) = send(&setup.router, request).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_method_is_405() {
    let setup = setup().await;
    let request = Request::get("/webhooks/BUG").body(Body::empty()).unwrap();
    assert_eq!(
        send(&setup.router, request).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn invalid_and_unknown_prefixes_are_404() {
    let setup = setup().await;
    for uri in [
        "/webhooks/bug",
        "/webhooks/OPS",
        "/nothing",
        "/webhooks/TOOLONGPREFIX12345",
    ] {
        let (status, _, _) = send(
            &setup.router,
            signed(uri, fixture("task_added.json"), SECRET),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let setup = setup().await;
    let mut body = b"{\"events\":[],\"pad\":\"".to_vec();
    body.resize(1024 * 1024 + 10, b'x');
    let (status, _, _) = send(&setup.router, signed("/webhooks/BUG", body, SECRET)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn missing_or_wrong_signature_is_401() {
    let setup = setup().await;
    let unsigned = Request::post("/webhooks/BUG")
        .body(Body::from(fixture("task_added.json")))
        .unwrap();
    assert_eq!(
        send(&setup.router, unsigned).await.0,
        StatusCode::UNAUTHORIZED
    );

    let wrong = signed(
        "/webhooks/BUG",
        fixture("task_added.json"),
        "not-the-secret",
    );
    assert_eq!(send(&setup.router, wrong).await.0, StatusCode::UNAUTHORIZED);
    assert!(queued_jobs(&setup.queue).await.is_empty());
}

#[tokio::test]
async fn invalid_json_after_valid_signature_is_400() {
    let setup = setup().await;
    for body in [&b"not json"[..], br#"{"data":[]}"#, br#"{"events":"x"}"#] {
        let (status, _, _) = send(
            &setup.router,
            signed("/webhooks/BUG", body.to_vec(), SECRET),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn handshake_with_pending_registration_stores_secret() {
    let setup = setup().await;
    setup
        .store
        .begin_registration("OPS", REGISTRATION_TTL)
        .await
        .unwrap();

    let request = Request::post("/webhooks/OPS")
        .header("X-Hook-Secret", "new-secret")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&setup.router, request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("x-hook-secret").unwrap(), "new-secret");
    let secrets = setup.store.secrets("OPS").await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].secret, "new-secret");
    assert!(!setup.store.registration_pending("OPS").await.unwrap());
}

#[tokio::test]
async fn handshake_without_pending_registration_is_403() {
    let setup = setup().await;
    let request = Request::post("/webhooks/BUG")
        .header("X-Hook-Secret", "attacker")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&setup.router, request).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get("x-hook-secret").is_none());
    assert!(!body.contains("attacker"));
    let secrets = setup.store.secrets("BUG").await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].secret, SECRET);
}

#[tokio::test]
async fn second_handshake_after_completion_is_403() {
    let setup = setup().await;
    setup
        .store
        .begin_registration("OPS", REGISTRATION_TTL)
        .await
        .unwrap();
    let first = Request::post("/webhooks/OPS")
        .header("X-Hook-Secret", "one")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&setup.router, first).await.0, StatusCode::OK);

    let second = Request::post("/webhooks/OPS")
        .header("X-Hook-Secret", "two")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&setup.router, second).await.0, StatusCode::FORBIDDEN);
    assert_eq!(setup.store.secrets("OPS").await.unwrap().len(), 1);
}

#[tokio::test]
async fn shared_prefix_accepts_each_projects_secret() {
    let setup = setup().await;
    setup
        .store
        .begin_registration("BUG", REGISTRATION_TTL)
        .await
        .unwrap();
    let handshake = Request::post("/webhooks/BUG")
        .header("X-Hook-Secret", "second-project")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&setup.router, handshake).await.0, StatusCode::OK);

    for secret in [SECRET, "second-project"] {
        let (status, _, _) = send(
            &setup.router,
            signed("/webhooks/BUG", fixture("task_added.json"), secret),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn queue_down_is_503() {
    let setup = setup().await;
    let router = app(Ingest::new(setup.store.clone(), Arc::new(FailingQueue)));
    let (status, _, _) = send(
        &router,
        signed("/webhooks/BUG", fixture("task_added.json"), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let heartbeat = signed("/webhooks/BUG", fixture("heartbeat.json"), SECRET);
    assert_eq!(
        send(&router, heartbeat).await.0,
        StatusCode::OK,
        "a heartbeat needs no queue"
    );
}

#[tokio::test]
async fn rejections_never_log_secrets() {
    let logs = autonumber_tests::logs::capture();
    let setup = setup().await;
    let _ = send(
        &setup.router,
        signed(
            "/webhooks/BUG",
            fixture("task_added.json"),
            "wrong-secret-value",
        ),
    )
    .await;
    let handshake = Request::post("/webhooks/BUG")
        .header("X-Hook-Secret", "attacker-secret")
        .body(Body::empty())
        .unwrap();
    let _ = send(&setup.router, handshake).await;

    let text = logs.text();
    assert!(text.contains("status=401"), "no 401 log line in: {text}");
    assert!(text.contains("status=403"), "no 403 log line in: {text}");
    assert!(
        text.contains("prefix=\"BUG\"") || text.contains("prefix=BUG"),
        "no prefix in: {text}"
    );
    for secret in [SECRET, "wrong-secret-value", "attacker-secret"] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn health_check_returns_ok() {
    let setup = setup().await;
    let request = Request::get("/healthz").body(Body::empty()).unwrap();
    let (status, _, body) = send(&setup.router, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
}

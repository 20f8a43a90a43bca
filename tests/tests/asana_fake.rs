//! Tests of the Asana fake itself: handshake, signed deliveries, pagination, fault injection
//! and the REST endpoints the pipeline uses.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autonumber_tests::asana_fake::{AsanaFake, Route};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const TOKEN: &str = "test-token";
const PROJECT: &str = "1208300000000001";
const WAIT: Duration = Duration::from_secs(10);

/// What a [`Receiver`] does with a handshake.
#[derive(Clone, Copy)]
enum Handshake {
    Echo,
    Ignore,
}

/// One request that reached a [`Receiver`].
#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook target on 127.0.0.1 that records every request and responds with 200.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(handshake: Handshake) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let secret = headers.get("x-hook-secret").cloned();
                log.lock().unwrap().push(Received { headers, body });
                let mut response_headers = HeaderMap::new();
                if let (Handshake::Echo, Some(secret)) = (handshake, secret) {
                    response_headers.insert("x-hook-secret", secret);
                }
                (StatusCode::OK, response_headers)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A client of the fake's API.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(fake: &AsanaFake) -> Api {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = fake.url().to_owned();
        Api { http, base }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> ApiResponse {
        self.send_with_token(method, path, body, Some(TOKEN)).await
    }

    async fn send_with_token(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> ApiResponse {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        ApiResponse {
            status,
            headers,
            body,
        }
    }

    async fn create_webhook(&self, target: &str, filters: Value) -> ApiResponse {
        let body = json!({"data": {"resource": PROJECT, "target": target, "filters": filters}});
        self.send(Method::POST, "/webhooks", Some(body)).await
    }
}

struct ApiResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl ApiResponse {
    fn error_message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }
}

async fn fake_with_project() -> AsanaFake {
    let fake = AsanaFake::start(TOKEN).await.unwrap();
    fake.add_project(PROJECT);
    fake
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Replaces every scalar with its type name, so two JSON values compare by shape.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
        Value::Array(items) => items.iter().map(shape).collect(),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

fn events_of(body: &[u8]) -> Vec<Value> {
    let body: Value = serde_json::from_slice(body).unwrap();
    body["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn handshake_registers_webhook() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;

    let response = Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let handshakes = receiver.received();
    assert_eq!(handshakes.len(), 1);
    assert!(handshakes[0].body.is_empty(), "the handshake body is empty");
    let sent_secret = handshakes[0].headers["x-hook-secret"].to_str().unwrap();
    assert_eq!(sent_secret.len(), 64);
    assert_eq!(response.body["X-Hook-Secret"], sent_secret);
    assert_eq!(response.body["data"]["resource"]["gid"], PROJECT);
    assert_eq!(response.body["data"]["target"], receiver.url);
    assert_eq!(response.body["data"]["active"], true);
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0].gid, response.body["data"]["gid"]);
    assert_eq!(webhooks[0].secret, sent_secret);
}

#[tokio::test]
async fn handshake_without_echo_fails() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Ignore).await;

    let response = Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;

    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.error_message().contains("X-Hook-Secret"),
        "{}",
        response.body
    );
    assert_eq!(receiver.received().len(), 1);
    assert!(fake.webhooks().is_empty());
}

#[tokio::test]
async fn handshake_to_closed_port_fails() {
    let fake = fake_with_project().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);

    let response = Api::new(&fake).create_webhook(&target, json!([])).await;

    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(fake.webhooks().is_empty());
}

#[tokio::test]
async fn duplicate_webhook_is_forbidden() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let api = Api::new(&fake);

    let first = api.create_webhook(&receiver.url, json!([])).await;
    let second = api.create_webhook(&receiver.url, json!([])).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::FORBIDDEN);
    assert_eq!(second.error_message(), "Duplicated webhook");
    assert_eq!(fake.webhooks().len(), 1);
}

#[tokio::test]
async fn webhook_on_unknown_project_is_not_found() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let body = json!({"data": {"resource": "1", "target": receiver.url}});

    let response = Api::new(&fake)
        .send(Method::POST, "/webhooks", Some(body))
        .await;

    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(
        receiver.received().is_empty(),
        "no handshake for an unknown resource"
    );
}

#[tokio::test]
async fn secret_override_changes_reported_secret() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    fake.set_secret_override(Some("not-the-handshake-secret"));

    let response = Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.body["X-Hook-Secret"], "not-the-handshake-secret");
    let sent_secret = receiver.received()[0].headers["x-hook-secret"].clone();
    assert_eq!(fake.webhooks()[0].secret, sent_secret.to_str().unwrap());
}

#[tokio::test]
async fn delivery_signature_covers_raw_body() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;
    let secret = fake.webhooks()[0].secret.clone();

    let task = fake.add_task(PROJECT, "Fix login");
    let deliveries = fake.wait_for_deliveries(1, WAIT).await.unwrap();

    assert_eq!(deliveries[0].status, Some(200));
    let delivered = &receiver.received()[1];
    let signature = delivered.headers["x-hook-signature"].to_str().unwrap();
    assert_eq!(signature, hmac_hex(&secret, &delivered.body));
    assert_eq!(delivered.body.as_ref(), deliveries[0].body.as_slice());
    let created_at = events_of(&delivered.body)[0]["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let expected = format!(
        r#"{{"events":[{{"user":{{"gid":"{}","resource_type":"user"}},"created_at":"{created_at}","action":"added","resource":{{"gid":"{task}","resource_type":"task","resource_subtype":"default_task"}},"parent":{{"gid":"{PROJECT}","resource_type":"project"}}}}]}}"#,
        fake.person_gid()
    );
    assert_eq!(std::str::from_utf8(&delivered.body).unwrap(), expected);
}

#[tokio::test]
async fn delivery_matches_sample_event_shape() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;

    fake.add_task(PROJECT, "Fix login");
    let deliveries = fake.wait_for_deliveries(1, WAIT).await.unwrap();

    let sample_path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/events/task_added.json");
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(sample_path).unwrap()).unwrap();
    let delivered: Value = serde_json::from_slice(&deliveries[0].body).unwrap();
    assert_eq!(shape(&delivered), shape(&sample));
    let created_at = delivered["events"][0]["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );
}

#[tokio::test]
async fn put_rename_emits_changed_event() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let api = Api::new(&fake);
    api.create_webhook(&receiver.url, json!([])).await;
    let task = fake.add_task(PROJECT, "Fix login");
    fake.wait_for_deliveries(1, WAIT).await.unwrap();

    let body = json!({"data": {"name": "BUG-1: Fix login"}});
    let response = api
        .send(Method::PUT, &format!("/tasks/{task}"), Some(body))
        .await;
    let deliveries = fake.wait_for_deliveries(2, WAIT).await.unwrap();

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body["data"]["name"], "BUG-1: Fix login");
    assert_eq!(fake.task_name(&task).as_deref(), Some("BUG-1: Fix login"));
    let renames = fake.renames();
    assert_eq!(renames.len(), 1);
    assert_eq!(renames[0].old_name, "Fix login");
    assert_eq!(renames[0].new_name, "BUG-1: Fix login");
    let event = &events_of(&deliveries[1].body)[0];
    assert_eq!(event["action"], "changed");
    assert_eq!(
        event["change"],
        json!({"field": "name", "action": "changed"})
    );
    assert_eq!(event["parent"], Value::Null);
    assert_eq!(event["resource"]["gid"], task);
    assert_eq!(event["user"]["gid"], fake.user_gid());
}

#[tokio::test]
async fn unchanged_name_emits_no_event() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let api = Api::new(&fake);
    let task = fake.add_task(PROJECT, "BUG-1: Fix login");
    api.create_webhook(&receiver.url, json!([])).await;

    let body = json!({"data": {"name": "BUG-1: Fix login"}});
    let response = api
        .send(Method::PUT, &format!("/tasks/{task}"), Some(body))
        .await;
    fake.set_task_name(&task, "BUG-1: Fix login page");
    let deliveries = fake.wait_for_deliveries(1, WAIT).await.unwrap();

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(fake.renames().len(), 1, "the write is still recorded");
    let event = &events_of(&deliveries[0].body)[0];
    assert_eq!(
        event["user"]["gid"],
        fake.person_gid(),
        "first event is the UI rename"
    );
}

#[tokio::test]
async fn put_rejects_non_string_name() {
    let fake = fake_with_project().await;
    let task = fake.add_task(PROJECT, "Fix login");

    let body = json!({"data": {"name": 123}});
    let response = Api::new(&fake)
        .send(Method::PUT, &format!("/tasks/{task}"), Some(body))
        .await;

    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(fake.task_name(&task).as_deref(), Some("Fix login"));
}

#[tokio::test]
async fn deliveries_keep_order_per_webhook() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;
    let task = fake.add_task(PROJECT, "Name 0");

    for number in 1..=5 {
        fake.set_task_name(&task, &format!("Name {number}"));
    }
    let deliveries = fake.wait_for_deliveries(6, WAIT).await.unwrap();

    let times: Vec<String> = deliveries
        .iter()
        .map(|delivery| {
            events_of(&delivery.body)[0]["created_at"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        times, sorted,
        "event times strictly increase in delivery order"
    );
    let received: Vec<Bytes> = receiver
        .received()
        .into_iter()
        .skip(1)
        .map(|r| r.body)
        .collect();
    let sent: Vec<Bytes> = deliveries
        .into_iter()
        .map(|d| Bytes::from(d.body))
        .collect();
    assert_eq!(received, sent);
}

#[tokio::test]
async fn filters_hold_back_other_events() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let filters = json!([{"resource_type": "task", "action": "added"}]);
    Api::new(&fake).create_webhook(&receiver.url, filters).await;
    let task = fake.add_task(PROJECT, "Fix login");

    fake.set_task_name(&task, "Fix the login");
    let second = fake.add_task(PROJECT, "Fix logout");
    let deliveries = fake.wait_for_deliveries(2, WAIT).await.unwrap();

    assert_eq!(events_of(&deliveries[1].body)[0]["resource"]["gid"], second);
    assert_eq!(events_of(&deliveries[1].body)[0]["action"], "added");
}

#[tokio::test]
async fn subtask_event_has_task_parent() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    Api::new(&fake)
        .create_webhook(&receiver.url, json!([]))
        .await;
    let task = fake.add_task(PROJECT, "Fix login");

    let subtask = fake.add_subtask(&task, "Write test");
    let deliveries = fake.wait_for_deliveries(2, WAIT).await.unwrap();

    let event = &events_of(&deliveries[1].body)[0];
    assert_eq!(event["resource"]["gid"], subtask);
    assert_eq!(
        event["parent"],
        json!({"gid": task, "resource_type": "task"})
    );
}

#[tokio::test]
async fn get_task_honours_opt_fields() {
    let fake = fake_with_project().await;
    let task = fake.add_task(PROJECT, "Fix login");
    let subtask = fake.add_subtask(&task, "Write test");
    let api = Api::new(&fake);

    let path = format!("/tasks/{task}?opt_fields=name,parent,memberships.project");
    let response = api.send(Method::GET, &path, None).await;
    let sub_path = format!("/tasks/{subtask}?opt_fields=name,parent.name");
    let sub_response = api.send(Method::GET, &sub_path, None).await;

    assert_eq!(response.status, StatusCode::OK);
    let data = response.body["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["gid", "memberships", "name", "parent"]);
    assert_eq!(data["name"], "Fix login");
    assert_eq!(data["parent"], Value::Null);
    assert_eq!(data["memberships"][0]["project"]["gid"], PROJECT);
    assert_eq!(sub_response.body["data"]["parent"]["gid"], task);
    assert_eq!(sub_response.body["data"]["parent"]["name"], "Fix login");
}

#[tokio::test]
async fn get_task_without_opt_fields_is_full() {
    let fake = fake_with_project().await;
    let first = fake.add_task(PROJECT, "First");
    let second = fake.add_task(PROJECT, "Second");
    let api = Api::new(&fake);

    let first = api
        .send(Method::GET, &format!("/tasks/{first}"), None)
        .await
        .body;
    let second = api
        .send(Method::GET, &format!("/tasks/{second}"), None)
        .await
        .body;

    assert_eq!(first["data"]["resource_type"], "task");
    assert_eq!(first["data"]["resource_subtype"], "default_task");
    assert_eq!(first["data"]["projects"][0]["gid"], PROJECT);
    let first_created = first["data"]["created_at"].as_str().unwrap();
    let second_created = second["data"]["created_at"].as_str().unwrap();
    let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
    assert!(
        parse(first_created) < parse(second_created),
        "{first_created} < {second_created}"
    );
}

#[tokio::test]
async fn unknown_and_deleted_tasks_are_not_found() {
    let fake = fake_with_project().await;
    let task = fake.add_task(PROJECT, "Fix login");
    let api = Api::new(&fake);

    let unknown = api.send(Method::GET, "/tasks/42", None).await;
    fake.delete_task(&task);
    let deleted = api.send(Method::GET, &format!("/tasks/{task}"), None).await;

    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(!unknown.error_message().is_empty());
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    assert_eq!(fake.task_name(&task), None);
}

#[tokio::test]
async fn project_tasks_paginate_in_three_pages() {
    let fake = fake_with_project().await;
    let tasks: Vec<String> = (1..=5)
        .map(|n| fake.add_task(PROJECT, &format!("Task {n}")))
        .collect();
    fake.add_subtask(&tasks[0], "Not listed");
    let api = Api::new(&fake);

    let mut pages = Vec::new();
    let mut path = format!("/projects/{PROJECT}/tasks?limit=2&opt_fields=name,created_at");
    loop {
        let response = api.send(Method::GET, &path, None).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let next = response.body["next_page"].clone();
        pages.push(response.body["data"].as_array().unwrap().clone());
        if next.is_null() {
            break;
        }
        assert!(next["uri"].as_str().unwrap().starts_with(fake.url()));
        assert!(next["path"]
            .as_str()
            .unwrap()
            .contains(next["offset"].as_str().unwrap()));
        path = next["path"].as_str().unwrap().to_owned();
    }

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let listed: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|t| t["gid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, tasks);
    assert_eq!(pages[0][0]["name"], "Task 1");
    assert!(pages[0][0]["created_at"].is_string());
}

#[tokio::test]
async fn project_tasks_without_limit_list_all() {
    let fake = fake_with_project().await;
    for n in 1..=3 {
        fake.add_task(PROJECT, &format!("Task {n}"));
    }

    let path = format!("/projects/{PROJECT}/tasks");
    let response = Api::new(&fake).send(Method::GET, &path, None).await;

    assert_eq!(response.body["data"].as_array().unwrap().len(), 3);
    assert!(response.body.get("next_page").is_none());
}

#[tokio::test]
async fn invalid_offset_and_limit_are_rejected() {
    let fake = fake_with_project().await;
    let api = Api::new(&fake);

    let offset = api
        .send(
            Method::GET,
            &format!("/projects/{PROJECT}/tasks?limit=2&offset=nope"),
            None,
        )
        .await;
    let limit = api
        .send(
            Method::GET,
            &format!("/projects/{PROJECT}/tasks?limit=101"),
            None,
        )
        .await;

    assert_eq!(offset.status, StatusCode::BAD_REQUEST);
    assert_eq!(limit.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fail_next_returns_retry_after() {
    let fake = fake_with_project().await;
    let task = fake.add_task(PROJECT, "Fix login");
    let api = Api::new(&fake);
    fake.fail_next(Route::GetTask, 2, 429, Some(3));

    let path = format!("/tasks/{task}");
    let first = api.send(Method::GET, &path, None).await;
    let user = api.send(Method::GET, "/users/me", None).await;
    let second = api.send(Method::GET, &path, None).await;
    let third = api.send(Method::GET, &path, None).await;

    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.headers["retry-after"], HeaderValue::from_static("3"));
    assert!(!first.error_message().is_empty());
    assert_eq!(user.status, StatusCode::OK, "other routes are not affected");
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.status, StatusCode::OK);
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|request| request.route == Some(Route::GetTask))
        .collect();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].received_at <= requests[1].received_at);
    assert_eq!(requests[2].path, path);
}

#[tokio::test]
async fn fail_next_without_retry_after_sends_no_header() {
    let fake = fake_with_project().await;
    fake.fail_next(Route::Any, 1, 503, None);

    let response = Api::new(&fake).send(Method::GET, "/users/me", None).await;

    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn set_delay_slows_route() {
    let fake = fake_with_project().await;
    let api = Api::new(&fake);
    fake.set_delay(Route::GetUser, Duration::from_millis(300));

    let started = Instant::now();
    let response = api.send(Method::GET, "/users/me", None).await;
    let elapsed = started.elapsed();

    assert_eq!(response.status, StatusCode::OK);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
}

#[tokio::test]
async fn missing_or_wrong_token_is_unauthorized() {
    let fake = fake_with_project().await;
    let api = Api::new(&fake);

    let missing = api
        .send_with_token(Method::GET, "/users/me", None, None)
        .await;
    let wrong = api
        .send_with_token(Method::GET, "/users/me", None, Some("other"))
        .await;

    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.error_message(), "Not Authorized");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_me_returns_token_user() {
    let fake = fake_with_project().await;

    let response = Api::new(&fake).send(Method::GET, "/users/me", None).await;

    assert_eq!(response.body["data"]["gid"], fake.user_gid());
    assert_eq!(
        response.body["data"]["workspaces"][0]["gid"],
        fake.workspace_gid()
    );
}

#[tokio::test]
async fn list_webhooks_needs_workspace() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let api = Api::new(&fake);
    let created = api.create_webhook(&receiver.url, json!([])).await;
    let workspace = fake.workspace_gid();

    let without = api.send(Method::GET, "/webhooks", None).await;
    let all = api
        .send(
            Method::GET,
            &format!("/webhooks?workspace={workspace}"),
            None,
        )
        .await;
    let other = format!("/webhooks?workspace={workspace}&resource=1");
    let other = api.send(Method::GET, &other, None).await;

    assert_eq!(without.status, StatusCode::BAD_REQUEST);
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["data"][0]["gid"], created.body["data"]["gid"]);
    assert_eq!(other.body["data"], json!([]));
}

#[tokio::test]
async fn deleted_webhook_is_gone() {
    let fake = fake_with_project().await;
    let receiver = Receiver::start(Handshake::Echo).await;
    let api = Api::new(&fake);
    let created = api.create_webhook(&receiver.url, json!([])).await;
    let path = format!(
        "/webhooks/{}",
        created.body["data"]["gid"].as_str().unwrap()
    );

    let first = api.send(Method::DELETE, &path, None).await;
    let second = api.send(Method::DELETE, &path, None).await;
    fake.add_task(PROJECT, "Fix login");
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, json!({"data": {}}));
    assert_eq!(second.status, StatusCode::NOT_FOUND);
    assert!(fake.webhooks().is_empty());
    assert!(
        fake.deliveries().is_empty(),
        "no delivery after the webhook is deleted"
    );
}

//! Conformance of the Asana fake with Asana's OpenAPI description, checked by Prism.
//!
//! Each test puts a Prism proxy (`prism proxy --errors`) in front of the fake. Conforming
//! requests must reach the fake and come back unchanged, non-conforming ones must be rejected
//! by Prism with 422 before they reach the fake. The tests need `AUTONUMBER_TEST_PRISM` and
//! fail without it.

use autonumber_tests::asana_fake::{AsanaFake, Route};
use autonumber_tests::prism::Prism;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "test-token";
const PROJECT: &str = "1208300000000001";

/// Prism in front of a fake with one project.
struct Setup {
    fake: AsanaFake,
    prism: Prism,
    http: reqwest::Client,
}

impl Setup {
    async fn start() -> Setup {
        let fake = AsanaFake::start(TOKEN).await.unwrap();
        fake.add_project(PROJECT);
        let prism = Prism::start(fake.url()).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Setup { fake, prism, http }
    }

    /// Sends a request through Prism.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> ApiResponse {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.prism.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        ApiResponse {
            status,
            headers,
            body,
        }
    }

    /// Number of requests on `route` that reached the fake.
    fn reached(&self, route: Route) -> usize {
        let requests = self.fake.requests();
        requests
            .iter()
            .filter(|request| request.route == Some(route))
            .count()
    }
}

#[derive(Debug)]
struct ApiResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl ApiResponse {
    /// Asserts the status and that Prism reported no violation, not even a warning.
    fn assert_passed(&self, expected: StatusCode, request: &str) {
        assert_eq!(self.status, expected, "{request}: {}", self.body);
        let violations = self.headers.get("sl-violations");
        assert!(
            violations.is_none(),
            "{request}: Prism reported {violations:?}"
        );
    }

    fn assert_rejected(&self, request: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}: {}",
            self.body
        );
        assert!(
            self.body["validation"].is_array(),
            "{request}: {}",
            self.body
        );
    }
}

/// Starts a webhook target on 127.0.0.1 that echoes the handshake secret.
async fn start_receiver() -> String {
    let app = axum::Router::new().route(
        "/hook",
        post(|headers: HeaderMap| async move {
            let mut response_headers = HeaderMap::new();
            if let Some(secret) = headers.get("x-hook-secret") {
                response_headers.insert("x-hook-secret", secret.clone());
            }
            (StatusCode::OK, response_headers)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Checks the task body field by field, because Prism 5.14.2 does not check task responses: the
/// task schema fails to compile in its validator and it skips the check.
fn assert_task_shape(data: &Value) {
    assert!(data["gid"].is_string(), "{data}");
    assert!(data["name"].is_string(), "{data}");
    assert!(
        data["parent"].is_null() || data["parent"]["gid"].is_string(),
        "{data}"
    );
    let memberships = data["memberships"]
        .as_array()
        .expect("memberships is an array");
    for membership in memberships {
        assert!(membership["project"]["gid"].is_string(), "{data}");
        assert_eq!(membership["project"]["resource_type"], "project");
    }
}

#[tokio::test]
async fn conforming_requests_pass_through() {
    let setup = Setup::start().await;
    let task = setup.fake.add_task(PROJECT, "Fix login");
    setup.fake.add_task(PROJECT, "Fix logout");
    setup.fake.add_task(PROJECT, "Fix signup");
    let workspace = setup.fake.workspace_gid();

    let user = setup.send(Method::GET, "/users/me", None).await;
    user.assert_passed(StatusCode::OK, "GET /users/me");
    assert_eq!(user.body["data"]["gid"], setup.fake.user_gid());

    let path = format!("/tasks/{task}?opt_fields=name,parent,memberships.project");
    let read = setup.send(Method::GET, &path, None).await;
    read.assert_passed(StatusCode::OK, "GET /tasks/{gid}");
    assert_task_shape(&read.body["data"]);

    let body = json!({"data": {"name": "BUG-1: Fix login"}});
    let update = setup
        .send(Method::PUT, &format!("/tasks/{task}"), Some(body))
        .await;
    update.assert_passed(StatusCode::OK, "PUT /tasks/{gid}");
    assert_eq!(
        setup.fake.task_name(&task).as_deref(),
        Some("BUG-1: Fix login")
    );

    let list = format!("/projects/{PROJECT}/tasks?limit=100");
    let list = setup.send(Method::GET, &list, None).await;
    list.assert_passed(StatusCode::OK, "GET /projects/{gid}/tasks");
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(list.body["next_page"], Value::Null);

    assert_eq!(setup.reached(Route::GetUser), 1);
    assert_eq!(setup.reached(Route::GetTask), 1);
    assert_eq!(setup.reached(Route::UpdateTask), 1);
    assert_eq!(setup.reached(Route::ListProjectTasks), 1);
    assert_webhook_calls_pass(&setup, &workspace).await;
}

/// Creates, lists and deletes a webhook through Prism.
async fn assert_webhook_calls_pass(setup: &Setup, workspace: &str) {
    let target = start_receiver().await;
    let filters = json!([
        {"resource_type": "task", "action": "added"},
        {"resource_type": "task", "action": "changed", "fields": ["name"]},
    ]);
    let body = json!({"data": {"resource": PROJECT, "target": target, "filters": filters}});
    let created = setup.send(Method::POST, "/webhooks", Some(body)).await;
    created.assert_passed(StatusCode::CREATED, "POST /webhooks");
    assert!(created.body["X-Hook-Secret"].is_string());

    let listed = format!("/webhooks?workspace={workspace}&resource={PROJECT}");
    let listed = setup.send(Method::GET, &listed, None).await;
    listed.assert_passed(StatusCode::OK, "GET /webhooks");
    assert_eq!(listed.body["data"][0]["gid"], created.body["data"]["gid"]);

    let gid = created.body["data"]["gid"].as_str().unwrap();
    let deleted = setup
        .send(Method::DELETE, &format!("/webhooks/{gid}"), None)
        .await;
    deleted.assert_passed(StatusCode::OK, "DELETE /webhooks/{gid}");

    assert_eq!(setup.reached(Route::CreateWebhook), 1);
    assert_eq!(setup.reached(Route::ListWebhooks), 1);
    assert_eq!(setup.reached(Route::DeleteWebhook), 1);
    assert!(setup.fake.webhooks().is_empty());
}

#[tokio::test]
async fn project_and_webhook_reads_pass_through() {
    let setup = Setup::start().await;
    let target = start_receiver().await;
    let body = json!({"data": {"resource": PROJECT, "target": target}});
    let created = setup.send(Method::POST, "/webhooks", Some(body)).await;
    let gid = created.body["data"]["gid"].as_str().unwrap().to_owned();

    let project = format!("/projects/{PROJECT}?opt_fields=name,workspace");
    let project = setup.send(Method::GET, &project, None).await;
    let fields = autonumber_shared::asana::WEBHOOK_FIELDS;
    let webhook = format!("/webhooks/{gid}?opt_fields={fields}");
    let webhook = setup.send(Method::GET, &webhook, None).await;

    project.assert_passed(StatusCode::OK, "GET /projects/{gid}");
    assert_eq!(
        project.body["data"]["workspace"]["gid"],
        setup.fake.workspace_gid()
    );
    webhook.assert_passed(StatusCode::OK, "GET /webhooks/{gid}");
    assert_eq!(webhook.body["data"]["gid"], gid.as_str());
    assert_eq!(webhook.body["data"]["active"], true);
    assert_eq!(setup.reached(Route::GetProject), 1);
    assert_eq!(setup.reached(Route::GetWebhook), 1);
}

#[tokio::test]
async fn pagination_passes_through() {
    let setup = Setup::start().await;
    for number in 1..=3 {
        setup.fake.add_task(PROJECT, &format!("Task {number}"));
    }

    let first = format!("/projects/{PROJECT}/tasks?limit=2&opt_fields=name,created_at");
    let first = setup.send(Method::GET, &first, None).await;
    first.assert_passed(StatusCode::OK, "first page");
    let next = first.body["next_page"]["path"].as_str().unwrap().to_owned();
    let second = setup.send(Method::GET, &next, None).await;

    second.assert_passed(StatusCode::OK, "second page");
    assert_eq!(second.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(second.body["next_page"], Value::Null);
}

#[tokio::test]
async fn nonconforming_requests_are_rejected() {
    let setup = Setup::start().await;
    let task = setup.fake.add_task(PROJECT, "Fix login");

    let body = json!({"data": {"name": 123}});
    let update = setup
        .send(Method::PUT, &format!("/tasks/{task}"), Some(body))
        .await;
    let body = json!({"data": {"resource": PROJECT}});
    let create = setup.send(Method::POST, "/webhooks", Some(body)).await;
    let body = json!({"data": {"resource": PROJECT, "target": "not a url"}});
    let bad_target = setup.send(Method::POST, "/webhooks", Some(body)).await;
    let list = format!("/projects/{PROJECT}/tasks?limit=500");
    let list = setup.send(Method::GET, &list, None).await;
    let read = setup
        .send(Method::GET, &format!("/tasks/{task}?opt_fields=nam"), None)
        .await;
    let webhooks = setup.send(Method::GET, "/webhooks", None).await;

    update.assert_rejected("PUT /tasks/{gid} with a number as name");
    create.assert_rejected("POST /webhooks without target");
    bad_target.assert_rejected("POST /webhooks with an invalid target");
    list.assert_rejected("GET /projects/{gid}/tasks with limit 500");
    read.assert_rejected("GET /tasks/{gid} with an unknown opt_field");
    webhooks.assert_rejected("GET /webhooks without workspace");
    assert!(
        setup.fake.requests().is_empty(),
        "Prism forwarded a rejected request"
    );
}

#[tokio::test]
async fn missing_token_is_rejected_by_prism() {
    let setup = Setup::start().await;

    let url = format!("{}/users/me", setup.prism.url());
    let response = setup.http.get(url).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(setup.fake.requests().is_empty());
}

#[tokio::test]
async fn prism_checks_fake_responses() {
    let setup = Setup::start().await;
    let task = setup.fake.add_task(PROJECT, "Fix login");
    let workspace = setup.fake.workspace_gid();
    setup.fake.fail_next(Route::ListWebhooks, 1, 202, None);
    setup.fake.fail_next(Route::GetTask, 1, 429, Some(2));

    let undeclared = format!("/webhooks?workspace={workspace}");
    let undeclared = setup.send(Method::GET, &undeclared, None).await;
    let limited = setup
        .send(Method::GET, &format!("/tasks/{task}"), None)
        .await;

    assert_eq!(
        undeclared.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        undeclared.body
    );
    let problem = undeclared.body["type"].as_str().unwrap_or_default();
    assert!(problem.ends_with("#VIOLATIONS"), "{}", undeclared.body);
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "2");
}

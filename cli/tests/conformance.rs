//! Every request the pipeline makes to Asana, checked against Asana's official OpenAPI
//! description: `serve` and `webhooks create` talk to Prism (`prism proxy --errors`), which
//! returns 422 for a request the spec rejects and forwards the rest to the Asana fake.

mod support;

use autonumber_tests::asana_fake::AsanaFake;
use autonumber_tests::prism::Prism;
use support::{Pipeline, PROJECT, TOKEN};

#[tokio::test]
async fn pipeline_requests_conform_to_asana_spec() {
    let fake = AsanaFake::start(TOKEN).await.unwrap();
    fake.add_project(PROJECT);
    let prism = Prism::start(fake.url()).await.unwrap();
    let prism_url = prism.url().to_string();
    let pipeline = Pipeline::start_via(fake, &prism_url, &[]).await;

    let task = pipeline.fake.add_task(PROJECT, "Through the spec");
    pipeline
        .wait_for_name(&task, "BUG-1: Through the spec")
        .await;
    pipeline.settle(pipeline.delivered()).await;

    let methods: Vec<String> = pipeline
        .fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(methods.iter().any(|m| m == "POST /webhooks"), "{methods:?}");
    assert!(
        methods.iter().any(|m| m == &format!("GET /tasks/{task}")),
        "{methods:?}"
    );
    assert!(
        methods.iter().any(|m| m == &format!("PUT /tasks/{task}")),
        "{methods:?}"
    );
    let log = prism.log();
    assert!(
        !log.contains("Request did not pass the validation"),
        "Prism rejected a request:\n{log}"
    );
    assert!(
        !pipeline.serve.log().contains("HTTP 422"),
        "{}",
        pipeline.serve.log()
    );
}

/// Runs one `autonumber` command against `asana_url`, returning its output.
async fn run(asana_url: &str, data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = support::autonumber(asana_url, data_dir);
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn operator_requests_conform_to_asana_spec() {
    let fake = AsanaFake::start(TOKEN).await.unwrap();
    fake.add_project(PROJECT);
    for i in 0..5 {
        fake.add_task(PROJECT, &format!("Old task {i}"));
    }
    let workspace = fake.workspace_gid();
    let prism = Prism::start(fake.url()).await.unwrap();
    let prism_url = prism.url().to_string();
    let pipeline = Pipeline::start_via(fake, &prism_url, &[]).await;
    let dir = pipeline.dir.path();
    let webhook_gid = pipeline.fake.webhooks()[0].gid.clone();

    let commands: Vec<Vec<&str>> = vec![
        vec!["backfill", "--project", PROJECT, "--prefix", "BUG"],
        vec!["webhooks", "list", "--workspace", &workspace],
        vec!["doctor"],
        vec!["webhooks", "delete", &webhook_gid],
    ];
    for args in commands {
        let output = run(&prism_url, dir, &args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?} failed through Prism:\n{stderr}"
        );
        assert!(
            !stderr.contains("HTTP 422"),
            "{args:?}: Prism rejected a request:\n{stderr}"
        );
    }
    assert!(pipeline.fake.webhooks().is_empty());
    let methods: Vec<String> = pipeline
        .fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    for expected in [
        format!("GET /projects/{PROJECT}/tasks"),
        "GET /webhooks".to_string(),
        "GET /users/me".to_string(),
        format!("DELETE /webhooks/{webhook_gid}"),
    ] {
        assert!(
            methods.contains(&expected),
            "{expected} never reached the fake: {methods:?}"
        );
    }
}

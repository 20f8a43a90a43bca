//! Every request the pipeline makes to Asana, checked against Asana's official OpenAPI
//! description: `serve` and `webhooks create` talk to Prism (`prism proxy --errors`), which
//! answers 422 to a request the spec rejects and forwards the rest to the Asana fake.

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
        !pipeline.serve.log().contains("422"),
        "{}",
        pipeline.serve.log()
    );
}

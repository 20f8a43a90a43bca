//! `SqsQueue` against moto, and against a stub SQS endpoint for the entry failures moto never
//! produces.
//!
//! moto is named by `AUTONUMBER_TEST_SQS_ENDPOINT`, which `scripts/with-services` sets. Each test
//! creates its own queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autonumber_shared::queue::{
    DeadLetter, Queue, QueueError, SqsQueue, ENTRY_RETRIES, ORIGINAL_MESSAGE_ID_ATTRIBUTE,
    PREFIX_ATTRIBUTE, REASON_ATTRIBUTE, RECEIVE_COUNT_ATTRIBUTE, TASK_GID_ATTRIBUTE,
};
use autonumber_shared::Job;
use autonumber_tests::moto::{self, FifoQueues};
use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

fn job(task_gid: &str, created_at: &str) -> Job {
    Job {
        prefix: "BUG".into(),
        counter_key: "BUG".into(),
        task_gid: task_gid.into(),
        action: "changed".into(),
        field: Some("name".into()),
        created_at: created_at.into(),
    }
}

/// Records the number of entries of every `SendMessageBatch` call.
#[derive(Debug, Default, Clone)]
struct BatchSizes(Arc<Mutex<Vec<usize>>>);

impl Intercept for BatchSizes {
    fn name(&self) -> &'static str {
        "BatchSizes"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<SendMessageBatchInput>() {
            self.0.lock().unwrap().push(input.entries().len());
        }
        Ok(())
    }
}

/// Receives and deletes messages until `count` arrived or 20 receives came back empty, then
/// checks with one more receive that no further message is waiting.
async fn drain(queue: &SqsQueue, count: usize) -> Vec<autonumber_shared::queue::ReceivedMessage> {
    let mut received = Vec::new();
    let mut empty_receives = 0;
    while received.len() < count && empty_receives < 20 {
        let batch = queue
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(30)))
            .await
            .expect("receive from moto");
        if batch.is_empty() {
            empty_receives += 1;
        }
        for message in batch {
            queue
                .delete(&message.receipt_handle)
                .await
                .expect("delete from moto");
            received.push(message);
        }
    }
    let extra = queue
        .receive(10, Duration::from_secs(1), None)
        .await
        .expect("receive from moto");
    assert!(extra.is_empty(), "more than {count} messages: {extra:?}");
    received
}

#[tokio::test]
async fn enqueue_sends_25_jobs_in_three_batches() {
    let sizes = BatchSizes::default();
    let client =
        aws_sdk_sqs::Client::from_conf(moto::sqs_config().interceptor(sizes.clone()).build());
    let queues = FifoQueues::create(&client, "enqueue25", 5, 30)
        .await
        .unwrap();
    let queue = SqsQueue::new(client, &queues.queue_url);
    // Five tasks with five events each, interleaved.
    let jobs: Vec<Job> = (0..25)
        .map(|i| {
            job(
                &format!("12000000{}", i % 5),
                &format!("2026-03-02T10:12:{i:02}.000Z"),
            )
        })
        .collect();

    queue.enqueue(&jobs).await.expect("enqueue accepted");

    assert_eq!(*sizes.0.lock().unwrap(), vec![10, 10, 5]);
    let received = drain(&queue, jobs.len()).await;
    assert_eq!(received.len(), 25);
    let by_body: HashMap<String, &Job> = jobs.iter().map(|job| (job.to_body(), job)).collect();
    for message in &received {
        let job = by_body
            .get(&message.body)
            .expect("body is one of the enqueued jobs");
        assert_eq!(message.group_id.as_deref(), Some(job.task_gid.as_str()));
        assert_eq!(message.dedup_id.as_deref(), Some(job.dedup_id().as_str()));
    }
    for task in 0..5 {
        let gid = format!("12000000{task}");
        let sent: Vec<&str> = jobs
            .iter()
            .filter(|j| j.task_gid == gid)
            .map(|j| j.created_at.as_str())
            .collect();
        let arrived: Vec<String> = received
            .iter()
            .filter(|m| m.group_id.as_deref() == Some(gid.as_str()))
            .map(|m| Job::from_body(&m.body).unwrap().created_at)
            .collect();
        assert_eq!(arrived, sent, "order of task {gid}");
    }
}

#[tokio::test]
async fn enqueue_drops_duplicates_by_dedup_id() {
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "dedup", 5, 30).await.unwrap();
    let queue = SqsQueue::new(client, &queues.queue_url);
    let first = job("1300", "2026-03-02T10:00:00.000Z");
    let second = job("1301", "2026-03-02T10:00:00.000Z");

    queue
        .enqueue(&[first.clone(), second.clone(), first.clone()])
        .await
        .unwrap();
    queue.enqueue(std::slice::from_ref(&second)).await.unwrap();

    let received = drain(&queue, 2).await;
    let mut bodies: Vec<String> = received.into_iter().map(|m| m.body).collect();
    bodies.sort();
    let mut expected = vec![first.to_body(), second.to_body()];
    expected.sort();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn enqueue_to_missing_queue_fails() {
    let missing = format!(
        "{}/123456789012/{}.fifo",
        moto::sqs_endpoint(),
        moto::unique_name("missing")
    );
    let queue = SqsQueue::new(moto::sqs_client(), &missing);

    let error = queue.enqueue(&[job("1400", "t")]).await.unwrap_err();

    assert!(matches!(error, QueueError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn enqueue_to_closed_port_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let config = moto::sqs_config().endpoint_url(&endpoint).build();
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        &format!("{endpoint}/1/q.fifo"),
    );

    let error = queue.enqueue(&[job("1500", "t")]).await.unwrap_err();

    assert!(matches!(error, QueueError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn empty_enqueue_makes_no_call() {
    let sizes = BatchSizes::default();
    let client =
        aws_sdk_sqs::Client::from_conf(moto::sqs_config().interceptor(sizes.clone()).build());
    let queue = SqsQueue::new(client, "http://127.0.0.1:9/unused.fifo");

    queue.enqueue(&[]).await.unwrap();

    assert!(sizes.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dead_letter_carries_reason_and_ids() {
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "deadletter", 5, 30)
        .await
        .unwrap();
    let dlq = SqsQueue::new(client, &queues.dlq_url);
    let body = job("1600", "t").to_body();

    let letter = DeadLetter {
        body: &body,
        group_id: "1600",
        dedup_id: "original-id",
        reason: "permanent failure: Asana rejected the request (HTTP 403): forbidden",
        original_message_id: "original-id",
        receive_count: Some(3),
        task_gid: Some("1600"),
        prefix: Some("BUG"),
    };
    dlq.send_dead_letter(&letter).await.unwrap();
    dlq.send_dead_letter(&letter).await.unwrap();

    // The second send has the same deduplication id, so SQS drops it, and drain checks that no
    // second message arrives.
    let received = drain(&dlq, 1).await;
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.body, body);
    assert_eq!(message.group_id.as_deref(), Some("1600"));
    assert_eq!(message.dedup_id.as_deref(), Some("original-id"));
    let attribute = |name: &str| message.attributes.get(name).map(String::as_str);
    assert_eq!(attribute(REASON_ATTRIBUTE), Some(letter.reason));
    assert_eq!(
        attribute(ORIGINAL_MESSAGE_ID_ATTRIBUTE),
        Some("original-id")
    );
    assert_eq!(attribute(RECEIVE_COUNT_ATTRIBUTE), Some("3"));
    assert_eq!(attribute(TASK_GID_ATTRIBUTE), Some("1600"));
    assert_eq!(attribute(PREFIX_ATTRIBUTE), Some("BUG"));
}

#[tokio::test]
async fn dead_letter_without_job_omits_task_attributes() {
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "deadletter-raw", 5, 30)
        .await
        .unwrap();
    let dlq = SqsQueue::new(client, &queues.dlq_url);
    let letter = DeadLetter {
        body: "not a job",
        group_id: "group",
        dedup_id: "id-1",
        reason: "message body is not a job",
        original_message_id: "id-1",
        receive_count: None,
        task_gid: None,
        prefix: None,
    };

    dlq.send_dead_letter(&letter).await.unwrap();

    let received = drain(&dlq, 1).await;
    let names: Vec<&str> = received[0].attributes.keys().map(String::as_str).collect();
    assert_eq!(names, vec![ORIGINAL_MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE]);
}

#[tokio::test]
async fn counts_follow_receive_and_purge() {
    let client = moto::sqs_client();
    let queues = FifoQueues::create(&client, "counts", 5, 30).await.unwrap();
    let queue = SqsQueue::new(client, &queues.queue_url);
    let jobs = [job("1700", "a"), job("1701", "a"), job("1702", "a")];
    queue.enqueue(&jobs).await.unwrap();

    let before = queue.message_counts().await.unwrap();
    let received = queue.receive(1, Duration::ZERO, None).await.unwrap();
    let during = queue.message_counts().await.unwrap();
    queue.purge().await.unwrap();
    let after = queue.message_counts().await.unwrap();

    assert_eq!((before.visible, before.in_flight), (3, 0));
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].receive_count, 1);
    assert_eq!((during.visible, during.in_flight), (2, 1));
    assert_eq!(after.visible, 0);
}

/// The behaviour of the stub endpoint. `rejections[n]` lists the entry ids that call `n` of
/// `SendMessageBatch` rejects, as `(id, sender_fault)`. Later calls reject the last list's ids.
#[derive(Clone)]
struct Stub {
    rejections: Arc<Vec<Vec<(&'static str, bool)>>>,
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

/// Starts a stub SQS endpoint that speaks the JSON protocol of `SendMessageBatch`.
async fn start_stub(rejections: Vec<Vec<(&'static str, bool)>>) -> (String, Stub) {
    let stub = Stub {
        rejections: Arc::new(rejections),
        calls: Arc::default(),
    };
    let app = Router::new()
        .route("/", post(send_message_batch))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, stub)
}

async fn send_message_batch(
    axum::extract::State(stub): axum::extract::State<Stub>,
    headers: HeaderMap,
    body: String,
) -> ([(&'static str, &'static str); 1], String) {
    assert_eq!(
        headers.get("x-amz-target").unwrap(),
        "AmazonSQS.SendMessageBatch"
    );
    let request: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<String> = request["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["Id"].as_str().unwrap().to_owned())
        .collect();
    let call = {
        let mut calls = stub.calls.lock().unwrap();
        calls.push(ids.clone());
        calls.len() - 1
    };
    let rejected = stub
        .rejections
        .get(call)
        .or(stub.rejections.last())
        .cloned()
        .unwrap_or_default();

    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        match rejected.iter().find(|(rejected_id, _)| *rejected_id == id) {
            Some((_, sender_fault)) => failed.push(json!({
                "Id": id, "SenderFault": sender_fault, "Code": "InternalError", "Message": "stub rejection"
            })),
            None => successful.push(json!({
                "Id": id, "MessageId": format!("message-{id}"), "MD5OfMessageBody": "0", "SequenceNumber": "1"
            })),
        }
    }
    let answer = json!({ "Successful": successful, "Failed": failed });
    (
        [("content-type", "application/x-amz-json-1.0")],
        answer.to_string(),
    )
}

fn stub_queue(endpoint: &str) -> SqsQueue {
    let config = moto::sqs_config().endpoint_url(endpoint).build();
    SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(config),
        &format!("{endpoint}/1/stub.fifo"),
    )
}

#[tokio::test]
async fn rejected_entries_are_sent_again() {
    let (endpoint, stub) = start_stub(vec![vec![("1", false)], vec![]]).await;
    let jobs = [job("1800", "a"), job("1801", "a"), job("1802", "a")];

    stub_queue(&endpoint)
        .enqueue(&jobs)
        .await
        .expect("accepted on the second call");

    let calls = stub.calls.lock().unwrap().clone();
    assert_eq!(calls, vec![vec!["0", "1", "2"], vec!["1"]]);
}

#[tokio::test]
async fn entries_rejected_every_time_are_not_accepted() {
    let (endpoint, stub) = start_stub(vec![vec![("0", false)]]).await;
    let jobs = [job("1900", "a"), job("1901", "a"), job("1902", "a")];

    let error = stub_queue(&endpoint).enqueue(&jobs).await.unwrap_err();

    assert!(
        matches!(
            error,
            QueueError::NotAccepted {
                failed: 1,
                total: 3,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(stub.calls.lock().unwrap().len(), 1 + ENTRY_RETRIES);
}

#[tokio::test]
async fn sender_fault_entries_are_not_sent_again() {
    let (endpoint, stub) = start_stub(vec![vec![("2", true)]]).await;
    let jobs = [job("2000", "a"), job("2001", "a"), job("2002", "a")];

    let error = stub_queue(&endpoint).enqueue(&jobs).await.unwrap_err();

    assert!(
        matches!(error, QueueError::NotAccepted { failed: 1, .. }),
        "{error}"
    );
    assert_eq!(stub.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn rejection_in_second_batch_stops_enqueue() {
    let (endpoint, stub) = start_stub(vec![vec![], vec![("0", true)]]).await;
    let jobs: Vec<Job> = (0..15).map(|i| job(&format!("21{i:02}"), "a")).collect();

    let error = stub_queue(&endpoint).enqueue(&jobs).await.unwrap_err();

    assert!(
        matches!(
            error,
            QueueError::NotAccepted {
                failed: 1,
                total: 5,
                ..
            }
        ),
        "{error}"
    );
    let sizes: Vec<usize> = stub.calls.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 5]);
}

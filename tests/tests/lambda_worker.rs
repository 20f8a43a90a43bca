//! The worker's batch core (`BatchWorker`) over SQS FIFO batches from moto, with the Asana fake,
//! the Upstash stand-in as store and the SQS event JSON that Lambda sends.
//!
//! moto and the Upstash stand-in are named by `AUTONUMBER_TEST_SQS_ENDPOINT`,
//! `AUTONUMBER_TEST_UPSTASH_URL` and `AUTONUMBER_TEST_UPSTASH_TOKEN`, which
//! `scripts/with-services` sets. Each test makes its own queues, prefix and Asana fake.

use autonumber_tests::services::{env_var, unique_prefix};
use std::sync::Arc;
use std::time::Duration;

use autonumber_shared::asana::{AsanaClient, RateLimits};
use autonumber_shared::batch::{BatchMessage, BatchWorker};
use autonumber_shared::lambda::batch_messages;
use autonumber_shared::naming::{NameFormat, DEFAULT_NAME_FORMAT};
use autonumber_shared::queue::{
    Queue, ReceivedMessage, SqsQueue, ORIGINAL_MESSAGE_ID_ATTRIBUTE, PREFIX_ATTRIBUTE,
    REASON_ATTRIBUTE, RECEIVE_COUNT_ATTRIBUTE, TASK_GID_ATTRIBUTE,
};
use autonumber_shared::store::{Store, UpstashStore};
use autonumber_shared::worker::RetryPolicy;
use autonumber_shared::{Job, Worker};
use autonumber_tests::asana_fake::{AsanaFake, Route};
use autonumber_tests::moto::{self, EventSource, FifoQueues, ReceivedEvent};
use aws_lambda_events::event::sqs::SqsEvent;
use tokio::time::Instant;

const PROJECT: &str = "1209000000000001";

/// Returns a prefix of `[A-Z][A-Z0-9]{0,15}` that no other test of this run uses.
/// Everything one test needs: the fake, the store, the queues and a batch worker.
struct Setup {
    fake: AsanaFake,
    store: Arc<UpstashStore>,
    queues: FifoQueues,
    work_queue: SqsQueue,
    dlq: SqsQueue,
    events: EventSource,
    prefix: String,
}

impl Setup {
    async fn start(label: &str, max_receive_count: u32) -> Setup {
        let fake = AsanaFake::start("asana-token")
            .await
            .expect("Asana fake starts");
        fake.add_project(PROJECT);
        let store = Arc::new(UpstashStore::new(
            &env_var("AUTONUMBER_TEST_UPSTASH_URL"),
            &env_var("AUTONUMBER_TEST_UPSTASH_TOKEN"),
            reqwest::Client::new(),
        ));
        let client = moto::sqs_client();
        let queues = FifoQueues::create(&client, label, max_receive_count, 30)
            .await
            .unwrap();
        Setup {
            fake,
            store,
            work_queue: SqsQueue::new(client.clone(), &queues.queue_url),
            dlq: SqsQueue::new(client.clone(), &queues.dlq_url),
            events: EventSource::new(client, &queues),
            queues,
            prefix: unique_prefix('W'),
        }
    }

    /// Builds a batch worker that makes one attempt per call, so an injected failure fails the message.
    fn batch_worker(&self) -> BatchWorker {
        let asana = AsanaClient::new(
            reqwest::Client::new(),
            self.fake.url(),
            self.fake.token(),
            RateLimits::default(),
        );
        let format = NameFormat::parse(DEFAULT_NAME_FORMAT).unwrap();
        let retry = RetryPolicy {
            max_attempts: 1,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        };
        let worker = Worker::new(asana, self.store.clone(), format).with_retry(retry);
        BatchWorker::new(worker, self.dlq.clone())
    }

    fn job(&self, task_gid: &str, action: &str) -> Job {
        Job {
            prefix: self.prefix.clone(),
            counter_key: self.prefix.clone(),
            task_gid: task_gid.into(),
            action: action.into(),
            field: (action == "changed").then(|| "name".into()),
            created_at: "2026-03-02T10:12:25.274Z".into(),
        }
    }

    /// Receives one batch and converts it as the worker Lambda does.
    async fn receive(&self, visibility_timeout: Option<i32>) -> (ReceivedEvent, Vec<BatchMessage>) {
        let received = self.events.receive(visibility_timeout).await.unwrap();
        let event: SqsEvent = serde_json::from_value(received.event.clone()).unwrap();
        (received, batch_messages(event))
    }

    async fn dead_letters(&self, count: usize) -> Vec<ReceivedMessage> {
        let mut letters = Vec::new();
        for _ in 0..10 {
            if letters.len() >= count {
                break;
            }
            letters.extend(
                self.dlq
                    .receive(10, Duration::from_secs(1), None)
                    .await
                    .unwrap(),
            );
        }
        letters
    }

    fn get_task_requests(&self, gid: &str) -> usize {
        let path = format!("/tasks/{gid}");
        let requests = self.fake.requests();
        requests
            .iter()
            .filter(|r| r.route == Some(Route::GetTask) && r.path == path)
            .count()
    }
}

#[tokio::test]
async fn failure_holds_back_rest_of_group() {
    let setup = Setup::start("holdback", 5).await;
    let task_a = setup.fake.add_task(PROJECT, "Task A");
    let task_b = setup.fake.add_task(PROJECT, "Task B");
    let jobs = [
        setup.job(&task_a, "added"),
        setup.job(&task_b, "added"),
        setup.job(&task_a, "changed"),
        setup.job(&task_b, "changed"),
    ];
    setup.work_queue.enqueue(&jobs).await.unwrap();
    let (_, messages) = setup.receive(None).await;
    assert_eq!(messages.len(), 4, "one batch with all four messages");
    setup.fake.fail_next(Route::GetTask, 1, 500, None);

    // One group at a time, in the order of their first messages, so task A meets the 500.
    let failed = setup
        .batch_worker()
        .with_max_concurrent_groups(1)
        .process(messages.clone(), None)
        .await;

    assert_eq!(
        failed,
        vec![
            messages[0].message_id.clone(),
            messages[2].message_id.clone()
        ]
    );
    assert_eq!(
        setup.get_task_requests(&task_a),
        1,
        "the second message of A was not processed"
    );
    assert_eq!(setup.fake.task_name(&task_a).unwrap(), "Task A");
    assert_eq!(
        setup.fake.task_name(&task_b).unwrap(),
        format!("{}-1: Task B", setup.prefix)
    );
    assert_eq!(setup.dlq.message_counts().await.unwrap().visible, 0);
}

#[tokio::test]
async fn concurrent_groups_isolate_a_failure() {
    let setup = Setup::start("isolate", 5).await;
    let tasks: Vec<String> = (0..3)
        .map(|i| setup.fake.add_task(PROJECT, &format!("Task {i}")))
        .collect();
    let mut jobs: Vec<Job> = tasks.iter().map(|gid| setup.job(gid, "added")).collect();
    jobs.extend(tasks.iter().map(|gid| setup.job(gid, "changed")));
    setup.work_queue.enqueue(&jobs).await.unwrap();
    let (_, messages) = setup.receive(None).await;
    assert_eq!(messages.len(), 6);
    setup.fake.fail_next(Route::GetTask, 1, 503, None);

    let failed = setup.batch_worker().process(messages.clone(), None).await;

    assert_eq!(failed.len(), 2, "one group failed: {failed:?}");
    let failed_group = &messages
        .iter()
        .find(|m| m.message_id == failed[0])
        .unwrap()
        .group_id;
    let group_ids: Vec<String> = messages
        .iter()
        .filter(|m| &m.group_id == failed_group)
        .map(|m| m.message_id.clone())
        .collect();
    assert_eq!(
        failed, group_ids,
        "both messages of the failed group, in batch order"
    );
    let mut numbers = Vec::new();
    for gid in &tasks {
        let name = setup.fake.task_name(gid).unwrap();
        if gid == failed_group {
            assert!(!name.starts_with(&setup.prefix), "{name}");
        } else {
            numbers.push(
                setup
                    .store
                    .task_number(&setup.prefix, gid)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    numbers.sort();
    assert_eq!(numbers, vec![1, 2]);
}

#[tokio::test]
async fn batch_numbers_every_task_once() {
    let setup = Setup::start("numbers", 5).await;
    let tasks: Vec<String> = (0..4)
        .map(|i| setup.fake.add_task(PROJECT, &format!("Task {i}")))
        .collect();
    let mut jobs: Vec<Job> = tasks.iter().map(|gid| setup.job(gid, "added")).collect();
    jobs.extend(tasks.iter().map(|gid| setup.job(gid, "changed")));
    setup.work_queue.enqueue(&jobs).await.unwrap();
    let (received, messages) = setup.receive(None).await;
    assert_eq!(messages.len(), 8);

    let failed = setup.batch_worker().process(messages, None).await;
    setup.events.settle(&received, &failed).await.unwrap();

    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(setup.fake.renames().len(), 4, "each task renamed once");
    let mut numbers = Vec::new();
    for gid in &tasks {
        let number = setup
            .store
            .task_number(&setup.prefix, gid)
            .await
            .unwrap()
            .unwrap();
        let name = setup.fake.task_name(gid).unwrap();
        assert!(
            name.starts_with(&format!("{}-{number}: Task ", setup.prefix)),
            "{name}"
        );
        numbers.push(number);
    }
    numbers.sort();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
    let counts = setup.work_queue.message_counts().await.unwrap();
    assert_eq!((counts.visible, counts.in_flight), (0, 0));
}

#[tokio::test]
async fn non_job_body_is_dead_lettered() {
    let setup = Setup::start("poisonbody", 5).await;
    setup
        .work_queue
        .send_message("not a job", "group-1", "poison-1")
        .await
        .unwrap();
    let (received, messages) = setup.receive(None).await;
    assert_eq!(messages.len(), 1);

    let failed = setup.batch_worker().process(messages.clone(), None).await;
    setup.events.settle(&received, &failed).await.unwrap();

    assert!(
        failed.is_empty(),
        "a dead-lettered message counts as handled"
    );
    let letters = setup.dead_letters(1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.body, "not a job");
    assert_eq!(letter.group_id.as_deref(), Some("group-1"));
    let reason = &letter.attributes[REASON_ATTRIBUTE];
    assert!(reason.starts_with("message body is not a job"), "{reason}");
    assert_eq!(
        letter.attributes[ORIGINAL_MESSAGE_ID_ATTRIBUTE],
        messages[0].message_id
    );
    assert_eq!(letter.attributes[RECEIVE_COUNT_ATTRIBUTE], "1");
    assert!(!letter.attributes.contains_key(TASK_GID_ATTRIBUTE));
    assert_eq!(setup.work_queue.message_counts().await.unwrap().visible, 0);
}

#[tokio::test]
async fn forbidden_rename_is_dead_lettered() {
    let setup = Setup::start("forbidden", 5).await;
    let task = setup.fake.add_task(PROJECT, "Locked task");
    let job = setup.job(&task, "added");
    setup
        .work_queue
        .enqueue(std::slice::from_ref(&job))
        .await
        .unwrap();
    let (_, messages) = setup.receive(None).await;
    setup.fake.fail_next(Route::UpdateTask, 1, 403, None);

    let failed = setup.batch_worker().process(messages, None).await;

    assert!(failed.is_empty(), "{failed:?}");
    let letters = setup.dead_letters(1).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.body, job.to_body());
    assert_eq!(letter.attributes[TASK_GID_ATTRIBUTE], task);
    assert_eq!(letter.attributes[PREFIX_ATTRIBUTE], setup.prefix);
    assert!(
        letter.attributes[REASON_ATTRIBUTE].contains("403"),
        "{:?}",
        letter.attributes
    );
    assert_eq!(setup.fake.task_name(&task).unwrap(), "Locked task");
    let number = setup.store.task_number(&setup.prefix, &task).await.unwrap();
    assert_eq!(number, Some(1), "the number stays recorded for a replay");
}

#[tokio::test]
async fn failed_dead_letter_send_reports_failed() {
    let setup = Setup::start("dlqmissing", 5).await;
    setup
        .work_queue
        .send_message("not a job", "group-1", "poison-2")
        .await
        .unwrap();
    let (_, messages) = setup.receive(None).await;
    let missing = format!(
        "{}/123456789012/{}.fifo",
        moto::sqs_endpoint(),
        moto::unique_name("gone")
    );
    let asana = AsanaClient::new(
        reqwest::Client::new(),
        setup.fake.url(),
        setup.fake.token(),
        RateLimits::default(),
    );
    let worker = Worker::new(
        asana,
        setup.store.clone(),
        NameFormat::parse(DEFAULT_NAME_FORMAT).unwrap(),
    );
    let batch_worker = BatchWorker::new(worker, SqsQueue::new(moto::sqs_client(), &missing));

    let failed = batch_worker.process(messages.clone(), None).await;

    assert_eq!(failed, vec![messages[0].message_id.clone()]);
}

#[tokio::test]
async fn transient_failure_redriven_to_dlq() {
    let setup = Setup::start("redrive", 2).await;
    let task = setup.fake.add_task(PROJECT, "Flaky task");
    let job = setup.job(&task, "added");
    setup
        .work_queue
        .enqueue(std::slice::from_ref(&job))
        .await
        .unwrap();
    setup.fake.fail_next(Route::GetTask, 10, 500, None);
    let batch_worker = setup.batch_worker();

    // Visibility timeout 0 makes a failed message visible again at once. moto moves it to the
    // dead-letter queue on the receive after its second.
    let mut deliveries = 0;
    for _ in 0..5 {
        let (received, messages) = setup.receive(Some(0)).await;
        if messages.is_empty() {
            break;
        }
        deliveries += 1;
        let failed = batch_worker.process(messages.clone(), None).await;
        assert_eq!(
            failed,
            vec![messages[0].message_id.clone()],
            "delivery {deliveries}"
        );
        setup.events.settle(&received, &failed).await.unwrap();
    }

    assert_eq!(deliveries, 2);
    let letters = setup.dead_letters(1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, job.to_body());
    assert_eq!(setup.get_task_requests(&task), 2);
    assert_eq!(setup.work_queue.message_counts().await.unwrap().visible, 0);
    assert_eq!(setup.queues.dlq_url, setup.dlq.queue_url());
}

#[tokio::test]
async fn passed_deadline_fails_batch_untouched() {
    let setup = Setup::start("deadline", 5).await;
    let task = setup.fake.add_task(PROJECT, "Late task");
    setup
        .work_queue
        .enqueue(&[setup.job(&task, "added")])
        .await
        .unwrap();
    let (_, messages) = setup.receive(None).await;

    let failed = setup
        .batch_worker()
        .process(messages.clone(), Some(Instant::now()))
        .await;

    assert_eq!(failed, vec![messages[0].message_id.clone()]);
    assert!(
        setup.fake.requests().is_empty(),
        "no Asana call after the deadline"
    );
}

#[tokio::test]
async fn deadline_cuts_off_slow_asana() {
    let setup = Setup::start("slowasana", 5).await;
    let task = setup.fake.add_task(PROJECT, "Slow task");
    setup
        .work_queue
        .enqueue(&[setup.job(&task, "added")])
        .await
        .unwrap();
    let (_, messages) = setup.receive(None).await;
    setup.fake.set_delay(Route::GetTask, Duration::from_secs(5));
    let started = Instant::now();

    let deadline = started + Duration::from_millis(300);
    let failed = setup
        .batch_worker()
        .process(messages.clone(), Some(deadline))
        .await;

    assert_eq!(failed, vec![messages[0].message_id.clone()]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(setup.fake.task_name(&task).unwrap(), "Slow task");
}

//! SQS events in and out of [`BatchWorker::process`](crate::batch::BatchWorker::process).
//!
//! The event source mapping deletes every message of the batch that the response does not
//! name in `batchItemFailures`, so a message counts as handled unless its id comes back.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, warn};

use crate::batch::BatchMessage;

/// Converts the records of an SQS event, in order.
///
/// A record without a message id cannot be named in the response, so it is logged and skipped;
/// the event source mapping then deletes it. SQS FIFO always sets both ids, so this only
/// happens with a malformed event. A record without a message group id (a standard queue) is
/// processed as a group of its own.
pub fn batch_messages(event: SqsEvent) -> Vec<BatchMessage> {
    let mut messages = Vec::with_capacity(event.records.len());
    for mut record in event.records {
        let Some(message_id) = record.message_id.filter(|id| !id.is_empty()) else {
            error!(
                event_source_arn = record.event_source_arn.as_deref().unwrap_or_default(),
                "SQS record without a message id; it cannot be reported failed and is skipped"
            );
            continue;
        };
        let group_id = match record.attributes.remove("MessageGroupId") {
            Some(group_id) => group_id,
            None => {
                warn!(
                    message_id,
                    "SQS record without a message group id; processed on its own"
                );
                message_id.clone()
            }
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok());
        messages.push(BatchMessage {
            message_id,
            group_id,
            body: record.body.unwrap_or_default(),
            receive_count,
        });
    }
    messages
}

/// Builds the response that names the failed messages.
pub fn batch_response(failed_message_ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed_message_ids);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(message_id: Option<&str>, group_id: Option<&str>, body: &str) -> serde_json::Value {
        let mut attributes = json!({
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1772446345000",
            "SequenceNumber": "18849496460467696128",
            "MessageDeduplicationId": "dedup",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1772446345001"
        });
        if let Some(group_id) = group_id {
            attributes["MessageGroupId"] = json!(group_id);
        }
        let mut record = json!({
            "receiptHandle": "handle",
            "body": body,
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work.fifo",
            "awsRegion": "us-east-1"
        });
        if let Some(message_id) = message_id {
            record["messageId"] = json!(message_id);
        }
        record
    }

    fn event(records: Vec<serde_json::Value>) -> SqsEvent {
        serde_json::from_value(json!({ "Records": records })).expect("a valid SQS event")
    }

    #[test]
    fn records_keep_order_and_fields() {
        let event = event(vec![
            record(Some("m1"), Some("g1"), "a"),
            record(Some("m2"), Some("g2"), "b"),
        ]);

        let messages = batch_messages(event);

        let expected = vec![
            BatchMessage {
                message_id: "m1".into(),
                group_id: "g1".into(),
                body: "a".into(),
                receive_count: Some(2),
            },
            BatchMessage {
                message_id: "m2".into(),
                group_id: "g2".into(),
                body: "b".into(),
                receive_count: Some(2),
            },
        ];
        assert_eq!(messages, expected);
    }

    #[test]
    fn record_without_message_id_is_skipped() {
        let event = event(vec![
            record(None, Some("g1"), "a"),
            record(Some("m2"), Some("g1"), "b"),
        ]);
        let ids: Vec<String> = batch_messages(event)
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(ids, vec!["m2"]);
    }

    #[test]
    fn record_without_group_id_is_its_own_group() {
        let messages = batch_messages(event(vec![record(Some("m1"), None, "a")]));
        assert_eq!(messages[0].group_id, "m1");
    }

    #[test]
    fn response_names_failed_ids() {
        let response = batch_response(vec!["m2".into(), "m3".into()]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            json!({ "batchItemFailures": [{ "itemIdentifier": "m2" }, { "itemIdentifier": "m3" }] })
        );
    }
}

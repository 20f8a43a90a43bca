//! One-line error messages for failed SQS calls of [`SqsDeadLetters`](super::SqsDeadLetters):
//! the operation, the queue URL, SQS's error code and message, and the variables to check.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::queue::QueueError;

/// The variable that sets the work queue's URL, named in error messages.
pub(super) const QUEUE_URL_VARIABLE: &str = "AUTONUMBER_QUEUE_URL";

/// The variable that sets the dead-letter queue's URL, named in error messages.
pub(super) const DLQ_URL_VARIABLE: &str = "AUTONUMBER_DLQ_URL";

/// Maps a failed SQS call on `url` to one line: the operation, the URL, the error code and
/// message SQS returned (or the causes of a call that got no response) and what to check.
pub(super) fn failed<E, R>(
    operation: &str,
    url: &str,
    variable: &str,
    error: SdkError<E, R>,
) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match error.code() {
        Some(code) => format!("{code} ({})", error.message().unwrap_or("no message")),
        None => causes(&error),
    };
    QueueError::Unavailable(format!(
        "SQS {operation} on {url} failed: {detail}. {}",
        fix(variable)
    ))
}

/// Adds the URL and what to check to an error of [`SqsQueue`](crate::queue::SqsQueue), whose messages name neither.
pub(super) fn locate(url: &str, variable: &str, error: QueueError) -> QueueError {
    match error {
        QueueError::Unavailable(detail) => QueueError::Unavailable(format!(
            "{} (queue {url}). {}",
            detail.trim_end_matches('.'),
            fix(variable)
        )),
        other => other,
    }
}

fn fix(variable: &str) -> String {
    format!("Check {variable}, AWS_ENDPOINT_URL_SQS (or AWS_ENDPOINT_URL) and the region")
}

/// Joins the messages of an error and its sources, without the SDK's debug dump of the raw
/// response that `DisplayErrorContext` appends.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

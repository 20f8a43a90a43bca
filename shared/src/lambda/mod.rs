//! The glue between the Lambda event types and the core, kept out of the binaries so that tests
//! call it without the Lambda runtime.
//!
//! - [`function_url`]: a Lambda function URL event to an [`IngestRequest`](crate::IngestRequest)
//!   and the [`IngestResponse`](crate::IngestResponse) back.
//! - [`sqs_event`]: an SQS event to a [`BatchMessage`](crate::batch::BatchMessage) list and the
//!   failed message ids back.
//! - [`logging`]: the `tracing` setup both functions share.

pub mod function_url;
pub mod logging;
pub mod sqs_event;

pub use function_url::{handle_function_url, parse_function_url, FunctionUrlError};
pub use logging::init_logging;
pub use sqs_event::{batch_messages, batch_response};

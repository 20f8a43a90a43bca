//! Test support for asana-autonumber: stand-ins for the services the pipeline talks to.
//!
//! Layout:
//! - [`asana_fake`]: a stateful, in-process fake of the Asana REST API that performs webhook
//!   handshakes and sends signed event deliveries.
//! - [`lambda_runtime_api`]: an emulator of the Lambda Runtime API, to run the function
//!   binaries outside Lambda.
//! - [`logs`]: captures a test's `tracing` output.
//! - [`moto`]: SQS FIFO queues in the moto emulator.
//! - [`services`]: the variables of the test services and unique names per test.
//! - [`prism`]: a Prism proxy that checks requests and responses against Asana's OpenAPI
//!   description.
//!
//! The integration tests live in `tests/*.rs`.

pub mod asana_fake;
pub mod lambda_runtime_api;
pub mod logs;
pub mod moto;
pub mod prism;
pub mod services;

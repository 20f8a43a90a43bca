//! Core of asana-autonumber: gives Asana tasks stable ticket numbers such as `BUG-42: Fix login`.
//!
//! Asana calls a webhook for each change in a project. The receiver ([`ingest`]) verifies the
//! signature, keeps the events that can need a number and enqueues one [`Job`] per task; it
//! returns 2xx only after the queue accepted them. The [`worker`] re-reads each task, gets its
//! number from the [`store`] in one atomic step and renames it through the [`asana`] client.
//!
//! # Layout
//! - [`signature`], [`route`], [`event`]: verifying, routing and selecting webhook deliveries.
//! - [`ingest`]: the request-to-response function behind the local route and the ingest Lambda.
//! - [`worker`]: the per-message function behind the local worker pool and the worker Lambda.
//! - [`store`]: secrets, registrations, counters and task numbers (SQLite or Upstash REST).
//! - [`queue`]: the durable FIFO queue between the two (SQLite or SQS).
//! - [`dlq`]: listing, replaying and purging dead-lettered messages, for the operator commands.
//! - [`naming`]: the name rule and the name format.
//! - [`config`]: configuration from the environment, parsed once.
//! - [`batch`]: the ordered batch wrapper around the worker, for SQS FIFO batches.
//! - [`lambda`]: Lambda function URL and SQS events in and out of the core.
//! - [`local`]: the one-machine pipeline of `autonumber serve`.

pub mod asana;
pub mod batch;
pub mod config;
pub mod db;
pub mod dlq;
pub mod error;
pub mod event;
pub mod ingest;
pub mod job;
pub mod lambda;
pub mod local;
pub mod naming;
pub mod queue;
pub mod route;
pub mod signature;
pub mod store;
pub mod worker;

pub use async_trait::async_trait;
pub use error::IngestError;
pub use ingest::{Ingest, IngestRequest, IngestResponse};
pub use job::Job;
pub use worker::{Outcome, ProcessError, Worker};

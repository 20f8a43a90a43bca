//! The one-machine pipeline of `autonumber serve`: the webhook route over HTTP ([`server`]) and
//! a pool of workers over the embedded queue ([`pool`]), in one process.

pub mod pool;
pub mod server;

pub use pool::{WorkerPool, WorkerPoolConfig};
pub use server::app;

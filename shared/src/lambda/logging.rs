//! Logging of the Lambda functions: `tracing` to standard error, JSON when
//! `AUTONUMBER_LOG_FORMAT=json` (Lambda's JSON log format then keeps the fields), plain text
//! otherwise, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::{self, ConfigError};

pub const LOG_FORMAT: &str = "AUTONUMBER_LOG_FORMAT";

/// Installs the global subscriber. Fails on a log format other than `text` or `json`, or an
/// invalid `RUST_LOG`.
pub fn init_logging() -> Result<(), ConfigError> {
    let json = match config::var(LOG_FORMAT).as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ConfigError {
                variable: LOG_FORMAT,
                problem: format!("is {other:?}"),
                fix: "set text or json".into(),
            })
        }
    };
    let filter = match config::var("RUST_LOG") {
        None => EnvFilter::new("info"),
        Some(directives) => EnvFilter::try_new(&directives).map_err(|error| ConfigError {
            variable: "RUST_LOG",
            problem: format!("is {directives:?}, which is invalid: {error}"),
            fix: "set a tracing filter such as info or autonumber_shared=debug".into(),
        })?,
    };

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
    Ok(())
}

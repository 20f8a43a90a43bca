//! Progress of a long command: an `indicatif` bar on a terminal, plain log lines otherwise.
//!
//! Log lines written between the bar's redraws would garble it. So [`Progress::run`] runs the
//! work under a subscriber that prints warnings and errors above the bar and drops info lines.
//! `RUST_LOG` still overrides that level.

use std::future::Future;
use std::io::Write;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Shows a bar of `len` steps when `terminal` is true, else nothing.
    pub fn new(len: u64, terminal: bool) -> Self {
        if !terminal {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(len);
        let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tasks  {msg}  [{elapsed}]")
            .expect("the progress template is static and valid");
        bar.set_style(style);
        Self { bar: Some(bar) }
    }

    /// Counts one step done, with `message` next to the bar.
    pub fn update(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
            bar.inc(1);
        }
    }

    /// Runs `work`, printing its warnings above the bar when there is one.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        let Some(bar) = &self.bar else {
            return work.await;
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(AboveBar(bar.clone()))
            .finish();
        work.with_subscriber(subscriber).await
    }

    /// Removes the bar, so the command's summary on stdout follows on a clean line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes log lines to stderr with the bar cleared, then redraws the bar.
#[derive(Clone)]
struct AboveBar(ProgressBar);

impl Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for AboveBar {
    type Writer = AboveBar;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

//! A Prism proxy that checks traffic against Asana's OpenAPI description.
//!
//! [`Prism::start`] runs `prism proxy --errors` with `tests/data/asana_oas.yaml` in front of an
//! upstream such as [`crate::asana_fake::AsanaFake`]. The executable is named by the
//! `AUTONUMBER_TEST_PRISM` variable, which `scripts/test` and `scripts/with-services` set.
//!
//! What Prism 5.14.2 does with this spec, as observed with the tests in
//! `tests/conformance_prism.rs`:
//!
//! - It serves the spec's paths at its root, without `/api/1.0`.
//! - It rejects a request without a bearer token with 401, and a request that breaks the spec
//!   with 422 and the list of violations, without forwarding either.
//! - It checks the upstream's responses too: a 2xx status the operation does not declare, or a
//!   body that breaks the schema, becomes a 500 with the violations. Undeclared 4xx and 5xx
//!   responses, such as 429, pass with a warning in Prism's log.
//! - NOTE: it does not check the bodies of `GET` and `PUT /tasks/{gid}` responses. The task schema
//!   fails to compile in Prism's validator (an `enum` with duplicate items once `allOf` is
//!   merged) and Prism skips such checks without a word.
//! - A `POST /webhooks` body without `data` passes, because the spec does not require `data`.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Variable naming the Prism executable.
pub const PRISM_VARIABLE: &str = "AUTONUMBER_TEST_PRISM";

/// Maximum time for Prism to load the 3 MB spec and respond. It took about 4 s on a 2-core
/// machine with nothing else running.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts when Prism exits at start because another process took the chosen port.
const START_ATTEMPTS: usize = 3;

/// Maximum bytes of Prism's output kept for error messages.
const LOG_LIMIT: usize = 64 * 1024;

/// A running Prism proxy, killed when dropped.
pub struct Prism {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Prism {
    /// Starts Prism in front of `upstream_url` on a free port of 127.0.0.1 and waits until it
    /// responds.
    pub async fn start(upstream_url: &str) -> anyhow::Result<Prism> {
        let executable = std::env::var_os(PRISM_VARIABLE).with_context(|| {
            format!(
                "{PRISM_VARIABLE} is not set; it must name the prism executable \
                 (run scripts/test or scripts/with-services)"
            )
        })?;
        let spec = spec_path();
        if !spec.is_file() {
            bail!("the OpenAPI description {} is missing", spec.display());
        }

        for attempt in 1..=START_ATTEMPTS {
            let mut prism = spawn(&executable, &spec, upstream_url)?;
            match prism.wait_until_ready().await {
                Ok(()) => return Ok(prism),
                Err(error) if attempt < START_ATTEMPTS && prism.log().contains("EADDRINUSE") => {
                    tracing::debug!(attempt, %error, "prism lost its port, starting it again");
                }
                Err(error) => return Err(error),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Base URL of the proxy, `http://127.0.0.1:PORT`, to use in place of Asana's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Prism's output so far, its last 64 KiB at most.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Polls until Prism responds to HTTP. Any status counts, because it returns 401 without a
    /// token.
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let probe = format!("{}/users/me", self.url);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;

        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "prism exited at start with {status}; its output:\n{}",
                    self.log()
                );
            }
            if client.get(&probe).send().await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "prism did not respond on {} within {START_TIMEOUT:?}; its output:\n{}",
                    self.url,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let Ok(group) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory effects. The negative id names the process group that
        // `spawn` created for this child, so only Prism and processes it started are signalled.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        // Reap the child so it does not linger as a zombie. SIGKILL makes this quick.
        let _ = self.child.wait();
    }
}

/// Path of Asana's OpenAPI description in this crate.
pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/asana_oas.yaml")
}

fn spawn(
    executable: &std::ffi::OsStr,
    spec: &std::path::Path,
    upstream: &str,
) -> anyhow::Result<Prism> {
    let port = free_port()?;
    // Its own process group lets Drop stop Prism together with any process a wrapper script
    // started for it.
    let mut child = Command::new(executable)
        .args(["proxy", "--errors"])
        .arg(spec)
        .arg(upstream)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| {
            format!(
                "failed to run {} (from {PRISM_VARIABLE})",
                executable.to_string_lossy()
            )
        })?;

    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stdout) = child.stdout.take() {
        collect_output(stdout, Arc::clone(&log));
    }
    if let Some(stderr) = child.stderr.take() {
        collect_output(stderr, Arc::clone(&log));
    }
    Ok(Prism {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    })
}

/// Returns a port that was free a moment ago. Another process may take it before Prism binds
/// it, which [`Prism::start`] handles by trying again.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Reads a pipe on a thread until it closes, keeping the last [`LOG_LIMIT`] bytes. Reading
/// also keeps Prism from blocking on a full pipe, as it logs every request.
fn collect_output(pipe: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            log.push_str(&line);
            log.push('\n');
            if log.len() > LOG_LIMIT {
                let cut = log.len() - LOG_LIMIT / 2;
                let cut = (cut..log.len())
                    .find(|i| log.is_char_boundary(*i))
                    .unwrap_or(cut);
                log.replace_range(..cut, "");
            }
        }
    });
}

//! Runs the real `autonumber` binary against the Asana fake: `serve` as a child process, and
//! one-shot commands such as `webhooks create`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use autonumber_tests::asana_fake::AsanaFake;

pub const TOKEN: &str = "fake-asana-token-for-tests";
pub const PROJECT: &str = "1208300000000001";
pub const WAIT: Duration = Duration::from_secs(30);

/// A command of the binary with a clean environment: the fake's URL and token, the data
/// directory, and no Upstash variables.
pub fn autonumber(asana_url: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_autonumber"));
    command
        .env_remove("UPSTASH_REDIS_REST_URL")
        .env_remove("UPSTASH_REDIS_REST_TOKEN")
        .env_remove("AUTONUMBER_QUEUE_URL")
        .env_remove("AUTONUMBER_DLQ_URL")
        .env("ASANA_PERSONAL_KEY", TOKEN)
        .env("ASANA_API_URL", asana_url)
        .env("AUTONUMBER_DATA_DIR", data_dir)
        .env("RUST_LOG", "info,autonumber_shared=debug");
    for (name, value) in EXTRA_ENV.lock().unwrap().iter() {
        command.env(name, value);
    }
    command
}

/// Variables added to every command after the defaults above, e.g. Upstash settings for a
/// test binary whose tests all use the Upstash store.
pub static EXTRA_ENV: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Returns a port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `autonumber serve`; it is killed when dropped.
pub struct Serve {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Serve {
    /// Starts `serve` on `port` (0: any free port) and waits until it listens.
    pub async fn start(asana_url: &str, data_dir: &Path, port: u16, extra: &[&str]) -> Serve {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let log = data_dir.join(format!("serve-{}.log", stamp.as_nanos()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = autonumber(asana_url, data_dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the autonumber binary starts");
        let mut serve = Serve { child, port, log };

        // The port comes from serve's own log line, so parallel tests never race for one.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(port) = serve.listening_port() {
                serve.port = port;
                return serve;
            }
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!(
                    "serve exited with {status} before listening:\n{}",
                    serve.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "serve did not listen:\n{}",
                serve.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn listening_port(&self) -> Option<u16> {
        let log = self.log();
        let line = log
            .lines()
            .find(|line| line.contains("listening for webhooks"))?;
        let address = line.split("listen=").nth(1)?.split_whitespace().next()?;
        address.rsplit(':').next()?.parse().ok()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGKILL: no chance to finish anything.
    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a pid this test started and still owns.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `autonumber webhooks create` for [`PROJECT`] under `prefix`, pointed at `serve`.
pub async fn create_webhook(
    asana_url: &str,
    data_dir: &Path,
    serve: &Serve,
    prefix: &str,
) -> Output {
    let mut command = autonumber(asana_url, data_dir);
    command.args([
        "webhooks",
        "create",
        "--project",
        PROJECT,
        "--prefix",
        prefix,
        "--target-url",
        &serve.url(),
    ]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// A fake with [`PROJECT`], a `serve` on a fresh data directory, and a webhook for `BUG`.
pub struct Pipeline {
    pub fake: AsanaFake,
    pub dir: tempfile::TempDir,
    pub serve: Serve,
}

impl Pipeline {
    pub async fn start(extra: &[&str]) -> Pipeline {
        let fake = AsanaFake::start(TOKEN).await.unwrap();
        fake.add_project(PROJECT);
        Self::start_with(fake, extra).await
    }

    /// Starts `serve` against `asana_url` instead of the fake itself (e.g. a proxy in front).
    pub async fn start_with(fake: AsanaFake, extra: &[&str]) -> Pipeline {
        let url = fake.url().to_string();
        Self::start_via(fake, &url, extra).await
    }

    pub async fn start_via(fake: AsanaFake, asana_url: &str, extra: &[&str]) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let serve = Serve::start(asana_url, dir.path(), 0, extra).await;
        let output = create_webhook(asana_url, dir.path(), &serve, "BUG").await;
        assert!(
            output.status.success(),
            "webhooks create failed: {}\nserve log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            serve.log()
        );
        Pipeline { fake, dir, serve }
    }

    /// Waits until the task's name is `expected`, failing with the serve log.
    pub async fn wait_for_name(&self, task_gid: &str, expected: &str) {
        let what = format!("task {task_gid} to be named {expected:?}");
        let result = self
            .fake
            .wait_until(&what, WAIT, |fake| {
                fake.task_name(task_gid).as_deref() == Some(expected)
            })
            .await;
        if let Err(error) = result {
            panic!(
                "{error}; the name is {:?}\nserve log:\n{}",
                self.fake.task_name(task_gid),
                self.serve.log()
            );
        }
    }

    /// Waits until `count` GET requests for the task reached the fake (each delivery of the
    /// task is read once by the worker), then until the worker logged having finished them.
    pub async fn wait_for_reads(&self, task_gid: &str, count: usize) {
        let path = format!("/tasks/{task_gid}");
        let what = format!("{count} reads of task {task_gid}");
        let result = self
            .fake
            .wait_until(&what, WAIT, |fake| {
                fake.requests()
                    .iter()
                    .filter(|r| r.method == "GET" && r.path == path)
                    .count()
                    >= count
            })
            .await;
        if let Err(error) = result {
            panic!("{error}\nserve log:\n{}", self.serve.log());
        }
    }
}

impl Pipeline {
    /// Waits until the embedded queue contains no message, queued or in flight.
    pub async fn wait_until_idle(&self) {
        let db = autonumber_shared::db::Database::open(self.dir.path()).unwrap();
        let queue = autonumber_shared::queue::SqliteQueue::new(db, Duration::from_secs(30));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (queued, _) = queue.depth().await.unwrap();
            if queued == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{queued} messages still queued\nserve log:\n{}",
                self.serve.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the fake has sent `count` deliveries and serve has processed them all.
    pub async fn settle(&self, count: usize) {
        if let Err(error) = self.fake.wait_for_deliveries(count, WAIT).await {
            panic!("{error}\nserve log:\n{}", self.serve.log());
        }
        self.wait_until_idle().await;
    }

    /// Returns the number of deliveries made so far.
    pub fn delivered(&self) -> usize {
        self.fake.deliveries().len()
    }
}

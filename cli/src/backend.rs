//! The store and Asana client a command works against, chosen from the environment: Upstash
//! Redis REST when `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` are set, else the
//! embedded SQLite database in the data directory that `serve` uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autonumber_shared::asana::{AsanaClient, RateLimits};
use autonumber_shared::config::{self, AsanaConfig, UpstashConfig};
use autonumber_shared::db::Database;
use autonumber_shared::store::{SqliteStore, Store, UpstashStore};
use clap::Args;

/// Options shared by every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded database (used when no Upstash variables are set). Default:
    /// $XDG_DATA_HOME/autonumber, else ~/.local/share/autonumber.
    #[arg(long, env = "AUTONUMBER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl StoreArgs {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(dir) = config::var("XDG_DATA_HOME") {
            return Path::new(&dir).join("autonumber");
        }
        match config::var("HOME") {
            Some(home) => Path::new(&home).join(".local/share/autonumber"),
            None => PathBuf::from("autonumber-data"),
        }
    }
}

/// Options of commands that call Asana.
#[derive(Debug, Clone, Args)]
pub struct AsanaArgs {
    /// Client-side budget of Asana requests per minute (Asana allows 1,500 on paid workspaces,
    /// 150 on free ones).
    #[arg(long, env = config::REQUESTS_PER_MINUTE, default_value_t = 1500, value_name = "REQUESTS", value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_minute: u32,

    /// Timeout of one Asana request, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub asana_timeout: u64,
}

/// The store backend a command uses.
pub enum Backend {
    Embedded { db: Database },
    Upstash(UpstashConfig),
}

impl Backend {
    /// Upstash when its variables are set, else the embedded database.
    pub fn from_env(args: &StoreArgs) -> anyhow::Result<Self> {
        if let Some(upstash) = config::upstash_from_env()? {
            return Ok(Backend::Upstash(upstash));
        }
        let db = open_database(&args.data_dir())?;
        Ok(Backend::Embedded { db })
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Embedded { db } => Arc::new(SqliteStore::new(db.clone())),
            Backend::Upstash(upstash) => Arc::new(UpstashStore::new(
                &upstash.url,
                upstash.token.expose(),
                http_client(Duration::from_secs(10)),
            )),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Backend::Embedded { db } => format!("embedded SQLite at {}", db.path().display()),
            Backend::Upstash(upstash) => format!("Upstash REST at {}", upstash.url),
        }
    }
}

/// Opens the embedded database in `dir`, warning when it has to create a new one: that is
/// usually a `--data-dir` other than the one `serve` uses.
pub fn open_database(dir: &Path) -> anyhow::Result<Database> {
    let existed = Database::exists_in(dir);
    let db = Database::open(dir)
        .with_context(|| format!("cannot open the embedded database in {}", dir.display()))?;
    if !existed {
        tracing::warn!(
            data_dir = %dir.display(),
            "created a new, empty database; if you expected existing data, pass the --data-dir (or AUTONUMBER_DATA_DIR) that `autonumber serve` uses"
        );
    }
    Ok(db)
}

pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("asana-autonumber/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client configuration is static and valid")
}

/// Reads the Asana configuration and builds the client.
pub fn asana_client(args: &AsanaArgs) -> anyhow::Result<(AsanaClient, AsanaConfig)> {
    let config = config::asana_from_env()?;
    let limits = RateLimits {
        requests_per_minute: args.requests_per_minute.max(1),
        ..RateLimits::default()
    };
    let client = AsanaClient::new(
        http_client(Duration::from_secs(args.asana_timeout.max(1))),
        &config.api_url,
        config.token.expose(),
        limits,
    );
    Ok((client, config))
}

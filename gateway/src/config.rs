//! Typed configuration. Every setting is a `codelink serve` flag and a `CODELINK_*`
//! environment variable; the flag wins when both are given.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of `codelink serve`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CODELINK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the embedded store, the generated admin key and spools.
    #[arg(long, env = "CODELINK_DATA_DIR", default_value = "./codelink-data")]
    pub data_dir: PathBuf,

    /// Base URL that short links and QR codes point to (default: http://<listen>).
    #[arg(long, env = "CODELINK_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Admin API key. When absent, one is generated at first start and kept in the data dir.
    #[arg(long, env = "CODELINK_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Redis URL. When given, codes live in Redis and are shared by every gateway instance.
    #[arg(long, env = "CODELINK_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key codelink writes.
    #[arg(long, env = "CODELINK_REDIS_PREFIX", default_value = "codelink")]
    pub redis_prefix: String,

    /// How often each instance checks Redis for code changes made by other instances (ms).
    #[arg(long, env = "CODELINK_REDIS_SYNC_MS", default_value_t = 250)]
    pub redis_sync_ms: u64,

    /// Query parameter that carries the scan id to the destination.
    #[arg(long, env = "CODELINK_SCAN_PARAM", default_value = "cl_scan")]
    pub scan_param: String,

    /// Largest accepted request body (bytes); larger bodies get 413.
    #[arg(long, env = "CODELINK_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Memory for rendered QR images (bytes).
    #[arg(long, env = "CODELINK_QR_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub qr_cache_bytes: u64,

    /// Most connections served at once; further connections wait in the accept queue.
    #[arg(long, env = "CODELINK_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a graceful shutdown waits for open requests (seconds).
    #[arg(long, env = "CODELINK_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
}

impl Config {
    /// A configuration with every default, for `data_dir` (used by tests and benchmarks).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            public_url: None,
            admin_key: None,
            redis_url: None,
            redis_prefix: "codelink".into(),
            redis_sync_ms: 250,
            scan_param: "cl_scan".into(),
            max_body_bytes: 64 * 1024,
            qr_cache_bytes: 64 * 1024 * 1024,
            max_connections: 10_000,
            shutdown_timeout_secs: 10,
        }
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Checks what clap cannot: URL shapes and the scan parameter name.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("--public-url {url:?} is not a URL: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https") && parsed.query().is_none(),
                "--public-url must be an http(s) URL without a query"
            );
        }
        anyhow::ensure!(
            !self.scan_param.is_empty()
                && self.scan_param.len() <= 32
                && self
                    .scan_param
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "--scan-param must be 1-32 of letters, digits, '_' and '-'"
        );
        anyhow::ensure!(self.max_connections > 0, "--max-connections must be > 0");
        Ok(())
    }
}

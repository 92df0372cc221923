//! Typed configuration. Every setting is a `codelink serve` flag and a `CODELINK_*`
//! environment variable; the flag wins when both are given.

use clap::Args;
use codelink_analytics::ip_ranges::IpRanges;
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

    /// Redis Cluster seed nodes, comma-separated (redis://h1:p1,redis://h2:p2,…).
    /// Instead of --redis-url: the same roles, on a cluster.
    #[arg(long, env = "CODELINK_REDIS_CLUSTER", conflicts_with = "redis_url")]
    pub redis_cluster: Option<String>,

    /// Replicas that must acknowledge each scan batch written to Redis (WAIT,
    /// up to 1 s) before it counts as written; fewer and it is retried from
    /// the spool. 0 = no wait. Set 1 on a cluster with replicas for exact
    /// counts across a failover.
    #[arg(long, env = "CODELINK_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// How often each instance checks Redis for code changes made by other instances (ms).
    #[arg(long, env = "CODELINK_REDIS_SYNC_MS", default_value_t = 250)]
    pub redis_sync_ms: u64,

    /// Query parameter that carries the scan id to the destination.
    #[arg(long, env = "CODELINK_SCAN_PARAM", default_value = "cl_scan")]
    pub scan_param: String,

    /// ClickHouse HTTP URL (e.g. http://127.0.0.1:8123). When given, scan rows go there.
    #[arg(long, env = "CODELINK_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,

    /// ClickHouse database for codelink's tables (created at start-up).
    #[arg(long, env = "CODELINK_CLICKHOUSE_DATABASE", default_value = "codelink")]
    pub clickhouse_database: String,

    /// ClickHouse user.
    #[arg(long, env = "CODELINK_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,

    /// ClickHouse password.
    #[arg(long, env = "CODELINK_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,

    /// A ClickHouse cluster (its name in `<remote_servers>`); `--clickhouse-url`
    /// is then its seed node, and every node's HTTP interface must listen on
    /// the seed's port. Rows are sharded by code; reads go through
    /// `Distributed` tables in the database `{database}_cluster`.
    #[arg(long, env = "CODELINK_CLICKHOUSE_CLUSTER", requires = "clickhouse_url")]
    pub clickhouse_cluster: Option<String>,

    /// Scans are flushed to the sinks at least this often (ms). A crash loses at
    /// most the scans of the last interval. One second follows ClickHouse's own
    /// advice (about one insert per second): each insert makes a part of ~40
    /// files that merges rewrite later, so fewer, larger inserts cost it far less.
    #[arg(long, env = "CODELINK_FLUSH_MS", default_value_t = 1000)]
    pub flush_ms: u64,

    /// Largest batch of scans written at once.
    #[arg(long, env = "CODELINK_BATCH_MAX", default_value_t = 100_000)]
    pub batch_max: usize,

    /// Scans waiting to be batched; past it scans are counted as lost.
    #[arg(long, env = "CODELINK_QUEUE_CAPACITY", default_value_t = 200_000)]
    pub queue_capacity: usize,

    /// Nice value of the threads where the scan recorder writes the embedded
    /// store (0 to 19): when requests and a batch's write both want the CPU,
    /// requests come first, and the store catches up after (its backlog and
    /// spool hold the difference). 0 runs both at the same priority.
    #[arg(long, env = "CODELINK_RECORDER_NICE", default_value_t = 10)]
    pub recorder_nice: i32,

    /// Disk each sink's spool may use while its backend is down (bytes).
    #[arg(long, env = "CODELINK_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,

    /// Scans each sink may hold in memory while it writes slower than scans
    /// come (about 1 KB each); past it, batches wait in its spool on disk and
    /// are replayed in order.
    #[arg(long, env = "CODELINK_BACKLOG_MAX", default_value_t = 50_000)]
    pub backlog_max: usize,

    /// Server secret for visitor hashes. When absent, one is generated into the
    /// data dir; give every instance the same one.
    #[arg(long, env = "CODELINK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Header holding the client IP, set by a trusted proxy/CDN (e.g.
    /// CF-Connecting-IP, X-Forwarded-For: its first address). Default: the TCP peer.
    #[arg(long, env = "CODELINK_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Header holding the visitor's country, set by a trusted CDN.
    #[arg(long, env = "CODELINK_COUNTRY_HEADER", default_value = "cf-ipcountry")]
    pub country_header: String,

    /// A MaxMind / DB-IP country or city database (`.mmdb`): the country of
    /// a scan without the country header is looked up by its address (for
    /// routing rules and the recorded scan; the address is never stored).
    /// Loaded once at start-up.
    #[arg(long, env = "CODELINK_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,

    /// Scans per second one IP may make before its scans are marked `rate` (bot).
    #[arg(long, env = "CODELINK_SCAN_RATE_PER_IP", default_value_t = 10)]
    pub scan_rate_per_ip: u32,

    /// Burst of scans one IP may make at once.
    #[arg(long, env = "CODELINK_SCAN_BURST_PER_IP", default_value_t = 30)]
    pub scan_burst_per_ip: u32,

    /// API requests per second per IP; past it the API answers 429.
    #[arg(long, env = "CODELINK_API_RATE_PER_IP", default_value_t = 100)]
    pub api_rate_per_ip: u32,

    /// Burst of API requests one IP may make at once.
    #[arg(long, env = "CODELINK_API_BURST_PER_IP", default_value_t = 200)]
    pub api_burst_per_ip: u32,

    /// Days after a conversion before its earnings count as confirmed (refund window).
    #[arg(long, env = "CODELINK_HOLD_DAYS", default_value_t = 30)]
    pub hold_days: u32,

    /// Raw scans (with their visitor ids and IP prefixes) are deleted this
    /// many days after they were made, every hour; rollups, counters and
    /// conversions stay, so every number stays the same. 0 keeps them for
    /// ever. Keep it at least the longest attribution window.
    #[arg(long, env = "CODELINK_RETAIN_DAYS", default_value_t = 0)]
    pub retain_days: u32,

    /// A human scan by the same visitor of the same code and channel within
    /// this many seconds of the last one counted is a `repeat` (a reload, a
    /// double tap): a suspect, not a second human scan. 0 turns it off.
    #[arg(long, env = "CODELINK_REPEAT_WINDOW_SECS", default_value_t = 10)]
    pub repeat_window_secs: u32,

    /// A file of IP networks (one CIDR per line, `#` comments; e.g. the
    /// ranges cloud providers publish): scans from them are `datacenter`
    /// suspects. Matched on the full address, which is never stored.
    #[arg(long, env = "CODELINK_DATACENTER_RANGES")]
    pub datacenter_ranges: Option<PathBuf>,

    /// How far back a conversion's `occurred_at` may be (days); older events
    /// get 422. Default 45: the default 30-day attribution window plus a
    /// 15-day margin for late reports. At least 1.
    #[arg(long, env = "CODELINK_MAX_EVENT_AGE_DAYS", default_value_t = 45)]
    pub max_event_age_days: u32,

    /// Largest accepted request body (bytes); larger bodies get 413.
    #[arg(long, env = "CODELINK_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Largest body of `POST /api/v1/codes/import` (bytes): imports are
    /// files, far larger than other bodies; larger ones get 413.
    #[arg(long, env = "CODELINK_MAX_IMPORT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_import_bytes: usize,

    /// Most rows one import request may hold; more get 413 (`codelink
    /// import` sends a file in requests of 1,000 rows).
    #[arg(long, env = "CODELINK_MAX_IMPORT_ROWS", default_value_t = 100_000)]
    pub max_import_rows: usize,

    /// A request body (API JSON, console form) must arrive within this long
    /// (ms) from the end of the headers; a slower one gets 408.
    #[arg(long, env = "CODELINK_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,

    /// A connection waiting for a request head (a client that trickles one
    /// in, or an idle keep-alive connection) is closed after about this
    /// long (ms), between it and 1.5× it; so is one whose client stops
    /// reading an answer for as long.
    #[arg(long, env = "CODELINK_HEAD_TIMEOUT_MS", default_value_t = 10_000)]
    pub head_timeout_ms: u64,

    /// Memory redb may use to cache the pages of the embedded stores (MiB):
    /// three quarters for `scans.redb`, a quarter for `codelink.redb`.
    /// Without a bound redb caches up to 1 GiB per file and the process
    /// grows with the data.
    #[arg(long, env = "CODELINK_CACHE_MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(4..=1_048_576))]
    pub cache_mb: u64,

    /// Memory for rendered QR images (bytes): three quarters for the images,
    /// a quarter for the answers to exact requests (a repeated request is
    /// answered without parsing it).
    #[arg(long, env = "CODELINK_QR_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub qr_cache_bytes: u64,

    /// QR images rendered at once (cache misses); more wait up to 2 s, then
    /// get 503. Rendering a 4096 px PNG takes about 11 ms of one core.
    #[arg(long, env = "CODELINK_QR_RENDERS", default_value_t = 2)]
    pub qr_renders: usize,

    /// QR renders (cache misses) per second and address; past it, 429.
    /// Cached images are not counted.
    #[arg(long, env = "CODELINK_QR_RENDERS_PER_IP", default_value_t = 10)]
    pub qr_renders_per_ip: u32,

    /// Burst of QR renders one address may ask for at once.
    #[arg(long, env = "CODELINK_QR_RENDER_BURST_PER_IP", default_value_t = 60)]
    pub qr_render_burst_per_ip: u32,

    /// Most connections served at once; further connections wait in the accept queue.
    #[arg(long, env = "CODELINK_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a graceful shutdown waits for open requests (seconds); the
    /// recorder then gets as long again to write what it holds (what a backend
    /// cannot take in time goes to its spool on disk).
    #[arg(long, env = "CODELINK_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    /// On SIGTERM, how long the gateway keeps serving with `/readyz`
    /// answering 503 `draining` before it stops accepting connections
    /// (seconds), so a load balancer polling `/readyz` takes it out of
    /// rotation first. Above the balancer's check interval × fall count;
    /// 0 stops accepting at once; so does Ctrl-C (SIGINT).
    #[arg(long, env = "CODELINK_DRAIN_SECS", default_value_t = 5)]
    pub drain_secs: u64,

    /// An analytics query still running after this long is abandoned (503, ms).
    #[arg(long, env = "CODELINK_QUERY_TIMEOUT_MS", default_value_t = 10_000)]
    pub query_timeout_ms: u64,

    /// Analytics queries answered at once; more get 503 with Retry-After.
    #[arg(long, env = "CODELINK_MAX_CONCURRENT_QUERIES", default_value_t = 8)]
    pub max_concurrent_queries: usize,

    /// Most buckets one timeseries may return.
    #[arg(long, env = "CODELINK_MAX_BUCKETS", default_value_t = 2_000)]
    pub max_buckets: usize,

    /// How long a console sign-in lasts (hours).
    #[arg(long, env = "CODELINK_UI_SESSION_HOURS", default_value_t = 168)]
    pub ui_session_hours: u64,

    /// Console sign-in attempts per minute and address (past it: 429).
    #[arg(long, env = "CODELINK_UI_SIGN_INS_PER_MINUTE", default_value_t = 10)]
    pub ui_sign_ins_per_minute: u32,

    /// Console pages per second and address (burst: 4× as many; past it: 429).
    #[arg(long, env = "CODELINK_UI_PAGES_PER_SECOND", default_value_t = 10)]
    pub ui_pages_per_second: u32,

    /// Fraud check: more signups than this by one visitor id within
    /// --fraud-window-secs are flagged `velocity_visitor` (0: off).
    #[arg(long, env = "CODELINK_FRAUD_VISITOR_SIGNUPS", default_value_t = 3)]
    pub fraud_visitor_signups: u64,

    /// Fraud check: more signups than this from one IP /24 (IPv6 /48) within
    /// --fraud-window-secs are flagged `velocity_ip` (0: off).
    #[arg(long, env = "CODELINK_FRAUD_IP_SIGNUPS", default_value_t = 20)]
    pub fraud_ip_signups: u64,

    /// The fixed window signups are counted in for velocity (seconds).
    #[arg(long, env = "CODELINK_FRAUD_WINDOW_SECS", default_value_t = 3600)]
    pub fraud_window_secs: u64,

    /// A signup sooner than this after its scan is flagged `too_fast` (ms; 0: off).
    #[arg(long, env = "CODELINK_FRAUD_SIGNUP_MIN_MS", default_value_t = 5_000)]
    pub fraud_signup_min_ms: u64,

    /// A purchase sooner than this after its scan is flagged `too_fast` (ms; 0: off).
    #[arg(long, env = "CODELINK_FRAUD_PURCHASE_MIN_MS", default_value_t = 10_000)]
    pub fraud_purchase_min_ms: u64,

    /// `signups_exceed_scans` needs at least this many signups of the code.
    #[arg(long, env = "CODELINK_FRAUD_MIN_SIGNUPS", default_value_t = 100)]
    pub fraud_min_signups: u64,

    /// …and more than this many signups per human scan of the code (0: off).
    #[arg(long, env = "CODELINK_FRAUD_SIGNUPS_PER_SCAN", default_value_t = 10)]
    pub fraud_signups_per_scan: u64,

    /// Flag conversions whose attributed scan is a bot or a suspect.
    #[arg(long, env = "CODELINK_FRAUD_SCAN_VERDICTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub fraud_scan_verdicts: bool,

    /// Flag a customer credited to another creator than their first one.
    #[arg(long, env = "CODELINK_FRAUD_MULTI_CREATOR", default_value_t = true, action = clap::ArgAction::Set)]
    pub fraud_multi_creator: bool,

    /// Allow webhook endpoints on loopback, private and link-local
    /// addresses (receivers on the gateway's own network). Off: refused (SSRF).
    #[arg(long, env = "CODELINK_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// The first webhook retry's delay (ms); later ones are multiples of it
    /// (5 s: 5 s, 30 s, 2 min, 10 min, … 24 h, about three days in all).
    #[arg(long, env = "CODELINK_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000)]
    pub webhook_retry_base_ms: u64,

    /// A webhook endpoint whose attempts have all failed for this long
    /// (seconds; default 5 days) is disabled until re-enabled.
    #[arg(long, env = "CODELINK_WEBHOOK_DISABLE_AFTER_SECS", default_value_t = 5 * 86_400)]
    pub webhook_disable_after_secs: u64,

    /// One webhook attempt may take this long (ms): connect, send, status.
    #[arg(long, env = "CODELINK_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// Webhook attempts under way at once, per instance.
    #[arg(long, env = "CODELINK_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,

    /// Extra CA certificates (PEM) trusted for https webhook endpoints,
    /// besides Mozilla's roots.
    #[arg(long, env = "CODELINK_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
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
            redis_cluster: None,
            redis_wait_replicas: 0,
            redis_sync_ms: 250,
            scan_param: "cl_scan".into(),
            clickhouse_url: None,
            clickhouse_database: "codelink".into(),
            clickhouse_user: None,
            clickhouse_password: None,
            clickhouse_cluster: None,
            flush_ms: 1000,
            batch_max: 100_000,
            queue_capacity: 200_000,
            recorder_nice: 10,
            spool_max_bytes: 1 << 30,
            backlog_max: 50_000,
            secret: None,
            client_ip_header: None,
            country_header: "cf-ipcountry".into(),
            geoip_db: None,
            scan_rate_per_ip: 10,
            scan_burst_per_ip: 30,
            api_rate_per_ip: 100,
            api_burst_per_ip: 200,
            hold_days: 30,
            retain_days: 0,
            repeat_window_secs: 10,
            datacenter_ranges: None,
            max_event_age_days: 45,
            max_body_bytes: 64 * 1024,
            max_import_bytes: 16 * 1024 * 1024,
            max_import_rows: 100_000,
            body_timeout_ms: 10_000,
            head_timeout_ms: 10_000,
            cache_mb: 64,
            qr_cache_bytes: 64 * 1024 * 1024,
            qr_renders: 2,
            qr_renders_per_ip: 10,
            qr_render_burst_per_ip: 60,
            max_connections: 10_000,
            shutdown_timeout_secs: 10,
            drain_secs: 5,
            query_timeout_ms: 10_000,
            max_concurrent_queries: 8,
            max_buckets: 2_000,
            ui_session_hours: 168,
            ui_sign_ins_per_minute: 10,
            ui_pages_per_second: 10,
            fraud_visitor_signups: 3,
            fraud_ip_signups: 20,
            fraud_window_secs: 3600,
            fraud_signup_min_ms: 5_000,
            fraud_purchase_min_ms: 10_000,
            fraud_min_signups: 100,
            fraud_signups_per_scan: 10,
            fraud_scan_verdicts: true,
            fraud_multi_creator: true,
            webhook_allow_private: false,
            webhook_retry_base_ms: 5_000,
            webhook_disable_after_secs: 5 * 86_400,
            webhook_timeout_ms: 10_000,
            webhook_concurrency: 16,
            webhook_ca_file: None,
        }
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }

    /// The page cache of `scans.redb`: three quarters of `--cache-mb`.
    pub fn scans_cache_bytes(&self) -> u64 {
        (self.cache_mb << 20) / 4 * 3
    }

    /// The page cache of `codelink.redb`: the rest of `--cache-mb`.
    pub fn store_cache_bytes(&self) -> u64 {
        (self.cache_mb << 20) - self.scans_cache_bytes()
    }

    pub fn hold_ms(&self) -> u64 {
        u64::from(self.hold_days) * 86_400_000
    }

    /// The analytics part of the configuration.
    /// The analytics' settings; reads `--datacenter-ranges`.
    pub fn analytics(&self, secret: &[u8]) -> anyhow::Result<codelink_analytics::Config> {
        use codelink_analytics::config::{
            ClickHouseConfig, QueryLimits, RecorderSettings, RedisConfig, VerdictRules,
        };

        Ok(codelink_analytics::Config {
            data_dir: self.data_dir.clone(),
            cache_bytes: self.scans_cache_bytes(),
            redis: self.redis_target()?.map(|target| RedisConfig {
                target,
                prefix: self.redis_prefix.clone(),
                wait_replicas: self.redis_wait_replicas,
            }),
            clickhouse: self.clickhouse_url.as_ref().map(|url| ClickHouseConfig {
                url: url.clone(),
                database: self.clickhouse_database.clone(),
                user: self.clickhouse_user.clone(),
                password: self.clickhouse_password.clone(),
                cluster: self.clickhouse_cluster.clone(),
            }),
            recorder: RecorderSettings {
                flush_interval: Duration::from_millis(self.flush_ms),
                batch_max: self.batch_max,
                queue_capacity: self.queue_capacity,
                nice: self.recorder_nice,
                spool_max_bytes: self.spool_max_bytes,
                backlog_max: self.backlog_max,
            },
            queries: QueryLimits {
                timeout: Duration::from_millis(self.query_timeout_ms),
                max_concurrent: self.max_concurrent_queries,
                max_buckets: self.max_buckets,
            },
            secret: secret.to_vec(),
            hold: Duration::from_millis(self.hold_ms()),
            retain: (self.retain_days > 0)
                .then(|| Duration::from_secs(u64::from(self.retain_days) * 86_400)),
            fraud: codelink_analytics::fraud::FraudConfig {
                visitor_signups: self.fraud_visitor_signups,
                ip_signups: self.fraud_ip_signups,
                window: Duration::from_secs(self.fraud_window_secs.max(1)),
                too_fast_signup: Duration::from_millis(self.fraud_signup_min_ms),
                too_fast_purchase: Duration::from_millis(self.fraud_purchase_min_ms),
                min_signups: self.fraud_min_signups,
                signups_per_human_scan: self.fraud_signups_per_scan,
                scan_verdicts: self.fraud_scan_verdicts,
                multi_creator: self.fraud_multi_creator,
            },
            webhooks: codelink_analytics::webhooks::WebhookConfig {
                allow_private: self.webhook_allow_private,
                retry_base: Duration::from_millis(self.webhook_retry_base_ms),
                disable_after: Duration::from_secs(self.webhook_disable_after_secs),
                timeout: Duration::from_millis(self.webhook_timeout_ms),
                concurrency: self.webhook_concurrency,
                ca_file: self.webhook_ca_file.clone(),
            },
            verdicts: VerdictRules {
                repeat_window: Duration::from_secs(u64::from(self.repeat_window_secs)),
                datacenter: self.datacenter()?.map(std::sync::Arc::new),
            },
        })
    }

    fn datacenter(&self) -> anyhow::Result<Option<IpRanges>> {
        let Some(path) = &self.datacenter_ranges else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "--datacenter-ranges {}: cannot read it: {e}",
                path.display()
            )
        })?;
        let ranges = IpRanges::parse(&text)
            .map_err(|e| anyhow::anyhow!("--datacenter-ranges {}: {e}", path.display()))?;
        let (v4, v6) = ranges.len();
        tracing::info!(v4, v6, path = %path.display(), "datacenter ranges loaded");
        Ok(Some(ranges))
    }

    /// The web console's settings.
    pub fn ui(&self, secret: &[u8], public_base: &str) -> codelink_dashboards::UiConfig {
        codelink_dashboards::UiConfig {
            secret: secret.to_vec(),
            session_ttl_secs: self.ui_session_hours.saturating_mul(3600),
            secure_cookies: public_base.starts_with("https://"),
            sign_ins_per_minute: self.ui_sign_ins_per_minute,
            pages_per_second: self.ui_pages_per_second,
        }
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// `--drain-secs`: serving on, not ready, after the shutdown signal.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }

    /// Where Redis is: `--redis-url`, `--redis-cluster` (exclusive), or none.
    pub fn redis_target(
        &self,
    ) -> anyhow::Result<Option<codelink_analytics::redis_conn::RedisTarget>> {
        use codelink_analytics::redis_conn::RedisTarget;
        match (&self.redis_url, &self.redis_cluster) {
            (Some(_), Some(_)) => anyhow::bail!(
                "--redis-url and --redis-cluster are exclusive: give --redis-url for one server, or --redis-cluster for a cluster's seed nodes"
            ),
            (Some(url), None) => Ok(Some(RedisTarget::Single(url.clone()))),
            (None, Some(list)) => {
                anyhow::ensure!(
                    !self.redis_prefix.contains(['{', '}']),
                    "--redis-prefix must not contain '{{' or '}}' with --redis-cluster (codelink adds the hash tags itself)"
                );
                Ok(Some(RedisTarget::cluster_from_list(list).map_err(anyhow::Error::msg)?))
            }
            (None, None) => Ok(None),
        }
    }

    /// Checks what clap cannot: URL shapes and the scan parameter name.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.redis_target()?;
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
        anyhow::ensure!(self.flush_ms > 0, "--flush-ms must be > 0");
        anyhow::ensure!(
            self.max_event_age_days >= 1,
            "--max-event-age-days must be at least 1"
        );
        anyhow::ensure!(self.body_timeout_ms > 0, "--body-timeout-ms must be > 0");
        anyhow::ensure!(self.head_timeout_ms > 0, "--head-timeout-ms must be > 0");
        anyhow::ensure!(
            self.qr_renders > 0 && self.qr_renders_per_ip > 0,
            "--qr-renders and --qr-renders-per-ip must be > 0"
        );
        anyhow::ensure!(self.batch_max > 0, "--batch-max must be > 0");
        anyhow::ensure!(
            (0..=19).contains(&self.recorder_nice),
            "--recorder-nice must be 0 to 19"
        );
        anyhow::ensure!(
            self.webhook_retry_base_ms > 0
                && self.webhook_timeout_ms > 0
                && self.webhook_concurrency > 0,
            "--webhook-retry-base-ms, --webhook-timeout-ms and --webhook-concurrency must be > 0"
        );
        anyhow::ensure!(
            self.query_timeout_ms > 0 && self.max_concurrent_queries > 0 && self.max_buckets > 0,
            "--query-timeout-ms, --max-concurrent-queries and --max-buckets must be > 0"
        );
        anyhow::ensure!(
            self.scan_rate_per_ip > 0
                && self.api_rate_per_ip > 0
                && self.ui_sign_ins_per_minute > 0,
            "rates must be > 0"
        );
        anyhow::ensure!(
            (1..=24 * 366).contains(&self.ui_session_hours),
            "--ui-session-hours must be from 1 to 8784 (a year)"
        );
        anyhow::ensure!(
            self.ui_pages_per_second > 0,
            "--ui-pages-per-second must be > 0"
        );
        if let Some(url) = &self.clickhouse_url {
            url::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("--clickhouse-url {url:?} is not a URL: {e}"))?;
        }
        anyhow::ensure!(
            !self.clickhouse_database.is_empty()
                && self
                    .clickhouse_database
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "--clickhouse-database must be letters, digits and '_'"
        );
        if let Some(cluster) = &self.clickhouse_cluster {
            anyhow::ensure!(
                self.clickhouse_url.is_some(),
                "--clickhouse-cluster needs --clickhouse-url (the seed node)"
            );
            // An XML element name of ClickHouse's config, as it is written there.
            anyhow::ensure!(
                !cluster.is_empty()
                    && cluster.len() <= 200
                    && cluster
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
                "--clickhouse-cluster must name a <remote_servers> entry (letters, digits, '_', '-', '.')"
            );
        }
        Ok(())
    }
}

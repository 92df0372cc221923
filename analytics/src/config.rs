//! How [`crate::Analytics`] is opened: which backends, and the limits of the
//! recorder and of queries. One struct per part, every default written out.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::sink::ClickHouseConfig;

/// Everything [`crate::Analytics::open`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The embedded store (`scans.redb`) and the sinks' spools live here.
    pub data_dir: PathBuf,
    /// Memory redb may use to cache pages of `scans.redb` (bytes): redb's
    /// own default (1 GiB) would let the process grow with the file.
    pub cache_bytes: u64,
    /// Live counters, last visits and conversion claims in Redis (shared by
    /// every instance); `None`: embedded.
    pub redis: Option<RedisConfig>,
    /// Scan and conversion rows (and their rollups) in ClickHouse; `None`:
    /// embedded.
    pub clickhouse: Option<ClickHouseConfig>,
    pub recorder: RecorderSettings,
    pub queries: QueryLimits,
    /// Signs and verifies scan tokens (`cl_scan`); the same on every instance.
    pub secret: Vec<u8>,
    /// Earnings are confirmed once this long has passed since the end of the
    /// UTC hour the conversion occurred in (the refund window).
    pub hold: Duration,
    /// Raw scans older than this are deleted (rollups, counters and
    /// conversions stay); `None`: kept for ever.
    pub retain: Option<Duration>,
    /// How scans are judged beyond their user agent.
    pub verdicts: VerdictRules,
    /// Thresholds of the fraud checks on conversions.
    pub fraud: crate::fraud::FraudConfig,
    /// How webhooks are delivered.
    pub webhooks: crate::webhooks::WebhookConfig,
}

/// The behaviour signals of [`crate::enrich`].
#[derive(Debug, Clone)]
pub struct VerdictRules {
    /// A human scan by the same visitor of the same code and channel less
    /// than this after the last one counted is a `repeat` (a reload, a
    /// double tap); zero turns the rule off.
    pub repeat_window: Duration,
    /// Scans from these networks are `datacenter` (published cloud ranges).
    pub datacenter: Option<std::sync::Arc<crate::ip_ranges::IpRanges>>,
}

impl Default for VerdictRules {
    fn default() -> Self {
        Self {
            repeat_window: Duration::from_secs(10),
            datacenter: None,
        }
    }
}

impl Config {
    /// Embedded backends in `data_dir`, every other setting at its default.
    pub fn embedded(data_dir: impl Into<PathBuf>, secret: &[u8]) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_bytes: crate::sink::EMBEDDED_CACHE_BYTES,
            redis: None,
            clickhouse: None,
            recorder: RecorderSettings::default(),
            queries: QueryLimits::default(),
            secret: secret.to_vec(),
            hold: Duration::from_secs(30 * 86_400),
            retain: None,
            verdicts: VerdictRules::default(),
            fraud: crate::fraud::FraudConfig::default(),
            webhooks: crate::webhooks::WebhookConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One server (`redis://127.0.0.1:6379`) or a cluster's seed nodes.
    pub target: crate::redis_conn::RedisTarget,
    /// Prefix of every key.
    pub prefix: String,
    /// Replicas that must acknowledge each part of a scan batch (`WAIT`,
    /// up to [`REPLICA_WAIT`]) before it counts as written; fewer and the
    /// batch is spooled and replayed. 0: no wait (async replication: a
    /// failover may lose what the dead master had not passed on).
    pub wait_replicas: u32,
}

/// How long a batch part waits for its replicas (`--redis-wait-replicas`).
pub const REPLICA_WAIT: Duration = Duration::from_millis(1000);

impl RedisConfig {
    /// One server at `url`, no replica wait.
    pub fn single(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            target: crate::redis_conn::RedisTarget::Single(url.into()),
            prefix: prefix.into(),
            wait_replicas: 0,
        }
    }
}

/// The scan recorder: how often and how much it writes, and how much it may
/// hold while a backend is away.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// A batch is cut at least this often; a crash loses at most this much.
    pub flush_interval: Duration,
    /// A batch is cut when it holds this many scans.
    pub batch_max: usize,
    /// Scans waiting to be batched; past it scans are dropped (and counted).
    pub queue_capacity: usize,
    /// The nice value of the threads where the recorder's sinks write (the
    /// embedded store), above the requests' own (0: the same priority).
    pub nice: i32,
    /// Disk each sink's spool may use while its backend is down.
    pub spool_max_bytes: u64,
    /// Scans a sink may hold in memory while it is slower than the scans
    /// come; past it, batches wait in its spool on disk.
    pub backlog_max: usize,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(1000),
            batch_max: 100_000,
            queue_capacity: 200_000,
            nice: 10,
            spool_max_bytes: 1 << 30,
            backlog_max: 50_000,
        }
    }
}

/// Protection of the analytics queries.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// A query still running after this is abandoned ([`crate::Error::Timeout`]).
    pub timeout: Duration,
    /// Queries answered at once; more are refused ([`crate::Error::Busy`]).
    pub max_concurrent: usize,
    /// Most buckets a timeseries may return.
    pub max_buckets: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_concurrent: 8,
            max_buckets: 2_000,
        }
    }
}

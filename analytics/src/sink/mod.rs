//! Where batches of scans go. Each sink applies a batch exactly once, even when
//! the same batch arrives again from the spool:
//! - embedded (redb): one write transaction holds the scans, the counters and
//!   the batch id; a batch id already present means "applied, skip";
//! - Redis counters: a Lua script sets a batch marker with `SET NX` and applies
//!   the increments only when the marker was new, atomically;
//! - ClickHouse: rows land in a `ReplacingMergeTree` keyed by scan id, so a
//!   replayed row collapses into the first (queries use `FINAL` or count
//!   distinct scan ids).

mod clickhouse;
mod embedded;
mod redis;

pub use self::clickhouse::{ClickHouseConfig, ClickHouseEvents};
pub use self::embedded::EmbeddedSink;
pub use self::redis::RedisCounters;

use crate::batch::Batch;
use crate::stats::CodeStats;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] ::clickhouse::error::Error),
    #[error("embedded store: {0}")]
    Embedded(String),
    #[error("{0} did not answer within the write timeout")]
    Timeout(&'static str),
}

/// The fixed set of sinks, for metric labels and spool directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Embedded,
    Redis,
    ClickHouse,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::Embedded, SinkKind::Redis, SinkKind::ClickHouse];

    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Embedded => "embedded",
            SinkKind::Redis => "redis",
            SinkKind::ClickHouse => "clickhouse",
        }
    }
}

#[derive(Clone)]
pub enum Sink {
    Embedded(EmbeddedSink),
    Redis(RedisCounters),
    // Boxed: the ClickHouse client is large, and sinks are moved into tasks.
    ClickHouse(Box<ClickHouseEvents>),
}

impl Sink {
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Embedded(_) => SinkKind::Embedded,
            Sink::Redis(_) => SinkKind::Redis,
            Sink::ClickHouse(_) => SinkKind::ClickHouse,
        }
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        match self {
            Sink::Embedded(s) => s.write(batch).await,
            Sink::Redis(s) => s.write(batch).await,
            Sink::ClickHouse(s) => s.write(batch).await,
        }
    }
}

/// Where the live per-code counters are read from.
#[derive(Clone)]
pub enum CounterStore {
    Embedded(EmbeddedSink),
    Redis(RedisCounters),
}

impl CounterStore {
    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        match self {
            CounterStore::Embedded(s) => s.code_stats(code).await,
            CounterStore::Redis(s) => s.code_stats(code).await,
        }
    }
}

//! Where batches of scans go. Each sink applies a batch exactly once, even when
//! the same batch arrives again from the spool:
//! - embedded (redb): one write transaction holds the scans (in chunks, see
//!   `chunk.rs`), the counters and the batch id; a batch id already present
//!   means "applied, skip";
//! - Redis counters: a Lua script sets a batch marker with `SET NX` and applies
//!   the increments only when the marker was new, atomically;
//! - ClickHouse: rows land in a `ReplacingMergeTree` keyed by scan id, so a
//!   replayed row collapses into the first (queries use `FINAL` or count
//!   distinct scan ids).

pub mod chunk;
mod clickhouse;
mod embedded;
mod redis;

pub use self::clickhouse::{
    sip_hash64, BackfillProgress, ClickHouseConfig, ClickHouseEvents, ShardMap, DDL_TIMEOUT,
    DISTRIBUTED, DISTRIBUTED_DDL, ON_CLUSTER, REPLICATED_ENGINE,
};
pub use self::embedded::{
    EmbeddedSink, Erased, MigrationProgress, Pruned as EmbeddedPruned, Subject,
    DEFAULT_CACHE_BYTES as EMBEDDED_CACHE_BYTES,
};
pub(crate) use self::redis::connection as redis_connection;
pub use self::redis::RedisCounters;

use crate::batch::Batch;
use crate::event::Scan;
use crate::records::{Claim, ClaimRecord, CustomerLink, LastVisit, RefundOf, Refunded};
use crate::review::{Review, ReviewStatus};
use crate::stats::CodeStats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A page of a code's scans, newest first (drill-down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub scans: Vec<Scan>,
    /// Pass as `before` for the next (older) page; `None` when this was the last.
    pub next: Option<String>,
}

impl ScanPage {
    /// The first `limit` of `newest_first`; one more than `limit` there means
    /// a next page exists.
    pub(crate) fn of(mut newest_first: Vec<Scan>, limit: usize) -> Self {
        let more = newest_first.len() > limit;
        newest_first.truncate(limit);
        let next = if more {
            newest_first.last().map(|s| s.scan_id.to_string())
        } else {
            None
        };
        Self {
            scans: newest_first,
            next,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] ::clickhouse::error::Error),
    #[error("embedded store: {0}")]
    Embedded(String),
    /// A ClickHouse cluster that cannot be used as configured, or a node's failure named.
    #[error("clickhouse cluster: {0}")]
    Cluster(String),
    /// A ClickHouse cluster configured in a way codelink cannot use (unknown
    /// name, replicas without ZooKeeper, …): not worth retrying.
    #[error("clickhouse cluster: {0}")]
    ClusterConfig(String),
    #[error("{0} did not answer within the write timeout")]
    Timeout(&'static str),
    /// A write given up at shutdown through its [`Halt`]: nothing of it was
    /// committed, and its batch is (or is put) in the spool.
    #[error("the write was given up at shutdown")]
    Halted,
    /// A write the master took but too few replicas acknowledged in time
    /// (`--redis-wait-replicas`): a failover could lose it, so it is retried.
    #[error("redis: {0}")]
    NotReplicated(String),
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

    pub async fn write(&self, batch: &Arc<Batch>) -> Result<(), SinkError> {
        self.write_halting(batch, &Halt::default()).await
    }

    /// [`Self::write`]; once `halt` is set, a write still under way gives up
    /// as soon as it can, committing nothing ([`SinkError::Halted`]).
    pub async fn write_halting(&self, batch: &Arc<Batch>, halt: &Halt) -> Result<(), SinkError> {
        match self {
            Sink::Embedded(s) => s.write_halting(batch, halt.clone()).await,
            Sink::Redis(s) => s.write(batch).await,
            Sink::ClickHouse(s) => s.write(batch).await,
        }
    }
}

/// Set at shutdown to give up a write under way. The embedded sink needs
/// it: its write runs on a blocking thread, which dropping the write's future
/// does not stop (and the recorder's thread waits for it to end). The other
/// sinks' writes are futures: dropped at the shutdown deadline, they stop.
#[derive(Debug, Clone, Default)]
pub struct Halt(Arc<AtomicBool>);

impl Halt {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Halted)` once set: for `?` between the steps of a write.
    pub fn check(&self) -> Result<(), SinkError> {
        if self.is_set() {
            Err(SinkError::Halted)
        } else {
            Ok(())
        }
    }
}

/// How many of a customer's latest purchases a refund without a
/// `purchase_event_id` looks through for one not yet fully refunded.
pub const REFUNDABLE_SEARCH: usize = 1000;

/// The live store: per-code counters, each visitor's latest scan of a code,
/// conversion claims (idempotency) and customer links. Redis when configured
/// (shared by every instance), else embedded. Every read is one key lookup,
/// except the stats of a code: one hash plus one HyperLogLog per day.
#[derive(Clone)]
pub enum LiveStore {
    Embedded(EmbeddedSink),
    Redis(RedisCounters),
}

impl LiveStore {
    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.code_stats(code).await,
            LiveStore::Redis(s) => s.code_stats(code).await,
        }
    }

    pub async fn last_visit(
        &self,
        code: &str,
        visitor: &str,
    ) -> Result<Option<LastVisit>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.last_visit(code, visitor).await,
            LiveStore::Redis(s) => s.last_visit(code, visitor).await,
        }
    }

    /// Claims the event id of `record` atomically, with what goes with it:
    /// the customer `link` (stored only if the customer has none), a purchase
    /// with a customer joins that customer's purchases, and a `refund` moves
    /// its purchase's refunded totals (only if they are still `before`, else
    /// [`Claim::Stale`] and nothing is written).
    pub async fn claim(
        &self,
        record: &ClaimRecord,
        link: Option<&CustomerLink>,
        refund: Option<&RefundOf>,
    ) -> Result<Claim, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.claim(record, link, refund).await,
            LiveStore::Redis(s) => s.claim(record, link, refund).await,
        }
    }

    /// Removes the claim of `record`'s event id if it still holds `record`
    /// (the answer this caller claimed), so that the event can be claimed
    /// afresh; then also its place among the customer's purchases and, for a
    /// refund (`refund` as claimed), its share of the purchase's refunded totals.
    pub async fn release(
        &self,
        record: &ClaimRecord,
        refund: Option<&RefundOf>,
    ) -> Result<(), SinkError> {
        match self {
            LiveStore::Embedded(s) => s.release(record, refund).await,
            LiveStore::Redis(s) => s.release(record, refund).await,
        }
    }

    /// The claim of `event_id`, if it was claimed.
    pub async fn claimed(&self, event_id: &str) -> Result<Option<ClaimRecord>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.claimed(event_id).await,
            LiveStore::Redis(s) => s.claimed(event_id).await,
        }
    }

    /// How much of the purchase `event_id` has been refunded (zero if nothing).
    pub async fn refunded(&self, event_id: &str) -> Result<Refunded, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.refunded(event_id).await,
            LiveStore::Redis(s) => s.refunded(event_id).await,
        }
    }

    /// The customer's latest purchase (by time of occurrence) not yet fully
    /// refunded, and what was refunded of it; only the customer's latest
    /// [`REFUNDABLE_SEARCH`] purchases are looked at.
    pub async fn latest_refundable_purchase(
        &self,
        customer_id: &str,
    ) -> Result<Option<(ClaimRecord, Refunded)>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.latest_refundable_purchase(customer_id).await,
            LiveStore::Redis(s) => s.latest_refundable_purchase(customer_id).await,
        }
    }

    pub async fn customer(&self, customer_id: &str) -> Result<Option<CustomerLink>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.customer(customer_id).await,
            LiveStore::Redis(s) => s.customer(customer_id).await,
        }
    }

    /// Adds one to `key`'s count in the fixed window of `window_ms` that
    /// holds `now_ms` (`window_ms` 0: one window for ever) and returns the
    /// count (fraud checks: velocity, a code's signups).
    pub async fn bump(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.bump(key, window_ms, now_ms).await,
            LiveStore::Redis(s) => s.bump(key, window_ms, now_ms).await,
        }
    }

    /// Replaces a purchase's refunded totals `before` by `after`, only if
    /// they are still `before` (else false, nothing written).
    pub async fn swap_refunded(
        &self,
        purchase_event_id: &str,
        before: Refunded,
        after: Refunded,
    ) -> Result<bool, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.swap_refunded(purchase_event_id, before, after).await,
            LiveStore::Redis(s) => s.swap_refunded(purchase_event_id, before, after).await,
        }
    }

    /// The human scans of `code` (live counter).
    pub async fn human_scans(&self, code: &str) -> Result<u64, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.human_scans(code).await,
            LiveStore::Redis(s) => s.human_scans(code).await,
        }
    }

    /// Puts `review` in the queue unless its event id is there already.
    pub async fn open_review(&self, review: &Review) -> Result<(), SinkError> {
        match self {
            LiveStore::Embedded(s) => s.open_review(review).await,
            LiveStore::Redis(s) => s.open_review(review).await,
        }
    }

    /// Takes `event_id` out of the queue if it is pending with no decision
    /// (its claim is being released).
    pub async fn drop_review(&self, event_id: &str) -> Result<(), SinkError> {
        match self {
            LiveStore::Embedded(s) => s.drop_review(event_id).await,
            LiveStore::Redis(s) => s.drop_review(event_id).await,
        }
    }

    pub async fn review(&self, event_id: &str) -> Result<Option<Review>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.review(event_id).await,
            LiveStore::Redis(s) => s.review(event_id).await,
        }
    }

    /// Up to `limit` reviews of `status` (of `code` only, if given), newest
    /// first, older than the position `before`.
    pub async fn reviews(
        &self,
        status: ReviewStatus,
        code: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Review>, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.reviews(status, code, before, limit).await,
            LiveStore::Redis(s) => s.reviews(status, code, before, limit).await,
        }
    }

    /// Replaces `before` by `after` atomically, only if the stored review is
    /// still exactly `before` (returns false otherwise, changing nothing).
    pub async fn swap_review(&self, before: &Review, after: &Review) -> Result<bool, SinkError> {
        match self {
            LiveStore::Embedded(s) => s.swap_review(before, after).await,
            LiveStore::Redis(s) => s.swap_review(before, after).await,
        }
    }
}

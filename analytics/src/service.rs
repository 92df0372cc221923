//! The front door: [`Analytics`] opens every backend from one [`Config`] and
//! is the only thing the gateway holds. Scans go in through [`Analytics::record`],
//! conversions through [`Analytics::report_conversions`], and every question
//! (live stats, analytics queries, recent scans, readiness) comes back out of
//! it. Which backend holds what is decided here and nowhere else:
//!
//! | what | Redis configured | ClickHouse configured | neither |
//! |---|---|---|---|
//! | live counters, last visits, claims, webhook outbox | Redis | (embedded) | embedded |
//! | scan and conversion rows, rollups | (embedded) | ClickHouse | embedded |
//!
//! The embedded store takes part only in the roles no server was given.

use crate::config::Config;
use crate::error::Error;
use crate::event::Conversion;
use crate::migration::{BackfillWatch, EmbeddedMigration};
use crate::query::{
    Backend, BreakdownRow, Bucket, CodeRow, Dimension, Funnel, Interval, Overview, Query, Summary,
    TopMetric, TopRow,
};
use crate::recorder::{Recorder, RecorderConfig, RecorderTasks};
use crate::sink::{
    ClickHouseEvents, EmbeddedSink, LiveStore, RedisCounters, ScanPage, Sink, Subject,
};
use crate::stats::CodeStats;
use crate::token::Signer;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The analytics handle. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: Recorder,
    /// The embedded store (whatever roles it plays): retention prunes it.
    embedded: EmbeddedSink,
    live: LiveStore,
    queries: Backend,
    /// For readiness: the ClickHouse the queries read, if any.
    clickhouse: Option<ClickHouseEvents>,
    redis: Option<RedisCounters>,
    signer: Signer,
    config: Config,
    /// One permit per analytics query running.
    permits: Semaphore,
    /// Embedded entries still to migrate to rollups (0: none).
    migrating: Arc<AtomicU64>,
    /// ClickHouse rows without rollups exist (`codelink migrate` builds them).
    backfill_pending: Arc<AtomicBool>,
    fraud: crate::fraud::FraudMetrics,
    /// Webhooks out: the outbox and the delivery settings.
    webhooks: Arc<crate::webhooks::Hub>,
}

/// The background work [`Analytics::open`] started; [`AnalyticsTasks::stop`]
/// flushes what the recorder holds and ends it.
#[must_use = "call stop() at shutdown, or the scans the recorder holds are lost"]
pub struct AnalyticsTasks {
    recorder: RecorderTasks,
    retention: Option<tokio::task::JoinHandle<()>>,
    migration: Option<EmbeddedMigration>,
    backfill: Option<BackfillWatch>,
    webhooks: crate::webhooks::DeliveryTasks,
}

impl Analytics {
    /// Opens the backends the configuration names (see the module docs) and
    /// starts the recorder. ClickHouse being down at start-up is not an error:
    /// its tables are created before its first write, and scans wait in its
    /// spool meanwhile.
    pub async fn open(config: Config) -> Result<(Self, AnalyticsTasks), Error> {
        let embedded_rows = config.clickhouse.is_none();
        let embedded_live = config.redis.is_none();
        let embedded = EmbeddedSink::open_with_cache(
            &config.data_dir,
            embedded_rows,
            embedded_live,
            config.cache_bytes,
        )
        .map_err(|e| Error::Open(format!("{e}; is another codelink using this data dir?")))?;
        let embedded_handle = embedded.clone();
        let webhooks = crate::webhooks::Hub::open(&config, &embedded)?;
        let mut sinks = Vec::new();
        if embedded_rows || embedded_live {
            sinks.push(Sink::Embedded(embedded.clone()));
        }
        // The recorder's sinks get connections of their own: their connection
        // tasks then live on the recorder's thread, and the API's (claims,
        // stats, queries) on the request threads, neither waiting behind the
        // other.
        let (live, redis) = match &config.redis {
            Some(r) => {
                sinks.push(Sink::Redis(
                    RedisCounters::connect(&r.target, &r.prefix)?
                        .with_retention(config.retain)
                        .with_replica_wait(r.wait_replicas, crate::config::REPLICA_WAIT),
                ));
                let api = RedisCounters::connect(&r.target, &r.prefix)?;
                (LiveStore::Redis(api.clone()), Some(api))
            }
            None => (LiveStore::Embedded(embedded.clone()), None),
        };
        let mut migration = None;
        let mut backfill = None;
        let (queries, clickhouse) = match &config.clickhouse {
            Some(c) => {
                let api = ClickHouseEvents::new(c);
                // Migrate now when ClickHouse is up; otherwise the writer does
                // it before its first insert.
                // A cluster's DDL runs on every node.
                let wait = Duration::from_secs(if c.cluster.is_some() { 30 } else { 5 });
                match tokio::time::timeout(wait, api.migrate()).await {
                    Ok(Ok(())) => tracing::info!("clickhouse migrations applied"),
                    Ok(Err(crate::sink::SinkError::ClusterConfig(e))) => {
                        return Err(Error::Open(format!("clickhouse cluster: {e}")))
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "clickhouse unavailable at start-up; scans are spooled until it answers")
                    }
                    Err(_) => tracing::warn!(
                        "clickhouse did not answer at start-up; scans are spooled until it answers"
                    ),
                }
                sinks.push(Sink::ClickHouse(Box::new(ClickHouseEvents::new(c))));
                backfill = Some(BackfillWatch::start(api.clone()));
                (Backend::ClickHouse(Box::new(api.clone())), Some(api))
            }
            None => {
                migration = Some(EmbeddedMigration::start(&embedded).await?);
                (Backend::Embedded(embedded), None)
            }
        };
        let (milestones_tx, milestones_rx) = tokio::sync::mpsc::channel(256);
        let recorder_config = RecorderConfig {
            data_dir: config.data_dir.clone(),
            flush_interval: config.recorder.flush_interval,
            batch_max: config.recorder.batch_max,
            queue_capacity: config.recorder.queue_capacity,
            nice: config.recorder.nice,
            spool_max_bytes: config.recorder.spool_max_bytes,
            backlog_max: config.recorder.backlog_max,
            retry_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(10),
            verdicts: config.verdicts.clone(),
            after_live_write: Some((
                if config.redis.is_some() {
                    crate::sink::SinkKind::Redis
                } else {
                    crate::sink::SinkKind::Embedded
                },
                milestones_tx,
            )),
        };
        let (recorder, tasks) = Recorder::start(recorder_config, sinks)
            .map_err(|e| Error::Open(format!("cannot start the scan recorder: {e}")))?;
        let inner = Inner {
            recorder,
            embedded: embedded_handle,
            live,
            queries,
            clickhouse,
            redis,
            signer: Signer::new(&config.secret),
            permits: Semaphore::new(config.queries.max_concurrent.max(1)),
            migrating: migration
                .as_ref()
                .map_or_else(Default::default, |m| m.remaining.clone()),
            backfill_pending: backfill
                .as_ref()
                .map_or_else(Default::default, |b| b.pending.clone()),
            config,
            fraud: Default::default(),
            webhooks: webhooks.clone(),
        };
        let analytics = Self {
            inner: Arc::new(inner),
        };
        let delivery = crate::webhooks::DeliveryTasks::start(
            webhooks,
            analytics.inner.live.clone(),
            milestones_rx,
        );
        let retention = analytics
            .inner
            .config
            .retain
            .map(|_| tokio::spawn(retention_loop(analytics.clone())));
        Ok((
            analytics,
            AnalyticsTasks {
                retention,
                recorder: tasks,
                migration,
                backfill,
                webhooks: delivery,
            },
        ))
    }

    /// Hands a scan to the recorder without waiting (the redirect path).
    pub fn record(&self, scan: crate::event::RawScan) {
        self.inner.recorder.record(scan);
    }

    /// Signs the scan tokens put on destinations and verifies them on conversions.
    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    pub(crate) fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    pub(crate) fn queries(&self) -> &Backend {
        &self.inner.queries
    }

    pub(crate) fn live(&self) -> &LiveStore {
        &self.inner.live
    }

    pub(crate) fn webhooks(&self) -> &crate::webhooks::Hub {
        &self.inner.webhooks
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The live counters of one code (Redis when configured, else embedded).
    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, Error> {
        match tokio::time::timeout(Duration::from_secs(3), self.inner.live.code_stats(code)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(Error::Unavailable(
                "the live store did not answer within 3 s".into(),
            )),
        }
    }

    /// Whether every configured backend answers.
    pub async fn ready(&self) -> Result<(), Error> {
        let within = |name: &'static str| {
            move |r: Result<Result<(), crate::sink::SinkError>, tokio::time::error::Elapsed>| {
                match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Error::Unavailable(format!("{name}: {e}"))),
                    Err(_) => Err(Error::Unavailable(format!("{name}: no answer within 2 s"))),
                }
            }
        };
        if let Some(ch) = &self.inner.clickhouse {
            within("clickhouse")(tokio::time::timeout(Duration::from_secs(2), ch.ping()).await)?;
        }
        if let Some(r) = &self.inner.redis {
            within("redis")(tokio::time::timeout(Duration::from_secs(2), r.ping()).await)?;
        }
        Ok(())
    }

    /// Appends the recorder's Prometheus series.
    pub fn render_metrics(&self, out: &mut String) {
        let r = &self.inner.recorder;
        r.metrics().render(out, r.sinks());
        self.inner.fraud.render(out);
        self.inner.webhooks.render(out);
    }

    pub(crate) fn fraud_metrics(&self) -> &crate::fraud::FraudMetrics {
        &self.inner.fraud
    }

    /// Runs one analytics query under the limits: at most `max_concurrent` at
    /// once (else [`Error::Busy`]), each for at most `timeout`.
    async fn limited<T>(&self, query: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.rollups_ready()?;
        let limits = &self.inner.config.queries;
        let Ok(_permit) = self.inner.permits.try_acquire() else {
            return Err(Error::Busy {
                retry_after: Duration::from_secs(1),
            });
        };
        match tokio::time::timeout(limits.timeout, query).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(limits.timeout)),
        }
    }

    /// Whether the rollups hold everything stored (else queries would miss
    /// data an earlier version wrote).
    fn rollups_ready(&self) -> Result<(), Error> {
        match self.inner.migrating.load(Relaxed) {
            0 if self.inner.backfill_pending.load(Relaxed) => Err(Error::MigrationRequired),
            0 => Ok(()),
            remaining => Err(Error::Migrating { remaining }),
        }
    }

    /// Up to `limit` (at most 1000) of `code`'s recorded scans older than the
    /// scan id `before`, newest first (drill-down; raw scans, never summed).
    pub async fn recent_scans(
        &self,
        code: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, Error> {
        let before = match before {
            None => None,
            Some(b) => Some(
                crate::ScanId::parse(b)
                    .ok_or_else(|| Error::InvalidQuery(format!("cursor {b:?} is not a scan id")))?,
            ),
        };
        let limit = limit.clamp(1, 1000);
        let page = async {
            match &self.inner.queries {
                Backend::Embedded(s) => Ok(s.recent_scans(code, before, limit).await?),
                Backend::ClickHouse(c) => Ok(c.recent_scans(code, before, limit).await?),
            }
        };
        self.limited(page).await
    }

    /// Deletes the raw scans older than the configured retention (see
    /// [`Config::retain`]) from every store that holds them: embedded scan
    /// chunks with the visitor data of that age, ClickHouse's monthly
    /// partitions of `scans` that ended before it. Rollups, counters and
    /// conversions stay. `None` when no retention is configured.
    pub async fn prune(&self, now_ms: u64) -> Result<Option<Pruned>, Error> {
        let Some(retain) = self.inner.config.retain else {
            return Ok(None);
        };
        let cutoff_ms = now_ms.saturating_sub(retain.as_millis() as u64);
        let embedded = self.inner.embedded.prune_before(cutoff_ms).await?;
        let clickhouse_partitions = match &self.inner.clickhouse {
            Some(ch) => ch.drop_scans_before(cutoff_ms).await?,
            None => Vec::new(),
        };
        Ok(Some(Pruned {
            cutoff_ms,
            embedded,
            clickhouse_partitions,
        }))
    }

    /// Erases a visitor's or a customer's identifiers from every store that
    /// holds them (GDPR art. 17): the rows stay, with the ids blanked, so
    /// every count and sum stays right. On ClickHouse the change is a
    /// mutation that completes in the background.
    pub async fn erase(&self, who: Subject) -> Result<Erasure, Error> {
        let embedded = self.inner.embedded.erase(who.clone()).await?;
        let (redis_keys_deleted, redis_answers_rewritten) = match &self.inner.redis {
            Some(r) => r.erase(&who).await?,
            None => (0, 0),
        };
        let clickhouse_mutations = match &self.inner.clickhouse {
            Some(ch) => {
                ch.erase(&who).await?;
                true
            }
            None => false,
        };
        Ok(Erasure {
            embedded,
            redis_keys_deleted,
            redis_answers_rewritten,
            clickhouse_mutations,
        })
    }

    /// Totals over the query.
    pub async fn summary(&self, q: &Query) -> Result<Summary, Error> {
        self.limited(self.inner.queries.summary(q)).await
    }

    /// One bucket per hour or day (in `q.tz`) that has scans or conversions.
    pub async fn timeseries(&self, q: &Query, interval: Interval) -> Result<Vec<Bucket>, Error> {
        self.check_buckets(q, interval)?;
        self.limited(self.inner.queries.timeseries(q, interval))
            .await
    }

    fn check_buckets(&self, q: &Query, interval: Interval) -> Result<(), Error> {
        let limits = &self.inner.config.queries;
        let buckets = crate::query::bucket_count(q, interval);
        if buckets > limits.max_buckets as u64 {
            return Err(Error::InvalidQuery(format!(
                "a timeseries has at most {} buckets, this one would have {buckets}: \
                 use interval=day or a shorter range",
                limits.max_buckets
            )));
        }
        Ok(())
    }

    /// The summary, the timeseries and a breakdown by each of `dimensions`
    /// of one query, read concurrently under one query slot (what a page
    /// about one code shows): the same answers as the separate calls.
    pub async fn overview(
        &self,
        q: &Query,
        interval: Interval,
        dimensions: &[Dimension],
    ) -> Result<Overview, Error> {
        self.check_buckets(q, interval)?;
        let b = &self.inner.queries;
        self.limited(async {
            let (summary, timeseries, breakdowns) = tokio::try_join!(
                b.summary(q),
                b.timeseries(q, interval),
                b.breakdowns(q, dimensions)
            )?;
            Ok(Overview {
                summary,
                timeseries,
                breakdowns,
            })
        })
        .await
    }

    /// One row per key of `dimension`.
    pub async fn breakdown(
        &self,
        q: &Query,
        dimension: Dimension,
    ) -> Result<Vec<BreakdownRow>, Error> {
        self.limited(self.inner.queries.breakdown(q, dimension))
            .await
    }

    /// Human scans → unique scanners → signups → purchases.
    pub async fn funnel(&self, q: &Query) -> Result<Funnel, Error> {
        self.limited(self.inner.queries.funnel(q)).await
    }

    /// The `limit` codes with the highest `metric`.
    pub async fn top(
        &self,
        q: &Query,
        metric: TopMetric,
        limit: usize,
    ) -> Result<Vec<TopRow>, Error> {
        self.limited(self.inner.queries.top(q, metric, limit)).await
    }

    /// One row per code with human scans or conversions in the query, sorted
    /// by code (the "my codes" / "all codes" tables).
    pub async fn code_rows(&self, q: &Query) -> Result<Vec<CodeRow>, Error> {
        self.limited(self.inner.queries.code_rows(q)).await
    }

    /// Up to `limit` (1 to 100) of the stored conversions credited to `code`
    /// (and, with `owner`, to that owner), newest first.
    pub async fn recent_conversions(
        &self,
        code: &str,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Conversion>, Error> {
        self.limited(self.inner.queries.recent_conversions(code, owner, limit))
            .await
    }
}

/// What an erasure changed ([`Analytics::erase`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    /// In the embedded store (rows and/or live data, whichever it holds).
    pub embedded: crate::sink::Erased,
    /// Redis keys deleted (latest visits, a customer's link and purchases).
    pub redis_keys_deleted: u64,
    /// Recorded conversion answers in Redis rewritten without the ids.
    pub redis_answers_rewritten: u64,
    /// Whether ClickHouse mutations were submitted (they complete in the
    /// background).
    pub clickhouse_mutations: bool,
}

/// What a retention pass deleted ([`Analytics::prune`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Raw scans made before this (Unix ms) were deleted.
    pub cutoff_ms: u64,
    pub embedded: crate::sink::EmbeddedPruned,
    /// Monthly partitions (`YYYYMM`) of ClickHouse `scans` dropped.
    pub clickhouse_partitions: Vec<String>,
}

/// Prunes once a minute after start, then every hour.
async fn retention_loop(analytics: Analytics) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::time::sleep(wait).await;
        wait = Duration::from_secs(3600);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match analytics.prune(now_ms).await {
            Ok(Some(p)) => tracing::info!(
                cutoff_ms = p.cutoff_ms,
                scan_chunks = p.embedded.scan_chunks,
                visit_marks = p.embedded.visit_marks,
                last_visits = p.embedded.last_visits,
                clickhouse_partitions = ?p.clickhouse_partitions,
                "retention: raw scans pruned"
            ),
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retried in an hour"),
        }
    }
}

impl AnalyticsTasks {
    /// Call once nothing records any more (the HTTP server has drained): the
    /// recorder cuts a last batch and every sink writes it, or spools it to
    /// disk when it cannot within `deadline`; spool replays still running then
    /// stop (their files stay and are replayed at the next start).
    pub async fn stop(self, analytics: &Analytics, deadline: Duration) {
        if let Some(r) = self.retention {
            r.abort();
        }
        if let Some(m) = self.migration {
            m.stop().await;
        }
        if let Some(b) = self.backfill {
            b.stop().await;
        }
        let milestones = self.webhooks.stop(deadline).await;
        self.recorder
            .finish(&analytics.inner.recorder, deadline)
            .await;
        // After the recorder: its last batches' milestones are made, and the
        // task ends when the recorder's end of the channel is dropped.
        milestones.finish(deadline).await;
    }
}

//! Rollups for data written before they existed, from the front door.
//!
//! - Embedded: [`Analytics::open`](crate::Analytics::open) migrates by itself
//!   in the background ([`EmbeddedMigration`]); queries answer
//!   [`Error::Migrating`] until it is done. [`run`] does the same in the
//!   foreground (`codelink migrate`), when no gateway holds the data dir.
//! - ClickHouse: several gateways may share the database, so the backfill is
//!   never started by a gateway on its own: [`run`] does it, day by day,
//!   resumable. Until it is done, queries answer [`Error::MigrationRequired`]
//!   ([`BackfillWatch`] notices when another process finished it).

use crate::config::Config;
use crate::error::Error;
use crate::sink::{ClickHouseEvents, EmbeddedSink};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a gateway looks again whether ClickHouse was backfilled.
const RECHECK: Duration = Duration::from_secs(5);

/// Entries migrated per embedded transaction: small enough that new batches
/// are not held up for long.
const STEP: usize = 64;

/// What [`run`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Embedded: `done` of `total` stored entries migrated.
    Embedded { done: u64, total: u64 },
    /// ClickHouse: `done` of `total` days backfilled.
    ClickHouse { done: u64, total: u64 },
}

/// Builds every missing rollup of the configured backends, reporting progress;
/// safe to interrupt and to run again.
pub async fn run(config: &Config, mut progress: impl FnMut(Progress)) -> Result<(), Error> {
    if let Some(c) = &config.clickhouse {
        let ch = ClickHouseEvents::new(c);
        let todo = ch.backfill_todo().await?;
        let total = todo.days.len() as u64;
        progress(Progress::ClickHouse { done: 0, total });
        for (i, day) in todo.days.into_iter().enumerate() {
            ch.backfill_day(day).await?;
            progress(Progress::ClickHouse {
                done: i as u64 + 1,
                total,
            });
        }
        if total > 0 {
            ch.backfill_finish().await?;
        }
    } else {
        let embedded = EmbeddedSink::open_with_cache(
            &config.data_dir,
            true,
            config.redis.is_none(),
            config.cache_bytes,
        )
            .map_err(|e| {
                Error::Open(format!(
                    "{e}; stop the gateway using this data dir first (it migrates the data dir itself at start-up)"
                ))
            })?;
        let total = embedded.migration_remaining().await?.remaining;
        progress(Progress::Embedded { done: 0, total });
        let mut remaining = total;
        while remaining > 0 {
            remaining = embedded.migrate_step(STEP).await?.remaining;
            progress(Progress::Embedded {
                done: total.saturating_sub(remaining),
                total,
            });
        }
    }
    Ok(())
}

/// The embedded store's background migration, started at open when needed.
pub(crate) struct EmbeddedMigration {
    /// Entries left; 0 when done.
    pub remaining: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EmbeddedMigration {
    pub async fn start(sink: &EmbeddedSink) -> Result<Self, Error> {
        let total = sink.migration_remaining().await?.remaining;
        let remaining = Arc::new(AtomicU64::new(total));
        let (stop, mut stop_rx) = watch::channel(false);
        let sink = sink.clone();
        let left = remaining.clone();
        if total > 0 {
            tracing::warn!(
                entries = total,
                "the data dir holds data written by an earlier version: building its rollups \
                 in the background; analytics answer 503 until done"
            );
        }
        let task = tokio::spawn(async move {
            let mut last_logged = 0;
            while left.load(Relaxed) > 0 && !*stop_rx.borrow() {
                match sink.migrate_step(STEP).await {
                    Ok(p) => {
                        left.store(p.remaining, Relaxed);
                        let done = total - p.remaining.min(total);
                        if done * 10 / total.max(1) > last_logged || p.remaining == 0 {
                            last_logged = done * 10 / total.max(1);
                            tracing::info!(done, total, "rollup migration");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rollup migration step failed; retrying in 5 s");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                            _ = stop_rx.changed() => {}
                        }
                    }
                }
                // Let new batches and queries in between steps.
                tokio::task::yield_now().await;
            }
        });
        Ok(Self {
            remaining,
            stop,
            task,
        })
    }

    /// Stops between two steps (each is one transaction).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Whether ClickHouse still holds rows without rollups: decided at open, then
/// looked up again every 5 s while pending (another process may finish it).
pub(crate) struct BackfillWatch {
    pub pending: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BackfillWatch {
    pub fn start(ch: ClickHouseEvents) -> Self {
        let pending = Arc::new(AtomicBool::new(false));
        let (stop, mut stop_rx) = watch::channel(false);
        let flag = pending.clone();
        let task = tokio::spawn(async move {
            // At first the full answer (which also writes the done marker when
            // there is nothing to backfill), then the cheap marker lookup.
            let mut decided = false;
            loop {
                let check = async {
                    if decided {
                        ch.backfill_pending().await
                    } else {
                        ch.backfill_todo().await.map(|t| !t.days.is_empty())
                    }
                };
                let checked = tokio::select! {
                    r = tokio::time::timeout(Duration::from_secs(30), check) => r,
                    _ = stop_rx.changed() => return,
                };
                match checked {
                    Ok(Ok(pending)) => {
                        if pending && !decided {
                            tracing::warn!(
                                "ClickHouse holds rows written by an earlier version without \
                                 rollups: run `codelink migrate`; analytics answer 503 until then"
                            );
                        }
                        decided = true;
                        flag.store(pending, Relaxed);
                        if !pending {
                            return;
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "backfill check failed"),
                    Err(_) => tracing::debug!("backfill check timed out"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(RECHECK) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Self {
            pending,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

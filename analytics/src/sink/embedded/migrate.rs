//! Rollups for data an earlier version wrote: scans in the old layouts (one
//! JSON row per scan, then chunks of every code keyed by time) and the
//! conversions stored before rollups existed (listed at open in
//! `legacy_conversions`).
//!
//! Each step moves some old entries into the per-code chunks, adds their cells
//! to the rollups and deletes them (or their `legacy_conversions` entry) in
//! one transaction: a step happens once or not at all, so the migration can be
//! stopped at any point and resumed, and running it again changes nothing.
//! New batches never write the old layouts, so the two never overlap.

use super::write::{apply_rollups, find_scan, write_chunks};
use super::{err, EmbeddedSink, CONVERSIONS, LEGACY_CONVERSIONS, SCANS, SCAN_CHUNKS};
use crate::event::{Conversion, Scan};
use crate::rollup::ScanDims;
use crate::sink::{chunk, Halt, SinkError};
use redb::{ReadableTable, ReadableTableMetadata};

/// What is left of a migration, in stored entries (an old chunk, an old scan
/// row, a conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrationProgress {
    pub remaining: u64,
}

impl EmbeddedSink {
    /// Entries still to migrate (0 when the store holds no rows, i.e. when
    /// ClickHouse keeps them).
    pub async fn migration_remaining(&self) -> Result<MigrationProgress, SinkError> {
        if !self.events {
            return Ok(MigrationProgress::default());
        }
        self.blocking(|db| {
            let tx = db.begin_read().map_err(err)?;
            Ok(MigrationProgress {
                remaining: tx
                    .open_table(SCAN_CHUNKS)
                    .map_err(err)?
                    .len()
                    .map_err(err)?
                    + tx.open_table(SCANS).map_err(err)?.len().map_err(err)?
                    + tx.open_table(LEGACY_CONVERSIONS)
                        .map_err(err)?
                        .len()
                        .map_err(err)?,
            })
        })
        .await
    }

    /// Migrates up to `max` entries in one transaction; returns what is left.
    pub async fn migrate_step(&self, max: usize) -> Result<MigrationProgress, SinkError> {
        if !self.events {
            return Ok(MigrationProgress::default());
        }
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let mut scans: Vec<Scan> = Vec::new();
            let mut budget = max;
            {
                let mut chunks = tx.open_table(SCAN_CHUNKS).map_err(err)?;
                let mut keys = Vec::new();
                for item in chunks.iter().map_err(err)?.take(budget) {
                    let (k, v) = item.map_err(err)?;
                    match chunk::decode(v.value()) {
                        Ok(s) => scans.extend(s),
                        Err(e) => tracing::error!(key = k.value(), error = %e, "unreadable old scan chunk dropped"),
                    }
                    keys.push(k.value().to_string());
                }
                for k in &keys {
                    chunks.remove(k.as_str()).map_err(err)?;
                }
                budget -= keys.len();
                // The first layout: one JSON row per scan, up to a chunk's worth per entry of budget.
                let mut rows = tx.open_table(SCANS).map_err(err)?;
                let mut keys = Vec::new();
                for item in rows.iter().map_err(err)?.take(budget * chunk::CHUNK_MAX) {
                    let (k, v) = item.map_err(err)?;
                    match serde_json::from_slice::<Scan>(v.value()) {
                        Ok(s) => scans.push(s),
                        Err(e) => tracing::error!(key = k.value(), error = %e, "unreadable old scan row dropped"),
                    }
                    keys.push(k.value().to_string());
                }
                for k in &keys {
                    rows.remove(k.as_str()).map_err(err)?;
                }
                budget = budget.saturating_sub(keys.len().div_ceil(chunk::CHUNK_MAX));
            }
            // Time order within a code, as new batches write them.
            scans.sort_by(|a, b| (&a.code, &a.scan_id).cmp(&(&b.code, &b.scan_id)));
            scans.dedup_by(|a, b| a.scan_id == b.scan_id);
            write_chunks(&tx, &scans, &Halt::default())?;

            let mut conversions: Vec<(Conversion, Option<ScanDims>)> = Vec::new();
            {
                let mut legacy = tx.open_table(LEGACY_CONVERSIONS).map_err(err)?;
                let rows = tx.open_table(CONVERSIONS).map_err(err)?;
                let mut ids = Vec::new();
                for item in legacy.iter().map_err(err)?.take(budget * 64) {
                    let (k, _) = item.map_err(err)?;
                    ids.push(k.value().to_string());
                }
                for id in &ids {
                    let row = rows.get(id.as_str()).map_err(err)?;
                    let parsed = row.map(|v| serde_json::from_slice::<Conversion>(v.value()));
                    match parsed {
                        Some(Ok(c)) => {
                            let dims = find_scan(&tx, &c.code, &c.scan_id)?
                                .as_ref()
                                .map(ScanDims::of);
                            conversions.push((c, dims));
                        }
                        Some(Err(e)) => {
                            tracing::error!(event_id = %id, error = %e, "unreadable conversion not rolled up")
                        }
                        None => {}
                    }
                    legacy.remove(id.as_str()).map_err(err)?;
                }
            }
            let with_dims: Vec<(&Conversion, Option<&ScanDims>)> =
                conversions.iter().map(|(c, d)| (c, d.as_ref())).collect();
            apply_rollups(&tx, &scans, &with_dims, &[])?;
            let remaining = tx.open_table(SCAN_CHUNKS).map_err(err)?.len().map_err(err)?
                + tx.open_table(SCANS).map_err(err)?.len().map_err(err)?
                + tx
                    .open_table(LEGACY_CONVERSIONS)
                    .map_err(err)?
                    .len()
                    .map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(MigrationProgress { remaining })
        })
        .await
    }
}

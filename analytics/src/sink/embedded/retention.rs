//! Retention of raw scans in the embedded store: scan chunks (and the rows of
//! earlier layouts) older than a cutoff are deleted, with the per-day visitor
//! marks and the last visits of that age. Rollups, counters and conversions
//! stay, so every number over any range is unchanged; only the drill-down of
//! raw scans (and attribution to a scan that old) no longer finds them.

use super::{
    err, EmbeddedSink, CODE_CHUNKS, LAST_VISITS, LAST_VISITS_PACKED, SCANS, SCAN_CHUNKS, VISITS,
};
use crate::records::LastVisit;
use crate::sink::{chunk, SinkError};
use crate::ScanId;
use redb::ReadableTable;

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Chunks of raw scans (and rows of earlier layouts).
    pub scan_chunks: u64,
    /// Per-day visitor marks (`{code}\0{day}\0{visitor}`), as versions before
    /// 2026-11-30 wrote them.
    pub visit_marks: u64,
    /// Latest visits of a visitor to a code.
    pub last_visits: u64,
}

/// Deletes per write transaction, so that one pass never holds a huge one.
const PER_TX: usize = 10_000;

impl EmbeddedSink {
    /// Deletes the raw scans made before `cutoff_ms` (Unix ms) and the visitor
    /// data of that age. Idempotent: a second pass deletes nothing more.
    pub async fn prune_before(&self, cutoff_ms: u64) -> Result<Pruned, SinkError> {
        self.blocking(move |db| {
            let mut pruned = Pruned::default();
            // A chunk spans less than CHUNK_SPAN_MS from its key (its first
            // scan): those keyed before this all lie before the cutoff.
            let before = ScanId::from_parts(cutoff_ms.saturating_sub(chunk::CHUNK_SPAN_MS), 0, 0)
                .to_string();
            let cutoff_day = crate::event::day_of(cutoff_ms);
            loop {
                let tx = db.begin_write().map_err(err)?;
                let mut n = 0usize;
                {
                    // Keys "{code}\0{first scan id}": walk code by code, reading only
                    // the keys to delete plus the first of each code.
                    let mut chunks = tx.open_table(CODE_CHUNKS).map_err(err)?;
                    let mut doomed: Vec<String> = Vec::new();
                    let mut from = String::new();
                    while doomed.len() < PER_TX {
                        let next = chunks
                            .range(from.as_str()..)
                            .map_err(err)?
                            .next()
                            .transpose()
                            .map_err(err)?
                            .map(|(k, _)| k.value().to_string());
                        let Some(first) = next else { break };
                        let code = first.split('\0').next().unwrap_or("").to_string();
                        let (lo, hi) = (format!("{code}\0"), format!("{code}\0{before}"));
                        for item in chunks.range(lo.as_str()..hi.as_str()).map_err(err)? {
                            let (k, _) = item.map_err(err)?;
                            doomed.push(k.value().to_string());
                            if doomed.len() >= PER_TX {
                                break;
                            }
                        }
                        from = format!("{code}\u{1}");
                    }
                    for k in &doomed {
                        chunks.remove(k.as_str()).map_err(err)?;
                    }
                    n += doomed.len();
                    pruned.scan_chunks += doomed.len() as u64;
                    // Earlier layouts (not migrated yet): keyed by scan id.
                    for table in [SCAN_CHUNKS, SCANS] {
                        let mut t = tx.open_table(table).map_err(err)?;
                        let old: Vec<String> = t
                            .range(..before.as_str())
                            .map_err(err)?
                            .take(PER_TX)
                            .map(|i| i.map(|(k, _)| k.value().to_string()))
                            .collect::<Result<_, _>>()
                            .map_err(err)?;
                        for k in &old {
                            t.remove(k.as_str()).map_err(err)?;
                        }
                        n += old.len();
                        pruned.scan_chunks += old.len() as u64;
                    }
                    let mut visits = tx.open_table(VISITS).map_err(err)?;
                    let removed = visits
                        .extract_if(|k, _| {
                            k.split('\0')
                                .nth(1)
                                .is_some_and(|day| day < cutoff_day.as_str())
                        })
                        .map_err(err)?
                        .take(PER_TX)
                        .count();
                    n += removed;
                    pruned.visit_marks += removed as u64;
                    let old =
                        |v: &[u8]| LastVisit::decode(v).is_some_and(|lv| lv.scan_ms < cutoff_ms);
                    let mut last = tx.open_table(LAST_VISITS_PACKED).map_err(err)?;
                    let mut removed = last
                        .extract_if(|_, v| old(v))
                        .map_err(err)?
                        .take(PER_TX)
                        .count();
                    let mut legacy = tx.open_table(LAST_VISITS).map_err(err)?;
                    removed += legacy
                        .extract_if(|_, v| old(v))
                        .map_err(err)?
                        .take(PER_TX - removed)
                        .count();
                    n += removed;
                    pruned.last_visits += removed as u64;
                }
                tx.commit().map_err(err)?;
                if n == 0 {
                    return Ok(pruned);
                }
            }
        })
        .await
    }
}

//! Reading back: rollup cells for the analytics queries (never raw scans), a
//! code's recent scans for drill-down, and test helpers.

use super::write::decode_owner;
use super::{
    block_key, dim_part, err, totals_key, EmbeddedSink, CODE_CHUNKS, CONVERSION_BLOCKS, DIMS_PART,
    LATEST_OWNERS, SCANS, SCAN_BLOCKS, SCAN_CHUNKS, TOTALS, TOTALS_PART,
};
use crate::codec::Malformed;
use crate::event::Scan;
use crate::rollup::block::{
    cells_of, conversion_cells_of, totals_of, ConversionCell, ConversionCellRef, ScanCell,
    TotalsRef,
};
use crate::rollup::{Dim, Grain};
use crate::sink::{chunk, ScanPage, SinkError};
use crate::ScanId;
use redb::{ReadTransaction, ReadableTable};

/// Rollup reads within one read transaction (a consistent snapshot).
pub(crate) struct Reader {
    pub(super) tx: ReadTransaction,
}

impl Reader {
    /// Calls `f(bucket, value, cell)` for each scan cell of `scope` at
    /// `grain` in dimension `dim`, with `from <= bucket < to` (Unix seconds).
    pub fn scan_cells(
        &self,
        scope: &str,
        grain: Grain,
        dim: Dim,
        (from, to): (u32, u32),
        mut f: impl FnMut(u32, &str, ScanCell),
    ) -> Result<(), SinkError> {
        let table = self.tx.open_table(SCAN_BLOCKS).map_err(err)?;
        // A bucket's dimensions are in one entry, or (busy) one per dimension.
        let parts: &[u8] = if dim == Dim::Total {
            &[TOTALS_PART]
        } else {
            &[DIMS_PART, dim_part(dim)]
        };
        for &part in parts {
            each_block(&table, scope, grain, part, (from, to), |bucket, bytes| {
                for cell in cells_of(bytes, dim).map_err(err)? {
                    let (value, cell) = cell.map_err(err)?;
                    f(bucket, value, cell);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Calls `f(bucket, key, cell)` for each conversion cell of `scope` at
    /// `grain` in dimension `dim`, with `from <= bucket < to`.
    pub fn conversion_cells(
        &self,
        scope: &str,
        grain: Grain,
        dim: Dim,
        span: (u32, u32),
        mut f: impl FnMut(u32, ConversionCellRef<'_>, ConversionCell),
    ) -> Result<(), SinkError> {
        let table = self.tx.open_table(CONVERSION_BLOCKS).map_err(err)?;
        let part = if dim == Dim::Total {
            TOTALS_PART
        } else {
            DIMS_PART
        };
        each_block(&table, scope, grain, part, span, |bucket, bytes| {
            for cell in conversion_cells_of(bytes, Some(dim)).map_err(err)? {
                let (key, cell) = cell.map_err(err)?;
                f(bucket, key, cell);
            }
            Ok(())
        })
    }

    /// Calls `f(code, totals)` for every code's totals at `grain` with
    /// `from <= bucket < to` (read in place).
    pub fn totals(
        &self,
        grain: Grain,
        (from, to): (u32, u32),
        mut f: impl FnMut(&str, TotalsRef<'_>) -> Result<(), Malformed>,
    ) -> Result<(), SinkError> {
        let table = self.tx.open_table(TOTALS).map_err(err)?;
        let (lo, hi) = (totals_key(grain, from, ""), totals_key(grain, to, ""));
        for item in table.range(lo.as_slice()..hi.as_slice()).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let code = std::str::from_utf8(&k.value()[5..]).map_err(err)?;
            f(code, totals_of(v.value()).map_err(err)?).map_err(err)?;
        }
        Ok(())
    }

    /// The owner recorded with the code's latest stored conversion.
    pub fn latest_owner(&self, code: &str) -> Result<Option<String>, SinkError> {
        let table = self.tx.open_table(LATEST_OWNERS).map_err(err)?;
        let v = table.get(code).map_err(err)?;
        Ok(v.and_then(|v| decode_owner(v.value()))
            .map(|(_, _, owner)| owner))
    }
}

/// Calls `f(bucket, value)` for the entries of `scope`, `grain` and `part`
/// in `table` with `from <= bucket < to`.
fn each_block(
    table: &redb::ReadOnlyTable<&[u8], &[u8]>,
    scope: &str,
    grain: Grain,
    part: u8,
    (from, to): (u32, u32),
    mut f: impl FnMut(u32, &[u8]) -> Result<(), SinkError>,
) -> Result<(), SinkError> {
    let (lo, hi) = (
        block_key(scope, grain, part, from),
        block_key(scope, grain, part, to),
    );
    for item in table.range(lo.as_slice()..hi.as_slice()).map_err(err)? {
        let (k, v) = item.map_err(err)?;
        f(bucket_of(k.value())?, v.value())?;
    }
    Ok(())
}

/// The bucket (Unix seconds) a block key ends with.
fn bucket_of(key: &[u8]) -> Result<u32, SinkError> {
    let tail = key
        .len()
        .checked_sub(4)
        .ok_or_else(|| err("short block key"))?;
    Ok(u32::from_be_bytes(
        key[tail..].try_into().map_err(|_| err("short block key"))?,
    ))
}

impl EmbeddedSink {
    /// Runs `f` on a consistent snapshot, on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.blocking(move |db| {
            let reader = Reader {
                tx: db.begin_read().map_err(err)?,
            };
            f(&reader)
        })
        .await
    }

    /// The stored scan `scan_id` of `code`: the chunks of that code starting
    /// within a chunk's span before the scan's time (its id holds it).
    pub async fn find_scan(&self, code: &str, scan_id: &str) -> Result<Option<Scan>, SinkError> {
        let Some(id) = ScanId::parse(scan_id) else {
            return Ok(None);
        };
        let (code, scan_id) = (code.to_string(), scan_id.to_string());
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CODE_CHUNKS).map_err(err)?;
            let ms = id.unix_ms();
            let at = |ms: u64| ScanId::from_parts(ms, 0, 0).to_string();
            let lo = format!("{code}\0{}", at(ms.saturating_sub(chunk::CHUNK_SPAN_MS)));
            let hi = format!("{code}\0{}", at(ms + 1));
            for item in table.range(lo.as_str()..hi.as_str()).map_err(err)? {
                let (_, v) = item.map_err(err)?;
                if let Ok(scans) = chunk::decode(v.value()) {
                    if let Some(s) = scans.into_iter().find(|s| s.scan_id == scan_id) {
                        return Ok(Some(s));
                    }
                }
            }
            Ok(None)
        })
        .await
    }

    /// Up to `limit` of `code`'s scans older than the scan id `before` (all
    /// when `None`), newest first.
    pub async fn recent_scans(
        &self,
        code: &str,
        before: Option<ScanId>,
        limit: usize,
    ) -> Result<ScanPage, SinkError> {
        let code = code.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CODE_CHUNKS).map_err(err)?;
            let before_text = before.map(|b| b.to_string());
            let lo = format!("{code}\0");
            let hi = match &before_text {
                Some(b) => format!("{code}\0{b}"),
                None => format!("{code}\u{1}"),
            };
            let mut found: Vec<Scan> = Vec::new();
            for item in table.range(lo.as_str()..hi.as_str()).map_err(err)?.rev() {
                let (k, v) = item.map_err(err)?;
                // Chunks of one code may overlap in time by less than a chunk's
                // span: once `limit + 1` scans are in hand (one more tells
                // whether there is a next page), only chunks starting within
                // that span of the oldest one kept can add newer scans.
                if found.len() > limit {
                    let chunk_ms = k.value()[lo.len()..]
                        .get(..26)
                        .and_then(ScanId::parse)
                        .map_or(0, ScanId::unix_ms);
                    if chunk_ms + chunk::CHUNK_SPAN_MS < found[limit].ts_ms {
                        break;
                    }
                }
                match chunk::decode(v.value()) {
                    Ok(scans) => found.extend(scans.into_iter().filter(|s| {
                        before_text
                            .as_ref()
                            .is_none_or(|b| s.scan_id.as_str() < b.as_str())
                    })),
                    Err(e) => tracing::error!(error = %e, "unreadable scan chunk skipped"),
                }
                found.sort_unstable_by(|a, b| b.scan_id.cmp(&a.scan_id));
                found.dedup_by(|a, b| a.scan_id == b.scan_id);
                found.truncate(limit + 1);
            }
            Ok(ScanPage::of(found, limit))
        })
        .await
    }

    /// Every stored scan, in scan-id order, from every layout (tests and small
    /// exports; it reads everything).
    pub async fn all_scans(&self) -> Result<Vec<Scan>, SinkError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(err)?;
            let mut out: Vec<Scan> = Vec::new();
            for table in [CODE_CHUNKS, SCAN_CHUNKS] {
                let table = tx.open_table(table).map_err(err)?;
                for item in table.iter().map_err(err)? {
                    let (k, v) = item.map_err(err)?;
                    match chunk::decode(v.value()) {
                        Ok(scans) => out.extend(scans),
                        Err(e) => {
                            tracing::error!(key = k.value(), error = %e, "unreadable scan chunk skipped")
                        }
                    }
                }
            }
            let rows = tx.open_table(SCANS).map_err(err)?;
            for item in rows.iter().map_err(err)? {
                let (k, v) = item.map_err(err)?;
                match serde_json::from_slice(v.value()) {
                    Ok(s) => out.push(s),
                    Err(e) => tracing::error!(key = k.value(), error = %e, "unreadable row skipped"),
                }
            }
            out.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
            out.dedup_by(|a, b| a.scan_id == b.scan_id);
            Ok(out)
        })
        .await
    }
}

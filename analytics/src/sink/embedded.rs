//! The embedded sink: `scans.redb` in the data dir holds scan rows and counters
//! when no ClickHouse / Redis is configured.

use super::{chunk, SinkError};
use crate::batch::{counter_deltas, human_visitors, latest_human_scans, Batch};
use crate::event::{Conversion, Scan};
use crate::records::{Claim, CustomerLink, LastVisit};
use crate::stats::CodeStats;
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::path::Path;
use std::sync::Arc;

/// scan id → scan as JSON: how scans were stored before chunks; still read.
const SCANS: TableDefinition<&str, &[u8]> = TableDefinition::new("scans");
/// first scan id → a chunk of scans (see [`super::chunk`]). Scan ids sort by time.
const SCAN_CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_chunks");
/// "{code}\0{field}" → count.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// "{code}\0{day}\0{visitor}" → 1: the exact unique visitors per day.
const VISITS: TableDefinition<&str, u8> = TableDefinition::new("visits");
/// batch id → number of scans: batches already applied.
const BATCHES: TableDefinition<&str, u64> = TableDefinition::new("batches");
/// event id → conversion as JSON: the stored conversions (no ClickHouse).
const CONVERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversions");
/// event id → conversion as JSON: the first answer given for each event id.
const CLAIMS: TableDefinition<&str, &[u8]> = TableDefinition::new("claims");
/// customer id → the attribution of the customer's first attributed conversion.
const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");
/// "{code}\0{visitor}" → the latest human scan of the code by the visitor.
const LAST_VISITS: TableDefinition<&str, &[u8]> = TableDefinition::new("last_visits");

#[derive(Clone)]
pub struct EmbeddedSink {
    db: Arc<Database>,
    /// Keep scan rows here (no ClickHouse configured).
    events: bool,
    /// Keep counters here (no Redis configured).
    counters: bool,
}

/// `[from, to)` as redb range bounds; `None` is open-ended.
fn bounds<'a>(
    from: &'a Option<String>,
    to: &'a Option<String>,
) -> (Bound<&'a str>, Bound<&'a str>) {
    (
        from.as_deref().map_or(Unbounded, Included),
        to.as_deref().map_or(Unbounded, Excluded),
    )
}

/// The JSON rows of `table` within `keys`, in key order. A row that does not
/// parse (a damaged file) is logged and skipped.
fn json_rows<T: serde::de::DeserializeOwned>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    keys: (Bound<&str>, Bound<&str>),
) -> Result<Vec<T>, SinkError> {
    let table = tx.open_table(table).map_err(err)?;
    let mut out = Vec::new();
    for item in table.range::<&str>(keys).map_err(err)? {
        let (k, v) = item.map_err(err)?;
        match serde_json::from_slice(v.value()) {
            Ok(row) => out.push(row),
            Err(e) => tracing::error!(key = k.value(), error = %e, "unreadable row skipped"),
        }
    }
    Ok(out)
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Embedded(e.to_string())
}

impl EmbeddedSink {
    pub fn open(data_dir: &Path, events: bool, counters: bool) -> Result<Self, SinkError> {
        let path = data_dir.join("scans.redb");
        let db = Database::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(SCANS).map_err(err)?;
        tx.open_table(SCAN_CHUNKS).map_err(err)?;
        tx.open_table(COUNTERS).map_err(err)?;
        tx.open_table(VISITS).map_err(err)?;
        tx.open_table(BATCHES).map_err(err)?;
        tx.open_table(CONVERSIONS).map_err(err)?;
        tx.open_table(CLAIMS).map_err(err)?;
        tx.open_table(CUSTOMERS).map_err(err)?;
        tx.open_table(LAST_VISITS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self {
            db: Arc::new(db),
            events,
            counters,
        })
    }

    pub async fn write(&self, batch: &Arc<Batch>) -> Result<(), SinkError> {
        let this = self.clone();
        let batch = batch.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(&batch))
            .await
            .map_err(err)?
    }

    fn write_blocking(&self, batch: &Batch) -> Result<(), SinkError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut batches = tx.open_table(BATCHES).map_err(err)?;
            if batches.get(batch.id.as_str()).map_err(err)?.is_some() {
                return Ok(()); // applied before: a replay
            }
            batches
                .insert(batch.id.as_str(), batch.scans.len() as u64)
                .map_err(err)?;
            if self.events {
                // One entry per chunk: a B-tree insert per scan would cost
                // more than everything else the sink does.
                let mut chunks = tx.open_table(SCAN_CHUNKS).map_err(err)?;
                let mut bytes = Vec::new();
                for chunk in chunk::chunks(&batch.scans) {
                    bytes.clear();
                    chunk::encode(chunk.scans, &mut bytes).map_err(err)?;
                    chunks.insert(chunk.key, bytes.as_slice()).map_err(err)?;
                }
                let mut conversions = tx.open_table(CONVERSIONS).map_err(err)?;
                for c in &batch.conversions {
                    let row = serde_json::to_vec(c).map_err(err)?;
                    conversions
                        .insert(c.event_id.as_str(), row.as_slice())
                        .map_err(err)?;
                }
            }
            if self.counters {
                let mut counters = tx.open_table(COUNTERS).map_err(err)?;
                let mut visits = tx.open_table(VISITS).map_err(err)?;
                let mut add = |key: String, n: u64| -> Result<(), SinkError> {
                    let current = counters
                        .get(key.as_str())
                        .map_err(err)?
                        .map_or(0, |v| v.value());
                    counters.insert(key.as_str(), current + n).map_err(err)?;
                    Ok(())
                };
                for (code, fields) in counter_deltas(&batch.scans) {
                    for (field, n) in fields {
                        add(format!("{code}\0{field}"), n)?;
                    }
                }
                for (code, day, visitors) in human_visitors(&batch.scans) {
                    let mut new = 0;
                    for visitor in visitors {
                        let key = format!("{code}\0{day}\0{visitor}");
                        if visits.insert(key.as_str(), 1).map_err(err)?.is_none() {
                            new += 1;
                        }
                    }
                    if new > 0 {
                        add(format!("{code}\0uv:{day}"), new)?;
                    }
                }
                let mut last = tx.open_table(LAST_VISITS).map_err(err)?;
                for ((code, visitor), scan) in latest_human_scans(&batch.scans) {
                    let key = format!("{code}\0{visitor}");
                    let newer = match last.get(key.as_str()).map_err(err)? {
                        Some(v) => {
                            LastVisit::decode(v.value()).is_none_or(|l| l.scan_ms <= scan.ts_ms)
                        }
                        None => true,
                    };
                    if newer {
                        let value = LastVisit::encode(scan);
                        last.insert(key.as_str(), value.as_bytes()).map_err(err)?;
                    }
                }
            }
        }
        tx.commit().map_err(err)
    }

    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        let db = self.db.clone();
        let code = code.to_string();
        tokio::task::spawn_blocking(move || -> Result<CodeStats, SinkError> {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(COUNTERS).map_err(err)?;
            let start = format!("{code}\0");
            let end = format!("{code}\u{1}");
            let mut fields = Vec::new();
            let mut uniques = BTreeMap::new();
            for item in table.range(start.as_str()..end.as_str()).map_err(err)? {
                let (k, v) = item.map_err(err)?;
                let field = &k.value()[start.len()..];
                match field.strip_prefix("uv:") {
                    Some(day) => {
                        uniques.insert(day.to_string(), v.value());
                    }
                    None => fields.push((field.to_string(), v.value())),
                }
            }
            Ok(CodeStats::from_fields(&code, fields, &uniques))
        })
        .await
        .map_err(err)?
    }

    /// The latest human scan of `code` by `visitor`.
    pub async fn last_visit(
        &self,
        code: &str,
        visitor: &str,
    ) -> Result<Option<LastVisit>, SinkError> {
        let db = self.db.clone();
        let key = format!("{code}\0{visitor}");
        tokio::task::spawn_blocking(move || -> Result<Option<LastVisit>, SinkError> {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(LAST_VISITS).map_err(err)?;
            Ok(table
                .get(key.as_str())
                .map_err(err)?
                .and_then(|v| LastVisit::decode(v.value())))
        })
        .await
        .map_err(err)?
    }

    /// Claims `event_id` for `conversion`; if another answer was given first,
    /// returns that. A customer link is stored with the claim unless one exists.
    pub async fn claim(
        &self,
        conversion: &Conversion,
        customer: Option<&CustomerLink>,
    ) -> Result<Claim, SinkError> {
        let db = self.db.clone();
        let conversion = conversion.clone();
        let customer = customer.cloned();
        tokio::task::spawn_blocking(move || -> Result<Claim, SinkError> {
            let tx = db.begin_write().map_err(err)?;
            let claim = {
                let mut claims = tx.open_table(CLAIMS).map_err(err)?;
                let existing: Option<Conversion> =
                    match claims.get(conversion.event_id.as_str()).map_err(err)? {
                        Some(v) => Some(serde_json::from_slice(v.value()).map_err(err)?),
                        None => None,
                    };
                if let Some(existing) = existing {
                    Claim::Existing(Box::new(existing))
                } else {
                    let row = serde_json::to_vec(&conversion).map_err(err)?;
                    claims
                        .insert(conversion.event_id.as_str(), row.as_slice())
                        .map_err(err)?;
                    if let Some(link) = &customer {
                        let mut customers = tx.open_table(CUSTOMERS).map_err(err)?;
                        if customers
                            .get(conversion.customer_id.as_str())
                            .map_err(err)?
                            .is_none()
                        {
                            let value = serde_json::to_vec(link).map_err(err)?;
                            customers
                                .insert(conversion.customer_id.as_str(), value.as_slice())
                                .map_err(err)?;
                        }
                    }
                    Claim::New
                }
            };
            tx.commit().map_err(err)?;
            Ok(claim)
        })
        .await
        .map_err(err)?
    }

    pub async fn release(&self, conversion: &Conversion) -> Result<(), SinkError> {
        let db = self.db.clone();
        let row = serde_json::to_vec(conversion).map_err(err)?;
        let id = conversion.event_id.clone();
        tokio::task::spawn_blocking(move || -> Result<(), SinkError> {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut claims = tx.open_table(CLAIMS).map_err(err)?;
                let ours = claims
                    .get(id.as_str())
                    .map_err(err)?
                    .is_some_and(|v| v.value() == row.as_slice());
                if ours {
                    claims.remove(id.as_str()).map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
        .await
        .map_err(err)?
    }

    pub async fn customer(&self, customer_id: &str) -> Result<Option<CustomerLink>, SinkError> {
        let db = self.db.clone();
        let id = customer_id.to_string();
        tokio::task::spawn_blocking(move || -> Result<Option<CustomerLink>, SinkError> {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CUSTOMERS).map_err(err)?;
            match table.get(id.as_str()).map_err(err)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(err)?)),
                None => Ok(None),
            }
        })
        .await
        .map_err(err)?
    }

    /// Every stored conversion, in event-id order (embedded analytics and tests).
    pub async fn all_conversions(&self) -> Result<Vec<Conversion>, SinkError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(err)?;
            json_rows(&tx, CONVERSIONS, (Unbounded, Unbounded))
        })
        .await
        .map_err(err)?
    }

    /// Stored scans with `from_ms <= ts < to_ms`, in scan-id (time) order.
    pub async fn scans_between(&self, from_ms: u64, to_ms: u64) -> Result<Vec<Scan>, SinkError> {
        self.read_scans(Some((from_ms, to_ms))).await
    }

    /// Every stored scan in scan-id (time) order; for tests and small exports.
    pub async fn all_scans(&self) -> Result<Vec<Scan>, SinkError> {
        self.read_scans(None).await
    }

    /// Scans from the chunks and from rows of the older one-row-per-scan table,
    /// within `[from, to)` ms when given.
    async fn read_scans(&self, range: Option<(u64, u64)>) -> Result<Vec<Scan>, SinkError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<Scan>, SinkError> {
            let id = |ms: u64| crate::ScanId::from_parts(ms, 0, 0).to_string();
            // A chunk that starts up to CHUNK_SPAN_MS before `from` may reach into the range.
            let chunk_from = range.map(|(from, _)| id(from.saturating_sub(chunk::CHUNK_SPAN_MS)));
            let from = range.map(|(from, _)| id(from));
            let to = range.map(|(_, to)| id(to));
            let tx = db.begin_read().map_err(err)?;
            let chunks = tx.open_table(SCAN_CHUNKS).map_err(err)?;
            let mut out: Vec<Scan> = Vec::new();
            // A chunk that does not decode (a damaged file) is logged and
            // skipped, so one bad entry does not take every report with it.
            for item in chunks.range::<&str>(bounds(&chunk_from, &to)).map_err(err)? {
                let (k, v) = item.map_err(err)?;
                match chunk::decode(v.value()) {
                    Ok(scans) => out.extend(scans),
                    Err(e) => {
                        tracing::error!(key = k.value(), error = %e, "unreadable scan chunk skipped")
                    }
                }
            }
            out.extend(json_rows::<Scan>(&tx, SCANS, bounds(&from, &to))?);
            if let Some((from, to)) = range {
                out.retain(|s| s.ts_ms >= from && s.ts_ms < to);
            }
            out.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
            // Batch ids keep a batch from being stored twice; should one scan
            // still reach two chunks, it is read once.
            out.dedup_by(|a, b| a.scan_id == b.scan_id);
            Ok(out)
        })
        .await
        .map_err(err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScanId;

    fn scan(ms: u64, n: u64) -> Scan {
        Scan {
            scan_id: ScanId::from_parts(ms, 3, n).to_string(),
            ts_ms: ms,
            code: "spring".into(),
            channel: "yt".into(),
            visitor_id: format!("v{n}"),
            device: "mobile".into(),
            source: "link".into(),
            ..Scan::default()
        }
    }

    #[tokio::test]
    async fn range_reads_find_every_scan_across_chunk_edges_and_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let t = 1_700_000_000_000;
        // 3000 scans over 3 s: several chunks, split by size and by span.
        let scans: Vec<Scan> = (0..3000).map(|n| scan(t + n, n)).collect();
        sink.write(&Arc::new(Batch::new(scans.clone(), Vec::new())))
            .await
            .unwrap();
        // A scan stored the way earlier versions did: one JSON row.
        let old = scan(t + 1500, 99_999);
        {
            let tx = sink.db.begin_write().unwrap();
            tx.open_table(SCANS)
                .unwrap()
                .insert(
                    old.scan_id.as_str(),
                    serde_json::to_vec(&old).unwrap().as_slice(),
                )
                .unwrap();
            tx.commit().unwrap();
        }
        let mut all = scans.clone();
        all.push(old);
        all.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
        assert_eq!(sink.all_scans().await.unwrap(), all);
        for (from, to) in [
            (0, 10),
            (999, 1001),
            (1023, 1025),
            (1500, 1501),
            (1, 2999),
            (2999, 5000),
        ] {
            let want: Vec<Scan> = all
                .iter()
                .filter(|s| s.ts_ms >= t + from && s.ts_ms < t + to)
                .cloned()
                .collect();
            let got = sink.scans_between(t + from, t + to).await.unwrap();
            assert_eq!(got, want, "[{from}, {to})");
        }
        // A damaged entry, chunk or row, is skipped; the others are still read.
        {
            let tx = sink.db.begin_write().unwrap();
            tx.open_table(SCANS)
                .unwrap()
                .insert(
                    ScanId::from_parts(t + 1300, 0, 0).to_string().as_str(),
                    &b"{not json"[..],
                )
                .unwrap();
            tx.open_table(SCAN_CHUNKS)
                .unwrap()
                .insert(
                    ScanId::from_parts(t + 1200, 0, 0).to_string().as_str(),
                    &[1u8, 9, 9][..],
                )
                .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(sink.all_scans().await.unwrap(), all);
        // A replayed batch is recognised and adds nothing.
        let batch = Arc::new(Batch::new(vec![scan(t + 4000, 5)], Vec::new()));
        sink.write(&batch).await.unwrap();
        sink.write(&batch).await.unwrap();
        assert_eq!(sink.all_scans().await.unwrap().len(), all.len() + 1);
    }
}

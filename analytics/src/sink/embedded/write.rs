//! Writing a batch: one redb transaction holds the batch id, the scan chunks,
//! the conversion rows, every rollup cell they add, the counters and the last
//! visits. A batch id already present means "applied before": a replay adds
//! nothing. So rollups are exact, once, like the rows.

use super::{
    block_key, code_conversion_key, dim_part, err, last_visit_key, totals_key, EmbeddedSink,
    BATCHES, CODE_CHUNKS, CODE_CONVERSIONS, CONVERSIONS, CONVERSION_BLOCKS, COUNTERS, DIMS_PART,
    LAST_VISITS, LAST_VISITS_PACKED, LATEST_OWNERS, SCANS, SCAN_BLOCKS, SCAN_CHUNKS, SPLIT_BYTES,
    TOTALS, TOTALS_PART,
};
use crate::batch::{counter_deltas, human_visits, Batch, DAY_MS};
use crate::event::{Conversion, Scan, StepEvent};
use crate::records::LastVisit;
use crate::review::Adjustment;
use crate::rollup::block::{ConversionBlock, ConversionCellKey, ScanBlock, Totals};
use crate::rollup::{self, Dim, Grain, ScanDims};
use crate::sink::{chunk, Halt, SinkError};
use crate::ScanId;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

impl EmbeddedSink {
    pub async fn write(&self, batch: &Arc<Batch>) -> Result<(), SinkError> {
        self.write_halting(batch, Halt::default()).await
    }

    /// [`Self::write`], given up without a commit once `halt` is set: it is
    /// looked at between chunks, between a few hundred visitors and between
    /// the steps, so a write of a large batch into large visitor tables
    /// (seconds under overload) stops within milliseconds at shutdown.
    pub async fn write_halting(&self, batch: &Arc<Batch>, halt: Halt) -> Result<(), SinkError> {
        let this = self.clone();
        let batch = batch.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(&batch, &halt))
            .await
            .map_err(err)?
    }

    fn write_blocking(&self, batch: &Batch, halt: &Halt) -> Result<(), SinkError> {
        halt.check()?;
        // Dropped without a commit (a `?` below), the transaction leaves
        // nothing behind.
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut batches = tx.open_table(BATCHES).map_err(err)?;
            if batches.get(batch.id.as_str()).map_err(err)?.is_some() {
                return Ok(()); // applied before: a replay
            }
            batches
                .insert(batch.id.as_str(), batch.scans.len() as u64)
                .map_err(err)?;
        }
        if self.events {
            write_chunks(&tx, &batch.scans, halt)?;
            halt.check()?;
            let counted = store_conversions(&tx, &batch.scans, &batch.conversions)?;
            let with_dims: Vec<(&Conversion, Option<&ScanDims>)> =
                counted.iter().map(|(c, d)| (*c, d.as_ref())).collect();
            let adjusted = adjustments_with_dims(&tx, &batch.scans, &batch.adjustments)?;
            let adjustments: Vec<(&Adjustment, Option<&ScanDims>)> =
                adjusted.iter().map(|(a, d)| (*a, d.as_ref())).collect();
            apply_rollups(&tx, &batch.scans, &with_dims, &adjustments)?;
        }
        if self.counters {
            halt.check()?;
            write_counters(&tx, &batch.scans, &batch.steps, halt)?;
        }
        halt.check()?;
        tx.commit().map_err(err)
    }
}

/// Visitor rows written between two looks at the [`Halt`] (a few ms at most).
const HALT_EVERY: usize = 256;

/// The scans in chunks per code: one redb entry per chunk (a B-tree insert per
/// scan would cost more than everything else the sink does).
pub(super) fn write_chunks(
    tx: &WriteTransaction,
    scans: &[Scan],
    halt: &Halt,
) -> Result<(), SinkError> {
    let mut by_code: BTreeMap<&str, Vec<&Scan>> = BTreeMap::new();
    for s in scans {
        by_code.entry(&s.code).or_default().push(s);
    }
    let mut chunks = tx.open_table(CODE_CHUNKS).map_err(err)?;
    let mut key = String::new();
    let mut hint = chunk::FitHint::default();
    for (code, scans) in by_code {
        for c in chunk::chunks(&scans) {
            halt.check()?;
            // Cut where a chunk would not fit a page run (see `chunk::VALUE_FIT`).
            chunk::encode_fitted(c.scans, &mut hint, |_, bytes, first| {
                key.clear();
                key.push_str(code);
                key.push('\0');
                key.push_str(first);
                chunks.insert(key.as_str(), bytes).map(drop).map_err(err)
            })?;
        }
    }
    Ok(())
}

/// Stores the conversion rows (each also in the index by code and time);
/// returns those to count in the rollups (the
/// ones not stored before: a brand's retry of an event already stored adds
/// nothing), each with its attributed scan's dimensions when found.
fn store_conversions<'b>(
    tx: &WriteTransaction,
    scans: &'b [Scan],
    conversions: &'b [Conversion],
) -> Result<Vec<(&'b Conversion, Option<ScanDims>)>, SinkError> {
    if conversions.is_empty() {
        return Ok(Vec::new());
    }
    let in_batch: HashMap<&str, &Scan> = scans.iter().map(|s| (s.scan_id.as_str(), s)).collect();
    let mut rows = tx.open_table(CONVERSIONS).map_err(err)?;
    let mut index = tx.open_table(CODE_CONVERSIONS).map_err(err)?;
    let mut counted = Vec::new();
    for c in conversions {
        if rows.get(c.event_id.as_str()).map_err(err)?.is_some() {
            continue;
        }
        let mut row = c.clone();
        row.repeat = false;
        let json = serde_json::to_vec(&row).map_err(err)?;
        rows.insert(c.event_id.as_str(), json.as_slice())
            .map_err(err)?;
        index
            .insert(code_conversion_key(c).as_str(), c.owner.as_str())
            .map_err(err)?;
        let dims = match in_batch.get(c.scan_id.as_str()) {
            Some(s) => Some(ScanDims::of(s)),
            None => find_scan(tx, &c.code, &c.scan_id)?
                .as_ref()
                .map(ScanDims::of),
        };
        counted.push((c, dims));
    }
    Ok(counted)
}

/// Each review adjustment with its conversion's attributed scan's dimensions
/// (found as when the conversion was counted, so the same cells change).
fn adjustments_with_dims<'b>(
    tx: &WriteTransaction,
    scans: &[Scan],
    adjustments: &'b [Adjustment],
) -> Result<Vec<(&'b Adjustment, Option<ScanDims>)>, SinkError> {
    let mut out = Vec::with_capacity(adjustments.len());
    for a in adjustments {
        let c = &a.conversion;
        let dims = match scans
            .iter()
            .find(|s| s.scan_id == c.scan_id && c.scan_ms > 0)
        {
            Some(s) => Some(ScanDims::of(s)),
            None if c.scan_ms > 0 => find_scan(tx, &c.code, &c.scan_id)?
                .as_ref()
                .map(ScanDims::of),
            None => None,
        };
        out.push((a, dims));
    }
    Ok(out)
}

/// A stored scan by its code and id (the id starts with its time, so only the
/// chunks of that second are read).
pub(super) fn find_scan(
    tx: &WriteTransaction,
    code: &str,
    scan_id: &str,
) -> Result<Option<Scan>, SinkError> {
    let Some(id) = ScanId::parse(scan_id) else {
        return Ok(None);
    };
    let ms = id.unix_ms();
    let at = |ms: u64| ScanId::from_parts(ms, 0, 0).to_string();
    let from = at(ms.saturating_sub(chunk::CHUNK_SPAN_MS));
    let to = at(ms + 1);
    let chunks = tx.open_table(CODE_CHUNKS).map_err(err)?;
    let (lo, hi) = (format!("{code}\0{from}"), format!("{code}\0{to}"));
    for item in chunks.range(lo.as_str()..hi.as_str()).map_err(err)? {
        let (_, v) = item.map_err(err)?;
        if let Ok(scans) = chunk::decode(v.value()) {
            if let Some(s) = scans.into_iter().find(|s| s.scan_id == scan_id) {
                return Ok(Some(s));
            }
        }
    }
    // Not migrated yet: the layouts of earlier versions.
    let old = tx.open_table(SCAN_CHUNKS).map_err(err)?;
    for item in old.range(from.as_str()..to.as_str()).map_err(err)? {
        let (_, v) = item.map_err(err)?;
        if let Ok(scans) = chunk::decode(v.value()) {
            if let Some(s) = scans.into_iter().find(|s| s.scan_id == scan_id) {
                return Ok(Some(s));
            }
        }
    }
    let rows = tx.open_table(SCANS).map_err(err)?;
    let found = rows.get(scan_id).map_err(err)?;
    Ok(found.and_then(|v| serde_json::from_slice(v.value()).ok()))
}

/// Adds the rollup cells of `scans` and `conversions` (already decided to be
/// counted) to the stored blocks, totals and latest owners.
pub(super) fn apply_rollups(
    tx: &WriteTransaction,
    scans: &[Scan],
    conversions: &[(&Conversion, Option<&ScanDims>)],
    adjustments: &[(&Adjustment, Option<&ScanDims>)],
) -> Result<(), SinkError> {
    let scan_cells = rollup::scan_cells(scans);
    let mut conversion_cells = rollup::conversion_cells(conversions);
    for (k, d) in rollup::adjustment_cells(adjustments) {
        conversion_cells.entry(k).or_default().add(&d);
    }
    let totals = rollup::totals(&scan_cells, &conversion_cells);

    // One read-modify-write per block: the cells arrive grouped by scope and grain.
    let mut blocks: BTreeMap<(&str, Grain, bool, u32), (ScanBlock, bool)> = BTreeMap::new();
    let mut table = tx.open_table(SCAN_BLOCKS).map_err(err)?;
    for (k, d) in &scan_cells {
        let slot = (k.scope.as_str(), k.grain, k.dim != Dim::Total, k.bucket);
        let (block, _) = match blocks.entry(slot) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(load_scan_block(&table, slot)?),
        };
        block.add(k.dim, &k.value, d);
    }
    for ((scope, grain, dims, bucket), (block, split)) in blocks {
        let key = |part| block_key(scope, grain, part, bucket);
        if !dims {
            let bytes = block.encode();
            table
                .insert(key(TOTALS_PART).as_slice(), bytes.as_slice())
                .map_err(err)?;
            continue;
        }
        let bytes = block.encode();
        if !split && bytes.len() <= SPLIT_BYTES {
            table
                .insert(key(DIMS_PART).as_slice(), bytes.as_slice())
                .map_err(err)?;
            continue;
        }
        // Busy: one entry per dimension from now on.
        table.remove(key(DIMS_PART).as_slice()).map_err(err)?;
        for dim in &Dim::ALL[1..] {
            let mut one = ScanBlock::default();
            one.dims[*dim as usize] = block.dims[*dim as usize].clone();
            table
                .insert(key(dim_part(*dim)).as_slice(), one.encode().as_slice())
                .map_err(err)?;
        }
    }

    let mut blocks: BTreeMap<(&str, Grain, bool, u32), ConversionBlock> = BTreeMap::new();
    let mut table = tx.open_table(CONVERSION_BLOCKS).map_err(err)?;
    for (k, d) in &conversion_cells {
        let c = &k.cell;
        let slot = (c.scope.as_str(), c.grain, c.dim != Dim::Total, c.bucket);
        let block = match blocks.entry(slot) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let part = if slot.2 { DIMS_PART } else { TOTALS_PART };
                let stored = table
                    .get(block_key(slot.0, slot.1, part, slot.3).as_slice())
                    .map_err(err)?;
                e.insert(match stored {
                    Some(v) => ConversionBlock::decode(v.value()).map_err(err)?,
                    None => ConversionBlock::default(),
                })
            }
        };
        let key = ConversionCellKey {
            dim: c.dim,
            value: c.value.clone(),
            owner: k.owner.clone(),
            kind: k.kind,
            currency: k.currency.clone(),
            earnings_currency: k.earnings_currency.clone(),
        };
        block.cells.entry(key).or_default().add(d);
    }
    for ((scope, grain, dims, bucket), block) in blocks {
        let part = if dims { DIMS_PART } else { TOTALS_PART };
        table
            .insert(
                block_key(scope, grain, part, bucket).as_slice(),
                block.encode().as_slice(),
            )
            .map_err(err)?;
    }

    let mut table = tx.open_table(TOTALS).map_err(err)?;
    for (k, d) in &totals {
        let key = totals_key(k.grain, k.bucket, &k.scope);
        let mut t = match table.get(key.as_slice()).map_err(err)? {
            Some(v) => Totals::decode(v.value()).map_err(err)?,
            None => Totals::default(),
        };
        t.add(d);
        table
            .insert(key.as_slice(), t.encode().as_slice())
            .map_err(err)?;
    }

    if !conversions.is_empty() {
        let mut owners = tx.open_table(LATEST_OWNERS).map_err(err)?;
        for (c, _) in conversions {
            if c.code.is_empty() {
                continue;
            }
            let newer = match owners.get(c.code.as_str()).map_err(err)? {
                Some(v) => decode_owner(v.value()).is_none_or(|(ms, id, _)| {
                    (c.occurred_ms, c.event_id.as_str()) > (ms, id.as_str())
                }),
                None => true,
            };
            if newer {
                let value = format!("{}\0{}\0{}", c.occurred_ms, c.event_id, c.owner);
                owners
                    .insert(c.code.as_str(), value.as_bytes())
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The stored scan cells of a slot (scope, grain, dimensions or totals,
/// bucket), and whether its dimensions are split into one entry each.
fn load_scan_block(
    table: &redb::Table<&[u8], &[u8]>,
    (scope, grain, dims, bucket): (&str, Grain, bool, u32),
) -> Result<(ScanBlock, bool), SinkError> {
    let get = |part| -> Result<Option<ScanBlock>, SinkError> {
        match table
            .get(block_key(scope, grain, part, bucket).as_slice())
            .map_err(err)?
        {
            Some(v) => Ok(Some(ScanBlock::decode(v.value()).map_err(err)?)),
            None => Ok(None),
        }
    };
    if !dims {
        return Ok((get(TOTALS_PART)?.unwrap_or_default(), false));
    }
    if let Some(block) = get(DIMS_PART)? {
        return Ok((block, false));
    }
    let mut block = ScanBlock::default();
    let mut split = false;
    for dim in &Dim::ALL[1..] {
        if let Some(one) = get(dim_part(*dim))? {
            block.dims[*dim as usize] = one.dims[*dim as usize].clone();
            split = true;
        }
    }
    Ok((block, split))
}

/// `(occurred ms, event id, owner)` of a [`LATEST_OWNERS`] value.
pub(super) fn decode_owner(bytes: &[u8]) -> Option<(u64, String, String)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\0');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.to_string(),
        parts.next()?.to_string(),
    ))
}

/// The live counters, exact uniques per day and last visits of the batch.
fn write_counters(
    tx: &WriteTransaction,
    scans: &[Scan],
    steps: &[StepEvent],
    halt: &Halt,
) -> Result<(), SinkError> {
    let mut counters = tx.open_table(COUNTERS).map_err(err)?;
    let mut add = |key: String, n: u64| -> Result<(), SinkError> {
        let current = counters
            .get(key.as_str())
            .map_err(err)?
            .map_or(0, |v| v.value());
        counters.insert(key.as_str(), current + n).map_err(err)?;
        Ok(())
    };
    for (code, fields) in counter_deltas(scans, steps) {
        for (field, n) in fields {
            add(format!("{code}\0{field}"), n)?;
        }
    }
    // Unique visitors per day come from the last visits, with no table of
    // their own: a visitor is new on a day of this batch when its last human
    // scan of the code stored before was on an earlier day, or there is none.
    // A sink gets batches in the order they were cut (its spool is replayed
    // before anything newer), so that is exact while each visitor's scans
    // arrive in day order. One that does not (a scan stamped before midnight
    // cut into a batch after one from after midnight by the same visitor) is
    // not counted on its day; a stored visit that does not decode counts as
    // none. A table of per-day marks (`VISITS`, still pruned and erased
    // where earlier versions left it) cost about 77 bytes a visitor and day
    // on disk and a random-key insert each.
    //
    // Keys in order: consecutive inserts land in the same leaf, whose copy
    // (redb copies a page at its first change in a transaction) and path
    // are then reused. In random order, nearly every visitor touched a leaf
    // of its own (`tests/embedded_write_rate.rs`).
    let mut last = tx.open_table(LAST_VISITS_PACKED).map_err(err)?;
    // The text-keyed table of earlier versions: an entry there moves to the
    // packed table when its visitor comes back (empty on a new store).
    let mut legacy = tx.open_table(LAST_VISITS).map_err(err)?;
    let legacy_empty = legacy.is_empty().map_err(err)?;
    let mut uniques: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut key = Vec::new();
    let mut text_key = String::new();
    for (n, ((code, visitor), visits)) in human_visits(scans).into_iter().enumerate() {
        if n % HALT_EVERY == 0 {
            halt.check()?;
        }
        let scan = visits.latest;
        last_visit_key(code, visitor, &mut key);
        let value = LastVisit::encode_packed(scan);
        // Written at once (one walk down the tree, not a read and then a
        // write); in the rare case that the stored visit is newer (a batch
        // replayed late), it is put back.
        let mut old = last
            .insert(key.as_slice(), value.as_slice())
            .map_err(err)?
            .map(|old| old.value().to_vec());
        if old.is_none() && !legacy_empty {
            text_key.clear();
            text_key.push_str(code);
            text_key.push('\0');
            text_key.push_str(visitor);
            old = legacy
                .remove(text_key.as_str())
                .map_err(err)?
                .map(|old| old.value().to_vec());
        }
        let stored = old.as_deref().and_then(LastVisit::decode);
        let before = stored.as_ref().map(|l| l.scan_ms / DAY_MS);
        if let (Some(l), Some(old)) = (&stored, &old) {
            if l.scan_ms > scan.ts_ms {
                last.insert(key.as_slice(), old.as_slice()).map_err(err)?;
            }
        }
        for day in visits.days {
            if before.is_none_or(|b| day > b) {
                *uniques.entry((code, day)).or_default() += 1;
            }
        }
    }
    for ((code, day), new) in uniques {
        add(
            format!("{code}\0uv:{}", crate::event::day_of(day * DAY_MS)),
            new,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::VISITS;
    use super::*;
    use redb::ReadableTableMetadata;

    fn scan(i: u64, channel: &str) -> Scan {
        let ts = 1_700_006_400_000 + i; // within one quarter-hour
        Scan {
            scan_id: crate::ScanId::from_parts(ts, 2, i).to_string().into(),
            ts_ms: ts,
            code: "busy".into(),
            channel: channel.into(),
            visitor_id: format!("v{i}").into(),
            source: "link".into(),
            ..Scan::default()
        }
    }

    /// A halted write commits nothing, whether halted before it began or
    /// while it runs; the same batch written afterwards is stored once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_halted_write_commits_nothing() {
        let batch = Arc::new(Batch::new(
            (0..60_000).map(|i| scan(i, "yt")).collect(),
            Vec::new(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let stored = || async { sink.all_scans().await.unwrap().len() };

        let halt = Halt::default();
        halt.set();
        let r = sink.write_halting(&batch, halt).await;
        assert!(matches!(r, Err(SinkError::Halted)), "{r:?}");
        assert_eq!(stored().await, 0);

        // How long the whole write takes here (on another store), then the
        // same write halted a tenth of the way in.
        let other = tempfile::tempdir().unwrap();
        let other = EmbeddedSink::open(other.path(), true, true).unwrap();
        let t0 = std::time::Instant::now();
        other.write(&batch).await.unwrap();
        let whole = t0.elapsed();
        let halt = Halt::default();
        let write = tokio::spawn({
            let (sink, batch, halt) = (sink.clone(), batch.clone(), halt.clone());
            async move { sink.write_halting(&batch, halt).await }
        });
        tokio::time::sleep(whole / 10).await;
        halt.set();
        let halted_at = std::time::Instant::now();
        let r = write.await.unwrap();
        let stopped_in = halted_at.elapsed();
        assert!(matches!(r, Err(SinkError::Halted)), "{r:?}");
        assert!(
            stopped_in < whole / 2,
            "stopped {stopped_in:?} after the halt; the whole write takes {whole:?}"
        );
        assert_eq!(stored().await, 0);
        assert_eq!(sink.code_stats("busy").await.unwrap().total, 0);

        sink.write(&batch).await.unwrap();
        sink.write(&batch).await.unwrap(); // a replay adds nothing
        assert_eq!(stored().await, 60_000);
        assert_eq!(sink.code_stats("busy").await.unwrap().total, 60_000);
    }

    /// Unique visitors per day come from the last visits: a visitor counts
    /// once a day across batches, on both days of a batch spanning midnight,
    /// and not for a bot's scan; the table of per-day marks stays empty.
    #[tokio::test]
    async fn unique_visitors_per_day_come_from_the_last_visits() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), false, true).unwrap();
        let midnight = 1_700_006_400_000 / DAY_MS * DAY_MS + DAY_MS;
        let visit = |n: u64, ts_ms: u64, visitor: &str, bot: &str| Scan {
            scan_id: crate::ScanId::from_parts(ts_ms, 2, n).to_string().into(),
            ts_ms,
            visitor_id: visitor.into(),
            bot_reason: bot.into(),
            ..scan(n, "yt")
        };
        let before = midnight - 1_000;
        let batches = [
            vec![
                visit(1, before, "a", ""),
                visit(2, before, "b", ""),
                visit(3, before + 1, "a", ""),
            ],
            // Across midnight: a again on both days (its day before already
            // counted), c new, d only a bot.
            vec![
                visit(4, midnight + 1_000, "a", ""),
                visit(5, before + 100, "a", ""),
                visit(6, midnight + 2_000, "c", ""),
                visit(7, midnight + 2_000, "d", "head"),
            ],
            vec![
                visit(8, midnight + 5_000, "b", ""),
                visit(9, midnight + 6_000, "a", ""),
                visit(10, midnight + 7_000, "c", ""),
            ],
        ];
        for b in batches {
            let b = Arc::new(Batch::new(b, Vec::new()));
            sink.write(&b).await.unwrap();
            sink.write(&b).await.unwrap(); // a replay adds nothing
        }
        let stats = sink.code_stats("busy").await.unwrap();
        let uv = |ms: u64| stats.days[&crate::event::day_of(ms)].unique_visitors;
        assert_eq!((uv(before), uv(midnight)), (2, 3), "{stats:?}");
        let tx = sink.db.begin_read().unwrap();
        assert_eq!(tx.open_table(VISITS).unwrap().len().unwrap(), 0);
    }

    /// A last visit in the text-keyed table of earlier versions still reads,
    /// still counts its visitor as seen that day, and moves to the packed
    /// table when the visitor comes back; erasure finds it in either.
    #[tokio::test]
    async fn last_visits_of_earlier_versions_read_and_move() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), false, true).unwrap();
        let (back, away) = (
            "0123456789abcdef0123456789abcdef",
            "ffeeddccbbaa99887766554433221100",
        );
        let t = 1_700_006_400_000;
        let at = |n: u64, ts_ms: u64, visitor: &str| Scan {
            scan_id: crate::ScanId::from_parts(ts_ms, 2, n).to_string().into(),
            ts_ms,
            visitor_id: visitor.into(),
            ..scan(n, "old")
        };
        {
            let tx = sink.db.begin_write().unwrap();
            {
                let mut legacy = tx.open_table(LAST_VISITS).unwrap();
                for (n, v) in [(1, back), (2, away)] {
                    let value = LastVisit::encode(&at(n, t, v));
                    legacy
                        .insert(format!("busy\0{v}").as_str(), value.as_bytes())
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        assert_eq!(
            sink.last_visit("busy", away)
                .await
                .unwrap()
                .unwrap()
                .channel,
            "old"
        );
        let mut again = at(3, t + 1_000, back);
        again.channel = "new".into();
        sink.write(&Arc::new(Batch::new(vec![again], Vec::new())))
            .await
            .unwrap();
        let stats = sink.code_stats("busy").await.unwrap();
        assert_eq!(
            stats.days[&crate::event::day_of(t)].unique_visitors,
            0,
            "seen before"
        );
        assert_eq!(
            sink.last_visit("busy", back)
                .await
                .unwrap()
                .unwrap()
                .channel,
            "new"
        );
        let tx = sink.db.begin_read().unwrap();
        assert_eq!(tx.open_table(LAST_VISITS).unwrap().len().unwrap(), 1);
        assert_eq!(tx.open_table(LAST_VISITS_PACKED).unwrap().len().unwrap(), 1);
        drop(tx);
        for v in [back, away] {
            let erased = sink
                .erase(crate::sink::Subject::Visitor(v.to_string()))
                .await
                .unwrap();
            assert_eq!(erased.last_visits, 1, "{v}");
            assert!(sink.last_visit("busy", v).await.unwrap().is_none());
        }
    }

    /// A visitor id the gateway made takes 17 bytes of a key; any other is
    /// kept as written.
    #[test]
    fn visitor_ids_in_keys() {
        let mut key = Vec::new();
        last_visit_key("abc", "0123456789abcdef0123456789abcdef", &mut key);
        assert_eq!(key.len(), 3 + 1 + 17);
        assert_eq!(&key[..5], b"abc\0\x01");
        for other in [
            "0123456789ABCDEF0123456789ABCDEF",
            "v1",
            "",
            "0123456789abcdef0123456789abcdeg",
        ] {
            last_visit_key("abc", other, &mut key);
            assert_eq!(key[4], 2, "{other}");
            assert_eq!(&key[5..], other.as_bytes());
        }
    }

    /// A visitor's last visit is the latest scan written: a later batch's
    /// scan at the same millisecond replaces it, an older one (a batch
    /// replayed late) leaves it, a newer one replaces it.
    #[tokio::test]
    async fn the_last_visit_is_replaced_by_a_scan_as_late_or_later() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), false, true).unwrap();
        let visit = |n: u64, ts_ms: u64, channel: &str| Scan {
            scan_id: crate::ScanId::from_parts(ts_ms, 2, n).to_string().into(),
            ts_ms,
            visitor_id: "v".into(),
            ..scan(n, channel)
        };
        let t = 1_700_006_400_000;
        for (scan, channel) in [
            (visit(1, t, "first"), "first"),
            (visit(2, t, "same-ms"), "same-ms"),
            (visit(3, t - 1, "older"), "same-ms"),
            (visit(4, t + 1, "newer"), "newer"),
        ] {
            sink.write(&Arc::new(Batch::new(vec![scan], Vec::new())))
                .await
                .unwrap();
            let last = sink.last_visit("busy", "v").await.unwrap().unwrap();
            assert_eq!(last.channel, channel);
        }
    }

    /// A bucket whose dimensions outgrow one entry is split into one entry
    /// per dimension, and reads and later writes see the same cells.
    #[tokio::test]
    async fn busy_buckets_split_by_dimension() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, false).unwrap();
        // 600 channels of 3 visitors each: far over 16 KiB of dimension cells.
        let first: Vec<Scan> = (0..1800)
            .map(|i| scan(i, &format!("ch{}", i % 600)))
            .collect();
        sink.write(&Arc::new(Batch::new(first, Vec::new())))
            .await
            .unwrap();
        let second: Vec<Scan> = (1800..1810).map(|i| scan(i, "ch7")).collect();
        sink.write(&Arc::new(Batch::new(second, Vec::new())))
            .await
            .unwrap();
        let hour = Grain::Hour.floor(1_700_006_400) as u32;
        let (parts, channels, ch7) = sink
            .read(move |r| {
                let table = r.tx.open_table(SCAN_BLOCKS).map_err(err)?;
                let has = |part| {
                    table
                        .get(block_key("busy", Grain::Hour, part, hour).as_slice())
                        .map(|v| v.is_some())
                };
                let parts = (
                    has(DIMS_PART).map_err(err)?,
                    has(dim_part(Dim::Channel)).map_err(err)?,
                    has(dim_part(Dim::Country)).map_err(err)?,
                );
                let mut channels = 0;
                let mut ch7 = (0, 0);
                r.scan_cells(
                    "busy",
                    Grain::Hour,
                    Dim::Channel,
                    (hour, hour + 1),
                    |_, v, c| {
                        channels += 1;
                        if v == "ch7" {
                            ch7 = (c.human, c.visitors.estimate().count);
                        }
                    },
                )?;
                Ok((parts, channels, ch7))
            })
            .await
            .unwrap();
        assert_eq!(
            parts,
            (false, true, true),
            "split into one entry per dimension"
        );
        assert_eq!(channels, 600);
        assert_eq!(
            ch7,
            (13, 13),
            "3 scans of the first batch, 10 of the second"
        );
    }
}

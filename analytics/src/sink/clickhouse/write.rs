//! Writing a batch to ClickHouse, exactly once in the rollups.
//!
//! A materialized view fires on every insert, and `ReplacingMergeTree`'s
//! deduplication of the raw rows does not reach it: a batch replayed from the
//! spool would count twice. So the writer makes its own rollup inserts, each
//! of at most [`MAX_CELLS`] cells plus a *marker row* naming the batch and the
//! chunk (`#{yyyymmdd}/{batch id}/{s|c|t}{i}`) in the same insert. An insert
//! lands as one part, whole or not at all: the rollup tables are not
//! partitioned, the input is one block (fewer rows than
//! `max_insert_block_size`), and the view's output is squashed into one block
//! (fewer rows and bytes than `min_insert_block_size_rows`/`_bytes`, which the
//! writer sets to 2^20 rows and 1 GiB). So a marker present means that
//! chunk's cells are in (the test `a_big_insert_is_one_part` checks it). Before each insert the writer looks its marker up
//! and skips the chunk when it is there. Chunks are cut deterministically
//! (cells in key order; conversions in batch order), so a replay cuts the same
//! chunks. The raw rows follow the rollups; replaying them is harmless.
//!
//! Conversions: a batch's first recording of an event counts. A repeat (a
//! brand's retry, see `crate::conversions`) counts only when its first
//! recording is missing from `conversions` and was claimed more than
//! [`REPEAT_GRACE_MS`] ago (the first may still be on its way from another
//! instance). The attributed scan's dimensions come from the batch or from
//! `scans`.

use super::{ClickHouseEvents, ConversionRow, ScanRow};
use crate::batch::Batch;
use crate::event::{Conversion, Scan};
use crate::review::Adjustment;
use crate::rollup::{
    self, CellKey, ConversionDelta, ConversionKey, ScanDelta, ScanDims, TotalsDelta, TotalsKey,
};
use crate::sink::SinkError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Cells per rollup insert: well below one insert block (2^20 rows), and few
/// inserts per batch (each is a part for ClickHouse to merge).
const MAX_CELLS: usize = 200_000;
/// Conversions per chunk: each adds at most 42 cells.
const MAX_CONVERSIONS: usize = 4_000;
/// A repeat recorded sooner than this after its first claim does not count.
pub const REPEAT_GRACE_MS: u64 = 60_000;

#[derive(Serialize, clickhouse::Row)]
pub(super) struct ScanCellRow<'a> {
    scope: &'a str,
    grain: u8,
    dim: u8,
    bucket: u32,
    value: &'a str,
    n_human: u64,
    n_bot: u64,
    n_suspect: u64,
    n_qr: u64,
    n_link: u64,
    visitor_hashes: &'a [u64],
}

impl<'a> ScanCellRow<'a> {
    /// The row that marks `marker` as written.
    pub(super) fn marker(marker: &'a str) -> Self {
        Self {
            scope: marker,
            grain: 0,
            dim: 0,
            bucket: 0,
            value: "",
            n_human: 0,
            n_bot: 0,
            n_suspect: 0,
            n_qr: 0,
            n_link: 0,
            visitor_hashes: &[],
        }
    }
}

#[derive(Serialize, clickhouse::Row)]
struct ConversionCellRow<'a> {
    scope: &'a str,
    grain: u8,
    dim: u8,
    bucket: u32,
    value: &'a str,
    owner: &'a str,
    kind: &'a str,
    currency: &'a str,
    earnings_currency: &'a str,
    n_conversions: u64,
    amount_sum: i128,
    earnings_sum: i128,
    delay_bins: Vec<u16>,
    delay_counts: Vec<u64>,
    flagged_sum: i64,
    held_sum: i128,
}

#[derive(Serialize, clickhouse::Row)]
struct TotalsRow<'a> {
    grain: u8,
    bucket: u32,
    scope: &'a str,
    owner: &'a str,
    kind: &'a str,
    earnings_currency: &'a str,
    n_human: u64,
    n_conversions: u64,
    earnings_sum: i128,
}

#[derive(Deserialize, clickhouse::Row)]
struct DimsRow {
    scan_id: String,
    source: String,
    device: String,
    os: String,
    browser: String,
    in_app: String,
    country: String,
    referrer_host: String,
    route: String,
}

fn insert_timeouts() -> (Option<Duration>, Option<Duration>) {
    (Some(Duration::from_secs(10)), Some(Duration::from_secs(30)))
}

/// `#{yyyymmdd}/{batch id}`: the prefix of a batch's markers.
pub(super) fn marker_prefix(batch: &Batch) -> String {
    let day = crate::event::day_of(batch.created_ms).replace('-', "");
    format!("#{day}/{}", batch.id)
}

impl ClickHouseEvents {
    /// The client for rollup inserts: each insert is squashed into one block
    /// (and so one part), see the module docs.
    pub(super) fn rollup_client(&self) -> clickhouse::Client {
        self.client
            .clone()
            .with_setting("max_insert_block_size", "1048576")
            .with_setting("min_insert_block_size_rows", "1048576")
            .with_setting("min_insert_block_size_bytes", "1073741824")
    }

    pub(super) async fn write_node(&self, batch: &Batch) -> Result<(), SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        let prefix = marker_prefix(batch);
        let scan_cells = rollup::scan_cells(&batch.scans);
        let counted = self.counted_conversions(batch).await?;
        let (conversion_chunks, mut conversion_cells) = conversion_chunks(&counted);
        let adjustment_chunks = self.adjustment_chunks(batch).await?;
        for chunk in &adjustment_chunks {
            for (k, d) in chunk {
                conversion_cells.entry(k.clone()).or_default().add(d);
            }
        }
        let totals = rollup::totals(&scan_cells, &conversion_cells);
        self.write_rollups(
            &prefix,
            &scan_cells,
            &conversion_chunks,
            &adjustment_chunks,
            &totals,
        )
        .await?;
        if !batch.scans.is_empty() {
            self.insert_scans(&batch.scans, 1).await?;
        }
        if !batch.conversions.is_empty() {
            self.insert_conversions(&batch.conversions, 1).await?;
        }
        Ok(())
    }

    /// Inserts the rollup chunks whose markers (under `prefix`) are not in yet.
    pub(super) async fn write_rollups(
        &self,
        prefix: &str,
        scan_cells: &BTreeMap<CellKey, ScanDelta>,
        conversion_chunks: &[BTreeMap<ConversionKey, ConversionDelta>],
        adjustment_chunks: &[BTreeMap<ConversionKey, ConversionDelta>],
        totals: &BTreeMap<TotalsKey, TotalsDelta>,
    ) -> Result<(), SinkError> {
        let scan_chunks: Vec<Vec<(&CellKey, &ScanDelta)>> = scan_cells
            .iter()
            .collect::<Vec<_>>()
            .chunks(MAX_CELLS)
            .map(<[_]>::to_vec)
            .collect();
        let total_rows = totals_rows(totals);
        let total_chunks: Vec<&[TotalsRow<'_>]> = total_rows.chunks(MAX_CELLS).collect();
        let name = |kind: char, i: usize| format!("{prefix}/{kind}{i}");
        let names: Vec<String> = (0..scan_chunks.len())
            .map(|i| name('s', i))
            .chain((0..conversion_chunks.len()).map(|i| name('c', i)))
            .chain((0..adjustment_chunks.len()).map(|i| name('a', i)))
            .chain((0..total_chunks.len()).map(|i| name('t', i)))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let done = self.markers(&names).await?;
        for (i, chunk) in scan_chunks.iter().enumerate() {
            let marker = name('s', i);
            if !done.contains(&marker) {
                self.insert_scan_cells(&marker, chunk).await?;
            }
        }
        for (i, chunk) in conversion_chunks.iter().enumerate() {
            let marker = name('c', i);
            if !done.contains(&marker) && !chunk.is_empty() {
                self.insert_conversion_cells(&marker, chunk).await?;
            }
        }
        for (i, chunk) in adjustment_chunks.iter().enumerate() {
            let marker = name('a', i);
            if !done.contains(&marker) && !chunk.is_empty() {
                self.insert_conversion_cells(&marker, chunk).await?;
            }
        }
        for (i, chunk) in total_chunks.iter().enumerate() {
            let marker = name('t', i);
            if !done.contains(&marker) {
                self.insert_totals(&marker, chunk).await?;
            }
        }
        Ok(())
    }

    /// Which of `names` are already marked in the rollup tables.
    async fn markers(&self, names: &[String]) -> Result<HashSet<String>, SinkError> {
        let list = vec!["?"; names.len()].join(", ");
        let sql = format!(
            "SELECT scope FROM scan_rollup WHERE scope IN ({list}) \
             UNION ALL SELECT scope FROM conversion_rollup WHERE scope IN ({list}) \
             UNION ALL SELECT scope FROM code_totals WHERE kind = '' AND grain = 0 \
             AND bucket = toDateTime(0) AND scope IN ({list})"
        );
        let mut q = self.client.query(&sql);
        for _ in 0..3 {
            for n in names {
                q = q.bind(n.as_str());
            }
        }
        Ok(q.fetch_all::<String>().await?.into_iter().collect())
    }

    async fn insert_scan_cells(
        &self,
        marker: &str,
        cells: &[(&CellKey, &ScanDelta)],
    ) -> Result<(), SinkError> {
        let (send, end) = insert_timeouts();
        let mut insert = self
            .rollup_client()
            .insert::<ScanCellRow<'_>>("scan_rollup_input")
            .await?
            .with_timeouts(send, end);
        for (k, d) in cells {
            insert
                .write(&ScanCellRow {
                    scope: &k.scope,
                    grain: k.grain as u8,
                    dim: k.dim as u8,
                    bucket: k.bucket,
                    value: &k.value,
                    n_human: d.human,
                    n_bot: d.bot,
                    n_suspect: d.suspect,
                    n_qr: d.qr,
                    n_link: d.link,
                    visitor_hashes: &d.visitors,
                })
                .await?;
        }
        insert.write(&ScanCellRow::marker(marker)).await?;
        insert.end().await?;
        Ok(())
    }

    async fn insert_conversion_cells(
        &self,
        marker: &str,
        cells: &BTreeMap<ConversionKey, ConversionDelta>,
    ) -> Result<(), SinkError> {
        let (send, end) = insert_timeouts();
        let mut insert = self
            .rollup_client()
            .insert::<ConversionCellRow<'_>>("conversion_rollup_input")
            .await?
            .with_timeouts(send, end);
        for (k, d) in cells {
            let (delay_bins, delay_counts) = d.delays.bins().unzip();
            insert
                .write(&ConversionCellRow {
                    scope: &k.cell.scope,
                    grain: k.cell.grain as u8,
                    dim: k.cell.dim as u8,
                    bucket: k.cell.bucket,
                    value: &k.cell.value,
                    owner: &k.owner,
                    kind: k.kind.as_str(),
                    currency: &k.currency,
                    earnings_currency: &k.earnings_currency,
                    n_conversions: d.n,
                    amount_sum: d.amount,
                    earnings_sum: d.earnings,
                    delay_bins,
                    delay_counts,
                    flagged_sum: d.flagged,
                    held_sum: d.held,
                })
                .await?;
        }
        insert
            .write(&ConversionCellRow {
                scope: marker,
                grain: 0,
                dim: 0,
                bucket: 0,
                value: "",
                owner: "",
                kind: "",
                currency: "",
                earnings_currency: "",
                n_conversions: 0,
                amount_sum: 0,
                earnings_sum: 0,
                delay_bins: Vec::new(),
                delay_counts: Vec::new(),
                flagged_sum: 0,
                held_sum: 0,
            })
            .await?;
        insert.end().await?;
        Ok(())
    }

    async fn insert_totals(&self, marker: &str, rows: &[TotalsRow<'_>]) -> Result<(), SinkError> {
        let (send, end) = insert_timeouts();
        let mut insert = self
            .rollup_client()
            .insert::<TotalsRow<'_>>("code_totals_input")
            .await?
            .with_timeouts(send, end);
        for row in rows {
            insert.write(row).await?;
        }
        insert
            .write(&TotalsRow {
                grain: 0,
                bucket: 0,
                scope: marker,
                owner: "",
                kind: "",
                earnings_currency: "",
                n_human: 0,
                n_conversions: 0,
                earnings_sum: 0,
            })
            .await?;
        insert.end().await?;
        Ok(())
    }

    /// The batch's conversions that count in the rollups (see the module
    /// docs), with their attributed scans' dimensions.
    async fn counted_conversions<'b>(
        &self,
        batch: &'b Batch,
    ) -> Result<Vec<(&'b Conversion, Option<ScanDims>)>, SinkError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let repeats: Vec<&Conversion> = batch
            .conversions
            .iter()
            .filter(|c| c.repeat && c.received_ms + REPEAT_GRACE_MS <= now)
            .collect();
        let stored = self.stored_event_ids(&repeats).await?;
        let mut seen = HashSet::new();
        let counted: Vec<&Conversion> = batch
            .conversions
            .iter()
            .filter(|c| {
                let counts = if c.repeat {
                    c.received_ms + REPEAT_GRACE_MS <= now && !stored.contains(&c.event_id)
                } else {
                    true
                };
                // The same event twice in one batch counts once.
                counts && seen.insert(c.event_id.as_str())
            })
            .collect();
        self.with_scan_dims(&batch.scans, counted).await
    }

    /// The cells the batch's review adjustments change, in chunks of at
    /// most [`MAX_CONVERSIONS`] adjustments (in batch order: a replay cuts
    /// the same chunks, marked `a{i}`).
    async fn adjustment_chunks(&self, batch: &Batch) -> Result<Vec<ConversionCells>, SinkError> {
        if batch.adjustments.is_empty() {
            return Ok(Vec::new());
        }
        let conversions = batch.adjustments.iter().map(|a| &a.conversion).collect();
        let with_dims = self.with_scan_dims(&batch.scans, conversions).await?;
        Ok(with_dims
            .chunks(MAX_CONVERSIONS)
            .zip(batch.adjustments.chunks(MAX_CONVERSIONS))
            .map(|(group, adjustments)| {
                let items: Vec<(&Adjustment, Option<&ScanDims>)> = group
                    .iter()
                    .zip(adjustments)
                    .map(|((_, d), a)| (a, d.as_ref()))
                    .collect();
                rollup::adjustment_cells(&items)
            })
            .collect())
    }

    /// Which of the conversions' event ids have a row in `conversions`.
    pub(super) async fn stored_event_ids(
        &self,
        conversions: &[&Conversion],
    ) -> Result<HashSet<String>, SinkError> {
        if conversions.is_empty() {
            return Ok(HashSet::new());
        }
        let codes: HashSet<&str> = conversions.iter().map(|c| c.code.as_str()).collect();
        let sql = format!(
            "SELECT event_id FROM conversions WHERE code IN ({}) AND event_id IN ({})",
            vec!["?"; codes.len()].join(", "),
            vec!["?"; conversions.len()].join(", ")
        );
        let mut q = self.client.query(&sql);
        for code in codes {
            q = q.bind(code);
        }
        for c in conversions {
            q = q.bind(c.event_id.as_str());
        }
        Ok(q.fetch_all::<String>().await?.into_iter().collect())
    }

    /// Each conversion with the dimensions of its attributed scan: from the
    /// batch when the scan is in it, else from `scans`.
    pub(super) async fn with_scan_dims<'c>(
        &self,
        scans: &[Scan],
        conversions: Vec<&'c Conversion>,
    ) -> Result<Vec<(&'c Conversion, Option<ScanDims>)>, SinkError> {
        let in_batch: HashMap<&str, &Scan> =
            scans.iter().map(|s| (s.scan_id.as_str(), s)).collect();
        let wanted: Vec<&Conversion> = conversions
            .iter()
            .copied()
            .filter(|c| c.scan_ms > 0 && !in_batch.contains_key(c.scan_id.as_str()))
            .collect();
        let mut found: HashMap<String, ScanDims> = HashMap::new();
        for group in wanted.chunks(500) {
            // The primary key is (code, ts, scan_id): name all three.
            let keys = vec!["(?, toDateTime(?))"; group.len()].join(", ");
            let ids = vec!["?"; group.len()].join(", ");
            let sql = format!(
                "SELECT scan_id, source, device, os, browser, in_app, country, referrer_host, route \
                 FROM scans WHERE (code, ts) IN ({keys}) AND scan_id IN ({ids})"
            );
            let mut q = self.client.query(&sql);
            for c in group {
                q = q.bind(c.code.as_str()).bind(c.scan_ms / 1000);
            }
            for c in group {
                q = q.bind(c.scan_id.as_str());
            }
            for row in q.fetch_all::<DimsRow>().await? {
                found.insert(
                    row.scan_id,
                    ScanDims {
                        source: row.source.into(),
                        device: row.device.into(),
                        os: row.os.into(),
                        browser: row.browser.into(),
                        in_app: row.in_app.into(),
                        country: row.country.into(),
                        referrer_host: row.referrer_host.into(),
                        route: row.route.into(),
                    },
                );
            }
        }
        Ok(conversions
            .into_iter()
            .map(|c| {
                let dims = match in_batch.get(c.scan_id.as_str()) {
                    Some(s) => Some(ScanDims::of(s)),
                    None => found.get(&c.scan_id).cloned(),
                };
                (c, dims)
            })
            .collect())
    }

    pub(super) async fn insert_scans(&self, scans: &[Scan], rolled: u8) -> Result<(), SinkError> {
        let (send, end) = insert_timeouts();
        let mut insert = self
            .client
            .insert::<ScanRow<'_>>("scans")
            .await?
            .with_timeouts(send, end);
        for s in scans {
            let row = ScanRow {
                scan_id: &s.scan_id,
                ts: (s.ts_ms / 1000) as u32,
                ts_ms: s.ts_ms,
                code: &s.code,
                channel: &s.channel,
                visitor_id: &s.visitor_id,
                ip_prefix: &s.ip_prefix,
                user_agent: &s.user_agent,
                device: &s.device,
                os: &s.os,
                browser: &s.browser,
                in_app: &s.in_app,
                referrer_host: &s.referrer_host,
                country: &s.country,
                source: &s.source,
                is_bot: s.is_bot() as u8,
                bot_reason: &s.bot_reason,
                is_unique: s.is_unique as u8,
                rolled,
                route: &s.route,
            };
            insert.write(&row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    async fn insert_conversions(
        &self,
        conversions: &[Conversion],
        rolled: u8,
    ) -> Result<(), SinkError> {
        let (send, end) = insert_timeouts();
        let mut insert = self
            .client
            .insert::<ConversionRow<'_>>("conversions")
            .await?
            .with_timeouts(send, end);
        for c in conversions {
            let row = ConversionRow {
                event_id: &c.event_id,
                kind: c.kind.as_str(),
                occurred: (c.occurred_ms / 1000) as u32,
                occurred_ms: c.occurred_ms,
                received_ms: c.received_ms,
                code: &c.code,
                owner: &c.owner,
                channel: &c.channel,
                scan_id: &c.scan_id,
                scan_ms: c.scan_ms,
                visitor_id: &c.visitor_id,
                customer_id: &c.customer_id,
                amount: c.amount,
                currency: &c.currency,
                rule: c.rule.as_str(),
                earnings: c.earnings,
                earnings_currency: &c.earnings_currency,
                rolled,
                held: c.flagged.as_ref().map_or(0, |f| f.held),
                flags: c
                    .flagged
                    .as_ref()
                    .map_or_else(Vec::new, |f| f.flags.iter().map(String::as_str).collect()),
            };
            insert.write(&row).await?;
        }
        insert.end().await?;
        Ok(())
    }
}

/// The conversion cells of chunks of at most [`MAX_CONVERSIONS`] conversions
/// (in their order, so a replay cuts the same chunks), and of all of them.
pub(super) type ConversionCells = BTreeMap<ConversionKey, ConversionDelta>;

pub(super) fn conversion_chunks(
    counted: &[(&Conversion, Option<ScanDims>)],
) -> (Vec<ConversionCells>, ConversionCells) {
    let mut all = ConversionCells::new();
    let mut chunks = Vec::new();
    for group in counted.chunks(MAX_CONVERSIONS) {
        let with_dims: Vec<(&Conversion, Option<&ScanDims>)> =
            group.iter().map(|(c, d)| (*c, d.as_ref())).collect();
        let cells = rollup::conversion_cells(&with_dims);
        for (k, d) in &cells {
            all.entry(k.clone()).or_default().add(d);
        }
        chunks.push(cells);
    }
    (chunks, all)
}

/// The rows of `code_totals` for `totals`: one per code and bucket for scans
/// (kind `''`), one per (owner, kind, earnings currency) for conversions.
fn totals_rows(totals: &BTreeMap<TotalsKey, TotalsDelta>) -> Vec<TotalsRow<'_>> {
    let mut rows = Vec::new();
    for (k, t) in totals {
        if t.human > 0 {
            rows.push(TotalsRow {
                grain: k.grain as u8,
                bucket: k.bucket,
                scope: &k.scope,
                owner: "",
                kind: "",
                earnings_currency: "",
                n_human: t.human,
                n_conversions: 0,
                earnings_sum: 0,
            });
        }
        for ((owner, kind, currency), (n, earnings)) in &t.conversions {
            rows.push(TotalsRow {
                grain: k.grain as u8,
                bucket: k.bucket,
                scope: &k.scope,
                owner,
                kind: kind.as_str(),
                earnings_currency: currency,
                n_human: 0,
                n_conversions: *n,
                earnings_sum: *earnings,
            });
        }
    }
    rows
}

//! Rollups for rows an earlier version wrote (`rolled = 0`), built by
//! `codelink migrate`.
//!
//! One UTC day at a time: its scans (then its conversions) are read as a
//! stream, deduplicated by id, turned into cells by the same code as new
//! batches, and inserted in chunks whose markers are `#backfill/{day}/…`
//! (see `write.rs`): a day already done is skipped, a day half done is
//! finished, so the backfill can be interrupted and run again. Rows new
//! writers insert carry `rolled = 1` and are never backfilled. When every day
//! is done, the marker `#backfill/done` tells every instance so with one key
//! lookup (old rows keep `rolled = 0`: run the backfill once every gateway
//! runs this version, so that no old one writes such rows afterwards).

use super::read::{ScanOut, COLUMNS};
use super::write::{conversion_chunks, ScanCellRow, REPEAT_GRACE_MS};
use super::ClickHouseEvents;
use crate::event::{Conversion, ConversionKind, Rule, Scan};
use crate::rollup::{self, ScanCellBuilder};
use crate::sink::SinkError;
use serde::Deserialize;
use std::collections::HashSet;

const DONE: &str = "#backfill/done";

/// Days still holding rows without rollups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackfillProgress {
    /// Unix seconds of each day's start, oldest first.
    pub days: Vec<u32>,
}

#[derive(Deserialize, clickhouse::Row)]
struct ConversionIn {
    event_id: String,
    kind: String,
    occurred_ms: u64,
    code: String,
    owner: String,
    channel: String,
    scan_id: String,
    scan_ms: u64,
    amount: i64,
    currency: String,
    earnings: i64,
    earnings_currency: String,
}

impl ClickHouseEvents {
    /// Whether rows without rollups may exist (the done marker is absent).
    pub(super) async fn backfill_pending_node(&self) -> Result<bool, SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        let done: u64 = self
            .client
            .query("SELECT count() FROM scan_rollup WHERE scope = ?")
            .bind(DONE)
            .fetch_one()
            .await?;
        Ok(done == 0)
    }

    /// The days with rows written before rollups existed. With none, the done
    /// marker is written.
    pub(super) async fn backfill_todo_node(&self) -> Result<BackfillProgress, SinkError> {
        if !self.backfill_pending_node().await? {
            return Ok(BackfillProgress::default());
        }
        let mut days: Vec<u32> = self
            .client
            .query(
                "SELECT DISTINCT toUInt32(toStartOfDay(ts, 'UTC')) FROM scans WHERE rolled = 0 \
                 UNION ALL SELECT DISTINCT toUInt32(toStartOfDay(occurred, 'UTC')) \
                 FROM conversions WHERE rolled = 0",
            )
            .fetch_all()
            .await?;
        days.sort_unstable();
        days.dedup();
        if days.is_empty() {
            self.backfill_finish_node().await?;
        }
        Ok(BackfillProgress { days })
    }

    /// Marks the backfill done (after every day of [`Self::backfill_todo`]
    /// was backfilled): rows of earlier versions keep `rolled = 0`, so only
    /// this marker says they are in the rollups.
    pub(super) async fn backfill_finish_node(&self) -> Result<(), SinkError> {
        let mut insert = self
            .rollup_client()
            .insert::<ScanCellRow<'_>>("scan_rollup_input")
            .await?;
        insert.write(&ScanCellRow::marker(DONE)).await?;
        insert.end().await?;
        Ok(())
    }

    /// Builds the rollups of one day's old rows (idempotent; see the module docs).
    pub(super) async fn backfill_day_node(&self, day: u32) -> Result<(), SinkError> {
        let (from, to) = (day, day.saturating_add(86_400));
        let mut builder = ScanCellBuilder::default();
        let mut seen: HashSet<crate::Text> = HashSet::new();
        let sql = format!(
            "SELECT {COLUMNS} FROM scans \
             WHERE ts >= toDateTime(?) AND ts < toDateTime(?) AND rolled = 0"
        );
        let mut cursor = self
            .client
            .query(&sql)
            .bind(from)
            .bind(to)
            .fetch::<ScanOut>()?;
        while let Some(r) = cursor.next().await? {
            let scan = Scan::from(r);
            if seen.insert(scan.scan_id.clone()) {
                builder.add(&scan);
            }
        }
        drop(seen);
        let scan_cells = builder.finish();

        let rows: Vec<ConversionIn> = self
            .client
            .query(
                "SELECT event_id, kind, occurred_ms, code, owner, channel, scan_id, scan_ms, \
                 amount, currency, earnings, earnings_currency FROM conversions \
                 WHERE occurred >= toDateTime(?) AND occurred < toDateTime(?) AND rolled = 0",
            )
            .bind(from)
            .bind(to)
            .fetch_all()
            .await?;
        let mut seen = HashSet::new();
        let conversions: Vec<Conversion> = rows
            .into_iter()
            .filter(|r| seen.insert(r.event_id.clone()))
            .map(|r| Conversion {
                event_id: r.event_id,
                kind: match r.kind.as_str() {
                    "purchase" => ConversionKind::Purchase,
                    "refund" => ConversionKind::Refund,
                    _ => ConversionKind::Signup,
                },
                occurred_ms: r.occurred_ms,
                received_ms: r.occurred_ms.saturating_sub(REPEAT_GRACE_MS),
                code: r.code,
                owner: r.owner,
                channel: r.channel,
                scan_id: r.scan_id,
                scan_ms: r.scan_ms,
                visitor_id: String::new(),
                customer_id: String::new(),
                amount: r.amount,
                currency: r.currency,
                rule: Rule::ScanId,
                earnings: r.earnings,
                earnings_currency: r.earnings_currency,
                repeat: false,
                flagged: None,
            })
            .collect();
        let with_dims = self
            .with_scan_dims(&[], conversions.iter().collect())
            .await?;
        let (conversion_chunks, all_conversions) = conversion_chunks(&with_dims);
        let totals = rollup::totals(&scan_cells, &all_conversions);
        self.write_rollups(
            &format!("#backfill/{day}"),
            &scan_cells,
            &conversion_chunks,
            &[],
            &totals,
        )
        .await
    }
}

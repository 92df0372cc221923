//! The embedded sink: `scans.redb` in the data dir holds what no server was
//! configured for: scan and conversion rows with their rollups (no
//! ClickHouse), and the live store (no Redis).
//!
//! - `write.rs`: a batch in one redb transaction (rows, rollups, counters,
//!   last visits and the batch id), so a batch is applied exactly once;
//! - `read.rs`: rollup cells for the queries, recent scans, scans by id;
//! - `migrate.rs`: rollups for data written before they existed.

mod erasure;
mod migrate;
mod read;
mod retention;
mod review;
mod write;

pub use erasure::{Erased, Subject};
pub use retention::Pruned;

pub use migrate::MigrationProgress;

use super::SinkError;
use crate::event::{Conversion, ConversionKind};
use crate::records::{Claim, ClaimRecord, CustomerLink, LastVisit, RefundOf, Refunded};
use crate::stats::CodeStats;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// scan id → scan as JSON: how the first versions stored scans; migrated.
const SCANS: TableDefinition<&str, &[u8]> = TableDefinition::new("scans");
/// first scan id → a chunk of scans of any codes: the next versions; migrated.
const SCAN_CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_chunks");
/// "{code}\0{first scan id}" → a chunk of that code's scans (see [`super::chunk`]).
const CODE_CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("code_chunks");
/// "{code}\0{field}" → count.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// "{code}\0{day}\0{visitor}" → 1: the unique visitors per day, as versions
/// before 2026-11-30 wrote them. No longer written (they come from the last
/// visits now, see `write.rs`); what is left is still pruned by retention
/// and erased with its visitor.
const VISITS: TableDefinition<&str, u8> = TableDefinition::new("visits");
/// batch id → number of scans: batches already applied.
const BATCHES: TableDefinition<&str, u64> = TableDefinition::new("batches");
/// event id → conversion as JSON: the stored conversions (no ClickHouse).
const CONVERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversions");
/// [`code_conversion_key`] → the owner credited: the stored conversions of
/// each code by time (one entry per [`CONVERSIONS`] row, written with it).
const CODE_CONVERSIONS: TableDefinition<&str, &str> = TableDefinition::new("code_conversions");
/// event id → [`ClaimRecord`] as JSON: the first answer given for each event id.
const CLAIMS: TableDefinition<&str, &[u8]> = TableDefinition::new("claims");
/// purchase event id → [`Refunded`] as JSON: how much of it was refunded so far.
const REFUNDS: TableDefinition<&str, &[u8]> = TableDefinition::new("refunds");
/// [`customer_purchase_key`] → (): each customer's claimed purchases by time.
const CUSTOMER_PURCHASES: TableDefinition<&str, ()> = TableDefinition::new("customer_purchases");
/// customer id → the attribution of the customer's first attributed conversion.
const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");
/// "{code}\0{visitor}" → the latest human scan of the code by the visitor.
const LAST_VISITS: TableDefinition<&str, &[u8]> = TableDefinition::new("last_visits");
/// [`last_visit_key`] → the latest human scan of the code by the visitor
/// ([`LastVisit::encode_packed`]): what [`LAST_VISITS`] held, in fewer bytes.
/// Written since 2026-11-30; an entry of [`LAST_VISITS`] moves here when its
/// visitor scans the code again, and is read there until then.
const LAST_VISITS_PACKED: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("last_visits_packed");

/// A [`LAST_VISITS_PACKED`] key: the code, 0, then the visitor as
/// [`push_visitor`] writes it (20 bytes for a 4-character code and a visitor
/// id the gateway made, where the text key took 37).
fn last_visit_key(code: &str, visitor: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(code.as_bytes());
    out.push(0);
    push_visitor(visitor, out);
}

/// A visitor id in a key: 1 and its 16 bytes when it is 32 lowercase hex
/// digits (every id the gateway makes), else 2 and its text.
fn push_visitor(visitor: &str, out: &mut Vec<u8>) {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = visitor.as_bytes();
    let mut raw = [0u8; 16];
    let packed = bytes.len() == 32
        && raw.iter_mut().zip(bytes.chunks(2)).all(|(r, pair)| {
            match (hex(pair[0]), hex(pair[1])) {
                (Some(high), Some(low)) => {
                    *r = high << 4 | low;
                    true
                }
                _ => false,
            }
        });
    if packed {
        out.push(1);
        out.extend_from_slice(&raw);
    } else {
        out.push(2);
        out.extend_from_slice(bytes);
    }
}
/// [`block_key`] → the scan cells of one (scope, grain, bucket): the
/// totals in one entry, the dimensions in another or (busy buckets) one per
/// dimension (`rollup::block`), so that each question reads what it needs.
const SCAN_BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("scan_blocks");
/// [`block_key`] → the conversion cells of one (scope, grain, bucket):
/// totals and dimensions in separate entries (conversions are few: never
/// split further).
const CONVERSION_BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("conversion_blocks");
/// [`totals_key`] → a code's totals in one bucket, ordered by time.
const TOTALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("totals");
/// code → (occurred ms, event id, owner) of its latest stored conversion.
const LATEST_OWNERS: TableDefinition<&str, &[u8]> = TableDefinition::new("latest_owners");
/// event ids of conversions stored before rollups existed, still to be rolled up.
const LEGACY_CONVERSIONS: TableDefinition<&str, ()> = TableDefinition::new("legacy_conversions");
/// Store-wide facts: `layout` → the layout version.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The layout this version writes: per-code chunks and rollups.
const LAYOUT: &[u8] = b"2";

/// Which cells of a bucket an entry holds: the totals; every dimension
/// together; or, once that grew past [`SPLIT_BYTES`] (a busy scope), one
/// dimension alone (`DIMS + dim`), so that a breakdown reads its dimension only.
const TOTALS_PART: u8 = 0;
const DIMS_PART: u8 = 1;
/// Dimensions of a bucket are kept in one entry up to this size.
const SPLIT_BYTES: usize = 16 * 1024;

fn dim_part(dim: crate::rollup::Dim) -> u8 {
    DIMS_PART + dim as u8
}

/// `{scope}\0{grain}{part}{bucket: u32 BE}`: a scope's entries of one grain
/// and part are adjacent in time.
fn block_key(scope: &str, grain: crate::rollup::Grain, part: u8, bucket: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + 7);
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.push(grain as u8);
    k.push(part);
    k.extend_from_slice(&bucket.to_be_bytes());
    k
}

/// `{code}\0{occurred ms: 20 digits}\0{event id}`: a code's conversions are
/// adjacent, oldest first.
fn code_conversion_key(c: &Conversion) -> String {
    format!("{}\0{:020}\0{}", c.code, c.occurred_ms, c.event_id)
}

/// `{grain}{bucket: u32 BE}{scope}`: every code's totals of a time range are adjacent.
fn totals_key(grain: crate::rollup::Grain, bucket: u32, scope: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + 5);
    k.push(grain as u8);
    k.extend_from_slice(&bucket.to_be_bytes());
    k.extend_from_slice(scope.as_bytes());
    k
}

#[derive(Clone)]
pub struct EmbeddedSink {
    db: Arc<Database>,
    /// Keep scan and conversion rows and their rollups here (no ClickHouse).
    events: bool,
    /// Keep counters and the live store here (no Redis).
    counters: bool,
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Embedded(e.to_string())
}

/// `{customer}\0{occurred ms, 20 digits}\0{event id}` of a purchase with a
/// customer (`None` for anything else): the customer's purchases by time.
fn customer_purchase_key(c: &Conversion) -> Option<String> {
    (c.kind == ConversionKind::Purchase && !c.customer_id.is_empty())
        .then(|| format!("{}\0{:020}\0{}", c.customer_id, c.occurred_ms, c.event_id))
}

/// Builds [`CUSTOMER_PURCHASES`] from the claims, once: purchases claimed by
/// a version before it can then be refunded by customer too. One pass.
fn index_customer_purchases(tx: &redb::WriteTransaction) -> Result<(), SinkError> {
    let claims = tx.open_table(CLAIMS).map_err(err)?;
    let mut index = tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
    let mut indexed = 0u64;
    for item in claims.iter().map_err(err)? {
        let (k, v) = item.map_err(err)?;
        match serde_json::from_slice::<ClaimRecord>(v.value()) {
            Ok(record) => {
                if let Some(key) = customer_purchase_key(&record.conversion) {
                    index.insert(key.as_str(), ()).map_err(err)?;
                    indexed += 1;
                }
            }
            Err(e) => {
                tracing::error!(key = k.value(), error = %e, "unreadable claim not indexed")
            }
        }
    }
    if indexed > 0 {
        tracing::info!(
            purchases = indexed,
            "indexed the claimed purchases by customer"
        );
    }
    Ok(())
}

fn read_refunded(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    purchase_event_id: &str,
) -> Result<Refunded, SinkError> {
    match table.get(purchase_event_id).map_err(err)? {
        Some(v) => serde_json::from_slice(v.value()).map_err(err),
        None => Ok(Refunded::default()),
    }
}

/// Builds [`CODE_CONVERSIONS`] from the stored conversions when it does not
/// hold one entry per row: a store of a version before the index (or one
/// that an earlier version wrote to since). Conversions are few: one pass.
fn index_conversions(
    tx: &redb::WriteTransaction,
    conversions: &redb::Table<&str, &[u8]>,
) -> Result<(), SinkError> {
    let mut index = tx.open_table(CODE_CONVERSIONS).map_err(err)?;
    let stored = conversions.len().map_err(err)?;
    if index.len().map_err(err)? == stored {
        return Ok(());
    }
    index.retain(|_, _| false).map_err(err)?;
    for item in conversions.iter().map_err(err)? {
        let (k, v) = item.map_err(err)?;
        match serde_json::from_slice::<Conversion>(v.value()) {
            Ok(c) => {
                index
                    .insert(code_conversion_key(&c).as_str(), c.owner.as_str())
                    .map_err(err)?;
            }
            Err(e) => {
                tracing::error!(key = k.value(), error = %e, "unreadable conversion not indexed")
            }
        }
    }
    tracing::info!(
        conversions = stored,
        "indexed the stored conversions by code"
    );
    Ok(())
}

/// The page cache of `scans.redb` when nothing else is said (bytes).
pub const DEFAULT_CACHE_BYTES: u64 = 48 * 1024 * 1024;

impl EmbeddedSink {
    /// Opens `scans.redb` with a page cache of [`DEFAULT_CACHE_BYTES`].
    pub fn open(data_dir: &Path, events: bool, counters: bool) -> Result<Self, SinkError> {
        Self::open_with_cache(data_dir, events, counters, DEFAULT_CACHE_BYTES)
    }

    /// Opens `scans.redb` with a page cache of `cache_bytes` (redb splits it
    /// nine to one between pages read and pages written but not yet flushed).
    pub fn open_with_cache(
        data_dir: &Path,
        events: bool,
        counters: bool,
        cache_bytes: u64,
    ) -> Result<Self, SinkError> {
        let path = data_dir.join("scans.redb");
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(&path)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        // Visitor ids, IP prefixes, customer ids: readable by this user only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
        }
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(SCANS).map_err(err)?;
        tx.open_table(SCAN_CHUNKS).map_err(err)?;
        tx.open_table(CODE_CHUNKS).map_err(err)?;
        tx.open_table(COUNTERS).map_err(err)?;
        tx.open_table(VISITS).map_err(err)?;
        tx.open_table(BATCHES).map_err(err)?;
        tx.open_table(CLAIMS).map_err(err)?;
        tx.open_table(CUSTOMERS).map_err(err)?;
        tx.open_table(REFUNDS).map_err(err)?;
        tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
        tx.open_table(LAST_VISITS).map_err(err)?;
        tx.open_table(LAST_VISITS_PACKED).map_err(err)?;
        tx.open_table(SCAN_BLOCKS).map_err(err)?;
        tx.open_table(CONVERSION_BLOCKS).map_err(err)?;
        tx.open_table(TOTALS).map_err(err)?;
        tx.open_table(LATEST_OWNERS).map_err(err)?;
        tx.open_table(review::FRAUD_COUNTS).map_err(err)?;
        tx.open_table(review::REVIEWS).map_err(err)?;
        tx.open_table(review::REVIEW_QUEUE).map_err(err)?;
        {
            let mut meta = tx.open_table(META).map_err(err)?;
            let conversions = tx.open_table(CONVERSIONS).map_err(err)?;
            let mut legacy = tx.open_table(LEGACY_CONVERSIONS).map_err(err)?;
            if meta.get("layout").map_err(err)?.is_none() {
                // Conversions stored by an earlier version have no rollups
                // yet: remember which, so that the migration rolls up those
                // and no other.
                for item in conversions.iter().map_err(err)? {
                    let (id, _) = item.map_err(err)?;
                    legacy.insert(id.value(), ()).map_err(err)?;
                }
                meta.insert("layout", LAYOUT).map_err(err)?;
            }
            index_conversions(&tx, &conversions)?;
            if meta.get("customer_purchases").map_err(err)?.is_none() {
                index_customer_purchases(&tx)?;
                meta.insert("customer_purchases", b"1".as_slice())
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(Self {
            db: Arc::new(db),
            events,
            counters,
        })
    }

    /// Up to `limit` of the conversions stored for `code` (credited to
    /// `owner` when given), newest first by occurred ms, then event id.
    pub async fn recent_conversions(
        &self,
        code: &str,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Conversion>, SinkError> {
        let code = code.to_string();
        let owner = owner.map(str::to_string);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let index = tx.open_table(CODE_CONVERSIONS).map_err(err)?;
            let rows = tx.open_table(CONVERSIONS).map_err(err)?;
            let (lo, hi) = (format!("{code}\0"), format!("{code}\u{1}"));
            let mut out = Vec::new();
            for item in index.range(lo.as_str()..hi.as_str()).map_err(err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, credited) = item.map_err(err)?;
                if owner.as_deref().is_some_and(|o| o != credited.value()) {
                    continue;
                }
                // After "{code}\0", 20 digits of time and a \0.
                let Some(event_id) = k.value().get(lo.len() + 21..) else {
                    continue;
                };
                let Some(row) = rows.get(event_id).map_err(err)? else {
                    continue;
                };
                match serde_json::from_slice::<Conversion>(row.value()) {
                    Ok(mut c) => {
                        c.repeat = false;
                        out.push(c);
                    }
                    Err(e) => {
                        tracing::error!(event_id, error = %e, "unreadable conversion skipped")
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// The database itself, for the webhook outbox (`crate::webhooks`),
    /// which keeps tables of its own in the same file.
    pub(crate) fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(err)?
    }

    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        let code = code.to_string();
        self.blocking(move |db| {
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
    }

    /// The latest human scan of `code` by `visitor`.
    pub async fn last_visit(
        &self,
        code: &str,
        visitor: &str,
    ) -> Result<Option<LastVisit>, SinkError> {
        let mut key = Vec::new();
        last_visit_key(code, visitor, &mut key);
        let text_key = format!("{code}\0{visitor}");
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let packed = tx.open_table(LAST_VISITS_PACKED).map_err(err)?;
            if let Some(v) = packed.get(key.as_slice()).map_err(err)? {
                return Ok(LastVisit::decode(v.value()));
            }
            let table = tx.open_table(LAST_VISITS).map_err(err)?;
            Ok(table
                .get(text_key.as_str())
                .map_err(err)?
                .and_then(|v| LastVisit::decode(v.value())))
        })
        .await
    }

    /// Claims `record.conversion.event_id` for `record`; if another answer was
    /// given first, returns that. In the same transaction: a customer link is
    /// stored unless one exists; a purchase with a customer joins that
    /// customer's purchases; a refund moves its purchase's refunded totals from
    /// `refund.before` to `refund.after` (or, if they are no longer `before`,
    /// nothing is written and the answer is [`Claim::Stale`]).
    pub async fn claim(
        &self,
        record: &ClaimRecord,
        customer: Option<&CustomerLink>,
        refund: Option<&RefundOf>,
    ) -> Result<Claim, SinkError> {
        let record = record.clone();
        let customer = customer.cloned();
        let refund = refund.cloned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let conversion = &record.conversion;
            let claim = {
                let mut claims = tx.open_table(CLAIMS).map_err(err)?;
                let existing: Option<ClaimRecord> =
                    match claims.get(conversion.event_id.as_str()).map_err(err)? {
                        Some(v) => Some(serde_json::from_slice(v.value()).map_err(err)?),
                        None => None,
                    };
                let mut refunds = tx.open_table(REFUNDS).map_err(err)?;
                let stale = match &refund {
                    Some(r) => read_refunded(&refunds, &r.purchase_event_id)? != r.before,
                    None => false,
                };
                if let Some(existing) = existing {
                    Claim::Existing(Box::new(existing))
                } else if stale {
                    Claim::Stale
                } else {
                    let row = serde_json::to_vec(&record).map_err(err)?;
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
                    if let Some(key) = customer_purchase_key(conversion) {
                        let mut index = tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
                        index.insert(key.as_str(), ()).map_err(err)?;
                    }
                    if let Some(r) = &refund {
                        let value = serde_json::to_vec(&r.after).map_err(err)?;
                        refunds
                            .insert(r.purchase_event_id.as_str(), value.as_slice())
                            .map_err(err)?;
                    }
                    Claim::New
                }
            };
            tx.commit().map_err(err)?;
            Ok(claim)
        })
        .await
    }

    /// Undoes [`EmbeddedSink::claim`] of `record` (with `refund`, as claimed)
    /// if the claim still holds `record`.
    pub async fn release(
        &self,
        record: &ClaimRecord,
        refund: Option<&RefundOf>,
    ) -> Result<(), SinkError> {
        let row = serde_json::to_vec(record).map_err(err)?;
        let id = record.conversion.event_id.clone();
        let index_key = customer_purchase_key(&record.conversion);
        let refund = refund.cloned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut claims = tx.open_table(CLAIMS).map_err(err)?;
                let ours = claims
                    .get(id.as_str())
                    .map_err(err)?
                    .is_some_and(|v| v.value() == row.as_slice());
                if ours {
                    claims.remove(id.as_str()).map_err(err)?;
                    if let Some(key) = index_key {
                        let mut index = tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
                        index.remove(key.as_str()).map_err(err)?;
                    }
                    if let Some(r) = refund {
                        let mut refunds = tx.open_table(REFUNDS).map_err(err)?;
                        let cur = read_refunded(&refunds, &r.purchase_event_id)?;
                        let undone = Refunded {
                            amount: cur.amount - (r.after.amount - r.before.amount),
                            earnings: cur.earnings - (r.after.earnings - r.before.earnings),
                        };
                        let value = serde_json::to_vec(&undone).map_err(err)?;
                        refunds
                            .insert(r.purchase_event_id.as_str(), value.as_slice())
                            .map_err(err)?;
                    }
                }
            }
            tx.commit().map_err(err)
        })
        .await
    }

    /// The claim of `event_id`, if any.
    pub async fn claimed(&self, event_id: &str) -> Result<Option<ClaimRecord>, SinkError> {
        let id = event_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CLAIMS).map_err(err)?;
            match table.get(id.as_str()).map_err(err)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(err)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// How much of the purchase `event_id` has been refunded.
    pub async fn refunded(&self, event_id: &str) -> Result<Refunded, SinkError> {
        let id = event_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(REFUNDS).map_err(err)?;
            read_refunded(&table, &id)
        })
        .await
    }

    /// The customer's latest claimed purchase (by time of occurrence) not yet
    /// fully refunded, with what was refunded of it; among the latest
    /// [`super::REFUNDABLE_SEARCH`] purchases.
    pub async fn latest_refundable_purchase(
        &self,
        customer_id: &str,
    ) -> Result<Option<(ClaimRecord, Refunded)>, SinkError> {
        let prefix = format!("{customer_id}\0");
        let end = format!("{customer_id}\u{1}");
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let index = tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
            let claims = tx.open_table(CLAIMS).map_err(err)?;
            let refunds = tx.open_table(REFUNDS).map_err(err)?;
            for item in index
                .range(prefix.as_str()..end.as_str())
                .map_err(err)?
                .rev()
                .take(super::REFUNDABLE_SEARCH)
            {
                let (key, _) = item.map_err(err)?;
                let Some(event_id) = key.value().rsplit('\0').next().map(str::to_string) else {
                    continue;
                };
                let Some(v) = claims.get(event_id.as_str()).map_err(err)? else {
                    continue;
                };
                let record: ClaimRecord = serde_json::from_slice(v.value()).map_err(err)?;
                let refunded = read_refunded(&refunds, &event_id)?;
                if refunded.amount < record.conversion.amount {
                    return Ok(Some((record, refunded)));
                }
            }
            Ok(None)
        })
        .await
    }

    pub async fn customer(&self, customer_id: &str) -> Result<Option<CustomerLink>, SinkError> {
        let id = customer_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CUSTOMERS).map_err(err)?;
            match table.get(id.as_str()).map_err(err)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(err)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Every stored conversion, in event-id order (tests and small exports).
    pub async fn all_conversions(&self) -> Result<Vec<Conversion>, SinkError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(CONVERSIONS).map_err(err)?;
            let mut out = Vec::with_capacity(table.len().map_err(err)? as usize);
            for item in table.iter().map_err(err)? {
                let (k, v) = item.map_err(err)?;
                match serde_json::from_slice(v.value()) {
                    Ok(row) => out.push(row),
                    Err(e) => tracing::error!(key = k.value(), error = %e, "unreadable conversion skipped"),
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::event::{ConversionKind, Rule};

    fn conversion(id: &str, code: &str, owner: &str, occurred_ms: u64) -> Conversion {
        Conversion {
            event_id: id.into(),
            kind: ConversionKind::Signup,
            occurred_ms,
            received_ms: occurred_ms,
            code: code.into(),
            owner: owner.into(),
            channel: String::new(),
            scan_id: String::new(),
            scan_ms: 0,
            visitor_id: String::new(),
            customer_id: String::new(),
            amount: 0,
            currency: String::new(),
            rule: Rule::CodeOnly,
            earnings: 200,
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        }
    }

    fn ids(rows: &[Conversion]) -> Vec<&str> {
        rows.iter().map(|c| c.event_id.as_str()).collect()
    }

    /// A store whose conversions were written before the index by code
    /// existed (or by such a version since) gets the index built at open.
    #[tokio::test]
    async fn the_index_by_code_is_built_for_stored_conversions() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_700_006_400_000;
        let sink = EmbeddedSink::open(dir.path(), true, false).unwrap();
        let first = vec![
            conversion("e1", "abc", "ann", t),
            conversion("e2", "abc", "ben", t + 5),
            conversion("e3", "xyz", "ann", t + 1),
            conversion("e0", "abc", "ann", t + 5),
            conversion("u1", "", "", t + 2),
        ];
        sink.write(&Arc::new(Batch::new(Vec::new(), first)))
            .await
            .unwrap();
        let index_len = |sink: &EmbeddedSink| {
            let tx = sink.db.begin_read().unwrap();
            tx.open_table(CODE_CONVERSIONS).unwrap().len().unwrap()
        };
        assert_eq!(index_len(&sink), 5, "written with the rows");
        let abc = ["e2", "e0", "e1"];
        assert_eq!(
            ids(&sink.recent_conversions("abc", None, 10).await.unwrap()),
            abc
        );

        // As an earlier version left it: no index at all.
        let tx = sink.db.begin_write().unwrap();
        tx.delete_table(CODE_CONVERSIONS).unwrap();
        tx.commit().unwrap();
        drop(sink);
        let sink = EmbeddedSink::open(dir.path(), true, false).unwrap();
        assert_eq!(index_len(&sink), 5);
        assert_eq!(
            ids(&sink.recent_conversions("abc", None, 10).await.unwrap()),
            abc
        );
        assert_eq!(
            ids(&sink
                .recent_conversions("abc", Some("ann"), 1)
                .await
                .unwrap()),
            ["e0"]
        );
        assert_eq!(
            ids(&sink.recent_conversions("xyz", None, 10).await.unwrap()),
            ["e3"]
        );

        // Rows an earlier version stored after this one: the index misses
        // them, and is built again.
        let tx = sink.db.begin_write().unwrap();
        {
            let mut index = tx.open_table(CODE_CONVERSIONS).unwrap();
            let key = code_conversion_key(&conversion("e2", "abc", "ben", t + 5));
            assert!(index.remove(key.as_str()).unwrap().is_some());
        }
        tx.commit().unwrap();
        drop(sink);
        let sink = EmbeddedSink::open(dir.path(), true, false).unwrap();
        assert_eq!(index_len(&sink), 5);
        assert_eq!(
            ids(&sink.recent_conversions("abc", None, 10).await.unwrap()),
            abc
        );

        // And new rows go on being indexed as they are written.
        sink.write(&Arc::new(Batch::new(
            Vec::new(),
            vec![conversion("e9", "abc", "ben", t + 3)],
        )))
        .await
        .unwrap();
        assert_eq!(
            ids(&sink.recent_conversions("abc", None, 10).await.unwrap()),
            ["e2", "e0", "e9", "e1"]
        );
    }

    /// Purchases claimed by a version before the customer index (claims that
    /// are bare conversions) are indexed at the next open, once.
    #[tokio::test]
    async fn older_claimed_purchases_are_indexed_by_customer() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedSink::open(dir.path(), true, true).unwrap());
        let mut purchase = conversion("p-old", "spring", "alice", 1_000);
        purchase.kind = ConversionKind::Purchase;
        purchase.customer_id = "cust-1".into();
        (purchase.amount, purchase.currency) = (500, "EUR".into());
        {
            // What an earlier version left: the claim, no index, no marker.
            let db = Database::create(dir.path().join("scans.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut claims = tx.open_table(CLAIMS).unwrap();
                let row = serde_json::to_vec(&purchase).unwrap();
                claims.insert("p-old", row.as_slice()).unwrap();
                tx.open_table(META)
                    .unwrap()
                    .remove("customer_purchases")
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let (found, refunded) = sink
            .latest_refundable_purchase("cust-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, ClaimRecord::of(purchase));
        assert_eq!(refunded, Refunded::default());
    }
}

//! Scan and conversion rows in ClickHouse, and their rollups.
//!
//! The SQL runs on ClickHouse 18.16 (Debian's package, what the tests use) and
//! on current releases: modern `ENGINE = ... PARTITION BY ... ORDER BY` syntax,
//! no TTL, no DateTime64, no LowCardinality, no CODECs, no `IF NOT EXISTS` on
//! columns.
//!
//! - `write.rs`: a batch: rollup cells (through `Null` input tables and
//!   materialized views into `AggregatingMergeTree` tables, each insert
//!   carrying the batch's marker row), then the raw rows;
//! - `read.rs`: a code's recent scans (drill-down);
//! - `backfill.rs`: rollups for rows written before they existed.

mod backfill;
mod read;
mod write;

pub use backfill::BackfillProgress;

use super::SinkError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// e.g. `http://127.0.0.1:8123`
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Idempotent migrations, run in order at start-up (and again before the first
/// write if ClickHouse was down at start-up). `{db}` is the database name.
pub const MIGRATIONS: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS {db}",
    // ReplacingMergeTree over (code, ts, scan_id): a scan replayed from the spool
    // has the same key and collapses into one row at merge time.
    // `rolled` is 1 on rows whose rollup cells were written with them; rows
    // written before rollups existed read 0 (see backfill.rs).
    "CREATE TABLE IF NOT EXISTS {db}.scans (
        scan_id String,
        ts DateTime,
        ts_ms UInt64,
        code String,
        channel String,
        visitor_id String,
        ip_prefix String,
        user_agent String,
        device String,
        os String,
        browser String,
        in_app String,
        referrer_host String,
        country String,
        source String,
        is_bot UInt8,
        bot_reason String,
        is_unique UInt8,
        rolled UInt8 DEFAULT 0,
        route String DEFAULT ''
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ts)
    ORDER BY (code, ts, scan_id)",
    // One row per conversion, deduplicated by event id (a conversion is
    // re-written when a brand retries an event whose first answer it missed).
    "CREATE TABLE IF NOT EXISTS {db}.conversions (
        event_id String,
        kind String,
        occurred DateTime,
        occurred_ms UInt64,
        received_ms UInt64,
        code String,
        owner String,
        channel String,
        scan_id String,
        scan_ms UInt64,
        visitor_id String,
        customer_id String,
        amount Int64,
        currency String,
        rule String,
        earnings Int64,
        earnings_currency String,
        rolled UInt8 DEFAULT 0,
        held Int64 DEFAULT 0,
        flags Array(String)
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(occurred)
    ORDER BY (code, occurred, event_id)",
    // Scan cells (see `crate::rollup`): per scope (a code, or '*'), grain
    // (0 quarter-hour, 1 hour, 2 day), dimension, bucket and value. Not
    // partitioned: every insert is then one part, written whole or not at
    // all, which is what makes a batch's marker row (scope '#…') mean
    // "this batch's cells are in". Granules of 256 rows, not 8192: a query
    // reads a few cells of a code, and every row of a granule it touches is
    // read with its visitor sketches (up to a few KiB each).
    "CREATE TABLE IF NOT EXISTS {db}.scan_rollup (
        scope String,
        grain UInt8,
        dim UInt8,
        bucket DateTime,
        value String,
        human AggregateFunction(sum, UInt64),
        bot AggregateFunction(sum, UInt64),
        suspect AggregateFunction(sum, UInt64),
        qr AggregateFunction(sum, UInt64),
        link AggregateFunction(sum, UInt64),
        visitors_small AggregateFunction(uniqUpToArray(100), Array(UInt64)),
        visitors AggregateFunction(uniqHLL12Array, Array(UInt64))
    ) ENGINE = AggregatingMergeTree
    ORDER BY (scope, grain, dim, bucket, value)
    SETTINGS index_granularity = 256",
    "CREATE TABLE IF NOT EXISTS {db}.scan_rollup_input (
        scope String,
        grain UInt8,
        dim UInt8,
        bucket DateTime,
        value String,
        n_human UInt64,
        n_bot UInt64,
        n_suspect UInt64,
        n_qr UInt64,
        n_link UInt64,
        visitor_hashes Array(UInt64)
    ) ENGINE = Null",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.scan_rollup_mv TO {db}.scan_rollup AS
    SELECT scope, grain, dim, bucket, value,
        sumState(n_human) AS human, sumState(n_bot) AS bot,
        sumState(n_suspect) AS suspect, sumState(n_qr) AS qr, sumState(n_link) AS link,
        uniqUpToArrayState(100)(visitor_hashes) AS visitors_small,
        uniqHLL12ArrayState(visitor_hashes) AS visitors
    FROM {db}.scan_rollup_input
    GROUP BY scope, grain, dim, bucket, value",
    // Conversion cells: also per owner (in a code's scope), kind and
    // currencies; 128-bit sums; the scan-to-signup delay histogram.
    "CREATE TABLE IF NOT EXISTS {db}.conversion_rollup (
        scope String,
        grain UInt8,
        dim UInt8,
        bucket DateTime,
        value String,
        owner String,
        kind String,
        currency String,
        earnings_currency String,
        n AggregateFunction(sum, UInt64),
        amount AggregateFunction(sum, Decimal(38, 0)),
        earnings AggregateFunction(sum, Decimal(38, 0)),
        delays AggregateFunction(sumMap, Array(UInt16), Array(UInt64)),
        flagged AggregateFunction(sum, Int64),
        held AggregateFunction(sum, Decimal(38, 0))
    ) ENGINE = AggregatingMergeTree
    ORDER BY (scope, grain, dim, bucket, value, owner, kind, currency, earnings_currency)
    SETTINGS index_granularity = 256",
    "CREATE TABLE IF NOT EXISTS {db}.conversion_rollup_input (
        scope String,
        grain UInt8,
        dim UInt8,
        bucket DateTime,
        value String,
        owner String,
        kind String,
        currency String,
        earnings_currency String,
        n_conversions UInt64,
        amount_sum Decimal(38, 0),
        earnings_sum Decimal(38, 0),
        delay_bins Array(UInt16),
        delay_counts Array(UInt64),
        flagged_sum Int64,
        held_sum Decimal(38, 0)
    ) ENGINE = Null",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.conversion_rollup_mv TO {db}.conversion_rollup AS
    SELECT scope, grain, dim, bucket, value, owner, kind, currency, earnings_currency,
        sumState(n_conversions) AS n, sumState(amount_sum) AS amount,
        sumState(earnings_sum) AS earnings,
        sumMapState(delay_bins, delay_counts) AS delays,
        sumState(flagged_sum) AS flagged, sumState(held_sum) AS held
    FROM {db}.conversion_rollup_input
    GROUP BY scope, grain, dim, bucket, value, owner, kind, currency, earnings_currency",
    // Each code's totals ordered by kind and time first: a ranking over every
    // code reads one time range of scans (kind '') or of conversions.
    "CREATE TABLE IF NOT EXISTS {db}.code_totals (
        grain UInt8,
        bucket DateTime,
        scope String,
        owner String,
        kind String,
        earnings_currency String,
        human AggregateFunction(sum, UInt64),
        n AggregateFunction(sum, UInt64),
        earnings AggregateFunction(sum, Decimal(38, 0))
    ) ENGINE = AggregatingMergeTree
    ORDER BY (kind, grain, bucket, scope, owner, earnings_currency)
    SETTINGS index_granularity = 256",
    "CREATE TABLE IF NOT EXISTS {db}.code_totals_input (
        grain UInt8,
        bucket DateTime,
        scope String,
        owner String,
        kind String,
        earnings_currency String,
        n_human UInt64,
        n_conversions UInt64,
        earnings_sum Decimal(38, 0)
    ) ENGINE = Null",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.code_totals_mv TO {db}.code_totals AS
    SELECT grain, bucket, scope, owner, kind, earnings_currency,
        sumState(n_human) AS human, sumState(n_conversions) AS n,
        sumState(earnings_sum) AS earnings
    FROM {db}.code_totals_input
    GROUP BY grain, bucket, scope, owner, kind, earnings_currency",
];

/// Columns added to tables that earlier versions created (18.16 has no
/// `ADD COLUMN IF NOT EXISTS`, so each is added only when `system.columns`
/// lacks it).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("scans", "rolled", "UInt8 DEFAULT 0"),
    ("conversions", "rolled", "UInt8 DEFAULT 0"),
    ("scan_rollup", "suspect", "AggregateFunction(sum, UInt64)"),
    // Flagged conversions: their reasons and held earnings (earnings is 0).
    ("conversions", "held", "Int64 DEFAULT 0"),
    ("conversions", "flags", "Array(String)"),
    // Review adjustments (flagged conversions, held earnings).
    (
        "conversion_rollup",
        "flagged",
        "AggregateFunction(sum, Int64)",
    ),
    (
        "conversion_rollup",
        "held",
        "AggregateFunction(sum, Decimal(38, 0))",
    ),
    // The routing rule that chose a scan's destination.
    ("scans", "route", "String DEFAULT ''"),
];

/// `Null` input tables and the materialized views reading them, recreated
/// when the input lacks a column this version writes (they hold no data:
/// rows only pass through them). (input, view, the column to look for.)
const RECREATED: &[(&str, &str, &str)] = &[
    ("scan_rollup_input", "scan_rollup_mv", "n_suspect"),
    (
        "conversion_rollup_input",
        "conversion_rollup_mv",
        "held_sum",
    ),
];

#[derive(Clone)]
pub struct ClickHouseEvents {
    client: clickhouse::Client,
    database: String,
    migrated: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl ClickHouseEvents {
    pub fn new(config: &ClickHouseConfig) -> Self {
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_database(&config.database)
            // 18.16 knows neither the schema query nor the format validation uses.
            .with_validation(false);
        if let Some(user) = &config.user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        Self {
            client,
            database: config.database.clone(),
            migrated: Default::default(),
        }
    }

    /// Brings an earlier version's tables up to date ([`RECREATED`],
    /// [`ADDED_COLUMNS`]) and runs [`MIGRATIONS`]; safe to call again.
    pub async fn migrate(&self) -> Result<(), SinkError> {
        // The database may not exist yet, so DDL goes through a client without one.
        let admin = self.client.clone().with_database("default");
        let db = quote_ident(&self.database);
        // Before MIGRATIONS: 18.16 analyses a view's query even when `IF NOT
        // EXISTS` finds the view, so an input lacking a column must go first.
        for (input, view, column) in RECREATED {
            if self.lacks(&admin, input, column).await? == Some(true) {
                // The view first: it reads the input. MIGRATIONS create both anew.
                for table in [view, input] {
                    let sql = format!("DROP TABLE IF EXISTS {db}.{}", quote_ident(table));
                    admin.query(&sql).execute().await?;
                }
            }
        }
        // Before the views are created, so that a view never writes a
        // column its table lacks; tables not there yet are created whole.
        for (table, column, definition) in ADDED_COLUMNS {
            if self.lacks(&admin, table, column).await? == Some(true) {
                let sql = format!("ALTER TABLE {db}.{table} ADD COLUMN {column} {definition}");
                admin.query(&sql).execute().await?;
            }
        }
        for sql in MIGRATIONS {
            admin.query(&sql.replace("{db}", &db)).execute().await?;
        }
        Ok(())
    }

    /// Whether `table` lacks `column`; `None` when there is no such table.
    async fn lacks(
        &self,
        admin: &clickhouse::Client,
        table: &str,
        column: &str,
    ) -> Result<Option<bool>, SinkError> {
        let tables: u64 = admin
            .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
            .bind(&self.database)
            .bind(table)
            .fetch_one()
            .await?;
        if tables == 0 {
            return Ok(None);
        }
        let columns: u64 = admin
            .query(
                "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
            )
            .bind(&self.database)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await?;
        Ok(Some(columns == 0))
    }

    pub async fn ping(&self) -> Result<(), SinkError> {
        self.client
            .clone()
            .with_database("default")
            .query("SELECT 1")
            .execute()
            .await?;
        Ok(())
    }

    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }
}

/// One row of `scans` (RowBinary, by column name).
#[derive(Debug, Serialize, clickhouse::Row)]
struct ScanRow<'a> {
    scan_id: &'a str,
    ts: u32,
    ts_ms: u64,
    code: &'a str,
    channel: &'a str,
    visitor_id: &'a str,
    ip_prefix: &'a str,
    user_agent: &'a str,
    device: &'a str,
    os: &'a str,
    browser: &'a str,
    in_app: &'a str,
    referrer_host: &'a str,
    country: &'a str,
    source: &'a str,
    is_bot: u8,
    bot_reason: &'a str,
    is_unique: u8,
    rolled: u8,
    route: &'a str,
}

/// One row of `conversions`.
#[derive(Debug, Serialize, clickhouse::Row)]
struct ConversionRow<'a> {
    event_id: &'a str,
    kind: &'a str,
    occurred: u32,
    occurred_ms: u64,
    received_ms: u64,
    code: &'a str,
    owner: &'a str,
    channel: &'a str,
    scan_id: &'a str,
    scan_ms: u64,
    visitor_id: &'a str,
    customer_id: &'a str,
    amount: i64,
    currency: &'a str,
    rule: &'a str,
    earnings: i64,
    earnings_currency: &'a str,
    rolled: u8,
    held: i64,
    flags: Vec<&'a str>,
}

/// Backquotes an identifier (database names come from configuration).
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[derive(Deserialize, clickhouse::Row)]
struct PartitionRow {
    partition: String,
}

impl ClickHouseEvents {
    /// Drops the monthly partitions of raw `scans` that end a day or more
    /// before `cutoff_ms` (a day of margin: `toYYYYMM` follows the server's
    /// time zone). Rollups and conversions stay. Returns the partitions
    /// dropped (`YYYYMM`); idempotent.
    pub async fn drop_scans_before(&self, cutoff_ms: u64) -> Result<Vec<String>, SinkError> {
        self.migrate().await?;
        let rows = self
            .client
            .query(
                "SELECT DISTINCT partition FROM system.parts \
                 WHERE database = ? AND table = 'scans' AND active ORDER BY partition",
            )
            .bind(self.database.as_str())
            .fetch_all::<PartitionRow>()
            .await?;
        let cutoff_day = (cutoff_ms / 86_400_000) as i64;
        let mut dropped = Vec::new();
        for r in rows {
            let Some(end_day) = month_end_day(&r.partition) else {
                continue;
            };
            if end_day < cutoff_day {
                // `partition` is six digits: safe to put in the statement.
                self.client
                    .query(&format!(
                        "ALTER TABLE {}.scans DROP PARTITION {}",
                        self.database, r.partition
                    ))
                    .execute()
                    .await?;
                dropped.push(r.partition);
            }
        }
        Ok(dropped)
    }
}

/// The day (days since 1970-01-01) after the last day of month `YYYYMM`.
fn month_end_day(partition: &str) -> Option<i64> {
    if partition.len() != 6 || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = partition[..4].parse().ok()?;
    let month: u8 = partition[4..].parse().ok()?;
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, 1).ok()?;
    Some(i64::from(first.to_julian_day() - 2_440_588))
}

impl ClickHouseEvents {
    /// Erases `who`'s identifiers from the raw rows (ClickHouse mutations:
    /// they run in the background and are done within seconds to minutes,
    /// depending on the data): a visitor's scans keep their counts with the
    /// visitor id, IP prefix, user agent and referrer blanked; conversions
    /// lose the visitor's or customer's ids. Rollups hold no ids.
    pub async fn erase(&self, who: &super::Subject) -> Result<(), SinkError> {
        self.migrate().await?;
        let db = &self.database;
        let (statements, id): (Vec<String>, &str) = match who {
            super::Subject::Visitor(v) => (
                vec![
                    format!(
                        "ALTER TABLE {db}.scans UPDATE visitor_id = '', ip_prefix = '', \
                         user_agent = '', referrer_host = '' WHERE visitor_id = ?"
                    ),
                    format!(
                        "ALTER TABLE {db}.conversions UPDATE visitor_id = '' WHERE visitor_id = ?"
                    ),
                ],
                v,
            ),
            super::Subject::Customer(c) => (
                vec![format!(
                    "ALTER TABLE {db}.conversions UPDATE customer_id = '', visitor_id = '' \
                     WHERE customer_id = ?"
                )],
                c,
            ),
        };
        for sql in statements {
            self.client.query(&sql).bind(id).execute().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod retention_tests {
    #[test]
    fn month_ends() {
        // 2026-01 ends before 2026-02-01 = day 20485.
        assert_eq!(super::month_end_day("202601"), Some(20_485));
        assert_eq!(super::month_end_day("202612"), Some(20_819));
        assert_eq!(super::month_end_day("tuple()"), None);
    }
}

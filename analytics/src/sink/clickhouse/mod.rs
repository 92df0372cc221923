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
//! - `backfill.rs`: rollups for rows written before they existed;
//! - `cluster.rs`: a cluster of shards and replicas, each node written and
//!   read by this same code (`--clickhouse-cluster`).

mod backfill;
mod cluster;
mod read;
mod write;

pub use backfill::BackfillProgress;
pub use cluster::{
    sip_hash64, ShardMap, DDL_TIMEOUT, DISTRIBUTED, DISTRIBUTED_DDL, ON_CLUSTER, REPLICATED_ENGINE,
};

use super::SinkError;
use crate::batch::Batch;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// e.g. `http://127.0.0.1:8123`
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A cluster of `<remote_servers>` (`--clickhouse-cluster`), `url` its
    /// seed node: see `cluster.rs`.
    pub cluster: Option<String>,
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

/// The engines of a node's tables.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tables {
    /// `MergeTree`s as [`MIGRATIONS`] say.
    Plain,
    /// `Replicated*MergeTree`s (a cluster with ZooKeeper); `first`: the
    /// shard's first replica, which alone runs `ALTER`s.
    Replicated { first: bool },
}

/// One ClickHouse node, or a cluster of them (`cluster`: every public
/// method then works on the nodes it concerns, each a one-node
/// `ClickHouseEvents`).
#[derive(Clone)]
pub struct ClickHouseEvents {
    /// One node: its tables. A cluster: the seed's `Distributed` tables.
    client: clickhouse::Client,
    database: String,
    url: String,
    migrated: std::sync::Arc<tokio::sync::OnceCell<()>>,
    cluster: Option<std::sync::Arc<cluster::Cluster>>,
    /// A node of a cluster: its DDL is the cluster's to run.
    in_cluster: bool,
}

impl ClickHouseEvents {
    pub fn new(config: &ClickHouseConfig) -> Self {
        match &config.cluster {
            None => Self::node(config),
            Some(name) => {
                let mut seed = Self::node(config);
                seed.client = seed
                    .client
                    .with_database(cluster::Cluster::database(&config.database));
                seed.cluster = Some(std::sync::Arc::new(cluster::Cluster::new(
                    name.clone(),
                    config.clone(),
                )));
                seed
            }
        }
    }

    /// One node (`config.cluster` ignored).
    fn node(config: &ClickHouseConfig) -> Self {
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
            url: config.url.clone(),
            migrated: Default::default(),
            cluster: None,
            in_cluster: false,
        }
    }

    /// How long `ON CLUSTER` DDL waits for every host of a cluster with
    /// ZooKeeper, and for each node's answer before it ([`DDL_TIMEOUT`]
    /// unless set); no effect without a cluster.
    pub fn with_ddl_timeout(self, timeout: std::time::Duration) -> Self {
        if let Some(c) = &self.cluster {
            c.set_ddl_timeout(timeout);
        }
        self
    }

    /// Brings an earlier version's tables up to date ([`RECREATED`],
    /// [`ADDED_COLUMNS`]) and runs [`MIGRATIONS`]; safe to call again. On a
    /// cluster: on every node, with the `Distributed` tables (`ON CLUSTER`
    /// with ZooKeeper, see `cluster.rs`).
    pub async fn migrate(&self) -> Result<(), SinkError> {
        if let Some(c) = &self.cluster {
            return c.migrate().await;
        }
        if self.in_cluster {
            return Ok(());
        }
        self.migrate_ddl(Tables::Plain).await
    }

    /// The migrations on this node, with `tables` engines.
    pub(super) async fn migrate_ddl(&self, tables: Tables) -> Result<(), SinkError> {
        // The database may not exist yet, so DDL goes through a client without one.
        let admin = self.client.clone().with_database("default");
        let db = quote_ident(&self.database);
        let ddl = |sql: String| match tables {
            Tables::Plain => sql,
            Tables::Replicated { .. } => cluster::replicated_sql(&sql, &self.database, &db),
        };
        // Before MIGRATIONS: 18.16 analyses a view's query even when `IF NOT
        // EXISTS` finds the view, so an input lacking a column must go first.
        for (input, view, column) in RECREATED {
            if self.lacks(&admin, input, column).await? == Some(true) {
                // The view first: it reads the input. MIGRATIONS create both anew.
                for table in [view, input] {
                    let sql = format!("DROP TABLE IF EXISTS {db}.{}", quote_ident(table));
                    admin.query(&ddl(sql)).execute().await?;
                }
            }
        }
        // Before the views are created, so that a view never writes a
        // column its table lacks; tables not there yet are created whole.
        // A replicated table's ALTER reaches its other replicas by itself.
        if !matches!(tables, Tables::Replicated { first: false }) {
            self.add_columns().await?;
        }
        for sql in MIGRATIONS {
            admin
                .query(&ddl(sql.replace("{db}", &db)))
                .execute()
                .await?;
        }
        Ok(())
    }

    /// The [`ADDED_COLUMNS`] this node's tables lack (the `ALTER` is the
    /// same for plain and replicated tables).
    pub(super) async fn add_columns(&self) -> Result<(), SinkError> {
        let admin = self.client.clone().with_database("default");
        let db = quote_ident(&self.database);
        for (table, column, definition) in ADDED_COLUMNS {
            if self.lacks(&admin, table, column).await? == Some(true) {
                let sql = format!("ALTER TABLE {db}.{table} ADD COLUMN {column} {definition}");
                admin.query(&sql).execute().await?;
            }
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
        // A cluster: the seed, which answers the Distributed reads.
        self.client
            .clone()
            .with_database("default")
            .query("SELECT 1")
            .execute()
            .await?;
        Ok(())
    }

    /// The client queries read through: one node's tables, or on a cluster
    /// the seed's `Distributed` tables (same names).
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The clients a query over `scopes` (codes, or `*`) may read through,
    /// to try in order: on a cluster, when they are codes all on one shard,
    /// that shard's replicas; else the one client of [`Self::client`].
    pub async fn readers(&self, scopes: &[String]) -> Result<Vec<clickhouse::Client>, SinkError> {
        let Some(c) = &self.cluster else {
            return Ok(vec![self.client.clone()]);
        };
        let topology = c.topology().await?;
        let mut shards = scopes
            .iter()
            .map(|s| (s != "*").then(|| topology.map().shard(s)));
        match shards.next() {
            Some(Some(first)) if shards.all(|s| s == Some(first)) => Ok(topology.shards()[first]
                .iter()
                .map(|n| n.client.clone())
                .collect()),
            _ => Ok(vec![self.client.clone()]),
        }
    }

    /// Each shard's nodes' URLs, in `shard_num` and `replica_num` order (one
    /// shard of this node alone when no cluster is configured).
    pub async fn shard_urls(&self) -> Result<Vec<Vec<String>>, SinkError> {
        match &self.cluster {
            None => Ok(vec![vec![self.url.clone()]]),
            Some(c) => Ok(c
                .topology()
                .await?
                .shards()
                .iter()
                .map(|s| s.iter().map(|n| n.url.clone()).collect())
                .collect()),
        }
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
    pub(super) async fn drop_scans_before_node(
        &self,
        cutoff_ms: u64,
    ) -> Result<Vec<String>, SinkError> {
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
    pub(super) async fn erase_node(&self, who: &super::Subject) -> Result<(), SinkError> {
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

/// The public operations: on one node, that node's; on a cluster, the
/// cluster's (`cluster.rs`), which call the nodes' own.
impl ClickHouseEvents {
    /// Writes a batch exactly once (see `write.rs`); on a cluster each shard
    /// its part.
    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        match &self.cluster {
            Some(c) => c.write(batch).await,
            None => self.write_node(batch).await,
        }
    }

    /// Up to `limit` of `code`'s scans older than `before`, newest first
    /// (see `read.rs`); on a cluster from the code's shard (its first replica
    /// that answers, as for the two reads below).
    pub async fn recent_scans(
        &self,
        code: &str,
        before: Option<crate::ScanId>,
        limit: usize,
    ) -> Result<super::ScanPage, SinkError> {
        match &self.cluster {
            Some(c) => {
                let replicas = c.topology().await?.replicas_of(code).to_vec();
                cluster::first_answer(&replicas, |n| n.recent_scans_node(code, before, limit)).await
            }
            None => self.recent_scans_node(code, before, limit).await,
        }
    }

    /// The scan `scan_id` of `code` (a point read), from the code's shard.
    pub async fn find_scan(
        &self,
        code: &str,
        scan_id: &str,
    ) -> Result<Option<crate::event::Scan>, SinkError> {
        match &self.cluster {
            Some(c) => {
                let replicas = c.topology().await?.replicas_of(code).to_vec();
                cluster::first_answer(&replicas, |n| n.find_scan_node(code, scan_id)).await
            }
            None => self.find_scan_node(code, scan_id).await,
        }
    }

    /// Up to `limit` of `code`'s stored conversions, newest first (see
    /// `read.rs`), from the code's shard.
    pub async fn recent_conversions(
        &self,
        code: &str,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::event::Conversion>, SinkError> {
        match &self.cluster {
            Some(c) => {
                let replicas = c.topology().await?.replicas_of(code).to_vec();
                cluster::first_answer(&replicas, |n| n.recent_conversions_node(code, owner, limit))
                    .await
            }
            None => self.recent_conversions_node(code, owner, limit).await,
        }
    }

    /// Drops raw scans' monthly partitions before `cutoff_ms` (retention);
    /// on a cluster on every shard.
    pub async fn drop_scans_before(&self, cutoff_ms: u64) -> Result<Vec<String>, SinkError> {
        match &self.cluster {
            Some(c) => c.drop_scans_before(cutoff_ms).await,
            None => self.drop_scans_before_node(cutoff_ms).await,
        }
    }

    /// Erases `who`'s identifiers from the raw rows; on a cluster on every shard.
    pub async fn erase(&self, who: &super::Subject) -> Result<(), SinkError> {
        match &self.cluster {
            Some(c) => c.erase(who).await,
            None => self.erase_node(who).await,
        }
    }

    /// Whether rows without rollups may exist (see `backfill.rs`).
    pub async fn backfill_pending(&self) -> Result<bool, SinkError> {
        match &self.cluster {
            Some(c) => c.backfill_pending().await,
            None => self.backfill_pending_node().await,
        }
    }

    /// The days with rows written before rollups existed (on every shard).
    pub async fn backfill_todo(&self) -> Result<BackfillProgress, SinkError> {
        match &self.cluster {
            Some(c) => c.backfill_todo().await,
            None => self.backfill_todo_node().await,
        }
    }

    /// Marks the backfill done (on every shard).
    pub async fn backfill_finish(&self) -> Result<(), SinkError> {
        match &self.cluster {
            Some(c) => c.backfill_finish().await,
            None => self.backfill_finish_node().await,
        }
    }

    /// Builds one day's rollups of old rows (on every shard).
    pub async fn backfill_day(&self, day: u32) -> Result<(), SinkError> {
        match &self.cluster {
            Some(c) => c.backfill_day(day).await,
            None => self.backfill_day_node(day).await,
        }
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

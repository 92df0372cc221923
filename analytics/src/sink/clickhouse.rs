//! Scan rows in ClickHouse, inserted in RowBinary batches.
//!
//! The SQL runs on ClickHouse 18.16 (Debian's package, what the tests use) and
//! on current releases: modern `ENGINE = ... PARTITION BY ... ORDER BY` syntax,
//! no TTL, no DateTime64, no LowCardinality, no CODECs.

use super::SinkError;
use crate::batch::Batch;
use serde::Serialize;
use std::time::Duration;

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
    // has the same key and collapses into one row at merge time; queries that
    // must be exact before a merge use FINAL or uniqExact(scan_id).
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
        is_unique UInt8
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
        earnings_currency String
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(occurred)
    ORDER BY (code, occurred, event_id)",
];

/// One row of `scans`, in column order (RowBinary is positional).
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
}

/// One row of `conversions`, in column order.
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
}

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

    /// Runs [`MIGRATIONS`]; safe to call again.
    pub async fn migrate(&self) -> Result<(), SinkError> {
        // The database may not exist yet, so DDL goes through a client without one.
        let admin = self.client.clone().with_database("default");
        for sql in MIGRATIONS {
            let sql = sql.replace("{db}", &quote_ident(&self.database));
            admin.query(&sql).execute().await?;
        }
        Ok(())
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        if !batch.scans.is_empty() {
            self.insert_scans(batch).await?;
        }
        if !batch.conversions.is_empty() {
            self.insert_conversions(batch).await?;
        }
        Ok(())
    }

    async fn insert_scans(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<ScanRow<'_>>("scans")
            .await?
            .with_timeouts(Some(Duration::from_secs(10)), Some(Duration::from_secs(30)));
        for s in &batch.scans {
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
            };
            insert.write(&row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    async fn insert_conversions(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<ConversionRow<'_>>("conversions")
            .await?
            .with_timeouts(Some(Duration::from_secs(10)), Some(Duration::from_secs(30)));
        for c in &batch.conversions {
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
            };
            insert.write(&row).await?;
        }
        insert.end().await?;
        Ok(())
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

/// Backquotes an identifier (database names come from configuration).
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

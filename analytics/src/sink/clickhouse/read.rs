//! A code's recent scans from `scans` and recent conversions from
//! `conversions` (drill-down).

use super::ClickHouseEvents;
use crate::event::{Conversion, ConversionKind, Flagged, Rule, Scan};
use crate::sink::{ScanPage, SinkError};
use crate::{ScanId, Text};
use serde::Deserialize;

/// A `scans` row as read back ([`COLUMNS`], in order).
#[derive(Deserialize, clickhouse::Row)]
pub(super) struct ScanOut {
    scan_id: String,
    ts_ms: u64,
    code: String,
    channel: String,
    visitor_id: String,
    ip_prefix: String,
    user_agent: String,
    device: String,
    os: String,
    browser: String,
    in_app: String,
    referrer_host: String,
    country: String,
    source: String,
    bot_reason: String,
    is_unique: u8,
    route: String,
}

impl From<ScanOut> for Scan {
    fn from(r: ScanOut) -> Self {
        Scan {
            scan_id: r.scan_id.into(),
            ts_ms: r.ts_ms,
            code: r.code.into(),
            channel: r.channel.into(),
            visitor_id: r.visitor_id.into(),
            ip_prefix: r.ip_prefix.into(),
            user_agent: r.user_agent.into(),
            device: r.device.into(),
            os: r.os.into(),
            browser: r.browser.into(),
            in_app: r.in_app.into(),
            referrer_host: r.referrer_host.into(),
            country: r.country.into(),
            source: r.source.into(),
            bot_reason: r.bot_reason.into(),
            is_unique: r.is_unique != 0,
            unknown_channel: Text::default(),
            step: Text::default(),
            route: r.route.into(),
        }
    }
}

pub(super) const COLUMNS: &str =
    "scan_id, ts_ms, code, channel, visitor_id, ip_prefix, user_agent, \
    device, os, browser, in_app, referrer_host, country, source, bot_reason, is_unique, route";

/// How far back each try looks: 18.16 sorts everything a query reads, so a
/// busy code's newest page is looked for in its last hour first.
const WINDOWS_SECS: [Option<u64>; 4] = [Some(3600), Some(86_400), Some(30 * 86_400), None];

impl ClickHouseEvents {
    /// Up to `limit` of `code`'s scans older than `before` (all when `None`),
    /// newest first. A scan stored twice (a replay not merged yet) is listed once.
    pub(super) async fn recent_scans_node(
        &self,
        code: &str,
        before: Option<ScanId>,
        limit: usize,
    ) -> Result<ScanPage, SinkError> {
        let before_text = before.map(|b| b.to_string());
        let upper_secs = before.map(|b| b.unix_ms() / 1000);
        let mut found: Vec<Scan> = Vec::new();
        for window in WINDOWS_SECS {
            let mut sql = format!("SELECT {COLUMNS} FROM scans WHERE code = ?");
            if let (Some(w), Some(up)) = (window, upper_secs) {
                sql.push_str(&format!(
                    " AND ts >= toDateTime({}) AND ts <= toDateTime({up})",
                    up.saturating_sub(w)
                ));
            } else if let Some(w) = window {
                sql.push_str(&format!(" AND ts >= now() - {w}"));
            } else if let Some(up) = upper_secs {
                sql.push_str(&format!(" AND ts <= toDateTime({up})"));
            }
            if before_text.is_some() {
                sql.push_str(" AND scan_id < ?");
            }
            // Room for duplicates: a replayed batch's rows until they merge.
            sql.push_str(" ORDER BY scan_id DESC LIMIT ?");
            let mut q = self.client.query(&sql).bind(code);
            if let Some(b) = &before_text {
                q = q.bind(b.as_str());
            }
            let rows = q
                .bind((limit * 2 + 1) as u64)
                .fetch_all::<ScanOut>()
                .await?;
            found = rows.into_iter().map(Scan::from).collect();
            found.dedup_by(|a, b| a.scan_id == b.scan_id);
            if found.len() > limit {
                break;
            }
        }
        Ok(ScanPage::of(found, limit))
    }
}

impl ClickHouseEvents {
    /// The scan `scan_id` of `code`: a primary-key point read (`scans` is
    /// ordered by code, ts, scan id; the id holds its time).
    pub(super) async fn find_scan_node(
        &self,
        code: &str,
        scan_id: &str,
    ) -> Result<Option<Scan>, SinkError> {
        let Some(id) = ScanId::parse(scan_id) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM scans WHERE code = ? AND ts = toDateTime(?) AND scan_id = ? LIMIT 1"
        );
        let rows = self
            .client
            .query(&sql)
            .bind(code)
            .bind(id.unix_ms() / 1000)
            .bind(scan_id)
            .fetch_all::<ScanOut>()
            .await?;
        Ok(rows.into_iter().next().map(Scan::from))
    }
}

/// A `conversions` row as read back ([`CONVERSION_COLUMNS`], in order).
#[derive(Deserialize, clickhouse::Row)]
struct ConversionOut {
    event_id: String,
    kind: String,
    occurred_ms: u64,
    received_ms: u64,
    code: String,
    owner: String,
    channel: String,
    scan_id: String,
    scan_ms: u64,
    visitor_id: String,
    customer_id: String,
    amount: i64,
    currency: String,
    rule: String,
    earnings: i64,
    earnings_currency: String,
    held: i64,
    flags: Vec<String>,
}

const CONVERSION_COLUMNS: &str =
    "event_id, kind, occurred_ms, received_ms, code, owner, channel, scan_id, scan_ms, \
    visitor_id, customer_id, amount, currency, rule, earnings, earnings_currency, held, flags";

impl ConversionOut {
    /// The conversion, unless its kind or rule is not one this version knows.
    fn into_conversion(self) -> Option<Conversion> {
        let kind = [
            ConversionKind::Signup,
            ConversionKind::Purchase,
            ConversionKind::Refund,
        ]
        .into_iter()
        .find(|k| k.as_str() == self.kind)?;
        let rule = [
            Rule::ScanId,
            Rule::Inherited,
            Rule::Visitor,
            Rule::CodeOnly,
            Rule::Unattributed,
        ]
        .into_iter()
        .find(|r| r.as_str() == self.rule)?;
        Some(Conversion {
            event_id: self.event_id,
            kind,
            occurred_ms: self.occurred_ms,
            received_ms: self.received_ms,
            code: self.code,
            owner: self.owner,
            channel: self.channel,
            scan_id: self.scan_id,
            scan_ms: self.scan_ms,
            visitor_id: self.visitor_id,
            customer_id: self.customer_id,
            amount: self.amount,
            currency: self.currency,
            rule,
            earnings: self.earnings,
            earnings_currency: self.earnings_currency,
            repeat: false,
            flagged: (!self.flags.is_empty()).then_some(Flagged {
                flags: self.flags,
                held: self.held,
            }),
        })
    }
}

impl ClickHouseEvents {
    /// Up to `limit` of the conversions stored for `code` (credited to
    /// `owner` when given), newest first by occurred ms, then event id. An
    /// event stored twice (a replay or a brand's repeat, not merged yet) is
    /// listed once.
    pub(super) async fn recent_conversions_node(
        &self,
        code: &str,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Conversion>, SinkError> {
        let mut sql = format!("SELECT {CONVERSION_COLUMNS} FROM conversions WHERE code = ?");
        if owner.is_some() {
            sql.push_str(" AND owner = ?");
        }
        sql.push_str(" ORDER BY occurred_ms DESC, event_id DESC LIMIT 1 BY event_id LIMIT ?");
        let mut q = self.client.query(&sql).bind(code);
        if let Some(owner) = owner {
            q = q.bind(owner);
        }
        let rows = q.bind(limit as u64).fetch_all::<ConversionOut>().await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = r.event_id.clone();
                let c = r.into_conversion();
                if c.is_none() {
                    tracing::error!(event_id = %id, "conversion of an unknown kind or rule skipped");
                }
                c
            })
            .collect())
    }
}

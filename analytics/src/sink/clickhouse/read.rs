//! A code's recent scans from `scans` (drill-down).

use super::ClickHouseEvents;
use crate::event::Scan;
use crate::sink::{ScanPage, SinkError};
use crate::ScanId;
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
}

impl From<ScanOut> for Scan {
    fn from(r: ScanOut) -> Self {
        Scan {
            scan_id: r.scan_id,
            ts_ms: r.ts_ms,
            code: r.code,
            channel: r.channel,
            visitor_id: r.visitor_id,
            ip_prefix: r.ip_prefix,
            user_agent: r.user_agent,
            device: r.device,
            os: r.os,
            browser: r.browser,
            in_app: r.in_app,
            referrer_host: r.referrer_host,
            country: r.country,
            source: r.source,
            bot_reason: r.bot_reason,
            is_unique: r.is_unique != 0,
        }
    }
}

pub(super) const COLUMNS: &str =
    "scan_id, ts_ms, code, channel, visitor_id, ip_prefix, user_agent, \
    device, os, browser, in_app, referrer_host, country, source, bot_reason, is_unique";

/// How far back each try looks: 18.16 sorts everything a query reads, so a
/// busy code's newest page is looked for in its last hour first.
const WINDOWS_SECS: [Option<u64>; 4] = [Some(3600), Some(86_400), Some(30 * 86_400), None];

impl ClickHouseEvents {
    /// Up to `limit` of `code`'s scans older than `before` (all when `None`),
    /// newest first. A scan stored twice (a replay not merged yet) is listed once.
    pub async fn recent_scans(
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

//! Everything a request handler can reach, built once at start-up.

use crate::codes::CodeTable;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::qr::QrCache;
use crate::scan::ScanCapture;
use crate::store::Store;
use codelink_analytics::query::Analytics;
use codelink_analytics::recorder::Recorder;
use codelink_analytics::sink::{ClickHouseEvents, LiveStore};
use codelink_analytics::token::Signer;
use codelink_analytics::ScanIdGenerator;
use governor::DefaultKeyedRateLimiter;
use std::net::IpAddr;

pub struct AppState {
    pub config: Config,
    /// Base URL of short links and QR contents, without a trailing slash.
    pub public_base: String,
    pub admin_key: String,
    pub codes: CodeTable,
    pub store: Store,
    pub scan_ids: ScanIdGenerator,
    /// Signs the scan tokens put on destinations (`cl_scan`).
    pub signer: Signer,
    pub scans: ScanCapture,
    pub recorder: Recorder,
    /// Live counters, last visits, conversion claims (Redis, else embedded).
    pub live: LiveStore,
    pub clickhouse: Option<ClickHouseEvents>,
    /// Answers the analytics API: ClickHouse when configured, else embedded.
    pub analytics: Analytics,
    pub api_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub qr_cache: QrCache,
    pub metrics: Metrics,
}

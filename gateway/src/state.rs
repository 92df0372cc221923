//! Everything a request handler can reach, built once at start-up.

use crate::bio::BioPages;
use crate::codes::CodeTable;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::profiles::ProfileTable;
use crate::qr_cache::QrCache;
use crate::scan::ScanCapture;
use crate::store::Store;
use codelink_analytics::{Analytics, ScanIdGenerator};
use governor::DefaultKeyedRateLimiter;
use std::net::IpAddr;

pub struct AppState {
    pub config: Config,
    /// Base URL of short links and QR contents, without a trailing slash.
    pub public_base: String,
    pub admin_key: String,
    /// The admin key's handle in console sessions (see `admin::admin_key_id`).
    pub admin_key_id: String,
    pub codes: CodeTable,
    /// Creator profiles (bio page title, avatar, order), in memory like the codes.
    pub profiles: ProfileTable,
    /// The bio pages (`/@{owner}`) built from the two tables above.
    pub bio: BioPages,
    pub store: Store,
    pub scan_ids: ScanIdGenerator,
    pub scans: ScanCapture,
    /// User-agent facts (device, OS, in-app browser), cached by UA.
    pub clients: crate::client::Clients,
    /// Scans and conversions in, every number out: the one analytics handle.
    pub analytics: Analytics,
    pub api_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub qr_cache: QrCache,
    /// One permit per QR image being rendered (cache misses).
    pub qr_renders: tokio::sync::Semaphore,
    /// QR renders per address.
    pub qr_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub metrics: Metrics,
    /// The web console under `/ui/`.
    pub ui: codelink_dashboards::Dashboards,
    /// Set when the shutdown signal fires: `/readyz` answers 503 `draining`
    /// while requests are still served for `--drain-secs`.
    pub draining: std::sync::atomic::AtomicBool,
}

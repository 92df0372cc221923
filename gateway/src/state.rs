//! Everything a request handler can reach, built once at start-up.

use crate::codes::CodeTable;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::qr::QrCache;
use crate::store::Store;
use codelink_analytics::ScanIdGenerator;

pub struct AppState {
    pub config: Config,
    /// Base URL of short links and QR contents, without a trailing slash.
    pub public_base: String,
    pub admin_key: String,
    pub codes: CodeTable,
    pub store: Store,
    pub scan_ids: ScanIdGenerator,
    pub qr_cache: QrCache,
    pub metrics: Metrics,
}

//! Prometheus metrics, kept in fixed arrays of atomics: the label sets (route,
//! status) are closed, so a request only does relaxed increments, and `/metrics`
//! renders the text format on demand.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Redirect,
    Qr,
    Api,
    Health,
    Metrics,
    Ui,
    Bio,
    Tag,
    Other,
}

impl Route {
    const ALL: [Route; 9] = [
        Route::Redirect,
        Route::Qr,
        Route::Api,
        Route::Health,
        Route::Metrics,
        Route::Ui,
        Route::Bio,
        Route::Tag,
        Route::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Redirect => "redirect",
            Route::Qr => "qr",
            Route::Api => "api",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Ui => "ui",
            Route::Tag => "tag",
            Route::Bio => "bio",
            Route::Other => "other",
        }
    }
}

/// Statuses the gateway answers with; anything else is counted as "other".
const STATUSES: [u16; 22] = [
    200, 201, 202, 204, 302, 303, 304, 400, 401, 403, 404, 405, 408, 409, 410, 413, 415, 422, 429,
    431, 500, 503,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];
const BUCKET_SLOTS: usize = BUCKETS_US.len() + 1;
const ROUTES: usize = Route::ALL.len();

/// Panics anywhere in the process (a request task, a background task): there
/// should be none; `install_panic_counter` counts them for `/metrics`.
pub static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts every panic (and then reports it as before). Installed once.
pub fn install_panic_counter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            previous(info);
        }));
    });
}

pub struct Metrics {
    requests: [[AtomicU64; STATUS_SLOTS]; ROUTES],
    latency: [[AtomicU64; BUCKET_SLOTS]; ROUTES],
    latency_sum_us: [AtomicU64; ROUTES],
    pub qr_cache_hits: AtomicU64,
    pub qr_cache_misses: AtomicU64,
    pub code_hits: AtomicU64,
    pub code_misses: AtomicU64,
    pub redis_sync_errors: AtomicU64,
    /// QR images being rendered now, and the most there ever were at once.
    pub qr_renders_running: AtomicU64,
    pub qr_renders_peak: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency_sum_us: std::array::from_fn(|_| AtomicU64::new(0)),
            qr_cache_hits: AtomicU64::new(0),
            qr_cache_misses: AtomicU64::new(0),
            code_hits: AtomicU64::new(0),
            code_misses: AtomicU64::new(0),
            redis_sync_errors: AtomicU64::new(0),
            qr_renders_running: AtomicU64::new(0),
            qr_renders_peak: AtomicU64::new(0),
        }
    }
}

fn route_index(route: Route) -> usize {
    route as usize
}

impl Metrics {
    pub fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        let r = route_index(route);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len());
        self.requests[r][s].fetch_add(1, Relaxed);
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let b = BUCKETS_US
            .iter()
            .position(|&ub| us <= ub)
            .unwrap_or(BUCKETS_US.len());
        self.latency[r][b].fetch_add(1, Relaxed);
        self.latency_sum_us[r].fetch_add(us, Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, codes_loaded: usize) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP codelink_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE codelink_http_requests_total counter\n");
        for route in Route::ALL {
            let r = route_index(route);
            for (s, counter) in self.requests[r].iter().enumerate() {
                let n = counter.load(Relaxed);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(s)
                    .map_or_else(|| "other".to_string(), u16::to_string);
                let _ = writeln!(
                    out,
                    "codelink_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    route.name()
                );
            }
        }
        out.push_str(
            "# HELP codelink_http_request_duration_seconds Time from request to response head.\n",
        );
        out.push_str("# TYPE codelink_http_request_duration_seconds histogram\n");
        for route in Route::ALL {
            let r = route_index(route);
            let mut cumulative = 0;
            for (b, counter) in self.latency[r].iter().enumerate() {
                cumulative += counter.load(Relaxed);
                let le = BUCKETS_US
                    .get(b)
                    .map_or_else(|| "+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    out,
                    "codelink_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{le}\"}} {cumulative}",
                    route.name()
                );
            }
            let _ = writeln!(
                out,
                "codelink_http_request_duration_seconds_sum{{route=\"{}\"}} {}",
                route.name(),
                self.latency_sum_us[r].load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "codelink_http_request_duration_seconds_count{{route=\"{}\"}} {cumulative}",
                route.name()
            );
        }
        let counters = [
            (
                "codelink_qr_cache_hits_total",
                "QR images served from the render cache.",
                &self.qr_cache_hits,
            ),
            (
                "codelink_qr_cache_misses_total",
                "QR images rendered because the cache did not hold them.",
                &self.qr_cache_misses,
            ),
            (
                "codelink_code_lookup_hits_total",
                "Redirect and QR lookups that found the code in memory.",
                &self.code_hits,
            ),
            (
                "codelink_code_lookup_misses_total",
                "Redirect and QR lookups of unknown codes.",
                &self.code_misses,
            ),
            (
                "codelink_redis_sync_errors_total",
                "Failed polls or reloads of the shared code table in Redis.",
                &self.redis_sync_errors,
            ),
            (
                "codelink_panics_total",
                "Panics in the process (there should be none).",
                &PANICS,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP codelink_qr_renders_peak The most QR images rendered at once since start (bounded by --qr-renders).\n\
             # TYPE codelink_qr_renders_peak gauge\ncodelink_qr_renders_peak {}",
            self.qr_renders_peak.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP codelink_codes_loaded Codes in the in-memory table.\n# TYPE codelink_codes_loaded gauge\ncodelink_codes_loaded {codes_loaded}"
        );
        out
    }
}

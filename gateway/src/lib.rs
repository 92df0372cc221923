//! The codelink gateway: short-link redirects, QR images and the admin API.
//!
//! `main.rs` only parses the command line; [`run`] takes a bound listener, a
//! configuration and a shutdown future, so tests start the real server on
//! `127.0.0.1:0` in-process.

pub mod admin;
mod api;
mod bio;
pub mod bulk;
pub mod client;
pub mod codes;
pub mod config;
mod conn_watch;
mod console;
mod error;
mod follower;
pub mod geoip;
pub mod healthcheck;
pub mod keys;
pub mod metrics;
pub mod migrate;
mod ops;
mod profiles;
pub mod qr;
mod qr_brand;
mod qr_cache;
mod qr_font;
pub mod qr_logo;
mod qr_png;
pub mod qr_render;
mod redirect;
pub mod remote;
pub mod report;
mod request;
mod response;
mod router;
pub mod routing;
mod scan;
mod server;
mod state;
pub mod store;
mod sync;
mod tag;

pub use config::Config;
pub use state::AppState;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens the stores, loads the codes into memory and starts the recorder and
/// background tasks. `bound` is the address the listener actually got (it
/// names the default public URL).
pub async fn build(
    config: Config,
    bound: std::net::SocketAddr,
) -> anyhow::Result<(Arc<AppState>, Background)> {
    config.validate()?;
    metrics::install_panic_counter();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let admin_key = keys::admin_key(&config)?;
    let secret = keys::secret(&config)?;
    let public_base = config.public_base(bound);
    let store = match config.redis_target()? {
        Some(target) => {
            store::Store::Redis(store::RedisStore::connect(&target, &config.redis_prefix)?)
        }
        None => store::Store::Embedded(store::EmbeddedStore::open(
            &config.data_dir,
            config.store_cache_bytes(),
        )?),
    };
    let (analytics, analytics_tasks) =
        codelink_analytics::Analytics::open(config.analytics(secret.as_bytes())?).await?;
    let admin_key_id = admin::admin_key_id(&secret, &admin_key);
    let ui = codelink_dashboards::Dashboards::new(config.ui(secret.as_bytes(), &public_base));
    let state = Arc::new(AppState {
        scans: scan::ScanCapture::new(&config, secret, &public_base)?,
        clients: client::Clients::default(),
        ui,
        api_limiter: scan::keyed_limiter(config.api_rate_per_ip, config.api_burst_per_ip),
        public_base,
        admin_key_id,
        admin_key,
        codes: codes::CodeTable::new(&config.scan_param),
        profiles: profiles::ProfileTable::default(),
        bio: bio::BioPages::default(),
        store,
        scan_ids: codelink_analytics::ScanIdGenerator::new(),
        analytics,
        qr_cache: qr_cache::QrCache::new(config.qr_cache_bytes),
        qr_renders: tokio::sync::Semaphore::new(config.qr_renders),
        qr_limiter: scan::keyed_limiter(config.qr_renders_per_ip, config.qr_render_burst_per_ip),
        metrics: metrics::Metrics::default(),
        draining: std::sync::atomic::AtomicBool::new(false),
        config,
    });
    // Milestone webhook events name the code's owner, from the code table.
    let weak = Arc::downgrade(&state);
    state.analytics.set_code_owners(Arc::new(move |code: &str| {
        weak.upgrade()
            .and_then(|s| s.codes.get(code).map(|e| e.record.owner.clone()))
    }));
    let tasks = sync::start(&state).await?;
    tracing::info!(
        store = state.store.kind(),
        codes = state.codes.len(),
        public_url = %state.public_base,
        "codes loaded"
    );
    Ok((
        state,
        Background {
            tasks,
            analytics_tasks,
        },
    ))
}

/// Tasks that outlive one request: code sync, housekeeping, the recorder.
pub struct Background {
    tasks: sync::Tasks,
    analytics_tasks: codelink_analytics::AnalyticsTasks,
}

impl Background {
    /// Flushes every recorded scan (to its sink or spool, within
    /// `--shutdown-timeout-secs`), then stops the tasks.
    pub async fn stop(self, state: &AppState) {
        self.analytics_tasks
            .stop(&state.analytics, state.config.shutdown_timeout())
            .await;
        self.tasks.stop().await;
    }
}

/// Makes the coming stop skip the `--drain-secs` wait: `codelink serve`
/// calls it on Ctrl-C (SIGINT), a person at a terminal; SIGTERM, what
/// orchestrators and load-balanced deployments send, drains.
pub fn skip_drain() {
    server::SKIP_DRAIN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Serves until `shutdown` resolves; then `/readyz` answers 503 `draining`
/// while requests are still served for `--drain-secs`, then the listener
/// closes, open connections drain (bounded by `--shutdown-timeout-secs`) and
/// the background tasks stop.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let (state, background) = build(config, bound).await?;
    tracing::info!(%bound, "listening");
    server::serve(listener, state.clone(), shutdown).await;
    // No request is in flight any more: every scan that got a response is queued.
    background.stop(&state).await;
    tracing::info!("scans flushed; stopped");
    Ok(())
}

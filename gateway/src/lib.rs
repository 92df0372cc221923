//! The codelink gateway: short-link redirects, QR images and the admin API.
//!
//! `main.rs` only parses the command line; [`run`] takes a bound listener, a
//! configuration and a shutdown future, so tests start the real server on
//! `127.0.0.1:0` in-process.

pub mod admin_key;
mod api;
pub mod codes;
pub mod config;
mod error;
pub mod metrics;
mod ops;
pub mod qr;
pub mod qr_render;
mod redirect;
mod response;
mod router;
mod server;
mod state;
pub mod store;
mod sync;

pub use config::Config;
pub use state::AppState;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens the store, loads the codes into memory and starts background tasks.
/// `bound` is the address the listener actually got (it names the default public URL).
pub async fn build(
    config: Config,
    bound: std::net::SocketAddr,
) -> anyhow::Result<(Arc<AppState>, sync::Tasks)> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let admin_key = admin_key::resolve(&config)?;
    let store = match &config.redis_url {
        Some(url) => store::Store::Redis(store::RedisStore::connect(url, &config.redis_prefix)?),
        None => store::Store::Embedded(store::EmbeddedStore::open(&config.data_dir)?),
    };
    let state = Arc::new(AppState {
        public_base: config.public_base(bound),
        admin_key,
        codes: codes::CodeTable::new(&config.scan_param),
        store,
        scan_ids: codelink_analytics::ScanIdGenerator::new(),
        qr_cache: qr::QrCache::new(config.qr_cache_bytes),
        metrics: metrics::Metrics::default(),
        config,
    });
    let tasks = sync::start(&state).await?;
    tracing::info!(
        store = state.store.kind(),
        codes = state.codes.len(),
        public_url = %state.public_base,
        "codes loaded"
    );
    Ok((state, tasks))
}

/// Serves until `shutdown` resolves, then drains open connections (bounded by
/// `--shutdown-timeout-secs`) and stops the background tasks.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let (state, tasks) = build(config, bound).await?;
    tracing::info!(%bound, "listening");
    server::serve(listener, state, shutdown).await;
    tasks.stop().await;
    Ok(())
}

//! The codelink gateway: short-link redirects, QR images and the admin API.
//!
//! `main.rs` only parses the command line; [`run`] takes a bound listener, a
//! configuration and a shutdown future, so tests start the real server on
//! `127.0.0.1:0` in-process.

mod api;
pub mod codes;
pub mod config;
mod csv;
mod error;
pub mod keys;
pub mod metrics;
mod ops;
pub mod qr;
pub mod qr_render;
mod redirect;
pub mod report;
mod response;
mod router;
mod scan;
mod server;
mod state;
pub mod store;
mod sync;

pub use config::Config;
pub use state::AppState;

use codelink_analytics::query::Analytics;
use codelink_analytics::recorder::{Recorder, RecorderConfig, RecorderTasks};
use codelink_analytics::sink::{ClickHouseEvents, LiveStore};
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
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let admin_key = keys::admin_key(&config)?;
    let secret = keys::secret(&config)?;
    let public_base = config.public_base(bound);
    let store = match &config.redis_url {
        Some(url) => store::Store::Redis(store::RedisStore::connect(url, &config.redis_prefix)?),
        None => store::Store::Embedded(store::EmbeddedStore::open(&config.data_dir)?),
    };
    let (recorder, recorder_tasks, counters, clickhouse, analytics) =
        start_recorder(&config).await?;
    let state = Arc::new(AppState {
        signer: codelink_analytics::token::Signer::new(secret.as_bytes()),
        scans: scan::ScanCapture::new(&config, secret, &public_base)?,
        api_limiter: scan::keyed_limiter(config.api_rate_per_ip, config.api_burst_per_ip),
        public_base,
        admin_key,
        codes: codes::CodeTable::new(&config.scan_param),
        store,
        scan_ids: codelink_analytics::ScanIdGenerator::new(),
        recorder,
        live: counters,
        clickhouse,
        analytics,
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
    Ok((
        state,
        Background {
            tasks,
            recorder_tasks,
        },
    ))
}

/// The sinks follow the configuration: counters in Redis when it is given,
/// else embedded; scan rows in ClickHouse when it is given, else embedded.
async fn start_recorder(
    config: &Config,
) -> anyhow::Result<(
    Recorder,
    RecorderTasks,
    LiveStore,
    Option<ClickHouseEvents>,
    Analytics,
)> {
    use codelink_analytics::sink::{ClickHouseConfig, EmbeddedSink, RedisCounters, Sink};
    let embedded_events = config.clickhouse_url.is_none();
    let embedded_counters = config.redis_url.is_none();
    let embedded = EmbeddedSink::open(&config.data_dir, embedded_events, embedded_counters)
        .map_err(|e| anyhow::anyhow!("{e}; is another codelink using this data dir?"))?;
    // The embedded sink takes part only when it holds rows or counters.
    let mut sinks = Vec::new();
    if embedded_events || embedded_counters {
        sinks.push(Sink::Embedded(embedded.clone()));
    }
    let mut analytics = Analytics::Embedded(embedded.clone());
    // The recorder's sinks get connections of their own: their connection
    // tasks then live on the recorder's thread, and the API's (claims, stats,
    // reports) on the request threads, neither waiting behind the other.
    let counters = match &config.redis_url {
        Some(url) => {
            sinks.push(Sink::Redis(RedisCounters::connect(
                url,
                &config.redis_prefix,
            )?));
            LiveStore::Redis(RedisCounters::connect(url, &config.redis_prefix)?)
        }
        None => LiveStore::Embedded(embedded),
    };
    let clickhouse_config = config.clickhouse_url.as_ref().map(|url| ClickHouseConfig {
        url: url.clone(),
        database: config.clickhouse_database.clone(),
        user: config.clickhouse_user.clone(),
        password: config.clickhouse_password.clone(),
    });
    let clickhouse = clickhouse_config.as_ref().map(ClickHouseEvents::new);
    if let (Some(ch), Some(sink_config)) = (&clickhouse, &clickhouse_config) {
        // Migrate now when ClickHouse is up; otherwise the writer does it before
        // its first insert, and scans wait in the spool meanwhile.
        match tokio::time::timeout(std::time::Duration::from_secs(5), ch.migrate()).await {
            Ok(Ok(())) => tracing::info!("clickhouse migrations applied"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "clickhouse unavailable at start-up; scans are spooled until it answers")
            }
            Err(_) => tracing::warn!(
                "clickhouse did not answer at start-up; scans are spooled until it answers"
            ),
        }
        sinks.push(Sink::ClickHouse(Box::new(ClickHouseEvents::new(
            sink_config,
        ))));
        analytics = Analytics::ClickHouse(Box::new(ch.clone()));
    }
    let recorder_config = RecorderConfig {
        data_dir: config.data_dir.clone(),
        flush_interval: std::time::Duration::from_millis(config.flush_ms),
        batch_max: config.batch_max,
        queue_capacity: config.queue_capacity,
        spool_max_bytes: config.spool_max_bytes,
        retry_interval: std::time::Duration::from_secs(1),
        write_timeout: std::time::Duration::from_secs(10),
    };
    let (recorder, tasks) = Recorder::start(recorder_config, sinks)?;
    Ok((recorder, tasks, counters, clickhouse, analytics))
}

/// Tasks that outlive one request: code sync, housekeeping, the recorder.
pub struct Background {
    tasks: sync::Tasks,
    recorder_tasks: RecorderTasks,
}

impl Background {
    /// Flushes every recorded scan (to its sink or spool), then stops the tasks.
    pub async fn stop(self, state: &AppState) {
        self.recorder_tasks.finish(&state.recorder).await;
        self.tasks.stop().await;
    }
}

/// Serves until `shutdown` resolves, then drains open connections (bounded by
/// `--shutdown-timeout-secs`) and stops the background tasks.
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

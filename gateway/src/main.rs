//! `codelink`: parse the command line, bind, and hand over to [`gateway::run`].

use clap::{Parser, Subcommand};
use gateway::Config;

/// mimalloc instead of glibc's malloc: cheaper small allocations, and blocks
/// freed on another thread (a scan's strings, freed by the recorder) do not
/// contend (see `mimalloc` in the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "codelink",
    version,
    about = "Short links and QR codes for creator codes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; the size difference between the variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded storage unless --redis-url is given).
    Serve(Config),
    /// Print a code's summary and a breakdown from a running gateway.
    Report(gateway::report::ReportArgs),
    /// Import codes from a CSV or JSON lines file into a running gateway.
    Import(gateway::bulk::cli::ImportArgs),
    /// Print every code as CSV or JSON lines (to re-import, or to edit).
    Export(gateway::bulk::cli::ExportArgs),
    /// Build the analytics rollups of data written by an earlier version
    /// (same flags as serve; resumable, safe to run again).
    Migrate(Config),
    /// Exit 0 when a running gateway answers 2xx (the container health
    /// check: the image has no curl).
    Healthcheck(gateway::healthcheck::HealthcheckArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(config) => runtime.block_on(serve(config)),
        Command::Report(args) => runtime.block_on(gateway::report::run(args)),
        Command::Import(args) => runtime.block_on(gateway::bulk::cli::import(args)),
        Command::Export(args) => runtime.block_on(gateway::bulk::cli::export(args)),
        Command::Migrate(config) => runtime.block_on(gateway::migrate::run(config)),
        Command::Healthcheck(args) => runtime.block_on(gateway::healthcheck::run(args)),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The handlers are installed before the port opens: a signal sent as
    // soon as the gateway answers is a stop, never the default (fatal) action.
    let signals = Signals::install()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    gateway::run(listener, config, signals.recv()).await
}

/// SIGINT and SIGTERM, registered at once. Ctrl-C (SIGINT) stops without
/// the `--drain-secs` wait; SIGTERM drains.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot handle {name}: {e}"))
        };
        Ok(Self {
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => gateway::skip_drain(),
            _ = self.terminate.recv() => {}
        }
        tracing::info!("shutdown signal received");
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
        gateway::skip_drain();
        tracing::info!("shutdown signal received");
    }
}

/// Logs to stderr; the level comes from `CODELINK_LOG` (e.g. `info`, `gateway=debug`).
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("CODELINK_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}

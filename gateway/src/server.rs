//! The accept loop: one tokio task per connection, a semaphore bounding open
//! connections, and a graceful shutdown: a drain period (`/readyz` not ready,
//! still serving), then open connections finish, raced against a deadline.

use crate::conn_watch::{self, Activity, Watched};
use crate::router;
use crate::state::AppState;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The largest request head read (and the read buffer of a connection).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Set by [`crate::skip_drain`] (Ctrl-C at a terminal): the stop skips the
/// `--drain-secs` wait, which is for load balancers (they send SIGTERM).
pub(crate) static SKIP_DRAIN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(state.config.max_connections));
    let head_timeout = state.config.head_timeout();
    let mut builder = http1::Builder::new();
    builder
        // No timer: a connection waiting too long for a request head is
        // closed by its watch (`conn_watch`), not by a timer per request.
        .header_read_timeout(None)
        // A request head larger than this is refused (431) instead of
        // buffered: 64 KiB is room for any real one (hyper's default is
        // ~400 KiB, × every open connection).
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    // The signal starts the drain: `/readyz` turns 503 `draining` at once, so
    // a load balancer polling it stops sending new requests, while this loop
    // still accepts for `--drain-secs` (what the balancer sends before it
    // notices is answered, not refused).
    let stop_accepting = async {
        shutdown.await;
        let drain = if SKIP_DRAIN.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            state.config.drain()
        };
        state.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            ?drain,
            "shutdown signalled: /readyz answers 503 draining; still serving"
        );
        tokio::time::sleep(drain).await;
    };
    tokio::pin!(stop_accepting);
    loop {
        // The permit is taken before accept, so past the limit new connections
        // wait in the kernel's backlog instead of in memory.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut stop_accepting => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop_accepting => break,
        };
        let _ = stream.set_nodelay(true);
        let metrics_state = state.clone();
        let state = state.clone();
        let activity = Arc::new(Activity::default());
        let watched = activity.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            let activity = activity.clone();
            async move {
                activity.request_started();
                let mut resp = router::handle(&state, req, peer).await;
                activity.request_finished();
                if state.draining.load(Ordering::Relaxed) {
                    // Keep-alive clients (a balancer's pooled connections)
                    // reconnect, to an instance that stays.
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, Infallible>(resp)
            }
        });
        let io = Watched::new(TokioIo::new(stream), watched.clone());
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let ended = tokio::select! {
                // The connection first: the watch is polled only when it waits.
                biased;
                ended = conn => ended,
                () = conn_watch::head_wait_exceeded(&watched, head_timeout) => {
                    tracing::debug!(%peer, ?head_timeout, "closed: no request head in time");
                    Ok(())
                }
            };
            if let Err(e) = ended {
                // Requests hyper refused itself never reach the router: count
                // them here (431 for a head too large, 400 for one that does
                // not parse).
                let status = if e.is_parse_too_large() {
                    Some(431)
                } else if e.is_parse() || e.is_parse_status() {
                    Some(400)
                } else {
                    None
                };
                if let Some(status) = status {
                    metrics_state.metrics.observe(
                        crate::metrics::Route::Other,
                        status,
                        Duration::ZERO,
                    );
                }
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let deadline = state.config.shutdown_timeout();
    tracing::info!(?deadline, "shutting down: draining open connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(deadline) => tracing::warn!("shutdown deadline passed; dropping open connections"),
    }
}

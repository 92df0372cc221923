//! Closing connections that wait too long for a request head: slow clients
//! (one that trickles a head byte by byte) and idle keep-alive connections
//! may not hold a connection slot for ever.
//!
//! hyper's own `header_read_timeout` does this with a timer armed for every
//! request head (an allocation, a timer-wheel insert and removal per
//! request). Here each connection has one watch instead, which wakes every
//! half `--head-timeout-ms` and looks at what happened since: a request
//! started or finished, or response bytes written. The request path only
//! bumps plain counters.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// What a connection has done, as counters: each has one writer (the
/// connection's own task), so a bump is a load and a store.
#[derive(Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    writes: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

impl Activity {
    /// A request head was read and its handler starts.
    pub fn request_started(&self) {
        bump(&self.started);
    }

    /// The handler returned its response.
    pub fn request_finished(&self) {
        bump(&self.finished);
    }

    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.started.load(Relaxed),
            self.finished.load(Relaxed),
            self.writes.load(Relaxed),
        )
    }
}

/// Resolves when the connection has waited `limit` for a request head (it
/// looks every half `limit`, so after between 1 and 1.5 `limit`): no handler
/// running, none started or finished and nothing written for that long. A
/// handler that takes long (a bulk import) keeps it open, and so does a
/// response that takes long to send (a large export to a slow client) as
/// long as its bytes keep moving; a client that stops reading an answer
/// for that long is dropped too.
pub async fn head_wait_exceeded(activity: &Activity, limit: Duration) {
    let tick = limit / 2;
    let mut last = activity.snapshot();
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        let now = activity.snapshot();
        let (started, finished, _) = now;
        if now != last || started != finished {
            last = now;
            quiet = Duration::ZERO;
            continue;
        }
        quiet += tick;
        if quiet >= limit {
            return;
        }
    }
}

/// A connection's I/O that counts successful writes into [`Activity`].
/// Reads are not counted: bytes of a head that never completes are not
/// progress.
pub struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn count(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            bump(&self.activity.writes);
        }
    }
}

impl<I: Read + Unpin> Read for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: Write + Unpin> Write for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

//! How fast the embedded store writes batches of scans from many visitors
//! (issue 15: at full speed it fell behind the load), and how fast the
//! recorder replays a spool into it. Measurements, not pass/fail tests:
//!
//! ```sh
//! cargo test --release -p codelink-analytics --test embedded_write_rate -- \
//!     --ignored --nocapture --test-threads 1
//! ```
//!
//! `VISITORS` (1,200,000: the pool the visitor ids are drawn from), `BATCH`
//! (40,000 scans), `BATCHES` (30) and `CACHE_MB` (48) vary it.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::Scan;
use codelink_analytics::sink::EmbeddedSink;
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A scan like the redirect's: one code, four browsers, `visitors`
/// distinct visitor ids (32 hex characters, as the gateway makes them).
fn scan(i: u64, ts_ms: u64, visitors: u64) -> Scan {
    const UAS: [(&str, &str, &str, &str); 4] = [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 330.0", "mobile", "ios", "safari"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", "mobile", "android", "chrome"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", "desktop", "windows", "chrome"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "desktop", "macos", "safari"),
    ];
    // A visitor drawn from the pool by a mixing hash: random keys, as real ids are.
    let v = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % visitors;
    let (ua, device, os, browser) = UAS[(v % 4) as usize];
    Scan {
        scan_id: codelink_analytics::ScanId::from_parts(ts_ms, 1, i)
            .to_string()
            .into(),
        ts_ms,
        code: "busy".into(),
        channel: ["yt", "ig", "tt"][(i % 3) as usize].into(),
        visitor_id: format!(
            "{:032x}",
            u128::from(v).wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9)
        )
        .into(),
        ip_prefix: format!("10.{}.{}.0", (v >> 8) & 255, v & 255).into(),
        user_agent: ua.into(),
        device: device.into(),
        os: os.into(),
        browser: browser.into(),
        source: "link".into(),
        country: "US".into(),
        ..Scan::default()
    }
}

/// What both measurements write: `BATCHES` batches of `BATCH` scans, a
/// second of scans each, visitors from a pool of `VISITORS`.
struct Load {
    visitors: u64,
    batch: u64,
    batches: u64,
}

impl Load {
    fn from_env() -> Self {
        Self {
            visitors: env("VISITORS", 1_200_000),
            batch: env("BATCH", 40_000),
            batches: env("BATCHES", 30),
        }
    }

    fn scans(&self) -> u64 {
        self.batch * self.batches
    }

    /// The scans of each batch in turn, made as they are asked for.
    fn each_batch(&self) -> impl Iterator<Item = Vec<Scan>> + '_ {
        const START_MS: u64 = 1_780_000_000_000;
        (0..self.batches).map(move |b| {
            (0..self.batch)
                .map(|k| {
                    let i = b * self.batch + k + 1;
                    let ts_ms = START_MS + b * 1000 + k * 1000 / self.batch;
                    scan(i, ts_ms, self.visitors)
                })
                .collect()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn embedded_write_rate() {
    let load = Load::from_env();
    for (events, counters, what) in [
        (true, true, "rows, rollups and live store"),
        (true, false, "rows and rollups only"),
        (false, true, "live store only"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sink =
            EmbeddedSink::open_with_cache(dir.path(), events, counters, env("CACHE_MB", 48) << 20)
                .unwrap();
        let started = Instant::now();
        let mut times = Vec::new();
        for scans in load.each_batch() {
            let t = Instant::now();
            sink.write(&Arc::new(Batch::new(scans, Vec::new())))
                .await
                .unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        let total = started.elapsed().as_secs_f64();
        let writing: f64 = times.iter().sum();
        let n = load.scans() as f64;
        let tail = times.len().min(5);
        let last: f64 = times[times.len() - tail..].iter().sum::<f64>() / tail as f64;
        let size = std::fs::metadata(dir.path().join("scans.redb"))
            .unwrap()
            .len();
        println!(
            "{what}: {:.0} scans/s written ({:.0} with the batches' making); first batch {:.0} ms, last {tail} mean {:.0} ms ({:.0} scans/s); file {:.0} MB",
            n / writing,
            n / total,
            times[0] * 1e3,
            last * 1e3,
            load.batch as f64 / last,
            size as f64 / 1e6
        );
    }
}

/// The recorder replaying a spool of `BATCHES` batches into the embedded
/// store: how fast a sink that fell behind catches up once the load is
/// gone, the spool's JSON decoding included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn spool_replay_rate() {
    use codelink_analytics::recorder::{Recorder, RecorderConfig};
    use codelink_analytics::sink::{Sink, SinkKind};
    use codelink_analytics::spool::Spool;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    let load = Load::from_env();
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path().join("spool/embedded"), u64::MAX).unwrap();
    let mut pushing = 0.0;
    for scans in load.each_batch() {
        let spooled = Batch::new(scans, Vec::new());
        let t = Instant::now();
        spool.push(&spooled).unwrap();
        pushing += t.elapsed().as_secs_f64();
    }
    let spooled = spool.bytes();
    drop(spool);
    let sink =
        EmbeddedSink::open_with_cache(dir.path(), true, true, env("CACHE_MB", 48) << 20).unwrap();
    let config = RecorderConfig {
        data_dir: dir.path().to_path_buf(),
        flush_interval: Duration::from_secs(1),
        batch_max: 100_000,
        queue_capacity: 200_000,
        nice: 0,
        backlog_max: 50_000,
        spool_max_bytes: u64::MAX,
        retry_interval: Duration::from_secs(1),
        write_timeout: Duration::from_secs(600),
        verdicts: Default::default(),
        after_live_write: None,
    };
    let started = Instant::now();
    let (recorder, tasks) = Recorder::start(config, vec![Sink::Embedded(sink)]).unwrap();
    let m = || recorder.metrics().sink(SinkKind::Embedded);
    while m().replayed.load(Relaxed) < load.scans() {
        assert_eq!(m().failures.load(Relaxed), 0, "a replay failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    tasks.finish(&recorder, Duration::from_secs(5)).await;
    let size = std::fs::metadata(dir.path().join("scans.redb"))
        .unwrap()
        .len();
    println!(
        "replay: {:.0} scans/s ({:.1} s) from a spool of {:.1} bytes a scan, spooled at {:.2} µs a scan; file {:.0} MB",
        (load.scans()) as f64 / secs,
        secs,
        spooled as f64 / (load.scans()) as f64,
        pushing * 1e6 / (load.scans()) as f64,
        size as f64 / 1e6
    );
}

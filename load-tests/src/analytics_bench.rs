//! `analytics-bench`: loads a realistic quarter of scans and conversions
//! through the project's own writers and measures every analytics answer,
//! which comes from the rollups (pre-aggregated cells written with each
//! batch). A benchmark, not a test: a slow query is reported, not failed.
//!
//! ```text
//! analytics-bench [--backend clickhouse|embedded] [--scans N] [--conversions M]
//!                 [--codes K] [--days D] [--runs R] [--case-budget-secs S]
//!                 [--scans-per-batch N] [--conversions-per-batch N]
//!                 [--max-seconds S] [--seed X] [--out FILE]
//!                 ClickHouse: [--clickhouse-url http://127.0.0.1:PORT]
//!                             [--database NAME] [--optimize] [--linger-secs S]
//!                 embedded:   [--gateway-bin PATH] [--data-dir DIR]
//!                             [--memory-secs S] [--memory-clients C] [--linger-secs S]
//! ```
//!
//! 1. **Load.** Generates the data in time order and writes it in batches of
//!    `codelink_analytics::batch::Batch` through the real writers:
//!    `ClickHouseEvents::write` (ClickHouse; a private `clickhouse-server`
//!    18.16 through `codelink_testkit::ClickHouseServer`, or `--clickhouse-url`
//!    on 127.0.0.1, whose `{database}` is dropped and recreated) or
//!    `EmbeddedSink::write` (`scans.redb` in a data dir). All scans first
//!    (`--scans-per-batch`, default 100 000 for ClickHouse, 50 000 embedded),
//!    then the conversions (`--conversions-per-batch`, 10 000), which name
//!    generated scans: the writers look the scan's dimensions up then. At most
//!    one batch is being written while the next one is generated, so the
//!    generator never holds more than two batches. Defaults: ClickHouse 100 M
//!    scans, 1 M conversions, 10 000 codes; embedded 10 M scans, 100 k
//!    conversions, 1000 codes; both 90 days ending at the start of today (UTC).
//! 2. **The data.** One hot code (`c0000`, 5 % of the scans) and a Zipf tail
//!    (`1/(rank+10)`); 20 % bots (user-agent bots named by the project's
//!    classifier, and `head`/`prefetch`/`rate`); 25 % QR; six channels with
//!    their referrers; 16 countries; user agents classified by
//!    `codelink_analytics::classify`; visitors that come back (per code, and a
//!    pool of fans who scan many codes), keeping their device, country and /24;
//!    a daily rhythm (evening peak) and growth over the window. Conversions:
//!    signups credited by scan token, visitor, code only or nobody; purchases
//!    (inherited) and refunds; guest purchases by scan token; EUR and USD.
//! 3. **Measure.** Every endpoint (summary; timeseries by hour and by day in
//!    UTC and Europe/Berlin; breakdown by each of `Dimension::ALL`; funnel;
//!    top by scans, conversions and earnings, limit 10) for the hot code, the
//!    median code (by scans) and all codes, over the last 30 days and over the
//!    whole window: one warm-up, then `--runs` timed runs (cut short once 3
//!    are in and the case has taken `--case-budget-secs`); p50 and max.
//!    ClickHouse: in process through `codelink_analytics::query::Backend`,
//!    right after the load (and again after `OPTIMIZE TABLE … FINAL` of the
//!    rollup tables with `--optimize`). Embedded: the data dir is closed and
//!    the real gateway (`codelink serve`) started on it; the hot and median
//!    codes are created through the admin API and every case is asked over
//!    HTTP (`/api/v1/analytics/*`). Then the memory check: `--memory-clients`
//!    (8) clients loop over every case for `--memory-secs` (15) while the
//!    gateway's `VmRSS` is sampled every 50 ms.
//! 4. **Check** that the answers are sane: each scope's summary counts exactly
//!    the scans (and, for all codes, the conversions) that were written in
//!    its range.
//! 5. **Report** in markdown on stdout (and in `--out`).
//!
//! Bounded: everything on 127.0.0.1; after `--max-seconds` (default 3600 for
//! ClickHouse, 1800 embedded) the measurements still to do are skipped and the
//! report is written (a load still running then is an error), and 60 s later
//! (plus `--linger-secs`) the run is abandoned; SIGINT/SIGTERM stop it. The
//! private `clickhouse-server` and the gateway are killed on every way out
//! (the gateway also runs under `timeout`). Exit status: 0 with a report, 1
//! on an error or when an answer failed the check (the report is still
//! written), 2 on bad usage, 124 when abandoned, 130/143 on a signal.

use codelink_analytics::batch::Batch;
use codelink_analytics::classify;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::query::{Backend, Dimension, Interval, Query, TopMetric};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents, EmbeddedSink};
use codelink_analytics::ScanId;
use codelink_testkit::http::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const USAGE: &str = "usage: analytics-bench [--backend clickhouse|embedded] [--scans N] \
     [--conversions M] [--codes K] [--days D] [--runs R] [--case-budget-secs S] \
     [--scans-per-batch N] [--conversions-per-batch N] [--max-seconds S] [--seed X] [--out FILE] \
     [--clickhouse-url http://127.0.0.1:PORT] [--database NAME] [--optimize] \
     [--gateway-bin PATH] [--data-dir DIR] [--memory-secs S] [--memory-clients C] [--linger-secs S]";

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
/// The dashboard's default range: the last 30 days.
const RECENT_DAYS: u64 = 30;
/// Share of all scans that go to the hot code.
const HOT_SHARE: f64 = 0.05;
const BOT_SHARE: f64 = 0.20;
const QR_SHARE: f64 = 0.25;
/// Share of human scans from the fan pool (visitors who scan many codes).
const FAN_SHARE: f64 = 0.2;
/// Distinct visitors of a code per expected scan of it (so ~2 scans each).
const VISITORS_PER_SCAN: f64 = 0.45;
/// Node part of the generated scan ids.
const NODE: u32 = 0xBE5C_0DE5;
/// Earnings hold: 14 days (the gateway is started with `--hold-days 14`).
const HOLD_DAYS: u64 = 14;
const HOLD_MS: u64 = HOLD_DAYS * DAY_MS;
/// Targets: p50 of every case, max of every case (ClickHouse), gateway RSS (embedded).
const P50_TARGET_MS: f64 = 50.0;
const MAX_TARGET_MS: f64 = 150.0;
const RSS_TARGET_MB: f64 = 300.0;
/// The gateway's bucket cap for this run: an hourly timeseries of 90 days has 2160.
const GATEWAY_MAX_BUCKETS: u32 = 3000;

// --- arguments ---------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendKind {
    ClickHouse,
    Embedded,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            BackendKind::ClickHouse => "clickhouse",
            BackendKind::Embedded => "embedded",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    backend: BackendKind,
    scans: u64,
    conversions: u64,
    codes: usize,
    days: u64,
    runs: usize,
    case_budget: Duration,
    scans_per_batch: usize,
    conversions_per_batch: usize,
    max_seconds: u64,
    seed: u64,
    out: Option<String>,
    clickhouse_url: Option<String>,
    database: String,
    optimize: bool,
    gateway_bin: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    memory_secs: u64,
    memory_clients: usize,
    linger_secs: u64,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
    }
    let mut backend = BackendKind::ClickHouse;
    let mut scans = None;
    let mut conversions = None;
    let mut codes = None;
    let mut scans_per_batch = None;
    let mut max_seconds = None;
    let mut a = Args {
        backend,
        scans: 0,
        conversions: 0,
        codes: 0,
        days: 90,
        runs: 7,
        case_budget: Duration::from_secs(8),
        scans_per_batch: 0,
        conversions_per_batch: 10_000,
        max_seconds: 0,
        seed: 20_240_601,
        out: None,
        clickhouse_url: None,
        database: "bench".into(),
        optimize: false,
        gateway_bin: None,
        data_dir: None,
        memory_secs: 15,
        memory_clients: 8,
        linger_secs: 0,
    };
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err("help requested".into()),
            "--optimize" => {
                a.optimize = true;
                continue;
            }
            _ => {}
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => {
                backend = match value.as_str() {
                    "clickhouse" => BackendKind::ClickHouse,
                    "embedded" => BackendKind::Embedded,
                    _ => return Err(format!("--backend {value:?}: clickhouse or embedded")),
                }
            }
            "--scans" => scans = Some(num(&flag, &value)?),
            "--conversions" => conversions = Some(num(&flag, &value)?),
            "--codes" => codes = Some(num(&flag, &value)?),
            "--days" => a.days = num(&flag, &value)?,
            "--runs" => a.runs = num(&flag, &value)?,
            "--case-budget-secs" => a.case_budget = Duration::from_secs(num(&flag, &value)?),
            "--scans-per-batch" => scans_per_batch = Some(num(&flag, &value)?),
            "--conversions-per-batch" => a.conversions_per_batch = num(&flag, &value)?,
            "--max-seconds" => max_seconds = Some(num(&flag, &value)?),
            "--seed" => a.seed = num(&flag, &value)?,
            "--out" => a.out = Some(value),
            "--clickhouse-url" => a.clickhouse_url = Some(value),
            "--database" => a.database = value,
            "--gateway-bin" => a.gateway_bin = Some(PathBuf::from(value)),
            "--data-dir" => a.data_dir = Some(PathBuf::from(value)),
            "--memory-secs" => a.memory_secs = num(&flag, &value)?,
            "--memory-clients" => a.memory_clients = num(&flag, &value)?,
            "--linger-secs" => a.linger_secs = num(&flag, &value)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    a.backend = backend;
    let (d_scans, d_conv, d_codes, d_batch, d_max) = match backend {
        BackendKind::ClickHouse => (100_000_000, 1_000_000, 10_000, 100_000, 3600),
        BackendKind::Embedded => (10_000_000, 100_000, 1000, 50_000, 1800),
    };
    a.scans = scans.unwrap_or(d_scans);
    a.conversions = conversions.unwrap_or(d_conv);
    a.codes = codes.unwrap_or(d_codes);
    a.scans_per_batch = scans_per_batch.unwrap_or(d_batch);
    a.max_seconds = max_seconds.unwrap_or(d_max);
    if a.scans == 0 {
        return Err("--scans must be at least 1".into());
    }
    if !(2..=100_000).contains(&a.codes) {
        return Err("--codes must be between 2 and 100000".into());
    }
    if !(1..=3650).contains(&a.days) {
        return Err("--days must be between 1 and 3650".into());
    }
    if a.runs == 0
        || a.scans_per_batch == 0
        || a.conversions_per_batch == 0
        || a.max_seconds == 0
        || a.memory_clients == 0
    {
        return Err(
            "--runs, --scans-per-batch, --conversions-per-batch, --max-seconds and \
             --memory-clients must be positive"
                .into(),
        );
    }
    if a.database.is_empty()
        || !a
            .database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("--database must be letters, digits and _".into());
    }
    if let Some(url) = &a.clickhouse_url {
        let local = ["http://127.0.0.1:", "http://localhost:"]
            .iter()
            .any(|p| url.starts_with(p));
        if !local {
            return Err(
                "--clickhouse-url must be http://127.0.0.1:PORT or http://localhost:PORT".into(),
            );
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("analytics-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Started before the runtime (it blocks); killed when `server` drops, also
    // when a panic unwinds through here.
    let server = match (args.backend, &args.clickhouse_url) {
        (BackendKind::ClickHouse, None) => {
            eprintln!("==> starting a private clickhouse-server");
            Some(codelink_testkit::ClickHouseServer::start())
        }
        _ => None,
    };
    let url = match (&args.clickhouse_url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.url(),
        (None, None) => String::new(),
    };
    let server_dir = server.as_ref().map(|s| s.dir().to_path_buf());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("analytics-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let soft = Instant::now() + Duration::from_secs(args.max_seconds);
    let hard = Duration::from_secs(args.max_seconds + 60 + args.linger_secs);
    let code = runtime.block_on(async {
        tokio::select! {
            r = run(args, url, server_dir, soft) => match r {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!("analytics-bench: some answers failed the check (see the report)");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("analytics-bench: {e}");
                    ExitCode::FAILURE
                }
            },
            sig = shutdown_signal() => {
                eprintln!("analytics-bench: {sig}, stopping");
                ExitCode::from(if sig == "SIGINT" { 130 } else { 143 })
            }
            _ = tokio::time::sleep(hard) => {
                eprintln!("analytics-bench: still running after --max-seconds + 60 s, abandoned");
                ExitCode::from(124)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(server);
    code
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

// --- the data model ----------------------------------------------------------

/// splitmix64: a fixed, fast mix (visitor ids and their attributes derive from it).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Picks from a weighted table with a uniform `u` in [0, 1).
struct Weighted<T> {
    items: Vec<T>,
    cumulative: Vec<f64>,
}

impl<T> Weighted<T> {
    fn new(pairs: impl IntoIterator<Item = (T, f64)>) -> Self {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        for (item, w) in pairs {
            total += w;
            items.push(item);
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Self { items, cumulative }
    }

    fn index(&self, u: f64) -> usize {
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.items.len() - 1)
    }

    fn pick(&self, u: f64) -> &T {
        &self.items[self.index(u)]
    }

    /// The share of item `i`.
    fn share(&self, i: usize) -> f64 {
        self.cumulative[i] - if i == 0 { 0.0 } else { self.cumulative[i - 1] }
    }
}

/// A user agent with what the project's classifier makes of it.
struct Agent {
    ua: &'static str,
    device: &'static str,
    os: String,
    browser: String,
    in_app: &'static str,
    bot: Option<String>,
}

impl Agent {
    fn of(ua: &'static str) -> Self {
        let c = classify::classify(ua);
        Self {
            ua,
            device: c.device,
            os: c.os,
            browser: c.browser,
            in_app: c.in_app,
            bot: c.bot,
        }
    }
}

const HUMAN_AGENTS: &[(&str, f64)] = &[
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1", 24.0),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36", 18.0),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 311.0.2.16.111 (iPhone15,3; iOS 17_1_2; en_US; en; scale=3.00; 1290x2796; 541635890)", 12.0),
    ("Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android (33/13; 480dpi; 1080x2340; samsung; SM-S911B; dm1q; qcom; en_US; 541635863)", 6.0),
    ("Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 trill_320405 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/trill app_version/32.4.5 ByteLocale/en ByteFullLocale/en Region/US BytedanceWebview/d8a21c6", 6.0),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]", 3.0),
    ("com.google.ios.youtube/19.29.1 (iPhone16,2; U; CPU iOS 17_5_1 like Mac OS X)", 3.0),
    ("Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", 4.0),
    ("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", 3.0),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", 10.0),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", 5.0),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", 3.0),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", 2.0),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", 1.0),
];

/// Bots: a user agent the classifier names, or (`None`) a human agent whose
/// request was judged by the redirect itself (`head`, `prefetch`, `rate`).
const BOT_KINDS: &[(Option<&str>, &str, f64)] = &[
    (
        Some("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
        "",
        30.0,
    ),
    (Some("Twitterbot/1.0"), "", 8.0),
    (
        Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
        "",
        8.0,
    ),
    (
        Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        "",
        14.0,
    ),
    (Some("WhatsApp/2.23.20.0 A"), "", 14.0),
    (Some("TelegramBot (like TwitterBot)"), "", 5.0),
    (Some("curl/8.4.0"), "", 5.0),
    (None, "head", 8.0),
    (None, "prefetch", 5.0),
    (None, "rate", 3.0),
];

const COUNTRIES: &[(&str, f64)] = &[
    ("DE", 20.0),
    ("US", 18.0),
    ("GB", 10.0),
    ("FR", 8.0),
    ("ES", 6.0),
    ("IT", 6.0),
    ("BR", 5.0),
    ("IN", 5.0),
    ("NL", 4.0),
    ("PL", 3.0),
    ("AT", 3.0),
    ("CA", 3.0),
    ("CH", 2.0),
    ("SE", 2.0),
    ("AU", 2.0),
    ("", 3.0),
];

/// Channel, its weight, and the referrer hosts of a link tap from it.
const CHANNELS: &[(&str, f64, [&str; 2])] = &[
    ("", 20.0, ["www.google.com", ""]),
    ("yt", 25.0, ["m.youtube.com", "www.youtube.com"]),
    ("ig", 25.0, ["l.instagram.com", "l.instagram.com"]),
    ("tt", 15.0, ["www.tiktok.com", ""]),
    ("bio", 10.0, ["linktr.ee", "linktr.ee"]),
    ("email", 5.0, ["", "mail.google.com"]),
];

/// UTC hour-of-day weights of scans (an evening peak).
const HOURS: [f64; 24] = [
    1.5, 1.0, 0.8, 0.6, 0.6, 0.8, 1.5, 2.5, 3.5, 4.0, 4.5, 5.0, 5.5, 5.5, 5.5, 5.5, 6.0, 6.5, 7.5,
    8.5, 9.0, 8.0, 5.5, 3.0,
];

/// The visitor id (32 hex digits, like the gateway's) of visitor key `v`.
fn visitor_id(buf: &mut String, v: u64) {
    buf.clear();
    let h = mix(v);
    let _ = write!(buf, "{h:016x}{:016x}", mix(h ^ 0x5151));
}

/// The /24 of visitor key `v`.
fn ip_prefix(buf: &mut String, v: u64) {
    buf.clear();
    let h = mix(v ^ 0xA11C_E5ED);
    let _ = write!(
        buf,
        "{}.{}.{}.0",
        [10, 31, 46, 62, 77, 81, 85, 91, 109, 176, 185, 212][(h % 12) as usize],
        (h >> 8) & 255,
        (h >> 16) & 255
    );
}

/// Everything the generator draws from.
struct Model {
    start_ms: u64,
    end_ms: u64,
    codes: Vec<String>,
    owners: Vec<String>,
    /// Plan currency of each code (earnings are in it).
    plan_currency: Vec<&'static str>,
    code_weights: Weighted<usize>,
    /// Per code: how many distinct local visitors it has.
    local_visitors: Vec<u64>,
    fans: u64,
    humans: Vec<Agent>,
    human_weights: Weighted<usize>,
    /// (agent, bot reason)
    bots: Vec<(Agent, String)>,
    bot_weights: Weighted<usize>,
    countries: Weighted<&'static str>,
    channels: Weighted<usize>,
    /// Scans in each hour of the window, in order (daily rhythm and growth).
    hour_counts: Vec<u64>,
}

impl Model {
    fn new(args: &Args) -> Result<Self> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let end_ms = now_ms / DAY_MS * DAY_MS;
        let start_ms = end_ms - args.days * DAY_MS;
        let k = args.codes;
        let codes: Vec<String> = (0..k).map(|i| format!("c{i:04}")).collect();
        let owners = (0..k).map(|i| format!("creator{:03}", i % 300)).collect();
        let plan_currency = (0..k)
            .map(|i| if i % 4 == 3 { "USD" } else { "EUR" })
            .collect();
        let tail: f64 = (1..k).map(|r| 1.0 / (r as f64 + 10.0)).sum();
        let code_weights = Weighted::new((0..k).map(|i| {
            let w = if i == 0 {
                HOT_SHARE
            } else {
                (1.0 - HOT_SHARE) / (i as f64 + 10.0) / tail
            };
            (i, w)
        }));
        let humans_expected = args.scans as f64 * (1.0 - BOT_SHARE) * (1.0 - FAN_SHARE);
        let local_visitors = (0..k)
            .map(|i| ((code_weights.share(i) * humans_expected * VISITORS_PER_SCAN) as u64).max(1))
            .collect();
        let fans = (args.scans / 40).max(1000);

        let humans: Vec<Agent> = HUMAN_AGENTS.iter().map(|(ua, _)| Agent::of(ua)).collect();
        for a in &humans {
            if let Some(bot) = &a.bot {
                return Err(format!("human agent classified as bot {bot}: {}", a.ua).into());
            }
        }
        let human_weights =
            Weighted::new(HUMAN_AGENTS.iter().enumerate().map(|(i, (_, w))| (i, *w)));
        let mut bots = Vec::new();
        for (i, (ua, reason, _)) in BOT_KINDS.iter().enumerate() {
            match ua {
                Some(ua) => {
                    let a = Agent::of(ua);
                    let name = a
                        .bot
                        .clone()
                        .ok_or_else(|| format!("bot agent not classified as a bot: {ua}"))?;
                    bots.push((a, format!("ua:{name}")));
                }
                None => {
                    // A human agent, judged a bot by the redirect.
                    let ua = HUMAN_AGENTS[i % HUMAN_AGENTS.len()].0;
                    bots.push((Agent::of(ua), (*reason).to_string()));
                }
            }
        }
        let bot_weights = Weighted::new(BOT_KINDS.iter().enumerate().map(|(i, b)| (i, b.2)));

        // Scans per hour: the hour-of-day rhythm times growth (the last day
        // has twice the scans of the first), rounded on the running total so
        // that the hours add up to exactly `--scans`.
        let weights: Vec<f64> = (0..args.days)
            .flat_map(|d| {
                let growth = 1.0 + d as f64 / args.days as f64;
                HOURS.iter().map(move |h| h * growth)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut hour_counts = Vec::with_capacity(weights.len());
        let (mut cum, mut given) = (0.0, 0u64);
        for (i, w) in weights.iter().enumerate() {
            cum += w;
            let upto = if i + 1 == weights.len() {
                args.scans
            } else {
                ((cum / total) * args.scans as f64).round() as u64
            }
            .max(given);
            hour_counts.push(upto - given);
            given = upto;
        }
        Ok(Self {
            start_ms,
            end_ms,
            codes,
            owners,
            plan_currency,
            code_weights,
            local_visitors,
            fans,
            humans,
            human_weights,
            bots,
            bot_weights,
            countries: Weighted::new(COUNTRIES.iter().copied()),
            channels: Weighted::new(CHANNELS.iter().enumerate().map(|(i, c)| (i, c.1))),
            hour_counts,
        })
    }

    /// The start of the last-30-days range (the whole window when shorter).
    fn recent_ms(&self) -> u64 {
        self.end_ms
            .saturating_sub(RECENT_DAYS * DAY_MS)
            .max(self.start_ms)
    }

    /// A time uniformly in the window (conversions without a scan).
    fn any_time(&self, rng: &mut StdRng) -> u64 {
        rng.random_range(self.start_ms..self.end_ms)
    }
}

/// A human scan kept for conversions to name.
#[derive(Clone, Copy)]
struct Candidate {
    scan_id: [u8; 26],
    ts_ms: u64,
    code: u32,
    channel: u8,
    visitor: u64,
}

// --- scans -------------------------------------------------------------------

/// What the scans were, counted while they were generated.
#[derive(Debug, Default)]
struct ScanStats {
    total: u64,
    /// Per code: all scans, and those in the last 30 days.
    per_code: Vec<u64>,
    per_code_recent: Vec<u64>,
    recent: u64,
    bots: u64,
    qr: u64,
    unique: u64,
    batches: u64,
    seconds: f64,
}

/// Generates the scans in time order, an hour of the window at a time.
struct ScanGen<'m> {
    m: &'m Model,
    recent_ms: u64,
    /// Next hour of the window to draw times for.
    hour: usize,
    /// The current hour's times still to use, latest first.
    times: Vec<u64>,
    /// Scan id counter.
    index: u64,
    /// (UTC day, per-day visitor keys seen): the `is_unique` flag.
    day: u64,
    seen_today: HashSet<u64>,
    /// Share of human scans kept as candidates for conversions.
    keep: f64,
    candidates: Vec<Candidate>,
    stats: ScanStats,
    vid: String,
    ip: String,
}

impl<'m> ScanGen<'m> {
    fn new(m: &'m Model, args: &Args) -> Self {
        // Conversions that name a scan, with room to spare.
        let wanted = (args.conversions as f64 * 1.5) as u64;
        let humans_expected = (args.scans as f64 * (1.0 - BOT_SHARE)).max(1.0);
        Self {
            m,
            recent_ms: m.recent_ms(),
            hour: 0,
            times: Vec::new(),
            index: 0,
            day: u64::MAX,
            seen_today: HashSet::new(),
            keep: (wanted as f64 / humans_expected).min(1.0),
            candidates: Vec::with_capacity((wanted + wanted / 4) as usize),
            stats: ScanStats {
                per_code: vec![0; m.codes.len()],
                per_code_recent: vec![0; m.codes.len()],
                ..ScanStats::default()
            },
            vid: String::new(),
            ip: String::new(),
        }
    }

    /// Up to `n` more scans, in time order; empty when all are out.
    fn batch(&mut self, rng: &mut StdRng, n: usize) -> Vec<Scan> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.next(rng) {
                Some(s) => out.push(s),
                None => break,
            }
        }
        out
    }

    fn next(&mut self, rng: &mut StdRng) -> Option<Scan> {
        while self.times.is_empty() {
            let count = *self.m.hour_counts.get(self.hour)?;
            let base = self.m.start_ms + self.hour as u64 * HOUR_MS;
            self.times = (0..count)
                .map(|_| base + rng.random_range(0..HOUR_MS))
                .collect();
            self.times.sort_unstable_by(|a, b| b.cmp(a));
            self.hour += 1;
        }
        let ts_ms = self.times.pop()?;
        let m = self.m;
        let i = self.index;
        self.index += 1;
        let code = *m.code_weights.pick(rng.random());
        let id = ScanId::from_parts(ts_ms, NODE, i);
        let channel = *m.channels.pick(rng.random());
        let qr = rng.random_bool(QR_SHARE);
        let bot = rng.random_bool(BOT_SHARE);
        let (agent, bot_reason, visitor) = if bot {
            let b = m.bot_weights.index(rng.random());
            // A few thousand crawler addresses.
            let v = (1 << 62) | rng.random_range(0..3000u64);
            (&m.bots[b].0, m.bots[b].1.as_str(), v)
        } else {
            let v = if rng.random_bool(FAN_SHARE) {
                (1 << 63) | rng.random_range(0..m.fans)
            } else {
                ((code as u64) << 32) | rng.random_range(0..m.local_visitors[code])
            };
            // A visitor keeps their device.
            let a = m
                .human_weights
                .index((mix(v ^ 0xDE71CE) >> 11) as f64 / (1u64 << 53) as f64);
            (&m.humans[a], "", v)
        };
        let country = *m
            .countries
            .pick((mix(visitor ^ 0xC0) >> 11) as f64 / (1u64 << 53) as f64);
        visitor_id(&mut self.vid, visitor);
        ip_prefix(&mut self.ip, visitor);
        let referrer = if qr {
            ""
        } else {
            CHANNELS[channel].2[rng.random_range(0..2)]
        };
        let day = ts_ms / DAY_MS;
        if day != self.day {
            // Time order: the previous days are done.
            self.day = day;
            self.seen_today.clear();
        }
        let is_unique = !bot && self.seen_today.insert(mix(visitor ^ mix(code as u64)));
        if !bot && rng.random_bool(self.keep) {
            self.candidates.push(Candidate {
                scan_id: id.encode(),
                ts_ms,
                code: code as u32,
                channel: channel as u8,
                visitor,
            });
        }
        let st = &mut self.stats;
        st.total += 1;
        st.per_code[code] += 1;
        if ts_ms >= self.recent_ms {
            st.recent += 1;
            st.per_code_recent[code] += 1;
        }
        st.bots += u64::from(bot);
        st.qr += u64::from(qr);
        st.unique += u64::from(is_unique);
        Some(Scan {
            scan_id: id.to_string().into(),
            ts_ms,
            code: m.codes[code].as_str().into(),
            channel: CHANNELS[channel].0.into(),
            visitor_id: self.vid.as_str().into(),
            ip_prefix: self.ip.as_str().into(),
            user_agent: agent.ua.into(),
            device: agent.device.into(),
            os: agent.os.as_str().into(),
            browser: agent.browser.as_str().into(),
            in_app: agent.in_app.into(),
            referrer_host: referrer.into(),
            country: country.into(),
            source: if qr { "qr" } else { "link" }.into(),
            bot_reason: bot_reason.into(),
            is_unique,
            unknown_channel: Default::default(),
            step: Default::default(),
            route: Default::default(),
        })
    }
}

// --- conversions -------------------------------------------------------------

/// Conversions counted as they were written: all codes, and per watched code
/// (the hot and the median one); each over the window and the last 30 days.
#[derive(Debug, Default, Clone)]
struct Kinds {
    signups: u64,
    purchases: u64,
    refunds: u64,
}

impl Kinds {
    fn add(&mut self, kind: ConversionKind) {
        match kind {
            ConversionKind::Signup => self.signups += 1,
            ConversionKind::Purchase => self.purchases += 1,
            ConversionKind::Refund => self.refunds += 1,
        }
    }
}

#[derive(Debug, Default)]
struct ConvStats {
    total: u64,
    /// [last 30 days, window] (the order of the spans) for all codes.
    all: [Kinds; 2],
    /// Per watched code: [last 30 days, window].
    watched: BTreeMap<String, [Kinds; 2]>,
    with_scan: u64,
    unattributed: u64,
    rules: BTreeMap<&'static str, u64>,
    batches: u64,
    seconds: f64,
}

impl ConvStats {
    fn count(&mut self, c: &Conversion, recent_ms: u64) {
        self.total += 1;
        let recent = c.occurred_ms >= recent_ms;
        self.all[1].add(c.kind);
        if recent {
            self.all[0].add(c.kind);
        }
        if let Some(w) = self.watched.get_mut(&c.code) {
            w[1].add(c.kind);
            if recent {
                w[0].add(c.kind);
            }
        }
        self.with_scan += u64::from(!c.scan_id.is_empty());
        self.unattributed += u64::from(c.code.is_empty());
        *self.rules.entry(c.rule.as_str()).or_default() += 1;
    }
}

/// Who a customer's conversions are credited to.
#[derive(Clone)]
struct Attribution {
    code: Option<usize>,
    scan: Option<Candidate>,
    visitor: String,
}

struct ConversionGen<'m> {
    model: &'m Model,
    candidates: Vec<Candidate>,
    out: Vec<Conversion>,
    customers: u64,
    events: u64,
}

impl ConversionGen<'_> {
    /// A scan not used yet by another customer (with replacement once all are).
    fn take_scan(&mut self, rng: &mut StdRng) -> Option<Candidate> {
        if self.candidates.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.candidates.len());
        if self.candidates.len() > 1000 {
            Some(self.candidates.swap_remove(i))
        } else {
            Some(self.candidates[i])
        }
    }

    /// `from + delay`, kept inside the window.
    fn after(&self, from: u64, delay: u64) -> u64 {
        let room = self.model.end_ms.saturating_sub(from + 1).max(1);
        from + delay % room
    }

    /// A delay: mostly minutes to hours, sometimes days (`u^3` of `max`).
    fn delay(rng: &mut StdRng, max_ms: u64) -> u64 {
        let u: f64 = rng.random();
        (u * u * u * max_ms as f64) as u64 + rng.random_range(5_000..60_000)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        rng: &mut StdRng,
        kind: ConversionKind,
        rule: Rule,
        occurred_ms: u64,
        attr: &Attribution,
        customer: u64,
        amount: i64,
        currency: &'static str,
        earnings: i64,
    ) {
        let n = self.events;
        self.events += 1;
        let m = self.model;
        self.out.push(Conversion {
            event_id: format!("evt-{n:09}"),
            kind,
            occurred_ms,
            received_ms: occurred_ms + rng.random_range(50..5_000),
            code: attr.code.map_or(String::new(), |c| m.codes[c].clone()),
            owner: attr.code.map_or(String::new(), |c| m.owners[c].clone()),
            channel: attr
                .scan
                .map_or("", |s| CHANNELS[usize::from(s.channel)].0)
                .to_string(),
            scan_id: attr
                .scan
                .map(|s| String::from_utf8_lossy(&s.scan_id).into_owned())
                .unwrap_or_default(),
            scan_ms: attr.scan.map_or(0, |s| s.ts_ms),
            visitor_id: attr.visitor.clone(),
            customer_id: format!("cust-{customer:08}"),
            amount,
            currency: currency.to_string(),
            rule,
            earnings,
            earnings_currency: attr.code.map_or("", |c| m.plan_currency[c]).to_string(),
            repeat: false,
            flagged: None,
        });
    }

    /// Commission of a purchase: 10 % in the plan's currency, capped at 50.00;
    /// money in another currency earns 0.
    fn commission(&self, attr: &Attribution, amount: i64, currency: &str) -> i64 {
        match attr.code {
            Some(c) if self.model.plan_currency[c] == currency => (amount / 10).min(5_000),
            _ => 0,
        }
    }

    fn purchase_money(rng: &mut StdRng) -> (i64, &'static str) {
        let amount = rng.random_range(5..200) * 100 + [0, 49, 90, 99][rng.random_range(0..4)];
        let currency = if rng.random_bool(0.7) { "EUR" } else { "USD" };
        (amount, currency)
    }

    /// A customer: a signup (credited by one of the rules), maybe purchases
    /// (inherited), maybe refunds; or a guest purchase by scan token.
    fn customer(&mut self, rng: &mut StdRng) {
        use ConversionKind::{Purchase, Refund, Signup};
        let customer = self.customers;
        self.customers += 1;
        let mut vid = String::new();
        if rng.random_bool(0.1) {
            if let Some(scan) = self.take_scan(rng) {
                visitor_id(&mut vid, scan.visitor);
                let attr = Attribution {
                    code: Some(scan.code as usize),
                    scan: Some(scan),
                    visitor: vid,
                };
                let at = self.after(scan.ts_ms, Self::delay(rng, 2 * DAY_MS));
                let (amount, currency) = Self::purchase_money(rng);
                let e = self.commission(&attr, amount, currency);
                self.push(
                    rng,
                    Purchase,
                    Rule::ScanId,
                    at,
                    &attr,
                    customer,
                    amount,
                    currency,
                    e,
                );
                return;
            }
        }
        let r: f64 = rng.random();
        let scan = if r < 0.75 { self.take_scan(rng) } else { None };
        let (attr, rule, signup_at) = match scan {
            Some(scan) => {
                visitor_id(&mut vid, scan.visitor);
                let rule = if r < 0.55 {
                    Rule::ScanId
                } else {
                    Rule::Visitor
                };
                let max = if rule == Rule::ScanId {
                    DAY_MS
                } else {
                    7 * DAY_MS
                };
                let at = self.after(scan.ts_ms, Self::delay(rng, max));
                let attr = Attribution {
                    code: Some(scan.code as usize),
                    scan: Some(scan),
                    visitor: vid,
                };
                (attr, rule, at)
            }
            None if r < 0.88 => {
                let code = *self.model.code_weights.pick(rng.random());
                let attr = Attribution {
                    code: Some(code),
                    scan: None,
                    visitor: String::new(),
                };
                (attr, Rule::CodeOnly, self.model.any_time(rng))
            }
            None => {
                let attr = Attribution {
                    code: None,
                    scan: None,
                    visitor: String::new(),
                };
                (attr, Rule::Unattributed, self.model.any_time(rng))
            }
        };
        let signup_earnings = if attr.code.is_some() { 200 } else { 0 };
        self.push(
            rng,
            Signup,
            rule,
            signup_at,
            &attr,
            customer,
            0,
            "",
            signup_earnings,
        );
        if !rng.random_bool(0.6) {
            return;
        }
        let later_rule = if attr.code.is_some() {
            Rule::Inherited
        } else {
            Rule::Unattributed
        };
        let mut at = signup_at;
        for _ in 0..if rng.random_bool(0.3) { 2 } else { 1 } {
            at = self.after(at, Self::delay(rng, 10 * DAY_MS));
            let (amount, currency) = Self::purchase_money(rng);
            let e = self.commission(&attr, amount, currency);
            self.push(
                rng, Purchase, later_rule, at, &attr, customer, amount, currency, e,
            );
            if rng.random_bool(0.12) {
                let refund_at = self.after(at, Self::delay(rng, 5 * DAY_MS));
                self.push(
                    rng, Refund, later_rule, refund_at, &attr, customer, amount, currency, -e,
                );
            }
        }
    }
}

// --- loading -----------------------------------------------------------------

/// The real writers: what the recorder's sink workers call.
#[derive(Clone)]
enum Writer {
    ClickHouse(Box<ClickHouseEvents>),
    Embedded(EmbeddedSink),
}

impl Writer {
    async fn write(&self, batch: Batch) -> Result<()> {
        match self {
            Writer::ClickHouse(events) => events.write(&batch).await?,
            Writer::Embedded(sink) => sink.write(&Arc::new(batch)).await?,
        }
        Ok(())
    }
}

/// Writes batches one at a time in a task of their own, so that the next
/// batch is generated meanwhile; at most one write in flight.
struct Pipeline {
    writer: Writer,
    pending: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl Pipeline {
    async fn send(&mut self, batch: Batch) -> Result<()> {
        self.flush().await?;
        let writer = self.writer.clone();
        self.pending = Some(tokio::spawn(async move { writer.write(batch).await }));
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if let Some(p) = self.pending.take() {
            p.await.map_err(|e| format!("write task: {e}"))??;
        }
        Ok(())
    }
}

/// Hot and median code by scans.
#[derive(Debug, Clone)]
struct Watched {
    hot: usize,
    median: usize,
}

fn watched(per_code: &[u64]) -> Watched {
    let mut by_scans: Vec<(u64, usize)> =
        per_code.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    by_scans.sort();
    Watched {
        hot: by_scans[by_scans.len() - 1].1,
        median: by_scans[(by_scans.len() - 1) / 2].1,
    }
}

struct Loaded {
    scans: ScanStats,
    conv: ConvStats,
    watched: Watched,
}

fn progress_line(what: &str, done: u64, total: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "    {what}: {done} / {total} ({:.0} s, {:.0}/s)",
        secs,
        done as f64 / secs.max(1e-9)
    )
}

async fn load(
    writer: Writer,
    model: &Model,
    args: &Args,
    rng: &mut StdRng,
    soft_deadline: Instant,
) -> Result<Loaded> {
    let mut pipe = Pipeline {
        writer,
        pending: None,
    };
    eprintln!(
        "==> loading {} scans over {} codes and {} days ({} per batch)",
        args.scans, args.codes, args.days, args.scans_per_batch
    );
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut gen = ScanGen::new(model, args);
    loop {
        let scans = gen.batch(rng, args.scans_per_batch);
        if scans.is_empty() {
            break;
        }
        pipe.send(Batch::new(scans, Vec::new())).await?;
        gen.stats.batches += 1;
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "{}",
                progress_line("scans", gen.stats.total, args.scans, started)
            );
        }
        if Instant::now() >= soft_deadline {
            pipe.flush().await?;
            return Err(format!(
                "--max-seconds passed while loading: {} of {} scans written in {:.0} s ({:.0} scans/s); \
                 use fewer --scans or a larger --max-seconds",
                gen.stats.total,
                args.scans,
                started.elapsed().as_secs_f64(),
                gen.stats.total as f64 / started.elapsed().as_secs_f64()
            )
            .into());
        }
    }
    pipe.flush().await?;
    let mut scans = std::mem::take(&mut gen.stats);
    scans.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "==> {} scans in {:.1} s ({:.0} scans/s, {} batches)",
        scans.total,
        scans.seconds,
        scans.total as f64 / scans.seconds,
        scans.batches
    );
    let watched = watched(&scans.per_code);

    eprintln!(
        "==> loading {} conversions ({} per batch)",
        args.conversions, args.conversions_per_batch
    );
    let started = Instant::now();
    let recent_ms = model.recent_ms();
    let mut conv = ConvStats::default();
    for c in [watched.hot, watched.median] {
        conv.watched
            .insert(model.codes[c].clone(), [Kinds::default(), Kinds::default()]);
    }
    let mut gen = ConversionGen {
        model,
        candidates: std::mem::take(&mut gen.candidates),
        out: Vec::new(),
        customers: 0,
        events: 0,
    };
    while conv.total < args.conversions {
        let want = (args.conversions - conv.total).min(args.conversions_per_batch as u64) as usize;
        while gen.out.len() < want {
            gen.customer(rng);
        }
        // A customer's later conversions that did not fit go into the next batch.
        let rest = gen.out.split_off(want);
        let batch = std::mem::replace(&mut gen.out, rest);
        for c in &batch {
            conv.count(c, recent_ms);
        }
        pipe.send(Batch::new(Vec::new(), batch)).await?;
        conv.batches += 1;
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "{}",
                progress_line("conversions", conv.total, args.conversions, started)
            );
        }
        if Instant::now() >= soft_deadline {
            pipe.flush().await?;
            return Err(format!(
                "--max-seconds passed while loading conversions: {} of {} written",
                conv.total, args.conversions
            )
            .into());
        }
    }
    pipe.flush().await?;
    conv.seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "==> {} conversions in {:.1} s ({:.0}/s)",
        conv.total,
        conv.seconds,
        conv.total as f64 / conv.seconds.max(1e-9)
    );
    Ok(Loaded {
        scans,
        conv,
        watched,
    })
}

/// Free bytes of the file system holding `path` (`df -Pk`).
fn free_bytes(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Refuses to start a load that would not fit on the disk (`bytes_per_scan`
/// is what earlier runs took, with room to spare).
fn check_disk(path: &Path, scans: u64, bytes_per_scan: u64) -> Result<String> {
    let need = scans * bytes_per_scan;
    let gb = |b: u64| b as f64 / 1e9;
    match free_bytes(path) {
        Some(free) if free < need => Err(format!(
            "{}: {:.1} GB free, the load needs about {:.1} GB; use fewer --scans",
            path.display(),
            gb(free),
            gb(need)
        )
        .into()),
        Some(free) => Ok(format!(
            "{}: {:.1} GB free before the load (about {:.1} GB needed)",
            path.display(),
            gb(free),
            gb(need)
        )),
        None => Ok(format!(
            "{}: free space unknown (df failed)",
            path.display()
        )),
    }
}

// --- measuring ---------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Summary,
    Timeseries(Interval, &'static str),
    Breakdown(Dimension),
    Funnel,
    Top(TopMetric),
}

impl Endpoint {
    fn all() -> Vec<Endpoint> {
        let mut v = vec![Endpoint::Summary];
        for tz in ["UTC", "Europe/Berlin"] {
            for i in [Interval::Day, Interval::Hour] {
                v.push(Endpoint::Timeseries(i, tz));
            }
        }
        v.extend(Dimension::ALL.iter().map(|d| Endpoint::Breakdown(*d)));
        v.push(Endpoint::Funnel);
        for m in [
            TopMetric::Scans,
            TopMetric::Conversions,
            TopMetric::Earnings,
        ] {
            v.push(Endpoint::Top(m));
        }
        v
    }

    fn name(self) -> String {
        match self {
            Endpoint::Summary => "summary".into(),
            Endpoint::Timeseries(i, tz) => format!("timeseries {} {tz}", i.as_str()),
            Endpoint::Breakdown(d) => format!("breakdown {}", d.as_str()),
            Endpoint::Funnel => "funnel".into(),
            Endpoint::Top(m) => format!("top {} (10)", m.as_str()),
        }
    }

    /// The API path and the parameters besides the range and the code.
    fn path(self) -> (&'static str, String) {
        match self {
            Endpoint::Summary => ("summary", String::new()),
            Endpoint::Timeseries(i, tz) => {
                ("timeseries", format!("&interval={}&tz={tz}", i.as_str()))
            }
            Endpoint::Breakdown(d) => ("breakdown", format!("&by={}", d.as_str())),
            Endpoint::Funnel => ("funnel", String::new()),
            Endpoint::Top(m) => ("top", format!("&metric={}&limit=10", m.as_str())),
        }
    }
}

/// Whose numbers: the hot code, the median code, or all codes.
#[derive(Debug, Clone)]
struct Scope {
    label: String,
    code: Option<String>,
}

/// A time range of the queries.
#[derive(Debug, Clone)]
struct Span {
    label: String,
    from_ms: u64,
    to_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    scope: usize,
    span: usize,
    endpoint: Endpoint,
}

/// What a summary said (the numbers the check compares).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SummaryNums {
    scans: u64,
    human: u64,
    bot: u64,
    unique: u64,
    signups: u64,
    purchases: u64,
    refunds: u64,
}

/// The answer of one call: its size (rows, or scans for summary and funnel)
/// and, for a summary, its numbers.
#[derive(Debug, Clone, Copy, Default)]
struct Answer {
    size: u64,
    summary: Option<SummaryNums>,
}

/// Who answers: the query layer in process (ClickHouse), or the gateway over HTTP.
enum Runner {
    Direct { backend: Backend, now_ms: u64 },
    Http { client: Client },
}

impl Runner {
    fn query(&self, scopes: &[Scope], spans: &[Span], case: Case, now_ms: u64) -> Query {
        let span = &spans[case.span];
        Query {
            from_ms: span.from_ms,
            to_ms: span.to_ms,
            tz: match case.endpoint {
                Endpoint::Timeseries(_, tz) => tz.into(),
                _ => "UTC".into(),
            },
            codes: scopes[case.scope].code.clone().map(|c| vec![c]),
            owner: None,
            now_ms,
            hold_ms: HOLD_MS,
        }
    }

    async fn call(&self, scopes: &[Scope], spans: &[Span], case: Case) -> Result<Answer, String> {
        match self {
            Runner::Direct { backend, now_ms } => {
                let q = self.query(scopes, spans, case, *now_ms);
                direct(backend, &q, case.endpoint)
                    .await
                    .map_err(|e| e.to_string())
            }
            Runner::Http { client } => {
                let path = http_path(scopes, spans, case);
                http_call(client, path, case.endpoint).await
            }
        }
    }
}

async fn direct(b: &Backend, q: &Query, ep: Endpoint) -> Result<Answer> {
    Ok(match ep {
        Endpoint::Summary => {
            let s = b.summary(q).await?;
            Answer {
                size: s.scans,
                summary: Some(SummaryNums {
                    scans: s.scans,
                    human: s.human_scans,
                    bot: s.bot_scans,
                    unique: s.unique_scanners,
                    signups: s.signups,
                    purchases: s.purchases,
                    refunds: s.refunds,
                }),
            }
        }
        Endpoint::Timeseries(i, _) => Answer {
            size: b.timeseries(q, i).await?.len() as u64,
            summary: None,
        },
        Endpoint::Breakdown(d) => Answer {
            size: b.breakdown(q, d).await?.len() as u64,
            summary: None,
        },
        Endpoint::Funnel => Answer {
            size: b.funnel(q).await?.scans,
            summary: None,
        },
        Endpoint::Top(m) => Answer {
            size: b.top(q, m, 10).await?.len() as u64,
            summary: None,
        },
    })
}

/// `YYYY-MM-DDT00:00:00Z` of a time at the start of a UTC day.
fn rfc3339_day(ms: u64) -> String {
    debug_assert_eq!(ms % DAY_MS, 0);
    format!("{}T00:00:00Z", codelink_analytics::event::day_of(ms))
}

fn http_path(scopes: &[Scope], spans: &[Span], case: Case) -> String {
    let span = &spans[case.span];
    let (report, extra) = case.endpoint.path();
    let code = scopes[case.scope]
        .code
        .as_ref()
        .map_or(String::new(), |c| format!("&code={c}"));
    format!(
        "/api/v1/analytics/{report}?from={}&to={}{code}{extra}",
        rfc3339_day(span.from_ms),
        rfc3339_day(span.to_ms)
    )
}

/// One GET; the request runs in a task of its own so that a failed connection
/// (the test client panics) is an error here, not the end of the bench.
async fn http_call(client: &Client, path: String, ep: Endpoint) -> Result<Answer, String> {
    let c = client.clone();
    let task = tokio::spawn(async move {
        let r = c.get(&path).await;
        let status = r.status.as_u16();
        if status != 200 {
            let mut text = r.text();
            text.truncate(300);
            return Err(format!("HTTP {status}: {text}"));
        }
        let v = r.json();
        let len = |k: &str| v[k].as_array().map_or(0, |a| a.len() as u64);
        Ok(match ep {
            Endpoint::Summary => {
                let n = |k: &str| v["summary"][k].as_u64().unwrap_or(0);
                let s = SummaryNums {
                    scans: n("scans"),
                    human: n("human_scans"),
                    bot: n("bot_scans"),
                    unique: n("unique_scanners"),
                    signups: n("signups"),
                    purchases: n("purchases"),
                    refunds: n("refunds"),
                };
                Answer {
                    size: s.scans,
                    summary: Some(s),
                }
            }
            Endpoint::Timeseries(..) => Answer {
                size: len("buckets"),
                summary: None,
            },
            Endpoint::Breakdown(_) | Endpoint::Top(_) => Answer {
                size: len("rows"),
                summary: None,
            },
            Endpoint::Funnel => Answer {
                size: v["funnel"]["scans"].as_u64().unwrap_or(0),
                summary: None,
            },
        })
    });
    task.await.map_err(|e| format!("request failed: {e}"))?
}

/// Timed runs of one case, ms; empty when skipped or failed.
#[derive(Debug, Clone, Default)]
struct Timing {
    warmup_ms: f64,
    ms: Vec<f64>,
    answer: Answer,
    error: Option<String>,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn p50(&self) -> Option<f64> {
        median(&self.sorted())
    }

    fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// `p50 | max` cells of a table.
    fn cells(&self, runs: usize) -> String {
        if let Some(e) = &self.error {
            let mut e = e.replace('|', "/").replace('\n', " ");
            e.truncate(80);
            return format!("error: {e} | ");
        }
        let (Some(p50), Some(max)) = (self.p50(), self.max()) else {
            return "skipped | ".into();
        };
        let n = if self.ms.len() < runs {
            format!(" (n={})", self.ms.len())
        } else {
            String::new()
        };
        format!("{}{n} | {}", fmt_ms(p50), fmt_ms(max))
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn all_cases(scopes: &[Scope], spans: &[Span]) -> Vec<Case> {
    let mut out = Vec::new();
    for scope in 0..scopes.len() {
        for span in 0..spans.len() {
            for endpoint in Endpoint::all() {
                out.push(Case {
                    scope,
                    span,
                    endpoint,
                });
            }
        }
    }
    out
}

fn case_label(scopes: &[Scope], spans: &[Span], c: &Case) -> String {
    format!(
        "{} / {} / {}",
        scopes[c.scope].label,
        spans[c.span].label,
        c.endpoint.name()
    )
}

/// Every case: one warm-up, then up to `--runs` timed runs.
async fn measure(
    runner: &Runner,
    scopes: &[Scope],
    spans: &[Span],
    args: &Args,
    soft_deadline: Instant,
    phase: &str,
) -> Vec<Timing> {
    let mut all = Vec::new();
    for case in all_cases(scopes, spans) {
        let label = case_label(scopes, spans, &case);
        if Instant::now() >= soft_deadline {
            eprintln!("    {phase} / {label}: skipped (--max-seconds)");
            all.push(Timing::default());
            continue;
        }
        let warm = Instant::now();
        let mut t = Timing::default();
        match runner.call(scopes, spans, case).await {
            Ok(a) => t.answer = a,
            Err(e) => {
                eprintln!("    {phase} / {label}: error {e}");
                t.error = Some(e);
                all.push(t);
                continue;
            }
        }
        t.warmup_ms = warm.elapsed().as_secs_f64() * 1000.0;
        let case_start = Instant::now();
        for r in 0..args.runs {
            if r >= 3 && case_start.elapsed() >= args.case_budget {
                break;
            }
            let started = Instant::now();
            match runner.call(scopes, spans, case).await {
                Ok(a) => t.answer = a,
                Err(e) => {
                    eprintln!("    {phase} / {label}: error {e}");
                    t.error = Some(e);
                    break;
                }
            }
            t.ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        eprintln!(
            "    {phase} / {label}: p50 {} ms, max {} ms ({} runs, warm-up {} ms, answer {})",
            t.p50().map_or("-".into(), fmt_ms),
            t.max().map_or("-".into(), fmt_ms),
            t.ms.len(),
            fmt_ms(t.warmup_ms),
            t.answer.size
        );
        all.push(t);
    }
    all
}

/// The figures of one pass over every case.
struct PassSummary {
    measured: usize,
    skipped: usize,
    errors: usize,
    /// Median of the cases' p50s, and of every timed run pooled.
    p50_of_p50s: Option<f64>,
    p50_of_runs: Option<f64>,
    worst_p50: Option<(f64, String)>,
    worst_max: Option<(f64, String)>,
    over_p50: Vec<String>,
    over_max: Vec<String>,
}

fn summarize(scopes: &[Scope], spans: &[Span], timings: &[Timing]) -> PassSummary {
    let cases = all_cases(scopes, spans);
    let mut s = PassSummary {
        measured: 0,
        skipped: 0,
        errors: 0,
        p50_of_p50s: None,
        p50_of_runs: None,
        worst_p50: None,
        worst_max: None,
        over_p50: Vec::new(),
        over_max: Vec::new(),
    };
    let mut p50s = Vec::new();
    let mut runs = Vec::new();
    for (case, t) in cases.iter().zip(timings) {
        if t.error.is_some() {
            s.errors += 1;
            continue;
        }
        let (Some(p50), Some(max)) = (t.p50(), t.max()) else {
            s.skipped += 1;
            continue;
        };
        s.measured += 1;
        let label = case_label(scopes, spans, case);
        p50s.push(p50);
        runs.extend_from_slice(&t.ms);
        if s.worst_p50.as_ref().is_none_or(|(w, _)| p50 > *w) {
            s.worst_p50 = Some((p50, label.clone()));
        }
        if s.worst_max.as_ref().is_none_or(|(w, _)| max > *w) {
            s.worst_max = Some((max, label.clone()));
        }
        if p50 >= P50_TARGET_MS {
            s.over_p50.push(format!("{label} ({} ms)", fmt_ms(p50)));
        }
        if max >= MAX_TARGET_MS {
            s.over_max.push(format!("{label} ({} ms)", fmt_ms(max)));
        }
    }
    p50s.sort_by(f64::total_cmp);
    runs.sort_by(f64::total_cmp);
    s.p50_of_p50s = median(&p50s);
    s.p50_of_runs = median(&runs);
    s
}

/// What each scope's summary must say, per span: scans, and for all codes the
/// conversions too (per watched code those are checked as well).
fn expected(loaded: &Loaded, model: &Model, scope: &Scope, span: usize) -> (u64, Option<Kinds>) {
    let s = &loaded.scans;
    match &scope.code {
        None => (
            if span == 0 { s.recent } else { s.total },
            Some(loaded.conv.all[span].clone()),
        ),
        Some(code) => {
            let i = model.codes.iter().position(|c| c == code).unwrap_or(0);
            let scans = if span == 0 {
                s.per_code_recent[i]
            } else {
                s.per_code[i]
            };
            (
                scans,
                loaded.conv.watched.get(code).map(|k| k[span].clone()),
            )
        }
    }
}

/// One line per scope and span with the summary's numbers, and whether they
/// are what was written. Returns the lines and whether all passed.
fn check_answers(
    loaded: &Loaded,
    model: &Model,
    scopes: &[Scope],
    spans: &[Span],
    timings: &[Timing],
) -> (Vec<String>, bool) {
    let cases = all_cases(scopes, spans);
    let mut lines = Vec::new();
    let mut ok = true;
    for (case, t) in cases.iter().zip(timings) {
        if !matches!(case.endpoint, Endpoint::Summary) {
            continue;
        }
        let scope = &scopes[case.scope];
        let span = &spans[case.span];
        let Some(s) = t.answer.summary else {
            lines.push(format!(
                "- {} / {}: **not checked** (no answer)",
                scope.label, span.label
            ));
            ok = false;
            continue;
        };
        let (want_scans, want_conv) = expected(loaded, model, scope, case.span);
        let mut problems = Vec::new();
        if s.scans != want_scans {
            problems.push(format!("scans {} ≠ {want_scans} written", s.scans));
        }
        if s.scans == 0 {
            problems.push("no scans".into());
        }
        if s.human + s.bot != s.scans {
            problems.push("human + bot ≠ scans".into());
        }
        if let Some(k) = &want_conv {
            let got = (s.signups, s.purchases, s.refunds);
            let want = (k.signups, k.purchases, k.refunds);
            if got != want {
                problems.push(format!(
                    "signups/purchases/refunds {got:?} ≠ {want:?} written"
                ));
            }
        }
        let verdict = if problems.is_empty() {
            "ok".to_string()
        } else {
            ok = false;
            format!("**MISMATCH**: {}", problems.join("; "))
        };
        lines.push(format!(
            "- {} / {}: scans {} (human {}, bot {}), unique scanners {}, signups {}, purchases {}, \
             refunds {} — {verdict}",
            scope.label,
            span.label,
            s.scans,
            s.human,
            s.bot,
            s.unique,
            s.signups,
            s.purchases,
            s.refunds
        ));
    }
    (lines, ok)
}

// --- the gateway (embedded) ----------------------------------------------------

/// A directory removed when dropped (the bench's own data dir).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `codelink serve` on the loaded data dir, under `timeout` (so that it stops
/// by itself should the bench be killed), stopped when dropped.
struct Gateway {
    /// The `timeout` process.
    wrapper: std::process::Child,
    /// The gateway itself (whose RSS is read).
    pid: u32,
    addr: SocketAddr,
    key: String,
    log: PathBuf,
}

impl Gateway {
    fn start(bin: &Path, data_dir: &Path, log: &Path, limit_secs: u64) -> Result<Self> {
        let port = codelink_testkit::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let key = format!("bench-{:032x}", rand::random::<u128>());
        let log_file = std::fs::File::create(log)?;
        let wrapper = std::process::Command::new("timeout")
            .args(["-k", "10", "-s", "TERM", &limit_secs.to_string()])
            .arg(bin)
            .arg("serve")
            .args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-key", &key])
            .args(["--max-buckets", &GATEWAY_MAX_BUCKETS.to_string()])
            .args(["--hold-days", &HOLD_DAYS.to_string()])
            // The per-IP API limiter (100/s) would answer 429 to the memory
            // check's clients, which all come from 127.0.0.1.
            .args([
                "--api-rate-per-ip",
                "1000000",
                "--api-burst-per-ip",
                "1000000",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("starting timeout {}: {e}", bin.display()))?;
        let mut gw = Self {
            pid: 0,
            wrapper,
            addr,
            key,
            log: log.to_path_buf(),
        };
        let wrapper_pid = gw.wrapper.id();
        let found = Instant::now();
        while gw.pid == 0 {
            if let Some(pid) = child_of(wrapper_pid) {
                gw.pid = pid;
            } else if found.elapsed() > Duration::from_secs(10) {
                return Err("the gateway process did not appear under timeout".into());
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(gw)
    }

    fn client(&self) -> Client {
        Client::new(self.addr).with_bearer(&self.key)
    }

    fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.pid)
    }

    fn exited(&mut self) -> bool {
        !matches!(self.wrapper.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `/readyz` answers 200.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.exited() {
                return Err(
                    format!("the gateway exited during start-up:\n{}", self.log_tail()).into(),
                );
            }
            // Connect first: the test client panics on a refused connection.
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                let c = self.client();
                let r = tokio::spawn(async move { c.get("/readyz").await.status.as_u16() }).await;
                if matches!(r, Ok(200)) {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "the gateway was not ready after {} s:\n{}",
                    timeout.as_secs(),
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        if self.exited() {
            return;
        }
        for pid in [self.pid, self.wrapper.id()] {
            if pid != 0 {
                signal(pid, "-TERM");
            }
        }
        let started = Instant::now();
        while !self.exited() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !self.exited() {
            if self.pid != 0 {
                signal(self.pid, "-KILL");
            }
            let _ = self.wrapper.kill();
            let _ = self.wrapper.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

/// A child process of `parent` (from `/proc/*/stat`).
fn child_of(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// `VmRSS` of a process, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Samples a process's RSS every 50 ms until stopped; returns (max kB, samples).
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut max, mut n) = (0, 0);
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(kb) = rss_kb(pid) {
                    max = max.max(kb);
                    n += 1;
                }
            }
            (max, n)
        });
        Self { stop, task }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or((0, 0))
    }
}

/// What the memory check saw.
#[derive(Debug, Default)]
struct MemoryCheck {
    clients: usize,
    seconds: f64,
    rss_startup_kb: u64,
    rss_after_creates_kb: u64,
    rss_sequential_max_kb: u64,
    rss_before_kb: u64,
    rss_max_kb: u64,
    rss_after_kb: u64,
    samples: u64,
    answered: u64,
    statuses: BTreeMap<u16, u64>,
    failed: u64,
    latencies_ms: Vec<f64>,
    first_errors: Vec<String>,
}

/// `clients` loops over `paths` (each from its own offset) for `secs`
/// seconds while the gateway's RSS is sampled every 50 ms.
async fn memory_check(gw: &Gateway, paths: Vec<String>, clients: usize, secs: u64) -> MemoryCheck {
    let mut mc = MemoryCheck {
        clients,
        rss_before_kb: gw.rss_kb().unwrap_or(0),
        ..MemoryCheck::default()
    };
    let paths = Arc::new(paths);
    let answered = Arc::new(AtomicU64::new(0));
    let sampler = RssSampler::start(gw.pid);
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for k in 0..clients {
        let paths = paths.clone();
        let answered = answered.clone();
        let client = gw.client();
        tasks.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut failed = 0u64;
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            let mut i = k * paths.len() / clients.max(1);
            while Instant::now() < end {
                let path = paths[i % paths.len()].clone();
                i += 1;
                let c = client.clone();
                let t = Instant::now();
                let r = tokio::spawn(async move {
                    let r = c.get(&path).await;
                    let status = r.status.as_u16();
                    let body = if status == 200 {
                        String::new()
                    } else {
                        r.text()
                    };
                    (status, body)
                })
                .await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                match r {
                    Ok((status, body)) => {
                        *statuses.entry(status).or_default() += 1;
                        answered.fetch_add(1, Ordering::Relaxed);
                        if status != 200 && errors.len() < 3 {
                            let mut body = body;
                            body.truncate(200);
                            errors.push(format!("HTTP {status}: {body}"));
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        if errors.len() < 3 {
                            errors.push(format!("request failed: {e}"));
                        }
                    }
                }
            }
            (statuses, failed, lat, errors)
        }));
    }
    for t in tasks {
        if let Ok((statuses, failed, lat, errors)) = t.await {
            for (s, n) in statuses {
                *mc.statuses.entry(s).or_default() += n;
            }
            mc.failed += failed;
            mc.latencies_ms.extend(lat);
            for e in errors {
                if mc.first_errors.len() < 5 {
                    mc.first_errors.push(e);
                }
            }
        }
    }
    mc.seconds = started.elapsed().as_secs_f64();
    let (max, samples) = sampler.finish().await;
    mc.rss_max_kb = max.max(mc.rss_before_kb);
    mc.samples = samples;
    mc.answered = answered.load(Ordering::Relaxed);
    mc.rss_after_kb = gw.rss_kb().unwrap_or(0);
    mc.latencies_ms.sort_by(f64::total_cmp);
    mc
}

/// Creates a code through the admin API (the analytics API answers only for
/// codes the gateway knows).
async fn create_code(gw: &Gateway, code: &str, owner: &str) -> Result<()> {
    let c = gw.client();
    let body = format!(
        "{{\"code\": \"{code}\", \"destination\": \"https://shop.example/\", \"owner\": \"{owner}\"}}"
    );
    let r = tokio::spawn(async move {
        let r = c
            .send(
                hyper::Method::POST,
                "/api/v1/codes",
                &[("content-type", "application/json")],
                bytes::Bytes::from(body),
            )
            .await;
        (r.status.as_u16(), r.text())
    })
    .await
    .map_err(|e| format!("POST /api/v1/codes: {e}"))?;
    match r {
        (200 | 201 | 409, _) => Ok(()),
        (status, text) => Err(format!("POST /api/v1/codes {code}: HTTP {status}: {text}").into()),
    }
}

// --- the run -----------------------------------------------------------------

fn scopes_and_spans(model: &Model, loaded: &Loaded, args: &Args) -> (Vec<Scope>, Vec<Span>) {
    let s = &loaded.scans;
    let (hot, median) = (loaded.watched.hot, loaded.watched.median);
    let scopes = vec![
        Scope {
            label: format!("hot code {} ({} scans)", model.codes[hot], s.per_code[hot]),
            code: Some(model.codes[hot].clone()),
        },
        Scope {
            label: format!(
                "median code {} ({} scans)",
                model.codes[median], s.per_code[median]
            ),
            code: Some(model.codes[median].clone()),
        },
        Scope {
            label: "all codes".into(),
            code: None,
        },
    ];
    let spans = vec![
        Span {
            label: format!("last {} d", (model.end_ms - model.recent_ms()) / DAY_MS),
            from_ms: model.recent_ms(),
            to_ms: model.end_ms,
        },
        Span {
            label: format!("{} d", args.days),
            from_ms: model.start_ms,
            to_ms: model.end_ms,
        },
    ];
    (scopes, spans)
}

/// What the report is made of.
struct ReportInput<'a> {
    args: &'a Args,
    model: &'a Model,
    loaded: &'a Loaded,
    scopes: Vec<Scope>,
    spans: Vec<Span>,
    /// (title, timings in `all_cases` order)
    passes: Vec<(String, Vec<Timing>)>,
    how: String,
    check_lines: Vec<String>,
    check_ok: bool,
    load_notes: Vec<String>,
    setup_notes: Vec<String>,
    memory: Option<MemoryCheck>,
    wall: Instant,
}

async fn run(
    args: Args,
    url: String,
    server_dir: Option<PathBuf>,
    soft_deadline: Instant,
) -> Result<bool> {
    let input_ok = match args.backend {
        BackendKind::ClickHouse => run_clickhouse(&args, url, server_dir, soft_deadline).await?,
        BackendKind::Embedded => run_embedded(&args, soft_deadline).await?,
    };
    Ok(input_ok)
}

async fn scalar_u64(client: &clickhouse::Client, sql: &str) -> Result<u64> {
    Ok(client.query(sql).fetch_one::<u64>().await?)
}

/// Active parts, rows and bytes on disk of each table of the database.
async fn table_sizes(
    client: &clickhouse::Client,
    db: &str,
) -> Result<Vec<(String, u64, u64, u64)>> {
    Ok(client
        .query(&format!(
            "SELECT table, count(), sum(rows), sum(bytes_on_disk) FROM system.parts \
             WHERE database = '{db}' AND active GROUP BY table ORDER BY table"
        ))
        .fetch_all::<(String, u64, u64, u64)>()
        .await?)
}

fn sizes_line(sizes: &[(String, u64, u64, u64)]) -> String {
    sizes
        .iter()
        .map(|(t, parts, rows, bytes)| {
            format!(
                "`{t}` {parts} parts, {rows} rows, {:.2} GB",
                *bytes as f64 / 1e9
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

const ROLLUP_TABLES: [&str; 3] = ["scan_rollup", "conversion_rollup", "code_totals"];

async fn run_clickhouse(
    args: &Args,
    url: String,
    server_dir: Option<PathBuf>,
    soft_deadline: Instant,
) -> Result<bool> {
    let wall = Instant::now();
    let db = args.database.clone();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: url.clone(),
        database: db.clone(),
        user: None,
        password: None,
        cluster: None,
    });
    let admin = events.client().clone().with_database("default");
    let version = admin
        .query("SELECT version()")
        .fetch_one::<String>()
        .await?;
    eprintln!("==> clickhouse-server {version} at {url}; database {db} (dropped and recreated)");
    admin
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await?;
    events.migrate().await?;
    let client = events.client().clone();

    let disk = match &server_dir {
        Some(dir) => check_disk(dir, args.scans, CLICKHOUSE_BYTES_PER_SCAN)?,
        None => "server given with --clickhouse-url: its disk was not checked".into(),
    };
    eprintln!("==> disk: {disk}");

    let model = Model::new(args)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let loaded = load(
        Writer::ClickHouse(Box::new(events.clone())),
        &model,
        args,
        &mut rng,
        soft_deadline,
    )
    .await?;

    let scan_rows = scalar_u64(&client, "SELECT count() FROM scans").await?;
    let conv_rows = scalar_u64(&client, "SELECT count() FROM conversions").await?;
    let sizes_after_load = table_sizes(&client, &db).await?;
    eprintln!("==> after the load: {}", sizes_line(&sizes_after_load));

    let (scopes, spans) = scopes_and_spans(&model, &loaded, args);
    let runner = Runner::Direct {
        backend: Backend::ClickHouse(Box::new(events.clone())),
        now_ms: model.end_ms,
    };
    eprintln!("==> measuring right after the load");
    let after_load = measure(&runner, &scopes, &spans, args, soft_deadline, "after load").await;
    let mut passes = vec![("right after the load".to_string(), after_load)];
    let mut load_notes = Vec::new();
    if args.optimize {
        if Instant::now() < soft_deadline {
            eprintln!("==> OPTIMIZE TABLE … FINAL of the rollup tables");
            let mut took = Vec::new();
            for t in ROLLUP_TABLES {
                let started = Instant::now();
                client
                    .query(&format!("OPTIMIZE TABLE {db}.{t} FINAL"))
                    .execute()
                    .await?;
                took.push(format!("{t} {:.1} s", started.elapsed().as_secs_f64()));
            }
            let sizes = table_sizes(&client, &db).await?;
            load_notes.push(format!(
                "`OPTIMIZE TABLE … FINAL`: {}; then {}",
                took.join(", "),
                sizes_line(&sizes)
            ));
            eprintln!("==> measuring after OPTIMIZE");
            let t = measure(
                &runner,
                &scopes,
                &spans,
                args,
                soft_deadline,
                "after optimize",
            )
            .await;
            passes.push(("after OPTIMIZE FINAL of the rollups".to_string(), t));
        } else {
            load_notes.push("`--optimize`: skipped (--max-seconds)".into());
        }
    }
    let (check_lines, mut check_ok) = check_answers(&loaded, &model, &scopes, &spans, &passes[0].1);
    let mut check_lines = check_lines;
    let counts_ok = scan_rows == loaded.scans.total && conv_rows == loaded.conv.total;
    check_ok &= counts_ok;
    check_lines.insert(
        0,
        format!(
            "- rows: `scans` {scan_rows}, `conversions` {conv_rows} (written {} and {}) — {}",
            loaded.scans.total,
            loaded.conv.total,
            if counts_ok { "ok" } else { "**MISMATCH**" }
        ),
    );
    for line in &check_lines {
        eprintln!("{line}");
    }
    load_notes.insert(
        0,
        format!("after the load: {}", sizes_line(&sizes_after_load)),
    );
    let setup_notes = vec![
        format!(
            "clickhouse-server {version} ({}); tables from `ClickHouseEvents::migrate`",
            if args.clickhouse_url.is_some() {
                "given with --clickhouse-url"
            } else {
                "private, testkit's minimal config, default settings"
            }
        ),
        format!("disk: {disk}"),
    ];
    let input = ReportInput {
        args,
        model: &model,
        loaded: &loaded,
        scopes,
        spans,
        passes,
        how: format!(
            "queried in process through `codelink_analytics::query::Backend::ClickHouse` (the code \
             behind `/api/v1/analytics/*`), `now` = end of the window, hold {HOLD_DAYS} days; no \
             OPTIMIZE before the first pass"
        ),
        check_lines,
        check_ok,
        load_notes,
        setup_notes,
        memory: None,
        wall,
    };
    write_report(&input)?;
    linger(args, &format!("clickhouse-server at {url}, database {db}")).await;
    Ok(check_ok)
}

/// Bytes on disk per scan, with room (ClickHouse: raw rows and rollup cells).
const CLICKHOUSE_BYTES_PER_SCAN: u64 = 400;
/// Bytes on disk per scan, with room (embedded: scan chunks and rollup blocks).
const EMBEDDED_BYTES_PER_SCAN: u64 = 3000;

/// Keeps the servers up for `--linger-secs` (to look at them by hand).
async fn linger(args: &Args, what: &str) {
    if args.linger_secs > 0 {
        eprintln!("==> lingering {} s: {what}", args.linger_secs);
        tokio::time::sleep(Duration::from_secs(args.linger_secs)).await;
    }
}

async fn run_embedded(args: &Args, soft_deadline: Instant) -> Result<bool> {
    let wall = Instant::now();
    let bin = match &args.gateway_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory of the bench binary")?
            .join("codelink"),
    };
    if !bin.is_file() {
        return Err(format!(
            "gateway binary {} not found (build it: cargo build --release -p gateway, or pass --gateway-bin)",
            bin.display()
        )
        .into());
    }
    // The data dir: given (must not hold a store yet), or a temp dir removed at the end.
    let (dir, _temp) = match &args.data_dir {
        Some(d) => {
            if d.join("scans.redb").exists() {
                return Err(format!("{} already holds scans.redb", d.display()).into());
            }
            std::fs::create_dir_all(d)?;
            (d.clone(), None)
        }
        None => {
            let d = std::env::temp_dir()
                .join(format!("codelink-analytics-bench-{}", std::process::id()));
            std::fs::create_dir_all(&d)?;
            (d.clone(), Some(TempDir(d)))
        }
    };
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let disk = check_disk(&dir, args.scans, EMBEDDED_BYTES_PER_SCAN)?;
    eprintln!("==> disk: {disk}");

    let model = Model::new(args)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let sink = EmbeddedSink::open(&data_dir, true, true)?;
    let loaded = load(
        Writer::Embedded(sink),
        &model,
        args,
        &mut rng,
        soft_deadline,
    )
    .await?;
    // Every clone of the sink is gone with the writer: the redb file is closed.
    let redb_bytes = std::fs::metadata(data_dir.join("scans.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!("==> scans.redb: {:.2} GB", redb_bytes as f64 / 1e9);

    // The real gateway on the data dir.
    let limit = soft_deadline
        .saturating_duration_since(Instant::now())
        .as_secs()
        + 120
        + args.linger_secs;
    let mut gw = Gateway::start(&bin, &data_dir, &dir.join("gateway.log"), limit)?;
    let started = Instant::now();
    gw.wait_ready(Duration::from_secs(120)).await?;
    let ready_secs = started.elapsed().as_secs_f64();
    let rss_startup = gw.rss_kb().unwrap_or(0);
    eprintln!(
        "==> gateway pid {} on {} ready in {ready_secs:.1} s; RSS {:.0} MB",
        gw.pid,
        gw.addr,
        mb(rss_startup)
    );
    let (hot, median) = (loaded.watched.hot, loaded.watched.median);
    for c in [hot, median] {
        create_code(&gw, &model.codes[c], &model.owners[c]).await?;
    }
    let rss_after_creates = gw.rss_kb().unwrap_or(0);

    let (scopes, spans) = scopes_and_spans(&model, &loaded, args);
    let runner = Runner::Http {
        client: gw.client(),
    };
    // The analytics API answers 503 while a migration runs (none is expected).
    let probe = Case {
        scope: 2,
        span: 0,
        endpoint: Endpoint::Summary,
    };
    let started = Instant::now();
    loop {
        match runner.call(&scopes, &spans, probe).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(120) => {
                eprintln!("    analytics not answering yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("analytics API: {e}").into()),
        }
    }

    eprintln!("==> measuring over HTTP (one client)");
    let sampler = RssSampler::start(gw.pid);
    let timings = measure(&runner, &scopes, &spans, args, soft_deadline, "http").await;
    let (rss_sequential_max, _) = sampler.finish().await;

    let mut memory = None;
    if Instant::now() < soft_deadline {
        eprintln!(
            "==> memory check: {} clients for {} s",
            args.memory_clients, args.memory_secs
        );
        let paths = all_cases(&scopes, &spans)
            .iter()
            .map(|c| http_path(&scopes, &spans, *c))
            .collect();
        let mut mc = memory_check(&gw, paths, args.memory_clients, args.memory_secs).await;
        mc.rss_startup_kb = rss_startup;
        mc.rss_after_creates_kb = rss_after_creates;
        mc.rss_sequential_max_kb = rss_sequential_max;
        eprintln!(
            "    RSS before {:.0} MB, max {:.0} MB, after {:.0} MB; {} answers {:?}, {} failed",
            mb(mc.rss_before_kb),
            mb(mc.rss_max_kb),
            mb(mc.rss_after_kb),
            mc.answered,
            mc.statuses,
            mc.failed
        );
        memory = Some(mc);
    } else {
        eprintln!("==> memory check skipped (--max-seconds)");
    }
    let (check_lines, check_ok) = check_answers(&loaded, &model, &scopes, &spans, &timings);
    for line in &check_lines {
        eprintln!("{line}");
    }
    if gw.exited() {
        eprintln!(
            "analytics-bench: the gateway exited early:\n{}",
            gw.log_tail()
        );
    }

    let input = ReportInput {
        args,
        model: &model,
        loaded: &loaded,
        scopes,
        spans,
        passes: vec![("through the gateway, right after the load".into(), timings)],
        how: format!(
            "asked over HTTP from the real gateway (`codelink serve` on the loaded data dir, \
             `--max-buckets {GATEWAY_MAX_BUCKETS} --hold-days {HOLD_DAYS}`, default query timeout \
             and concurrency limit; per-IP API limiter out of the way), one request per fresh \
             connection, times from the client (connect, query, JSON)"
        ),
        check_lines,
        check_ok,
        load_notes: vec![format!(
            "`scans.redb`: {:.2} GB; gateway ready {ready_secs:.1} s after start",
            redb_bytes as f64 / 1e9
        )],
        setup_notes: vec![
            format!("gateway: {}", bin.display()),
            format!("disk: {disk}"),
        ],
        memory,
        wall,
    };
    write_report(&input)?;
    linger(
        args,
        &format!("gateway at http://{} (admin key {})", gw.addr, gw.key),
    )
    .await;
    drop(gw);
    Ok(check_ok)
}

// --- the report --------------------------------------------------------------

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**NOT met**"
    }
}

fn write_report(r: &ReportInput<'_>) -> Result<()> {
    let md = render(r);
    println!("{md}");
    if let Some(out) = &r.args.out {
        std::fs::write(out, &md).map_err(|e| format!("writing {out}: {e}"))?;
        eprintln!("==> report written to {out}");
    }
    Ok(())
}

fn render(r: &ReportInput<'_>) -> String {
    let args = r.args;
    let s = &r.loaded.scans;
    let c = &r.loaded.conv;
    let mut md = String::new();
    let w = &mut md;
    let backend = match args.backend {
        BackendKind::ClickHouse => "ClickHouse",
        BackendKind::Embedded => "embedded (redb) through the gateway",
    };
    let _ = writeln!(w, "# codelink analytics on rollups: {backend}\n");
    let _ = writeln!(
        w,
        "{} scans and {} conversions over {} codes and {} days, written through the project's \
         writers in batches, then every endpoint for 3 scopes × 2 ranges: {}. Each case: 1 warm-up, \
         then {} timed runs (fewer, `n=`, once a case has taken {} s); ms.\n",
        s.total,
        c.total,
        args.codes,
        args.days,
        r.how,
        args.runs,
        args.case_budget.as_secs()
    );

    // Targets and summary.
    let sums: Vec<(String, PassSummary)> = r
        .passes
        .iter()
        .map(|(title, t)| (title.clone(), summarize(&r.scopes, &r.spans, t)))
        .collect();
    let n_cases = all_cases(&r.scopes, &r.spans).len();
    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(
        w,
        "| target | {} |",
        r.passes
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(w, "|---|{}", "---|".repeat(r.passes.len()));
    let complete = |p: &PassSummary| p.measured == n_cases;
    let row = |label: &str, f: &dyn Fn(&PassSummary) -> String| {
        let cells: Vec<String> = sums.iter().map(|(_, p)| f(p)).collect();
        format!("| {label} | {} |", cells.join(" | "))
    };
    let p50_row = row(
        &format!("p50 < {P50_TARGET_MS:.0} ms in every case"),
        &|p| {
            format!(
                "{} ({} of {} cases at or over{})",
                met(p.over_p50.is_empty() && complete(p)),
                p.over_p50.len(),
                p.measured,
                if complete(p) {
                    ""
                } else {
                    "; not every case measured"
                }
            )
        },
    );
    let max_row = row(
        &format!(
            "max < {MAX_TARGET_MS:.0} ms in every case{}",
            if args.backend == BackendKind::Embedded {
                " (the ClickHouse target; shown for comparison)"
            } else {
                ""
            }
        ),
        &|p| {
            format!(
                "{} ({} of {} cases at or over)",
                met(p.over_max.is_empty() && complete(p)),
                p.over_max.len(),
                p.measured
            )
        },
    );
    let _ = writeln!(w, "{p50_row}");
    let _ = writeln!(w, "{max_row}");
    if let Some(m) = &r.memory {
        let _ = writeln!(
            w,
            "| gateway RSS < {RSS_TARGET_MB:.0} MB during {} concurrent analytics queries | {} (max {:.0} MB) |",
            m.clients,
            met(mb(m.rss_max_kb) < RSS_TARGET_MB && m.answered > 0),
            mb(m.rss_max_kb)
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "| pass | cases measured | median of the cases' p50 | p50 of all timed runs | worst p50 | worst max | cases p50 ≥ {P50_TARGET_MS:.0} ms | cases max ≥ {MAX_TARGET_MS:.0} ms |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---|---|---:|---:|");
    for (title, p) in &sums {
        let worst = |x: &Option<(f64, String)>| {
            x.as_ref()
                .map_or("-".into(), |(ms, l)| format!("{} ms ({l})", fmt_ms(*ms)))
        };
        let _ = writeln!(
            w,
            "| {title} | {} of {n_cases}{}{} | {} | {} | {} | {} | {} | {} |",
            p.measured,
            if p.skipped > 0 {
                format!(", {} skipped", p.skipped)
            } else {
                String::new()
            },
            if p.errors > 0 {
                format!(", **{} errors**", p.errors)
            } else {
                String::new()
            },
            p.p50_of_p50s.map_or("-".into(), fmt_ms),
            p.p50_of_runs.map_or("-".into(), fmt_ms),
            worst(&p.worst_p50),
            worst(&p.worst_max),
            p.over_p50.len(),
            p.over_max.len()
        );
    }
    let _ = writeln!(w);
    for (title, p) in &sums {
        if !p.over_p50.is_empty() {
            let _ = writeln!(w, "Cases with p50 ≥ {P50_TARGET_MS:.0} ms ({title}):\n");
            for l in &p.over_p50 {
                let _ = writeln!(w, "- {l}");
            }
            let _ = writeln!(w);
        }
        if !p.over_max.is_empty() {
            let _ = writeln!(w, "Cases with max ≥ {MAX_TARGET_MS:.0} ms ({title}):\n");
            for l in &p.over_max {
                let _ = writeln!(w, "- {l}");
            }
            let _ = writeln!(w);
        }
    }

    // Memory.
    if let Some(m) = &r.memory {
        let _ = writeln!(w, "## Gateway memory\n");
        let _ = writeln!(
            w,
            "`VmRSS` of the `codelink serve` process, sampled every 50 ms ({} samples) while {} \
             clients looped over all {} cases for {:.1} s (each client one request at a time, \
             starting at a different case).\n",
            m.samples, m.clients, n_cases, m.seconds
        );
        let _ = writeln!(w, "| moment | RSS MB |");
        let _ = writeln!(w, "|---|---:|");
        for (label, kb) in [
            ("right after start-up (ready)", m.rss_startup_kb),
            ("after creating the two codes", m.rss_after_creates_kb),
            ("max during the one-client pass", m.rss_sequential_max_kb),
            ("before the concurrent load", m.rss_before_kb),
            ("**max during the concurrent load**", m.rss_max_kb),
            ("after the concurrent load", m.rss_after_kb),
        ] {
            let _ = writeln!(w, "| {label} | {:.0} |", mb(kb));
        }
        let p = |q: f64| {
            let v = &m.latencies_ms;
            if v.is_empty() {
                "-".to_string()
            } else {
                fmt_ms(v[((v.len() - 1) as f64 * q) as usize])
            }
        };
        let non_200: u64 = m
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            w,
            "\n{} queries answered ({:.0}/s), statuses {:?}, {} non-200, {} failed requests; \
             latency under this load p50 {} ms, p90 {} ms, max {} ms.",
            m.answered,
            m.answered as f64 / m.seconds.max(1e-9),
            m.statuses,
            non_200,
            m.failed,
            p(0.5),
            p(0.9),
            p(1.0)
        );
        for e in &m.first_errors {
            let _ = writeln!(w, "- {e}");
        }
        let _ = writeln!(w);
    }

    // The answers.
    let _ = writeln!(w, "## Answers\n");
    let _ = writeln!(
        w,
        "Each scope's summary (first pass) against what was written in its range: {}.\n",
        if r.check_ok {
            "all match"
        } else {
            "**some do not match**"
        }
    );
    for l in &r.check_lines {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w);

    // Per case.
    let cases = all_cases(&r.scopes, &r.spans);
    for (title, timings) in &r.passes {
        for (si, scope) in r.scopes.iter().enumerate() {
            let _ = writeln!(w, "## {} — {title}\n", scope.label);
            let mut head = String::from("| endpoint |");
            let mut rule = String::from("|---|");
            for span in &r.spans {
                let _ = write!(head, " {0}: p50 | {0}: max |", span.label);
                rule.push_str("---:|---:|");
            }
            let _ = write!(head, " answer ({}) |", r.spans[r.spans.len() - 1].label);
            rule.push_str("---:|");
            let _ = writeln!(w, "{head}\n{rule}");
            for ep in Endpoint::all() {
                let mut line = format!("| {} |", ep.name());
                let mut answer = 0;
                for (ci, case) in cases.iter().enumerate() {
                    if case.scope == si && case.endpoint.name() == ep.name() {
                        let _ = write!(line, " {} |", timings[ci].cells(args.runs));
                        answer = timings[ci].answer.size;
                    }
                }
                let _ = writeln!(w, "{line} {answer} |");
            }
            let _ = writeln!(w);
        }
    }
    let _ = writeln!(
        w,
        "`answer`: rows of the answer (buckets, keys, codes), or scans for summary and funnel.\n"
    );

    // Load.
    let _ = writeln!(w, "## Load\n");
    let total_secs = s.seconds + c.seconds;
    let _ = writeln!(
        w,
        "- scans: {} in {:.1} s = **{:.0} scans/s** ({} batches of ≤ {}, generated in the same \
         process while the previous batch was written)",
        s.total,
        s.seconds,
        s.total as f64 / s.seconds.max(1e-9),
        s.batches,
        args.scans_per_batch
    );
    let _ = writeln!(
        w,
        "- conversions: {} in {:.1} s ({:.0}/s; {} batches of ≤ {}, written after every scan)",
        c.total,
        c.seconds,
        c.total as f64 / c.seconds.max(1e-9),
        c.batches,
        args.conversions_per_batch
    );
    let _ = writeln!(
        w,
        "- load time: **{:.1} s** ({:.1} min)",
        total_secs,
        total_secs / 60.0
    );
    for l in &r.load_notes {
        let _ = writeln!(w, "- {l}");
    }
    let (hot, median) = (r.loaded.watched.hot, r.loaded.watched.median);
    let _ = writeln!(
        w,
        "- scans: {} bots ({:.1} %), {} QR, {} unique (per code, visitor and UTC day), {} in the \
         last 30 days; hot code {} {} ({:.1} %), median code {} {}",
        s.bots,
        s.bots as f64 * 100.0 / s.total.max(1) as f64,
        s.qr,
        s.unique,
        s.recent,
        r.model.codes[hot],
        s.per_code[hot],
        s.per_code[hot] as f64 * 100.0 / s.total.max(1) as f64,
        r.model.codes[median],
        s.per_code[median]
    );
    let rules: Vec<String> = c.rules.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        w,
        "- conversions: {} signups, {} purchases, {} refunds; {} name a generated scan, {} \
         unattributed; rules: {}",
        c.all[1].signups,
        c.all[1].purchases,
        c.all[1].refunds,
        c.with_scan,
        c.unattributed,
        rules.join(", ")
    );

    // Set-up.
    let _ = writeln!(w, "\n## Set-up\n");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0}", kb / 1024.0 / 1024.0));
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(
        w,
        "- machine: nproc {nproc} ({cpu}), {mem_gb} GB RAM; the bench, the server(s) and any \
         other work on the machine share the cores (1-minute load average at the end: {load})"
    );
    for l in &r.setup_notes {
        let _ = writeln!(w, "- {l}");
    }
    let _ = writeln!(
        w,
        "- window: {} .. {} (UTC, {} days, ending at the start of today); seed {}",
        fmt_day(r.model.start_ms),
        fmt_day(r.model.end_ms),
        args.days,
        args.seed
    );
    let _ = writeln!(
        w,
        "- `analytics-bench --backend {} --scans {} --conversions {} --codes {} --days {} --runs {}{}`; \
         wall time {:.0} s",
        args.backend.name(),
        args.scans,
        args.conversions,
        args.codes,
        args.days,
        args.runs,
        if args.optimize { " --optimize" } else { "" },
        r.wall.elapsed().as_secs_f64()
    );
    md
}

fn fmt_day(ms: u64) -> String {
    codelink_analytics::event::day_of(ms)
}

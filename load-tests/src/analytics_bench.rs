//! `analytics-bench`: loads a realistic month of scans and conversions into
//! ClickHouse and measures every analytics query through the real query layer
//! (`codelink_analytics::query::Analytics::ClickHouse`). A benchmark, not a
//! test: it reports, it does not fail on a slow query.
//!
//! ```text
//! analytics-bench [--scans N] [--conversions M] [--codes K] [--runs R]
//!                 [--clickhouse-url http://127.0.0.1:PORT] [--database bench]
//!                 [--rows-per-insert 1000000] [--case-budget-secs S]
//!                 [--max-seconds S] [--seed X] [--out FILE]
//! ```
//!
//! 1. Starts a private `clickhouse-server` (Debian's 18.16, through
//!    `codelink_testkit::ClickHouseServer`, on free 127.0.0.1 ports, data in a
//!    temp dir, killed on exit), unless `--clickhouse-url` names one (127.0.0.1
//!    or localhost only; the bench then drops and recreates `{database}.scans`
//!    and `{database}.conversions`).
//! 2. Creates the tables with the project's own migrations
//!    (`ClickHouseEvents::migrate`).
//! 3. Generates `N` scans (default 10 000 000) in Rust and inserts them with the
//!    `clickhouse` crate, `--rows-per-insert` rows per RowBinary `INSERT`; then
//!    `M` conversions (default 200 000). The data: `K` codes (default 1000), one
//!    hot code (`c0000`, 5 % of the scans) and a Zipf tail (`1/(rank+10)`);
//!    20 % bots (user-agent bots and `head`/`prefetch`/`rate`); six channels;
//!    16 countries; user agents classified by the project's own classifier;
//!    visitors that come back (per code, and a pool of fans who scan many
//!    codes); 30 days ending at the start of today (UTC), with a daily rhythm
//!    and growth. Conversions: signups of customers (scan token, visitor,
//!    code-only and unattributed), their purchases (inherited) and refunds,
//!    guest purchases by scan token; EUR and USD, plans in either. Every
//!    conversion with a scan names a generated scan, with its code, channel,
//!    visitor and `scan_ms` = that scan's `ts_ms`.
//! 4. Checks the row counts and that every conversion's scan exists.
//! 5. Measures, right after the load (background merges still running) and
//!    again after `OPTIMIZE TABLE … FINAL` of both tables: summary,
//!    timeseries (day and hour, UTC and Europe/Berlin), breakdown by every
//!    dimension, funnel and top (scans, conversions, earnings; 10) for the hot
//!    code, the median code (by scans) and all codes, over the 30 days. Each
//!    case: one warm-up, then `R` timed runs (default 7), cut short once 3
//!    runs are in and the case has taken `--case-budget-secs` (default 8; on
//!    2 cores this leaves the all-codes cases, 3–5 s each, at 3 runs).
//! 6. Prints a markdown report (and writes it to `--out`).
//!
//! Bounded: everything on 127.0.0.1; after `--max-seconds` (default 780) the
//! measurements still to do are skipped and the report is written, and 60 s
//! later the run is abandoned; SIGINT/SIGTERM stop it. In every case the
//! private server is killed on the way out. Exit status: 0 with a report, 1 on
//! an error, 2 on bad usage, 124 when abandoned, 130/143 on a signal.

use codelink_analytics::classify;
use codelink_analytics::query::{Backend as Analytics, Dimension, Interval, Query, TopMetric};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents};
use codelink_analytics::ScanId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const USAGE: &str = "usage: analytics-bench [--scans N] [--conversions M] [--codes K] [--runs R] \
     [--clickhouse-url http://127.0.0.1:PORT] [--database NAME] [--rows-per-insert N] \
     [--case-budget-secs S] [--max-seconds S] [--seed X] [--out FILE]";

const DAY_MS: u64 = 86_400_000;
const DAYS: u64 = 30;
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
/// Earnings hold: 14 days.
const HOLD_MS: u64 = 14 * DAY_MS;
/// The per-code summary target.
const SUMMARY_TARGET_MS: f64 = 200.0;

// --- arguments ---------------------------------------------------------------

#[derive(Debug, Clone)]
struct Args {
    scans: u64,
    conversions: u64,
    codes: usize,
    runs: usize,
    clickhouse_url: Option<String>,
    database: String,
    rows_per_insert: u64,
    case_budget: Duration,
    max_seconds: u64,
    seed: u64,
    out: Option<String>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        scans: 10_000_000,
        conversions: 200_000,
        codes: 1000,
        runs: 7,
        clickhouse_url: None,
        database: "bench".into(),
        rows_per_insert: 1_000_000,
        case_budget: Duration::from_secs(8),
        max_seconds: 780,
        seed: 20_240_601,
        out: None,
    };
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
    }
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err("help requested".into());
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scans" => a.scans = num(&flag, &value)?,
            "--conversions" => a.conversions = num(&flag, &value)?,
            "--codes" => a.codes = num(&flag, &value)?,
            "--runs" => a.runs = num(&flag, &value)?,
            "--clickhouse-url" => a.clickhouse_url = Some(value),
            "--database" => a.database = value,
            "--rows-per-insert" => a.rows_per_insert = num(&flag, &value)?,
            "--case-budget-secs" => a.case_budget = Duration::from_secs(num(&flag, &value)?),
            "--max-seconds" => a.max_seconds = num(&flag, &value)?,
            "--seed" => a.seed = num(&flag, &value)?,
            "--out" => a.out = Some(value),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if a.scans == 0 {
        return Err("--scans must be at least 1".into());
    }
    if !(2..=10_000).contains(&a.codes) {
        return Err("--codes must be between 2 and 10000".into());
    }
    if a.runs == 0 || a.rows_per_insert == 0 || a.max_seconds == 0 {
        return Err("--runs, --rows-per-insert and --max-seconds must be positive".into());
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
    let server = match &args.clickhouse_url {
        Some(_) => None,
        None => {
            eprintln!("==> starting a private clickhouse-server");
            Some(codelink_testkit::ClickHouseServer::start())
        }
    };
    let url = match (&args.clickhouse_url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.url(),
        (None, None) => unreachable!("a server is started when no URL is given"),
    };
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
    let hard = Duration::from_secs(args.max_seconds + 60);
    let code = runtime.block_on(async {
        tokio::select! {
            r = run(args, url, soft) => match r {
                Ok(()) => ExitCode::SUCCESS,
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
    hours: Weighted<u64>,
    days: Weighted<u64>,
}

impl Model {
    fn new(args: &Args) -> Result<Self> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let end_ms = now_ms / DAY_MS * DAY_MS;
        let start_ms = end_ms - DAYS * DAY_MS;
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
        for a in &humans {
            eprintln!(
                "    agent: device {:?} os {:?} browser {:?} in_app {:?}",
                a.device, a.os, a.browser, a.in_app
            );
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
            hours: Weighted::new(HOURS.iter().enumerate().map(|(h, w)| (h as u64, *w))),
            // Growth: the last day has twice the scans of the first.
            days: Weighted::new((0..DAYS).map(|d| (d, 1.0 + d as f64 / DAYS as f64))),
        })
    }

    /// A time in the window with the daily rhythm.
    fn time(&self, rng: &mut StdRng) -> u64 {
        let day = *self.days.pick(rng.random());
        let hour = *self.hours.pick(rng.random());
        self.start_ms + day * DAY_MS + hour * 3_600_000 + rng.random_range(0..3_600_000)
    }

    /// A time uniformly in the window (conversions without a scan).
    fn any_time(&self, rng: &mut StdRng) -> u64 {
        rng.random_range(self.start_ms..self.end_ms)
    }
}

/// One row of `scans`, in the column order of the migration (RowBinary is positional).
#[derive(Debug, serde::Serialize, clickhouse::Row)]
struct ScanRow<'a> {
    scan_id: &'a str,
    ts: u32,
    ts_ms: u64,
    code: &'a str,
    channel: &'a str,
    visitor_id: &'a str,
    ip_prefix: &'a str,
    user_agent: &'a str,
    device: &'a str,
    os: &'a str,
    browser: &'a str,
    in_app: &'a str,
    referrer_host: &'a str,
    country: &'a str,
    source: &'a str,
    is_bot: u8,
    bot_reason: &'a str,
    is_unique: u8,
}

/// One row of `conversions`, in column order.
#[derive(Debug, serde::Serialize, clickhouse::Row)]
struct ConversionRow<'a> {
    event_id: &'a str,
    kind: &'a str,
    occurred: u32,
    occurred_ms: u64,
    received_ms: u64,
    code: &'a str,
    owner: &'a str,
    channel: &'a str,
    scan_id: &'a str,
    scan_ms: u64,
    visitor_id: &'a str,
    customer_id: &'a str,
    amount: i64,
    currency: &'a str,
    rule: &'a str,
    earnings: i64,
    earnings_currency: &'a str,
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

/// What the scan generation produced besides the rows.
struct ScanLoad {
    seconds: f64,
    inserts: u64,
    per_code: Vec<u64>,
    candidates: Vec<Candidate>,
}

async fn load_scans(
    client: &clickhouse::Client,
    model: &Model,
    args: &Args,
    rng: &mut StdRng,
) -> Result<ScanLoad> {
    let started = Instant::now();
    // Conversions that name a scan, with room to spare.
    let wanted = (args.conversions as f64 * 1.5) as u64;
    let humans_expected = (args.scans as f64 * (1.0 - BOT_SHARE)).max(1.0);
    let keep = (wanted as f64 / humans_expected).min(1.0);
    let mut candidates = Vec::with_capacity((wanted + wanted / 4) as usize);
    let mut per_code = vec![0u64; model.codes.len()];
    let mut unique_seen: HashSet<u64> = HashSet::with_capacity((humans_expected * 0.8) as usize);
    let (mut vid, mut ip) = (String::new(), String::new());
    let mut written = 0u64;
    let mut inserts = 0u64;
    let mut pending: Option<tokio::task::JoinHandle<clickhouse::error::Result<()>>> = None;
    while written < args.scans {
        let n = args.rows_per_insert.min(args.scans - written);
        let mut insert = client
            .insert::<ScanRow<'static>>("scans")
            .await?
            .with_timeouts(
                Some(Duration::from_secs(120)),
                Some(Duration::from_secs(600)),
            );
        for i in written..written + n {
            let code = *model.code_weights.pick(rng.random());
            per_code[code] += 1;
            let ts_ms = model.time(rng);
            let id = ScanId::from_parts(ts_ms, NODE, i).encode();
            let channel = *model.channels.pick(rng.random());
            let qr = rng.random_bool(QR_SHARE);
            let bot = rng.random_bool(BOT_SHARE);
            let (agent, bot_reason, visitor) = if bot {
                let b = model.bot_weights.index(rng.random());
                // A few thousand crawler addresses.
                let v = (1 << 62) | rng.random_range(0..3000u64);
                (&model.bots[b].0, model.bots[b].1.as_str(), v)
            } else {
                let v = if rng.random_bool(FAN_SHARE) {
                    (1 << 63) | rng.random_range(0..model.fans)
                } else {
                    ((code as u64) << 32) | rng.random_range(0..model.local_visitors[code])
                };
                // A visitor keeps their device.
                let a = model
                    .human_weights
                    .index((mix(v ^ 0xDE71CE) >> 11) as f64 / (1u64 << 53) as f64);
                (&model.humans[a], "", v)
            };
            let country = *model
                .countries
                .pick((mix(visitor ^ 0xC0) >> 11) as f64 / (1u64 << 53) as f64);
            visitor_id(&mut vid, visitor);
            ip_prefix(&mut ip, visitor);
            let referrer = if qr {
                ""
            } else {
                CHANNELS[channel].2[rng.random_range(0..2)]
            };
            let is_unique = !bot && {
                let day = (ts_ms - model.start_ms) / DAY_MS;
                unique_seen.insert(mix(visitor ^ mix(((code as u64) << 8) | day)))
            };
            if !bot && rng.random_bool(keep) {
                candidates.push(Candidate {
                    scan_id: id,
                    ts_ms,
                    code: code as u32,
                    channel: channel as u8,
                    visitor,
                });
            }
            let row = ScanRow {
                scan_id: std::str::from_utf8(&id)?,
                ts: (ts_ms / 1000) as u32,
                ts_ms,
                code: &model.codes[code],
                channel: CHANNELS[channel].0,
                visitor_id: &vid,
                ip_prefix: &ip,
                user_agent: agent.ua,
                device: agent.device,
                os: &agent.os,
                browser: &agent.browser,
                in_app: agent.in_app,
                referrer_host: referrer,
                country,
                source: if qr { "qr" } else { "link" },
                is_bot: u8::from(bot),
                bot_reason,
                is_unique: u8::from(is_unique),
            };
            insert.write(&row).await?;
        }
        // Let ClickHouse finish this INSERT (sort, compress, write the part)
        // while the next one is generated; at most one in flight.
        if let Some(p) = pending.take() {
            p.await??;
        }
        pending = Some(tokio::spawn(insert.end()));
        written += n;
        inserts += 1;
        eprintln!(
            "    scans: {written} / {} ({:.0} s)",
            args.scans,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(p) = pending.take() {
        p.await??;
    }
    Ok(ScanLoad {
        seconds: started.elapsed().as_secs_f64(),
        inserts,
        per_code,
        candidates,
    })
}

/// One generated conversion (owned; 200 000 of them fit easily).
struct Conv {
    event_id: String,
    kind: &'static str,
    occurred_ms: u64,
    received_ms: u64,
    code: Option<usize>,
    channel: &'static str,
    scan_id: String,
    scan_ms: u64,
    visitor_id: String,
    customer_id: String,
    amount: i64,
    currency: &'static str,
    rule: &'static str,
    earnings: i64,
    earnings_currency: &'static str,
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
    out: Vec<Conv>,
    customers: u64,
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
        kind: &'static str,
        rule: &'static str,
        occurred_ms: u64,
        attr: &Attribution,
        customer: u64,
        amount: i64,
        currency: &'static str,
        earnings: i64,
    ) {
        let n = self.out.len();
        let earnings_currency = match attr.code {
            Some(c) => self.model.plan_currency[c],
            None => "",
        };
        self.out.push(Conv {
            event_id: format!("evt-{n:08}"),
            kind,
            occurred_ms,
            received_ms: occurred_ms + rng.random_range(50..5_000),
            code: attr.code,
            channel: attr.scan.map_or("", |s| CHANNELS[usize::from(s.channel)].0),
            scan_id: attr
                .scan
                .map(|s| String::from_utf8_lossy(&s.scan_id).into_owned())
                .unwrap_or_default(),
            scan_ms: attr.scan.map_or(0, |s| s.ts_ms),
            visitor_id: attr.visitor.clone(),
            customer_id: format!("cust-{customer:07}"),
            amount,
            currency,
            rule,
            earnings,
            earnings_currency,
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
                    rng, "purchase", "scan_id", at, &attr, customer, amount, currency, e,
                );
                return;
            }
        }
        let r: f64 = rng.random();
        let scan = if r < 0.75 { self.take_scan(rng) } else { None };
        let (attr, rule, signup_at) = match scan {
            Some(scan) => {
                visitor_id(&mut vid, scan.visitor);
                let rule = if r < 0.55 { "scan_id" } else { "visitor" };
                let max = if rule == "scan_id" {
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
                (attr, "code_only", self.model.any_time(rng))
            }
            None => {
                let attr = Attribution {
                    code: None,
                    scan: None,
                    visitor: String::new(),
                };
                (attr, "unattributed", self.model.any_time(rng))
            }
        };
        let signup_earnings = if attr.code.is_some() { 200 } else { 0 };
        self.push(
            rng,
            "signup",
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
            "inherited"
        } else {
            "unattributed"
        };
        let mut at = signup_at;
        for _ in 0..if rng.random_bool(0.3) { 2 } else { 1 } {
            at = self.after(at, Self::delay(rng, 10 * DAY_MS));
            let (amount, currency) = Self::purchase_money(rng);
            let e = self.commission(&attr, amount, currency);
            self.push(
                rng, "purchase", later_rule, at, &attr, customer, amount, currency, e,
            );
            if rng.random_bool(0.12) {
                let refund_at = self.after(at, Self::delay(rng, 5 * DAY_MS));
                self.push(
                    rng, "refund", later_rule, refund_at, &attr, customer, amount, currency, -e,
                );
            }
        }
    }
}

async fn load_conversions(
    client: &clickhouse::Client,
    model: &Model,
    args: &Args,
    candidates: Vec<Candidate>,
    rng: &mut StdRng,
) -> Result<f64> {
    let started = Instant::now();
    let mut gen = ConversionGen {
        model,
        candidates,
        out: Vec::with_capacity(args.conversions as usize + 8),
        customers: 0,
    };
    while (gen.out.len() as u64) < args.conversions {
        gen.customer(rng);
    }
    gen.out.truncate(args.conversions as usize);
    for chunk in gen.out.chunks(args.rows_per_insert as usize) {
        let mut insert = client
            .insert::<ConversionRow<'static>>("conversions")
            .await?
            .with_timeouts(
                Some(Duration::from_secs(120)),
                Some(Duration::from_secs(600)),
            );
        for c in chunk {
            insert
                .write(&ConversionRow {
                    event_id: &c.event_id,
                    kind: c.kind,
                    occurred: (c.occurred_ms / 1000) as u32,
                    occurred_ms: c.occurred_ms,
                    received_ms: c.received_ms,
                    code: c.code.map_or("", |i| model.codes[i].as_str()),
                    owner: c.code.map_or("", |i| model.owners[i].as_str()),
                    channel: c.channel,
                    scan_id: &c.scan_id,
                    scan_ms: c.scan_ms,
                    visitor_id: &c.visitor_id,
                    customer_id: &c.customer_id,
                    amount: c.amount,
                    currency: c.currency,
                    rule: c.rule,
                    earnings: c.earnings,
                    earnings_currency: c.earnings_currency,
                })
                .await?;
        }
        insert.end().await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

// --- ClickHouse helpers --------------------------------------------------------

async fn scalar_u64(client: &clickhouse::Client, sql: &str) -> Result<u64> {
    Ok(client.query(sql).fetch_one::<u64>().await?)
}

async fn scalar_string(client: &clickhouse::Client, sql: &str) -> Result<String> {
    Ok(client.query(sql).fetch_one::<String>().await?)
}

/// Active parts of a table (what FINAL has to merge at query time).
async fn active_parts(client: &clickhouse::Client, db: &str, table: &str) -> Result<u64> {
    scalar_u64(
        client,
        &format!(
            "SELECT count() FROM system.parts WHERE database = '{db}' AND table = '{table}' AND active"
        ),
    )
    .await
}

async fn partitions(client: &clickhouse::Client, db: &str, table: &str) -> Result<u64> {
    scalar_u64(
        client,
        &format!(
            "SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = '{table}' AND active"
        ),
    )
    .await
}

/// `OPTIMIZE TABLE … FINAL` until each partition is one part (a background
/// merge holding some parts can make one call a no-op); at most 10 calls.
async fn optimize(client: &clickhouse::Client, db: &str, table: &str) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..10 {
        client
            .query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"))
            .execute()
            .await?;
        if active_parts(client, db, table).await? <= partitions(client, db, table).await? {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(started.elapsed().as_secs_f64())
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
            Endpoint::Timeseries(i, tz) => format!("timeseries {i} {tz}"),
            Endpoint::Breakdown(d) => format!("breakdown {d}"),
            Endpoint::Funnel => "funnel".into(),
            Endpoint::Top(m) => format!("top {m} (10)"),
        }
    }

    /// Runs the query once; returns the size of the answer (rows, or scans for
    /// summary/funnel), to print and to keep the answer alive.
    async fn call(self, a: &Analytics, q: &Query) -> Result<u64> {
        Ok(match self {
            Endpoint::Summary => a.summary(q).await?.scans,
            Endpoint::Timeseries(i, tz) => {
                let q = Query {
                    tz: tz.into(),
                    ..q.clone()
                };
                a.timeseries(&q, i).await?.len() as u64
            }
            Endpoint::Breakdown(d) => a.breakdown(q, d).await?.len() as u64,
            Endpoint::Funnel => a.funnel(q).await?.scans,
            Endpoint::Top(m) => a.top(q, m, 10).await?.len() as u64,
        })
    }
}

/// Timed runs of one case, ms; empty when skipped.
#[derive(Debug, Clone, Default)]
struct Timing {
    warmup_ms: f64,
    ms: Vec<f64>,
    answer: u64,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    fn cell(&self, runs: usize) -> String {
        let v = self.sorted();
        let (Some(min), Some(max), Some(med)) = (v.first(), v.last(), self.median()) else {
            return "skipped | | ".into();
        };
        let n = if v.len() < runs {
            format!(" (n={})", v.len())
        } else {
            String::new()
        };
        format!("{} | {}{n} | {}", fmt_ms(*min), fmt_ms(med), fmt_ms(*max))
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

struct Scope {
    label: String,
    codes: Option<Vec<String>>,
}

/// Every endpoint for every scope: results[scope][endpoint].
async fn measure(
    analytics: &Analytics,
    base: &Query,
    scopes: &[Scope],
    args: &Args,
    soft_deadline: Instant,
    phase: &str,
) -> Result<Vec<Vec<Timing>>> {
    let mut all = Vec::new();
    for scope in scopes {
        let q = Query {
            codes: scope.codes.clone(),
            ..base.clone()
        };
        let mut row = Vec::new();
        for ep in Endpoint::all() {
            if Instant::now() >= soft_deadline {
                eprintln!(
                    "    {phase} / {} / {}: skipped (--max-seconds)",
                    scope.label,
                    ep.name()
                );
                row.push(Timing::default());
                continue;
            }
            let warm = Instant::now();
            ep.call(analytics, &q).await?;
            let mut t = Timing {
                warmup_ms: warm.elapsed().as_secs_f64() * 1000.0,
                ..Timing::default()
            };
            let case_start = Instant::now();
            for r in 0..args.runs {
                if r >= 3 && case_start.elapsed() >= args.case_budget {
                    break;
                }
                let started = Instant::now();
                t.answer = ep.call(analytics, &q).await?;
                t.ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            eprintln!(
                "    {phase} / {} / {}: median {} ms ({} runs, warm-up {} ms, answer {})",
                scope.label,
                ep.name(),
                t.median().map_or("-".into(), fmt_ms),
                t.ms.len(),
                fmt_ms(t.warmup_ms),
                t.answer
            );
            row.push(t);
        }
        all.push(row);
    }
    Ok(all)
}

// --- the run -----------------------------------------------------------------

async fn run(args: Args, url: String, soft_deadline: Instant) -> Result<()> {
    let wall = Instant::now();
    let db = args.database.clone();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: url.clone(),
        database: db.clone(),
        user: None,
        password: None,
    });
    let admin = events.client().clone().with_database("default");
    let version = scalar_string(&admin, "SELECT version()").await?;
    eprintln!("==> clickhouse-server {version} at {url}; database {db}");
    for t in ["scans", "conversions"] {
        admin
            .query(&format!("DROP TABLE IF EXISTS {db}.{t}"))
            .execute()
            .await?;
    }
    events.migrate().await?;
    let client = events.client().clone();

    let model = Model::new(&args)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    eprintln!(
        "==> loading {} scans over {} codes ({} rows per INSERT)",
        args.scans, args.codes, args.rows_per_insert
    );
    let scans = load_scans(&client, &model, &args, &mut rng).await?;
    eprintln!("==> loading {} conversions", args.conversions);
    let conv_seconds = load_conversions(&client, &model, &args, scans.candidates, &mut rng).await?;
    let load_seconds = scans.seconds + conv_seconds;

    let scan_rows = scalar_u64(&client, "SELECT count() FROM scans").await?;
    let conv_rows = scalar_u64(&client, "SELECT count() FROM conversions").await?;
    if scan_rows != args.scans || conv_rows != args.conversions {
        return Err(format!(
            "row counts: scans {scan_rows} (want {}), conversions {conv_rows} (want {})",
            args.scans, args.conversions
        )
        .into());
    }
    let parts_after_load = (
        active_parts(&client, &db, "scans").await?,
        active_parts(&client, &db, "conversions").await?,
    );
    eprintln!(
        "==> loaded in {load_seconds:.1} s; active parts: scans {}, conversions {}",
        parts_after_load.0, parts_after_load.1
    );

    // Hot and median code by scans, from what was generated.
    let mut by_scans: Vec<(u64, usize)> = scans
        .per_code
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i))
        .collect();
    by_scans.sort();
    let (hot_n, hot) = by_scans[by_scans.len() - 1];
    let (median_n, median) = by_scans[(by_scans.len() - 1) / 2];
    let hot_code = model.codes[hot].clone();
    let median_code = model.codes[median].clone();
    let conv_of = |code: &str| {
        let sql = format!("SELECT count() FROM conversions WHERE code = '{code}'");
        let client = client.clone();
        async move { scalar_u64(&client, &sql).await }
    };
    let hot_conv = conv_of(&hot_code).await?;
    let median_conv = conv_of(&median_code).await?;
    let stats_sql = "SELECT countIf(is_bot != 0), countIf(source = 'qr'), uniqExact(visitor_id), uniqExact(code) FROM scans";
    let (bots, qr, visitors, codes_seen) = client
        .query(stats_sql)
        .fetch_one::<(u64, u64, u64, u64)>()
        .await?;
    let conv_stats = client
        .query(
            "SELECT countIf(kind = 'signup'), countIf(kind = 'purchase'), countIf(kind = 'refund'), \
             countIf(scan_id != ''), countIf(code = ''), uniqExact(currency), uniqExact(rule) FROM conversions",
        )
        .fetch_one::<(u64, u64, u64, u64, u64, u64, u64)>()
        .await?;
    // Every conversion's scan exists, with its code and time.
    let linked = scalar_u64(
        &client,
        "SELECT count() FROM (SELECT DISTINCT scan_id, code, scan_ms AS ts_ms FROM conversions WHERE scan_id != '') \
         ANY INNER JOIN (SELECT scan_id, code, ts_ms FROM scans \
         WHERE scan_id IN (SELECT scan_id FROM conversions WHERE scan_id != '')) USING scan_id, code, ts_ms",
    )
    .await?;
    let distinct_scan_refs = scalar_u64(
        &client,
        "SELECT uniqExact(scan_id) FROM conversions WHERE scan_id != ''",
    )
    .await?;
    if linked != distinct_scan_refs {
        return Err(format!(
            "conversions name {distinct_scan_refs} scans, only {linked} exist with that code and time"
        )
        .into());
    }

    let analytics = Analytics::ClickHouse(Box::new(events.clone()));
    let base = Query {
        from_ms: model.start_ms,
        to_ms: model.end_ms,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: model.end_ms,
        hold_ms: HOLD_MS,
    };
    let scopes = [
        Scope {
            label: format!("hot code `{hot_code}`"),
            codes: Some(vec![hot_code.clone()]),
        },
        Scope {
            label: format!("median code `{median_code}`"),
            codes: Some(vec![median_code.clone()]),
        },
        Scope {
            label: "all codes".into(),
            codes: None,
        },
    ];
    // Sanity: the query layer sees every scan.
    let seen = analytics.summary(&base).await?.scans;
    if seen != args.scans {
        return Err(format!(
            "summary of all codes counts {seen} scans, want {}",
            args.scans
        )
        .into());
    }

    eprintln!("==> measuring right after the load");
    let after_load = measure(
        &analytics,
        &base,
        &scopes,
        &args,
        soft_deadline,
        "after load",
    )
    .await?;
    let parts_before_opt = (
        active_parts(&client, &db, "scans").await?,
        active_parts(&client, &db, "conversions").await?,
    );
    eprintln!("==> OPTIMIZE TABLE … FINAL");
    let opt_scans = optimize(&client, &db, "scans").await?;
    let opt_conv = optimize(&client, &db, "conversions").await?;
    let parts_after_opt = (
        active_parts(&client, &db, "scans").await?,
        active_parts(&client, &db, "conversions").await?,
    );
    let scan_rows_opt = scalar_u64(&client, "SELECT count() FROM scans").await?;
    eprintln!("==> measuring after OPTIMIZE");
    let after_opt = measure(
        &analytics,
        &base,
        &scopes,
        &args,
        soft_deadline,
        "after optimize",
    )
    .await?;

    // --- report ---
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# codelink analytics queries on ClickHouse\n");
    let _ = writeln!(
        w,
        "{} scans and {} conversions over {} codes and {DAYS} days, queried through \
         `codelink_analytics::query::Analytics::ClickHouse` (the code behind `/api/v1/analytics/*`). \
         Each case: 1 warm-up, then {} timed runs (fewer when a case passes {} s: `n=`); ms, min | median | max.\n",
        args.scans,
        args.conversions,
        args.codes,
        args.runs,
        args.case_budget.as_secs()
    );
    // Judged on the median; the slowest run is shown next to it.
    let verdict = |t: &Timing| {
        let max = t.sorted().last().copied().unwrap_or(0.0);
        match t.median() {
            Some(m) if m < SUMMARY_TARGET_MS => {
                format!("**met** (median {} ms, max {} ms)", fmt_ms(m), fmt_ms(max))
            }
            Some(m) => format!(
                "**NOT met** (median {} ms, max {} ms)",
                fmt_ms(m),
                fmt_ms(max)
            ),
            None => "not measured".into(),
        }
    };
    let _ = writeln!(
        w,
        "## Per-code summary target: under {SUMMARY_TARGET_MS:.0} ms (median of the timed runs)\n"
    );
    let _ = writeln!(w, "| code | after load | after OPTIMIZE FINAL |");
    let _ = writeln!(w, "|---|---|---|");
    for (s, scope) in scopes.iter().enumerate().take(2) {
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            scope.label,
            verdict(&after_load[s][0]),
            verdict(&after_opt[s][0])
        );
    }
    let _ = writeln!(w);
    let endpoints = Endpoint::all();
    let scope_notes = [
        format!("{hot_n} scans, {hot_conv} conversions"),
        format!("{median_n} scans, {median_conv} conversions"),
        format!("{} scans, {} conversions", args.scans, args.conversions),
    ];
    for (s, scope) in scopes.iter().enumerate() {
        let _ = writeln!(w, "## {} ({})\n", scope.label, scope_notes[s]);
        let _ = writeln!(
            w,
            "| endpoint | load: min | load: median | load: max | optimized: min | optimized: median | optimized: max |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
        for (e, ep) in endpoints.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                ep.name(),
                after_load[s][e].cell(args.runs),
                after_opt[s][e].cell(args.runs)
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Load\n");
    let rows = args.scans + args.conversions;
    let _ = writeln!(
        w,
        "- scans: {} rows in {:.1} s ({:.0} rows/s; {} INSERTs of ≤ {} rows, RowBinary over HTTP, generated in the same process)",
        args.scans,
        scans.seconds,
        args.scans as f64 / scans.seconds,
        scans.inserts,
        args.rows_per_insert
    );
    let _ = writeln!(
        w,
        "- conversions: {} rows in {:.1} s (generation included)",
        args.conversions, conv_seconds
    );
    let _ = writeln!(
        w,
        "- total: {rows} rows in {load_seconds:.1} s ({:.0} rows/s)",
        rows as f64 / load_seconds
    );
    let _ = writeln!(
        w,
        "- `SELECT count()`: scans {scan_rows} (after OPTIMIZE {scan_rows_opt}), conversions {conv_rows}; \
         all-codes summary (FINAL) counts {seen} scans"
    );
    let _ = writeln!(
        w,
        "- scans: {bots} bots ({:.1} %), {qr} QR, {visitors} distinct visitors, {codes_seen} codes; \
         hot code {hot_code} {hot_n} ({:.1} %), median code {median_code} {median_n}",
        bots as f64 * 100.0 / args.scans as f64,
        hot_n as f64 * 100.0 / args.scans as f64
    );
    let (signups, purchases, refunds, with_scan, unattributed, currencies, rules) = conv_stats;
    let _ = writeln!(
        w,
        "- conversions: {signups} signups, {purchases} purchases, {refunds} refunds; {with_scan} name a scan \
         ({distinct_scan_refs} distinct scans, all found in `scans` with the same code and `ts_ms` = `scan_ms`), \
         {unattributed} unattributed; {currencies} currency values (incl. empty), {rules} rules"
    );
    let _ = writeln!(
        w,
        "- active parts: after load scans {} / conversions {}; before OPTIMIZE {} / {}; after {} / {} \
         (OPTIMIZE FINAL: scans {opt_scans:.1} s, conversions {opt_conv:.1} s)",
        parts_after_load.0,
        parts_after_load.1,
        parts_before_opt.0,
        parts_before_opt.1,
        parts_after_opt.0,
        parts_after_opt.1
    );
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
    let _ = writeln!(
        w,
        "- machine: nproc {nproc} ({cpu}), {mem_gb} GB RAM; the bench and ClickHouse share it"
    );
    let _ = writeln!(
        w,
        "- clickhouse-server {version} ({}), tables from `ClickHouseEvents::migrate` \
         (`ReplacingMergeTree`, `PARTITION BY toYYYYMM`, queries read `FINAL`)",
        if args.clickhouse_url.is_some() {
            "given with --clickhouse-url"
        } else {
            "private, testkit's minimal config, default settings"
        }
    );
    let _ = writeln!(
        w,
        "- window: {} .. {} (UTC, {DAYS} days), `now_ms` = end, hold 14 days; seed {}",
        fmt_day(model.start_ms),
        fmt_day(model.end_ms),
        args.seed
    );
    let _ = writeln!(
        w,
        "- `analytics-bench --scans {} --conversions {} --codes {} --runs {}`; wall time {:.0} s",
        args.scans,
        args.conversions,
        args.codes,
        args.runs,
        wall.elapsed().as_secs_f64()
    );

    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).map_err(|e| format!("writing {out}: {e}"))?;
        eprintln!("==> report written to {out}");
    }
    Ok(())
}

fn fmt_day(ms: u64) -> String {
    codelink_analytics::event::day_of(ms)
}

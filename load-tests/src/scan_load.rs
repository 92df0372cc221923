//! `scan-load`: a bounded, closed-loop HTTP/1.1 load generator for the scan
//! path, used by `scan-load.sh` against the bare hyper baseline and against the
//! gateway with Redis and ClickHouse recording on.
//!
//! ```text
//! scan-load --target http://127.0.0.1:PORT [--requests N] [--connections C]
//!           [--threads T] [--max-seconds S]
//! ```
//!
//! `C` keep-alive connections, each a task that sends its next request as soon
//! as the previous answer (head and body) is in, until exactly `N` requests
//! have been taken (or `--max-seconds` has passed, counted from start-up: then
//! the output says `"truncated": true`). Request `i` is a pure function of `i`
//! (see [`Shot::of`]), a mixed-radix number over
//!
//! | digit | radix | meaning |
//! |---|---:|---|
//! | `i % 4 == 3` | 4 | `?qr=1` (a QR scan) on every 4th request |
//! | `(i / 4) % 5` | 5 | code `load1` … `load5` |
//! | `(i / 20) % 4` | 4 | channel: none, `yt`, `ig`, `bio` |
//! | `(i / 80) % 20` | 20 | user agent: 16 human slots, 4 bot slots |
//!
//! so each run of 1600 requests holds every combination (each QR one once, each
//! link one three times): with `N` a multiple of 1600 each code gets `N/5`
//! requests, a fifth of them from bots and a quarter of them QR scans, spread
//! evenly over the channels.
//! `X-Forwarded-For` carries `10.a.b.c`, a new address every
//! [`REQUESTS_PER_IP`] requests.
//!
//! Only responses count: `sent` holds the requests that got a `302`, per code,
//! class (human/bot, by the user agent sent), channel (`-` for the bare code,
//! as the gateway's stats name it) and source (`qr`/`link`). The JSON report
//! goes to stdout, a one-line summary to stderr. Exit status 0 when every
//! request got an answer (whatever its status), 1 otherwise, 2 on bad usage.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::header::{HeaderName, HeaderValue, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

const USAGE: &str =
    "usage: scan-load --target http://127.0.0.1:PORT [--requests N] [--connections C] \
                     [--threads T] [--max-seconds S]";

pub const CODES: [&str; 5] = ["load1", "load2", "load3", "load4", "load5"];
/// `None` is the bare code; the gateway's stats call it `-`.
pub const CHANNELS: [Option<&str>; 4] = [None, Some("yt"), Some("ig"), Some("bio")];

/// Real user agents of people tapping or scanning a creator's link.
pub const HUMAN_UAS: [&str; 5] = [
    // iPhone Safari
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
    // Android Chrome
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
    // Instagram in-app browser, iOS
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 311.0.2.16.111 (iPhone15,3; iOS 17_1_2; en_US; en; scale=3.00; 1290x2796; 541635890)",
    // TikTok in-app browser, Android
    "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 trill_320405 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/trill app_version/32.4.5 ByteLocale/en ByteFullLocale/en Region/US BytedanceWebview/d8a21c6",
    // desktop Chrome
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
];

/// Link-preview fetchers and crawlers the gateway names (`ua:<name>`).
pub const BOT_UAS: [&str; 4] = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

/// The 20 user-agent slots: (is a bot, index into [`HUMAN_UAS`] or [`BOT_UAS`]).
/// 16 human (iPhone Safari 4×, the others 3× each), 4 bots (one each): 20 % bots.
const UA_SLOTS: [(bool, usize); 20] = [
    (false, 0),
    (false, 1),
    (false, 2),
    (false, 3),
    (true, 0),
    (false, 4),
    (false, 0),
    (false, 1),
    (false, 2),
    (true, 1),
    (false, 3),
    (false, 4),
    (false, 0),
    (false, 1),
    (true, 2),
    (false, 2),
    (false, 3),
    (false, 4),
    (false, 0),
    (true, 3),
];

/// Requests per `X-Forwarded-For` address (well under the default per-IP burst of 30).
pub const REQUESTS_PER_IP: u64 = 16;

/// What request `i` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shot {
    pub qr: bool,
    pub code: usize,
    pub channel: usize,
    pub ua_slot: usize,
}

impl Shot {
    pub fn of(i: u64) -> Self {
        Self {
            qr: i % 4 == 3,
            code: ((i / 4) % 5) as usize,
            channel: ((i / 20) % 4) as usize,
            ua_slot: ((i / 80) % 20) as usize,
        }
    }

    pub fn is_bot(&self) -> bool {
        UA_SLOTS[self.ua_slot].0
    }

    pub fn user_agent(&self) -> &'static str {
        match UA_SLOTS[self.ua_slot] {
            (true, k) => BOT_UAS[k],
            (false, k) => HUMAN_UAS[k],
        }
    }

    /// Index into the prebuilt paths: code, channel, qr.
    fn path_index(&self) -> usize {
        (self.code * CHANNELS.len() + self.channel) * 2 + usize::from(self.qr)
    }
}

/// `10.a.b.c`, one address per [`REQUESTS_PER_IP`] requests.
fn client_ip(i: u64) -> String {
    let g = i / REQUESTS_PER_IP;
    format!("10.{}.{}.{}", (g >> 16) & 255, (g >> 8) & 255, g & 255)
}

/// 302s by [code][bot?][channel][qr?].
type Cells = [[[[u64; 2]; 4]; 2]; 5];

struct Args {
    target: SocketAddr,
    host: HeaderValue,
    requests: u64,
    connections: usize,
    threads: usize,
    max_seconds: u64,
}

/// What one connection task saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<String, u64>,
    cells: Cells,
    answered: u64,
    connects: u64,
}

impl Tally {
    fn count(&mut self, key: &str) {
        match self.statuses.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.statuses.insert(key.to_string(), 1);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (a, b) in self
            .cells
            .iter_mut()
            .flatten()
            .flatten()
            .flatten()
            .zip(other.cells.iter().flatten().flatten().flatten())
        {
            *a += b;
        }
        self.answered += other.answered;
        self.connects += other.connects;
    }
}

struct Shared {
    args: Args,
    paths: Vec<Uri>,
    user_agents: [HeaderValue; 20],
    next: AtomicU64,
    deadline: Instant,
    start: Barrier,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scan-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scan-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut paths = Vec::with_capacity(CODES.len() * CHANNELS.len() * 2);
    for code in CODES {
        for channel in CHANNELS {
            for qr in [false, true] {
                let mut p = format!("/{code}");
                if let Some(ch) = channel {
                    p.push('/');
                    p.push_str(ch);
                }
                if qr {
                    p.push_str("?qr=1");
                }
                paths.push(Uri::try_from(p).expect("static path"));
            }
        }
    }
    let user_agents = std::array::from_fn(|slot| {
        let (bot, k) = UA_SLOTS[slot];
        HeaderValue::from_static(if bot { BOT_UAS[k] } else { HUMAN_UAS[k] })
    });
    let connections = args.connections;
    let shared = Arc::new(Shared {
        start: Barrier::new(connections + 1),
        args,
        paths,
        user_agents,
        next: AtomicU64::new(0),
        deadline,
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    // Every task has connected (or failed to) before the clock starts.
    shared.start.wait().await;
    let started = Instant::now();
    let mut total = Tally::default();
    for t in tasks {
        match t.await {
            Ok(tally) => total.merge(tally),
            Err(e) => {
                eprintln!("scan-load: a connection task failed: {e}");
                total.count("task_failed");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let args = &shared.args;
    let taken = shared.next.load(Relaxed).min(args.requests);
    let truncated = taken < args.requests;
    let complete = !truncated && total.answered == args.requests;
    let json = report(args, &mut total, seconds, truncated);
    println!("{json}");
    let rps = total.answered as f64 / seconds.max(1e-9);
    eprintln!(
        "scan-load: {} answered of {} in {seconds:.2}s = {rps:.0} req/s, p50 {} µs, p99 {} µs, statuses {:?}{}",
        total.answered,
        args.requests,
        percentile(&total.latencies_us, 50.0),
        percentile(&total.latencies_us, 99.0),
        total.statuses,
        if truncated { " (TRUNCATED by --max-seconds)" } else { "" },
    );
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One keep-alive connection, requests back to back; reconnects after an error.
async fn connection(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally {
        latencies_us: Vec::with_capacity(
            (shared.args.requests as usize / shared.args.connections.max(1)) * 5 / 4 + 16,
        ),
        ..Default::default()
    };
    let addr = shared.args.target;
    let xff = HeaderName::from_static("x-forwarded-for");
    let mut sender = connect(addr).await;
    if let Err(e) = &sender {
        eprintln!("scan-load: {e}");
    }
    tally.connects += 1;
    shared.start.wait().await;
    let deadline = tokio::time::Instant::from_std(shared.deadline);
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        let s = match &mut sender {
            Ok(s) if !s.is_closed() => s,
            _ => {
                tally.connects += 1;
                sender = connect(addr).await;
                if let Err(e) = &sender {
                    tally.count("connect_error");
                    eprintln!("scan-load: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        if tokio::time::timeout_at(deadline, s.ready()).await.is_err() {
            break;
        }
        let i = shared.next.fetch_add(1, Relaxed);
        if i >= shared.args.requests {
            break;
        }
        let shot = Shot::of(i);
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = shared.paths[shot.path_index()].clone();
        let h = req.headers_mut();
        h.insert(HOST, shared.args.host.clone());
        h.insert(USER_AGENT, shared.user_agents[shot.ua_slot].clone());
        if !shot.is_bot() {
            // What a browser's navigation carries (else the scan is a suspect).
            for &(name, value) in codelink_testkit::http::NAVIGATION {
                h.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        h.insert(
            xff.clone(),
            HeaderValue::try_from(client_ip(i)).expect("an IP is a header value"),
        );
        let sent_at = Instant::now();
        let exchange = async {
            let resp = s.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(status)) => {
                let us = sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.latencies_us.push(us);
                tally.answered += 1;
                tally.count(status.as_str());
                if status == StatusCode::FOUND {
                    tally.cells[shot.code][usize::from(shot.is_bot())][shot.channel]
                        [usize::from(shot.qr)] += 1;
                }
            }
            Ok(Err(e)) => {
                tally.count("error");
                eprintln!("scan-load: request {i}: {e}");
                sender = Err(e.to_string());
            }
            Err(_) => {
                tally.count("timeout");
                break;
            }
        }
    }
    tally
}

/// Nearest-rank percentile of sorted values (0 when there are none).
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &Args, total: &mut Tally, seconds: f64, truncated: bool) -> String {
    total.latencies_us.sort_unstable();
    let lat = &total.latencies_us;
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        "{{\"target\":\"http://{}\",\"requests\":{},\"answered\":{},\"connections\":{},\"threads\":{},\
         \"truncated\":{truncated},\"seconds\":{seconds:.3},\"rps\":{:.1},\
         \"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"status_counts\":{{",
        args.target,
        args.requests,
        total.answered,
        args.connections,
        args.threads,
        total.answered as f64 / seconds.max(1e-9),
        percentile(lat, 50.0),
        percentile(lat, 90.0),
        percentile(lat, 99.0),
        percentile(lat, 99.9),
        lat.last().copied().unwrap_or(0),
    );
    for (n, (k, v)) in total.statuses.iter().enumerate() {
        let sep = if n == 0 { "" } else { "," };
        let _ = write!(o, "{sep}\"{k}\":{v}");
    }
    let _ = write!(o, "}},\"connects\":{},\"sent\":{{", total.connects);
    for (c, code) in CODES.iter().enumerate() {
        let cell = &total.cells[c];
        let sum = |bot: Option<usize>, channel: Option<usize>, qr: Option<usize>| -> u64 {
            let mut n = 0;
            for (b, by_bot) in cell.iter().enumerate() {
                for (ch, by_ch) in by_bot.iter().enumerate() {
                    for (q, v) in by_ch.iter().enumerate() {
                        if bot.is_none_or(|x| x == b)
                            && channel.is_none_or(|x| x == ch)
                            && qr.is_none_or(|x| x == q)
                        {
                            n += v;
                        }
                    }
                }
            }
            n
        };
        let sep = if c == 0 { "" } else { "," };
        let _ = write!(
            o,
            "{sep}\"{code}\":{{\"total\":{},\"human\":{},\"bot\":{},\"qr\":{},\"link\":{},\"channels\":{{",
            sum(None, None, None),
            sum(Some(0), None, None),
            sum(Some(1), None, None),
            sum(None, None, Some(1)),
            sum(None, None, Some(0)),
        );
        for (ch, name) in CHANNELS.iter().enumerate() {
            let sep = if ch == 0 { "" } else { "," };
            let _ = write!(
                o,
                "{sep}\"{}\":{}",
                name.unwrap_or("-"),
                sum(None, Some(ch), None)
            );
        }
        o.push_str("},\"channel_classes\":{");
        for (ch, name) in CHANNELS.iter().enumerate() {
            let sep = if ch == 0 { "" } else { "," };
            let _ = write!(
                o,
                "{sep}\"{}\":{{\"total\":{},\"human\":{},\"bot\":{}}}",
                name.unwrap_or("-"),
                sum(None, Some(ch), None),
                sum(Some(0), Some(ch), None),
                sum(Some(1), Some(ch), None),
            );
        }
        o.push_str("}}");
    }
    o.push_str("}}");
    o
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut target = None;
    let (mut requests, mut connections, mut threads, mut max_seconds) =
        (200_000u64, 64usize, 1usize, 120u64);
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
            "--target" => target = Some(value),
            "--requests" => requests = num(&flag, &value)?,
            "--connections" => connections = num(&flag, &value)?,
            "--threads" => threads = num(&flag, &value)?,
            "--max-seconds" => max_seconds = num(&flag, &value)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let target = target.ok_or("--target is required")?;
    let hostport = target
        .strip_prefix("http://")
        .ok_or("--target must be http://IP:PORT")?
        .trim_end_matches('/');
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|e| format!("--target {target:?}: want http://IP:PORT ({e})"))?;
    if requests == 0 || connections == 0 || threads == 0 || max_seconds == 0 {
        return Err("--requests, --connections, --threads and --max-seconds must be > 0".into());
    }
    Ok(Args {
        target: addr,
        host: HeaderValue::try_from(hostport).map_err(|e| format!("host header: {e}"))?,
        requests,
        connections,
        threads,
        max_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_once_per_1600() {
        // (i % 4, code, channel, user agent slot) is a bijection of 0..1600:
        // each link shot three times, each QR shot once.
        let mut seen = std::collections::HashMap::new();
        for i in 0..1600 {
            *seen.entry(Shot::of(i)).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 2 * 5 * 4 * 20);
        assert!(seen.iter().all(|(s, &n)| n == if s.qr { 1 } else { 3 }));
        assert_eq!(Shot::of(1600), Shot::of(0));
        let bots = (0..1600).filter(|&i| Shot::of(i).is_bot()).count();
        let qr = (0..1600).filter(|&i| Shot::of(i).qr).count();
        assert_eq!((bots, qr), (320, 400));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 99.0), 0);
        assert_eq!(percentile(&[7], 99.9), 7);
    }

    #[test]
    fn ips_change_every_group() {
        assert_eq!(client_ip(0), "10.0.0.0");
        assert_eq!(client_ip(REQUESTS_PER_IP - 1), "10.0.0.0");
        assert_eq!(client_ip(REQUESTS_PER_IP), "10.0.0.1");
        assert_eq!(client_ip(REQUESTS_PER_IP * 256), "10.0.1.0");
    }
}

//! The analytics queries answered by both backends (embedded redb and
//! ClickHouse 18.16) over one deterministic data set, checked against answers
//! computed here with plain loops.
//!
//! The data: 3 codes, 2 owners (one code changes owner), ~2000 scans over ten
//! days around the end of DST in Europe/Berlin (2025-10-26, with a burst in the
//! repeated hour) plus a cluster around the start of DST (2025-03-30); humans
//! and bots, QR and link, repeating visitors; ~200 conversions of every kind and
//! rule, some unattributed, some with a scan id that was never stored, two
//! currencies, some past the hold. Written in batches, one batch twice and one
//! batch's rows again under a new batch id.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::query::{
    Backend as Analytics, BreakdownRow, Bucket, Dimension, Funnel, Interval, Money, Query, Summary,
    TopMetric, TopRow,
};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents, EmbeddedSink};
use codelink_analytics::ScanId;
use codelink_testkit::ClickHouseServer;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;
/// 2025-10-21T00:00:00Z: start of the main ten days.
const OCT21: u64 = 1_761_004_800_000;
/// 2025-10-26T01:00:00Z: Europe/Berlin goes from CEST (+2) back to CET (+1).
const DST_END: u64 = 1_761_440_400_000;
/// 2025-03-30T01:00:00Z: Europe/Berlin goes from CET (+1) to CEST (+2).
const DST_START: u64 = 1_743_296_400_000;
/// 2025-03-27T00:00:00Z: start of the spring cluster.
const MAR27: u64 = 1_743_033_600_000;
const NOW: u64 = OCT21 + 10 * DAY;
const HOLD: u64 = 5 * DAY;

/// SplitMix64: a fixed, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CODES: [&str; 3] = ["alice10", "bob", "carol-x"];

struct Data {
    scans: Vec<Scan>,
    conversions: Vec<Conversion>,
}

fn scan(rng: &mut Rng, counter: &mut u64, ts_ms: u64) -> Scan {
    *counter += 1;
    let code = match rng.below(10) {
        0..=4 => "alice10",
        5..=7 => "bob",
        _ => "carol-x",
    };
    let bot = rng.chance(15);
    Scan {
        scan_id: ScanId::from_parts(ts_ms, 7, *counter).to_string(),
        ts_ms,
        code: code.to_string(),
        channel: rng.pick(&["yt", "ig", "tt", "bio", ""]).to_string(),
        visitor_id: format!("v{}", rng.below(300)),
        ip_prefix: format!("10.0.{}.0", rng.below(50)),
        user_agent: "Mozilla/5.0".to_string(),
        device: if bot {
            "bot"
        } else {
            rng.pick(&["mobile", "mobile", "desktop", "tablet"])
        }
        .to_string(),
        os: rng.pick(&["ios", "android", "windows", ""]).to_string(),
        browser: rng.pick(&["safari", "chrome", "firefox"]).to_string(),
        in_app: rng
            .pick(&["", "", "instagram", "youtube", "tiktok"])
            .to_string(),
        referrer_host: rng
            .pick(&["", "instagram.com", "youtube.com", "t.co"])
            .to_string(),
        country: rng.pick(&["DE", "DE", "US", "FR", ""]).to_string(),
        source: if rng.chance(40) { "qr" } else { "link" }.to_string(),
        bot_reason: if bot {
            rng.pick(&["ua:facebookexternalhit", "head", "prefetch"])
                .to_string()
        } else {
            String::new()
        },
        is_unique: rng.chance(50),
    }
}

fn generate() -> Data {
    let mut rng = Rng(0xC0DE_11AC);
    let mut counter = 0u64;
    let mut scans = Vec::new();
    for _ in 0..1900 {
        let ts = OCT21 + rng.below(10 * DAY);
        scans.push(scan(&mut rng, &mut counter, ts));
    }
    // A burst around the repeated hour (00:00-02:00 UTC = 02:00 CEST .. 02:00 CET .. 03:00 CET).
    for _ in 0..100 {
        let ts = DST_END - HOUR + rng.below(2 * HOUR);
        scans.push(scan(&mut rng, &mut counter, ts));
    }
    // The spring cluster, across the skipped hour.
    for _ in 0..60 {
        let ts = MAR27 + rng.below(5 * DAY);
        scans.push(scan(&mut rng, &mut counter, ts));
    }
    for _ in 0..20 {
        let ts = DST_START - 2 * HOUR + rng.below(4 * HOUR);
        scans.push(scan(&mut rng, &mut counter, ts));
    }
    scans.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));

    let humans: Vec<&Scan> = scans.iter().filter(|s| s.bot_reason.is_empty()).collect();
    let mut conversions = Vec::new();
    for i in 0..210u64 {
        let kind = match rng.below(20) {
            0..=9 => ConversionKind::Signup,
            10..=16 => ConversionKind::Purchase,
            _ => ConversionKind::Refund,
        };
        let rule = match rng.below(20) {
            0..=7 => Rule::ScanId,
            8..=11 => Rule::Visitor,
            12..=14 => Rule::Inherited,
            15..=17 => Rule::CodeOnly,
            _ => Rule::Unattributed,
        };
        let dangling = i % 50 == 7; // a scan id that was never stored
        let with_scan = matches!(rule, Rule::ScanId | Rule::Visitor)
            || (rule == Rule::Inherited && rng.chance(60));
        let (code, channel, scan_id, scan_ms, visitor, occurred) = if with_scan && dangling {
            let ts = OCT21 + rng.below(9 * DAY);
            let code = CODES[rng.below(3) as usize];
            let id = ScanId::from_parts(ts, 999, i).to_string();
            (
                code.to_string(),
                "yt".to_string(),
                id,
                ts,
                "v-gone".to_string(),
                ts + rng.below(DAY),
            )
        } else if with_scan {
            let s = humans[rng.below(humans.len() as u64) as usize];
            // Mostly within hours, some days later (their scan may lie before a query's range).
            let delay = if rng.chance(70) {
                rng.below(6 * HOUR)
            } else {
                rng.below(4 * DAY)
            };
            (
                s.code.clone(),
                s.channel.clone(),
                s.scan_id.clone(),
                s.ts_ms,
                s.visitor_id.clone(),
                s.ts_ms + delay,
            )
        } else if rule == Rule::Unattributed {
            let ts = OCT21 + rng.below(10 * DAY);
            (
                String::new(),
                String::new(),
                String::new(),
                0,
                String::new(),
                ts,
            )
        } else {
            let ts = OCT21 + rng.below(10 * DAY);
            let code = CODES[rng.below(3) as usize];
            (
                code.to_string(),
                String::new(),
                String::new(),
                0,
                format!("v{}", rng.below(300)),
                ts,
            )
        };
        let owner = match code.as_str() {
            "" => "",
            "bob" if occurred < OCT21 + 6 * DAY => "bob",
            "bob" => "bobby",
            _ => "alice",
        };
        let (amount, currency) = match kind {
            ConversionKind::Signup => (0, ""),
            _ => (
                100 + rng.below(20_000) as i64,
                if rng.chance(60) { "EUR" } else { "USD" },
            ),
        };
        let earnings_currency = match code.as_str() {
            "" => "",
            "bob" => "USD",
            "alice10" => "EUR",
            _ if kind == ConversionKind::Signup => "EUR",
            _ => currency,
        };
        let earnings = match (kind, code.as_str()) {
            (_, "") => 0,
            (ConversionKind::Signup, _) => 200,
            (ConversionKind::Purchase, _) => amount / 10,
            (ConversionKind::Refund, _) => -(amount / 10),
        };
        conversions.push(Conversion {
            event_id: format!("ev{i:05}"),
            kind,
            occurred_ms: occurred,
            received_ms: occurred + 1000,
            code,
            owner: owner.to_string(),
            channel,
            scan_id,
            scan_ms,
            visitor_id: visitor,
            customer_id: format!("cust{}", rng.below(120)),
            amount,
            currency: currency.to_string(),
            rule,
            earnings,
            earnings_currency: earnings_currency.to_string(),
            repeat: false,
        });
    }
    Data { scans, conversions }
}

// ---------------------------------------------------------------------------
// Expected answers, by plain loops.

fn scan_in(q: &Query, s: &Scan) -> bool {
    s.ts_ms >= q.from_ms
        && s.ts_ms < q.to_ms
        && q.codes.as_ref().is_none_or(|c| c.contains(&s.code))
}

fn conversion_in(q: &Query, c: &Conversion) -> bool {
    c.occurred_ms >= q.from_ms
        && c.occurred_ms < q.to_ms
        && q.codes.as_ref().is_none_or(|codes| codes.contains(&c.code))
        && q.owner.as_ref().is_none_or(|o| &c.owner == o)
}

fn is_human(s: &Scan) -> bool {
    s.bot_reason.is_empty()
}

fn confirmed(q: &Query, c: &Conversion) -> bool {
    c.occurred_ms + q.hold_ms <= q.now_ms
}

fn money(map: BTreeMap<String, i64>) -> Vec<Money> {
    map.into_iter()
        .map(|(currency, amount)| Money { currency, amount })
        .collect()
}

fn earnings_of<'a>(convs: impl Iterator<Item = &'a Conversion>) -> Vec<Money> {
    let mut m = BTreeMap::new();
    for c in convs.filter(|c| !c.earnings_currency.is_empty()) {
        *m.entry(c.earnings_currency.clone()).or_insert(0) += c.earnings;
    }
    money(m)
}

fn expected_summary(d: &Data, q: &Query) -> Summary {
    let scans: Vec<&Scan> = d.scans.iter().filter(|s| scan_in(q, s)).collect();
    let convs: Vec<&Conversion> = d
        .conversions
        .iter()
        .filter(|c| conversion_in(q, c))
        .collect();
    let human: Vec<&&Scan> = scans.iter().filter(|s| is_human(s)).collect();
    let unique = human
        .iter()
        .map(|s| &s.visitor_id)
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let count = |k: ConversionKind| convs.iter().filter(|c| c.kind == k).count() as u64;
    let mut revenue = BTreeMap::new();
    for c in &convs {
        if c.currency.is_empty() {
            continue;
        }
        match c.kind {
            ConversionKind::Purchase => *revenue.entry(c.currency.clone()).or_insert(0) += c.amount,
            ConversionKind::Refund => *revenue.entry(c.currency.clone()).or_insert(0) -= c.amount,
            ConversionKind::Signup => {}
        }
    }
    let mut delays: Vec<f64> = convs
        .iter()
        .filter(|c| c.kind == ConversionKind::Signup && c.scan_ms > 0)
        .map(|c| (c.occurred_ms as f64 - c.scan_ms as f64) / 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    let median = match delays.len() {
        0 => None,
        n if n % 2 == 1 => Some(delays[n / 2]),
        n => Some((delays[n / 2 - 1] + delays[n / 2]) / 2.0),
    };
    let signups = count(ConversionKind::Signup);
    let purchases = count(ConversionKind::Purchase);
    let per_scanner = |n: u64| {
        if unique == 0 {
            0.0
        } else {
            n as f64 / unique as f64
        }
    };
    Summary {
        scans: scans.len() as u64,
        human_scans: human.len() as u64,
        bot_scans: (scans.len() - human.len()) as u64,
        qr_scans: human.iter().filter(|s| s.source == "qr").count() as u64,
        link_scans: human.iter().filter(|s| s.source == "link").count() as u64,
        unique_scanners: unique,
        signups,
        purchases,
        refunds: count(ConversionKind::Refund),
        revenue: money(revenue),
        earnings_estimated: earnings_of(convs.iter().copied().filter(|c| !confirmed(q, c))),
        earnings_confirmed: earnings_of(convs.iter().copied().filter(|c| confirmed(q, c))),
        scan_to_signup: per_scanner(signups),
        scan_to_purchase: per_scanner(purchases),
        median_scan_to_signup_secs: median,
    }
}

fn expected_funnel(d: &Data, q: &Query) -> Funnel {
    let s = expected_summary(d, q);
    Funnel {
        scans: s.human_scans,
        unique_scanners: s.unique_scanners,
        signups: s.signups,
        purchases: s.purchases,
    }
}

/// Europe/Berlin in 2025, written out: CEST (+2) from 2025-03-30T01:00Z to
/// 2025-10-26T01:00Z, else CET (+1). UTC is offset 0.
fn offset_secs(tz: &str, second: i64) -> i64 {
    match tz {
        "UTC" => 0,
        "Europe/Berlin" => {
            if second >= (DST_START / 1000) as i64 && second < (DST_END / 1000) as i64 {
                7200
            } else {
                3600
            }
        }
        other => panic!("no offsets for {other}"),
    }
}

fn bucket_start(tz: &str, interval: Interval, second: i64) -> i64 {
    let off = offset_secs(tz, second);
    match interval {
        Interval::Hour => second - (second + off).rem_euclid(3600),
        Interval::Day => {
            let local_midnight = (second + off).div_euclid(86_400) * 86_400;
            // The offset in force at that midnight (Berlin never changes at midnight).
            [7200, 3600, 0]
                .into_iter()
                .map(|o| local_midnight - o)
                .find(|&t| t + offset_secs(tz, t) == local_midnight && t <= second)
                .expect("a midnight")
        }
    }
}

/// Howard Hinnant's days → civil date.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn rfc3339(tz: &str, second: i64) -> String {
    let off = offset_secs(tz, second);
    let local = second + off;
    let (y, m, d) = civil(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        if off < 0 { '-' } else { '+' },
        off.abs() / 3600,
        off.abs() / 60 % 60
    )
}

fn expected_timeseries(d: &Data, q: &Query, interval: Interval) -> Vec<Bucket> {
    let mut scans: BTreeMap<i64, Vec<&Scan>> = BTreeMap::new();
    let mut convs: BTreeMap<i64, Vec<&Conversion>> = BTreeMap::new();
    for s in d.scans.iter().filter(|s| scan_in(q, s)) {
        let b = bucket_start(&q.tz, interval, (s.ts_ms / 1000) as i64);
        scans.entry(b).or_default().push(s);
    }
    for c in d.conversions.iter().filter(|c| conversion_in(q, c)) {
        let b = bucket_start(&q.tz, interval, (c.occurred_ms / 1000) as i64);
        convs.entry(b).or_default().push(c);
    }
    let starts: BTreeSet<i64> = scans.keys().chain(convs.keys()).copied().collect();
    starts
        .into_iter()
        .map(|start| {
            let s = scans.get(&start).cloned().unwrap_or_default();
            let c = convs.get(&start).cloned().unwrap_or_default();
            Bucket {
                start: rfc3339(&q.tz, start),
                human_scans: s.iter().filter(|s| is_human(s)).count() as u64,
                bot_scans: s.iter().filter(|s| !is_human(s)).count() as u64,
                unique_scanners: s
                    .iter()
                    .filter(|s| is_human(s))
                    .map(|s| &s.visitor_id)
                    .collect::<BTreeSet<_>>()
                    .len() as u64,
                signups: c
                    .iter()
                    .filter(|c| c.kind == ConversionKind::Signup)
                    .count() as u64,
                purchases: c
                    .iter()
                    .filter(|c| c.kind == ConversionKind::Purchase)
                    .count() as u64,
                earnings: earnings_of(c.iter().copied()),
            }
        })
        .collect()
}

fn field(s: &Scan, dim: Dimension) -> &str {
    match dim {
        Dimension::Channel => &s.channel,
        Dimension::Country => &s.country,
        Dimension::Device => &s.device,
        Dimension::Browser => &s.browser,
        Dimension::Os => &s.os,
        Dimension::InApp => &s.in_app,
        Dimension::Referrer => &s.referrer_host,
    }
}

fn expected_breakdown(d: &Data, q: &Query, dim: Dimension) -> Vec<BreakdownRow> {
    let by_id: HashMap<&str, &Scan> = d.scans.iter().map(|s| (s.scan_id.as_str(), s)).collect();
    let mut scans: BTreeMap<String, Vec<&Scan>> = BTreeMap::new();
    let mut convs: BTreeMap<String, Vec<&Conversion>> = BTreeMap::new();
    for s in d.scans.iter().filter(|s| scan_in(q, s)) {
        scans.entry(field(s, dim).to_string()).or_default().push(s);
    }
    for c in d.conversions.iter().filter(|c| conversion_in(q, c)) {
        let key = if dim == Dimension::Channel {
            c.channel.clone()
        } else {
            by_id
                .get(c.scan_id.as_str())
                .map(|s| field(s, dim).to_string())
                .unwrap_or_default()
        };
        convs.entry(key).or_default().push(c);
    }
    let keys: BTreeSet<String> = scans.keys().chain(convs.keys()).cloned().collect();
    let mut rows: Vec<BreakdownRow> = keys
        .into_iter()
        .map(|key| {
            let s = scans.get(&key).cloned().unwrap_or_default();
            let c = convs.get(&key).cloned().unwrap_or_default();
            BreakdownRow {
                human_scans: s.iter().filter(|s| is_human(s)).count() as u64,
                bot_scans: s.iter().filter(|s| !is_human(s)).count() as u64,
                unique_scanners: s
                    .iter()
                    .filter(|s| is_human(s))
                    .map(|s| &s.visitor_id)
                    .collect::<BTreeSet<_>>()
                    .len() as u64,
                signups: c
                    .iter()
                    .filter(|c| c.kind == ConversionKind::Signup)
                    .count() as u64,
                purchases: c
                    .iter()
                    .filter(|c| c.kind == ConversionKind::Purchase)
                    .count() as u64,
                earnings: earnings_of(c.iter().copied()),
                key,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.human_scans.cmp(&a.human_scans).then(a.key.cmp(&b.key)));
    rows
}

fn expected_top(d: &Data, q: &Query, metric: TopMetric, limit: usize) -> Vec<TopRow> {
    let convs: Vec<&Conversion> = d
        .conversions
        .iter()
        .filter(|c| conversion_in(q, c) && !c.code.is_empty())
        .collect();
    let mut values: BTreeMap<String, i64> = BTreeMap::new();
    let mut currency = String::new();
    match metric {
        TopMetric::Scans => {
            for s in d.scans.iter().filter(|s| scan_in(q, s) && is_human(s)) {
                *values.entry(s.code.clone()).or_insert(0) += 1;
            }
        }
        TopMetric::Conversions => {
            for c in &convs {
                if c.kind != ConversionKind::Refund {
                    *values.entry(c.code.clone()).or_insert(0) += 1;
                }
            }
        }
        TopMetric::Earnings => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for c in convs.iter().filter(|c| !c.earnings_currency.is_empty()) {
                *counts.entry(&c.earnings_currency).or_insert(0) += 1;
            }
            let most = counts.values().copied().max().unwrap_or(0);
            currency = counts
                .iter()
                .find(|(_, n)| **n == most)
                .map(|(c, _)| c.to_string())
                .unwrap_or_default();
            for c in convs.iter().filter(|c| c.earnings_currency == currency) {
                *values.entry(c.code.clone()).or_insert(0) += c.earnings;
            }
        }
    }
    let mut rows: Vec<TopRow> = values
        .into_iter()
        .map(|(code, value)| {
            // A creator's view names the creator; else the owner credited
            // with the code's latest conversion.
            let owner = q.owner.clone().unwrap_or_else(|| {
                d.conversions
                    .iter()
                    .filter(|c| c.code == code)
                    .max_by(|a, b| (a.occurred_ms, &a.event_id).cmp(&(b.occurred_ms, &b.event_id)))
                    .map(|c| c.owner.clone())
                    .unwrap_or_default()
            });
            TopRow {
                code,
                owner,
                value,
                currency: currency.clone(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.value.cmp(&a.value).then(a.code.cmp(&b.code)));
    rows.truncate(limit);
    rows
}

// ---------------------------------------------------------------------------

fn assert_summary(actual: &Summary, expected: &Summary, ctx: &str) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(
        close(actual.scan_to_signup, expected.scan_to_signup),
        "{ctx}: scan_to_signup {} != {}",
        actual.scan_to_signup,
        expected.scan_to_signup
    );
    assert!(
        close(actual.scan_to_purchase, expected.scan_to_purchase),
        "{ctx}: scan_to_purchase {} != {}",
        actual.scan_to_purchase,
        expected.scan_to_purchase
    );
    match (
        actual.median_scan_to_signup_secs,
        expected.median_scan_to_signup_secs,
    ) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{ctx}: median {a} != {b}"),
        (a, b) => panic!("{ctx}: median {a:?} != {b:?}"),
    }
    let strip = |s: &Summary| Summary {
        scan_to_signup: 0.0,
        scan_to_purchase: 0.0,
        median_scan_to_signup_secs: None,
        ..s.clone()
    };
    assert_eq!(strip(actual), strip(expected), "{ctx}: summary");
}

fn query(from_ms: u64, to_ms: u64, tz: &str, codes: Option<&[&str]>) -> Query {
    Query {
        from_ms,
        to_ms,
        tz: tz.to_string(),
        codes: codes.map(|c| c.iter().map(|s| s.to_string()).collect()),
        owner: None,
        now_ms: NOW,
        hold_ms: HOLD,
    }
}

async fn check(backends: &[(&str, &Analytics)], d: &Data, name: &str, q: &Query) {
    let summary = expected_summary(d, q);
    let funnel = expected_funnel(d, q);
    for (backend, a) in backends {
        let ctx = format!("{backend} / {name}");
        assert_summary(&a.summary(q).await.unwrap(), &summary, &ctx);
        assert_eq!(a.funnel(q).await.unwrap(), funnel, "{ctx}: funnel");
        for interval in [Interval::Hour, Interval::Day] {
            let expected = expected_timeseries(d, q, interval);
            let actual = a.timeseries(q, interval).await.unwrap();
            assert_eq!(actual, expected, "{ctx}: timeseries by {interval}");
        }
        for dim in Dimension::ALL {
            let expected = expected_breakdown(d, q, dim);
            let actual = a.breakdown(q, dim).await.unwrap();
            assert_eq!(actual, expected, "{ctx}: breakdown by {dim}");
        }
        for metric in [
            TopMetric::Earnings,
            TopMetric::Scans,
            TopMetric::Conversions,
        ] {
            for limit in [2, 10] {
                let expected = expected_top(d, q, metric, limit);
                let actual = a.top(q, metric, limit).await.unwrap();
                assert_eq!(actual, expected, "{ctx}: top {limit} by {metric}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_answer_like_plain_loops() {
    let data = generate();

    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedSink::open(dir.path(), true, true).unwrap();
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: "codelink_q".to_string(),
        user: None,
        password: None,
    });

    // Five batches; batch 1 is written twice (a spool replay), batch 3's rows
    // again under a new batch id (a retried conversion / re-sent scan).
    let n = 5;
    let batches: Vec<Batch> = (0..n)
        .map(|i| {
            let part = |len: usize| (i * len / n)..((i + 1) * len / n);
            Batch::new(
                data.scans[part(data.scans.len())].to_vec(),
                data.conversions[part(data.conversions.len())].to_vec(),
            )
        })
        .collect();
    // No background merges: the duplicates stay as rows, FINAL must collapse them.
    events.migrate().await.unwrap();
    server.query("SYSTEM STOP MERGES codelink_q.scans");
    server.query("SYSTEM STOP MERGES codelink_q.conversions");
    let mut writes: Vec<Batch> = batches.clone();
    writes.insert(2, batches[1].clone());
    writes.push(Batch::new(
        batches[3].scans.clone(),
        batches[3].conversions.clone(),
    ));
    for batch in &writes {
        embedded
            .write(&std::sync::Arc::new(batch.clone()))
            .await
            .unwrap();
        events.write(batch).await.unwrap();
    }
    assert_eq!(
        server.query("SELECT count() FROM codelink_q.scans").trim(),
        (data.scans.len() + batches[1].scans.len() + batches[3].scans.len()).to_string(),
        "the duplicates are stored"
    );
    assert_eq!(
        server
            .query("SELECT count() FROM codelink_q.conversions")
            .trim(),
        (data.conversions.len() + batches[1].conversions.len() + batches[3].conversions.len())
            .to_string(),
    );

    let embedded = Analytics::Embedded(embedded);
    let clickhouse = Analytics::from(events);
    let backends = [("embedded", &embedded), ("clickhouse", &clickhouse)];

    // The data set is what the queries need.
    let all = query(0, u64::MAX / 2, "UTC", None);
    let s = expected_summary(&data, &all);
    assert_eq!(s.scans, data.scans.len() as u64);
    assert!(
        s.bot_scans > 100 && s.qr_scans > 100 && s.link_scans > 100,
        "{s:?}"
    );
    assert!(s.unique_scanners < s.human_scans);
    assert!(
        s.signups > 50 && s.purchases > 30 && s.refunds > 10,
        "{s:?}"
    );
    assert_eq!(s.revenue.len(), 2);
    assert!(!s.earnings_estimated.is_empty() && !s.earnings_confirmed.is_empty());
    assert!(s.median_scan_to_signup_secs.is_some());
    assert!(data.conversions.iter().any(|c| c.code.is_empty()));

    check(&backends, &data, "everything, UTC", &all).await;
    let oct = (OCT21, OCT21 + 10 * DAY);
    check(
        &backends,
        &data,
        "October, Berlin",
        &query(oct.0, oct.1, "Europe/Berlin", None),
    )
    .await;
    check(
        &backends,
        &data,
        "one code, mid-October (attributed scans before from), Berlin",
        &query(
            OCT21 + 2 * DAY + 5 * HOUR,
            OCT21 + 7 * DAY,
            "Europe/Berlin",
            Some(&["alice10"]),
        ),
    )
    .await;
    check(
        &backends,
        &data,
        "two codes, October, UTC",
        &query(oct.0, oct.1, "UTC", Some(&["bob", "carol-x"])),
    )
    .await;
    // `bob` changes hands (bob → bobby) in the middle of October: each owner's
    // view holds the conversions credited while they owned it, nothing else.
    for owner in ["bob", "bobby"] {
        let q = Query {
            owner: Some(owner.to_string()),
            ..query(oct.0, oct.1, "UTC", Some(&["bob"]))
        };
        let n = data
            .conversions
            .iter()
            .filter(|c| conversion_in(&q, c))
            .count();
        let all_bob = data
            .conversions
            .iter()
            .filter(|c| {
                conversion_in(
                    &Query {
                        owner: None,
                        ..q.clone()
                    },
                    c,
                )
            })
            .count();
        assert!(n > 0 && n < all_bob, "{owner}: {n} of {all_bob}");
        check(
            &backends,
            &data,
            &format!("code bob as seen by {owner}"),
            &q,
        )
        .await;
    }
    check(
        &backends,
        &data,
        "the night DST ends, Berlin",
        &query(
            DST_END - 20 * HOUR,
            DST_END + 20 * HOUR,
            "Europe/Berlin",
            None,
        ),
    )
    .await;
    check(
        &backends,
        &data,
        "the night DST starts, Berlin, odd ms bounds",
        &query(
            DST_START - 30 * HOUR + 1,
            DST_START + 30 * HOUR - 1,
            "Europe/Berlin",
            Some(&["bob", "alice10"]),
        ),
    )
    .await;
    check(
        &backends,
        &data,
        "an unknown code",
        &query(oct.0, oct.1, "UTC", Some(&["nobody", "o'brien\\"])),
    )
    .await;
    check(
        &backends,
        &data,
        "no codes",
        &query(oct.0, oct.1, "UTC", Some(&[])),
    )
    .await;
    check(
        &backends,
        &data,
        "empty range",
        &query(oct.1, oct.0, "UTC", None),
    )
    .await;

    // The repeated hour gives two hour buckets with different offsets.
    let night = query(
        DST_END - 2 * HOUR,
        DST_END + 2 * HOUR,
        "Europe/Berlin",
        None,
    );
    let starts: Vec<String> = clickhouse
        .timeseries(&night, Interval::Hour)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.start)
        .collect();
    assert_eq!(
        starts,
        [
            "2025-10-26T01:00:00+02:00",
            "2025-10-26T02:00:00+02:00",
            "2025-10-26T02:00:00+01:00",
            "2025-10-26T03:00:00+01:00"
        ]
    );

    // A bad time zone is refused up front (valid_tz) and by both backends.
    assert!(codelink_analytics::query::valid_tz("europe/berlin"));
    assert!(!codelink_analytics::query::valid_tz("Mars/Olympus"));
    for (_, a) in &backends {
        let bad = query(oct.0, oct.1, "Mars/Olympus", None);
        let err = a.timeseries(&bad, Interval::Day).await.unwrap_err();
        assert!(err.to_string().contains("invalid query"), "{err}");
    }
}

/// The ClickHouse summary of one code in a `scans` table of 10M rows (20 codes,
/// two months, so 500k rows of that code) plus 1M conversions: well under
/// 200 ms. Ignored by default (loading takes ~15 s): `cargo test -p
/// codelink-analytics --test analytics_backends -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: loads 10M rows"]
async fn per_code_summary_on_ten_million_scans() {
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: "bench".to_string(),
        user: None,
        password: None,
    });
    events.migrate().await.unwrap();
    let start = 1_759_276_800u64; // 2025-10-01
    let span = 61 * 86_400;
    server.query(&format!(
        "INSERT INTO bench.scans SELECT concat('S', toString(number)) AS scan_id, \
         toDateTime({start} + intDiv(number * 7919, 10) % {span}) AS ts, \
         toUInt64(ts) * 1000 + number % 1000 AS ts_ms, concat('code', toString(number % 20)) AS code, \
         ['yt', 'ig', 'tt', ''][number % 4 + 1] AS channel, concat('v', toString(number % 50000)) AS visitor_id, \
         '' AS ip_prefix, '' AS user_agent, 'mobile' AS device, 'ios' AS os, 'safari' AS browser, \
         '' AS in_app, '' AS referrer_host, 'DE' AS country, if(number % 3 = 0, 'qr', 'link') AS source, \
         toUInt8(number % 7 = 0) AS is_bot, if(number % 7 = 0, 'head', '') AS bot_reason, 0 AS is_unique \
         FROM numbers(10000000)"
    ));
    server.query(&format!(
        "INSERT INTO bench.conversions SELECT concat('E', toString(number)) AS event_id, \
         ['signup', 'purchase', 'refund'][number % 3 + 1] AS kind, \
         toDateTime({start} + intDiv(number * 7919, 10) % {span}) AS occurred, \
         toUInt64(occurred) * 1000 AS occurred_ms, occurred_ms AS received_ms, \
         concat('code', toString(number % 20)) AS code, 'alice' AS owner, 'yt' AS channel, \
         concat('S', toString(number * 10)) AS scan_id, occurred_ms - 60000 AS scan_ms, '' AS visitor_id, \
         '' AS customer_id, 1000 AS amount, 'EUR' AS currency, 'scan_id' AS rule, 100 AS earnings, \
         'EUR' AS earnings_currency FROM numbers(1000000)"
    ));
    let analytics = Analytics::ClickHouse(Box::new(events));
    let q = Query {
        from_ms: start * 1000,
        to_ms: (start + span) * 1000,
        tz: "UTC".to_string(),
        codes: Some(vec!["code3".to_string()]),
        owner: None,
        now_ms: (start + span) * 1000,
        hold_ms: 30 * DAY,
    };
    for settled in [false, true] {
        if settled {
            // What background merges reach over time: one part per partition.
            server.query("OPTIMIZE TABLE bench.scans FINAL");
            server.query("OPTIMIZE TABLE bench.conversions FINAL");
        }
        let summary = analytics.summary(&q).await.unwrap();
        assert_eq!(summary.scans, 500_000);
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = std::time::Instant::now();
            analytics.summary(&q).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        println!("per-code summary over 10M scans (settled: {settled}): median {median:?}, all {times:?}");
        assert!(median < std::time::Duration::from_millis(200), "{median:?}");
    }
}

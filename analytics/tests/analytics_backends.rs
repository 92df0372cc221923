//! The analytics queries answered from rollups by both backends (embedded redb
//! and ClickHouse 18.16, on one node and on a cluster of two shards) over one
//! deterministic data set, checked against
//! answers computed here from the raw rows with plain loops.
//!
//! The data: 3 codes, 2 owners (one code changes owner), ~2000 scans over ten
//! days around the end of DST in Europe/Berlin (2025-10-26, with a burst in the
//! repeated hour) plus a cluster around the start of DST (2025-03-30); humans
//! and bots, QR and link, repeating visitors; ~200 conversions of every kind and
//! rule, some unattributed, some with a scan id that was never stored, two
//! currencies, some past the hold. Written in batches: one scan batch three
//! times and one conversion batch twice (spool replays), and brands' repeats of
//! some events (flagged `repeat`), among them events whose first recording was
//! lost. Time zones: UTC, Europe/Berlin (DST), Asia/Kolkata (+05:30) and
//! Asia/Kathmandu (+05:45).

mod plain;

use codelink_analytics::batch::Batch;
use codelink_analytics::event::{Conversion, ConversionKind, Flagged, Rule, Scan};
use codelink_analytics::query::{
    effective_range, Backend, BreakdownRow, Bucket, CodeRow, Dimension, Funnel, Interval, Money,
    Query, Summary, TopMetric, TopRow,
};
use codelink_analytics::review::{Adjustment, ReviewStatus};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents, EmbeddedSink};
use codelink_analytics::ScanId;
use codelink_testkit::{ClickHouseCluster, ClickHouseServer};
use plain::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    /// The conversions as reviews left them (what the answers must show:
    /// see [`Rows`]).
    conversions: Vec<Conversion>,
    /// The conversions as decided at ingest and written (flagged ones earn 0).
    stored: Vec<Conversion>,
    /// The review decisions' changes, written after the conversions.
    adjustments: Vec<Adjustment>,
}

impl Rows for Data {
    fn scans(&self) -> &[Scan] {
        &self.scans
    }
    fn conversions(&self) -> &[Conversion] {
        &self.conversions
    }
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
        scan_id: ScanId::from_parts(ts_ms, 7, *counter).to_string().into(),
        ts_ms,
        code: code.into(),
        channel: rng.pick(&["yt", "ig", "tt", "bio", ""]).into(),
        visitor_id: format!("v{}", rng.below(300)).into(),
        ip_prefix: format!("10.0.{}.0", rng.below(50)).into(),
        user_agent: "Mozilla/5.0".into(),
        device: if bot {
            "bot"
        } else {
            rng.pick(&["mobile", "mobile", "desktop", "tablet"])
        }
        .into(),
        os: rng
            .pick(&["ios", "android", "windows", ""])
            .to_string()
            .into(),
        browser: rng
            .pick(&["safari", "chrome", "firefox"])
            .to_string()
            .into(),
        in_app: rng.pick(&["", "", "instagram", "youtube", "tiktok"]).into(),
        referrer_host: rng
            .pick(&["", "instagram.com", "youtube.com", "t.co"])
            .into(),
        country: rng.pick(&["DE", "DE", "US", "FR", ""]).into(),
        // One draw, as before bio taps were added: the rest of the data set
        // (and what it is checked to contain) stays the same.
        source: match rng.below(100) {
            0..40 => "qr",
            40..55 => "bio",
            _ => "link",
        }
        .into(),
        bot_reason: if bot {
            rng.pick(&[
                "ua:facebookexternalhit",
                "head",
                "prefetch",
                "repeat",
                "suspect:no-accept-language",
                "datacenter",
            ])
            .into()
        } else {
            Default::default()
        },
        is_unique: rng.chance(50),
        unknown_channel: Default::default(),
        // The routing rule that sent it (from the counter, so that the
        // random draws, and with them the rest of the data, stay as they were).
        route: match *counter % 5 {
            0 => "ios-de",
            1 | 2 => "1",
            _ => "",
        }
        .into(),
        ..Scan::default()
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
                s.code.to_string(),
                s.channel.to_string(),
                s.scan_id.to_string(),
                s.ts_ms,
                s.visitor_id.to_string(),
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
            flagged: None,
        });
    }
    // Fraud checks flag some attributed signups and purchases (they earn 0,
    // holding their earnings); reviews approve a third of them, reject a
    // third and leave the rest pending.
    let mut stored = conversions;
    let mut reviewed = Vec::new();
    let mut adjustments = Vec::new();
    let mut flagged = 0;
    for c in &mut stored {
        if c.code.is_empty() || c.kind == ConversionKind::Refund || rng.below(6) != 0 {
            reviewed.push(c.clone());
            continue;
        }
        c.flagged = Some(Flagged {
            flags: vec!["too_fast".into()],
            held: c.earnings,
        });
        c.earnings = 0;
        let status = match flagged % 3 {
            0 => ReviewStatus::Approved,
            1 => ReviewStatus::Rejected,
            _ => ReviewStatus::Pending,
        };
        flagged += 1;
        adjustments.extend(Adjustment::of(c, status));
        let held = c.flagged.as_ref().unwrap().held;
        reviewed.push(match status {
            ReviewStatus::Approved => Conversion {
                earnings: held,
                flagged: None,
                ..c.clone()
            },
            ReviewStatus::Rejected => Conversion {
                flagged: Some(Flagged {
                    flags: vec!["too_fast".into()],
                    held: 0,
                }),
                ..c.clone()
            },
            ReviewStatus::Pending => c.clone(),
        });
    }
    Data {
        scans,
        conversions: reviewed,
        stored,
        adjustments,
    }
}

// ---------------------------------------------------------------------------
// Expected answers, by plain loops over the raw rows.

fn expected_funnel(d: &Data, q: &Query) -> Funnel {
    let s = expected_summary(d, q);
    Funnel {
        scans: s.human_scans,
        unique_scanners: s.unique_scanners,
        unique_scanners_exact: s.unique_scanners_exact,
        signups: s.signups,
        purchases: s.purchases,
        flagged_signups: s.flagged_signups,
        flagged_purchases: s.flagged_purchases,
    }
}

/// The start (Unix seconds) of the hour or day holding `second` in `tz`.
fn bucket_start(tz: &str, interval: Interval, second: i64) -> i64 {
    let zone = jiff::tz::TimeZone::get(tz).unwrap();
    let ts = jiff::Timestamp::from_second(second).unwrap();
    match interval {
        Interval::Hour => {
            let offset = i64::from(zone.to_offset(ts).seconds());
            second - (second + offset).rem_euclid(3600)
        }
        Interval::Day => ts
            .to_zoned(zone)
            .start_of_day()
            .unwrap()
            .timestamp()
            .as_second(),
    }
}

fn rfc3339(tz: &str, second: i64) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap();
    jiff::Timestamp::from_second(second)
        .unwrap()
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn expected_timeseries(d: &Data, q: &Query, interval: Interval) -> Vec<Bucket> {
    let range = effective_range(q, false);
    let mut scans: BTreeMap<i64, Vec<&Scan>> = BTreeMap::new();
    let mut convs: BTreeMap<i64, Vec<&Conversion>> = BTreeMap::new();
    for s in d.scans.iter().filter(|s| scan_in(q, range, s)) {
        let b = bucket_start(&q.tz, interval, (s.ts_ms / 1000) as i64);
        scans.entry(b).or_default().push(s);
    }
    for c in d.conversions.iter().filter(|c| conversion_in(q, range, c)) {
        let b = bucket_start(&q.tz, interval, (c.occurred_ms / 1000) as i64);
        convs.entry(b).or_default().push(c);
    }
    let starts: BTreeSet<i64> = scans.keys().chain(convs.keys()).copied().collect();
    starts
        .into_iter()
        .map(|start| {
            let s = scans.get(&start).cloned().unwrap_or_default();
            let c = convs.get(&start).cloned().unwrap_or_default();
            let unique = uniques(s.iter());
            Bucket {
                start: rfc3339(&q.tz, start),
                human_scans: s.iter().filter(|s| is_human(s)).count() as u64,
                suspect_scans: s
                    .iter()
                    .filter(|s| s.verdict() == codelink_analytics::event::Verdict::Suspect)
                    .count() as u64,
                bot_scans: s
                    .iter()
                    .filter(|s| s.verdict() == codelink_analytics::event::Verdict::Bot)
                    .count() as u64,
                unique_scanners: unique,
                unique_scanners_exact: unique <= 100,
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

fn expected_top(d: &Data, q: &Query, metric: TopMetric, limit: usize) -> Vec<TopRow> {
    let range = effective_range(q, false);
    let convs: Vec<&Conversion> = d
        .conversions
        .iter()
        .filter(|c| conversion_in(q, range, c) && !c.code.is_empty())
        .collect();
    let mut values: BTreeMap<String, i128> = BTreeMap::new();
    let mut currency = String::new();
    match metric {
        TopMetric::Scans => {
            for s in d
                .scans
                .iter()
                .filter(|s| scan_in(q, range, s) && is_human(s))
            {
                *values.entry(s.code.to_string()).or_insert(0) += 1;
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
                *values.entry(c.code.clone()).or_insert(0) += i128::from(c.earnings);
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

/// One row per code with a human scan or a conversion in the range; unique
/// scanners (and ratios) only with a code list.
fn expected_code_rows(d: &Data, q: &Query) -> Vec<CodeRow> {
    let range = effective_range(q, false);
    let codes: BTreeSet<&str> = d
        .scans
        .iter()
        .map(|s| s.code.as_str())
        .chain(d.conversions.iter().map(|c| c.code.as_str()))
        .filter(|c| !c.is_empty())
        .collect();
    let mut rows = Vec::new();
    for code in codes {
        let scans: Vec<&Scan> = d
            .scans
            .iter()
            .filter(|s| s.code == code && scan_in(q, range, s))
            .collect();
        let convs: Vec<&Conversion> = d
            .conversions
            .iter()
            .filter(|c| c.code == code && conversion_in(q, range, c))
            .collect();
        let human = scans.iter().filter(|s| is_human(s)).count() as u64;
        if human == 0 && convs.is_empty() {
            continue;
        }
        let count = |k: ConversionKind| convs.iter().filter(|c| c.kind == k).count() as u64;
        let unique = q.codes.as_ref().map(|_| uniques(scans.iter()));
        let (signups, purchases) = (
            count(ConversionKind::Signup),
            count(ConversionKind::Purchase),
        );
        let ratio = |n: u64| unique.map(|u| if u == 0 { 0.0 } else { n as f64 / u as f64 });
        rows.push(CodeRow {
            code: code.to_string(),
            human_scans: human,
            unique_scanners: unique,
            signups,
            purchases,
            refunds: count(ConversionKind::Refund),
            earnings_estimated: earnings_of(convs.iter().copied().filter(|c| !confirmed(q, c))),
            earnings_confirmed: earnings_of(convs.iter().copied().filter(|c| confirmed(q, c))),
            scan_to_signup: ratio(signups),
            scan_to_purchase: ratio(purchases),
        });
    }
    rows
}

/// A code's conversions (credited to `owner`), newest first, at most `limit`
/// (clamped to 1..=100).
fn expected_recent(d: &Data, code: &str, owner: Option<&str>, limit: usize) -> Vec<Conversion> {
    if code.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Conversion> = d
        .stored
        .iter()
        .filter(|c| c.code == code && owner.is_none_or(|o| c.owner == o))
        .cloned()
        .collect();
    out.sort_by(|a, b| (b.occurred_ms, &b.event_id).cmp(&(a.occurred_ms, &a.event_id)));
    out.truncate(limit.clamp(1, 100));
    out
}

// ---------------------------------------------------------------------------

/// Code rows: unique scanners as [`assert_uniques`] (no exactness flag here),
/// ratios from the backend's own uniques, the rest equal.
fn assert_code_rows(actual: &[CodeRow], expected: &[CodeRow], ctx: &str) {
    let codes = |rows: &[CodeRow]| rows.iter().map(|r| r.code.clone()).collect::<Vec<_>>();
    assert_eq!(codes(actual), codes(expected), "{ctx}: code rows");
    for (a, e) in actual.iter().zip(expected) {
        let c = format!("{ctx}: code row {}", e.code);
        match (a.unique_scanners, e.unique_scanners) {
            (Some(a), Some(e)) if e <= 100 => assert_eq!(a, e, "{c}: unique scanners"),
            (Some(a), Some(e)) => assert!(
                a.abs_diff(e) as f64 / e as f64 <= 0.06,
                "{c}: unique scanners {a}, expected about {e}"
            ),
            (a, e) => assert_eq!(a, e, "{c}: unique scanners"),
        }
        let ratio = |n: u64| {
            a.unique_scanners
                .map(|u| if u == 0 { 0.0 } else { n as f64 / u as f64 })
        };
        assert_eq!(a.scan_to_signup, ratio(a.signups), "{c}");
        assert_eq!(a.scan_to_purchase, ratio(a.purchases), "{c}");
        let strip = |r: &CodeRow| CodeRow {
            unique_scanners: None,
            scan_to_signup: None,
            scan_to_purchase: None,
            ..r.clone()
        };
        assert_eq!(strip(a), strip(e), "{c}");
    }
}

/// Unique scanners: equal when the expected count is at most 100 (both
/// backends count those exactly), else within 6 % and flagged estimated.
fn assert_uniques(actual: (u64, bool), expected: u64, ctx: &str) {
    if expected <= 100 {
        assert_eq!(actual, (expected, true), "{ctx}: unique scanners");
    } else {
        let error = actual.0.abs_diff(expected) as f64 / expected as f64;
        assert!(
            error <= 0.06 && !actual.1,
            "{ctx}: unique scanners {actual:?}, expected about {expected}"
        );
    }
}

fn assert_summary(actual: &Summary, expected: &Summary, ctx: &str) {
    assert_uniques(
        (actual.unique_scanners, actual.unique_scanners_exact),
        expected.unique_scanners,
        ctx,
    );
    // Ratios follow from the counts: checked against the backend's own uniques.
    let ratio = |n: u64| {
        if actual.unique_scanners == 0 {
            0.0
        } else {
            n as f64 / actual.unique_scanners as f64
        }
    };
    assert_eq!(actual.scan_to_signup, ratio(actual.signups), "{ctx}");
    assert_eq!(actual.scan_to_purchase, ratio(actual.purchases), "{ctx}");
    let strip = |s: &Summary| Summary {
        unique_scanners: 0,
        unique_scanners_exact: false,
        scan_to_signup: 0.0,
        scan_to_purchase: 0.0,
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

async fn check(backends: &[(&str, &Backend)], d: &Data, name: &str, q: &Query) {
    let summary = expected_summary(d, q);
    let funnel = expected_funnel(d, q);
    for (backend, a) in backends {
        let ctx = format!("{backend} / {name}");
        assert_summary(&a.summary(q).await.unwrap(), &summary, &ctx);
        let f = a.funnel(q).await.unwrap();
        assert_uniques(
            (f.unique_scanners, f.unique_scanners_exact),
            funnel.unique_scanners,
            &ctx,
        );
        assert_eq!(
            (f.scans, f.signups, f.purchases),
            (funnel.scans, funnel.signups, funnel.purchases),
            "{ctx}: funnel"
        );
        assert_eq!(
            (f.flagged_signups, f.flagged_purchases),
            (funnel.flagged_signups, funnel.flagged_purchases),
            "{ctx}: funnel, flagged"
        );
        let clean = f.clone().excluding_flagged();
        assert_eq!(
            (clean.signups, clean.purchases),
            (
                funnel.signups - funnel.flagged_signups,
                funnel.purchases - funnel.flagged_purchases
            ),
            "{ctx}: funnel without flagged conversions"
        );
        for interval in [Interval::Hour, Interval::Day] {
            let expected = expected_timeseries(d, q, interval);
            let actual = a.timeseries(q, interval).await.unwrap();
            assert_eq!(
                actual.len(),
                expected.len(),
                "{ctx}: timeseries by {interval}"
            );
            for (a, e) in actual.iter().zip(&expected) {
                let c = format!("{ctx}: timeseries by {interval}, bucket {}", e.start);
                assert_uniques(
                    (a.unique_scanners, a.unique_scanners_exact),
                    e.unique_scanners,
                    &c,
                );
                let strip = |b: &Bucket| Bucket {
                    unique_scanners: 0,
                    unique_scanners_exact: false,
                    ..b.clone()
                };
                assert_eq!(strip(a), strip(e), "{c}");
            }
        }
        for dim in Dimension::ALL {
            let expected = expected_breakdown(d, q, dim);
            let actual = a.breakdown(q, dim).await.unwrap();
            assert_eq!(actual.len(), expected.len(), "{ctx}: breakdown by {dim}");
            for (a, e) in actual.iter().zip(&expected) {
                let c = format!("{ctx}: breakdown by {dim}, key {:?}", e.key);
                assert_uniques(
                    (a.unique_scanners, a.unique_scanners_exact),
                    e.unique_scanners,
                    &c,
                );
                let strip = |r: &BreakdownRow| BreakdownRow {
                    unique_scanners: 0,
                    unique_scanners_exact: false,
                    ..r.clone()
                };
                assert_eq!(strip(a), strip(e), "{c}");
            }
        }
        // Several breakdowns read at once answer as each alone.
        let together = a.breakdowns(q, &Dimension::ALL).await.unwrap();
        assert_eq!(
            together.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
            Dimension::ALL.to_vec()
        );
        for (dim, rows) in &together {
            let alone = a.breakdown(q, *dim).await.unwrap();
            assert_eq!(rows, &alone, "{ctx}: breakdowns together, by {dim}");
        }
        let two = [Dimension::InApp, Dimension::Channel];
        let some = a.breakdowns(q, &two).await.unwrap();
        assert_eq!(some.len(), 2);
        assert_eq!(some[0].1, a.breakdown(q, Dimension::InApp).await.unwrap());
        assert_eq!(some[1].1, a.breakdown(q, Dimension::Channel).await.unwrap());
        assert_code_rows(
            &a.code_rows(q).await.unwrap(),
            &expected_code_rows(d, q),
            &ctx,
        );
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

/// The data in batches as the recorder would cut them: the scans in five
/// batches, then the conversions in three, then the brands' repeats. One scan
/// batch is written three times and one conversion batch twice (spool
/// replays). `lost` conversions are written only as repeats (their first
/// recording never arrived).
fn writes(d: &Data) -> Vec<Batch> {
    let part = |len: usize, i: usize, n: usize| (i * len / n)..((i + 1) * len / n);
    let mut out = Vec::new();
    for i in 0..5 {
        let b = Batch::new(d.scans[part(d.scans.len(), i, 5)].to_vec(), Vec::new());
        out.push(b.clone());
        if i == 2 {
            out.push(b.clone());
            out.push(b);
        }
    }
    let (lost, kept): (Vec<&Conversion>, Vec<&Conversion>) = d.stored.iter().partition(|c| lost(c));
    let kept: Vec<Conversion> = kept.into_iter().cloned().collect();
    for i in 0..3 {
        let b = Batch::new(Vec::new(), kept[part(kept.len(), i, 3)].to_vec());
        out.push(b.clone());
        if i == 1 {
            out.push(b);
        }
    }
    // Repeats: of every 9th stored event (already counted), and of the lost ones.
    let repeats: Vec<Conversion> = kept
        .iter()
        .step_by(9)
        .chain(lost)
        .map(|c| Conversion {
            repeat: true,
            ..c.clone()
        })
        .collect();
    out.push(Batch::new(Vec::new(), repeats));
    // Review adjustments in two batches, the first replayed (spool): each
    // counts once.
    let half = d.adjustments.len() / 2;
    for (i, part) in [&d.adjustments[..half], &d.adjustments[half..]]
        .into_iter()
        .enumerate()
    {
        let mut b = Batch::new(Vec::new(), Vec::new());
        b.adjustments = part.to_vec();
        out.push(b.clone());
        if i == 0 {
            out.push(b);
        }
    }
    out
}

/// Conversions whose first recording never arrives (written only as a repeat).
fn lost(c: &Conversion) -> bool {
    c.event_id.ends_with('3') && c.event_id.as_bytes()[c.event_id.len() - 2] == b'1'
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
        cluster: None,
    });
    events.migrate().await.unwrap();
    // The same on a cluster of two shards (`--clickhouse-cluster`): rows
    // sharded by code, read through the Distributed tables or one shard.
    let cluster = ClickHouseCluster::start(&[1, 1], None);
    let sharded_writer = || {
        ClickHouseEvents::new(&ClickHouseConfig {
            url: cluster.seed().url(),
            database: "codelink_q".to_string(),
            user: None,
            password: None,
            cluster: Some(ClickHouseCluster::NAME.to_string()),
        })
    };
    let sharded = sharded_writer();
    sharded.migrate().await.unwrap();
    // No background merges: replayed rows and rollup inserts stay as they
    // were written; the answers must not depend on merges.
    for table in [
        "scans",
        "conversions",
        "scan_rollup",
        "conversion_rollup",
        "code_totals",
    ] {
        for node in std::iter::once(&server).chain(cluster.nodes()) {
            node.query(&format!("SYSTEM STOP MERGES codelink_q.{table}"));
        }
    }
    let writes = writes(&data);
    assert!(data.conversions.iter().any(lost));
    for batch in &writes {
        embedded.write(&Arc::new(batch.clone())).await.unwrap();
        events.write(batch).await.unwrap();
        // A writer per batch: it remembers no part it wrote, so the replays
        // are skipped by each shard's markers (as after a restart).
        sharded_writer().write(batch).await.unwrap();
    }
    // Both shards hold codes (the data's three and the unattributed '').
    for node in cluster.nodes() {
        let codes = node.query("SELECT count(DISTINCT code) FROM codelink_q.scans");
        assert!(codes.trim() != "0", "every shard holds scans");
    }
    let raw_scans: u64 = server
        .query("SELECT count() FROM codelink_q.scans")
        .trim()
        .parse()
        .unwrap();
    assert!(
        raw_scans > data.scans.len() as u64,
        "the replayed rows are stored twice until merged"
    );

    let embedded = Backend::Embedded(embedded);
    let clickhouse = Backend::from(events);
    let sharded = Backend::from(sharded);
    let backends = [
        ("embedded", &embedded),
        ("clickhouse", &clickhouse),
        ("cluster", &sharded),
    ];

    // The data set is what the queries need.
    let all = query(MAR27 - 2 * DAY, NOW + DAY, "UTC", None);
    let s = expected_summary(&data, &all);
    assert_eq!(s.scans, data.scans.len() as u64);
    assert!(
        s.bot_scans > 100 && s.qr_scans > 100 && s.link_scans > 100,
        "{s:?}"
    );
    assert!(s.unique_scanners > 100 && s.unique_scanners < s.human_scans);
    assert!(
        s.signups > 50 && s.purchases > 30 && s.refunds > 10,
        "{s:?}"
    );
    assert_eq!(s.revenue.len(), 2);
    assert!(!s.earnings_estimated.is_empty() && !s.earnings_confirmed.is_empty());
    assert!(s.median_scan_to_signup_secs.is_some());
    assert!(data.conversions.iter().any(|c| c.code.is_empty()));
    // Reviews moved the numbers: some earnings held, some released, some
    // flagged conversions still counted as such.
    assert!(data.adjustments.len() > 10, "{}", data.adjustments.len());
    assert!(
        !s.earnings_held.is_empty() && s.flagged_signups > 0 && s.flagged_purchases > 0,
        "{s:?}"
    );

    check(&backends, &data, "everything, UTC", &all).await;
    // Taps on the bio page: a `bio` row of the source breakdown on both
    // backends, and link scans in the summary (checked against the model).
    let bio_humans = data
        .scans
        .iter()
        .filter(|s| s.source == "bio" && s.bot_reason.is_empty())
        .count() as u64;
    assert!(bio_humans > 50, "{bio_humans}");
    for (name, backend) in &backends {
        let rows = backend.breakdown(&all, Dimension::Source).await.unwrap();
        let bio = rows.iter().find(|r| r.key == "bio");
        assert_eq!(bio.map(|r| r.human_scans), Some(bio_humans), "{name}");
    }
    let oct = (OCT21, OCT21 + 10 * DAY);
    for tz in ["Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu"] {
        check(
            &backends,
            &data,
            &format!("October, {tz}"),
            &query(oct.0, oct.1, tz, None),
        )
        .await;
    }
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
        "two codes, local days of Kolkata, odd bounds",
        &query(
            OCT21 + 18 * HOUR + 30 * 60_000 + 7,
            OCT21 + 5 * DAY + 18 * HOUR + 29 * 60_000,
            "Asia/Kolkata",
            Some(&["bob", "carol-x"]),
        ),
    )
    .await;
    // `bob` changes hands (bob → bobby) in the middle of October: each owner's
    // view holds the conversions credited while they owned it, nothing else.
    for owner in ["bob", "bobby"] {
        let q = Query {
            owner: Some(owner.to_string()),
            ..query(oct.0, oct.1, "UTC", Some(&["bob"]))
        };
        let range = effective_range(&q, false);
        let n = data
            .conversions
            .iter()
            .filter(|c| conversion_in(&q, range, c))
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
                    range,
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
    // Code rows over every code (the per-code totals, with the owner filter),
    // and each code's recent conversions: the replayed batch's rows and the
    // brands' repeats are listed once, the lost events (stored only as
    // repeats) too.
    let alice10 = expected_recent(&data, "alice10", None, 100);
    assert!(
        alice10.len() > 7 && alice10.len() < 100,
        "{}",
        alice10.len()
    );
    let ev = |c: &Conversion| c.event_id.clone();
    assert!(data
        .conversions
        .iter()
        .filter(|c| lost(c))
        .any(|c| alice10.iter().map(ev).any(|e| e == c.event_id)));
    for owner in [
        None,
        Some("bob"),
        Some("bobby"),
        Some("alice"),
        Some("nobody"),
    ] {
        let q = Query {
            owner: owner.map(str::to_string),
            ..query(oct.0, oct.1, "UTC", None)
        };
        let expected = expected_code_rows(&data, &q);
        // Scans count for every code whoever the owner is: every code has a row.
        assert_eq!(expected.len(), 3, "{owner:?}");
        for (name, backend) in &backends {
            assert_code_rows(
                &backend.code_rows(&q).await.unwrap(),
                &expected,
                &format!("{name} / all codes as seen by {owner:?}"),
            );
            for code in CODES.iter().chain(&["", "nobody"]) {
                for limit in [0, 1, 7, 100, 1000] {
                    assert_eq!(
                        backend
                            .recent_conversions(code, owner, limit)
                            .await
                            .unwrap(),
                        expected_recent(&data, code, owner, limit),
                        "{name}: recent conversions of {code:?} for {owner:?}, limit {limit}"
                    );
                }
            }
        }
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

    // The repeated hour gives two hour buckets with different offsets;
    // Kathmandu's hours start at :15 UTC.
    let night = query(
        DST_END - 2 * HOUR,
        DST_END + 2 * HOUR,
        "Europe/Berlin",
        None,
    );
    for (_, backend) in &backends {
        let starts: Vec<String> = backend
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
        let kathmandu = Query {
            tz: "Asia/Kathmandu".into(),
            ..night.clone()
        };
        let first = backend
            .timeseries(&kathmandu, Interval::Hour)
            .await
            .unwrap()
            .remove(0)
            .start;
        assert!(first.ends_with(":00:00+05:45"), "{first}");
    }

    // A bad time zone is refused up front (valid_tz) and by both backends.
    assert!(codelink_analytics::query::valid_tz("europe/berlin"));
    assert!(!codelink_analytics::query::valid_tz("Mars/Olympus"));
    for (_, a) in &backends {
        let bad = query(oct.0, oct.1, "Mars/Olympus", None);
        let err = a.timeseries(&bad, Interval::Day).await.unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }
}

/// The error of ClickHouse's unique-scanner estimate (`uniqHLL12`, used above
/// 100 visitors) over 8 sets of each size, printed (`--nocapture`) and held to
/// the bound the README states. The embedded sketch's own figures come from
/// `sketch::tests::error_statistics`.
#[test]
fn clickhouse_unique_estimates_stay_within_the_stated_bound() {
    let server = ClickHouseServer::start();
    for n in [
        101u64, 150, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 1_000_000,
    ] {
        let out = server.query(&format!(
            "SELECT avg(abs(e - {n}) / {n}), max(abs(e - {n}) / {n}) FROM \
             (SELECT seed, uniqHLL12(cityHash64(seed, k)) AS e FROM \
             (SELECT number % 8 AS seed, intDiv(number, 8) AS k FROM numbers({n} * 8)) \
             GROUP BY seed)"
        ));
        let mut cols = out.split_whitespace().map(|v| v.parse::<f64>().unwrap());
        let (mean, max) = (cols.next().unwrap(), cols.next().unwrap());
        println!(
            "n = {n:>9}: mean error {:.2} %, max {:.2} %",
            mean * 100.0,
            max * 100.0
        );
        assert!(max <= 0.06, "n = {n}: max error {max}");
    }
}

/// A batch whose cells fill a rollup insert (well past the 100 000 keys at
/// which ClickHouse aggregates in two levels, i.e. in many blocks) still lands
/// as one part per rollup table: what makes the batch marker mean "all of
/// this chunk is in".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_insert_is_one_part() {
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: "parts".to_string(),
        user: None,
        password: None,
        cluster: None,
    });
    events.migrate().await.unwrap();
    for table in ["scan_rollup", "conversion_rollup", "code_totals"] {
        server.query(&format!("SYSTEM STOP MERGES parts.{table}"));
    }
    // 3600 scans, each of its own code, hour and channel: 120 000 cells.
    let scans: Vec<Scan> = (0..3600u64)
        .map(|i| {
            let ts = OCT21 + i * HOUR;
            Scan {
                scan_id: ScanId::from_parts(ts, 1, i).to_string().into(),
                ts_ms: ts,
                code: format!("code{i}").into(),
                channel: format!("ch{i}").into(),
                visitor_id: format!("v{i}").into(),
                country: "DE".into(),
                source: "qr".into(),
                ..Scan::default()
            }
        })
        .collect();
    let parts = |table: &str| -> u64 {
        server
            .query(&format!(
                "SELECT count() FROM system.parts WHERE database = 'parts' \
                 AND table = '{table}' AND active"
            ))
            .trim()
            .parse()
            .unwrap()
    };
    let before = parts("scan_rollup");
    events.write(&Batch::new(scans, Vec::new())).await.unwrap();
    assert_eq!(parts("scan_rollup"), before + 1);
    let cells: u64 = server
        .query("SELECT count() FROM parts.scan_rollup WHERE scope NOT LIKE '#%'")
        .trim()
        .parse()
        .unwrap();
    assert!(cells > 100_000, "{cells} cells");
}

fn small_scan(i: u64, code: &str, ts_ms: u64, visitor: &str, bot: bool) -> Scan {
    Scan {
        scan_id: ScanId::from_parts(ts_ms, 3, i).to_string().into(),
        ts_ms,
        code: code.into(),
        visitor_id: visitor.into(),
        source: "link".into(),
        bot_reason: if bot { "head" } else { "" }.into(),
        ..Scan::default()
    }
}

fn small_conversion(
    id: &str,
    code: &str,
    owner: &str,
    kind: ConversionKind,
    occurred_ms: u64,
    earnings: i64,
    earnings_currency: &str,
) -> Conversion {
    Conversion {
        event_id: id.into(),
        kind,
        occurred_ms,
        received_ms: occurred_ms + 500,
        code: code.into(),
        owner: owner.into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: format!("visitor-{id}"),
        customer_id: format!("customer-{id}"),
        amount: if kind == ConversionKind::Signup {
            0
        } else {
            1000
        },
        currency: if kind == ConversionKind::Signup {
            ""
        } else {
            "EUR"
        }
        .into(),
        rule: if code.is_empty() {
            Rule::Unattributed
        } else {
            Rule::CodeOnly
        },
        earnings,
        earnings_currency: earnings_currency.into(),
        repeat: false,
        flagged: None,
    }
}

/// Code rows and recent conversions over a handful of rows, with the exact
/// answers written out: a code that changed hands (ann → ben), estimated and
/// confirmed earnings in two currencies, a code with bot scans only, one
/// with conversions and no human scan, an unattributed conversion, a
/// conversion batch written twice (a spool replay) and a brand's repeat, two
/// conversions at the same millisecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_rows_and_recent_conversions_on_both_backends() {
    use ConversionKind::{Purchase, Refund, Signup};
    let t = OCT21;
    let scans = vec![
        small_scan(1, "alpha", t + HOUR, "v1", false),
        small_scan(2, "alpha", t + 2 * HOUR, "v1", false),
        small_scan(3, "alpha", t + 3 * HOUR, "v2", false),
        small_scan(4, "alpha", t + 3 * HOUR + 1, "v9", true),
        small_scan(5, "beta", t + 4 * HOUR, "v5", true),
        small_scan(6, "beta", t + 4 * HOUR + 1, "v6", true),
        small_scan(7, "gamma", t + 5 * HOUR, "v3", false),
        small_scan(8, "gamma", t + 5 * HOUR + 1, "v4", false),
        small_scan(9, "delta", t + 6 * HOUR, "v7", true),
    ];
    let a1 = small_conversion("a1", "alpha", "ann", Signup, t + DAY, 200, "EUR");
    let a2 = small_conversion("a2", "alpha", "ann", Purchase, t + DAY, 150, "EUR");
    let a3 = small_conversion("a3", "alpha", "ben", Purchase, t + 8 * DAY, 300, "USD");
    let a4 = small_conversion(
        "a4",
        "alpha",
        "ben",
        Refund,
        t + 8 * DAY + HOUR,
        -100,
        "USD",
    );
    let a5 = small_conversion("a5", "alpha", "ben", Signup, t + 9 * DAY, 200, "EUR");
    let b1 = small_conversion("b1", "beta", "bea", Purchase, t + 2 * DAY, 500, "EUR");
    let u1 = small_conversion("u1", "", "", Signup, t + 3 * DAY, 0, "");
    // After the queries' range: listed as recent, never counted below.
    let o1 = small_conversion("o1", "alpha", "ben", Signup, t + 20 * DAY, 200, "EUR");
    let replayed = Batch::new(
        Vec::new(),
        vec![a1.clone(), a2.clone(), b1.clone(), u1.clone()],
    );
    let batches = vec![
        Batch::new(scans, Vec::new()),
        replayed.clone(),
        replayed,
        Batch::new(
            Vec::new(),
            vec![a3.clone(), a4.clone(), a5.clone(), o1.clone()],
        ),
        Batch::new(
            Vec::new(),
            vec![Conversion {
                repeat: true,
                flagged: None,
                ..a2.clone()
            }],
        ),
    ];

    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedSink::open(dir.path(), true, false).unwrap();
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: "codelink_rows".to_string(),
        user: None,
        password: None,
        cluster: None,
    });
    events.migrate().await.unwrap();
    for table in ["conversions", "code_totals", "conversion_rollup"] {
        server.query(&format!("SYSTEM STOP MERGES codelink_rows.{table}"));
    }
    for batch in &batches {
        embedded.write(&Arc::new(batch.clone())).await.unwrap();
        events.write(batch).await.unwrap();
    }
    let a2_rows: u64 = server
        .query("SELECT count() FROM codelink_rows.conversions WHERE event_id = 'a2'")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(a2_rows, 3, "the replay and the repeat are stored as rows");
    let backends = [
        ("embedded", Backend::from(embedded)),
        ("clickhouse", Backend::from(events)),
    ];

    let eur = |amount| Money {
        currency: "EUR".into(),
        amount,
    };
    let usd = |amount| Money {
        currency: "USD".into(),
        amount,
    };
    let row = |code: &str, human, signups, purchases, refunds| CodeRow {
        code: code.into(),
        human_scans: human,
        unique_scanners: None,
        signups,
        purchases,
        refunds,
        earnings_estimated: Vec::new(),
        earnings_confirmed: Vec::new(),
        scan_to_signup: None,
        scan_to_purchase: None,
    };
    // Confirmed: the hours that ended 5 days before now (t + 10 days).
    let q = |codes: Option<&[&str]>, owner: Option<&str>| Query {
        owner: owner.map(str::to_string),
        ..query(t, t + 10 * DAY, "UTC", codes)
    };
    let alpha = CodeRow {
        earnings_estimated: vec![eur(200), usd(200)],
        earnings_confirmed: vec![eur(350)],
        ..row("alpha", 3, 2, 2, 1)
    };
    let beta = CodeRow {
        earnings_confirmed: vec![eur(500)],
        ..row("beta", 0, 0, 1, 0)
    };
    let gamma = row("gamma", 2, 0, 0, 0);
    let with_uniques = |r: &CodeRow, uniques: u64| {
        let ratio = |n: u64| {
            Some(if uniques == 0 {
                0.0
            } else {
                n as f64 / uniques as f64
            })
        };
        CodeRow {
            unique_scanners: Some(uniques),
            scan_to_signup: ratio(r.signups),
            scan_to_purchase: ratio(r.purchases),
            ..r.clone()
        }
    };
    let all_codes: &[&str] = &["alpha", "beta", "gamma", "delta", ""];
    let cases: Vec<(&str, Query, Vec<CodeRow>)> = vec![
        (
            "every code",
            q(None, None),
            vec![alpha.clone(), beta.clone(), gamma.clone()],
        ),
        (
            "a code list",
            q(Some(all_codes), None),
            vec![
                with_uniques(&alpha, 2),
                with_uniques(&beta, 0),
                with_uniques(&gamma, 2),
            ],
        ),
        (
            "every code, as ben",
            q(None, Some("ben")),
            vec![
                CodeRow {
                    earnings_estimated: vec![eur(200), usd(200)],
                    ..row("alpha", 3, 1, 1, 1)
                },
                gamma.clone(),
            ],
        ),
        (
            "alpha, as ann",
            q(Some(&["alpha"]), Some("ann")),
            vec![with_uniques(
                &CodeRow {
                    earnings_confirmed: vec![eur(350)],
                    ..row("alpha", 3, 1, 1, 0)
                },
                2,
            )],
        ),
        (
            // Human scans only: the conversions start a day later.
            "the first day, every code",
            Query {
                to_ms: t + DAY,
                ..q(None, None)
            },
            vec![row("alpha", 3, 0, 0, 0), gamma.clone()],
        ),
    ];
    for (name, backend) in &backends {
        for (case, query, expected) in &cases {
            assert_eq!(
                &backend.code_rows(query).await.unwrap(),
                expected,
                "{name}: {case}"
            );
        }
        assert!(backend
            .code_rows(&q(Some(&[]), None))
            .await
            .unwrap()
            .is_empty());

        let recent = |code: &'static str, owner: Option<&'static str>, limit: usize| {
            let backend = backend.clone();
            async move {
                backend
                    .recent_conversions(code, owner, limit)
                    .await
                    .unwrap()
            }
        };
        // a2 and a1 occurred at the same millisecond: the greater event id first.
        let all_alpha = vec![
            o1.clone(),
            a5.clone(),
            a4.clone(),
            a3.clone(),
            a2.clone(),
            a1.clone(),
        ];
        assert_eq!(recent("alpha", None, 10).await, all_alpha, "{name}");
        assert_eq!(recent("alpha", None, 1000).await, all_alpha, "{name}");
        assert_eq!(recent("alpha", None, 3).await, all_alpha[..3], "{name}");
        assert_eq!(recent("alpha", None, 0).await, all_alpha[..1], "{name}");
        assert_eq!(
            recent("alpha", Some("ann"), 10).await,
            vec![a2.clone(), a1.clone()],
            "{name}"
        );
        assert_eq!(
            recent("alpha", Some("ben"), 2).await,
            vec![o1.clone(), a5.clone()],
            "{name}"
        );
        assert_eq!(recent("beta", None, 10).await, vec![b1.clone()], "{name}");
        assert!(recent("beta", Some("ann"), 10).await.is_empty(), "{name}");
        assert!(recent("", None, 10).await.is_empty(), "{name}");
        assert!(recent("gamma", None, 10).await.is_empty(), "{name}");
        assert!(recent("nobody", None, 10).await.is_empty(), "{name}");
    }
}

//! One conformance suite for the two live stores: every test runs against the
//! embedded store (redb), against a real redis-server and against a real
//! 3-master Redis Cluster (`--redis-cluster`), through the same calls. The last-visit path and the attribution rules are tested here on
//! both; so are counters, claims and their release.

use codelink_analytics::batch::Batch;
use codelink_analytics::config::{Config, RecorderSettings, RedisConfig};
use codelink_analytics::event::Flagged;
use codelink_analytics::event::{Conversion, ConversionKind, RawScan, Rule, Scan, Source};
use codelink_analytics::ledger::{CodeTerms, Reported};
use codelink_analytics::records::{Claim, ClaimRecord, CustomerLink, RefundOf, Refunded};
use codelink_analytics::redis_conn::RedisTarget;
use codelink_analytics::review::{Review, ReviewDecision, ReviewStatus};
use codelink_analytics::sink::{EmbeddedSink, LiveStore, RedisCounters, Sink};
use codelink_analytics::{Analytics, Error, ScanId};
use codelink_shared::CommissionPlan;
use codelink_testkit::{RedisCluster, RedisServer};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    Redis,
    RedisCluster,
}

/// The Redis a test runs on, stopped when dropped.
enum RedisHold {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl RedisHold {
    fn target(&self) -> RedisTarget {
        match self {
            RedisHold::Single(s) => RedisTarget::Single(s.url()),
            RedisHold::Cluster(c) => RedisTarget::cluster_from_list(&c.seeds()).unwrap(),
        }
    }

    fn config(&self, prefix: &str) -> RedisConfig {
        RedisConfig {
            target: self.target(),
            prefix: prefix.into(),
            wait_replicas: 0,
        }
    }
}

/// A fresh Redis of `kind`'s sort, or none for the embedded store.
fn redis_for(kind: Kind) -> Option<RedisHold> {
    match kind {
        Kind::Embedded => None,
        Kind::Redis => Some(RedisHold::Single(RedisServer::start())),
        Kind::RedisCluster => Some(RedisHold::Cluster(RedisCluster::start())),
    }
}

/// A live store and the sink that feeds it, on a fresh backend.
struct Fixture {
    live: LiveStore,
    sink: Sink,
    _dir: tempfile::TempDir,
    _redis: Option<RedisHold>,
}

fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    match kind {
        Kind::Embedded => {
            let s = EmbeddedSink::open(dir.path(), true, true).unwrap();
            Fixture {
                live: LiveStore::Embedded(s.clone()),
                sink: Sink::Embedded(s),
                _dir: dir,
                _redis: None,
            }
        }
        Kind::Redis | Kind::RedisCluster => {
            let server = redis_for(kind).unwrap();
            let s = RedisCounters::connect(&server.target(), "conf").unwrap();
            Fixture {
                live: LiveStore::Redis(s.clone()),
                sink: Sink::Redis(s),
                _dir: dir,
                _redis: Some(server),
            }
        }
    }
}

/// Runs the suite function `$f(kind)` once per backend, as three tests.
macro_rules! both {
    ($f:ident) => {
        mod $f {
            #[tokio::test]
            async fn embedded() {
                super::$f(super::Kind::Embedded).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$f(super::Kind::Redis).await;
            }
            #[tokio::test]
            async fn redis_cluster() {
                super::$f(super::Kind::RedisCluster).await;
            }
        }
    };
}

const DAY: u64 = 86_400_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn scan(code: &str, ms: u64, n: u64, visitor: &str, channel: &str, bot: &str) -> Scan {
    Scan {
        scan_id: ScanId::from_parts(ms, 5, n).to_string().into(),
        ts_ms: ms,
        code: code.into(),
        channel: channel.into(),
        visitor_id: visitor.into(),
        source: if n.is_multiple_of(3) { "qr" } else { "link" }.into(),
        bot_reason: bot.into(),
        ..Scan::default()
    }
}

fn batch(scans: Vec<Scan>) -> Arc<Batch> {
    Arc::new(Batch::new(scans, Vec::new()))
}

async fn counters_and_uniques_count_each_batch_once(kind: Kind) {
    let f = fixture(kind);
    let first = batch(vec![
        scan("spring", T0, 1, "v1", "yt", ""),
        scan("spring", T0 + 1, 2, "v1", "yt", ""),
        scan("spring", T0 + 2, 3, "v2", "", ""),
        scan("spring", T0 + 3, 4, "v9", "yt", "ua:facebookexternalhit"),
        scan("autumn", T0 + 4, 5, "v1", "ig", ""),
    ]);
    // The next UTC day (T0 is 22:13 UTC): v1 again, a new visitor, a HEAD.
    let second = batch(vec![
        scan("spring", T0 + DAY, 6, "v1", "yt", ""),
        scan("spring", T0 + DAY + 1, 7, "v3", "bio", ""),
        scan("spring", T0 + DAY + 2, 8, "v4", "bio", "head"),
    ]);
    for b in [&first, &second, &first, &second] {
        f.sink.write(b).await.unwrap(); // the repeats are spool replays
    }
    let s = f.live.code_stats("spring").await.unwrap();
    assert_eq!((s.total, s.human, s.bot), (7, 5, 2), "{kind:?}: {s:?}");
    // QR/link count every scan; scans 3 and 6 are QR (n % 3 == 0).
    assert_eq!((s.qr, s.link), (2, 5), "{kind:?}: {s:?}");
    let d1 = &s.days["2023-11-14"];
    let d2 = &s.days["2023-11-15"];
    assert_eq!(
        (d1.total, d1.human, d1.bot, d1.unique_visitors),
        (4, 3, 1, 2)
    );
    assert_eq!(
        (d2.total, d2.human, d2.bot, d2.unique_visitors),
        (3, 2, 1, 2)
    );
    assert_eq!(s.channels["yt"].total, 4);
    assert_eq!(s.channels["bio"].human, 1);
    assert_eq!(s.channels["-"].human, 1, "the bare code is '-'");
    assert_eq!(s.bot_reasons["ua:facebookexternalhit"], 1);
    assert_eq!(s.bot_reasons["head"], 1);
    let a = f.live.code_stats("autumn").await.unwrap();
    assert_eq!((a.total, a.human), (1, 1));
    let none = f.live.code_stats("winter").await.unwrap();
    assert_eq!(none.total, 0);
}
both!(counters_and_uniques_count_each_batch_once);

async fn last_visit_is_the_latest_human_scan(kind: Kind) {
    let f = fixture(kind);
    let newer = scan("spring", T0 + 50, 1, "v1", "yt", "");
    let older = scan("spring", T0 + 10, 2, "v1", "bio", "");
    let bot = scan("spring", T0 + 90, 3, "v1", "ig", "prefetch");
    let other_code = scan("autumn", T0 + 70, 4, "v1", "ig", "");
    f.sink
        .write(&batch(vec![older.clone(), newer.clone(), bot]))
        .await
        .unwrap();
    // An older scan arriving later (another instance's batch) does not win.
    f.sink
        .write(&batch(vec![scan("spring", T0 + 20, 5, "v1", "tt", "")]))
        .await
        .unwrap();
    f.sink.write(&batch(vec![other_code])).await.unwrap();
    let v = f.live.last_visit("spring", "v1").await.unwrap().unwrap();
    assert_eq!(
        (v.scan_id.as_str(), v.channel.as_str(), v.scan_ms),
        (newer.scan_id.as_str(), "yt", newer.ts_ms),
        "{kind:?}"
    );
    let v = f.live.last_visit("autumn", "v1").await.unwrap().unwrap();
    assert_eq!(v.channel, "ig");
    assert!(f.live.last_visit("spring", "v2").await.unwrap().is_none());
    // A newer visit replaces it.
    let latest = scan("spring", T0 + 5_000, 6, "v1", "", "");
    f.sink.write(&batch(vec![latest.clone()])).await.unwrap();
    let v = f.live.last_visit("spring", "v1").await.unwrap().unwrap();
    assert_eq!(
        (v.scan_id, v.channel),
        (latest.scan_id.to_string(), String::new())
    );
}
both!(last_visit_is_the_latest_human_scan);

fn conversion(event_id: &str, code: &str, earnings: i64) -> Conversion {
    Conversion {
        event_id: event_id.into(),
        kind: ConversionKind::Signup,
        occurred_ms: T0,
        received_ms: T0,
        code: code.into(),
        owner: "alice".into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: String::new(),
        customer_id: "cust-1".into(),
        amount: 0,
        currency: String::new(),
        rule: Rule::CodeOnly,
        earnings,
        earnings_currency: "EUR".into(),
        repeat: false,
        flagged: None,
    }
}

fn link(code: &str) -> CustomerLink {
    CustomerLink {
        code: code.into(),
        channel: "yt".into(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: "v1".into(),
    }
}

async fn claims_keep_the_first_answer_and_release_only_their_own(kind: Kind) {
    let f = fixture(kind);
    let mut first = ClaimRecord::of(conversion("e1", "spring", 200));
    first.fingerprint = "f1".into();
    let second = ClaimRecord::of(conversion("e1", "autumn", 999));
    assert_eq!(
        f.live
            .claim(&first, Some(&link("spring")), None)
            .await
            .unwrap(),
        Claim::New
    );
    assert_eq!(
        f.live
            .claim(&second, Some(&link("autumn")), None)
            .await
            .unwrap(),
        Claim::Existing(Box::new(first.clone())),
        "{kind:?}"
    );
    assert_eq!(f.live.claimed("e1").await.unwrap(), Some(first.clone()));
    assert_eq!(f.live.claimed("e9").await.unwrap(), None);
    // The customer keeps the first link.
    assert_eq!(
        f.live.customer("cust-1").await.unwrap(),
        Some(link("spring"))
    );
    // A second event of the same customer does not replace the link either.
    let other = ClaimRecord::of(conversion("e2", "autumn", 1));
    assert_eq!(
        f.live
            .claim(&other, Some(&link("autumn")), None)
            .await
            .unwrap(),
        Claim::New
    );
    assert_eq!(
        f.live.customer("cust-1").await.unwrap(),
        Some(link("spring"))
    );
    assert_eq!(f.live.customer("nobody").await.unwrap(), None);
    // Releasing with an answer that is not the claimed one leaves the claim.
    f.live.release(&second, None).await.unwrap();
    assert!(matches!(
        f.live.claim(&second, None, None).await.unwrap(),
        Claim::Existing(_)
    ));
    // Releasing the claimed answer frees the event id.
    f.live.release(&first, None).await.unwrap();
    assert_eq!(f.live.claim(&second, None, None).await.unwrap(), Claim::New);
}
both!(claims_keep_the_first_answer_and_release_only_their_own);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn reported(event_id: &str, kind: ConversionKind) -> Reported {
    let now = now_ms();
    Reported {
        event_id: event_id.into(),
        kind,
        occurred_ms: now,
        occurred_given: false,
        received_ms: now,
        scan_token: None,
        code: None,
        visitor_id: None,
        customer_id: None,
        amount: 0,
        currency: String::new(),
        purchase_event_id: None,
        ip_prefix: None,
    }
}

fn terms(code: &str) -> Option<CodeTerms> {
    (code == "spring").then(|| CodeTerms {
        owner: "alice".into(),
        window_ms: 30 * DAY,
        plan: Some(CommissionPlan {
            currency: "EUR".into(),
            signup_flat: 200,
            purchase_bps: 1000,
            cap: Some(5000),
        }),
    })
}

/// The attribution rules end to end through the front door, on either live
/// store: scans recorded through [`Analytics::record`], conversions through
/// [`Analytics::report_conversions`].
async fn attribution_rules_through_the_front_door(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_for(kind);
    let mut config = Config::embedded(dir.path(), b"conformance-secret");
    config.redis = redis.as_ref().map(|r| r.config("attr"));
    config.recorder = RecorderSettings {
        flush_interval: Duration::from_millis(20),
        ..RecorderSettings::default()
    };
    let (analytics, tasks) = Analytics::open(config).await.unwrap();

    // A follower scans the yt channel of `spring` twice; a bot scans it later.
    let start = now_ms() - 60_000;
    let raw = |n: u64, ms: u64, visitor: &str, ua: &str| RawScan {
        scan_id: ScanId::from_parts(ms, 9, n),
        code: "spring".into(),
        channel: "yt".into(),
        source: Source::Link,
        ip: "203.0.113.9".parse().unwrap(),
        user_agent: ua.into(),
        referer: String::new(),
        country: "DE".into(),
        visitor_id: visitor.into(),
        request_bot: None,
        signs: codelink_analytics::event::HeaderSigns::BROWSER,
        unknown_channel: String::new(),
        step: Default::default(),
        route: String::new(),
    };
    let human = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let first = raw(1, start, "visitor-1", human);
    // (15 s apart: a second scan within the repeat window would be a repeat.)
    let latest = raw(2, start + 15_000, "visitor-1", human);
    analytics.record(first.clone());
    analytics.record(latest.clone());
    analytics.record(raw(3, start + 16_000, "visitor-1", "Twitterbot/1.0"));
    // Wait until the scans are in the live store.
    let settled = codelink_testkit::wait_until(Duration::from_secs(10), || {
        let a = analytics.clone();
        async move { a.code_stats("spring").await.is_ok_and(|s| s.total == 3) }
    })
    .await;
    assert!(settled, "{kind:?}: scans did not reach the live store");

    let token = analytics.signer().token(first.scan_id, "spring", "yt");
    let mut by_token = reported("t1", ConversionKind::Purchase);
    by_token.scan_token = Some(token);
    (by_token.amount, by_token.currency) = (12_345, "EUR".into());
    let mut by_visitor = reported("t2", ConversionKind::Signup);
    by_visitor.code = Some("spring".into());
    by_visitor.visitor_id = Some("visitor-1".into());
    by_visitor.customer_id = Some("cust-9".into());
    let mut inherited = reported("t3", ConversionKind::Purchase);
    inherited.customer_id = Some("cust-9".into());
    (inherited.amount, inherited.currency) = (1000, "EUR".into());
    let mut code_only = reported("t4", ConversionKind::Signup);
    code_only.code = Some("spring".into());
    code_only.visitor_id = Some("never-scanned".into());
    let mut unknown_code = reported("t5", ConversionKind::Signup);
    unknown_code.code = Some("nosuchcode".into());
    let mut forged = reported("t6", ConversionKind::Signup);
    forged.scan_token = Some(format!("{}.spring.yt.AAAAAAAAAAAAAAAA", first.scan_id));
    let outcomes = analytics
        .report_conversions(
            vec![
                by_token,
                by_visitor,
                inherited,
                code_only,
                unknown_code,
                forged,
            ],
            now_ms(),
            terms,
        )
        .await
        .unwrap();
    let rules: Vec<Rule> = outcomes.iter().map(|o| o.conversion.rule).collect();
    assert_eq!(
        rules,
        [
            Rule::ScanId,
            Rule::Visitor,
            Rule::Inherited,
            Rule::CodeOnly,
            Rule::Unattributed,
            Rule::Unattributed
        ],
        "{kind:?}"
    );
    let c = |i: usize| &outcomes[i].conversion;
    assert_eq!(c(0).scan_id, first.scan_id.to_string());
    assert_eq!(c(0).earnings, 1235);
    // The visitor rule takes the visitor's latest human scan, not the bot's.
    assert_eq!(c(1).scan_id, latest.scan_id.to_string(), "{kind:?}");
    assert_eq!(c(1).channel, "yt");
    assert_eq!(c(1).earnings, 200);
    // The customer's purchase follows the customer's signup.
    assert_eq!(c(2).scan_id, latest.scan_id.to_string());
    assert_eq!(c(2).earnings, 100);
    assert_eq!(c(3).scan_id, "");
    assert!(outcomes[4].notes[0].contains("does not exist"));
    assert!(outcomes[5].notes[0].contains("not a valid scan token"));
    assert!(outcomes.iter().all(|o| !o.duplicate && !o.confirmed));

    // Reported again: the first answer comes back, marked as a duplicate.
    let mut again = reported("t2", ConversionKind::Signup);
    again.code = Some("spring".into());
    again.visitor_id = Some("visitor-1".into());
    again.customer_id = Some("cust-9".into());
    let outcomes = analytics
        .report_conversions(vec![again.clone()], now_ms(), terms)
        .await
        .unwrap();
    assert!(outcomes[0].duplicate);
    assert_eq!(outcomes[0].conversion.rule, Rule::Visitor, "{kind:?}");
    // With another body (no visitor this time) it is another event: refused.
    again.visitor_id = None;
    let refused = analytics
        .report_conversions(vec![again], now_ms(), terms)
        .await;
    assert!(
        matches!(refused, Err(Error::IdempotencyConflict { .. })),
        "{kind:?}: {refused:?}"
    );

    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(attribution_rules_through_the_front_door);

fn purchase_record(event_id: &str, customer: &str, occurred_ms: u64, amount: i64) -> ClaimRecord {
    let mut c = conversion(event_id, "spring", amount / 10);
    c.kind = ConversionKind::Purchase;
    c.customer_id = customer.into();
    c.occurred_ms = occurred_ms;
    (c.amount, c.currency) = (amount, "EUR".into());
    ClaimRecord::of(c)
}

/// A refund's claim moves its purchase's refunded totals in the same atomic
/// step, only from the totals it was decided on; release undoes both.
async fn refund_claims_move_their_purchase_totals_atomically(kind: Kind) {
    let f = fixture(kind);
    let older = purchase_record("p1", "cust-1", T0, 10_000);
    let newer = purchase_record("p2", "cust-1", T0 + 1_000, 5_000);
    for p in [&newer, &older] {
        assert_eq!(f.live.claim(p, None, None).await.unwrap(), Claim::New);
    }
    let other = purchase_record("p3", "cust-2", T0 + 2_000, 7_000);
    f.live.claim(&other, None, None).await.unwrap();
    // The latest by time of occurrence, not by claim order.
    let (found, refunded) = f
        .live
        .latest_refundable_purchase("cust-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.conversion.event_id.as_str(), refunded),
        ("p2", Refunded::default()),
        "{kind:?}"
    );
    assert_eq!(
        f.live.latest_refundable_purchase("nobody").await.unwrap(),
        None
    );

    let mut refund = conversion("r1", "spring", -500);
    refund.kind = ConversionKind::Refund;
    let mut record = ClaimRecord::of(refund);
    record.purchase_event_id = "p2".into();
    let full = RefundOf {
        purchase_event_id: "p2".into(),
        before: Refunded::default(),
        after: Refunded {
            amount: 5_000,
            earnings: 500,
        },
    };
    assert_eq!(
        f.live.claim(&record, None, Some(&full)).await.unwrap(),
        Claim::New
    );
    assert_eq!(f.live.refunded("p2").await.unwrap(), full.after);
    assert_eq!(f.live.claimed("r1").await.unwrap(), Some(record.clone()));
    // p2 is fully refunded: the customer's next refund goes to p1.
    let (found, _) = f
        .live
        .latest_refundable_purchase("cust-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.conversion.event_id, "p1", "{kind:?}");
    // A refund decided on totals that have changed since claims nothing.
    let mut late = ClaimRecord::of(conversion("r2", "spring", -100));
    late.conversion.kind = ConversionKind::Refund;
    let stale = RefundOf {
        purchase_event_id: "p2".into(),
        before: Refunded::default(),
        after: Refunded {
            amount: 1_000,
            earnings: 100,
        },
    };
    assert_eq!(
        f.live.claim(&late, None, Some(&stale)).await.unwrap(),
        Claim::Stale,
        "{kind:?}"
    );
    assert_eq!(f.live.claimed("r2").await.unwrap(), None);
    assert_eq!(f.live.refunded("p2").await.unwrap(), full.after);
    // Releasing the refund gives its share back to the purchase.
    f.live.release(&record, Some(&full)).await.unwrap();
    assert_eq!(f.live.claimed("r1").await.unwrap(), None);
    assert_eq!(f.live.refunded("p2").await.unwrap(), Refunded::default());
    // Releasing a purchase takes it out of the customer's purchases.
    f.live.release(&newer, None).await.unwrap();
    f.live.release(&older, None).await.unwrap();
    assert_eq!(
        f.live.latest_refundable_purchase("cust-1").await.unwrap(),
        None,
        "{kind:?}"
    );
}
both!(refund_claims_move_their_purchase_totals_atomically);

async fn open_analytics(
    kind: Kind,
) -> (
    Analytics,
    codelink_analytics::AnalyticsTasks,
    tempfile::TempDir,
    Option<RedisHold>,
) {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_for(kind);
    let mut config = Config::embedded(dir.path(), b"conformance-secret");
    config.redis = redis.as_ref().map(|r| r.config("refunds"));
    config.recorder = RecorderSettings {
        flush_interval: Duration::from_millis(20),
        ..RecorderSettings::default()
    };
    let (analytics, tasks) = Analytics::open(config).await.unwrap();
    (analytics, tasks, dir, redis)
}

fn purchase(event_id: &str, customer: &str, amount: i64) -> Reported {
    let mut p = reported(event_id, ConversionKind::Purchase);
    p.code = Some("spring".into());
    p.customer_id = Some(customer.into());
    (p.amount, p.currency) = (amount, "EUR".into());
    p
}

fn refund(event_id: &str, customer: Option<&str>, purchase: Option<&str>, amount: i64) -> Reported {
    let mut r = reported(event_id, ConversionKind::Refund);
    r.customer_id = customer.map(str::to_string);
    r.purchase_event_id = purchase.map(str::to_string);
    r.amount = amount;
    r
}

/// Refunds through the front door: tied to their purchase, never more than
/// it, clawing back its share of what it earned; a refused report keeps
/// nothing (refund totals included).
async fn refunds_never_claw_back_more_than_was_credited(kind: Kind) {
    let (analytics, tasks, _dir, _redis) = open_analytics(kind).await;
    let report = |events: Vec<Reported>| {
        let a = analytics.clone();
        async move { a.report_conversions(events, now_ms(), terms).await }
    };
    let earnings = |r: Result<Vec<codelink_analytics::conversions::Outcome>, Error>| {
        r.unwrap()
            .iter()
            .map(|o| o.conversion.earnings)
            .collect::<Vec<_>>()
    };
    // 10 % of 100.00 capped at 50.00; 10 % of 30.00.
    let mut first = purchase("p1", "cust-1", 100_000);
    first.occurred_ms -= 60_000;
    assert_eq!(earnings(report(vec![first]).await), [5_000]);
    assert_eq!(
        earnings(report(vec![purchase("p2", "cust-1", 3_000)]).await),
        [300]
    );

    // No purchase named, none for this customer, or an unknown one: refused.
    let rejected = |r: Result<Vec<codelink_analytics::conversions::Outcome>, Error>| match r {
        Err(Error::Rejected { field, message, .. }) => format!("{field}: {message}"),
        other => panic!("{kind:?}: not rejected: {other:?}"),
    };
    let m = rejected(report(vec![refund("r0", None, None, 100)]).await);
    assert!(
        m.starts_with("purchase_event_id: a refund names its purchase"),
        "{m}"
    );
    let m = rejected(report(vec![refund("r0", Some("cust-0"), None, 100)]).await);
    assert!(m.contains("no purchase to refund for this customer"), "{m}");
    let m = rejected(report(vec![refund("r0", None, Some("p404"), 100)]).await);
    assert!(m.contains("no purchase with event_id 'p404'"), "{m}");
    // More than the purchase: refused, not capped.
    let m = rejected(report(vec![refund("r0", None, Some("p2"), 3_001)]).await);
    assert!(m.starts_with("amount: 3001 is more than is left"), "{m}");

    // By customer: the latest purchase (p2); its share of p2's 300.
    let out = report(vec![refund("r1", Some("cust-1"), None, 1_000)])
        .await
        .unwrap();
    assert_eq!(out[0].purchase_event_id.as_deref(), Some("p2"), "{kind:?}");
    assert_eq!(out[0].conversion.earnings, -100);
    assert_eq!(out[0].conversion.code, "spring");
    assert_eq!(out[0].conversion.currency, "EUR", "the purchase's currency");
    // What is left of p2 is 2000: 2500 is refused, 2000 claws back the rest.
    let m = rejected(report(vec![refund("r2", Some("cust-1"), None, 2_500)]).await);
    assert!(m.contains("2000 of 3000 EUR"), "{m}");
    assert_eq!(
        earnings(report(vec![refund("r2", Some("cust-1"), None, 2_000)]).await),
        [-200]
    );
    // p2 is fully refunded: the next one goes to p1, capped earnings shared
    // by amount (a third of the amount → a third of the 5000 credited).
    let out = report(vec![refund("r3", Some("cust-1"), None, 33_333)])
        .await
        .unwrap();
    assert_eq!(out[0].purchase_event_id.as_deref(), Some("p1"));
    assert_eq!(out[0].conversion.earnings, -1_667);
    // The rest of p1 in two parts: together exactly what it earned.
    assert_eq!(
        earnings(report(vec![refund("r4", None, Some("p1"), 33_333)]).await),
        [-1_666]
    );
    assert_eq!(
        earnings(report(vec![refund("r5", None, Some("p1"), 33_334)]).await),
        [-1_667]
    );
    let m = rejected(report(vec![refund("r6", None, Some("p1"), 1)]).await);
    assert!(m.contains("0 of 100000 EUR"), "{m}");
    let m = rejected(report(vec![refund("r6", Some("cust-1"), None, 1)]).await);
    assert!(m.contains("no purchase to refund"), "{m}");

    // A repeat of a refund keeps its answer, though its purchase is now
    // fully refunded; with another body it is a conflict.
    let out = report(vec![refund("r2", Some("cust-1"), None, 2_000)])
        .await
        .unwrap();
    assert!(out[0].duplicate);
    assert_eq!(out[0].conversion.earnings, -200);
    assert_eq!(out[0].purchase_event_id.as_deref(), Some("p2"));
    match report(vec![refund("r2", Some("cust-1"), None, 1_999)]).await {
        Err(Error::IdempotencyConflict { index: 0, event_id }) => assert_eq!(event_id, "r2"),
        other => panic!("{kind:?}: {other:?}"),
    }
    // A refund of a signup is refused.
    let mut signup = reported("s1", ConversionKind::Signup);
    signup.code = Some("spring".into());
    report(vec![signup]).await.unwrap();
    let m = rejected(report(vec![refund("r7", None, Some("s1"), 0)]).await);
    assert!(m.contains("is a signup, not a purchase"), "{m}");

    // A refused report keeps nothing: neither the purchase nor the refund
    // of it that came before the refused event in the same report.
    let batch = vec![
        purchase("p3", "cust-3", 1_000),
        refund("r8", None, Some("p3"), 400),
        refund("r9", None, Some("p404"), 1),
    ];
    match report(batch).await {
        Err(Error::Rejected {
            index: 2, field, ..
        }) => assert_eq!(field, "purchase_event_id"),
        other => panic!("{kind:?}: {other:?}"),
    }
    let m = rejected(report(vec![refund("r8", None, Some("p3"), 400)]).await);
    assert!(m.contains("no purchase with event_id 'p3'"), "{m}");
    let batch = vec![
        purchase("p3", "cust-3", 1_000),
        refund("r8", None, Some("p3"), 400),
        refund("r10", Some("cust-3"), None, 600),
    ];
    assert_eq!(earnings(report(batch).await), [100, -40, -60], "{kind:?}");

    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(refunds_never_claw_back_more_than_was_credited);

/// The same event id with the same body is a duplicate; with any field the
/// brand sent changed, a conflict, and the report keeps nothing.
async fn event_ids_are_idempotency_keys(kind: Kind) {
    let (analytics, tasks, _dir, _redis) = open_analytics(kind).await;
    let report = |events: Vec<Reported>| {
        let a = analytics.clone();
        async move { a.report_conversions(events, now_ms(), terms).await }
    };
    let mut sent = purchase("k1", "cust-1", 2_000);
    sent.occurred_given = true;
    report(vec![sent.clone()]).await.unwrap();
    // Received later (another receipt time): the same body.
    let mut again = sent.clone();
    again.received_ms += 5_000;
    let out = report(vec![again]).await.unwrap();
    assert!(out[0].duplicate, "{kind:?}");
    let changes: Vec<fn(&mut Reported)> = vec![
        |r| r.amount += 1,
        |r| r.currency = "USD".into(),
        |r| r.customer_id = Some("cust-2".into()),
        |r| r.code = None,
        |r| r.visitor_id = Some("v".into()),
        |r| r.scan_token = Some("t".into()),
        |r| r.occurred_ms -= 1_000,
        |r| r.occurred_given = false,
        |r| r.kind = ConversionKind::Signup,
    ];
    for (n, change) in changes.into_iter().enumerate() {
        let mut changed = sent.clone();
        change(&mut changed);
        // After a new event, so that the conflict also releases that one.
        let fresh = reported(&format!("new-{n}"), ConversionKind::Signup);
        match report(vec![fresh, changed]).await {
            Err(Error::IdempotencyConflict { index: 1, .. }) => {}
            other => panic!("{kind:?} change {n}: {other:?}"),
        }
        let out = report(vec![reported(&format!("new-{n}"), ConversionKind::Signup)])
            .await
            .unwrap();
        assert!(
            !out[0].duplicate,
            "{kind:?} change {n}: the report was kept"
        );
    }
    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(event_ids_are_idempotency_keys);

fn pending(event_id: &str, code: &str, received_ms: u64) -> Review {
    let mut c = conversion(event_id, code, 0);
    c.received_ms = received_ms;
    c.flagged = Some(Flagged {
        flags: vec!["too_fast".into()],
        held: 200,
    });
    Review {
        conversion: c,
        status: ReviewStatus::Pending,
        decisions: Vec::new(),
    }
}

/// The review queue: put in once, paged newest first per status and code,
/// a decision is a compare-and-set (a stale one changes nothing), and a
/// released claim's untouched review goes. Fixed-window counts restart with
/// each window.
async fn reviews_are_a_queue_with_compare_and_set(kind: Kind) {
    let f = fixture(kind);
    let live = &f.live;
    for (i, code) in ["spring", "autumn", "spring", "spring"].iter().enumerate() {
        live.open_review(&pending(&format!("r{i}"), code, 1_000 + i as u64))
            .await
            .unwrap();
    }
    // Again: nothing changes (a brand's retry).
    live.open_review(&pending("r0", "spring", 9_999))
        .await
        .unwrap();
    let ids = |rs: Vec<Review>| -> Vec<String> {
        rs.into_iter().map(|r| r.conversion.event_id).collect()
    };
    let all = live
        .reviews(ReviewStatus::Pending, None, None, 10)
        .await
        .unwrap();
    assert_eq!(ids(all.clone()), ["r3", "r2", "r1", "r0"]);
    let page = live
        .reviews(ReviewStatus::Pending, Some("spring"), None, 2)
        .await
        .unwrap();
    assert_eq!(ids(page.clone()), ["r3", "r2"]);
    let rest = live
        .reviews(
            ReviewStatus::Pending,
            Some("spring"),
            Some(&page[1].position()),
            2,
        )
        .await
        .unwrap();
    assert_eq!(ids(rest), ["r0"]);

    let before = live.review("r2").await.unwrap().unwrap();
    let mut after = before.clone();
    after.status = ReviewStatus::Approved;
    after.decisions.push(ReviewDecision {
        decision: "approve".into(),
        note: String::new(),
        by: "admin:k1".into(),
        at_ms: 5,
    });
    assert!(live.swap_review(&before, &after).await.unwrap());
    assert!(
        !live.swap_review(&before, &after).await.unwrap(),
        "a decision on what is no longer there changes nothing"
    );
    assert_eq!(live.review("r2").await.unwrap(), Some(after));
    assert_eq!(
        ids(live
            .reviews(ReviewStatus::Pending, Some("spring"), None, 10)
            .await
            .unwrap()),
        ["r3", "r0"]
    );
    assert_eq!(
        ids(live
            .reviews(ReviewStatus::Approved, None, None, 10)
            .await
            .unwrap()),
        ["r2"]
    );
    // A released claim takes its untouched review out; a decided one stays.
    live.drop_review("r3").await.unwrap();
    live.drop_review("r2").await.unwrap();
    assert_eq!(live.review("r3").await.unwrap(), None);
    assert!(live.review("r2").await.unwrap().is_some());
    assert_eq!(
        ids(live
            .reviews(ReviewStatus::Pending, None, None, 10)
            .await
            .unwrap()),
        ["r1", "r0"]
    );

    // Fixed windows of 1000 ms; window 0: for ever.
    assert_eq!(live.bump("v:x", 1000, 10_100).await.unwrap(), 1);
    assert_eq!(live.bump("v:x", 1000, 10_900).await.unwrap(), 2);
    assert_eq!(live.bump("v:x", 1000, 11_000).await.unwrap(), 1);
    assert_eq!(live.bump("v:y", 1000, 11_000).await.unwrap(), 1);
    assert_eq!(live.bump("s:spring", 0, 1).await.unwrap(), 1);
    assert_eq!(live.bump("s:spring", 0, 99_999_999).await.unwrap(), 2);
}
both!(reviews_are_a_queue_with_compare_and_set);

/// A ban rejects every pending flagged conversion of a code, a page of the
/// queue at a time with one recorder batch per page (not one flush per
/// conversion), and the numbers follow: nothing held, all still flagged.
async fn a_ban_rejects_a_code_in_pages(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_for(kind);
    let mut config = Config::embedded(dir.path(), b"conformance-secret");
    config.redis = redis.as_ref().map(|r| r.config("ban"));
    // Every signup of a code nobody scanned is flagged.
    config.fraud.min_signups = 1;
    config.fraud.signups_per_human_scan = 1;
    let (analytics, tasks) = Analytics::open(config).await.unwrap();
    let now = now_ms();
    for part in 0..3 {
        let events: Vec<Reported> = (0..100)
            .filter(|i| part * 100 + i < 250)
            .map(|i| {
                let mut s = reported(&format!("s{part}-{i}"), ConversionKind::Signup);
                s.code = Some("spring".into());
                s
            })
            .collect();
        let out = analytics
            .report_conversions(events, now, terms)
            .await
            .unwrap();
        assert!(out.iter().all(|o| o.conversion.flagged.is_some()));
    }
    let started = std::time::Instant::now();
    let rejected = analytics
        .reject_code_reviews("spring", "banned", "admin:test", now)
        .await
        .unwrap();
    assert_eq!(rejected, 250);
    // Two pages, a flush (1 s by default) each.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let page = analytics
        .reviews(ReviewStatus::Rejected, Some("spring"), None, 200)
        .await
        .unwrap();
    assert_eq!(page.reviews.len(), 200);
    assert!(page.next.is_some());
    assert_eq!(page.reviews[0].decisions[0].by, "admin:test");
    let q = codelink_analytics::query::Query {
        from_ms: now - DAY,
        to_ms: now + DAY,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: now,
        hold_ms: 30 * DAY,
    };
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || {
        let a = analytics.clone();
        let q = q.clone();
        async move {
            a.summary(&q).await.is_ok_and(|s| {
                s.signups == 250 && s.flagged_signups == 250 && s.earnings_held.is_empty()
            })
        }
    })
    .await;
    assert!(ok, "{:?}", analytics.summary(&q).await);
    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(a_ban_rejects_a_code_in_pages);

/// A purchase refunded while its review was pending (the refund clawed back
/// nothing: it had earned nothing) releases on approval only the share not
/// refunded, and a later refund claws back the rest: in all, what the same
/// purchase would have earned unflagged.
async fn an_approval_releases_only_what_was_not_refunded(kind: Kind) {
    let (analytics, tasks, _dir, _redis) = open_analytics(kind).await;
    let now = now_ms();
    // Reported a second after its scan: too fast, flagged.
    let scan = ScanId::from_parts(now - 1_000, 1, 1);
    let mut p = purchase("p1", "c1", 10_000);
    p.scan_token = Some(analytics.signer().token(scan, "spring", "yt"));
    let out = analytics
        .report_conversions(vec![p], now, terms)
        .await
        .unwrap();
    let f = out[0].conversion.flagged.clone().unwrap();
    assert_eq!((f.flags, f.held), (vec!["too_fast".to_string()], 1_000));
    let out = analytics
        .report_conversions(vec![refund("r1", None, Some("p1"), 5_000)], now, terms)
        .await
        .unwrap();
    assert_eq!(out[0].conversion.earnings, 0, "nothing was credited yet");
    analytics
        .decide_review("p1", true, "", "admin:test", now)
        .await
        .unwrap();
    let q = codelink_analytics::query::Query {
        from_ms: now - DAY,
        to_ms: now + DAY,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: now,
        hold_ms: 30 * DAY,
    };
    let earned = |want: i128| {
        let (a, q) = (analytics.clone(), q.clone());
        async move {
            codelink_testkit::wait_until(Duration::from_secs(10), || {
                let (a, q) = (a.clone(), q.clone());
                async move {
                    a.summary(&q).await.is_ok_and(|s| {
                        s.earnings_estimated.iter().map(|m| m.amount).sum::<i128>() == want
                            && s.earnings_held.is_empty()
                    })
                }
            })
            .await
        }
    };
    assert!(earned(500).await, "{:?}", analytics.summary(&q).await);
    let out = analytics
        .report_conversions(vec![refund("r2", None, Some("p1"), 5_000)], now, terms)
        .await
        .unwrap();
    assert_eq!(out[0].conversion.earnings, -500);
    assert!(earned(0).await, "{:?}", analytics.summary(&q).await);
    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(an_approval_releases_only_what_was_not_refunded);

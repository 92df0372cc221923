//! One conformance suite for the two live stores: every test runs against the
//! embedded store (redb) and against a real redis-server, through the same
//! calls. The last-visit path and the attribution rules are tested here on
//! both; so are counters, claims and their release.

use codelink_analytics::batch::Batch;
use codelink_analytics::config::{Config, RecorderSettings, RedisConfig};
use codelink_analytics::event::{Conversion, ConversionKind, RawScan, Rule, Scan, Source};
use codelink_analytics::ledger::{CodeTerms, Reported};
use codelink_analytics::records::{Claim, CustomerLink};
use codelink_analytics::sink::{EmbeddedSink, LiveStore, RedisCounters, Sink};
use codelink_analytics::{Analytics, ScanId};
use codelink_shared::CommissionPlan;
use codelink_testkit::RedisServer;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    Redis,
}

/// A live store and the sink that feeds it, on a fresh backend.
struct Fixture {
    live: LiveStore,
    sink: Sink,
    _dir: tempfile::TempDir,
    _redis: Option<RedisServer>,
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
        Kind::Redis => {
            let server = RedisServer::start();
            let s = RedisCounters::connect(&server.url(), "conf").unwrap();
            Fixture {
                live: LiveStore::Redis(s.clone()),
                sink: Sink::Redis(s),
                _dir: dir,
                _redis: Some(server),
            }
        }
    }
}

/// Runs the suite function `$f(kind)` once per backend, as two tests.
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
        }
    };
}

const DAY: u64 = 86_400_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn scan(code: &str, ms: u64, n: u64, visitor: &str, channel: &str, bot: &str) -> Scan {
    Scan {
        scan_id: ScanId::from_parts(ms, 5, n).to_string(),
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
    assert_eq!((v.scan_id, v.channel), (latest.scan_id, String::new()));
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
    let first = conversion("e1", "spring", 200);
    let second = conversion("e1", "autumn", 999);
    assert_eq!(
        f.live.claim(&first, Some(&link("spring"))).await.unwrap(),
        Claim::New
    );
    assert_eq!(
        f.live.claim(&second, Some(&link("autumn"))).await.unwrap(),
        Claim::Existing(Box::new(first.clone())),
        "{kind:?}"
    );
    // The customer keeps the first link.
    assert_eq!(
        f.live.customer("cust-1").await.unwrap(),
        Some(link("spring"))
    );
    // A second event of the same customer does not replace the link either.
    let other = conversion("e2", "autumn", 1);
    assert_eq!(
        f.live.claim(&other, Some(&link("autumn"))).await.unwrap(),
        Claim::New
    );
    assert_eq!(
        f.live.customer("cust-1").await.unwrap(),
        Some(link("spring"))
    );
    assert_eq!(f.live.customer("nobody").await.unwrap(), None);
    // Releasing with an answer that is not the claimed one leaves the claim.
    f.live.release(&second).await.unwrap();
    assert!(matches!(
        f.live.claim(&second, None).await.unwrap(),
        Claim::Existing(_)
    ));
    // Releasing the claimed answer frees the event id.
    f.live.release(&first).await.unwrap();
    assert_eq!(f.live.claim(&second, None).await.unwrap(), Claim::New);
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
        received_ms: now,
        scan_token: None,
        code: None,
        visitor_id: None,
        customer_id: None,
        amount: 0,
        currency: String::new(),
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
    let redis = matches!(kind, Kind::Redis).then(RedisServer::start);
    let mut config = Config::embedded(dir.path(), b"conformance-secret");
    config.redis = redis.as_ref().map(|r| RedisConfig {
        url: r.url(),
        prefix: "attr".into(),
    });
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
    };
    let human = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let first = raw(1, start, "visitor-1", human);
    let latest = raw(2, start + 1_000, "visitor-1", human);
    analytics.record(first.clone());
    analytics.record(latest.clone());
    analytics.record(raw(3, start + 2_000, "visitor-1", "Twitterbot/1.0"));
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
    let mut inherited = reported("t3", ConversionKind::Refund);
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
    // The refund follows the customer's signup, and claws back.
    assert_eq!(c(2).scan_id, latest.scan_id.to_string());
    assert_eq!(c(2).earnings, -100);
    assert_eq!(c(3).scan_id, "");
    assert!(outcomes[4].notes[0].contains("does not exist"));
    assert!(outcomes[5].notes[0].contains("not a valid scan token"));
    assert!(outcomes.iter().all(|o| !o.duplicate && !o.confirmed));

    // Reported again: the first answers come back, marked as duplicates.
    let mut again = reported("t2", ConversionKind::Signup);
    again.code = Some("spring".into()); // no visitor this time: would be code_only
    let outcomes = analytics
        .report_conversions(vec![again], now_ms(), terms)
        .await
        .unwrap();
    assert!(outcomes[0].duplicate);
    assert_eq!(outcomes[0].conversion.rule, Rule::Visitor, "{kind:?}");

    tasks.stop(&analytics, Duration::from_secs(5)).await;
}
both!(attribution_rules_through_the_front_door);

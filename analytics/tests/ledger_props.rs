//! Property tests of the ledger (proptest): earnings never exceed a plan's
//! cap; clawbacks never exceed what was credited, and the refunds of a
//! purchase give back at most (when it is fully refunded: exactly) what it
//! earned; event ids are idempotency keys under any interleaving of repeats;
//! and the rollups answer as plain loops over the raw rows.
//!
//! The pure functions get many cases; the sequences go through the front door
//! ([`Analytics::report_conversions`] on the embedded store) and the rollups
//! through the embedded sink, with fewer cases (each opens a store).
//! `PROPTEST_CASES` overrides every count.

mod plain;

use codelink_analytics::batch::Batch;
use codelink_analytics::conversions::Outcome;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::ledger::{self, clawback, CodeTerms, Reported};
use codelink_analytics::query::{Backend, Dimension, Query, Summary};
use codelink_analytics::records::Refunded;
use codelink_analytics::sink::EmbeddedSink;
use codelink_analytics::{Analytics, Config, Error, ScanId};
use codelink_shared::currency::MAX_AMOUNT;
use codelink_shared::CommissionPlan;
use plain::*;
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn cases(n: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Plans as the admin API accepts them (`CommissionPlan::validate`).
fn plan() -> impl Strategy<Value = CommissionPlan> {
    (
        0u64..=MAX_AMOUNT,
        0u32..=10_000,
        proptest::option::of(prop_oneof![0u64..10_000, 0u64..=MAX_AMOUNT]),
        prop_oneof![0u64..1_000, Just(0)],
    )
        .prop_map(|(flat, bps, cap, small_flat)| CommissionPlan {
            currency: "EUR".into(),
            signup_flat: if flat % 2 == 0 { small_flat } else { flat },
            purchase_bps: bps,
            cap,
        })
}

/// Any amount or earnings figure a stored row can hold.
fn any_money() -> impl Strategy<Value = i64> {
    let m = MAX_AMOUNT as i64;
    prop_oneof![-m..=m, Just(m), Just(-m), Just(0), -3i64..3]
}

fn cap_of(plan: &CommissionPlan) -> i64 {
    plan.cap.map_or(i64::MAX, |c| c as i64)
}

// ---------------------------------------------------------------- pure

proptest! {
    #![proptest_config(cases(5_000))]

    /// Every conversion's earnings lie within [0, cap] (refunds: [-cap, 0]),
    /// are the plan's share rounded half up, and money in another currency
    /// earns nothing.
    #[test]
    fn earnings_never_exceed_the_cap(plan in plan(), amount in 0i64..=MAX_AMOUNT as i64) {
        prop_assert!(plan.validate().is_ok());
        let cap = cap_of(&plan);
        let mut notes = Vec::new();
        let (signup, cur) = ledger::earnings(&plan, ConversionKind::Signup, 0, "", &mut notes);
        prop_assert_eq!(cur, "EUR");
        prop_assert!((0..=cap).contains(&signup));
        prop_assert_eq!(signup, (plan.signup_flat as i64).min(cap));
        let (p, _) = ledger::earnings(&plan, ConversionKind::Purchase, amount, "EUR", &mut notes);
        prop_assert!((0..=cap).contains(&p));
        let share = (i128::from(amount) * i128::from(plan.purchase_bps) + 5_000) / 10_000;
        prop_assert_eq!(i128::from(p), share.min(i128::from(cap)));
        prop_assert!(p <= amount, "never more than the purchase");
        let (r, _) = ledger::earnings(&plan, ConversionKind::Refund, amount, "EUR", &mut notes);
        prop_assert_eq!(r, -p);
        prop_assert!(notes.is_empty());
        let (other, _) = ledger::earnings(&plan, ConversionKind::Purchase, amount, "USD", &mut notes);
        prop_assert_eq!(other, 0);
        prop_assert_eq!(notes.len(), 1);
    }

    /// A purchase refunded in any parts: each clawback is in [0, what is
    /// still credited], the clawbacks add up to at most what was credited,
    /// and to exactly that once the whole amount is refunded.
    #[test]
    fn clawbacks_never_exceed_what_was_credited(
        amount in 1i64..=MAX_AMOUNT as i64,
        earned in prop_oneof![Just(None), (0i64..=MAX_AMOUNT as i64).prop_map(Some)],
        bps in 0u32..=10_000,
        parts in proptest::collection::vec(1u32..=1000, 1..8),
        whole in any::<bool>(),
    ) {
        // What the purchase earned: its share, or any other (capped) figure.
        let earnings = earned.unwrap_or(((i128::from(amount) * i128::from(bps) + 5_000) / 10_000) as i64);
        let credited = earnings.max(0);
        let weight: u64 = parts.iter().map(|&p| u64::from(p)).sum();
        let mut amounts: Vec<i64> = parts
            .iter()
            .map(|&p| (i128::from(amount) * i128::from(p) / i128::from(weight)) as i64)
            .collect();
        let short = amount - amounts.iter().sum::<i64>();
        if whole {
            *amounts.last_mut().unwrap() += short;
        }
        let mut before = Refunded::default();
        for part in amounts {
            let c = clawback(earnings, amount, before, before.amount + part);
            prop_assert!(c >= 0);
            prop_assert!(c <= credited - before.earnings, "{} > {} - {}", c, credited, before.earnings);
            before = Refunded { amount: before.amount + part, earnings: before.earnings + c };
        }
        prop_assert!(before.earnings <= credited);
        prop_assert!(before.amount <= amount);
        if before.amount == amount {
            prop_assert_eq!(before.earnings, credited, "fully refunded: exactly what it earned");
        }
    }

    /// From any state within the stored ranges (amounts and earnings at most
    /// `MAX_AMOUNT` either way), even one no sequence of refunds reaches, a
    /// clawback stays within what remains credited.
    #[test]
    fn clawback_is_bounded_from_any_state(
        earnings in any_money(), amount in any_money(),
        before_amount in any_money(), before_earnings in any_money(), after in any_money(),
    ) {
        let before = Refunded { amount: before_amount, earnings: before_earnings };
        let c = clawback(earnings, amount, before, after);
        prop_assert!(c >= 0);
        prop_assert!(i128::from(c) <= (i128::from(earnings.max(0)) - i128::from(before_earnings)).max(0));
    }
}

// ---------------------------------------------------------------- front door

const DAY: u64 = 86_400_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One event of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    Signup {
        coded: bool,
    },
    Purchase {
        customer: u8,
        amount: i64,
        currency_other: bool,
    },
    /// By purchase (the `n`th op, if a purchase) or by customer.
    Refund {
        purchase: Option<usize>,
        customer: Option<u8>,
        amount: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<bool>().prop_map(|coded| Op::Signup { coded }),
        3 => (0u8..3, prop_oneof![1i64..5_000, 1i64..200_000, Just(MAX_AMOUNT as i64)], proptest::bool::weighted(0.1))
            .prop_map(|(customer, amount, currency_other)| Op::Purchase { customer, amount, currency_other }),
        3 => (proptest::option::of(0usize..12), proptest::option::of(0u8..3), prop_oneof![1i64..3_000, 1i64..100_000])
            .prop_map(|(purchase, customer, amount)| Op::Refund { purchase, customer, amount }),
    ]
}

fn reported(i: usize, op: &Op, now: u64) -> Reported {
    let mut r = Reported {
        event_id: format!("ev-{i}"),
        kind: ConversionKind::Signup,
        occurred_ms: now - DAY,
        occurred_given: true,
        received_ms: now,
        scan_token: None,
        code: None,
        visitor_id: None,
        customer_id: None,
        amount: 0,
        currency: String::new(),
        purchase_event_id: None,
        ip_prefix: None,
    };
    match *op {
        Op::Signup { coded } => r.code = coded.then(|| "spring".into()),
        Op::Purchase {
            customer,
            amount,
            currency_other,
        } => {
            r.kind = ConversionKind::Purchase;
            r.code = Some("spring".into());
            r.customer_id = Some(format!("cust-{customer}"));
            r.amount = amount;
            r.currency = if currency_other { "USD" } else { "EUR" }.into();
        }
        Op::Refund {
            purchase,
            customer,
            amount,
        } => {
            r.kind = ConversionKind::Refund;
            r.purchase_event_id = purchase.map(|p| format!("ev-{p}"));
            r.customer_id = customer.map(|c| format!("cust-{c}"));
            r.amount = amount;
        }
    }
    r
}

async fn open(dir: &std::path::Path) -> (Analytics, codelink_analytics::AnalyticsTasks) {
    let mut config = Config::embedded(dir, b"ledger-props-secret");
    config.recorder.flush_interval = Duration::from_millis(5);
    Analytics::open(config).await.unwrap()
}

/// What a report was answered: the outcomes, or the refusal's index and field.
type Answer = Result<Vec<(String, i64, Option<String>, bool, Rule)>, (usize, String)>;

fn answer(r: Result<Vec<Outcome>, Error>) -> Answer {
    match r {
        Ok(out) => Ok(out
            .into_iter()
            .map(|o| {
                (
                    o.conversion.event_id,
                    o.conversion.earnings,
                    o.purchase_event_id,
                    o.duplicate,
                    o.conversion.rule,
                )
            })
            .collect()),
        Err(Error::Rejected { index, field, .. }) => Err((index, field.to_string())),
        Err(Error::IdempotencyConflict { index, .. }) => Err((index, "conflict".into())),
        Err(e) => panic!("{e}"),
    }
}

/// The summary over every conversion reported.
async fn totals(a: &Analytics, now: u64) -> Summary {
    let q = Query {
        from_ms: now - 3 * DAY,
        to_ms: now + DAY,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: now,
        hold_ms: 0,
    };
    a.summary(&q).await.unwrap()
}

/// A delivery schedule: each report is a list of indices into the events.
#[derive(Debug, Clone)]
struct Plan {
    plan: CommissionPlan,
    ops: Vec<Op>,
    /// For each event: its repeats, each (how many reports later, batched
    /// with the event's own report when 0).
    repeats: Vec<Vec<u8>>,
}

fn scenario() -> impl Strategy<Value = Plan> {
    (plan(), proptest::collection::vec(op(), 1..12))
        .prop_flat_map(|(plan, ops)| {
            let n = ops.len();
            (
                Just(plan),
                Just(ops),
                proptest::collection::vec(proptest::collection::vec(0u8..6, 0..3), n),
            )
        })
        .prop_map(|(plan, ops, repeats)| Plan { plan, ops, repeats })
}

/// Runs the events once each, one report per event, and checks the ledger's
/// invariants on the answers; then on a fresh store runs them again with
/// repeats of the accepted ones interleaved (in their own report, later ones,
/// or several at once) and checks that every answer is the same, repeats
/// answer as the first time (flagged duplicate), and the totals count each
/// event once.
fn check_sequence(s: &Plan) {
    let rt = runtime();
    rt.block_on(async {
        let now = now_ms();
        let plan = s.plan.clone();
        let terms = move |code: &str| {
            (code == "spring").then(|| CodeTerms {
                owner: "alice".into(),
                window_ms: 30 * DAY,
                plan: Some(plan.clone()),
            })
        };
        let cap = cap_of(&s.plan);
        let events: Vec<Reported> = s
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| reported(i, op, now))
            .collect();

        // Once each.
        let dir = tempfile::tempdir().unwrap();
        let (a, tasks) = open(dir.path()).await;
        let mut first: Vec<Answer> = Vec::new();
        for e in &events {
            first.push(answer(
                a.report_conversions(vec![e.clone()], now, terms.clone())
                    .await,
            ));
        }
        // Per purchase: (amount, earnings, refunded amount, clawed back).
        let mut purchases: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
        for (e, ans) in events.iter().zip(&first) {
            let Ok(out) = ans else { continue };
            let (_, earnings, purchase, duplicate, _) = &out[0];
            assert!(!duplicate);
            match e.kind {
                ConversionKind::Signup => {
                    assert!((0..=cap).contains(earnings), "{earnings} > cap {cap}");
                }
                ConversionKind::Purchase => {
                    assert!((0..=cap).contains(earnings), "{earnings} > cap {cap}");
                    assert!(*earnings <= e.amount);
                    purchases.insert(e.event_id.clone(), (e.amount, *earnings, 0, 0));
                }
                ConversionKind::Refund => {
                    assert!(*earnings <= 0, "a refund earns nothing");
                    let p = purchases
                        .get_mut(purchase.as_deref().expect("a refund names its purchase"))
                        .expect("the refunded purchase was accepted");
                    p.2 += e.amount;
                    p.3 -= earnings;
                    assert!(p.2 <= p.0, "refunded {} of {}", p.2, p.0);
                    assert!(p.3 <= p.1.max(0), "clawed back {} of {} credited", p.3, p.1);
                    if p.2 == p.0 {
                        assert_eq!(p.3, p.1.max(0), "fully refunded: exactly what it earned");
                    }
                }
            }
        }
        let once = totals(&a, now).await;
        tasks.stop(&a, Duration::from_secs(5)).await;

        // Again, with repeats.
        let dir = tempfile::tempdir().unwrap();
        let (b, tasks) = open(dir.path()).await;
        // Reports: for event i, at slot i; a repeat `d` reports later at
        // slot i + d (after that slot's own event), or in the same report.
        let n = events.len();
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); n + 8];
        let mut late: Vec<Vec<usize>> = vec![Vec::new(); n + 8];
        for (i, reps) in s.repeats.iter().enumerate() {
            slots[i].push(i);
            if first[i].is_err() {
                continue;
            }
            for &d in reps {
                if d == 0 {
                    slots[i].push(i);
                } else {
                    late[i + usize::from(d)].push(i);
                }
            }
        }
        for slot in 0..n + 8 {
            let mut report: Vec<usize> = late[slot].clone();
            report.extend(&slots[slot]);
            if report.is_empty() {
                continue;
            }
            let sent: Vec<Reported> = report.iter().map(|&i| events[i].clone()).collect();
            let got = answer(b.report_conversions(sent, now, terms.clone()).await);
            let own = (slot < n).then_some(slot);
            match (&got, own) {
                (Err((index, field)), Some(i)) => {
                    // Only the slot's own new event can be refused, as it was.
                    assert_eq!(report[*index], i, "{report:?}: {field}");
                    assert_eq!(first[i].as_ref().unwrap_err().1, *field);
                }
                (Err(e), None) => panic!("repeats refused: {e:?}"),
                (Ok(out), _) => {
                    let mut seen = BTreeSet::new();
                    for (&i, o) in report.iter().zip(out) {
                        let was = &first[i].as_ref().expect("accepted the first time")[0];
                        let repeat = Some(i) != own || !seen.insert(i);
                        assert_eq!(o.3, repeat, "event {i} in {report:?}");
                        assert_eq!(
                            (&o.0, o.1, &o.2, o.4),
                            (&was.0, was.1, &was.2, was.4),
                            "event {i}: the first answer"
                        );
                    }
                }
            }
        }
        let repeated = totals(&b, now).await;
        tasks.stop(&b, Duration::from_secs(5)).await;
        assert_eq!(
            (repeated.signups, repeated.purchases, repeated.refunds),
            (once.signups, once.purchases, once.refunds),
            "each event counts once"
        );
        assert_eq!(repeated.revenue, once.revenue);
        assert_eq!(repeated.earnings_confirmed, once.earnings_confirmed);
        assert_eq!(repeated.earnings_estimated, once.earnings_estimated);
        let accepted = |k: ConversionKind| {
            events
                .iter()
                .zip(&first)
                .filter(|(e, a)| e.kind == k && a.is_ok())
                .count() as u64
        };
        assert_eq!(
            (once.signups, once.purchases, once.refunds),
            (
                accepted(ConversionKind::Signup),
                accepted(ConversionKind::Purchase),
                accepted(ConversionKind::Refund)
            )
        );
    });
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn refunds_caps_and_repeats_through_the_front_door(s in scenario()) {
        check_sequence(&s);
    }
}

// ---------------------------------------------------------------- rollup = raw

const HOUR: u64 = 3_600_000;
/// 2025-10-21T00:00:00Z.
const T0: u64 = 1_761_004_800_000;

#[derive(Debug, Clone)]
struct Data {
    scans: Vec<Scan>,
    conversions: Vec<Conversion>,
    /// Batch boundaries and which batches are written twice (spool replays).
    cuts: Vec<(usize, bool)>,
}

impl Rows for Data {
    fn scans(&self) -> &[Scan] {
        &self.scans
    }
    fn conversions(&self) -> &[Conversion] {
        &self.conversions
    }
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(String::from)
}

fn data() -> impl Strategy<Value = Data> {
    let scan = (
        0u64..3 * 24 * 4,
        (
            pick(&["spring", "autumn"]),
            pick(&["", "yt", "ig"]),
            0u8..12,
        ),
        (
            pick(&["DE", "FR", ""]),
            pick(&["mobile", "desktop"]),
            pick(&["qr", "link"]),
        ),
        proptest::bool::weighted(0.2),
    );
    let conv = (
        0u64..3 * 24 * 4,
        0usize..3,
        proptest::option::of(any::<prop::sample::Index>()),
        (
            pick(&["spring", "autumn", ""]),
            -300i64..1000,
            any::<bool>(),
        ),
    );
    (
        proptest::collection::vec(scan, 0..40),
        proptest::collection::vec(conv, 0..12),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..4),
    )
        .prop_map(|(scans, convs, cuts)| {
            let scans: Vec<Scan> = scans
                .into_iter()
                .enumerate()
                .map(
                    |(n, (q, (code, channel, visitor), (country, device, source), bot))| {
                        let ts_ms = T0 + q * 15 * 60_000 + n as u64;
                        Scan {
                            scan_id: ScanId::from_parts(ts_ms, 1, n as u64).to_string().into(),
                            ts_ms,
                            code: code.into(),
                            channel: channel.into(),
                            visitor_id: format!("v{visitor}").into(),
                            country: country.into(),
                            device: device.into(),
                            source: source.into(),
                            bot_reason: if bot {
                                "head".into()
                            } else {
                                Default::default()
                            },
                            ..Scan::default()
                        }
                    },
                )
                .collect();
            let conversions = convs
                .into_iter()
                .enumerate()
                .map(|(n, (q, kind, scan, (code, earnings, eur)))| {
                    let kind = [
                        ConversionKind::Signup,
                        ConversionKind::Purchase,
                        ConversionKind::Refund,
                    ][kind];
                    let occurred_ms = T0 + q * 15 * 60_000 + 7;
                    // Attributed to an earlier human scan of the same code, if one is picked.
                    let scan = scan
                        .filter(|_| !scans.is_empty())
                        .map(|i| &scans[i.index(scans.len())])
                        .filter(|s| {
                            s.bot_reason.is_empty() && s.ts_ms <= occurred_ms && !code.is_empty()
                        });
                    let money = kind != ConversionKind::Signup;
                    Conversion {
                        event_id: format!("c{n}"),
                        kind,
                        occurred_ms,
                        received_ms: occurred_ms + 100,
                        code: scan.map_or(code.clone(), |s| s.code.to_string()),
                        owner: if code.is_empty() {
                            String::new()
                        } else {
                            "alice".into()
                        },
                        channel: scan.map_or(String::new(), |s| s.channel.to_string()),
                        scan_id: scan.map_or(String::new(), |s| s.scan_id.to_string()),
                        scan_ms: scan.map_or(0, |s| s.ts_ms),
                        visitor_id: scan.map_or(String::new(), |s| s.visitor_id.to_string()),
                        customer_id: format!("cust{n}"),
                        amount: if money { 1000 + n as i64 } else { 0 },
                        currency: if money {
                            if eur {
                                "EUR"
                            } else {
                                "USD"
                            }
                        } else {
                            ""
                        }
                        .into(),
                        rule: if scan.is_some() {
                            Rule::ScanId
                        } else if code.is_empty() {
                            Rule::Unattributed
                        } else {
                            Rule::CodeOnly
                        },
                        earnings: if code.is_empty() {
                            0
                        } else if kind == ConversionKind::Refund {
                            -earnings.abs()
                        } else {
                            earnings.abs()
                        },
                        earnings_currency: if code.is_empty() {
                            String::new()
                        } else {
                            "EUR".into()
                        },
                        repeat: false,
                        flagged: None,
                    }
                })
                .collect();
            let n = scans.len();
            let mut cuts: Vec<(usize, bool)> = cuts
                .into_iter()
                .map(|(i, twice)| (i.index(n + 1), twice))
                .collect();
            cuts.sort();
            Data {
                scans,
                conversions,
                cuts,
            }
        })
}

/// The scans in batches cut at `cuts` (some written twice), the conversions
/// in one batch written twice.
fn writes(d: &Data) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut start = 0;
    for &(end, twice) in d.cuts.iter().chain([(d.scans.len(), false)].iter()) {
        let b = Batch::new(d.scans[start..end.max(start)].to_vec(), Vec::new());
        out.push(b.clone());
        if twice {
            out.push(b);
        }
        start = end.max(start);
    }
    let c = Batch::new(Vec::new(), d.conversions.clone());
    out.push(c.clone());
    out.push(c);
    out
}

fn check_rollups(d: &Data, ranges: &[(u64, u64, bool)]) {
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        for b in writes(d) {
            sink.write(&Arc::new(b)).await.unwrap();
        }
        let backend = Backend::Embedded(sink);
        for &(from_h, hours, one_code) in ranges {
            let q = Query {
                from_ms: T0 + from_h * HOUR,
                to_ms: T0 + (from_h + hours) * HOUR,
                tz: "UTC".into(),
                codes: one_code.then(|| vec!["spring".to_string()]),
                owner: None,
                now_ms: T0 + 2 * 24 * HOUR,
                hold_ms: 6 * HOUR,
            };
            let ctx = format!("{q:?}");
            let s = backend.summary(&q).await.unwrap();
            let e = expected_summary(d, &q);
            assert_eq!(s, e, "{ctx}: summary");
            for dim in [Dimension::Channel, Dimension::Country, Dimension::Source] {
                let got = backend.breakdown(&q, dim).await.unwrap();
                assert_eq!(got, expected_breakdown(d, &q, dim), "{ctx}: by {dim}");
            }
        }
    });
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn rollups_answer_as_plain_loops_over_the_raw_rows(
        d in data(),
        ranges in proptest::collection::vec((0u64..60, 1u64..80, any::<bool>()), 1..4),
    ) {
        check_rollups(&d, &ranges);
    }
}

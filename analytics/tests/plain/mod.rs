//! Plain loops over raw rows: what the rollup queries must answer, shared by
//! the parity tests (`analytics_backends.rs`) and the property tests
//! (`ledger_props.rs`).
#![allow(dead_code)]

use codelink_analytics::event::{Conversion, ConversionKind, Scan, Verdict};
use codelink_analytics::histogram::DelayHistogram;
use codelink_analytics::query::{effective_range, BreakdownRow, Dimension, Money, Query, Summary};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const HOUR: u64 = 3_600_000;

/// Raw rows a test wrote. Conversions as reviews left them: an approved one
/// unflagged with its held earnings; a pending one flagged, holding them; a
/// rejected one flagged, holding nothing (see `codelink_analytics::review`).
pub trait Rows {
    fn scans(&self) -> &[Scan];
    fn conversions(&self) -> &[Conversion];
}

pub fn scan_in(q: &Query, range: (u64, u64), s: &Scan) -> bool {
    s.ts_ms >= range.0
        && s.ts_ms < range.1
        && q.codes
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| *c == s.code))
}

pub fn conversion_in(q: &Query, range: (u64, u64), c: &Conversion) -> bool {
    c.occurred_ms >= range.0
        && c.occurred_ms < range.1
        && q.codes.as_ref().is_none_or(|codes| codes.contains(&c.code))
        && q.owner.as_ref().is_none_or(|o| &c.owner == o)
}

pub fn is_human(s: &Scan) -> bool {
    s.bot_reason.is_empty()
}

/// Past the hold once the hour it occurred in is over by `hold_ms`.
pub fn confirmed(q: &Query, c: &Conversion) -> bool {
    (c.occurred_ms / HOUR + 1) * HOUR + q.hold_ms <= q.now_ms
}

pub fn money(map: BTreeMap<String, i128>) -> Vec<Money> {
    map.into_iter()
        .map(|(currency, amount)| Money { currency, amount })
        .collect()
}

pub fn earnings_of<'a>(convs: impl Iterator<Item = &'a Conversion>) -> Vec<Money> {
    let mut m = BTreeMap::new();
    for c in convs.filter(|c| !c.earnings_currency.is_empty()) {
        *m.entry(c.earnings_currency.clone()).or_insert(0) += i128::from(c.earnings);
    }
    money(m)
}

/// Distinct human visitors.
pub fn uniques<'a>(scans: impl Iterator<Item = &'a &'a Scan>) -> u64 {
    scans
        .filter(|s| is_human(s))
        .map(|s| &s.visitor_id)
        .collect::<BTreeSet<_>>()
        .len() as u64
}

pub fn expected_summary(d: &impl Rows, q: &Query) -> Summary {
    let range = effective_range(q, false);
    let scans: Vec<&Scan> = d.scans().iter().filter(|s| scan_in(q, range, s)).collect();
    let convs: Vec<&Conversion> = d
        .conversions()
        .iter()
        .filter(|c| conversion_in(q, range, c))
        .collect();
    let human: Vec<&&Scan> = scans.iter().filter(|s| is_human(s)).collect();
    let unique = uniques(scans.iter());
    let count = |k: ConversionKind| convs.iter().filter(|c| c.kind == k).count() as u64;
    let mut revenue = BTreeMap::new();
    for c in &convs {
        if c.currency.is_empty() {
            continue;
        }
        let amount = i128::from(c.amount);
        match c.kind {
            ConversionKind::Purchase => *revenue.entry(c.currency.clone()).or_insert(0) += amount,
            ConversionKind::Refund => *revenue.entry(c.currency.clone()).or_insert(0) -= amount,
            ConversionKind::Signup => {}
        }
    }
    // The median of the delays in whole seconds, each taken as its bin's value.
    let mut delays = DelayHistogram::default();
    for c in convs
        .iter()
        .filter(|c| c.kind == ConversionKind::Signup && c.scan_ms > 0)
    {
        delays.add_secs(c.occurred_ms.saturating_sub(c.scan_ms) / 1000);
    }
    let signups = count(ConversionKind::Signup);
    let purchases = count(ConversionKind::Purchase);
    let per_scanner = |n: u64| {
        if unique == 0 {
            0.0
        } else {
            n as f64 / unique as f64
        }
    };
    let flagged = |k: ConversionKind| {
        convs
            .iter()
            .filter(|c| c.kind == k && c.flagged.is_some())
            .count() as u64
    };
    let mut held = BTreeMap::new();
    for c in &convs {
        if let (Some(f), false) = (&c.flagged, c.earnings_currency.is_empty()) {
            *held.entry(c.earnings_currency.clone()).or_insert(0) += i128::from(f.held);
        }
    }
    held.retain(|_, v| *v != 0);
    Summary {
        earnings_held: money(held),
        flagged_signups: flagged(ConversionKind::Signup),
        flagged_purchases: flagged(ConversionKind::Purchase),
        scans: scans.len() as u64,
        human_scans: human.len() as u64,
        suspect_scans: scans
            .iter()
            .filter(|s| s.verdict() == Verdict::Suspect)
            .count() as u64,
        bot_scans: scans.iter().filter(|s| s.verdict() == Verdict::Bot).count() as u64,
        bot_inflation: if scans.is_empty() {
            0.0
        } else {
            (scans.len() - human.len()) as f64 / scans.len() as f64
        },
        qr_scans: human.iter().filter(|s| s.source == "qr").count() as u64,
        // A tap on the creator's bio page is a link tap.
        link_scans: human
            .iter()
            .filter(|s| s.source == "link" || s.source == "bio")
            .count() as u64,
        unique_scanners: unique,
        unique_scanners_exact: unique <= 100,
        signups,
        purchases,
        refunds: count(ConversionKind::Refund),
        revenue: money(revenue),
        earnings_estimated: earnings_of(convs.iter().copied().filter(|c| !confirmed(q, c))),
        earnings_confirmed: earnings_of(convs.iter().copied().filter(|c| confirmed(q, c))),
        scan_to_signup: per_scanner(signups),
        scan_to_purchase: per_scanner(purchases),
        median_scan_to_signup_secs: delays.median_secs(),
    }
}

pub fn field(s: &Scan, dim: Dimension) -> &str {
    match dim {
        Dimension::Channel => &s.channel,
        Dimension::Source => &s.source,
        Dimension::BotReason => &s.bot_reason,
        Dimension::Country => &s.country,
        Dimension::Device => &s.device,
        Dimension::Browser => &s.browser,
        Dimension::Os => &s.os,
        Dimension::InApp => &s.in_app,
        Dimension::Referrer => &s.referrer_host,
        Dimension::Verdict => s.verdict().as_str(),
        Dimension::Route => &s.route,
    }
}

pub fn expected_breakdown(d: &impl Rows, q: &Query, dim: Dimension) -> Vec<BreakdownRow> {
    let range = effective_range(q, true);
    let by_id: HashMap<&str, &Scan> = d.scans().iter().map(|s| (s.scan_id.as_str(), s)).collect();
    let mut scans: BTreeMap<String, Vec<&Scan>> = BTreeMap::new();
    let mut convs: BTreeMap<String, Vec<&Conversion>> = BTreeMap::new();
    for s in d.scans().iter().filter(|s| scan_in(q, range, s)) {
        scans.entry(field(s, dim).to_string()).or_default().push(s);
    }
    for c in d
        .conversions()
        .iter()
        .filter(|c| conversion_in(q, range, c))
    {
        let key = match dim {
            Dimension::Channel => c.channel.clone(),
            // The attributed scan is human.
            Dimension::BotReason => String::new(),
            Dimension::Verdict => "human".to_string(),
            _ => by_id
                .get(c.scan_id.as_str())
                .map(|s| field(s, dim).to_string())
                .unwrap_or_default(),
        };
        convs.entry(key).or_default().push(c);
    }
    let keys: BTreeSet<String> = scans.keys().chain(convs.keys()).cloned().collect();
    let mut rows: Vec<BreakdownRow> = keys
        .into_iter()
        .map(|key| {
            let s = scans.get(&key).cloned().unwrap_or_default();
            let c = convs.get(&key).cloned().unwrap_or_default();
            let unique = uniques(s.iter());
            BreakdownRow {
                human_scans: s.iter().filter(|s| is_human(s)).count() as u64,
                suspect_scans: s.iter().filter(|s| s.verdict() == Verdict::Suspect).count() as u64,
                bot_scans: s.iter().filter(|s| s.verdict() == Verdict::Bot).count() as u64,
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
                key,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.human_scans.cmp(&a.human_scans).then(a.key.cmp(&b.key)));
    rows
}

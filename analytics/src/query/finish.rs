//! Both backends reduce a query to the same rollups (scan counts per group,
//! conversion sums per group × kind × currency × earnings currency × confirmed,
//! signup delays); the answers are computed from those here, once.

use super::{
    Aggregates, BreakdownRow, Bucket, CodeRow, Dimension, Funnel, Money, Summary, TopRow, Zone,
};
use crate::event::Verdict;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Scan counts of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ::clickhouse::Row)]
pub(crate) struct ScanAgg {
    pub k: String,
    pub human: u64,
    /// Every scan not human (bots and suspects).
    pub bot: u64,
    /// The suspects among `bot`.
    pub suspect: u64,
    pub qr: u64,
    pub link: u64,
    /// Distinct visitors of the group's human scans.
    pub uniq: u64,
    /// 1 when `uniq` is exact.
    pub uniq_exact: u8,
}

impl ScanAgg {
    /// Bots alone: `bot` counts every scan not human, suspects included.
    fn bots_only(&self) -> u64 {
        self.bot.saturating_sub(self.suspect)
    }
}

/// Conversions of one group with the same kind, currency, earnings currency
/// and confirmation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ::clickhouse::Row)]
pub(crate) struct ConversionAgg {
    pub k: String,
    /// `signup`, `purchase` or `refund`.
    pub kind: String,
    pub currency: String,
    pub earnings_currency: String,
    /// 1 when the earnings are past the hold.
    pub confirmed: u8,
    pub n: u64,
    pub amount_sum: i128,
    pub earnings_sum: i128,
    /// Flagged conversions not approved (a signed sum of review adjustments).
    pub flagged: i64,
    /// Earnings held by pending reviews.
    pub held_sum: i128,
}

/// Conversion counts and earnings of one group.
#[derive(Default)]
struct ConversionTotals {
    signups: u64,
    purchases: u64,
    refunds: u64,
    revenue: BTreeMap<String, i128>,
    estimated: BTreeMap<String, i128>,
    confirmed: BTreeMap<String, i128>,
    flagged_signups: i64,
    flagged_purchases: i64,
    held: BTreeMap<String, i128>,
}

impl ConversionTotals {
    fn add(&mut self, row: &ConversionAgg) {
        match row.kind.as_str() {
            "signup" => {
                self.signups += row.n;
                self.flagged_signups += row.flagged;
            }
            "purchase" => {
                self.purchases += row.n;
                self.flagged_purchases += row.flagged;
            }
            "refund" => self.refunds += row.n,
            _ => {}
        }
        if row.held_sum != 0 && !row.earnings_currency.is_empty() {
            *self.held.entry(row.earnings_currency.clone()).or_default() += row.held_sum;
        }
        if !row.currency.is_empty() {
            match row.kind.as_str() {
                "purchase" => {
                    *self.revenue.entry(row.currency.clone()).or_default() += row.amount_sum
                }
                "refund" => {
                    *self.revenue.entry(row.currency.clone()).or_default() -= row.amount_sum
                }
                _ => {}
            }
        }
        if !row.earnings_currency.is_empty() {
            let side = if row.confirmed != 0 {
                &mut self.confirmed
            } else {
                &mut self.estimated
            };
            *side.entry(row.earnings_currency.clone()).or_default() += row.earnings_sum;
        }
    }

    /// Estimated and confirmed together.
    fn earnings(&self) -> Vec<Money> {
        let mut all = self.estimated.clone();
        for (currency, amount) in &self.confirmed {
            *all.entry(currency.clone()).or_default() += amount;
        }
        money(all)
    }
}

/// A signed sum of adjustments as a count (never below 0 over whole cells).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn money(map: BTreeMap<String, i128>) -> Vec<Money> {
    map.into_iter()
        .map(|(currency, amount)| Money { currency, amount })
        .collect()
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The one row of a `Group::All` answer (or zeros).
fn scan_total(scans: &[ScanAgg]) -> ScanAgg {
    debug_assert!(scans.len() <= 1);
    scans.first().cloned().unwrap_or(ScanAgg {
        uniq_exact: 1,
        ..ScanAgg::default()
    })
}

fn conversion_total(conversions: &[ConversionAgg]) -> ConversionTotals {
    let mut t = ConversionTotals::default();
    for row in conversions {
        t.add(row);
    }
    t
}

pub(crate) fn summary(a: &Aggregates) -> Summary {
    let s = scan_total(&a.scans);
    let c = conversion_total(&a.conversions);
    Summary {
        scans: s.human + s.bot,
        human_scans: s.human,
        suspect_scans: s.suspect,
        bot_scans: s.bots_only(),
        bot_inflation: ratio(s.bot, s.human + s.bot),
        qr_scans: s.qr,
        link_scans: s.link,
        unique_scanners: s.uniq,
        unique_scanners_exact: s.uniq_exact != 0,
        signups: c.signups,
        purchases: c.purchases,
        refunds: c.refunds,
        scan_to_signup: ratio(c.signups, s.uniq),
        scan_to_purchase: ratio(c.purchases, s.uniq),
        revenue: money(c.revenue),
        earnings_estimated: money(c.estimated),
        earnings_confirmed: money(c.confirmed),
        earnings_held: money(c.held.into_iter().filter(|(_, v)| *v != 0).collect()),
        flagged_signups: count(c.flagged_signups),
        flagged_purchases: count(c.flagged_purchases),
        median_scan_to_signup_secs: a.delays.median_secs(),
    }
}

pub(crate) fn funnel(a: &Aggregates) -> Funnel {
    let s = scan_total(&a.scans);
    let c = conversion_total(&a.conversions);
    Funnel {
        scans: s.human,
        unique_scanners: s.uniq,
        unique_scanners_exact: s.uniq_exact != 0,
        signups: c.signups,
        purchases: c.purchases,
        flagged_signups: count(c.flagged_signups),
        flagged_purchases: count(c.flagged_purchases),
    }
}

/// Scan rows and conversion totals by group key.
fn by_key(
    scans: &[ScanAgg],
    conversions: &[ConversionAgg],
) -> BTreeMap<String, (ScanAgg, ConversionTotals)> {
    let mut out: BTreeMap<String, (ScanAgg, ConversionTotals)> = BTreeMap::new();
    for s in scans {
        // Backends answer one scan row per key.
        out.entry(s.k.clone()).or_default().0 = s.clone();
    }
    for c in conversions {
        out.entry(c.k.clone()).or_default().1.add(c);
    }
    out
}

pub(crate) fn timeseries(a: &Aggregates, zone: &Zone) -> Vec<Bucket> {
    let mut buckets: Vec<(i64, Bucket)> = by_key(&a.scans, &a.conversions)
        .into_iter()
        .map(|(k, (s, c))| {
            let second: i64 = k.parse().unwrap_or_default();
            let bucket = Bucket {
                start: zone.format(second),
                human_scans: s.human,
                suspect_scans: s.suspect,
                bot_scans: s.bots_only(),
                unique_scanners: s.uniq,
                unique_scanners_exact: s.uniq_exact != 0 || s.uniq == 0,
                signups: c.signups,
                purchases: c.purchases,
                earnings: c.earnings(),
            };
            (second, bucket)
        })
        .collect();
    buckets.sort_by_key(|(second, _)| *second);
    buckets.into_iter().map(|(_, b)| b).collect()
}

/// A breakdown's aggregates keyed as `dimension` shows them: for
/// [`Dimension::Verdict`] the bot reasons folded into `human` / `suspect` /
/// `bot` (only human scans have visitors, so the folded unique counts are
/// those of the `""` reason); every other dimension as read.
pub(crate) fn keyed_for(dimension: Dimension, mut a: Aggregates) -> Aggregates {
    if dimension != Dimension::Verdict {
        return a;
    }
    let verdict = |k: &str| Verdict::of_reason(k).as_str().to_string();
    let mut scans: BTreeMap<String, ScanAgg> = BTreeMap::new();
    for s in a.scans {
        let k = verdict(&s.k);
        let t = scans.entry(k.clone()).or_insert_with(|| ScanAgg {
            k,
            uniq_exact: 1,
            ..ScanAgg::default()
        });
        t.human += s.human;
        t.bot += s.bot;
        t.suspect += s.suspect;
        t.qr += s.qr;
        t.link += s.link;
        t.uniq += s.uniq;
        t.uniq_exact &= s.uniq_exact;
    }
    a.scans = scans.into_values().collect();
    for c in &mut a.conversions {
        c.k = verdict(&c.k);
    }
    a
}

pub(crate) fn breakdown(a: &Aggregates) -> Vec<BreakdownRow> {
    let mut rows: Vec<BreakdownRow> = by_key(&a.scans, &a.conversions)
        .into_iter()
        .map(|(key, (s, c))| BreakdownRow {
            key,
            human_scans: s.human,
            suspect_scans: s.suspect,
            bot_scans: s.bots_only(),
            unique_scanners: s.uniq,
            unique_scanners_exact: s.uniq_exact != 0 || s.uniq == 0,
            signups: c.signups,
            purchases: c.purchases,
            earnings: c.earnings(),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.human_scans
            .cmp(&a.human_scans)
            .then_with(|| a.key.cmp(&b.key))
    });
    rows
}

/// One row per code (never `""`) with a human scan or a conversion, sorted
/// by code; with `uniques` the scan rows' unique scanners and the ratios.
pub(crate) fn code_rows(a: &Aggregates, uniques: bool) -> Vec<CodeRow> {
    by_key(&a.scans, &a.conversions)
        .into_iter()
        .filter(|(code, (s, c))| {
            !code.is_empty() && (s.human > 0 || c.signups + c.purchases + c.refunds > 0)
        })
        .map(|(code, (s, c))| {
            let uniq = uniques.then_some(s.uniq);
            CodeRow {
                code,
                human_scans: s.human,
                unique_scanners: uniq,
                signups: c.signups,
                purchases: c.purchases,
                refunds: c.refunds,
                earnings_estimated: money(c.estimated),
                earnings_confirmed: money(c.confirmed),
                scan_to_signup: uniq.map(|u| ratio(c.signups, u)),
                scan_to_purchase: uniq.map(|u| ratio(c.purchases, u)),
            }
        })
        .collect()
}

fn top_row(code: String, value: i128, currency: &str) -> TopRow {
    TopRow {
        code,
        owner: String::new(),
        value,
        currency: currency.to_string(),
    }
}

/// Rows keyed by code: human scans of codes with at least one.
pub(crate) fn top_by_scans(scans: &[ScanAgg]) -> Vec<TopRow> {
    let mut values: BTreeMap<&str, u64> = BTreeMap::new();
    for s in scans.iter().filter(|s| !s.k.is_empty()) {
        *values.entry(&s.k).or_default() += s.human;
    }
    values
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(code, v)| top_row(code.to_string(), i128::from(v), ""))
        .collect()
}

/// Rows keyed by code: signups + purchases of codes with at least one.
pub(crate) fn top_by_conversions(conversions: &[ConversionAgg]) -> Vec<TopRow> {
    let mut values: BTreeMap<&str, u64> = BTreeMap::new();
    for c in conversions.iter().filter(|c| !c.k.is_empty()) {
        if c.kind == "signup" || c.kind == "purchase" {
            *values.entry(&c.k).or_default() += c.n;
        }
    }
    values
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(code, v)| top_row(code.to_string(), i128::from(v), ""))
        .collect()
}

/// Rows keyed by code: earnings in the dominant earnings currency (see
/// [`super::Analytics::top`]).
pub(crate) fn top_by_earnings(conversions: &[ConversionAgg]) -> Vec<TopRow> {
    let attributed = conversions
        .iter()
        .filter(|c| !c.k.is_empty() && !c.earnings_currency.is_empty());
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for c in attributed.clone() {
        *counts.entry(&c.earnings_currency).or_default() += c.n;
    }
    // max_by_key keeps the last maximum: iterate in reverse currency order so
    // that a tie goes to the alphabetically first currency.
    let Some((currency, _)) = counts.iter().rev().max_by_key(|(_, n)| **n) else {
        return Vec::new();
    };
    let mut values: BTreeMap<&str, i128> = BTreeMap::new();
    for c in attributed.filter(|c| c.earnings_currency == *currency) {
        *values.entry(&c.k).or_default() += c.earnings_sum;
    }
    values
        .into_iter()
        .map(|(code, v)| top_row(code.to_string(), v, currency))
        .collect()
}

/// Highest value first, ties by code; at most `limit`.
pub(crate) fn rank(mut rows: Vec<TopRow>, limit: usize) -> Vec<TopRow> {
    rows.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.code.cmp(&b.code)));
    rows.truncate(limit);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_currency_ties_go_to_the_first() {
        let row = |k: &str, cur: &str, earnings: i128| ConversionAgg {
            k: k.into(),
            kind: "purchase".into(),
            currency: cur.into(),
            earnings_currency: cur.into(),
            confirmed: 0,
            n: 1,
            amount_sum: 1000,
            earnings_sum: earnings,
            ..ConversionAgg::default()
        };
        let rows = vec![row("a", "USD", 5), row("b", "EUR", 7), row("", "USD", 100)];
        let top = top_by_earnings(&rows);
        assert_eq!(top, vec![top_row("b".into(), 7, "EUR")]);
    }
}

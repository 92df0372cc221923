//! The embedded backend: merges the rollup cells the plan names, read from
//! redb blocks, in Rust. Memory is one accumulator per answer row (a sketch of
//! at most 4 KiB each), whatever the number of scans behind them.

use super::finish::{ConversionAgg, ScanAgg};
use super::plan::Range;
use super::{Aggregates, Cells};
use crate::error::Error;
use crate::event::ConversionKind;
use crate::histogram::DelayHistogram;
use crate::rollup::block::ScanCell;
use crate::rollup::Dim;
use crate::sink::EmbeddedSink;
use std::collections::{BTreeMap, HashMap};

type ConversionGroup = (String, &'static str, String, String, u8);

/// Merges the cells of `cells` into one row per group key.
pub(super) async fn aggregate(sink: &EmbeddedSink, cells: &Cells) -> Result<Aggregates, Error> {
    let cells = cells.clone();
    Ok(sink
        .read(move |r| {
            let mut scans: BTreeMap<String, ScanCell> = BTreeMap::new();
            for (scope, &dim) in cells
                .scopes
                .iter()
                .flat_map(|s| cells.dims.iter().map(move |d| (s, d)))
            {
                for range in &cells.scans {
                    r.scan_cells(
                        scope,
                        range.grain,
                        dim,
                        span(range),
                        |bucket, value, cell| {
                            let key = cells.group.key(scope, dim, bucket, value);
                            match scans.get_mut(&key) {
                                Some(acc) => acc.merge(&cell),
                                None => {
                                    scans.insert(key, cell);
                                }
                            }
                        },
                    )?;
                }
            }
            let mut conversions: BTreeMap<ConversionGroup, (u64, i128, i128, i64, i128)> =
                BTreeMap::new();
            let mut delays = DelayHistogram::default();
            for (scope, &dim) in cells
                .scopes
                .iter()
                .flat_map(|s| cells.dims.iter().map(move |d| (s, d)))
            {
                for (range, confirmed) in &cells.conversions {
                    r.conversion_cells(scope, range.grain, dim, span(range), |bucket, k, c| {
                        if cells.owner.as_ref().is_some_and(|o| o != k.owner) {
                            return;
                        }
                        if cells.delays && k.dim == Dim::Total {
                            delays.merge(&c.delays);
                        }
                        let key = (
                            cells.group.key(scope, dim, bucket, k.value),
                            k.kind.as_str(),
                            k.currency.to_string(),
                            k.earnings_currency.to_string(),
                            u8::from(*confirmed),
                        );
                        let slot = conversions.entry(key).or_default();
                        slot.0 += c.n;
                        slot.1 += c.amount;
                        slot.2 += c.earnings;
                        slot.3 += c.flagged;
                        slot.4 += c.held;
                    })?;
                }
            }
            Ok(Aggregates {
                scans: scans
                    .into_iter()
                    .map(|(k, c)| {
                        let e = c.visitors.estimate();
                        ScanAgg {
                            k,
                            human: c.human,
                            bot: c.bot,
                            suspect: c.suspect,
                            qr: c.qr,
                            link: c.link,
                            uniq: e.count,
                            uniq_exact: u8::from(e.exact),
                        }
                    })
                    .collect(),
                conversions: conversions
                    .into_iter()
                    .map(
                        |(
                            (k, kind, currency, earnings_currency, confirmed),
                            (n, amount, earnings, flagged, held),
                        )| {
                            ConversionAgg {
                                k,
                                kind: kind.to_string(),
                                currency,
                                earnings_currency,
                                confirmed,
                                n,
                                amount_sum: amount,
                                earnings_sum: earnings,
                                flagged,
                                held_sum: held,
                            }
                        },
                    )
                    .collect(),
                delays,
            })
        })
        .await?)
}

fn span(r: &Range) -> (u32, u32) {
    (r.from, r.to)
}

/// Every code's human scans (`scans`) or conversions (else) over `ranges`,
/// keyed by code (for a ranking over all codes).
pub(super) async fn totals(
    sink: &EmbeddedSink,
    ranges: &[Range],
    scans: bool,
) -> Result<Aggregates, Error> {
    let ranges = ranges.to_vec();
    Ok(sink
        .read(move |r| {
            let mut human: HashMap<String, u64> = HashMap::new();
            let mut conversions: BTreeMap<(String, &'static str, String), (u64, i128)> =
                BTreeMap::new();
            for range in &ranges {
                r.totals(range.grain, span(range), |code, t| {
                    if scans {
                        if t.human > 0 {
                            match human.get_mut(code) {
                                Some(n) => *n += t.human,
                                None => {
                                    human.insert(code.to_string(), t.human);
                                }
                            }
                        }
                        return Ok(());
                    }
                    for item in t.conversions() {
                        let (_owner, kind, currency, n, earnings) = item?;
                        let slot = conversions
                            .entry((code.to_string(), kind.as_str(), currency.to_string()))
                            .or_default();
                        slot.0 += n;
                        slot.1 += earnings;
                    }
                    Ok(())
                })?;
            }
            Ok(Aggregates {
                scans: human
                    .into_iter()
                    .map(|(k, human)| ScanAgg {
                        k,
                        human,
                        ..ScanAgg::default()
                    })
                    .collect(),
                conversions: conversions
                    .into_iter()
                    .map(
                        |((k, kind, earnings_currency), (n, earnings))| ConversionAgg {
                            k,
                            kind: kind.to_string(),
                            earnings_currency,
                            n,
                            earnings_sum: earnings,
                            ..ConversionAgg::default()
                        },
                    )
                    .collect(),
                delays: DelayHistogram::default(),
            })
        })
        .await?)
}

/// Every code's human scans and conversions (of `owner` when given, split
/// into confirmed and estimated by each range's flag) over `ranges`, keyed by
/// code: one pass over the totals ordered by time (the rows of every code).
pub(super) async fn code_totals(
    sink: &EmbeddedSink,
    ranges: &[(Range, bool)],
    owner: Option<&str>,
) -> Result<Aggregates, Error> {
    /// A code's sums: human scans, and per (kind, earnings currency,
    /// confirmed) a count and earnings (a few, searched in place).
    #[derive(Default)]
    struct Sums {
        human: u64,
        conversions: Vec<(ConversionKind, String, bool, u64, i128)>,
    }
    let ranges = ranges.to_vec();
    let owner = owner.map(str::to_string);
    Ok(sink
        .read(move |r| {
            let mut codes: HashMap<String, Sums> = HashMap::new();
            for (range, confirmed) in &ranges {
                r.totals(range.grain, span(range), |code, t| {
                    // One lookup per entry, a key allocated once per code.
                    let sums = match codes.get_mut(code) {
                        Some(s) => s,
                        None => codes.entry(code.to_string()).or_default(),
                    };
                    sums.human += t.human;
                    for item in t.conversions() {
                        let (credited, kind, currency, n, earnings) = item?;
                        if owner.as_deref().is_some_and(|o| o != credited) {
                            continue;
                        }
                        let found = sums.conversions.iter_mut().find(|(k, c, side, _, _)| {
                            *k == kind && c == currency && side == confirmed
                        });
                        match found {
                            Some(slot) => {
                                slot.3 += n;
                                slot.4 += earnings;
                            }
                            None => sums.conversions.push((
                                kind,
                                currency.to_string(),
                                *confirmed,
                                n,
                                earnings,
                            )),
                        }
                    }
                    Ok(())
                })?;
            }
            let mut out = Aggregates::default();
            for (k, sums) in codes {
                for (kind, earnings_currency, confirmed, n, earnings) in sums.conversions {
                    out.conversions.push(ConversionAgg {
                        k: k.clone(),
                        kind: kind.as_str().to_string(),
                        earnings_currency,
                        confirmed: u8::from(confirmed),
                        n,
                        earnings_sum: earnings,
                        ..ConversionAgg::default()
                    });
                }
                out.scans.push(ScanAgg {
                    k,
                    human: sums.human,
                    ..ScanAgg::default()
                });
            }
            Ok(out)
        })
        .await?)
}

/// The owner of each code's latest stored conversion (by `occurred_ms`, then
/// `event_id`).
pub(super) async fn owners(
    sink: &EmbeddedSink,
    codes: Vec<String>,
) -> Result<HashMap<String, String>, Error> {
    Ok(sink
        .read(move |r| {
            let mut out = HashMap::new();
            for code in codes {
                if let Some(owner) = r.latest_owner(&code)? {
                    out.insert(code, owner);
                }
            }
            Ok(out)
        })
        .await?)
}

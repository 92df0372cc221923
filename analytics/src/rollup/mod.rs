//! Rollups: scans and conversions aggregated when they are written, so that
//! every analytics answer reads pre-aggregated cells, never raw rows.
//!
//! # Cells
//! A cell is keyed by a *scope* (a code, or [`ALL`] for every code), a
//! [`Grain`] and the UTC start of its time bucket, a [`Dim`] and the value of
//! that dimension (`""` for [`Dim::Total`]). Scans are kept per:
//!
//! | grain | dimensions |
//! |---|---|
//! | quarter-hour | total only (timeseries in zones with :30 and :45 offsets, range edges) |
//! | hour | total and every dimension |
//! | day | total and every dimension |
//!
//! A scan cell holds human scans, scans not human (bots and suspects) and
//! the suspects among them, human QR and link scans, and the
//! distinct human visitors (hashes, kept as a [`VisitorSketch`] by the
//! embedded store and as ClickHouse `uniqUpTo(100)` + `uniqHLL12` states).
//! Conversion cells are keyed further by owner (`""` in the [`ALL`] scope),
//! kind, currency and earnings currency, and hold the count, the amount and
//! earnings sums (i128), and for signups with a scan the histogram of the
//! scan-to-signup delay. A conversion's value for a scan dimension is that of
//! its attributed scan, resolved when the conversion is written
//! ([`ScanDims`]); its channel is its own.
//!
//! *Totals by time* ([`TotalsKey`]) repeat the total cells per code ordered by
//! time first, so that a ranking over every code ([`crate::query`]'s `top`)
//! reads one time range instead of one range per code.
//!
//! The functions here only compute the cells a batch adds; each backend stores
//! and merges them (`sink`), exactly once per batch.

pub mod block;

use crate::event::{Conversion, ConversionKind, Scan};
use crate::histogram::DelayHistogram;
use crate::review::Adjustment;
use crate::sketch::visitor_hash;
use crate::Text;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The scope of the cells over every code.
pub const ALL: &str = "*";

/// A time bucket size. Buckets start at multiples of their size in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Grain {
    Quarter = 0,
    Hour = 1,
    Day = 2,
}

impl Grain {
    /// Finest first.
    pub const ALL: [Grain; 3] = [Grain::Quarter, Grain::Hour, Grain::Day];

    pub fn secs(self) -> u64 {
        match self {
            Grain::Quarter => 900,
            Grain::Hour => 3600,
            Grain::Day => 86_400,
        }
    }

    /// The start of the bucket holding `secs`.
    pub fn floor(self, secs: u64) -> u64 {
        secs - secs % self.secs()
    }

    pub fn from_u8(v: u8) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| *g as u8 == v)
    }

    /// Whether cells of this grain carry dimensions besides the total.
    pub fn has_dims(self) -> bool {
        self != Grain::Quarter
    }
}

/// What a cell is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Dim {
    Total = 0,
    Channel = 1,
    /// `qr` or `link`.
    Source = 2,
    /// The bot reason; `""` for humans.
    BotReason = 3,
    Device = 4,
    Os = 5,
    Browser = 6,
    InApp = 7,
    Country = 8,
    Referrer = 9,
    /// The routing rule that chose the destination (`""`: none).
    Route = 10,
}

impl Dim {
    pub const ALL: [Dim; 11] = [
        Dim::Total,
        Dim::Channel,
        Dim::Source,
        Dim::BotReason,
        Dim::Device,
        Dim::Os,
        Dim::Browser,
        Dim::InApp,
        Dim::Country,
        Dim::Referrer,
        Dim::Route,
    ];

    pub fn from_u8(v: u8) -> Option<Dim> {
        Dim::ALL.get(usize::from(v)).copied()
    }

    pub fn of_scan(self, s: &Scan) -> &str {
        match self {
            Dim::Total => "",
            Dim::Channel => &s.channel,
            Dim::Source => &s.source,
            Dim::BotReason => &s.bot_reason,
            Dim::Device => &s.device,
            Dim::Os => &s.os,
            Dim::Browser => &s.browser,
            Dim::InApp => &s.in_app,
            Dim::Country => &s.country,
            Dim::Referrer => &s.referrer_host,
            Dim::Route => &s.route,
        }
    }

    /// The key of a conversion: its own channel, else its attributed scan's
    /// value (`""` without one; the scan is human, so its bot reason is `""`).
    pub fn of_conversion<'a>(self, c: &'a Conversion, scan: Option<&'a ScanDims>) -> &'a str {
        match (self, scan) {
            (Dim::Total | Dim::BotReason, _) => "",
            (Dim::Channel, _) => &c.channel,
            (_, None) => "",
            (Dim::Source, Some(d)) => &d.source,
            (Dim::Device, Some(d)) => &d.device,
            (Dim::Os, Some(d)) => &d.os,
            (Dim::Browser, Some(d)) => &d.browser,
            (Dim::InApp, Some(d)) => &d.in_app,
            (Dim::Country, Some(d)) => &d.country,
            (Dim::Referrer, Some(d)) => &d.referrer_host,
            (Dim::Route, Some(d)) => &d.route,
        }
    }
}

/// The dimensions of a conversion's attributed scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanDims {
    pub source: Text,
    pub device: Text,
    pub os: Text,
    pub browser: Text,
    pub in_app: Text,
    pub country: Text,
    pub referrer_host: Text,
    /// Scans stored before routing rules (and dims serialised then) read `""`.
    #[serde(default)]
    pub route: Text,
}

impl ScanDims {
    pub fn of(s: &Scan) -> Self {
        Self {
            source: s.source.clone(),
            device: s.device.clone(),
            os: s.os.clone(),
            browser: s.browser.clone(),
            in_app: s.in_app.clone(),
            country: s.country.clone(),
            referrer_host: s.referrer_host.clone(),
            route: s.route.clone(),
        }
    }
}

/// Where a cell is. Ordered by scope, grain, dimension, bucket, value: the
/// order of ClickHouse's `scan_rollup` key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub scope: String,
    pub grain: Grain,
    pub dim: Dim,
    /// Unix seconds of the bucket start.
    pub bucket: u32,
    pub value: String,
}

/// What a batch adds to one scan cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanDelta {
    pub human: u64,
    /// Every scan not human (bots and suspects).
    pub bot: u64,
    /// The suspects among `bot`.
    pub suspect: u64,
    /// Human scans from a QR image / of the link.
    pub qr: u64,
    pub link: u64,
    /// Distinct hashes ([`visitor_hash`]) of the human visitors.
    pub visitors: Vec<u64>,
}

/// The scan cells a batch adds to, grouped as the backends store them.
pub fn scan_cells(scans: &[Scan]) -> BTreeMap<CellKey, ScanDelta> {
    let mut b = ScanCellBuilder::default();
    for s in scans {
        b.add(s);
    }
    b.finish()
}

/// Builds scan cells one scan at a time (for reading rows as a stream).
///
/// Cost matters here (it runs on the recorder thread for every batch): scans
/// are first counted per distinct combination of everything a cell is keyed
/// by (a batch has far fewer combinations than scans), visitors as dense
/// `u32` ids; the combinations are then spread into quarter-hour cells per
/// scope, dimension and value, and each hour and day cell is the union of the
/// quarter-hours in it, which within a batch (about a second of scans) is
/// nearly always a single one, copied instead of merged. Unions are made with
/// a stamp per id, not by sorting.
#[derive(Default)]
pub struct ScanCellBuilder {
    /// `{code}\0{quarter}\0{9 values}` → counts and visitor ids.
    combos: foldhash::HashMap<String, Counts>,
    /// Visitor hash → dense id, and back.
    ids: foldhash::HashMap<u64, u32>,
    hashes: Vec<u64>,
    key: String,
}

/// Counts of a combination or a cell, and (of a combination) the ids of its
/// human visitors, repeats possible.
#[derive(Default, Clone)]
struct Counts {
    human: u64,
    bot: u64,
    suspect: u64,
    qr: u64,
    link: u64,
    ids: Vec<u32>,
}

impl Counts {
    fn add_counts(&mut self, other: &Counts) {
        self.human += other.human;
        self.bot += other.bot;
        self.suspect += other.suspect;
        self.qr += other.qr;
        self.link += other.link;
    }
}

impl ScanCellBuilder {
    pub fn add(&mut self, s: &Scan) {
        use std::fmt::Write as _;
        self.key.clear();
        self.key.push_str(&s.code);
        let _ = write!(self.key, "\0{}", Grain::Quarter.floor(s.ts_ms / 1000));
        // Every dimension but the total, in order: value i is Dim i + 1.
        for &dim in &Dim::ALL[1..] {
            self.key.push('\0');
            self.key.push_str(dim.of_scan(s));
        }
        let d = match self.combos.get_mut(self.key.as_str()) {
            Some(d) => d,
            None => self.combos.entry(self.key.clone()).or_default(),
        };
        if s.is_bot() {
            d.bot += 1;
            if s.verdict() == crate::event::Verdict::Suspect {
                d.suspect += 1;
            }
        } else {
            d.human += 1;
            match s.source.as_str() {
                "qr" => d.qr += 1,
                // A tap on the bio page is a tap on a link.
                "link" | "bio" => d.link += 1,
                _ => {}
            }
            let h = visitor_hash(&s.visitor_id);
            let hashes = &mut self.hashes;
            let id = *self.ids.entry(h).or_insert_with(|| {
                hashes.push(h);
                (hashes.len() - 1) as u32
            });
            // A visitor's scans come in runs: the repeat is skipped at once
            // (the others when the cells are built).
            if d.ids.last() != Some(&id) {
                d.ids.push(id);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.combos.is_empty()
    }

    pub fn finish(self) -> BTreeMap<CellKey, ScanDelta> {
        let combos: Vec<(&str, Counts)> = self
            .combos
            .iter()
            .map(|(k, c)| (k.as_str(), c.clone()))
            .collect();
        // Quarter-hour cells per (scope, dimension, value): their counts and
        // the combinations in them.
        type Fine<'a> = (&'a str, Dim, &'a str, u64);
        let mut fine: foldhash::HashMap<Fine<'_>, (Counts, Vec<usize>)> = Default::default();
        for (i, (combo, d)) in combos.iter().enumerate() {
            let mut parts = combo.split('\0');
            let code = parts.next().unwrap_or_default();
            let quarter: u64 = parts
                .next()
                .and_then(|q| q.parse().ok())
                .unwrap_or_default();
            let values: Vec<&str> = parts.collect();
            for scope in [code, ALL] {
                for dim in Dim::ALL {
                    let value = match dim {
                        Dim::Total => "",
                        other => values.get(other as usize - 1).copied().unwrap_or_default(),
                    };
                    let (counts, members) = fine.entry((scope, dim, value, quarter)).or_default();
                    counts.add_counts(d);
                    members.push(i);
                }
            }
        }
        // Union of id lists without sorting: `stamp[id]` remembers the last
        // list an id went into.
        let mut stamp = vec![0u32; self.hashes.len()];
        let mut next_stamp = 0u32;
        let mut union = |lists: &mut dyn Iterator<Item = &[u32]>| -> Vec<u32> {
            next_stamp += 1;
            let mut out = Vec::new();
            for list in lists {
                for &id in list {
                    let seen = &mut stamp[id as usize];
                    if *seen != next_stamp {
                        *seen = next_stamp;
                        out.push(id);
                    }
                }
            }
            out
        };
        // Strings are ranked once so that cells are keyed, grouped and sorted
        // by integers: with String keys (a pointer to follow per comparison)
        // a batch of many sparse codes spent microseconds per cell in cache
        // misses.
        fn rank<'a>(strs: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
            let mut sorted: Vec<&str> = strs.collect();
            sorted.sort_unstable();
            sorted.dedup();
            sorted
        }
        let scopes = rank(fine.keys().map(|k| k.0));
        let values = rank(fine.keys().map(|k| k.2));
        let scope_rank: foldhash::HashMap<&str, u32> = scopes
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        let value_rank: foldhash::HashMap<&str, u32> = values
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        // (scope, grain, dim, bucket, value) as ranks: CellKey's order.
        type Key = (u32, Grain, Dim, u32, u32);
        let fine: Vec<(Key, Counts, Vec<u32>)> = fine
            .into_iter()
            .map(|((scope, dim, value, quarter), (counts, members))| {
                let ids = union(&mut members.iter().map(|&i| combos[i].1.ids.as_slice()));
                let key = (
                    scope_rank[scope],
                    Grain::Quarter,
                    dim,
                    quarter as u32,
                    value_rank[value],
                );
                (key, counts, ids)
            })
            .collect();
        // Hour and day cells are unions of quarter-hour cells; quarter-hour
        // cells are kept for the totals only.
        let mut coarse: foldhash::HashMap<Key, (Counts, Vec<usize>)> = Default::default();
        for (i, ((scope, _, dim, quarter, value), counts, _)) in fine.iter().enumerate() {
            for grain in [Grain::Hour, Grain::Day] {
                let key = (
                    *scope,
                    grain,
                    *dim,
                    grain.floor(u64::from(*quarter)) as u32,
                    *value,
                );
                let (c, members) = coarse.entry(key).or_default();
                c.add_counts(counts);
                members.push(i);
            }
        }
        let hashes = &self.hashes;
        let delta = |c: &Counts, ids: &[u32]| ScanDelta {
            human: c.human,
            bot: c.bot,
            suspect: c.suspect,
            qr: c.qr,
            link: c.link,
            visitors: ids.iter().map(|&id| hashes[id as usize]).collect(),
        };
        let mut cells: Vec<(Key, ScanDelta)> = Vec::with_capacity(coarse.len() + fine.len() / 8);
        for (key, counts, ids) in &fine {
            if key.2 == Dim::Total {
                cells.push((*key, delta(counts, ids)));
            }
        }
        for (key, (counts, members)) in coarse {
            let d = match members.as_slice() {
                [only] => delta(&counts, &fine[*only].2),
                _ => delta(
                    &counts,
                    &union(&mut members.iter().map(|&i| fine[i].2.as_slice())),
                ),
            };
            cells.push((key, d));
        }
        cells.sort_unstable_by_key(|c| c.0);
        // Sorted, so the map is built in one pass.
        cells
            .into_iter()
            .map(|((scope, grain, dim, bucket, value), d)| {
                let key = CellKey {
                    scope: scopes[scope as usize].to_string(),
                    grain,
                    dim,
                    bucket,
                    value: values[value as usize].to_string(),
                };
                (key, d)
            })
            .collect()
    }
}

/// Where a conversion cell is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversionKey {
    pub cell: CellKey,
    /// The owner credited; `""` in the [`ALL`] scope.
    pub owner: String,
    pub kind: ConversionKind,
    pub currency: String,
    pub earnings_currency: String,
}

/// What a batch adds to one conversion cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionDelta {
    pub n: u64,
    /// Sum of amounts (refunds positive, like the rows).
    pub amount: i128,
    /// Sum of earnings (refunds negative).
    pub earnings: i128,
    /// Scan-to-signup delays of the signups with a scan (total cells only).
    pub delays: DelayHistogram,
    /// Flagged conversions not approved: +1 when one is recorded, −1 when a
    /// review approves it (signed, like every adjustment).
    pub flagged: i64,
    /// Earnings held back by pending reviews: +held when recorded, −held
    /// when approved or rejected.
    pub held: i128,
}

impl ConversionDelta {
    pub fn add(&mut self, other: &ConversionDelta) {
        self.n += other.n;
        self.amount += other.amount;
        self.earnings += other.earnings;
        self.flagged += other.flagged;
        self.held += other.held;
        self.delays.merge(&other.delays);
    }
}

/// The conversion cells that `conversions` (each with its attributed scan's
/// dimensions, when found) add to.
pub fn conversion_cells(
    conversions: &[(&Conversion, Option<&ScanDims>)],
) -> BTreeMap<ConversionKey, ConversionDelta> {
    let mut cells = BTreeMap::new();
    for &(c, scan) in conversions {
        add_cells(&mut cells, c, scan, |dim, cell| {
            cell.n += 1;
            cell.amount += i128::from(c.amount);
            cell.earnings += i128::from(c.earnings);
            if let Some(f) = &c.flagged {
                cell.flagged += 1;
                cell.held += i128::from(f.held);
            }
            if dim == Dim::Total && c.kind == ConversionKind::Signup && c.scan_ms > 0 {
                cell.delays
                    .add_secs(c.occurred_ms.saturating_sub(c.scan_ms) / 1000);
            }
        });
    }
    cells
}

/// The cells review adjustments change: each conversion's own cells (the
/// same as [`conversion_cells`] gives it) get the adjustment's earnings, held
/// and flagged changes; counts, amounts and delays stay.
pub fn adjustment_cells(
    adjustments: &[(&Adjustment, Option<&ScanDims>)],
) -> BTreeMap<ConversionKey, ConversionDelta> {
    let mut cells = BTreeMap::new();
    for &(a, scan) in adjustments {
        add_cells(&mut cells, &a.conversion, scan, |_, cell| {
            cell.earnings += i128::from(a.earnings);
            cell.held += i128::from(a.held);
            cell.flagged += a.flagged;
        });
    }
    cells
}

/// Applies `add` to every cell of conversion `c` (with its scan's dimensions).
fn add_cells(
    cells: &mut BTreeMap<ConversionKey, ConversionDelta>,
    c: &Conversion,
    scan: Option<&ScanDims>,
    mut add: impl FnMut(Dim, &mut ConversionDelta),
) {
    {
        let quarter = Grain::Quarter.floor(c.occurred_ms / 1000);
        let scopes: &[(&str, &str)] = if c.code.is_empty() {
            &[(ALL, "")]
        } else {
            &[(c.code.as_str(), c.owner.as_str()), (ALL, "")]
        };
        for &(scope, owner) in scopes {
            for grain in Grain::ALL {
                let dims: &[Dim] = if grain.has_dims() {
                    &Dim::ALL
                } else {
                    &[Dim::Total]
                };
                for &dim in dims {
                    let key = ConversionKey {
                        cell: CellKey {
                            scope: scope.to_string(),
                            grain,
                            dim,
                            bucket: grain.floor(quarter) as u32,
                            value: dim.of_conversion(c, scan).to_string(),
                        },
                        owner: owner.to_string(),
                        kind: c.kind,
                        currency: c.currency.clone(),
                        earnings_currency: c.earnings_currency.clone(),
                    };
                    add(dim, cells.entry(key).or_default());
                }
            }
        }
    }
}

/// A code's totals in one time bucket, ordered by time first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TotalsKey {
    pub grain: Grain,
    pub bucket: u32,
    /// A code (never [`ALL`]).
    pub scope: String,
}

/// What a batch adds to a code's totals in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotalsDelta {
    pub human: u64,
    /// Per (owner, kind, earnings currency): count and earnings.
    pub conversions: BTreeMap<(String, ConversionKind, String), (u64, i128)>,
}

/// The per-code totals by time that scan and conversion cells add to.
pub fn totals(
    scans: &BTreeMap<CellKey, ScanDelta>,
    conversions: &BTreeMap<ConversionKey, ConversionDelta>,
) -> BTreeMap<TotalsKey, TotalsDelta> {
    let mut out: BTreeMap<TotalsKey, TotalsDelta> = BTreeMap::new();
    let key = |k: &CellKey| TotalsKey {
        grain: k.grain,
        bucket: k.bucket,
        scope: k.scope.clone(),
    };
    for (k, d) in scans {
        if k.dim == Dim::Total && k.scope != ALL {
            out.entry(key(k)).or_default().human += d.human;
        }
    }
    for (k, d) in conversions {
        if k.cell.dim == Dim::Total && k.cell.scope != ALL {
            let t = out.entry(key(&k.cell)).or_default();
            let e = t
                .conversions
                .entry((k.owner.clone(), k.kind, k.earnings_currency.clone()))
                .or_default();
            e.0 += d.n;
            e.1 += d.earnings;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Rule;

    fn scan(code: &str, ts_ms: u64, visitor: &str, channel: &str, bot: &str) -> Scan {
        Scan {
            scan_id: format!("{ts_ms:026}").into(),
            ts_ms,
            code: code.into(),
            channel: channel.into(),
            visitor_id: visitor.into(),
            source: "qr".into(),
            device: "mobile".into(),
            country: "DE".into(),
            bot_reason: bot.into(),
            ..Scan::default()
        }
    }

    fn get<'a>(
        cells: &'a BTreeMap<CellKey, ScanDelta>,
        scope: &str,
        grain: Grain,
        dim: Dim,
        bucket: u32,
        value: &str,
    ) -> &'a ScanDelta {
        &cells[&CellKey {
            scope: scope.into(),
            grain,
            dim,
            bucket,
            value: value.into(),
        }]
    }

    #[test]
    fn scans_fan_out_into_cells_per_scope_grain_and_dimension() {
        let day = 1_700_006_400; // 2023-11-15T00:00:00Z
        let t = |secs: u64| (day + secs) * 1000;
        let scans = [
            scan("a", t(10), "v1", "yt", ""),
            scan("a", t(20), "v1", "yt", ""),
            scan("a", t(950), "v2", "", ""),
            scan("a", t(960), "v9", "yt", "head"),
            scan("b", t(3700), "v1", "ig", ""),
        ];
        let cells = scan_cells(&scans);
        let q0 = get(&cells, "a", Grain::Quarter, Dim::Total, day as u32, "");
        assert_eq!((q0.human, q0.bot, q0.qr, q0.visitors.len()), (2, 0, 2, 1));
        let q1 = get(
            &cells,
            "a",
            Grain::Quarter,
            Dim::Total,
            day as u32 + 900,
            "",
        );
        assert_eq!((q1.human, q1.bot), (1, 1));
        let h = get(&cells, "a", Grain::Hour, Dim::Channel, day as u32, "yt");
        assert_eq!((h.human, h.bot, h.visitors.len()), (2, 1, 1));
        let h = get(&cells, "a", Grain::Hour, Dim::BotReason, day as u32, "head");
        assert_eq!((h.human, h.bot), (0, 1));
        let all = get(&cells, ALL, Grain::Day, Dim::Total, day as u32, "");
        assert_eq!((all.human, all.bot, all.visitors.len()), (4, 1, 2));
        let all = get(&cells, ALL, Grain::Day, Dim::Country, day as u32, "DE");
        assert_eq!(all.human + all.bot, 5);
        // No dimensions at quarter-hour grain.
        assert!(!cells
            .keys()
            .any(|k| k.grain == Grain::Quarter && k.dim != Dim::Total));
        // Every grain and scope sees every scan once.
        for grain in Grain::ALL {
            for scope in ["a", "b", ALL] {
                let n: u64 = cells
                    .iter()
                    .filter(|(k, _)| k.grain == grain && k.scope == scope && k.dim == Dim::Total)
                    .map(|(_, d)| d.human + d.bot)
                    .sum();
                let want = scans
                    .iter()
                    .filter(|s| scope == ALL || s.code == scope)
                    .count() as u64;
                assert_eq!(n, want, "{grain:?} {scope}");
            }
        }
    }

    #[test]
    fn a_bio_tap_is_a_link_tap_with_its_own_source_value() {
        let day = 1_700_006_400;
        let mut bio = scan("a", day * 1000, "v1", "yt", "");
        bio.source = "bio".into();
        let scans = [bio, scan("a", day * 1000 + 1, "v2", "yt", "")];
        let cells = scan_cells(&scans);
        let total = get(&cells, "a", Grain::Day, Dim::Total, day as u32, "");
        assert_eq!((total.human, total.qr, total.link), (2, 1, 1));
        let by = |v: &str| get(&cells, "a", Grain::Day, Dim::Source, day as u32, v).human;
        assert_eq!((by("bio"), by("qr")), (1, 1));
    }

    fn conversion(code: &str, kind: ConversionKind, ms: u64, scan_ms: u64) -> Conversion {
        Conversion {
            event_id: format!("e{ms}"),
            kind,
            occurred_ms: ms,
            received_ms: ms,
            code: code.into(),
            owner: if code.is_empty() { "" } else { "alice" }.into(),
            channel: "yt".into(),
            scan_id: String::new(),
            scan_ms,
            visitor_id: String::new(),
            customer_id: String::new(),
            amount: 1000,
            currency: "EUR".into(),
            rule: Rule::ScanId,
            earnings: if kind == ConversionKind::Refund {
                -100
            } else {
                100
            },
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        }
    }

    #[test]
    fn conversions_fan_out_with_their_scan_dimensions() {
        let ms = 1_700_006_400_000;
        let signup = conversion("a", ConversionKind::Signup, ms + 61_000, ms);
        let refund = conversion("a", ConversionKind::Refund, ms + 1000, 0);
        let lost = conversion("", ConversionKind::Purchase, ms, 0);
        let dims = ScanDims {
            device: "mobile".into(),
            country: "FR".into(),
            ..ScanDims::default()
        };
        let cells = conversion_cells(&[(&signup, Some(&dims)), (&refund, None), (&lost, None)]);
        let find = |scope: &str, dim: Dim, value: &str, kind: ConversionKind| {
            cells
                .iter()
                .find(|(k, _)| {
                    k.cell.scope == scope
                        && k.cell.grain == Grain::Day
                        && k.cell.dim == dim
                        && k.cell.value == value
                        && k.kind == kind
                })
                .map(|(k, d)| (k.owner.clone(), d.clone()))
        };
        let (owner, d) = find("a", Dim::Country, "FR", ConversionKind::Signup).unwrap();
        assert_eq!((owner.as_str(), d.n, d.earnings), ("alice", 1, 100));
        let (_, d) = find("a", Dim::Country, "", ConversionKind::Refund).unwrap();
        assert_eq!((d.n, d.amount, d.earnings), (1, 1000, -100));
        let (_, d) = find("a", Dim::Total, "", ConversionKind::Signup).unwrap();
        assert_eq!(d.delays.median_secs(), Some(61.0));
        let (owner, d) = find(ALL, Dim::Total, "", ConversionKind::Purchase).unwrap();
        assert_eq!(
            (owner.as_str(), d.n),
            ("", 1),
            "unattributed: all codes only"
        );
        assert!(find("", Dim::Total, "", ConversionKind::Purchase).is_none());
        let t = totals(&BTreeMap::new(), &cells);
        let day = t[&TotalsKey {
            grain: Grain::Day,
            bucket: 1_700_006_400,
            scope: "a".into(),
        }]
            .clone();
        assert_eq!(
            day.conversions[&("alice".into(), ConversionKind::Signup, "EUR".into())],
            (1, 100)
        );
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// What computing a batch's cells costs per scan (release build:
    /// `cargo test --release -p codelink-analytics --lib rollup::cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, not a test"]
    fn cells_per_scan() {
        let scan = |i: u64, visitors: u64, combos: u64| Scan {
            scan_id: format!("{i:026}").into(),
            ts_ms: 1_700_000_000_000 + i * 10,
            code: format!("code{}", i % combos.min(5)).into(),
            channel: ["yt", "ig", "bio", ""][(i % 4) as usize].into(),
            visitor_id: format!("visitor-{:016x}", i % visitors).into(),
            source: if i.is_multiple_of(3) { "qr" } else { "link" }.into(),
            device: "mobile".into(),
            os: "iOS".into(),
            browser: ["Safari", "Chrome"][(i % combos.min(2)) as usize].into(),
            country: ["DE", "FR", "US"][(i % combos.min(3)) as usize].into(),
            ..Scan::default()
        };
        let sparse = |i: u64| Scan {
            code: format!("code{}", (i * 7919) % 10_000).into(),
            ts_ms: 1_700_000_000_000 + i * 80_000,
            ..scan(i, 1 << 40, 100)
        };
        for (name, n, visitors, combos) in [
            ("one code, one visitor (wrk)", 90_000u64, 1u64, 1u64),
            ("5 codes, many visitors", 90_000, 20_000, 100),
            ("10 000 codes over 90 days (a bulk load)", 100_000, 0, 0),
        ] {
            let scans: Vec<Scan> = (0..n)
                .map(|i| {
                    if visitors == 0 {
                        sparse(i)
                    } else {
                        scan(i, visitors, combos)
                    }
                })
                .collect();
            let t = std::time::Instant::now();
            let cells = scan_cells(&scans);
            let per = t.elapsed().as_nanos() as f64 / n as f64;
            println!("{name}: {} cells, {per:.0} ns per scan", cells.len());
        }
    }
}

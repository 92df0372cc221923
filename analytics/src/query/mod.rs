//! Analytics queries, answered from rollups (see [`crate::rollup`]) by the
//! embedded store (redb, merged in Rust) or ClickHouse (SQL over
//! `AggregatingMergeTree` tables), with the same numbers.
//!
//! # Counting rules
//! - **Ranges are whole UTC quarter-hours**: `from` is rounded down and `to`
//!   up to a multiple of 15 minutes (breakdowns: of an hour, see
//!   [`effective_range`]); the answer counts what lies in that range.
//! - **Scans** count when their code is in [`Query::codes`] (all codes when
//!   `None`). *Human* scans are those without a bot reason; `qr`/`link` and
//!   unique scanners count human scans only. *Unique scanners* are the
//!   distinct `visitor_id`s of the human scans in the group being counted (the
//!   whole query, a bucket, a breakdown key), merged from per-cell sketches,
//!   never summed: exact up to 100, estimated beyond (`unique_scanners_exact`
//!   says which; see README for the error bound).
//! - **Conversions** count when their code is in `codes` and, with
//!   [`Query::owner`], they were credited to that owner. Unattributed
//!   conversions carry the code `""`: they appear only when `codes` is `None`
//!   (they count in signups/purchases and money, never in [`Backend::top`] or
//!   [`Backend::code_rows`]).
//!   A brand's repeat of an event id counts once.
//! - **Money** lists ([`Money`]) hold one entry per currency that at least one
//!   counted conversion carries (an entry may net to 0), sorted by currency.
//!   Conversions with an empty currency are left out of money lists. Revenue is
//!   purchases minus refunds by `currency`; earnings sum `earnings` (refunds are
//!   already negative) by `earnings_currency`. Sums are 128-bit.
//! - **Confirmed** earnings are those of conversions whose UTC hour ended at
//!   least `hold_ms` before `now_ms` ([`crate::ledger::is_confirmed`]); the
//!   others are estimated.
//!
//! # Time zones
//! [`Query::tz`] (an IANA name, checked with the bundled tz database of `jiff`)
//! is used by [`Backend::timeseries`] only. A bucket is an hour or a day *in
//! that zone*. Each bucket is counted from the rollup cells that lie inside it
//! (see `plan.rs`): UTC days, hours and quarter-hours, so zones whose offset
//! is a whole number of hours, half-hours (Asia/Kolkata) or quarter-hours
//! (Asia/Kathmandu) all get exact buckets; a zone whose bucket boundaries are
//! not on a quarter-hour (local mean time before 1900, say) is refused.
//! Around a DST change an hour bucket is an hour of real time (the repeated
//! hour of autumn gives two buckets with different offsets) and a day bucket
//! is 23 or 25 hours long. Bucket starts are RFC 3339 with the zone's offset at
//! that instant, e.g. `2024-10-27T02:00:00+01:00` (`+00:00` for UTC).
//!
//! # Breakdown keys of conversions
//! A conversion's key in a [`Dimension::Channel`] breakdown is its own
//! `channel`. For the other dimensions it is the field of its attributed scan,
//! looked up when the conversion is stored; a conversion without a scan, or
//! whose scan was not stored yet then, gets the key `""`.

mod clickhouse;
mod embedded;
mod finish;
pub(crate) mod plan;

use crate::error::Error;
use crate::event::Conversion;
use crate::histogram::DelayHistogram;
use crate::rollup::{Dim, Grain, ALL};
use crate::sink::{ClickHouseEvents, EmbeddedSink};
use plan::Range;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What to count: a time range, the codes, and what "now" is for earnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Unix ms, inclusive (rounded down to the quarter-hour).
    pub from_ms: u64,
    /// Unix ms, exclusive (rounded up to the quarter-hour).
    pub to_ms: u64,
    /// IANA time zone name for time buckets, e.g. `UTC`, `Europe/Berlin`.
    pub tz: String,
    /// Codes as stored (lowercase); `None` = all codes, including the
    /// unattributed conversions (code `""`).
    pub codes: Option<Vec<String>>,
    /// Only the conversions credited to this owner, among those of `codes` (a
    /// creator's own view: the new owner of a code that changed hands does not
    /// see the conversions credited to the previous one); `None` = whoever they
    /// were credited to.
    pub owner: Option<String>,
    /// Unix ms: the present, for estimated vs confirmed earnings.
    pub now_ms: u64,
    /// See [`crate::ledger::is_confirmed`].
    pub hold_ms: u64,
}

impl Query {
    /// Nothing can match: an empty time range or an empty code list.
    fn matches_nothing(&self) -> bool {
        self.from_ms >= self.to_ms || self.codes.as_ref().is_some_and(|c| c.is_empty())
    }

    /// The scopes whose cells hold the answer.
    fn scopes(&self) -> Vec<String> {
        match &self.codes {
            None => vec![ALL.to_string()],
            Some(codes) => {
                let mut codes = codes.clone();
                codes.sort();
                codes.dedup();
                codes
            }
        }
    }

    /// Conversions in UTC hours starting before this (Unix seconds) are
    /// confirmed, the others estimated.
    fn confirmed_before(&self) -> u64 {
        plan::floor(self.now_ms.saturating_sub(self.hold_ms) / 1000, 3600)
    }
}

/// About how many buckets a timeseries of `q` has (one more or less around
/// DST changes).
pub fn bucket_count(q: &Query, interval: Interval) -> u64 {
    let (from, to) = snapped(q, Grain::Quarter);
    let span = match interval {
        Interval::Hour => 3600,
        Interval::Day => 86_400,
    };
    to.saturating_sub(from).div_ceil(span)
}

/// The start (Unix seconds) of every bucket of a timeseries of `q`, in order,
/// empty buckets included: the same starts [`Backend::timeseries`] gives the
/// buckets it returns (for a chart that also shows the empty ones).
pub fn bucket_starts(q: &Query, interval: Interval) -> Result<Vec<i64>, Error> {
    let zone = Zone::get(&q.tz)?;
    if bucket_count(q, interval) > MAX_BUCKETS {
        return Err(invalid(format!(
            "a timeseries has at most {MAX_BUCKETS} buckets: use interval=day or a shorter range"
        )));
    }
    let (from, to) = snapped(q, Grain::Quarter);
    Ok(zone
        .buckets(interval, from, to)?
        .into_iter()
        .map(|(start, _)| zone.bucket_start(interval, start as i64))
        .collect())
}

/// The range (Unix ms) a query counts: `[from_ms, to_ms)` widened to whole
/// quarter-hours, or whole hours for a breakdown.
pub fn effective_range(q: &Query, breakdown: bool) -> (u64, u64) {
    let (from, to) = snapped(
        q,
        if breakdown {
            Grain::Hour
        } else {
            Grain::Quarter
        },
    );
    (from * 1000, to * 1000)
}

/// The query range in Unix seconds, widened to whole cells of `grain`.
fn snapped(q: &Query, grain: Grain) -> (u64, u64) {
    let step = grain.secs();
    (
        plan::floor(q.from_ms / 1000, step),
        plan::ceil(q.to_ms.div_ceil(1000), step),
    )
}

/// Time bucket size of a [`Backend::timeseries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

/// What a [`Backend::breakdown`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Channel,
    /// `qr` or `link`.
    Source,
    /// Why a scan is a bot (`""` for human scans).
    BotReason,
    Country,
    Device,
    Browser,
    Os,
    InApp,
    /// The referrer host.
    Referrer,
    /// `human`, `suspect` or `bot` (the bot reasons folded by
    /// `crate::event::Verdict::of_reason`).
    Verdict,
    /// The code's routing rule that chose the destination (`""`: none).
    Route,
}

impl Dimension {
    pub const ALL: [Dimension; 11] = [
        Dimension::Channel,
        Dimension::Source,
        Dimension::BotReason,
        Dimension::Country,
        Dimension::Device,
        Dimension::Browser,
        Dimension::Os,
        Dimension::InApp,
        Dimension::Referrer,
        Dimension::Verdict,
        Dimension::Route,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Source => "source",
            Dimension::BotReason => "bot_reason",
            Dimension::Country => "country",
            Dimension::Device => "device",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::InApp => "in_app",
            Dimension::Referrer => "referrer",
            Dimension::Verdict => "verdict",
            Dimension::Route => "route",
        }
    }

    /// The rollup dimension holding the key.
    pub fn dim(self) -> Dim {
        match self {
            Dimension::Channel => Dim::Channel,
            Dimension::Source => Dim::Source,
            Dimension::BotReason => Dim::BotReason,
            Dimension::Country => Dim::Country,
            Dimension::Device => Dim::Device,
            Dimension::Browser => Dim::Browser,
            Dimension::Os => Dim::Os,
            Dimension::InApp => Dim::InApp,
            Dimension::Referrer => Dim::Referrer,
            Dimension::Verdict => Dim::BotReason,
            Dimension::Route => Dim::Route,
        }
    }
}

/// What [`Backend::top`] ranks codes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopMetric {
    /// Earnings (estimated and confirmed) in the query's dominant earnings
    /// currency; see [`Backend::top`].
    Earnings,
    /// Human scans.
    Scans,
    /// Signups plus purchases (refunds are not counted).
    Conversions,
}

impl TopMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            TopMetric::Earnings => "earnings",
            TopMetric::Scans => "scans",
            TopMetric::Conversions => "conversions",
        }
    }
}

/// A name that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! from_str_impl {
    ($ty:ty, $what:literal, $expected:literal, [$($variant:expr),+]) => {
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                [$($variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ParseError { what: $what, value: s.to_string(), expected: $expected })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

from_str_impl!(
    Interval,
    "interval",
    "hour, day",
    [Interval::Hour, Interval::Day]
);
from_str_impl!(
    Dimension,
    "dimension",
    "channel, source, bot_reason, country, device, browser, os, in_app, referrer, verdict, route",
    [
        Dimension::Channel,
        Dimension::Source,
        Dimension::BotReason,
        Dimension::Country,
        Dimension::Device,
        Dimension::Browser,
        Dimension::Os,
        Dimension::InApp,
        Dimension::Referrer,
        Dimension::Verdict,
        Dimension::Route
    ]
);
from_str_impl!(
    TopMetric,
    "metric",
    "earnings, scans, conversions",
    [
        TopMetric::Earnings,
        TopMetric::Scans,
        TopMetric::Conversions
    ]
);

/// An amount of money in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// ISO-4217.
    pub currency: String,
    /// Minor units (a sum, in 128 bits: see [`wide`]).
    #[serde(serialize_with = "wide")]
    pub amount: i128,
}

/// A 128-bit sum as a JSON number when it fits in 64 bits (always, with
/// amounts capped at 10^12), else as a decimal string rather than a wrong number.
fn wide<S: serde::Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
    match i64::try_from(*v) {
        Ok(n) => s.serialize_i64(n),
        Err(_) => s.serialize_str(&v.to_string()),
    }
}

/// Totals over the whole query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Every scan: `human_scans + suspect_scans + bot_scans`.
    pub scans: u64,
    pub human_scans: u64,
    /// Scans judged suspect (see `crate::event::Verdict`): not human, not
    /// surely bots.
    pub suspect_scans: u64,
    pub bot_scans: u64,
    /// `(suspect_scans + bot_scans) / scans`: how much raw counts overstate
    /// people; 0 without scans.
    pub bot_inflation: f64,
    /// Human scans from a QR image.
    pub qr_scans: u64,
    /// Human scans of the link.
    pub link_scans: u64,
    /// Distinct visitors among the human scans.
    pub unique_scanners: u64,
    /// Whether `unique_scanners` is exact (at most 100) or estimated.
    pub unique_scanners_exact: bool,
    pub signups: u64,
    pub purchases: u64,
    pub refunds: u64,
    /// Purchases minus refunds, by currency.
    pub revenue: Vec<Money>,
    /// Earnings not yet confirmed, by earnings currency (refunds negative).
    pub earnings_estimated: Vec<Money>,
    /// Earnings past the hold, by earnings currency (refunds negative).
    pub earnings_confirmed: Vec<Money>,
    /// Earnings of flagged conversions awaiting review, by earnings currency
    /// (in neither list above until approved; currencies with none left out).
    pub earnings_held: Vec<Money>,
    /// Signups flagged by a fraud check and not approved (pending or
    /// rejected); counted in `signups` too.
    pub flagged_signups: u64,
    /// Purchases flagged and not approved; counted in `purchases` too.
    pub flagged_purchases: u64,
    /// `signups / unique_scanners`; 0 without scanners.
    pub scan_to_signup: f64,
    /// `purchases / unique_scanners`; 0 without scanners.
    pub scan_to_purchase: f64,
    /// Median time from scan to signup over the signups with a scan, in
    /// seconds (exact below 128 s, else within 1/128: see
    /// [`crate::histogram`]); the mean of the two middle values for an even count.
    pub median_scan_to_signup_secs: Option<f64>,
}

/// One non-empty time bucket of a [`Backend::timeseries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Bucket start in the query's zone, RFC 3339 with that zone's offset.
    pub start: String,
    pub human_scans: u64,
    pub suspect_scans: u64,
    pub bot_scans: u64,
    pub unique_scanners: u64,
    pub unique_scanners_exact: bool,
    pub signups: u64,
    pub purchases: u64,
    /// Estimated and confirmed earnings, by earnings currency.
    pub earnings: Vec<Money>,
}

/// One key of a [`Backend::breakdown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakdownRow {
    pub key: String,
    pub human_scans: u64,
    pub suspect_scans: u64,
    pub bot_scans: u64,
    pub unique_scanners: u64,
    pub unique_scanners_exact: bool,
    pub signups: u64,
    pub purchases: u64,
    /// Estimated and confirmed earnings, by earnings currency.
    pub earnings: Vec<Money>,
}

/// Human scans → unique scanners → signups → purchases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Funnel {
    /// Human scans.
    pub scans: u64,
    pub unique_scanners: u64,
    pub unique_scanners_exact: bool,
    pub signups: u64,
    pub purchases: u64,
    /// Of `signups`, those flagged by a fraud check and not approved.
    pub flagged_signups: u64,
    /// Of `purchases`, those flagged and not approved.
    pub flagged_purchases: u64,
}

impl Funnel {
    /// The funnel without flagged conversions not approved (pending or
    /// rejected): the API's `exclude_flagged=true`.
    pub fn excluding_flagged(self) -> Funnel {
        Funnel {
            signups: self.signups.saturating_sub(self.flagged_signups),
            purchases: self.purchases.saturating_sub(self.flagged_purchases),
            flagged_signups: 0,
            flagged_purchases: 0,
            ..self
        }
    }
}

/// One code of a [`Backend::top`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopRow {
    pub code: String,
    /// The owner recorded with the code's latest stored conversion (any time;
    /// latest by `occurred_ms`, then `event_id`); `""` when the code has none.
    /// In a creator's view, the creator.
    pub owner: String,
    /// The metric: a count, or earnings in minor units of `currency`.
    #[serde(serialize_with = "wide")]
    pub value: i128,
    /// For [`TopMetric::Earnings`] the currency of `value`; else `""`.
    pub currency: String,
}

/// One code's totals over a query: a row of the "my codes" / "all codes" tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeRow {
    pub code: String,
    pub human_scans: u64,
    /// Distinct visitors among the human scans (as in Summary); None over all codes (q.codes == None), where only the per-code totals are read.
    pub unique_scanners: Option<u64>,
    pub signups: u64,
    pub purchases: u64,
    pub refunds: u64,
    pub earnings_estimated: Vec<Money>,
    pub earnings_confirmed: Vec<Money>,
    /// signups / unique_scanners (0 without scanners), as Summary; None when unique_scanners is None.
    pub scan_to_signup: Option<f64>,
    pub scan_to_purchase: Option<f64>,
}

/// Totals, time buckets and breakdowns of one query, read together (a page
/// about one code, say): see `Analytics::overview`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub summary: Summary,
    pub timeseries: Vec<Bucket>,
    pub breakdowns: Vec<(Dimension, Vec<BreakdownRow>)>,
}

/// The analytics backend: the embedded store (small scale, the default) or
/// ClickHouse. Both answer every query identically.
#[derive(Clone)]
pub enum Backend {
    Embedded(EmbeddedSink),
    // Boxed: the ClickHouse client is large.
    ClickHouse(Box<ClickHouseEvents>),
}

impl From<EmbeddedSink> for Backend {
    fn from(sink: EmbeddedSink) -> Self {
        Backend::Embedded(sink)
    }
}

impl From<ClickHouseEvents> for Backend {
    fn from(events: ClickHouseEvents) -> Self {
        Backend::ClickHouse(Box::new(events))
    }
}

/// Whether `name` is a time zone [`Query::tz`] accepts (an IANA name such as
/// `UTC` or `Europe/Berlin`, any case).
pub fn valid_tz(name: &str) -> bool {
    Zone::get(name).is_ok()
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery(message)
}

/// A validated time zone: the canonical IANA name (what ClickHouse is given)
/// and the zone itself (what the embedded store and the formatting use).
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    fn get(name: &str) -> Result<Self, Error> {
        let tz = jiff::tz::TimeZone::get(name)
            .map_err(|e| invalid(format!("time zone {name:?}: {e}")))?;
        let name = tz
            .iana_name()
            .ok_or_else(|| invalid(format!("time zone {name:?} has no IANA name")))?
            .to_string();
        Ok(Self { name, tz })
    }

    /// Unix seconds of the start of the bucket holding `second`.
    fn bucket_start(&self, interval: Interval, second: i64) -> i64 {
        let Ok(ts) = jiff::Timestamp::from_second(second) else {
            return second;
        };
        match interval {
            Interval::Hour => {
                let offset = i64::from(self.tz.to_offset(ts).seconds());
                second - (second + offset).rem_euclid(3600)
            }
            Interval::Day => ts
                .to_zoned(self.tz.clone())
                .start_of_day()
                .map_or(second, |z| z.timestamp().as_second()),
        }
    }

    /// The buckets `[start, end)` (Unix seconds, cut to `[from, to)`) that
    /// cover `[from, to)`; refused when a boundary is not on a quarter-hour.
    fn buckets(&self, interval: Interval, from: u64, to: u64) -> Result<Vec<(u64, u64)>, Error> {
        let shortest = match interval {
            Interval::Hour => 1800,
            Interval::Day => 22 * 3600,
        };
        let mut out = Vec::new();
        let mut start = self.bucket_start(interval, from as i64);
        while start < to as i64 {
            // The next start: the first quarter-hour past the shortest bucket
            // that starts a bucket (buckets are 23-25 h or 30-90 min long).
            let mut next = start + shortest;
            while self.bucket_start(interval, next) != next {
                next += 900;
                if next - start > 26 * 3600 {
                    return Err(invalid(format!(
                        "the buckets of {} are not whole quarter-hours in this range",
                        self.name
                    )));
                }
            }
            if start.rem_euclid(900) != 0 {
                return Err(invalid(format!(
                    "the buckets of {} are not whole quarter-hours in this range \
                     (its offset then was not a multiple of 15 minutes)",
                    self.name
                )));
            }
            out.push((start.max(from as i64) as u64, (next as u64).min(to)));
            start = next;
        }
        Ok(out)
    }

    /// RFC 3339 with this zone's offset at `second`.
    fn format(&self, second: i64) -> String {
        match jiff::Timestamp::from_second(second) {
            Ok(ts) => ts
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            Err(_) => second.to_string(),
        }
    }
}

/// How cells are grouped into the answer's rows.
#[derive(Debug, Clone)]
pub(crate) enum Group {
    /// One group (key `""`).
    All,
    /// Key: decimal Unix seconds of the start of the bucket (in the zone)
    /// holding the cell.
    Bucket(Interval, Zone),
    /// Key: the cell's dimension value.
    Value,
    /// Key: the cell's scope (a code).
    Code,
    /// Key: `{dim as u8}|{value}` (several breakdowns read at once).
    DimValue,
}

impl Group {
    fn key(&self, scope: &str, dim: Dim, bucket: u32, value: &str) -> String {
        match self {
            Group::All => String::new(),
            Group::Bucket(interval, zone) => {
                zone.bucket_start(*interval, i64::from(bucket)).to_string()
            }
            Group::Value => value.to_string(),
            Group::Code => scope.to_string(),
            Group::DimValue => format!("{}|{value}", dim as u8),
        }
    }
}

/// Which cells to read, and how to group them.
#[derive(Debug, Clone)]
pub(crate) struct Cells {
    /// Codes, or [`ALL`].
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    /// The dimensions whose cells are read (one, but for several breakdowns
    /// at once with [`Group::DimValue`]).
    pub dims: Vec<Dim>,
    pub scans: Vec<Range>,
    /// With whether the conversions there are confirmed: those of the buckets
    /// starting before `confirmed_before` (Unix seconds, an hour boundary no
    /// range straddles).
    pub conversions: Vec<(Range, bool)>,
    pub confirmed_before: u64,
    pub group: Group,
    /// Also merge the scan-to-signup delays (summary only).
    pub delays: bool,
}

/// What a backend answers for [`Cells`].
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    pub scans: Vec<finish::ScanAgg>,
    pub conversions: Vec<finish::ConversionAgg>,
    pub delays: DelayHistogram,
}

/// The most buckets a timeseries may have, whatever the configuration says.
const MAX_BUCKETS: u64 = 100_000;

const QUARTER_UP: [Grain; 3] = [Grain::Day, Grain::Hour, Grain::Quarter];
const HOUR_UP: [Grain; 2] = [Grain::Day, Grain::Hour];

/// The cells of `[from, to)` (aligned to `grains`' finest), for scans and for
/// conversions (split where earnings become confirmed).
fn ranges(q: &Query, from: u64, to: u64, grains: &[Grain]) -> (Vec<Range>, Vec<(Range, bool)>) {
    let scans = plan::cover(from, to, grains);
    let [before, after] = plan::split(from, to, q.confirmed_before());
    let mut conversions: Vec<(Range, bool)> = plan::cover(before.0, before.1, grains)
        .into_iter()
        .map(|r| (r, true))
        .collect();
    conversions.extend(
        plan::cover(after.0, after.1, grains)
            .into_iter()
            .map(|r| (r, false)),
    );
    (scans, conversions)
}

impl Backend {
    async fn aggregate(&self, cells: &Cells) -> Result<Aggregates, Error> {
        match self {
            Backend::Embedded(s) => embedded::aggregate(s, cells).await,
            Backend::ClickHouse(c) => {
                // On a cluster, codes all on one shard are read there (its
                // replicas in order).
                let mut failed = None;
                for client in c.readers(&cells.scopes).await? {
                    match clickhouse::aggregate(&client, cells).await {
                        Ok(a) => return Ok(a),
                        Err(e) => failed = Some(e),
                    }
                }
                Err(failed.unwrap_or_else(|| Error::Unavailable("clickhouse: no node".into())))
            }
        }
    }

    fn totals_cells(q: &Query, dim: Dim, group: Group, delays: bool) -> Cells {
        let (from, to) = snapped(q, Grain::Quarter);
        let (scans, conversions) = ranges(q, from, to, &QUARTER_UP);
        Cells {
            scopes: q.scopes(),
            owner: q.owner.clone(),
            dims: vec![dim],
            scans,
            conversions,
            confirmed_before: q.confirmed_before(),
            group,
            delays,
        }
    }

    /// Totals over the query.
    pub async fn summary(&self, q: &Query) -> Result<Summary, Error> {
        if q.matches_nothing() {
            return Ok(finish::summary(&Aggregates::default()));
        }
        let cells = Self::totals_cells(q, Dim::Total, Group::All, true);
        Ok(finish::summary(&self.aggregate(&cells).await?))
    }

    /// One bucket per hour or day (in `q.tz`) that has scans or conversions
    /// (any kind).
    pub async fn timeseries(&self, q: &Query, interval: Interval) -> Result<Vec<Bucket>, Error> {
        let zone = Zone::get(&q.tz)?;
        if q.matches_nothing() {
            return Ok(Vec::new());
        }
        let (from, to) = snapped(q, Grain::Quarter);
        if bucket_count(q, interval) > MAX_BUCKETS {
            return Err(invalid(format!(
                "a timeseries has at most {MAX_BUCKETS} buckets: use interval=day or a shorter range"
            )));
        }
        let mut scans = Vec::new();
        let mut conversions = Vec::new();
        for (start, end) in zone.buckets(interval, from, to)? {
            let (s, c) = ranges(q, start, end, &QUARTER_UP);
            scans.extend(s);
            conversions.extend(c);
        }
        let normalize_conversions = |confirmed: bool| {
            plan::normalize(
                conversions
                    .iter()
                    .filter(|(_, c)| *c == confirmed)
                    .map(|(r, _)| *r)
                    .collect(),
            )
            .into_iter()
            .map(move |r| (r, confirmed))
        };
        let conversions: Vec<(Range, bool)> = normalize_conversions(true)
            .chain(normalize_conversions(false))
            .collect();
        let cells = Cells {
            scopes: q.scopes(),
            owner: q.owner.clone(),
            dims: vec![Dim::Total],
            scans: plan::normalize(scans),
            conversions,
            confirmed_before: q.confirmed_before(),
            group: Group::Bucket(interval, zone.clone()),
            delays: false,
        };
        Ok(finish::timeseries(&self.aggregate(&cells).await?, &zone))
    }

    /// One row per key seen in the scans or the conversions (see the module
    /// docs); sorted by human scans descending, then key. Counted in whole
    /// UTC hours.
    pub async fn breakdown(
        &self,
        q: &Query,
        dimension: Dimension,
    ) -> Result<Vec<BreakdownRow>, Error> {
        if q.matches_nothing() {
            return Ok(Vec::new());
        }
        let (from, to) = snapped(q, Grain::Hour);
        let (scans, conversions) = ranges(q, from, to, &HOUR_UP);
        let cells = Cells {
            scopes: q.scopes(),
            owner: q.owner.clone(),
            dims: vec![dimension.dim()],
            scans,
            conversions,
            confirmed_before: q.confirmed_before(),
            group: Group::Value,
            delays: false,
        };
        let a = self.aggregate(&cells).await?;
        Ok(finish::breakdown(&finish::keyed_for(dimension, a)))
    }

    /// [`Backend::breakdown`] for each of `dimensions`, read at once (one
    /// query per side on ClickHouse, whatever their number).
    pub async fn breakdowns(
        &self,
        q: &Query,
        dimensions: &[Dimension],
    ) -> Result<Vec<(Dimension, Vec<BreakdownRow>)>, Error> {
        if q.matches_nothing() || dimensions.is_empty() {
            return Ok(dimensions.iter().map(|d| (*d, Vec::new())).collect());
        }
        let (from, to) = snapped(q, Grain::Hour);
        let (scans, conversions) = ranges(q, from, to, &HOUR_UP);
        let mut dims: Vec<Dim> = dimensions.iter().map(|d| d.dim()).collect();
        dims.sort_by_key(|d| *d as u8);
        dims.dedup();
        let cells = Cells {
            scopes: q.scopes(),
            owner: q.owner.clone(),
            dims,
            scans,
            conversions,
            confirmed_before: q.confirmed_before(),
            group: Group::DimValue,
            delays: false,
        };
        let all = self.aggregate(&cells).await?;
        Ok(dimensions
            .iter()
            .map(|d| {
                let prefix = format!("{}|", d.dim() as u8);
                let strip = |k: &str| k.strip_prefix(&prefix).map(str::to_string);
                let one = Aggregates {
                    scans: all
                        .scans
                        .iter()
                        .filter_map(|a| strip(&a.k).map(|k| finish::ScanAgg { k, ..a.clone() }))
                        .collect(),
                    conversions: all
                        .conversions
                        .iter()
                        .filter_map(|a| {
                            strip(&a.k).map(|k| finish::ConversionAgg { k, ..a.clone() })
                        })
                        .collect(),
                    delays: DelayHistogram::default(),
                };
                (*d, finish::breakdown(&finish::keyed_for(*d, one)))
            })
            .collect())
    }

    /// Human scans, unique scanners, signups and purchases of the query.
    pub async fn funnel(&self, q: &Query) -> Result<Funnel, Error> {
        if q.matches_nothing() {
            return Ok(finish::funnel(&Aggregates::default()));
        }
        let cells = Self::totals_cells(q, Dim::Total, Group::All, false);
        Ok(finish::funnel(&self.aggregate(&cells).await?))
    }

    /// The `limit` codes with the highest `metric`, highest first, ties by code.
    /// Unattributed conversions (code `""`) never rank.
    ///
    /// - [`TopMetric::Scans`]: human scans; codes with at least one.
    /// - [`TopMetric::Conversions`]: signups + purchases; codes with at least one.
    /// - [`TopMetric::Earnings`]: amounts in different currencies cannot be
    ///   ranked together, so the ranking uses the query's *dominant* earnings
    ///   currency: the non-empty `earnings_currency` carried by the most
    ///   attributed conversions of the query (ties: the alphabetically first).
    ///   The value is the code's earnings sum (estimated + confirmed, refunds
    ///   negative) in that currency, over the codes with at least one
    ///   conversion in it; every row's `currency` names it. With a single
    ///   currency this is simply "earnings". No such conversion: no rows.
    pub async fn top(
        &self,
        q: &Query,
        metric: TopMetric,
        limit: usize,
    ) -> Result<Vec<TopRow>, Error> {
        if q.matches_nothing() || limit == 0 {
            return Ok(Vec::new());
        }
        let aggregates = match q.codes {
            // Every code: the totals ordered by time, one range read.
            None => {
                let (from, to) = snapped(q, Grain::Quarter);
                let ranges = plan::cover(from, to, &QUARTER_UP);
                let scans = metric == TopMetric::Scans;
                match self {
                    Backend::Embedded(s) => embedded::totals(s, &ranges, scans).await?,
                    Backend::ClickHouse(c) => {
                        clickhouse::totals(c.client(), &ranges, scans).await?
                    }
                }
            }
            Some(_) => {
                self.aggregate(&Self::totals_cells(q, Dim::Total, Group::Code, false))
                    .await?
            }
        };
        let ranked = match metric {
            TopMetric::Scans => finish::top_by_scans(&aggregates.scans),
            TopMetric::Conversions => finish::top_by_conversions(&aggregates.conversions),
            TopMetric::Earnings => finish::top_by_earnings(&aggregates.conversions),
        };
        let ranked = finish::rank(ranked, limit);
        let codes: Vec<String> = ranked.iter().map(|r| r.code.clone()).collect();
        let owners = match (&q.owner, self) {
            // A creator's own view: every row is theirs, whoever was credited
            // with the code's latest conversion.
            (Some(owner), _) => codes.iter().map(|c| (c.clone(), owner.clone())).collect(),
            (None, Backend::Embedded(s)) => embedded::owners(s, codes).await?,
            (None, Backend::ClickHouse(c)) => clickhouse::owners(c.client(), &codes).await?,
        };
        Ok(ranked
            .into_iter()
            .map(|mut r| {
                r.owner = owners.get(&r.code).cloned().unwrap_or_default();
                r
            })
            .collect())
    }

    /// One row per code (never the unattributed `""`) with at least one
    /// human scan or counted conversion in the query, sorted by code.
    ///
    /// With a code list the codes' cells are merged per code, unique
    /// scanners included; over every code (`q.codes == None`) the per-code
    /// totals ordered by time are read in one pass (no sketches there:
    /// `unique_scanners` and the ratios are `None`).
    pub async fn code_rows(&self, q: &Query) -> Result<Vec<CodeRow>, Error> {
        if q.matches_nothing() {
            return Ok(Vec::new());
        }
        match q.codes {
            Some(_) => {
                let cells = Self::totals_cells(q, Dim::Total, Group::Code, false);
                Ok(finish::code_rows(&self.aggregate(&cells).await?, true))
            }
            None => {
                // The conversion ranges (split where earnings become
                // confirmed) tile the same span as the scan ranges: one read
                // of them gives both sides.
                let (from, to) = snapped(q, Grain::Quarter);
                let (_, ranges) = ranges(q, from, to, &QUARTER_UP);
                let owner = q.owner.as_deref();
                let aggregates = match self {
                    Backend::Embedded(s) => embedded::code_totals(s, &ranges, owner).await?,
                    Backend::ClickHouse(c) => {
                        clickhouse::code_totals(c.client(), &ranges, q.confirmed_before(), owner)
                            .await?
                    }
                };
                Ok(finish::code_rows(&aggregates, false))
            }
        }
    }

    /// The stored scan `scan_id` of `code`, if it is stored (not yet, or
    /// pruned: `None`). A point read (see each backend).
    pub async fn find_scan(
        &self,
        code: &str,
        scan_id: &str,
    ) -> Result<Option<crate::event::Scan>, crate::sink::SinkError> {
        match self {
            Backend::Embedded(s) => s.find_scan(code, scan_id).await,
            Backend::ClickHouse(c) => c.find_scan(code, scan_id).await,
        }
    }

    /// Up to `limit` (clamped to 1..=100) stored conversions credited to
    /// `code` (and, with `owner`, to that owner), newest first by
    /// `occurred_ms`, then `event_id` descending; each event id once, never
    /// flagged `repeat`. The unattributed `""` is no code: no rows.
    pub async fn recent_conversions(
        &self,
        code: &str,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Conversion>, Error> {
        if code.is_empty() {
            return Ok(Vec::new());
        }
        let limit = limit.clamp(1, 100);
        Ok(match self {
            Backend::Embedded(s) => s.recent_conversions(code, owner, limit).await?,
            Backend::ClickHouse(c) => c.recent_conversions(code, owner, limit).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Dimension::ALL {
            assert_eq!(d.as_str().parse::<Dimension>(), Ok(d));
        }
        assert_eq!("hour".parse::<Interval>(), Ok(Interval::Hour));
        assert_eq!("earnings".parse::<TopMetric>(), Ok(TopMetric::Earnings));
        assert!("week".parse::<Interval>().is_err());
        assert!("Channel".parse::<Dimension>().is_err());
    }

    #[test]
    fn zone_buckets_follow_dst() {
        let berlin = Zone::get("europe/berlin").unwrap();
        assert_eq!(berlin.name, "Europe/Berlin");
        // 2024-10-27: 02:00-03:00 happens twice (CEST, then CET).
        let first = 1_729_989_000; // 00:30 UTC = 02:30 CEST
        let second = 1_729_992_600; // 01:30 UTC = 02:30 CET
        assert_eq!(berlin.bucket_start(Interval::Hour, first), 1_729_987_200);
        assert_eq!(berlin.bucket_start(Interval::Hour, second), 1_729_990_800);
        assert_eq!(berlin.format(1_729_987_200), "2024-10-27T02:00:00+02:00");
        assert_eq!(berlin.format(1_729_990_800), "2024-10-27T02:00:00+01:00");
        // That day is 25 hours long and starts at 00:00 CEST.
        assert_eq!(berlin.bucket_start(Interval::Day, second), 1_729_980_000);
        assert_eq!(berlin.format(1_729_980_000), "2024-10-27T00:00:00+02:00");
        let days = berlin
            .buckets(Interval::Day, 1_729_980_000, 1_729_980_000 + 3 * 86_400)
            .unwrap();
        assert_eq!(days[0], (1_729_980_000, 1_729_980_000 + 25 * 3600));
        assert_eq!(days.len(), 3);
        let kathmandu = Zone::get("Asia/Kathmandu").unwrap();
        assert_eq!(kathmandu.bucket_start(Interval::Hour, first), 1_729_988_100);
        let hours = kathmandu
            .buckets(Interval::Hour, 1_729_987_200, 1_729_987_200 + 7200)
            .unwrap();
        assert_eq!(
            hours,
            vec![
                (1_729_987_200, 1_729_988_100),
                (1_729_988_100, 1_729_991_700),
                (1_729_991_700, 1_729_994_400)
            ]
        );
        let utc = Zone::get("UTC").unwrap();
        assert_eq!(utc.format(0), "1970-01-01T00:00:00+00:00");
        assert!(Zone::get("Mars/Olympus").is_err());
        // Liberia kept an offset of -00:44:30 until 1972.
        let monrovia = Zone::get("Africa/Monrovia").unwrap();
        assert!(monrovia.buckets(Interval::Day, 0, 7 * 86_400).is_err());
        assert!(monrovia
            .buckets(Interval::Day, 1_700_006_400, 1_700_006_400 + 86_400)
            .is_ok());
    }

    #[test]
    fn bucket_starts_follow_skipped_midnights() {
        // America/Santiago skipped 2024-09-08 00:00 (clocks went to 01:00):
        // that day starts at 01:00 local, the next ones at 00:00 again.
        let q = Query {
            from_ms: 1_725_681_600_000, // 2024-09-07T00:00-04:00
            to_ms: 1_725_937_200_000,   // 2024-09-10T00:00-03:00 (Sep 8 was 23 h long)
            tz: "America/Santiago".into(),
            codes: None,
            owner: None,
            now_ms: 0,
            hold_ms: 0,
        };
        let zone = Zone::get(&q.tz).unwrap();
        let starts = bucket_starts(&q, Interval::Day).unwrap();
        let local: Vec<String> = starts.iter().map(|s| zone.format(*s)).collect();
        assert_eq!(
            local,
            [
                "2024-09-07T00:00:00-04:00",
                "2024-09-08T01:00:00-03:00",
                "2024-09-09T00:00:00-03:00"
            ]
        );
        // Lord Howe moves by 30 minutes: hour buckets stay on its whole hours.
        let q = Query {
            from_ms: 1_727_965_800_000, // 2024-10-06T01:00+10:30, just before the change
            to_ms: 1_727_965_800_000 + 3 * 3_600_000,
            tz: "Australia/Lord_Howe".into(),
            ..q
        };
        let zone = Zone::get(&q.tz).unwrap();
        let local: Vec<String> = bucket_starts(&q, Interval::Hour)
            .unwrap()
            .iter()
            .map(|s| zone.format(*s))
            .collect();
        assert!(local.iter().all(|t| t[14..16] == *"00"), "{local:?}");
    }

    #[test]
    fn ranges_are_widened_to_whole_cells() {
        let q = Query {
            from_ms: 1_700_006_400_000 + 901_500,
            to_ms: 1_700_006_400_000 + 3_600_001,
            tz: "UTC".into(),
            codes: None,
            owner: None,
            now_ms: 0,
            hold_ms: 0,
        };
        assert_eq!(
            effective_range(&q, false),
            (1_700_006_400_000 + 900_000, 1_700_006_400_000 + 4_500_000)
        );
        assert_eq!(
            effective_range(&q, true),
            (1_700_006_400_000, 1_700_006_400_000 + 7_200_000)
        );
    }
}

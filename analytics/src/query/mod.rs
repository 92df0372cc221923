//! Analytics queries: one API ([`Analytics`]) answered identically by the
//! embedded store (redb, computed in Rust) and by ClickHouse (SQL).
//!
//! # Counting rules
//! - **Scans** count when `from_ms <= ts_ms < to_ms` and their code is in
//!   [`Query::codes`] (all codes when `None`). *Human* scans are those without a
//!   bot reason; `qr`/`link` and unique scanners count human scans only.
//!   *Unique scanners* are the distinct `visitor_id`s of the human scans in the
//!   group being counted (the whole query, a bucket, a breakdown key).
//! - **Conversions** count when `from_ms <= occurred_ms < to_ms` and their code
//!   is in `codes`. Unattributed conversions carry the code `""`: they appear
//!   only when `codes` is `None` (they count in signups/purchases and money,
//!   never in [`Analytics::top`]).
//! - **Money** lists ([`Money`]) hold one entry per currency that at least one
//!   counted conversion carries (an entry may net to 0), sorted by currency.
//!   Conversions with an empty currency are left out of money lists. Revenue is
//!   purchases minus refunds by `currency`; earnings sum `earnings` (refunds are
//!   already negative) by `earnings_currency`.
//! - **Confirmed** earnings are those of conversions with
//!   `occurred_ms + hold_ms <= now_ms`; the others are estimated.
//! - Stored rows are deduplicated: ClickHouse queries read `FINAL`, the
//!   embedded tables are keyed by scan id and event id.
//!
//! # Time zones
//! [`Query::tz`] (an IANA name, checked with the bundled tz database of `jiff`)
//! is used by [`Analytics::timeseries`] only. A bucket is an hour or a day *in
//! that zone*: ClickHouse computes bucket starts with `toStartOfHour(ts, tz)` /
//! `toStartOfDay(ts, tz)`, the embedded store with `jiff` (the start of the
//! local hour / the first instant of the local day). Around a DST change an hour
//! bucket is an hour of real time (the repeated hour of autumn gives two buckets
//! with different offsets) and a day bucket is 23 or 25 hours long. Bucket
//! starts are formatted the same way for both backends: RFC 3339 with the
//! zone's offset at that instant, e.g. `2024-10-27T02:00:00+01:00`
//! (`+00:00` for UTC).
//!
//! # Breakdown join
//! A conversion's key in a [`Dimension::Channel`] breakdown is its own
//! `channel`. For every other dimension it is the field of its attributed scan,
//! the stored scan with the conversion's `scan_id`, wherever that scan lies in
//! time (also before `from_ms`). A conversion without a scan, or whose scan is
//! not stored, gets the key `""`. (By construction the attributed scan has the
//! conversion's code and lies at `scan_ms`; the ClickHouse join narrows the scan
//! side by both, the embedded store finds it by the time encoded in the id.)

mod clickhouse;
mod embedded;
mod finish;

use crate::error::Error;
use crate::sink::{ClickHouseEvents, EmbeddedSink};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What to count: a time range, the codes, and what "now" is for earnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Unix ms, inclusive.
    pub from_ms: u64,
    /// Unix ms, exclusive.
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
    /// Earnings of conversions with `occurred_ms + hold_ms <= now_ms` are
    /// confirmed, the rest estimated.
    pub hold_ms: u64,
}

impl Query {
    /// Nothing can match: an empty time range or an empty code list.
    fn matches_nothing(&self) -> bool {
        self.from_ms >= self.to_ms || self.codes.as_ref().is_some_and(|c| c.is_empty())
    }

    /// Conversions with `occurred_ms <= cutoff` are confirmed; `None`: none is.
    fn confirmed_cutoff(&self) -> Option<u64> {
        self.now_ms.checked_sub(self.hold_ms)
    }
}

/// Time bucket size of a [`Analytics::timeseries`].
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

/// What a [`Analytics::breakdown`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Channel,
    Country,
    Device,
    Browser,
    Os,
    InApp,
    /// The referrer host.
    Referrer,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Channel,
        Dimension::Country,
        Dimension::Device,
        Dimension::Browser,
        Dimension::Os,
        Dimension::InApp,
        Dimension::Referrer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Country => "country",
            Dimension::Device => "device",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::InApp => "in_app",
            Dimension::Referrer => "referrer",
        }
    }

    /// The `scans` column (and [`crate::event::Scan`] field) holding the key.
    fn scan_column(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Country => "country",
            Dimension::Device => "device",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::InApp => "in_app",
            Dimension::Referrer => "referrer_host",
        }
    }

    fn of_scan(self, scan: &crate::event::Scan) -> &str {
        match self {
            Dimension::Channel => &scan.channel,
            Dimension::Country => &scan.country,
            Dimension::Device => &scan.device,
            Dimension::Browser => &scan.browser,
            Dimension::Os => &scan.os,
            Dimension::InApp => &scan.in_app,
            Dimension::Referrer => &scan.referrer_host,
        }
    }
}

/// What [`Analytics::top`] ranks codes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopMetric {
    /// Earnings (estimated and confirmed) in the query's dominant earnings
    /// currency; see [`Analytics::top`].
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
    "channel, country, device, browser, os, in_app, referrer",
    [
        Dimension::Channel,
        Dimension::Country,
        Dimension::Device,
        Dimension::Browser,
        Dimension::Os,
        Dimension::InApp,
        Dimension::Referrer
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
    /// Minor units.
    pub amount: i64,
}

/// Totals over the whole query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// All scans, human and bot.
    pub scans: u64,
    pub human_scans: u64,
    pub bot_scans: u64,
    /// Human scans from a QR image.
    pub qr_scans: u64,
    /// Human scans of the link.
    pub link_scans: u64,
    /// Distinct visitors among the human scans.
    pub unique_scanners: u64,
    pub signups: u64,
    pub purchases: u64,
    pub refunds: u64,
    /// Purchases minus refunds, by currency.
    pub revenue: Vec<Money>,
    /// Earnings not yet confirmed, by earnings currency (refunds negative).
    pub earnings_estimated: Vec<Money>,
    /// Earnings past the hold, by earnings currency (refunds negative).
    pub earnings_confirmed: Vec<Money>,
    /// `signups / unique_scanners`; 0 without scanners.
    pub scan_to_signup: f64,
    /// `purchases / unique_scanners`; 0 without scanners.
    pub scan_to_purchase: f64,
    /// Median of `(occurred_ms - scan_ms) / 1000` over the signups with a scan
    /// (`scan_ms > 0`); the mean of the two middle values for an even count.
    pub median_scan_to_signup_secs: Option<f64>,
}

/// One non-empty time bucket of a [`Analytics::timeseries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Bucket start in the query's zone, RFC 3339 with that zone's offset.
    pub start: String,
    pub human_scans: u64,
    pub bot_scans: u64,
    pub unique_scanners: u64,
    pub signups: u64,
    pub purchases: u64,
    /// Estimated and confirmed earnings, by earnings currency.
    pub earnings: Vec<Money>,
}

/// One key of a [`Analytics::breakdown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakdownRow {
    pub key: String,
    pub human_scans: u64,
    pub bot_scans: u64,
    pub unique_scanners: u64,
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
    pub signups: u64,
    pub purchases: u64,
}

/// One code of a [`Analytics::top`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopRow {
    pub code: String,
    /// The owner recorded with the code's latest stored conversion (any time;
    /// latest by `occurred_ms`, then `event_id`); `""` when the code has none.
    pub owner: String,
    /// The metric: a count, or earnings in minor units of `currency`.
    pub value: i64,
    /// For [`TopMetric::Earnings`] the currency of `value`; else `""`.
    pub currency: String,
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
/// `UTC` or `Europe/Berlin`, any case). Check it before calling
/// [`Analytics::timeseries`]: a bad zone is a caller's error, which
/// [`SinkError`] has no variant for (it comes back as
/// `SinkError::Embedded("invalid query: …")`).
pub fn valid_tz(name: &str) -> bool {
    Zone::get(name).is_ok()
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery(format!("invalid query: {message}"))
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

/// How rollups are grouped.
#[derive(Debug, Clone)]
pub(crate) enum Group {
    /// One group (key `""`).
    All,
    /// Key: decimal Unix seconds of the bucket start.
    Bucket(Interval, Zone),
    Dimension(Dimension),
    Code,
}

impl Backend {
    /// Totals over the query.
    pub async fn summary(&self, q: &Query) -> Result<Summary, Error> {
        let (scans, conversions, delays) = if q.matches_nothing() {
            Default::default()
        } else {
            match self {
                Backend::Embedded(s) => {
                    let data = embedded::Data::load(s, q).await?;
                    (
                        data.scan_rollup(&Group::All),
                        data.conversion_rollup(&Group::All),
                        data.signup_delays(),
                    )
                }
                Backend::ClickHouse(c) => {
                    let c = c.client();
                    tokio::try_join!(
                        clickhouse::scan_rollup(c, q, &Group::All),
                        clickhouse::conversion_rollup(c, q, &Group::All),
                        clickhouse::signup_delays(c, q),
                    )?
                }
            }
        };
        Ok(finish::summary(&scans, &conversions, &delays))
    }

    /// Non-empty hour or day buckets (in `q.tz`), ascending. A bucket is
    /// non-empty when it holds at least one scan (human or bot) or conversion
    /// (any kind).
    pub async fn timeseries(&self, q: &Query, interval: Interval) -> Result<Vec<Bucket>, Error> {
        let zone = Zone::get(&q.tz)?;
        let group = Group::Bucket(interval, zone.clone());
        let (scans, conversions) = self.rollups(q, &group).await?;
        Ok(finish::timeseries(&scans, &conversions, &zone))
    }

    /// One row per key seen in the scans or (through the breakdown join, see
    /// the module docs) the conversions; sorted by human scans descending, then
    /// key.
    pub async fn breakdown(
        &self,
        q: &Query,
        dimension: Dimension,
    ) -> Result<Vec<BreakdownRow>, Error> {
        let group = Group::Dimension(dimension);
        let (scans, conversions) = self.rollups(q, &group).await?;
        Ok(finish::breakdown(&scans, &conversions))
    }

    /// Human scans, unique scanners, signups and purchases of the query.
    pub async fn funnel(&self, q: &Query) -> Result<Funnel, Error> {
        let (scans, conversions) = self.rollups(q, &Group::All).await?;
        Ok(finish::funnel(&scans, &conversions))
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
        let ranked = match metric {
            TopMetric::Scans => {
                let scans = match self {
                    Backend::Embedded(s) => {
                        embedded::Data::load(s, q).await?.scan_rollup(&Group::Code)
                    }
                    Backend::ClickHouse(c) => {
                        clickhouse::scan_rollup(c.client(), q, &Group::Code).await?
                    }
                };
                finish::top_by_scans(&scans)
            }
            TopMetric::Conversions | TopMetric::Earnings => {
                let conversions = match self {
                    Backend::Embedded(s) => embedded::Data::load(s, q)
                        .await?
                        .conversion_rollup(&Group::Code),
                    Backend::ClickHouse(c) => {
                        clickhouse::conversion_rollup(c.client(), q, &Group::Code).await?
                    }
                };
                if metric == TopMetric::Conversions {
                    finish::top_by_conversions(&conversions)
                } else {
                    finish::top_by_earnings(&conversions)
                }
            }
        };
        let ranked = finish::rank(ranked, limit);
        let codes: Vec<String> = ranked.iter().map(|r| r.code.clone()).collect();
        let owners = match (&q.owner, self) {
            // A creator's own view: every row is theirs, whoever was credited
            // with the code's latest conversion.
            (Some(owner), _) => codes.iter().map(|c| (c.clone(), owner.clone())).collect(),
            (None, Backend::Embedded(s)) => embedded::owners(s, &codes).await?,
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

    async fn rollups(
        &self,
        q: &Query,
        group: &Group,
    ) -> Result<(Vec<finish::ScanAgg>, Vec<finish::ConversionAgg>), Error> {
        if q.matches_nothing() {
            return Ok(Default::default());
        }
        match self {
            Backend::Embedded(s) => {
                let mut data = embedded::Data::load(s, q).await?;
                if let Group::Dimension(d) = group {
                    if *d != Dimension::Channel {
                        data.load_attributed_scans(s).await?;
                    }
                }
                Ok((data.scan_rollup(group), data.conversion_rollup(group)))
            }
            Backend::ClickHouse(c) => {
                let c = c.client();
                Ok(tokio::try_join!(
                    clickhouse::scan_rollup(c, q, group),
                    clickhouse::conversion_rollup(c, q, group),
                )?)
            }
        }
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
        let kathmandu = Zone::get("Asia/Kathmandu").unwrap();
        assert_eq!(kathmandu.bucket_start(Interval::Hour, first), 1_729_988_100);
        let utc = Zone::get("UTC").unwrap();
        assert_eq!(utc.format(0), "1970-01-01T00:00:00+00:00");
        assert!(Zone::get("Mars/Olympus").is_err());
    }
}

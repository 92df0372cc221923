//! The ClickHouse backend: the plan's cells merged by SQL over the rollup
//! tables (`scan_rollup`, `conversion_rollup`, `code_totals`).
//!
//! Runs on 18.16 and current releases. Values go in through client-side `?`
//! binds; 18.16 has no `IN [array]`, so a list is bound as one `?` per item.
//! Every filter names the leading columns of the table's key (scope, grain,
//! dimension, bucket), so a query reads only the cells it merges. Column types
//! are fetched as what ClickHouse returns (`sumMerge` of UInt64 → `u64`, of
//! Decimal(38, 0) → `i128`, comparisons → `u8`): validation is off, so a
//! mismatch would not be caught; the backend parity tests are what catch it.

use super::finish::{ConversionAgg, ScanAgg};
use super::plan::Range;
use super::{Aggregates, Cells, Group, Interval};
use crate::error::Error;
use crate::histogram::DelayHistogram;
use crate::rollup::Dim;
use crate::sketch::EXACT_MAX;
use serde::Deserialize;
use std::collections::HashMap;

enum Arg {
    Str(String),
    U64(u64),
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    /// Appends SQL text (which must not contain `?`).
    fn push(&mut self, text: &str) -> &mut Self {
        debug_assert!(!text.contains('?'));
        self.text.push_str(text);
        self
    }

    fn str(&mut self, value: &str) -> &mut Self {
        self.text.push('?');
        self.args.push(Arg::Str(value.to_string()));
        self
    }

    fn u64(&mut self, value: u64) -> &mut Self {
        self.text.push('?');
        self.args.push(Arg::U64(value));
        self
    }

    fn query(self, client: &::clickhouse::Client) -> ::clickhouse::query::Query {
        let mut query = client.query(&self.text);
        for arg in self.args {
            query = match arg {
                Arg::Str(s) => query.bind(s),
                Arg::U64(n) => query.bind(n),
            };
        }
        query
    }

    /// `scope IN (?, …)`.
    fn scopes(&mut self, scopes: &[String]) -> &mut Self {
        self.push("scope IN (");
        for (i, s) in scopes.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.str(s);
        }
        self.push(")")
    }

    /// `((grain = ? AND bucket >= … AND bucket < …) OR …)`.
    fn ranges<'r>(&mut self, ranges: impl IntoIterator<Item = &'r Range>) -> &mut Self {
        self.push("(");
        for (i, r) in ranges.into_iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push("(grain = ")
                .u64(r.grain as u64)
                .push(" AND bucket >= toDateTime(")
                .u64(u64::from(r.from))
                .push(") AND bucket < toDateTime(")
                .u64(u64::from(r.to))
                .push("))");
        }
        self.push(")")
    }

    /// `dim IN (…)`.
    fn dims(&mut self, dims: &[Dim]) -> &mut Self {
        self.push("dim IN (");
        for (i, d) in dims.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.u64(*d as u64);
        }
        self.push(")")
    }

    /// The group key as a String expression.
    fn key(&mut self, group: &Group) -> &mut Self {
        match group {
            Group::All => self.push("''"),
            Group::Bucket(interval, zone) => {
                let start = match interval {
                    Interval::Hour => "toString(toUInt32(toStartOfHour(bucket, ",
                    Interval::Day => "toString(toUInt32(toStartOfDay(bucket, ",
                };
                self.push(start).str(&zone.name).push(")))")
            }
            Group::Value => self.push("value"),
            Group::Code => self.push("scope"),
            Group::DimValue => self.push("concat(toString(dim), '|', value)"),
        }
    }
}

#[derive(Deserialize, ::clickhouse::Row)]
struct ScanRow {
    k: String,
    human: u64,
    bot: u64,
    suspect: u64,
    qr: u64,
    link: u64,
    small: u64,
    hll: u64,
}

#[derive(Deserialize, ::clickhouse::Row)]
struct DelaysRow {
    delays: (Vec<u16>, Vec<u64>),
}

pub(super) async fn aggregate(
    client: &::clickhouse::Client,
    cells: &Cells,
) -> Result<Aggregates, Error> {
    let (scans, conversions, delays) = tokio::try_join!(
        scan_rows(client, cells),
        conversion_rows(client, cells),
        delays(client, cells)
    )?;
    Ok(Aggregates {
        scans,
        conversions,
        delays,
    })
}

async fn scan_rows(client: &::clickhouse::Client, cells: &Cells) -> Result<Vec<ScanAgg>, Error> {
    if cells.scans.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    sql.push("SELECT ").key(&cells.group).push(
        " AS k, sumMerge(human) AS human, sumMerge(bot) AS bot, \
         sumMerge(suspect) AS suspect, sumMerge(qr) AS qr, \
         sumMerge(link) AS link, uniqUpToArrayMerge(100)(visitors_small) AS small, \
         uniqHLL12ArrayMerge(visitors) AS hll FROM scan_rollup WHERE ",
    );
    sql.scopes(&cells.scopes)
        .push(" AND ")
        .dims(&cells.dims)
        .push(" AND ")
        .ranges(&cells.scans);
    if !matches!(cells.group, Group::All) {
        // (18.16 answers a GROUP BY of constants over no rows with a row of zeros.)
        sql.push(" GROUP BY k");
    }
    let rows = sql
        .query(client)
        .fetch_all::<ScanRow>()
        .await
        .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .filter(|r| !matches!(cells.group, Group::All) || r.human + r.bot > 0)
        .map(|r| {
            // uniqUpTo(100) counts exactly up to 100 and says 101 beyond.
            let exact = r.small <= EXACT_MAX as u64;
            ScanAgg {
                k: r.k,
                human: r.human,
                bot: r.bot,
                suspect: r.suspect,
                qr: r.qr,
                link: r.link,
                uniq: if exact { r.small } else { r.hll },
                uniq_exact: u8::from(exact),
            }
        })
        .collect())
}

async fn conversion_rows(
    client: &::clickhouse::Client,
    cells: &Cells,
) -> Result<Vec<ConversionAgg>, Error> {
    if cells.conversions.is_empty() {
        return Ok(Vec::new());
    }
    // One query for both sides of the confirmation boundary: no range
    // straddles it, so each row's bucket tells its side.
    let mut sql = Sql::default();
    sql.push("SELECT ")
        .key(&cells.group)
        .push(" AS k, kind, currency, earnings_currency, toUInt8(bucket < toDateTime(")
        .u64(cells.confirmed_before.min(u64::from(u32::MAX)))
        .push(
            ")) AS confirmed, sumMerge(n) AS n, sumMerge(amount) AS amount_sum, \
             sumMerge(earnings) AS earnings_sum, sumMerge(flagged) AS flagged, \
             sumMerge(held) AS held_sum FROM conversion_rollup WHERE ",
        )
        .scopes(&cells.scopes)
        .push(" AND ")
        .dims(&cells.dims)
        .push(" AND ")
        .ranges(cells.conversions.iter().map(|(r, _)| r));
    if let Some(owner) = &cells.owner {
        sql.push(" AND owner = ").str(owner);
    }
    sql.push(" GROUP BY k, kind, currency, earnings_currency, confirmed");
    sql.query(client)
        .fetch_all::<ConversionAgg>()
        .await
        .map_err(unavailable)
}

async fn delays(client: &::clickhouse::Client, cells: &Cells) -> Result<DelayHistogram, Error> {
    let mut h = DelayHistogram::default();
    if !cells.delays || cells.conversions.is_empty() {
        return Ok(h);
    }
    let mut sql = Sql::default();
    sql.push("SELECT sumMapMerge(delays) AS delays FROM conversion_rollup WHERE ")
        .scopes(&cells.scopes)
        .push(" AND dim = ")
        .u64(Dim::Total as u64)
        .push(" AND kind = 'signup' AND ")
        .ranges(cells.conversions.iter().map(|(r, _)| r));
    if let Some(owner) = &cells.owner {
        sql.push(" AND owner = ").str(owner);
    }
    let row = sql
        .query(client)
        .fetch_optional::<DelaysRow>()
        .await
        .map_err(unavailable)?;
    if let Some(DelaysRow {
        delays: (bins, counts),
    }) = row
    {
        for (bin, n) in bins.into_iter().zip(counts) {
            h.add_bin(bin, n);
        }
    }
    Ok(h)
}

#[derive(Deserialize, ::clickhouse::Row)]
struct HumanRow {
    k: String,
    human: u64,
}

#[derive(Deserialize, ::clickhouse::Row)]
struct TotalsRow {
    k: String,
    kind: String,
    earnings_currency: String,
    n: u64,
    earnings_sum: i128,
}

/// Every code's human scans (`scans`) or conversions (else) over `ranges`,
/// keyed by code.
pub(super) async fn totals(
    client: &::clickhouse::Client,
    ranges: &[Range],
    scans: bool,
) -> Result<Aggregates, Error> {
    let mut out = Aggregates::default();
    if ranges.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::default();
    if scans {
        sql.push(
            "SELECT scope AS k, sumMerge(human) AS human FROM code_totals WHERE kind = '' AND ",
        )
        .ranges(ranges)
        .push(" GROUP BY k");
        let rows = sql
            .query(client)
            .fetch_all::<HumanRow>()
            .await
            .map_err(unavailable)?;
        out.scans = rows
            .into_iter()
            .filter(|r| r.human > 0)
            .map(|r| ScanAgg {
                k: r.k,
                human: r.human,
                ..ScanAgg::default()
            })
            .collect();
    } else {
        sql.push(
            "SELECT scope AS k, kind, earnings_currency, sumMerge(n) AS n, \
             sumMerge(earnings) AS earnings_sum FROM code_totals \
             WHERE kind IN ('signup', 'purchase', 'refund') AND ",
        )
        .ranges(ranges)
        .push(" GROUP BY k, kind, earnings_currency");
        let rows = sql
            .query(client)
            .fetch_all::<TotalsRow>()
            .await
            .map_err(unavailable)?;
        out.conversions = rows
            .into_iter()
            .map(|r| ConversionAgg {
                k: r.k,
                kind: r.kind,
                earnings_currency: r.earnings_currency,
                n: r.n,
                earnings_sum: r.earnings_sum,
                ..ConversionAgg::default()
            })
            .collect();
    }
    Ok(out)
}

#[derive(Deserialize, ::clickhouse::Row)]
struct CodeTotalsRow {
    k: String,
    kind: String,
    earnings_currency: String,
    confirmed: u8,
    human: u64,
    n: u64,
    earnings_sum: i128,
}

/// Every code's human scans and conversions (of `owner` when given; those of
/// buckets before `confirmed_before` confirmed) over `ranges`, keyed by code:
/// one query over `code_totals`.
pub(super) async fn code_totals(
    client: &::clickhouse::Client,
    ranges: &[(Range, bool)],
    confirmed_before: u64,
    owner: Option<&str>,
) -> Result<Aggregates, Error> {
    let mut out = Aggregates::default();
    if ranges.is_empty() {
        return Ok(out);
    }
    // No range straddles the confirmation boundary: each row's bucket tells
    // its side.
    let mut sql = Sql::default();
    sql.push("SELECT scope AS k, kind, earnings_currency, toUInt8(bucket < toDateTime(")
        .u64(confirmed_before.min(u64::from(u32::MAX)))
        .push(
            ")) AS confirmed, sumMerge(human) AS human, sumMerge(n) AS n, \
             sumMerge(earnings) AS earnings_sum FROM code_totals \
             WHERE kind IN ('', 'signup', 'purchase', 'refund') AND ",
        )
        .ranges(ranges.iter().map(|(r, _)| r));
    if let Some(owner) = owner {
        sql.push(" AND (kind = '' OR owner = ").str(owner).push(")");
    }
    sql.push(" GROUP BY k, kind, earnings_currency, confirmed");
    let rows = sql
        .query(client)
        .fetch_all::<CodeTotalsRow>()
        .await
        .map_err(unavailable)?;
    // One scan row per code (its human scans come in a row per side).
    let mut human: HashMap<String, u64> = HashMap::new();
    for r in rows {
        if r.kind.is_empty() {
            if r.human > 0 {
                *human.entry(r.k).or_default() += r.human;
            }
            continue;
        }
        out.conversions.push(ConversionAgg {
            k: r.k,
            kind: r.kind,
            earnings_currency: r.earnings_currency,
            confirmed: r.confirmed,
            n: r.n,
            earnings_sum: r.earnings_sum,
            ..ConversionAgg::default()
        });
    }
    out.scans = human
        .into_iter()
        .map(|(k, human)| ScanAgg {
            k,
            human,
            ..ScanAgg::default()
        })
        .collect();
    Ok(out)
}

#[derive(Deserialize, ::clickhouse::Row)]
struct OwnerRow {
    code: String,
    owner: String,
}

/// The owner of each code's latest stored conversion (by `occurred_ms`, then
/// `event_id`).
pub(super) async fn owners(
    client: &::clickhouse::Client,
    codes: &[String],
) -> Result<HashMap<String, String>, Error> {
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::default();
    sql.push("SELECT code, owner FROM conversions WHERE code IN (");
    for (i, code) in codes.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.str(code);
    }
    sql.push(") ORDER BY code, occurred_ms DESC, event_id DESC LIMIT 1 BY code");
    let rows = sql
        .query(client)
        .fetch_all::<OwnerRow>()
        .await
        .map_err(unavailable)?;
    Ok(rows.into_iter().map(|r| (r.code, r.owner)).collect())
}

fn unavailable(e: ::clickhouse::error::Error) -> Error {
    Error::Unavailable(format!("clickhouse: {e}"))
}

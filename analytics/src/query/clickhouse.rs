//! The ClickHouse backend: the rollups as SQL over `scans FINAL` and
//! `conversions FINAL`.
//!
//! Runs on 18.16 and current releases. Values go in through client-side `?`
//! binds. Every filter names `code` and the time column first (the leading
//! columns of both tables' `ORDER BY`), so per-code queries read only the
//! code's granules. 18.16 has no `IN [array]` (only tuples), so a code list is
//! bound as one `?` per code: `code IN (?, ?)`. Column types are fetched as
//! what ClickHouse returns (`count()`/`uniqExact` → `u64`, `sum(Int64)` →
//! `i64`, comparisons → `u8`): validation is off, so a mismatch would not be
//! caught.

use super::finish::{ConversionAgg, DelayAgg, ScanAgg};
use super::{Dimension, Group, Interval, Query};
use crate::sink::SinkError;
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

    /// ` AND code IN (?, …)` when the query names codes.
    fn codes(&mut self, codes: Option<&[String]>) -> &mut Self {
        if let Some(codes) = codes {
            self.push(" AND code IN (");
            for (i, code) in codes.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.str(code);
            }
            self.push(")");
        }
        self
    }

    /// `{secs} >= … AND {secs} <= … AND {ms} >= from AND {ms} < to AND code IN …`:
    /// the DateTime column narrows by the primary key, the ms column is exact.
    fn range(&mut self, q: &Query, secs: &str, ms: &str) -> &mut Self {
        let second = |ms: u64| (ms / 1000).min(u64::from(u32::MAX));
        self.push(secs)
            .push(" >= toDateTime(")
            .u64(second(q.from_ms))
            .push(")");
        self.push(" AND ").push(secs).push(" <= toDateTime(");
        self.u64(second(q.to_ms.saturating_sub(1))).push(")");
        self.push(" AND ").push(ms).push(" >= ").u64(q.from_ms);
        self.push(" AND ").push(ms).push(" < ").u64(q.to_ms);
        self.codes(q.codes.as_deref())
    }

    fn scan_filter(&mut self, q: &Query) -> &mut Self {
        self.range(q, "ts", "ts_ms")
    }

    fn conversion_filter(&mut self, q: &Query) -> &mut Self {
        self.range(q, "occurred", "occurred_ms");
        if let Some(owner) = &q.owner {
            self.push(" AND owner = ").str(owner);
        }
        self
    }

    /// `toUInt8(occurred_ms <= cutoff)`: whether the earnings are confirmed.
    fn confirmed(&mut self, q: &Query) -> &mut Self {
        match q.confirmed_cutoff() {
            Some(cutoff) => self.push("toUInt8(occurred_ms <= ").u64(cutoff).push(")"),
            None => self.push("toUInt8(0)"),
        }
    }

    /// The group key as a String expression over a table whose time column is
    /// `secs`; `column` is the dimension's column there.
    fn key(&mut self, group: &Group, secs: &str, column: &str) -> &mut Self {
        match group {
            Group::All => self.push("''"),
            Group::Bucket(interval, zone) => {
                let start = match interval {
                    Interval::Hour => "toString(toUInt32(toStartOfHour(",
                    Interval::Day => "toString(toUInt32(toStartOfDay(",
                };
                self.push(start)
                    .push(secs)
                    .push(", ")
                    .str(&zone.name)
                    .push(")))")
            }
            Group::Dimension(_) => self.push(column),
            Group::Code => self.push("code"),
        }
    }
}

pub(super) async fn scan_rollup(
    client: &::clickhouse::Client,
    q: &Query,
    group: &Group,
) -> Result<Vec<ScanAgg>, SinkError> {
    let column = match group {
        Group::Dimension(d) => d.scan_column(),
        _ => "",
    };
    let mut sql = Sql::default();
    sql.push("SELECT ").key(group, "ts", column).push(
        " AS k, countIf(is_bot = 0) AS human, countIf(is_bot != 0) AS bot, \
         countIf(is_bot = 0 AND source = 'qr') AS qr, \
         countIf(is_bot = 0 AND source = 'link') AS link, \
         uniqExactIf(visitor_id, is_bot = 0) AS uniq \
         FROM scans FINAL WHERE ",
    );
    sql.scan_filter(q);
    if !matches!(group, Group::All) {
        // (18.16 answers a GROUP BY of constants over no rows with a row of zeros.)
        sql.push(" GROUP BY k");
    }
    Ok(sql.query(client).fetch_all::<ScanAgg>().await?)
}

const CONVERSION_SUMS: &str =
    "count() AS n, sum(amount) AS amount_sum, sum(earnings) AS earnings_sum";
const CONVERSION_GROUP: &str = " GROUP BY k, kind, currency, earnings_currency, confirmed";

pub(super) async fn conversion_rollup(
    client: &::clickhouse::Client,
    q: &Query,
    group: &Group,
) -> Result<Vec<ConversionAgg>, SinkError> {
    let mut sql = Sql::default();
    match group {
        Group::Dimension(d) if *d != Dimension::Channel => {
            // The key is a field of the attributed scan: join by scan id. The
            // scan side is narrowed to the scan ids wanted, the query's codes
            // and the range of the conversions' scan times (primary key).
            sql.push("SELECT k, kind, currency, earnings_currency, confirmed, ")
                .push(CONVERSION_SUMS)
                .push(
                    " FROM (SELECT scan_id, kind, currency, earnings_currency, amount, earnings, ",
                )
                .confirmed(q)
                .push(" AS confirmed FROM conversions FINAL WHERE ")
                .conversion_filter(q)
                .push(") AS c ANY LEFT JOIN (SELECT scan_id, ")
                .push(d.scan_column())
                .push(" AS k FROM scans FINAL WHERE scan_id IN (SELECT scan_id FROM conversions FINAL WHERE ")
                .conversion_filter(q)
                .push(" AND scan_id != '')")
                .push(" AND ts >= (SELECT toDateTime(intDiv(min(scan_ms), 1000)) FROM conversions FINAL WHERE ")
                .conversion_filter(q)
                .push(" AND scan_ms > 0)")
                .push(" AND ts <= (SELECT toDateTime(intDiv(max(scan_ms), 1000)) FROM conversions FINAL WHERE ")
                .conversion_filter(q)
                .push(" AND scan_ms > 0)")
                .codes(q.codes.as_deref())
                .push(") AS s USING scan_id")
                .push(CONVERSION_GROUP);
        }
        _ => {
            sql.push("SELECT ")
                .key(group, "occurred", "channel")
                .push(" AS k, kind, currency, earnings_currency, ")
                .confirmed(q)
                .push(" AS confirmed, ")
                .push(CONVERSION_SUMS)
                .push(" FROM conversions FINAL WHERE ")
                .conversion_filter(q)
                .push(CONVERSION_GROUP);
        }
    }
    Ok(sql.query(client).fetch_all::<ConversionAgg>().await?)
}

pub(super) async fn signup_delays(
    client: &::clickhouse::Client,
    q: &Query,
) -> Result<DelayAgg, SinkError> {
    let mut sql = Sql::default();
    sql.push(
        "SELECT length(d) AS n, \
         arrayElement(d, greatest(1, intDiv(length(d) + 1, 2))) AS lo, \
         arrayElement(d, intDiv(length(d), 2) + 1) AS hi \
         FROM (SELECT arraySort(groupArray(toInt64(occurred_ms) - toInt64(scan_ms))) AS d \
         FROM conversions FINAL WHERE ",
    )
    .conversion_filter(q)
    .push(" AND kind = 'signup' AND scan_ms > 0)");
    Ok(sql.query(client).fetch_one::<DelayAgg>().await?)
}

#[derive(serde::Deserialize, ::clickhouse::Row)]
struct OwnerRow {
    code: String,
    owner: String,
}

/// The owner of each code's latest stored conversion (by `occurred_ms`, then
/// `event_id`).
pub(super) async fn owners(
    client: &::clickhouse::Client,
    codes: &[String],
) -> Result<HashMap<String, String>, SinkError> {
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::default();
    sql.push("SELECT code, owner FROM conversions FINAL WHERE 1");
    sql.codes(Some(codes));
    sql.push(" ORDER BY code, occurred_ms DESC, event_id DESC LIMIT 1 BY code");
    let rows = sql.query(client).fetch_all::<OwnerRow>().await?;
    Ok(rows.into_iter().map(|r| (r.code, r.owner)).collect())
}

//! `/api/v1/analytics/{summary,timeseries,breakdown,funnel,top}`: the same
//! questions answered from ClickHouse (when configured) or the embedded store.
//! JSON by default; CSV with `format=csv` or `Accept: text/csv`.

use super::auth::{visible, Principal};
use super::times::parse_time;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::query::{Dimension, Interval, Query, TopMetric};
use http::{header, StatusCode};
use serde_json::{json, Value};

const DEFAULT_SPAN_MS: u64 = 30 * 86_400_000;
const MAX_TOP: usize = 100;

struct Params {
    query: Query,
    code: Option<String>,
    interval: Interval,
    by: Option<Dimension>,
    metric: TopMetric,
    limit: usize,
    csv: bool,
    /// Funnel: leave out flagged conversions not approved.
    exclude_flagged: bool,
}

fn bad(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_query", format!("{name}: {message}"))
}

fn params(state: &AppState, who: &Principal, req: &Request) -> Result<Params, ApiError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut from = None;
    let mut to = None;
    let mut tz = "UTC".to_string();
    let mut code = None;
    let mut exclude_flagged = false;
    let mut interval = Interval::Day;
    let mut by = None;
    let mut metric = TopMetric::Earnings;
    let mut limit = 10;
    let mut csv = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let time = |name: &'static str, v: &str| -> Result<u64, ApiError> {
        let secs = parse_time(name, v).map_err(|_| {
            bad(
                name,
                "must be an RFC 3339 time such as 2026-11-01T00:00:00Z",
            )
        })?;
        u64::try_from(secs)
            .map(|s| s * 1000)
            .map_err(|_| bad(name, "must be after 1970"))
    };
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "from" => from = Some(time("from", &v)?),
            "to" => to = Some(time("to", &v)?),
            "tz" => tz = v.into_owned(),
            "code" => code = Some(v.to_ascii_lowercase()),
            "interval" => {
                interval = match v.as_ref() {
                    "hour" => Interval::Hour,
                    "day" => Interval::Day,
                    _ => return Err(bad("interval", "must be hour or day")),
                }
            }
            "by" => by = Some(v.parse().map_err(|_| bad("by", "must be one of channel, source, bot_reason, country, device, browser, os, in_app, referrer, verdict, route"))?),
            "metric" => {
                metric = match v.as_ref() {
                    "earnings" => TopMetric::Earnings,
                    "scans" => TopMetric::Scans,
                    "conversions" => TopMetric::Conversions,
                    _ => return Err(bad("metric", "must be earnings, scans or conversions")),
                }
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_TOP).contains(n))
                    .ok_or_else(|| bad("limit", format!("must be an integer from 1 to {MAX_TOP}")))?
            }
            "exclude_flagged" => {
                exclude_flagged = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("exclude_flagged", "must be true or false")),
                }
            }
            "format" => {
                csv = match v.as_ref() {
                    "csv" => true,
                    "json" => false,
                    _ => return Err(bad("format", "must be json or csv")),
                }
            }
            other => {
                return Err(bad(
                    other,
                    "unknown parameter (known: from, to, tz, code, interval, by, metric, limit, exclude_flagged, format)",
                ))
            }
        }
    }
    let to_ms = to.unwrap_or(now_ms + 1);
    let from_ms = from.unwrap_or(to_ms.saturating_sub(DEFAULT_SPAN_MS));
    if from_ms >= to_ms {
        return Err(bad("from", "must be before to"));
    }
    if !codelink_analytics::query::valid_tz(&tz) {
        return Err(bad(
            "tz",
            format!("'{tz}' is not an IANA time zone such as Europe/Berlin"),
        ));
    }
    // A creator sees its own codes only; another creator's code is "not found".
    let codes = match (&code, who) {
        (Some(c), _) => {
            visible(state, who, c)?;
            Some(vec![c.clone()])
        }
        (None, Principal::Creator(handle)) => Some(
            state
                .codes
                .snapshot()
                .values()
                .filter(|e| &e.record.owner == handle)
                .map(|e| e.record.code.clone())
                .collect(),
        ),
        (None, _) => None,
    };
    Ok(Params {
        query: Query {
            from_ms,
            to_ms,
            tz,
            codes,
            // A creator's conversions are those credited to them, also on a
            // code that changed hands since.
            owner: match who {
                Principal::Creator(handle) => Some(handle.clone()),
                _ => None,
            },
            now_ms,
            hold_ms: state.config.hold_ms(),
        },
        code,
        interval,
        by,
        metric,
        limit,
        csv,
        exclude_flagged,
    })
}

pub(super) async fn handle(
    state: &AppState,
    who: &Principal,
    report: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    let p = params(state, who, req)?;
    let a = &state.analytics;
    let q = &p.query;
    // (JSON body, the rows a CSV export holds)
    let (body, rows): (Value, Value) = match report {
        "summary" => {
            let s = to_value(&a.summary(q).await?);
            (json!({ "summary": s }), s)
        }
        "timeseries" => {
            let b = to_value(&a.timeseries(q, p.interval).await?);
            (
                json!({ "interval": interval_name(p.interval), "buckets": b }),
                b,
            )
        }
        "breakdown" => {
            let by = p.by.ok_or_else(|| {
                bad(
                    "by",
                    "is required (channel, source, bot_reason, country, device, browser, os, in_app, referrer, verdict or route)",
                )
            })?;
            let r = to_value(&a.breakdown(q, by).await?);
            (json!({ "by": by.as_str(), "rows": r }), r)
        }
        "funnel" => {
            let mut f = a.funnel(q).await?;
            if p.exclude_flagged {
                f = f.excluding_flagged();
            }
            let f = to_value(&f);
            (json!({ "funnel": f }), f)
        }
        "top" => {
            let r = to_value(&a.top(q, p.metric, p.limit).await?);
            (json!({ "metric": metric_name(p.metric), "rows": r }), r)
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no analytics report '{other}' (summary, timeseries, breakdown, funnel, top)"
            )))
        }
    };
    if p.csv {
        let mut resp = response::with_body(
            StatusCode::OK,
            "text/csv; charset=utf-8",
            codelink_analytics::export::csv(&rows),
        );
        if let Ok(v) =
            http::HeaderValue::try_from(format!("attachment; filename=\"codelink-{report}.csv\""))
        {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    // The range counted: whole quarter-hours (hours for a breakdown).
    let (from, to) = codelink_analytics::query::effective_range(q, report == "breakdown");
    let mut body = body;
    body["query"] = json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "tz": q.tz,
        "code": p.code,
    });
    Ok(response::json(StatusCode::OK, &body))
}

fn rfc3339(ms: u64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

fn interval_name(i: Interval) -> &'static str {
    match i {
        Interval::Hour => "hour",
        Interval::Day => "day",
    }
}

fn metric_name(m: TopMetric) -> &'static str {
    match m {
        TopMetric::Earnings => "earnings",
        TopMetric::Scans => "scans",
        TopMetric::Conversions => "conversions",
    }
}

/// Query results are plain data: serialising them cannot fail.
fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

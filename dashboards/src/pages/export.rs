//! `/ui/export?report=…`: CSV downloads of the same queries as the API
//! (`summary`, `timeseries`, `breakdown`, `funnel`, `top`) plus the codes
//! table, over the page's range, for the signed-in caller's codes only.

use super::code::visible;
use super::codes::{query, visible_codes};
use super::{analytics_error, bad_query, not_found};
use crate::range::{Preset, View};
use crate::{Console, Ctx, Response};
use codelink_analytics::query::{Dimension, Interval, TopMetric};
use http::{header, HeaderValue};

pub async fn csv<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    let view = match View::parse(&ctx.query, ctx.now_ms, ctx.tz.as_deref(), Preset::Days(30)) {
        Ok(v) => v,
        Err(e) => return bad_query(ctx, &e),
    };
    let codes = match ctx.param("code").filter(|c| !c.is_empty()) {
        Some(c) => match visible(ctx, c) {
            Some(r) => Some(vec![r.code]),
            None => return not_found(Some(ctx)),
        },
        None if ctx.is_admin() => None,
        None => Some(visible_codes(ctx).into_iter().map(|c| c.code).collect()),
    };
    let q = query(ctx, &view, codes);
    let a = ctx.console.analytics();
    let report = ctx.param("report").unwrap_or("");
    let rows = match report {
        "summary" => a.summary(&q).await.map(|s| to_value(&s)),
        "timeseries" => {
            let interval = match ctx.param("interval") {
                None | Some("") => view.interval(),
                Some("hour") => Interval::Hour,
                Some("day") => Interval::Day,
                Some(_) => return bad_query(ctx, "interval: must be hour or day"),
            };
            a.timeseries(&q, interval).await.map(|s| to_value(&s))
        }
        "breakdown" => {
            let Some(by) = ctx.param("by").and_then(|b| b.parse::<Dimension>().ok()) else {
                return bad_query(ctx, "by: must be one of channel, source, bot_reason, country, device, browser, os, in_app, referrer");
            };
            a.breakdown(&q, by).await.map(|s| to_value(&s))
        }
        "funnel" => a.funnel(&q).await.map(|s| to_value(&s)),
        "top" => {
            let metric = match ctx.param("metric") {
                None | Some("") => TopMetric::Earnings,
                Some(m) => match m.parse::<TopMetric>() {
                    Ok(m) => m,
                    Err(_) => {
                        return bad_query(ctx, "metric: must be earnings, scans or conversions")
                    }
                },
            };
            a.top(&q, metric, 100).await.map(|s| to_value(&s))
        }
        "codes" => a.code_rows(&q).await.map(|s| to_value(&s)),
        _ => {
            return bad_query(
                ctx,
                "report: must be one of summary, timeseries, breakdown, funnel, top, codes",
            )
        }
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return analytics_error(ctx, e),
    };
    let body = codelink_analytics::export::csv(&rows);
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = match ctx.param("code") {
        Some(c) if !c.is_empty() => format!("codelink-{report}-{}.csv", c.to_ascii_lowercase()),
        _ => format!("codelink-{report}.csv"),
    };
    if let Ok(v) = HeaderValue::try_from(format!(
        "attachment; filename=\"{}\"",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.' && c != '_',
            ""
        )
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

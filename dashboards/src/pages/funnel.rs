//! `/ui/funnel`: scan → unique scanner → signup → purchase, over all the
//! caller's codes, and per code, channel, device or in-app browser.

use super::codes::{query, visible_codes};
use super::{analytics_error, bad_query, html_response};
use crate::chart;
use crate::html::{self, esc, num, pct};
use crate::range::{Preset, View};
use crate::{Console, Ctx, Response};
use codelink_analytics::query::Dimension;
use http::StatusCode;
use std::fmt::Write;

const BY: [(&str, &str); 4] = [
    ("code", "Code"),
    ("channel", "Channel"),
    ("device", "Device"),
    ("in_app", "In-app browser"),
];

/// Rows shown (by human scans); the CSV export has every row.
const MAX_ROWS: usize = 100;

/// One row: key, human scans, unique scanners (if known), signups, purchases.
type Row = (String, u64, Option<u64>, u64, u64);

pub async fn show<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    let view = match View::parse(&ctx.query, ctx.now_ms, ctx.tz.as_deref(), Preset::Days(30)) {
        Ok(v) => v,
        Err(e) => return bad_query(ctx, &e),
    };
    let by = ctx
        .param("by")
        .and_then(|b| BY.iter().find(|(k, _)| *k == b))
        .unwrap_or(&BY[0]);
    let codes = if ctx.is_admin() {
        None
    } else {
        Some(visible_codes(ctx).into_iter().map(|c| c.code).collect())
    };
    let q = query(ctx, &view, codes);
    let a = ctx.console.analytics();
    let rows = async {
        let rows: Vec<Row> = match by.0 {
            "code" => a
                .code_rows(&q)
                .await?
                .into_iter()
                .map(|r| {
                    (
                        r.code.to_uppercase(),
                        r.human_scans,
                        r.unique_scanners,
                        r.signups,
                        r.purchases,
                    )
                })
                .collect(),
            other => {
                let d: Dimension = other.parse().unwrap_or(Dimension::Channel);
                a.breakdown(&q, d)
                    .await?
                    .into_iter()
                    .map(|r| {
                        let key = if r.key.is_empty() {
                            match d {
                                Dimension::InApp => "Not in an app".to_string(),
                                Dimension::Channel => "(bare link)".to_string(),
                                _ => "(unknown)".to_string(),
                            }
                        } else {
                            r.key
                        };
                        (
                            key,
                            r.human_scans,
                            Some(r.unique_scanners),
                            r.signups,
                            r.purchases,
                        )
                    })
                    .collect()
            }
        };
        Ok(rows)
    };
    let (funnel, mut rows) = match super::both(a.funnel(&q), rows).await {
        Ok(both) => both,
        Err(e) => return analytics_error(ctx, e),
    };
    rows.retain(|r| r.1 + r.3 + r.4 > 0);
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // The page stays small with thousands of codes: the CSV has them all.
    let all_rows = rows.len();
    rows.truncate(MAX_ROWS);
    let mut body = String::from("<div class=\"head\"><h1>Scan-to-use funnel</h1></div>");
    body.push_str(&view.picker("/ui/funnel", &[("by", by.0)]));
    let steps = [
        ("Human scans", funnel.scans),
        ("Unique scanners", funnel.unique_scanners),
        ("Signups", funnel.signups),
        ("Purchases", funnel.purchases),
    ];
    let _ = write!(
        body,
        "<section class=\"card\"><h2>{}</h2><ol class=\"funnel\">",
        esc(&view.label())
    );
    for (i, (label, n)) in steps.iter().enumerate() {
        let from_prev = if i == 0 {
            String::new()
        } else {
            format!(
                "<span class=\"rate\">{} of the step before</span>",
                pct(*n as f64, steps[i - 1].1 as f64)
            )
        };
        let _ = write!(
            body,
            "<li><span class=\"step\">{label}</span><span class=\"count\" data-step=\"{i}\">{}</span>{}{from_prev}</li>",
            num(*n),
            chart::meter(*n, steps[0].1, "h")
        );
    }
    body.push_str("</ol></section>");
    let _ = write!(body, "<section class=\"card flush\"><div class=\"pad row spread\"><h2>By {}</h2><nav aria-label=\"Group by\"><ul class=\"presets wrap\">", esc(&by.1.to_lowercase()));
    for (k, label) in BY {
        let current = if k == by.0 {
            " aria-current=\"true\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<li><a href=\"/ui/funnel?by={k}&{}\"{current}>{label}</a></li>",
            esc(&view.query())
        );
    }
    let _ = write!(
        body,
        "</ul></nav></div><div class=\"scroll\"><table class=\"data\"><thead><tr><th scope=\"col\">{}</th>\
         <th scope=\"col\" class=\"n\">Human scans</th><th scope=\"col\" class=\"n\">Unique scanners</th>\
         <th scope=\"col\" class=\"n\">Signups</th><th scope=\"col\" class=\"n\">Purchases</th>\
         <th scope=\"col\" class=\"n\">Scan → signup</th><th scope=\"col\" class=\"n\">Scan → purchase</th></tr></thead><tbody>",
        esc(by.1)
    );
    for (key, scans, uniques, signups, purchases) in &rows {
        // The rates are per unique scanner, as in the API (human scans where
        // the scanners are not known).
        let base = uniques.unwrap_or(*scans) as f64;
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(key),
            num(*scans),
            uniques.map_or("–".to_string(), num),
            num(*signups),
            num(*purchases),
            pct(*signups as f64, base),
            pct(*purchases as f64, base)
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"7\">Nothing in this range.</td></tr>");
    }
    if all_rows > rows.len() {
        let _ = write!(
            body,
            "<tr><td colspan=\"7\">The {} with the most human scans of {} are shown: the CSV has them all.</td></tr>",
            rows.len(),
            num(all_rows as u64)
        );
    }
    let report = if by.0 == "code" {
        "report=codes".to_string()
    } else {
        format!("report=breakdown&by={}", by.0)
    };
    let _ = write!(
        body,
        "</tbody></table></div><p class=\"pad exports\">CSV: <a href=\"/ui/export?{report}&{q}\" download>this table</a> · \
         <a href=\"/ui/export?report=funnel&{q}\" download>funnel</a> · <a href=\"/ui/export?report=top&metric=earnings&{q}\" download>top codes by earnings</a></p></section>",
        q = esc(&view.query())
    );
    html_response(
        StatusCode::OK,
        html::page(&ctx.frame("Funnel", "funnel"), &body),
    )
}

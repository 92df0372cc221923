//! `/ui/codes`: a creator's codes as cards (today, 7 and 30 days), or, for
//! the admin, every code in a sortable, searchable table over a date range.

use super::{analytics_error, bad_query, html_response};
use crate::html::{self, esc, money_list, num, pct, qv};
use crate::range::{Preset, View};
use crate::{Console, Ctx, Response};
use codelink_analytics::query::{CodeRow, Money, Query};
use codelink_shared::CodeRecord;
use http::StatusCode;
use std::collections::HashMap;
use std::fmt::Write;

const PAGE: usize = 100;

/// The query of `view` over `codes` (for a creator: only theirs, and only the
/// conversions credited to them).
pub fn query<C: Console>(ctx: &Ctx<'_, C>, view: &View, codes: Option<Vec<String>>) -> Query {
    Query {
        from_ms: view.from_ms,
        to_ms: view.to_ms,
        tz: view.tz_name.clone(),
        codes,
        owner: ctx.who().creator().map(str::to_string),
        now_ms: ctx.now_ms,
        hold_ms: ctx.console.hold_ms(),
    }
}

/// The codes this caller sees, by name.
pub fn visible_codes<C: Console>(ctx: &Ctx<'_, C>) -> Vec<CodeRecord> {
    let mut codes: Vec<CodeRecord> = ctx
        .console
        .codes()
        .into_iter()
        .filter(|c| ctx.who().sees(&c.owner))
        .collect();
    codes.sort_by(|a, b| a.code.cmp(&b.code));
    codes
}

pub fn status(r: &CodeRecord, now_ms: u64) -> (&'static str, &'static str) {
    if !r.enabled {
        ("Disabled", "off")
    } else if r.expires_at.is_some_and(|t| t * 1000 <= now_ms as i64) {
        ("Expired", "off")
    } else {
        ("Active", "on")
    }
}

fn view<C: Console>(ctx: &Ctx<'_, C>, preset: Preset) -> Result<View, String> {
    View::parse(&ctx.query, ctx.now_ms, ctx.tz.as_deref(), preset)
}

pub async fn list<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    if ctx.is_admin() {
        all_codes(ctx).await
    } else {
        my_codes(ctx).await
    }
}

async fn rows<C: Console>(
    ctx: &Ctx<'_, C>,
    q: &Query,
) -> Result<HashMap<String, CodeRow>, codelink_analytics::Error> {
    Ok(ctx
        .console
        .analytics()
        .code_rows(q)
        .await?
        .into_iter()
        .map(|r| (r.code.clone(), r))
        .collect())
}

async fn my_codes<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    let codes = visible_codes(ctx);
    let names: Vec<String> = codes.iter().map(|c| c.code.clone()).collect();
    // Only the zone of the page's query counts here: the windows are fixed.
    let pairs: Vec<(String, String)> = ctx
        .query
        .iter()
        .filter(|(k, _)| k == "tz")
        .cloned()
        .collect();
    let mut views = Vec::new();
    for preset in [Preset::Today, Preset::Days(7), Preset::Days(30)] {
        match View::parse(&pairs, ctx.now_ms, ctx.tz.as_deref(), preset) {
            Ok(v) => views.push(v),
            Err(e) => return bad_query(ctx, &e),
        }
    }
    let [q0, q1, q2] = [0, 1, 2].map(|i| query(ctx, &views[i], Some(names.clone())));
    let read = tokio::try_join!(rows(ctx, &q0), rows(ctx, &q1), rows(ctx, &q2));
    let windows: Vec<(View, HashMap<String, CodeRow>)> = match read {
        Ok((r0, r1, r2)) => views.into_iter().zip([r0, r1, r2]).collect(),
        Err(e) => return analytics_error(ctx, e),
    };
    let month = &windows[2].1;
    let mut order: Vec<&CodeRecord> = codes.iter().collect();
    order.sort_by_key(|c| std::cmp::Reverse(month.get(&c.code).map_or(0, |r| r.human_scans)));
    let tz = &windows[0].0.tz_name;
    let mut body = format!(
        "<div class=\"head\"><h1>My codes</h1><p class=\"sub\">Human scans: bots and link previews are left out. Times in {} \
         <a class=\"small\" href=\"#tz\">change</a>.</p></div>",
        esc(tz)
    );
    if codes.is_empty() {
        body.push_str("<section class=\"card\"><h2>No codes yet</h2><p>Codes you own show up here as soon as they are created.</p></section>");
    }
    body.push_str("<div class=\"cards\">");
    let base = ctx.console.public_base();
    for c in order {
        let cell = |i: usize| windows[i].1.get(&c.code);
        let scans = |i: usize| cell(i).map_or(0, |r| r.human_scans);
        let m = cell(2);
        let (label, class) = status(c, ctx.now_ms);
        let signups = m.map_or(0, |r| r.signups);
        let purchases = m.map_or(0, |r| r.purchases);
        let rate = |v: Option<f64>| v.map_or("–".to_string(), |x| pct(x, 1.0));
        let short = format!("{base}/{}", c.code);
        let _ = write!(
            body,
            "<article class=\"card code\" data-code=\"{code}\"><div class=\"code-head\"><h2><a href=\"/ui/codes/{code}?range=30d&tz={tzq}\">{upper}</a></h2>\
             <span class=\"badge {class}\">{label}</span></div>\
             <div class=\"copy\"><input readonly aria-label=\"Short link of {upper}\" value=\"{short}\" id=\"link-{code}\">\
             <button type=\"button\" data-copy=\"link-{code}\">Copy</button></div>\
             <dl class=\"stats three\">\
             <div><dt>Today</dt><dd data-k=\"today\">{}</dd></div>\
             <div><dt>7 days</dt><dd data-k=\"d7\">{}</dd></div>\
             <div><dt>30 days</dt><dd data-k=\"d30\">{}</dd></div></dl>\
             <h3>Last 30 days</h3>\
             <dl class=\"stats\">\
             <div><dt>Signups</dt><dd data-k=\"signups\">{}</dd></div>\
             <div><dt>Purchases</dt><dd data-k=\"purchases\">{}</dd></div>\
             <div><dt>Scan → signup</dt><dd data-k=\"scan_to_signup\">{}</dd></div>\
             <div><dt>Scan → purchase</dt><dd data-k=\"scan_to_purchase\">{}</dd></div>\
             <div class=\"wide\"><dt>Estimated earnings</dt><dd data-k=\"estimated\">{}</dd></div>\
             <div class=\"wide\"><dt>Confirmed earnings</dt><dd data-k=\"confirmed\">{}</dd></div></dl></article>",
            num(scans(0)),
            num(scans(1)),
            num(scans(2)),
            num(signups),
            num(purchases),
            rate(m.and_then(|r| r.scan_to_signup)),
            rate(m.and_then(|r| r.scan_to_purchase)),
            money_list(m.map_or(&[][..], |r| &r.earnings_estimated)),
            money_list(m.map_or(&[][..], |r| &r.earnings_confirmed)),
            code = esc(&c.code),
            upper = esc(&c.code.to_uppercase()),
            tzq = qv(tz),
            short = esc(&short),
        );
    }
    body.push_str("</div>");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/ui/codes\" class=\"tzform\" id=\"tz\"><label>Time zone \
         <select name=\"tz\" data-tz>{}</select></label><button type=\"submit\">Apply</button></form>",
        crate::range::zone_options(tz)
    );
    html_response(
        StatusCode::OK,
        html::page(&ctx.frame("My codes", "codes"), &body),
    )
}

/// The amount in `currency` of a money list.
fn amount(list: &[Money], currency: &str) -> i128 {
    list.iter()
        .filter(|m| m.currency == currency)
        .map(|m| m.amount)
        .sum()
}

/// Estimated plus confirmed, per currency.
pub fn earnings(r: &CodeRow) -> Vec<Money> {
    let mut out: Vec<Money> = r.earnings_estimated.clone();
    for m in &r.earnings_confirmed {
        match out.iter_mut().find(|o| o.currency == m.currency) {
            Some(o) => o.amount += m.amount,
            None => out.push(m.clone()),
        }
    }
    out.sort_by(|a, b| a.currency.cmp(&b.currency));
    out
}

async fn all_codes<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    let view = match view(ctx, Preset::Days(30)) {
        Ok(v) => v,
        Err(e) => return bad_query(ctx, &e),
    };
    let search = ctx.param("q").unwrap_or("").trim().to_ascii_lowercase();
    let sort = ctx
        .param("sort")
        .filter(|s| ["code", "owner", "scans", "signups", "purchases", "earnings"].contains(s))
        .unwrap_or("scans");
    let asc = ctx.param("dir") == Some("asc");
    let page: usize = ctx
        .param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let data = match rows(ctx, &query(ctx, &view, None)).await {
        Ok(r) => r,
        Err(e) => return analytics_error(ctx, e),
    };
    let codes: Vec<CodeRecord> = visible_codes(ctx)
        .into_iter()
        .filter(|c| {
            search.is_empty()
                || c.code.contains(&search)
                || c.owner.to_ascii_lowercase().contains(&search)
        })
        .collect();
    // Earnings in different currencies do not compare: rank by the currency
    // most codes earn in.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in data.values() {
        for m in r.earnings_estimated.iter().chain(&r.earnings_confirmed) {
            *counts.entry(m.currency.as_str()).or_default() += 1;
        }
    }
    let main_currency = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let empty = CodeRow {
        code: String::new(),
        human_scans: 0,
        unique_scanners: None,
        signups: 0,
        purchases: 0,
        refunds: 0,
        earnings_estimated: Vec::new(),
        earnings_confirmed: Vec::new(),
        scan_to_signup: None,
        scan_to_purchase: None,
    };
    let mut table: Vec<(&CodeRecord, &CodeRow)> = codes
        .iter()
        .map(|c| (c, data.get(&c.code).unwrap_or(&empty)))
        .collect();
    table.sort_by(|(a, ra), (b, rb)| {
        let o = match sort {
            "code" => a.code.cmp(&b.code),
            "owner" => a.owner.cmp(&b.owner),
            "signups" => ra.signups.cmp(&rb.signups),
            "purchases" => ra.purchases.cmp(&rb.purchases),
            "earnings" => {
                amount(&earnings(ra), &main_currency).cmp(&amount(&earnings(rb), &main_currency))
            }
            _ => ra.human_scans.cmp(&rb.human_scans),
        };
        let o = if asc { o } else { o.reverse() };
        o.then_with(|| a.code.cmp(&b.code))
    });
    let total = table.len();
    let pages = total.div_ceil(PAGE).max(1);
    let page = page.min(pages);
    let shown = &table[(page - 1) * PAGE..(page * PAGE).min(total)];
    let keep = |extra: &str| {
        let mut q = view.query();
        if !search.is_empty() {
            let _ = write!(q, "&q={}", qv(&search));
        }
        q.push_str(extra);
        q
    };
    let mut body = format!(
        "<div class=\"head\"><h1>Codes</h1><a class=\"button primary\" href=\"/ui/codes/new\">New code</a></div>{}\
         <form method=\"get\" action=\"/ui/codes\" class=\"search\" role=\"search\">\
         <input type=\"hidden\" name=\"range\" value=\"{}\"><input type=\"hidden\" name=\"tz\" value=\"{}\">\
         <label for=\"q\">Search codes or owners</label><input id=\"q\" name=\"q\" type=\"search\" value=\"{}\">\
         <button type=\"submit\">Search</button></form>",
        view.picker("/ui/codes", &[]),
        match view.preset {
            Preset::Custom => "custom".to_string(),
            _ => view.query().split('&').next().unwrap_or("").trim_start_matches("range=").to_string(),
        },
        esc(&view.tz_name),
        esc(&search)
    );
    let _ = write!(
        body,
        "<section class=\"card flush\"><h2 class=\"pad\">{} · {} codes</h2><div class=\"scroll\"><table class=\"data\"><thead><tr>",
        esc(&view.label()),
        num(total as u64)
    );
    for (key, label, numeric) in [
        ("code", "Code", false),
        ("owner", "Owner", false),
        ("", "Status", false),
        ("scans", "Human scans", true),
        ("signups", "Signups", true),
        ("purchases", "Purchases", true),
        ("earnings", "Earnings", true),
    ] {
        let class = if numeric { " class=\"n\"" } else { "" };
        if key.is_empty() {
            let _ = write!(body, "<th scope=\"col\"{class}>{label}</th>");
            continue;
        }
        let (aria, next_dir, arrow) = if key == sort {
            if asc {
                (" aria-sort=\"ascending\"", "desc", " ↑")
            } else {
                (" aria-sort=\"descending\"", "asc", " ↓")
            }
        } else {
            ("", if numeric { "desc" } else { "asc" }, "")
        };
        let _ = write!(
            body,
            "<th scope=\"col\"{class}{aria}><a href=\"/ui/codes?{}\">{label}{arrow}</a></th>",
            esc(&keep(&format!("&sort={key}&dir={next_dir}")))
        );
    }
    body.push_str("</tr></thead><tbody>");
    for (c, r) in shown {
        let (label, class) = status(c, ctx.now_ms);
        let _ = write!(
            body,
            "<tr><td><a href=\"/ui/codes/{}?{}\">{}</a></td><td>{}</td><td><span class=\"badge {class}\">{label}</span></td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&c.code),
            esc(&view.query()),
            esc(&c.code.to_uppercase()),
            esc(&c.owner),
            num(r.human_scans),
            num(r.signups),
            num(r.purchases),
            money_list(&earnings(r)),
        );
    }
    if shown.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No codes match.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    if pages > 1 {
        body.push_str("<nav class=\"pages\" aria-label=\"Pages\">");
        if page > 1 {
            let _ = write!(
                body,
                "<a href=\"/ui/codes?{}\">← Previous</a>",
                esc(&keep(&format!(
                    "&sort={sort}&dir={}&page={}",
                    if asc { "asc" } else { "desc" },
                    page - 1
                )))
            );
        }
        let _ = write!(body, "<span>Page {page} of {pages}</span>");
        if page < pages {
            let _ = write!(
                body,
                "<a href=\"/ui/codes?{}\">Next →</a>",
                esc(&keep(&format!(
                    "&sort={sort}&dir={}&page={}",
                    if asc { "asc" } else { "desc" },
                    page + 1
                )))
            );
        }
        body.push_str("</nav>");
    }
    let _ = write!(
        body,
        "<p class=\"pad\"><a class=\"small\" href=\"/ui/export?report=codes&{}\" download>Download CSV</a></p></section>",
        esc(&view.query())
    );
    html_response(
        StatusCode::OK,
        html::page(&ctx.frame("Codes", "codes"), &body),
    )
}

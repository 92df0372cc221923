//! `/ui/codes/{code}`: one code over a date range: scans over time (human and
//! bot), where they come from, how much of the traffic was bots and why, the
//! links and QR images to share, and the latest conversions.

use super::codes::{query, status};
use super::{analytics_error, bad_query, html_response, not_found};
use crate::chart::{self, Bar};
use crate::html::{self, datetime, esc, money, money_list, num, pct, qv};
use crate::range::{Preset, View};
use crate::{Console, Ctx, Response};
use codelink_analytics::query::{BreakdownRow, Dimension, Interval, Summary};
use codelink_analytics::review::ReviewStatus;
use codelink_shared::CodeRecord;
use http::{header, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::fmt::Write;

/// The code if this caller may see it.
pub fn visible<C: Console>(ctx: &Ctx<'_, C>, raw: &str) -> Option<CodeRecord> {
    let name = raw.to_ascii_lowercase();
    ctx.console.code(&name).filter(|c| ctx.who().sees(&c.owner))
}

/// Link-preview fetchers: a share in a chat or feed, not a person.
const PREVIEWS: &[&str] = &[
    "facebookexternalhit",
    "meta-externalfetcher",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "whatsapp",
    "telegrambot",
    "linkedinbot",
    "iframely",
    "embedly",
    "pinterestbot",
    "skypeuripreview",
    "microsoftpreview",
    "bingpreview",
    "google-web-preview",
    "bluesky",
    "mastodon",
    "snap-url-preview",
    "redditbot",
    "viber",
    "vkshare",
    "kakaotalk-scrap",
];

/// The group a reason (bot or suspect) belongs to, in words.
fn bot_group(reason: &str) -> &'static str {
    match reason {
        "head" => "Link checks (HEAD requests)",
        "prefetch" => "Prefetches",
        "rate" => "Too many hits from one visitor",
        "repeat" => "Suspect: repeats (reloads, double taps)",
        "datacenter" => "Suspect: datacenter addresses",
        r if r.starts_with("suspect:") => "Suspect: headers no browser would send",
        r if r.starts_with("automation:") => "Headless browsers and automation",
        r if r.strip_prefix("ua:").is_some_and(|n| PREVIEWS.contains(&n)) => "Link previews",
        r if r.starts_with("ua:") => "Crawlers and other bots",
        _ => "Other",
    }
}

fn stat(label: &str, value: &str, live: &str, class: &str) -> String {
    let live = if live.is_empty() {
        String::new()
    } else {
        format!(" data-live=\"{live}\"")
    };
    format!("<div class=\"{class}\"><dt>{label}</dt><dd{live}>{value}</dd></div>")
}

fn summary_stats(s: &Summary) -> Vec<(&'static str, String)> {
    vec![
        ("human_scans", num(s.human_scans)),
        (
            "unique_scanners",
            format!(
                "{}{}",
                if s.unique_scanners_exact { "" } else { "≈" },
                num(s.unique_scanners)
            ),
        ),
        ("bot_share", pct(s.bot_inflation, 1.0)),
        ("signups", num(s.signups)),
        ("purchases", num(s.purchases)),
        ("scan_to_signup", pct(s.scan_to_signup, 1.0)),
        ("scan_to_purchase", pct(s.scan_to_purchase, 1.0)),
        ("estimated", money_list(&s.earnings_estimated)),
        ("confirmed", money_list(&s.earnings_confirmed)),
        ("held", money_list(&s.earnings_held)),
        ("bot_scans", num(s.bot_scans)),
        ("suspect_scans", num(s.suspect_scans)),
    ]
}

/// Every bucket of the view (empty ones too, with the analytics' own bucket
/// starts: a day may start at 01:00 where midnight is skipped), with the
/// counted ones filled in.
fn bars(
    view: &View,
    q: &codelink_analytics::query::Query,
    interval: Interval,
    counted: &HashMap<i64, (u64, u64)>,
) -> Vec<Bar> {
    let starts = codelink_analytics::query::bucket_starts(q, interval).unwrap_or_default();
    let multi_day = view.first != view.last;
    starts
        .into_iter()
        .map(|s| {
            let (human, bot) = counted.get(&s).copied().unwrap_or((0, 0));
            let z = jiff::Timestamp::from_second(s)
                .unwrap_or_default()
                .to_zoned(view.tz.clone());
            let label = match interval {
                Interval::Day => z.strftime("%-d %b").to_string(),
                Interval::Hour if multi_day => z.strftime("%-d %b %H:%M").to_string(),
                Interval::Hour => z.strftime("%H:%M").to_string(),
            };
            Bar { label, human, bot }
        })
        .collect()
}

fn breakdown_table(title: &str, rows: &[BreakdownRow], name: impl Fn(&str) -> String) -> String {
    let total: u64 = rows.iter().map(|r| r.human_scans).sum();
    let mut out = format!(
        "<section class=\"card\"><h3>{}</h3><div class=\"scroll\"><table class=\"data compact\"><thead><tr><th scope=\"col\">{}</th>\
         <th scope=\"col\" class=\"n\">Human scans</th><th scope=\"col\" class=\"n\">Signups</th>\
         <th scope=\"col\" class=\"n\">Purchases</th></tr></thead><tbody>",
        esc(title),
        esc(title)
    );
    let mut shown = 0;
    for r in rows
        .iter()
        .filter(|r| r.human_scans + r.signups + r.purchases > 0)
        .take(12)
    {
        shown += 1;
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&name(&r.key)),
            chart::meter(r.human_scans, total, "h"),
            num(r.human_scans),
            num(r.signups),
            num(r.purchases)
        );
    }
    if shown == 0 {
        out.push_str("<tr><td colspan=\"4\">No human scans in this range.</td></tr>");
    }
    out.push_str("</tbody></table></div></section>");
    out
}

pub async fn show<C: Console>(ctx: &Ctx<'_, C>, raw: &str) -> Response {
    let Some(record) = visible(ctx, raw) else {
        return not_found(Some(ctx));
    };
    let code = record.code.clone();
    let view = match View::parse(&ctx.query, ctx.now_ms, ctx.tz.as_deref(), Preset::Days(30)) {
        Ok(v) => v,
        Err(e) => return bad_query(ctx, &e),
    };
    let q = query(ctx, &view, Some(vec![code.clone()]));
    let a = ctx.console.analytics();
    let interval = view.interval();
    // Everything at once: the numbers of the range (one query slot, its
    // parts concurrent) and the latest conversions.
    let dims = [
        Dimension::Channel,
        Dimension::Source,
        Dimension::Device,
        Dimension::InApp,
        Dimension::BotReason,
    ];
    let (overview, recent) = match super::both(
        a.overview(&q, interval, &dims),
        a.recent_conversions(&code, ctx.who().creator(), 10),
    )
    .await
    {
        Ok(both) => both,
        Err(e) => return analytics_error(ctx, e),
    };
    // Flagged rows show where their review stands (rows keep the decision
    // made at ingest): at most 10 reads of the live store.
    let mut reviewed: HashMap<String, ReviewStatus> = HashMap::new();
    for c in recent.iter().filter(|c| c.flagged.is_some()) {
        if let Ok(Some(r)) = a.review(&c.event_id).await {
            reviewed.insert(c.event_id.clone(), r.status);
        }
    }
    let summary = overview.summary;
    let series = overview.timeseries;
    let breakdowns: HashMap<Dimension, Vec<BreakdownRow>> =
        overview.breakdowns.into_iter().collect();
    let counted: HashMap<i64, (u64, u64)> = series
        .iter()
        .filter_map(|b| {
            let t: jiff::Timestamp = b.start.parse().ok()?;
            Some((
                t.as_second(),
                (b.human_scans, b.suspect_scans + b.bot_scans),
            ))
        })
        .collect();
    let upper = code.to_uppercase();
    let (label, class) = status(&record, ctx.now_ms);
    let vq = view.query();
    let live_url = if view.live {
        format!(
            " data-live-url=\"/ui/codes/{}/live?{}\"",
            esc(&code),
            esc(&vq)
        )
    } else {
        String::new()
    };
    let mut body = format!(
        "<div class=\"head\"{live_url}><div><h1>{}<span class=\"badge {class}\">{label}</span></h1>\
         <p class=\"sub\">Owner {} · goes to <span class=\"dest\">{}</span></p></div>",
        esc(&upper),
        esc(&record.owner),
        esc(&record.destination)
    );
    if ctx.is_admin() {
        let (verb, value) = if record.enabled {
            ("Disable", "false")
        } else {
            ("Enable", "true")
        };
        let _ = write!(
            body,
            "<div class=\"actions\"><a class=\"button\" href=\"/ui/codes/{c}/edit\">Edit</a>\
             <form method=\"post\" action=\"/ui/codes/{c}/enabled\" data-confirm=\"{verb} {u}?\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"enabled\" value=\"{value}\">\
             <button type=\"submit\">{verb}</button></form></div>",
            esc(&ctx.csrf),
            c = esc(&code),
            u = esc(&upper)
        );
    }
    body.push_str("</div>");
    body.push_str(&view.picker(&format!("/ui/codes/{}", esc(&code)), &[]));
    let stats = summary_stats(&summary);
    let get = |k: &str| {
        stats
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let _ = write!(
        body,
        "<section aria-labelledby=\"sum\"><h2 id=\"sum\" class=\"visually-hidden\">Summary, {}</h2><dl class=\"tiles\">{}{}{}{}{}{}{}{}{}{}</dl>{}</section>",
        esc(&view.label()),
        stat("Human scans", &get("human_scans"), "human_scans", "tile big"),
        stat("Unique scanners", &get("unique_scanners"), "unique_scanners", "tile"),
        stat("Bot share", &get("bot_share"), "bot_share", "tile"),
        stat("Signups", &get("signups"), "signups", "tile"),
        stat("Purchases", &get("purchases"), "purchases", "tile"),
        stat("Scan → signup", &get("scan_to_signup"), "scan_to_signup", "tile"),
        stat("Scan → purchase", &get("scan_to_purchase"), "scan_to_purchase", "tile"),
        stat("Estimated earnings", &get("estimated"), "estimated", "tile wide"),
        stat("Confirmed earnings", &get("confirmed"), "confirmed", "tile wide"),
        // Only where a fraud check flagged something: earnings held until
        // an admin reviews them (not in the two above).
        if summary.earnings_held.is_empty() {
            String::new()
        } else {
            stat("Held for review", &get("held"), "held", "tile wide")
        },
        if view.live {
            "<p class=\"live\" aria-live=\"polite\"><span class=\"dot\" aria-hidden=\"true\"></span>Live: updates every few seconds</p>"
        } else {
            ""
        }
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Scans over time</h2><p class=\"sub\">{} · per {} · {}</p>{}\
         <p class=\"exports\">CSV: <a href=\"/ui/export?report=timeseries&code={c}&interval={i}&{q}\" download>time series</a> · \
         <a href=\"/ui/export?report=summary&code={c}&{q}\" download>summary</a></p></section>",
        esc(&view.label()),
        interval.as_str(),
        esc(&view.tz_name),
        chart::stacked("Scans over time", &bars(&view, &q, interval, &counted)),
        c = esc(&code),
        i = interval.as_str(),
        q = esc(&vq)
    );
    // Where scans come from.
    body.push_str("<h2 class=\"section\">Where scans come from</h2><div class=\"grid\">");
    let rows = |d: Dimension| breakdowns.get(&d).map(Vec::as_slice).unwrap_or(&[]);
    body.push_str(&breakdown_table("Channel", rows(Dimension::Channel), |k| {
        if k.is_empty() {
            "(bare link)".into()
        } else {
            k.to_string()
        }
    }));
    body.push_str(&breakdown_table(
        "QR, link or bio page",
        rows(Dimension::Source),
        |k| match k {
            "qr" => "QR code".into(),
            "link" => "Link".into(),
            "bio" => "Bio page".into(),
            "" => "(conversions without a scan)".into(),
            other => other.to_string(),
        },
    ));
    body.push_str(&breakdown_table("Device", rows(Dimension::Device), |k| {
        if k.is_empty() {
            "(unknown)".into()
        } else {
            k.to_string()
        }
    }));
    body.push_str(&breakdown_table(
        "In-app browser",
        rows(Dimension::InApp),
        |k| {
            if k.is_empty() {
                "Not in an app".into()
            } else {
                k.to_string()
            }
        },
    ));
    let _ = write!(
        body,
        "</div><p class=\"exports\">CSV: <a href=\"/ui/export?report=breakdown&by=channel&code={c}&{q}\" download>by channel</a> · \
         <a href=\"/ui/export?report=breakdown&by=device&code={c}&{q}\" download>by device</a> · \
         <a href=\"/ui/export?report=breakdown&by=in_app&code={c}&{q}\" download>by in-app browser</a></p>",
        c = esc(&code),
        q = esc(&vq)
    );
    // Channels asked for that the code does not have (live counters, since
    // the start; a failed read only leaves the card out).
    if let Ok(stats) = a.code_stats(&code).await {
        body.push_str(&unknown_channels_section(&stats.unknown_channels));
        body.push_str(&steps_section(&stats.steps));
    }
    body.push_str(&bot_section(&summary, rows(Dimension::BotReason)));
    body.push_str(&share_section(ctx, &record));
    body.push_str(&conversions_section(ctx, &view, &recent, &reviewed));
    html_response(
        StatusCode::OK,
        html::page(&ctx.frame(&upper, "codes"), &body),
    )
}

/// Links followed with a channel the code does not have (a typo in a bio,
/// a channel since removed): they reached the code's own destination.
fn unknown_channels_section(names: &std::collections::BTreeMap<String, u64>) -> String {
    if names.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<(&String, &u64)> = names.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = String::from(
        "<section class=\"card\" aria-labelledby=\"typos\"><h2 id=\"typos\">Channels this code does not have</h2>\
         <p>These links were followed since the start, and the followers were sent to the code's own link. \
         Add the channel, or fix the link where it was shared.</p>\
         <div class=\"scroll\"><table class=\"data compact\"><thead><tr><th scope=\"col\">Asked for</th>\
         <th scope=\"col\" class=\"n\">Hits</th></tr></thead><tbody>",
    );
    for (name, n) in sorted {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
            esc(name),
            num(*n)
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// The follower paths beyond the plain redirect (live counters, since the
/// start): the in-app browser escape page as its own step, and visits while
/// the code was off. Left out while all are zero.
fn steps_section(steps: &codelink_analytics::stats::StepCounts) -> String {
    if steps.gone == 0 && steps.escape_shown == 0 {
        return String::new();
    }
    let mut out = String::from(
        "<section class=\"card\" aria-labelledby=\"steps\"><h2 id=\"steps\">Follower paths</h2>\
         <p>Since the start. Followers in Instagram, Facebook and TikTok can be offered their own \
         browser first, where they are signed in at the shop.</p>\
         <div class=\"scroll\"><table class=\"data compact\"><thead><tr><th scope=\"col\">Step</th>\
         <th scope=\"col\" class=\"n\">Followers</th><th scope=\"col\" class=\"n\">Share</th></tr></thead><tbody>",
    );
    let share = |n: u64| {
        if steps.escape_shown == 0 {
            "–".to_string()
        } else {
            format!("{:.0}%", 100.0 * n as f64 / steps.escape_shown as f64)
        }
    };
    for (label, n, of_shown) in [
        (
            "Shown the “open in your browser” page",
            steps.escape_shown,
            false,
        ),
        ("Opened their own browser", steps.escaped, true),
        ("Went on in the app", steps.continued, true),
        ("Visited while the code was off", steps.gone, false),
    ] {
        if label.starts_with("Visited") && n == 0 {
            continue;
        }
        let _ = write!(
            out,
            "<tr><td>{label}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            num(n),
            if of_shown { share(n) } else { String::new() }
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

fn bot_section(s: &Summary, reasons: &[BreakdownRow]) -> String {
    let all = s.scans;
    let not_human = s.suspect_scans + s.bot_scans;
    // (group, hits, the reasons in it)
    type Group<'a> = (&'static str, u64, Vec<(&'a str, u64)>);
    let mut groups: Vec<Group> = Vec::new();
    for r in reasons.iter().filter(|r| !r.key.is_empty()) {
        let n = r.bot_scans + r.suspect_scans;
        if n == 0 {
            continue;
        }
        let g = bot_group(&r.key);
        match groups.iter_mut().find(|(name, _, _)| *name == g) {
            Some(entry) => {
                entry.1 += n;
                entry.2.push((&r.key, n));
            }
            None => groups.push((g, n, vec![(&r.key, n)])),
        }
    }
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = format!(
        "<section class=\"card\" aria-labelledby=\"bots\"><h2 id=\"bots\">Bot inflation</h2>\
         <p class=\"lead\"><strong data-live=\"bot_share\">{}</strong> of all {} hits were bots \
         (<span data-live=\"bot_scans\">{}</span>) or suspects (<span data-live=\"suspect_scans\">{}</span>: \
         headers no browser would send, datacenter addresses, repeats). They are redirected like anyone, stored, \
         and never counted as scans above.</p>",
        pct(s.bot_inflation, 1.0),
        num(all),
        num(s.bot_scans),
        num(s.suspect_scans)
    );
    if groups.is_empty() {
        out.push_str("<p>No bots or suspects in this range.</p></section>");
        return out;
    }
    out.push_str("<div class=\"scroll\"><table class=\"data compact\"><thead><tr><th scope=\"col\">Why</th><th scope=\"col\" class=\"n\">Hits</th><th scope=\"col\" class=\"n\">Share of all hits</th></tr></thead><tbody>");
    for (name, n, detail) in &groups {
        let names: Vec<String> = detail
            .iter()
            .take(6)
            .map(|(k, v)| {
                let name = k
                    .trim_start_matches("ua:")
                    .trim_start_matches("automation:")
                    .trim_start_matches("suspect:");
                format!("{name} ({})", num(*v))
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}{}<span class=\"detail\">{}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(name),
            chart::meter(*n, not_human, "b"),
            esc(&names.join(", ")),
            num(*n),
            pct(*n as f64, all as f64)
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

fn share_section<C: Console>(ctx: &Ctx<'_, C>, r: &CodeRecord) -> String {
    let base = ctx.console.public_base();
    let code = &r.code;
    let mut out = String::from("<div class=\"grid two\"><section class=\"card\" aria-labelledby=\"links\"><h2 id=\"links\">Links to share</h2><ul class=\"links\">");
    let mut links = vec![(
        String::from("Bare link"),
        format!("{base}/{code}"),
        String::new(),
    )];
    for ch in r.channels.keys() {
        links.push((ch.clone(), format!("{base}/{code}/{ch}"), ch.clone()));
    }
    for (i, (label, url, _)) in links.iter().enumerate() {
        let _ = write!(
            out,
            "<li><label for=\"l{i}\">{}</label><div class=\"copy\"><input id=\"l{i}\" readonly value=\"{}\">\
             <button type=\"button\" data-copy=\"l{i}\">Copy</button></div></li>",
            esc(label),
            esc(url)
        );
    }
    out.push_str("</ul></section>");
    // The QR picker works as a plain GET form; app.js updates it in place.
    let channel = ctx
        .param("qr_channel")
        .filter(|c| r.channels.contains_key(*c))
        .unwrap_or("");
    let size: u32 = ctx
        .param("qr_size")
        .and_then(|s| s.parse().ok())
        .filter(|s| [256, 512, 1024, 2048].contains(s))
        .unwrap_or(1024);
    let format = if ctx.param("qr_format") == Some("svg") {
        "svg"
    } else {
        "png"
    };
    let ch_q = if channel.is_empty() {
        String::new()
    } else {
        format!("&channel={}", qv(channel))
    };
    let file = format!(
        "{code}{}{}-{size}.{format}",
        if channel.is_empty() { "" } else { "-" },
        channel
    );
    let href = format!("/qr/{code}.{format}?size={size}{ch_q}");
    let _ = write!(
        out,
        "<section class=\"card qr\" aria-labelledby=\"qrh\"><h2 id=\"qrh\">QR code</h2>\
         <form method=\"get\" action=\"/ui/codes/{c}\" data-qr=\"{c}\"><div class=\"row\">\
         <label>Channel <select name=\"qr_channel\"><option value=\"\">(bare link)</option>",
        c = esc(code)
    );
    for ch in r.channels.keys() {
        let sel = if ch == channel { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{0}\"{sel}>{0}</option>", esc(ch));
    }
    out.push_str("</select></label><label>Size <select name=\"qr_size\">");
    for s in [256, 512, 1024, 2048] {
        let sel = if s == size { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{s}\"{sel}>{s} px</option>");
    }
    out.push_str("</select></label><label>Format <select name=\"qr_format\">");
    for f in ["png", "svg"] {
        let sel = if f == format { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{f}\"{sel}>{}</option>",
            f.to_uppercase()
        );
    }
    let _ = write!(
        out,
        "</select></label><noscript><button type=\"submit\">Preview</button></noscript></div></form>\
         <img class=\"qr-preview\" src=\"/qr/{c}.svg?size=256{ch}\" alt=\"QR code of {u}{via}\" width=\"200\" height=\"200\">\
         <p><a class=\"button primary\" id=\"qr-download\" href=\"{href}\" download=\"{file}\">Download {F}</a></p></section></div>",
        c = esc(code),
        ch = esc(&ch_q),
        u = esc(&code.to_uppercase()),
        via = if channel.is_empty() { String::new() } else { format!(" for {}", esc(channel)) },
        href = esc(&href),
        file = esc(&file),
        F = format.to_uppercase()
    );
    out
}

fn conversions_section<C: Console>(
    ctx: &Ctx<'_, C>,
    view: &View,
    recent: &[codelink_analytics::event::Conversion],
    reviewed: &HashMap<String, ReviewStatus>,
) -> String {
    let mut out = String::from(
        "<section class=\"card flush\" aria-labelledby=\"conv\"><h2 id=\"conv\" class=\"pad\">Recent conversions</h2>",
    );
    if recent.is_empty() {
        out.push_str("<p class=\"pad\">No signups or purchases yet.</p></section>");
        return out;
    }
    out.push_str(
        "<div class=\"scroll\"><table class=\"data\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">What</th>\
         <th scope=\"col\">Credited by</th><th scope=\"col\">Channel</th><th scope=\"col\" class=\"n\">Amount</th>\
         <th scope=\"col\" class=\"n\">Earnings</th><th scope=\"col\">Status</th></tr></thead><tbody>",
    );
    let hold = ctx.console.hold_ms();
    for c in recent {
        let hour_end = (c.occurred_ms / 3_600_000 + 1) * 3_600_000;
        let confirmed = hour_end + hold <= ctx.now_ms;
        let rule = match c.rule.as_str() {
            "scan_id" => "the scan's link",
            "inherited" => "the customer's signup",
            "visitor" => "the visitor's last scan",
            "code_only" => "the code, typed",
            other => other,
        };
        let amount = if c.currency.is_empty() {
            "–".to_string()
        } else {
            money(&codelink_analytics::query::Money {
                currency: c.currency.clone(),
                amount: i128::from(c.amount),
            })
        };
        // A flagged conversion earns what it held once approved, else 0.
        let review = c
            .flagged
            .as_ref()
            .map(|f| (f.held, reviewed.get(&c.event_id).copied()));
        let earned = match review {
            Some((held, Some(ReviewStatus::Approved))) => held,
            _ => c.earnings,
        };
        let earnings = if c.earnings_currency.is_empty() {
            "–".to_string()
        } else {
            money(&codelink_analytics::query::Money {
                currency: c.earnings_currency.clone(),
                amount: i128::from(earned),
            })
        };
        let (class, label) = match review {
            Some((_, Some(ReviewStatus::Rejected))) => ("off", "Rejected"),
            Some((_, Some(ReviewStatus::Approved))) | None if confirmed => ("on", "Confirmed"),
            Some((_, Some(ReviewStatus::Approved))) | None => ("wait", "Estimated"),
            Some(_) => ("wait", "Held for review"),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><span class=\"badge {}\">{}</span></td></tr>",
            esc(&datetime(c.occurred_ms, &view.tz)),
            esc(c.kind.as_str()),
            esc(rule),
            esc(if c.channel.is_empty() { "–" } else { &c.channel }),
            amount,
            earnings,
            class,
            label
        );
    }
    out.push_str("</tbody></table></div></section>");
    out
}

/// `/ui/codes/{code}/live`: the summary numbers of the page's range, as JSON
/// strings ready to show (app.js polls it while the range reaches now).
pub async fn live<C: Console>(ctx: &Ctx<'_, C>, raw: &str) -> Response {
    let Some(record) = visible(ctx, raw) else {
        return not_found(Some(ctx));
    };
    let view = match View::parse(&ctx.query, ctx.now_ms, ctx.tz.as_deref(), Preset::Days(30)) {
        Ok(v) => v,
        Err(e) => return bad_query(ctx, &e),
    };
    let q = query(ctx, &view, Some(vec![record.code.clone()]));
    let summary = match ctx.console.analytics().summary(&q).await {
        Ok(s) => s,
        Err(e) => {
            let mut resp = super::html_response(StatusCode::SERVICE_UNAVAILABLE, format!("{e}"));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    let map: serde_json::Map<String, serde_json::Value> = summary_stats(&summary)
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
    let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        serde_json::Value::Object(map).to_string(),
    )));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

//! `codelink report`: a code's summary and a breakdown, as tables in the
//! terminal, read from a running gateway's analytics API.

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The code to report on (all codes the key may see when absent).
    #[arg(long)]
    pub code: Option<String>,
    /// Start, RFC 3339 (default: 30 days before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// End, RFC 3339, exclusive (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Time zone for days, e.g. Europe/Berlin.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// Breakdown dimension: channel, source, bot_reason, country, device,
    /// browser, os, in_app, referrer, verdict, route.
    #[arg(long, default_value = "channel")]
    pub by: String,
    #[command(flatten)]
    pub remote: crate::remote::Remote,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let key = crate::remote::key_or_admin(&args.remote)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("tz", &args.tz);
    if let Some(c) = &args.code {
        query.append_pair("code", c);
    }
    if let Some(f) = &args.from {
        query.append_pair("from", f);
    }
    if let Some(t) = &args.to {
        query.append_pair("to", t);
    }
    let query = query.finish();
    let summary = get(
        &args.remote.url,
        &key,
        &format!("/api/v1/analytics/summary?{query}"),
    )
    .await?;
    let breakdown = get(
        &args.remote.url,
        &key,
        &format!("/api/v1/analytics/breakdown?{query}&by={}", args.by),
    )
    .await?;
    print!("{}", render(&args, &summary, &breakdown));
    Ok(())
}

/// The two tables, as text.
pub fn render(args: &ReportArgs, summary: &Value, breakdown: &Value) -> String {
    let s = &summary["summary"];
    let q = &summary["query"];
    let mut out = format!(
        "codelink report — {} — {} to {} ({})\n\n",
        args.code.as_deref().unwrap_or("all codes"),
        q["from"].as_str().unwrap_or("?"),
        q["to"].as_str().unwrap_or("?"),
        q["tz"].as_str().unwrap_or("UTC"),
    );
    let money = |v: &Value| -> String {
        let items: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        format!(
                            "{} {}",
                            minor(m["amount"].as_i64().unwrap_or(0)),
                            m["currency"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if items.is_empty() {
            "-".into()
        } else {
            items.join(", ")
        }
    };
    let num = |k: &str| s[k].as_u64().map_or("-".into(), |n| n.to_string());
    let pct = |k: &str| {
        s[k].as_f64()
            .map_or("-".into(), |f| format!("{:.2} %", f * 100.0))
    };
    let rows = vec![
        vec!["scans (human)".to_string(), num("human_scans")],
        vec![
            "  from QR / link".into(),
            format!("{} / {}", num("qr_scans"), num("link_scans")),
        ],
        vec!["scans (suspect)".into(), num("suspect_scans")],
        vec!["scans (bot)".into(), num("bot_scans")],
        vec![
            "unique scanners".into(),
            format!(
                "{}{}",
                approx(&s["unique_scanners_exact"]),
                num("unique_scanners")
            ),
        ],
        vec!["signups".into(), num("signups")],
        vec!["purchases".into(), num("purchases")],
        vec!["refunds".into(), num("refunds")],
        vec!["revenue".into(), money(&s["revenue"])],
        vec![
            "earnings (estimated)".into(),
            money(&s["earnings_estimated"]),
        ],
        vec![
            "earnings (confirmed)".into(),
            money(&s["earnings_confirmed"]),
        ],
        vec!["scan → signup".into(), pct("scan_to_signup")],
        vec!["scan → purchase".into(), pct("scan_to_purchase")],
        vec![
            "median scan → signup".into(),
            s["median_scan_to_signup_secs"]
                .as_f64()
                .map_or("-".into(), duration),
        ],
    ];
    out.push_str(&table(&["metric", "value"], &rows));
    out.push('\n');
    let mut rows = Vec::new();
    for r in breakdown["rows"].as_array().into_iter().flatten() {
        let key = r["key"].as_str().unwrap_or("");
        rows.push(vec![
            if key.is_empty() {
                "(none)".to_string()
            } else {
                key.to_string()
            },
            r["human_scans"].to_string(),
            r["suspect_scans"].to_string(),
            r["bot_scans"].to_string(),
            format!(
                "{}{}",
                approx(&r["unique_scanners_exact"]),
                r["unique_scanners"]
            ),
            r["signups"].to_string(),
            r["purchases"].to_string(),
            money(&r["earnings"]),
        ]);
    }
    let by = args.by.as_str();
    out.push_str(&table(
        &[
            by,
            "human scans",
            "suspect",
            "bot scans",
            "unique",
            "signups",
            "purchases",
            "earnings",
        ],
        &rows,
    ));
    out
}

/// `≈ ` before an estimated count (see README: exact up to 100).
fn approx(exact: &Value) -> &'static str {
    if exact.as_bool() == Some(false) {
        "≈ "
    } else {
        ""
    }
}

fn minor(amount: i64) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{:.1} h", secs / 3600.0),
        _ => format!("{:.1} days", secs / 86_400.0),
    }
}

/// A plain text table: columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One GET; the JSON body, or the API's error.
async fn get(base: &str, key: &str, path_and_query: &str) -> anyhow::Result<Value> {
    let (status, body) =
        crate::remote::call(base, key, http::Method::GET, path_and_query, None).await?;
    if !status.is_success() {
        bail!("{}", crate::remote::error_message(status, &body));
    }
    serde_json::from_slice(&body)
        .map_err(|_| anyhow!("{status}: {}", String::from_utf8_lossy(&body)))
}

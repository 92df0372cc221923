//! The admin's code forms: create, edit (destination, owner, expiry,
//! channels, commission plan, attribution window) and disable/enable. The
//! server's own validation messages show next to the field they are about.

use super::{html_response, not_found, redirect};
use crate::console::ConsoleError;
use crate::form::Form;
use crate::html::{self, decimals, esc};
use crate::{Console, Ctx, Response};
use codelink_shared::{CodeChange, CodeRecord, CommissionPlan, Utm};
use http::StatusCode;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Empty channel rows offered below the existing ones.
const SPARE_ROWS: usize = 3;
const UTM: [(&str, &str); 4] = [
    ("source", "utm_source"),
    ("medium", "utm_medium"),
    ("campaign", "utm_campaign"),
    ("content", "utm_content"),
];

/// Field values as typed, and the errors to show next to them.
#[derive(Default)]
struct State {
    values: HashMap<String, String>,
    errors: BTreeMap<&'static str, String>,
    rows: usize,
}

impl State {
    fn v(&self, k: &str) -> &str {
        self.values.get(k).map_or("", String::as_str)
    }

    fn of_record(r: &CodeRecord) -> Self {
        let mut s = State::default();
        let mut put = |k: &str, v: String| {
            s.values.insert(k.to_string(), v);
        };
        put("code", r.code.clone());
        put("destination", r.destination.clone());
        put("owner", r.owner.clone());
        put(
            "expires_at",
            r.expires_at
                .and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| t.strftime("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default(),
        );
        put("window", r.attribution_window_days.to_string());
        if r.enabled {
            put("enabled", "on".into());
        }
        if let Some(p) = &r.commission {
            put("currency", p.currency.clone());
            put("signup", minor_to_major(p.signup_flat, &p.currency));
            put("percent", bps_to_percent(p.purchase_bps));
            put(
                "cap",
                p.cap
                    .map(|c| minor_to_major(c, &p.currency))
                    .unwrap_or_default(),
            );
        }
        for (i, (name, utm)) in r.channels.iter().enumerate() {
            put(&format!("ch{i}_name"), name.clone());
            for (short, key) in UTM {
                let v = utm
                    .pairs()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string());
                put(&format!("ch{i}_{short}"), v.unwrap_or_default());
            }
        }
        s.rows = r.channels.len() + SPARE_ROWS;
        s
    }

    fn of_form(form: &Form) -> Self {
        let mut s = State::default();
        let rows: usize = form.get("rows").parse().unwrap_or(SPARE_ROWS).min(300);
        let mut keys = vec![
            "code",
            "destination",
            "owner",
            "expires_at",
            "window",
            "enabled",
            "currency",
            "signup",
            "percent",
            "cap",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        for i in 0..rows {
            keys.push(format!("ch{i}_name"));
            for (short, _) in UTM {
                keys.push(format!("ch{i}_{short}"));
            }
        }
        for k in keys {
            if form.has(&k) {
                // UTM values are kept exactly as typed, as the API keeps them;
                // a destination with spaces is refused with a message.
                let exact = k == "destination" || (k.starts_with("ch") && !k.ends_with("_name"));
                let v = if exact { form.raw(&k) } else { form.get(&k) };
                s.values.insert(k.clone(), v.to_string());
            }
        }
        s.rows = rows;
        s
    }
}

fn minor_to_major(minor: u64, currency: &str) -> String {
    let d = decimals(currency);
    if d == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(d);
    format!("{}.{:0w$}", minor / scale, minor % scale, w = d as usize)
}

fn bps_to_percent(bps: u32) -> String {
    if bps.is_multiple_of(100) {
        (bps / 100).to_string()
    } else {
        format!("{}.{:02}", bps / 100, bps % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

/// `"12.5"` with `places` decimals at most → 1250 (for 2 places).
fn parse_decimal(raw: &str, places: u32) -> Option<u64> {
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > places as usize {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_val: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let frac_scaled = frac_val * 10u64.pow(places - frac.len() as u32);
    whole
        .checked_mul(10u64.pow(places))?
        .checked_add(frac_scaled)
}

/// What the form says, or the fields it cannot be read from.
struct Parsed {
    destination: String,
    owner: String,
    expires_at: Option<i64>,
    window: u32,
    enabled: bool,
    commission: Option<CommissionPlan>,
    channels: BTreeMap<String, Utm>,
}

fn parse(s: &mut State) -> Option<Parsed> {
    let expires_at = match s.v("expires_at") {
        "" => None,
        raw => match raw
            .parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        {
            Some(z) => Some(z.timestamp().as_second()),
            None => {
                s.errors.insert(
                    "expires_at",
                    "Enter a date and time such as 2027-01-31 23:59.".into(),
                );
                None
            }
        },
    };
    let window = match s.v("window") {
        "" => codelink_shared::record::DEFAULT_WINDOW_DAYS,
        raw => raw.parse().unwrap_or_else(|_| {
            s.errors.insert(
                "attribution_window_days",
                "Enter a whole number of days, from 1 to 365.".into(),
            );
            0
        }),
    };
    let currency = s.v("currency").to_ascii_uppercase();
    let commission = if currency.is_empty()
        && s.v("signup").is_empty()
        && s.v("percent").is_empty()
        && s.v("cap").is_empty()
    {
        None
    } else {
        let d = decimals(&currency);
        let money = |raw: &str| {
            if raw.is_empty() {
                Some(0)
            } else {
                parse_decimal(raw, d)
            }
        };
        let signup = money(s.v("signup"));
        let bps = if s.v("percent").is_empty() {
            Some(0)
        } else {
            parse_decimal(s.v("percent"), 2)
        };
        let cap = if s.v("cap").is_empty() {
            Some(None)
        } else {
            parse_decimal(s.v("cap"), d).map(Some)
        };
        match (signup, bps.and_then(|b| u32::try_from(b).ok()), cap) {
            (Some(signup_flat), Some(purchase_bps), Some(cap)) => Some(CommissionPlan {
                currency,
                signup_flat,
                purchase_bps,
                cap,
            }),
            _ => {
                s.errors.insert(
                    "commission",
                    format!(
                        "Amounts are numbers such as 2.50 (at most {d} decimals for this currency), the share a percentage such as 10 or 12.5."
                    ),
                );
                None
            }
        }
    };
    let mut channels = BTreeMap::new();
    for i in 0..s.rows {
        let name = s.v(&format!("ch{i}_name")).to_string();
        let mut utm = Utm::default();
        for (short, key) in UTM {
            let v = s.v(&format!("ch{i}_{short}"));
            let v = (!v.is_empty()).then(|| v.to_string());
            match key {
                "utm_source" => utm.utm_source = v,
                "utm_medium" => utm.utm_medium = v,
                "utm_campaign" => utm.utm_campaign = v,
                _ => utm.utm_content = v,
            }
        }
        if name.is_empty() {
            if utm != Utm::default() {
                s.errors.insert(
                    "channels",
                    format!("Row {} has UTM values but no channel name.", i + 1),
                );
            }
            continue;
        }
        if channels.insert(name.to_ascii_lowercase(), utm).is_some() {
            s.errors
                .insert("channels", format!("Channel '{name}' is given twice."));
        }
    }
    if !s.errors.is_empty() {
        return None;
    }
    Some(Parsed {
        destination: s.v("destination").to_string(),
        owner: s.v("owner").to_string(),
        expires_at,
        window,
        enabled: s.values.contains_key("enabled"),
        commission,
        channels,
    })
}

fn field(
    s: &State,
    name: &str,
    error_key: &'static str,
    label: &str,
    input: &str,
    hint: &str,
) -> String {
    let error = s.errors.get(error_key);
    let described = match (error, hint.is_empty()) {
        (Some(_), _) => format!(" aria-invalid=\"true\" aria-describedby=\"{name}-error\""),
        (None, false) => format!(" aria-describedby=\"{name}-hint\""),
        _ => String::new(),
    };
    let input = input.replacen(
        "<input",
        &format!("<input id=\"{name}\" name=\"{name}\"{described}"),
        1,
    );
    let mut out = format!("<div class=\"field\"><label for=\"{name}\">{label}</label>{input}");
    if !hint.is_empty() {
        let _ = write!(out, "<p class=\"hint\" id=\"{name}-hint\">{hint}</p>");
    }
    if let Some(e) = error {
        let _ = write!(
            out,
            "<p class=\"field-error\" id=\"{name}-error\">{}</p>",
            esc(e)
        );
    }
    out.push_str("</div>");
    out
}

fn form_page<C: Console>(ctx: &Ctx<'_, C>, s: &State, existing: Option<&CodeRecord>) -> String {
    let (title, action) = match existing {
        Some(r) => (
            format!("Edit {}", r.code.to_uppercase()),
            format!("/ui/codes/{}", r.code),
        ),
        None => ("New code".to_string(), "/ui/codes".to_string()),
    };
    let mut body = format!("<div class=\"head\"><h1>{}</h1></div>", esc(&title));
    if !s.errors.is_empty() {
        let _ = write!(
            body,
            "<div class=\"alert\" role=\"alert\"><h2>Please fix {} below</h2><ul>",
            if s.errors.len() == 1 {
                "one field".to_string()
            } else {
                format!("{} fields", s.errors.len())
            }
        );
        for (k, e) in &s.errors {
            let _ = write!(
                body,
                "<li><a href=\"#{}\">{}: {}</a></li>",
                anchor(k),
                label(k),
                esc(e)
            );
        }
        body.push_str("</ul></div>");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\" class=\"card form\" novalidate>\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"rows\" value=\"{}\">\
         <h2>The code</h2>",
        esc(&action),
        esc(&ctx.csrf),
        s.rows
    );
    if existing.is_none() {
        body.push_str(&field(
            s,
            "code",
            "code",
            "Code",
            &format!(
                "<input value=\"{}\" required autocomplete=\"off\" spellcheck=\"false\">",
                esc(s.v("code"))
            ),
            "What followers type at checkout, e.g. ALICE10: letters, digits, - and _.",
        ));
    }
    body.push_str(&field(s, "destination", "destination", "Destination", &format!("<input type=\"url\" value=\"{}\" required placeholder=\"https://shop.example/signup\">", esc(s.v("destination"))), "Where the link and the QR code send followers."));
    body.push_str(&field(
        s,
        "owner",
        "owner",
        "Owner (creator handle)",
        &format!(
            "<input value=\"{}\" required autocomplete=\"off\" spellcheck=\"false\">",
            esc(s.v("owner"))
        ),
        "",
    ));
    body.push_str(&field(
        s,
        "expires_at",
        "expires_at",
        "Expires (UTC, optional)",
        &format!(
            "<input type=\"datetime-local\" value=\"{}\">",
            esc(s.v("expires_at"))
        ),
        "",
    ));
    body.push_str(&field(
        s,
        "window",
        "attribution_window_days",
        "Attribution window (days)",
        &format!(
            "<input type=\"number\" min=\"1\" max=\"365\" value=\"{}\">",
            esc(s.v("window"))
        ),
        "How long after a scan a signup or purchase is still credited to it.",
    ));
    if existing.is_some() {
        let checked = if s.values.contains_key("enabled") {
            " checked"
        } else {
            ""
        };
        let _ = write!(body, "<div class=\"field check\"><input type=\"checkbox\" id=\"enabled\" name=\"enabled\"{checked}><label for=\"enabled\">Active (the link redirects)</label></div>");
    } else {
        body.push_str("<input type=\"hidden\" name=\"enabled\" value=\"on\">");
    }
    body.push_str("<h2>Commission plan</h2><p class=\"hint\">Leave empty for no commission.</p>");
    let err = s.errors.get("commission");
    let aria = if err.is_some() {
        " aria-invalid=\"true\" aria-describedby=\"commission-error\""
    } else {
        ""
    };
    let _ = write!(
        body,
        "<fieldset id=\"commission\" class=\"row4\"><legend class=\"visually-hidden\">Commission plan</legend>\
         <div class=\"field\"><label for=\"currency\">Currency</label><input id=\"currency\" name=\"currency\" value=\"{}\" maxlength=\"3\" placeholder=\"EUR\" autocomplete=\"off\"{aria}></div>\
         <div class=\"field\"><label for=\"signup\">Per signup</label><input id=\"signup\" name=\"signup\" inputmode=\"decimal\" value=\"{}\" placeholder=\"2.00\"{aria}></div>\
         <div class=\"field\"><label for=\"percent\">Share of purchases (%)</label><input id=\"percent\" name=\"percent\" inputmode=\"decimal\" value=\"{}\" placeholder=\"10\"{aria}></div>\
         <div class=\"field\"><label for=\"cap\">Cap per conversion</label><input id=\"cap\" name=\"cap\" inputmode=\"decimal\" value=\"{}\" placeholder=\"50.00\"{aria}></div></fieldset>",
        esc(s.v("currency")),
        esc(s.v("signup")),
        esc(s.v("percent")),
        esc(s.v("cap"))
    );
    if let Some(e) = err {
        let _ = write!(
            body,
            "<p class=\"field-error\" id=\"commission-error\">{}</p>",
            esc(e)
        );
    }
    body.push_str("<h2>Channels</h2><p class=\"hint\">One link per place you share it (yt, bio, tiktok…), each adding its UTM parameters. Clear a name to remove a channel.</p>");
    let err = s.errors.get("channels");
    let _ = write!(
        body,
        "<fieldset id=\"channels\"{}><legend class=\"visually-hidden\">Channels</legend>",
        if err.is_some() {
            " aria-describedby=\"channels-error\""
        } else {
            ""
        }
    );
    if let Some(e) = err {
        let _ = write!(
            body,
            "<p class=\"field-error\" id=\"channels-error\">{}</p>",
            esc(e)
        );
    }
    for i in 0..s.rows {
        let _ = write!(
            body,
            "<div class=\"channel\"><div class=\"field\"><label for=\"ch{i}_name\">Channel {}</label><input id=\"ch{i}_name\" name=\"ch{i}_name\" value=\"{}\" autocomplete=\"off\" spellcheck=\"false\"></div>",
            i + 1,
            esc(s.v(&format!("ch{i}_name")))
        );
        for (short, key) in UTM {
            let _ = write!(
                body,
                "<div class=\"field\"><label for=\"ch{i}_{short}\">{key}</label><input id=\"ch{i}_{short}\" name=\"ch{i}_{short}\" value=\"{}\" autocomplete=\"off\"></div>",
                esc(s.v(&format!("ch{i}_{short}")))
            );
        }
        body.push_str("</div>");
    }
    let cancel = existing.map_or("/ui/codes".to_string(), |r| format!("/ui/codes/{}", r.code));
    let _ = write!(
        body,
        "</fieldset><div class=\"buttons\"><button type=\"submit\" class=\"primary\">{}</button><a href=\"{}\">Cancel</a></div></form>",
        if existing.is_some() { "Save changes" } else { "Create code" },
        esc(&cancel)
    );
    html::page(&ctx.frame(&title, "codes"), &body)
}

/// What the form calls a field an error names.
fn label(field: &str) -> &'static str {
    match field {
        "code" => "Code",
        "destination" => "Destination",
        "owner" => "Owner",
        "expires_at" => "Expires",
        "attribution_window_days" => "Attribution window",
        "commission" => "Commission plan",
        "channels" => "Channels",
        _ => "Field",
    }
}

/// The id of the input an error's field names.
fn anchor(field: &str) -> &str {
    match field {
        "attribution_window_days" => "window",
        other => other,
    }
}

/// Puts a refused action's message next to its field.
fn place(s: &mut State, e: ConsoleError) -> Option<StatusCode> {
    match e {
        ConsoleError::Invalid(v) => {
            let key = match v.field {
                "code"
                | "destination"
                | "owner"
                | "expires_at"
                | "channels"
                | "commission"
                | "attribution_window_days" => v.field,
                _ => "destination",
            };
            s.errors.insert(key, v.message);
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        }
        ConsoleError::Conflict(_) => {
            s.errors
                .insert("code", "This code is taken: pick another.".into());
            Some(StatusCode::CONFLICT)
        }
        _ => None,
    }
}

pub fn new_form<C: Console>(ctx: &Ctx<'_, C>) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    let mut s = State {
        rows: SPARE_ROWS,
        ..State::default()
    };
    s.values.insert(
        "window".into(),
        codelink_shared::record::DEFAULT_WINDOW_DAYS.to_string(),
    );
    s.values.insert("enabled".into(), "on".into());
    html_response(StatusCode::OK, form_page(ctx, &s, None))
}

pub async fn create<C: Console>(ctx: &Ctx<'_, C>, form: &Form) -> Response {
    if !ctx.is_admin() {
        return not_found(Some(ctx));
    }
    let mut s = State::of_form(form);
    s.values.insert("enabled".into(), "on".into());
    let Some(p) = parse(&mut s) else {
        return html_response(StatusCode::UNPROCESSABLE_ENTITY, form_page(ctx, &s, None));
    };
    let record = CodeRecord {
        code: s.v("code").to_string(),
        destination: p.destination,
        owner: p.owner,
        expires_at: p.expires_at,
        enabled: true,
        channels: p.channels,
        commission: p.commission,
        attribution_window_days: p.window,
        qr: None,
        qr_logo: None,
        routes: Vec::new(),
        created_at: 0,
        updated_at: 0,
        ..CodeRecord::default()
    };
    match ctx.console.create_code(record).await {
        Ok(r) => redirect(&format!("/ui/codes/{}", r.code)),
        Err(e) => match place(&mut s, e.clone()) {
            Some(status) => html_response(status, form_page(ctx, &s, None)),
            None => super::unavailable(&e),
        },
    }
}

pub fn edit_form<C: Console>(ctx: &Ctx<'_, C>, raw: &str) -> Response {
    let record = match (ctx.is_admin(), ctx.console.code(&raw.to_ascii_lowercase())) {
        (true, Some(r)) => r,
        _ => return not_found(Some(ctx)),
    };
    html_response(
        StatusCode::OK,
        form_page(ctx, &State::of_record(&record), Some(&record)),
    )
}

pub async fn update<C: Console>(ctx: &Ctx<'_, C>, raw: &str, form: &Form) -> Response {
    let record = match (ctx.is_admin(), ctx.console.code(&raw.to_ascii_lowercase())) {
        (true, Some(r)) => r,
        _ => return not_found(Some(ctx)),
    };
    let mut s = State::of_form(form);
    let Some(p) = parse(&mut s) else {
        return html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_page(ctx, &s, Some(&record)),
        );
    };
    // An unchanged expiry in the past (an expired code) is kept as it is.
    let expires_at = if p.expires_at.map(|t| t / 60) == record.expires_at.map(|t| t / 60) {
        None
    } else {
        Some(p.expires_at)
    };
    let change = CodeChange {
        destination: Some(p.destination),
        owner: Some(p.owner),
        expires_at,
        enabled: Some(p.enabled),
        channels: Some(p.channels),
        commission: Some(p.commission),
        attribution_window_days: Some(p.window),
        // The QR preset, the routing rules and the follower paths (fallback
        // URL, app links, in-app escape, visitor token) are set through the
        // API; the form keeps them.
        ..CodeChange::default()
    };
    match ctx.console.change_code(&record.code, change).await {
        Ok(r) => redirect(&format!("/ui/codes/{}", r.code)),
        Err(e) => match place(&mut s, e.clone()) {
            Some(status) => html_response(status, form_page(ctx, &s, Some(&record))),
            None => super::unavailable(&e),
        },
    }
}

pub async fn set_enabled<C: Console>(ctx: &Ctx<'_, C>, raw: &str, form: &Form) -> Response {
    let record = match (ctx.is_admin(), ctx.console.code(&raw.to_ascii_lowercase())) {
        (true, Some(r)) => r,
        _ => return not_found(Some(ctx)),
    };
    let change = CodeChange {
        enabled: Some(form.get("enabled") == "true"),
        ..CodeChange::default()
    };
    match ctx.console.change_code(&record.code, change).await {
        Ok(r) => redirect(&format!("/ui/codes/{}", r.code)),
        Err(e) => super::unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("2", 2), Some(200));
        assert_eq!(parse_decimal("2.5", 2), Some(250));
        assert_eq!(parse_decimal(".75", 2), Some(75));
        assert_eq!(parse_decimal("12.345", 2), None);
        assert_eq!(parse_decimal("1e3", 2), None);
        assert_eq!(parse_decimal("-1", 2), None);
        assert_eq!(parse_decimal("", 2), None);
        assert_eq!(minor_to_major(250, "EUR"), "2.50");
        assert_eq!(minor_to_major(250, "JPY"), "250");
        assert_eq!(bps_to_percent(1000), "10");
        assert_eq!(bps_to_percent(1250), "12.5");
        assert_eq!(bps_to_percent(1), "0.01");
    }
}

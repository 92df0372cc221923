//! The page template and the small pieces every page uses: escaping, numbers,
//! money and dates as people read them.

use codelink_analytics::query::Money;
use codelink_shared::Principal;
use std::fmt::Write;

pub const CSS: &str = include_str!("../assets/app.css");
pub const JS: &str = include_str!("../assets/app.js");

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn qv(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `12,345`.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2.6 %` (one decimal; `–` when there is nothing to divide by).
pub fn pct(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        return "–".into();
    }
    let p = part / whole * 100.0;
    if p > 0.0 && p < 0.1 {
        "<0.1 %".into()
    } else {
        format!("{p:.1} %")
    }
}

pub use codelink_shared::currency::minor_digits as decimals;

/// `EUR 1,234.50` from minor units.
pub fn money(m: &Money) -> String {
    let d = decimals(&m.currency);
    let scale = 10i128.pow(d);
    let sign = if m.amount < 0 { "−" } else { "" };
    let abs = m.amount.unsigned_abs();
    let whole = num(u64::try_from(abs / scale as u128).unwrap_or(u64::MAX));
    if d == 0 {
        format!("{sign}{} {whole}", m.currency)
    } else {
        let frac = abs % scale as u128;
        format!("{sign}{} {whole}.{frac:0w$}", m.currency, w = d as usize)
    }
}

/// A money list, or `–` when empty.
pub fn money_list(list: &[Money]) -> String {
    if list.is_empty() {
        return "–".into();
    }
    list.iter().map(money).collect::<Vec<_>>().join(" · ")
}

/// `2026-11-28 14:05` in `tz` from Unix ms.
pub fn datetime(ms: u64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// What a page needs to draw the frame around its content.
pub struct Frame<'a> {
    pub title: &'a str,
    pub who: Option<&'a Principal>,
    pub csrf: &'a str,
    /// Which nav entry is current.
    pub nav: &'a str,
}

/// Changes whenever an asset does (assets are cached for a year); computed
/// once.
pub fn asset_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let digest = crate::crypto::hmac(b"assets", format!("{CSS}{JS}").as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The whole page around `body`.
pub fn page(frame: &Frame, body: &str) -> String {
    let v = asset_version();
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · codelink</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/ui/assets/app.css?v={v}\">\
         <script src=\"/ui/assets/app.js?v={v}\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/ui/\">code<b>link</b></a>",
        esc(frame.title)
    );
    if let Some(who) = frame.who {
        let mut links: Vec<(&str, &str, &str)> = vec![(
            "codes",
            "/ui/codes",
            if *who == Principal::Admin {
                "Codes"
            } else {
                "My codes"
            },
        )];
        links.push(("funnel", "/ui/funnel", "Funnel"));
        if *who == Principal::Admin {
            links.push(("keys", "/ui/keys", "Keys"));
            links.push(("reviews", "/ui/reviews", "Reviews"));
        }
        links.push(("integrations", "/ui/integrations", "Integrations"));
        out.push_str("<nav aria-label=\"Main\"><ul>");
        for (id, href, label) in links {
            let current = if id == frame.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        out.push_str("</ul></nav>");
        let name = match who {
            Principal::Admin => "admin".to_string(),
            Principal::Creator(c) => c.clone(),
            Principal::Ingest => String::new(),
        };
        let _ = write!(
            out,
            "<form class=\"signout\" method=\"post\" action=\"/ui/sign-out\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <span class=\"who\">{}</span><button type=\"submit\" class=\"link\">Sign out</button></form>",
            esc(frame.csrf),
            esc(&name)
        );
    }
    let _ = write!(
        out,
        "</header><main id=\"main\">{body}</main></body></html>"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(0), "0");
        assert_eq!(num(1234), "1,234");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(pct(1.0, 3.0), "33.3 %");
        assert_eq!(pct(1.0, 0.0), "–");
        let m = |c: &str, a: i128| Money {
            currency: c.into(),
            amount: a,
        };
        assert_eq!(money(&m("EUR", 123_450)), "EUR 1,234.50");
        assert_eq!(money(&m("EUR", -5)), "−EUR 0.05");
        assert_eq!(money(&m("JPY", 1200)), "JPY 1,200");
        assert_eq!(money(&m("KWD", 1)), "KWD 0.001");
        assert_eq!(money(&m("CLF", 12_345)), "CLF 1.2345");
    }
}

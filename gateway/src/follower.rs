//! Follower paths beyond the plain 302, all answered from the code table
//! without awaiting: the page of a disabled or expired code, the in-app
//! browser escape page and its follow-ups, app deep links, and the opt-in
//! visitor token on the destination.

use crate::client::Device;
use crate::codes::{CompiledCode, Gone, Target};
use crate::response::{self, Response};
use codelink_analytics::event::Step;
use codelink_dashboards::esc;
use codelink_shared::AndroidFallback;
use http::{header, HeaderValue, StatusCode};
use url::form_urlencoded::byte_serialize;

/// Query parameter of the escape page's "open in your browser" link.
pub const ESCAPED_PARAM: &str = "cl_esc";
/// Query parameter of the escape page's "continue here" link.
pub const CONTINUED_PARAM: &str = "cl_cont";
/// Query parameter of the opt-in visitor token on the destination.
pub const VISITOR_PARAM: &str = "cl_vid";

/// In-app browsers that get the escape page: they keep their own cookie jar,
/// so a follower is signed out of the shop there and checkout is lost.
pub const ESCAPE_APPS: &[&str] = &["instagram", "facebook", "messenger", "tiktok"];

/// A follow-up from the escape page: which step, and the scan token it
/// carries (checked by the caller). Only looked for when the query names
/// one of the two parameters.
pub fn follow_up(query: Option<&str>) -> Option<(Step, &str)> {
    let query = query?;
    if !query.contains("cl_") {
        return None;
    }
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        match key {
            ESCAPED_PARAM => Some((Step::Escaped, value)),
            CONTINUED_PARAM => Some((Step::Continued, value)),
            _ => None,
        }
    })
}

/// Where one scan goes: the shop's app when the code has an app link for the
/// follower's device, else `target` (the channel's, or a rule's). The scan
/// token (and `visitor_token`, for codes that opted in) rides along either way.
pub fn location(
    code: &CompiledCode,
    channel: &str,
    target: &Target,
    device: Device,
    scan_param: &str,
    token: &str,
    visitor_token: Option<&str>,
) -> String {
    let apps = code.apps.as_ref();
    match (device, apps) {
        (Device::Ios, Some(apps)) => {
            if let Some(ios) = &apps.ios {
                return with_params(
                    &code.target_on(ios, channel, scan_param),
                    scan_param,
                    token,
                    visitor_token,
                );
            }
        }
        (Device::Android, Some(apps)) => {
            if let Some(android) = &apps.android {
                let web = code.target_on(&android.url, channel, scan_param);
                let web = with_params(&web, scan_param, token, visitor_token);
                let fallback = match android.fallback {
                    AndroidFallback::Web => web.clone(),
                    AndroidFallback::Store => {
                        // The Play Store hands `referrer` to the app after
                        // install (Install Referrer API): the scan survives it.
                        let referrer: String =
                            byte_serialize(format!("{scan_param}={token}").as_bytes()).collect();
                        format!(
                            "https://play.google.com/store/apps/details?id={}&referrer={referrer}",
                            android.package
                        )
                    }
                };
                return intent(&web, &android.package, &fallback);
            }
        }
        _ => {}
    }
    with_params(target, scan_param, token, visitor_token)
}

fn with_params(target: &Target, scan_param: &str, token: &str, visitor: Option<&str>) -> String {
    match visitor {
        None => target.location(scan_param, token),
        Some(v) => target.location_with(scan_param, token, VISITOR_PARAM, v),
    }
}

/// `intent://host/path?query#Intent;scheme=https;package=…;S.browser_fallback_url=…;end`:
/// Android opens the app when installed, else the fallback.
fn intent(https_url: &str, package: &str, fallback: &str) -> String {
    let (scheme, rest) = https_url.split_once("://").unwrap_or(("https", https_url));
    // The URL's own fragment cannot sit before `#Intent`.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let fallback: String = byte_serialize(fallback.as_bytes()).collect();
    format!(
        "intent://{rest}#Intent;scheme={scheme};package={package};S.browser_fallback_url={fallback};end"
    )
}

/// The page of a disabled or expired code without a fallback URL: the code
/// in large type, so a follower can still type it at checkout.
pub fn gone_page(code: &str, gone: Gone) -> Response {
    let why = match gone {
        Gone::Disabled => "This link has been turned off by its owner.",
        Gone::Expired => "This link has expired.",
    };
    let upper = code.to_ascii_uppercase();
    let body = page(
        "Link no longer active",
        &format!(
            "<h1>Link no longer active</h1><p>{why}</p>\
             <p>If the shop still takes it, you can type the creator code at checkout:</p>\
             <p class=\"code\" aria-label=\"Creator code\">{upper}</p>"
        ),
    );
    let mut resp = response::with_body(StatusCode::GONE, "text/html; charset=utf-8", body);
    no_store(&mut resp);
    resp
}

/// A disabled or expired code's fallback URL (no scan token: the code is
/// not being credited).
pub fn fallback_redirect(url: &str) -> Option<Response> {
    let location = HeaderValue::try_from(url).ok()?;
    let mut resp = response::empty(StatusCode::FOUND);
    resp.headers_mut().insert(header::LOCATION, location);
    no_store(&mut resp);
    Some(resp)
}

/// The in-app browser escape page. `path` is `/{code}` or
/// `/{code}/{channel}` (known names only), `token` the scan's token.
pub fn escape_page(
    public_base: &str,
    path: &str,
    code: &str,
    token: &str,
    app: &str,
    device: Device,
) -> Response {
    let app_name = match app {
        "instagram" => "Instagram",
        "facebook" => "Facebook",
        "messenger" => "Messenger",
        "tiktok" => "TikTok",
        _ => "this app",
    };
    let escaped = format!("{public_base}{path}?{ESCAPED_PARAM}={token}");
    let continued = format!("{path}?{CONTINUED_PARAM}={token}");
    let open = match device {
        Device::Android => {
            // Chrome takes the link out of the app; without Chrome the
            // fallback goes on here, still with the scan.
            let fallback: String =
                byte_serialize(format!("{public_base}{continued}").as_bytes()).collect();
            let (scheme, rest) = escaped.split_once("://").unwrap_or(("https", &escaped));
            let href = format!(
                "intent://{rest}#Intent;scheme={scheme};package=com.android.chrome;\
                 S.browser_fallback_url={fallback};end"
            );
            format!(
                "<a class=\"btn\" href=\"{}\">Open in your browser</a>",
                esc(&href)
            )
        }
        Device::Ios => format!(
            "<ol class=\"steps\"><li>Tap <b>&middot;&middot;&middot;</b> at the top right of {app_name}.</li>\
             <li>Choose <b>Open in external browser</b> (or <b>Open in Safari</b>).</li></ol>"
        ),
        Device::Desktop | Device::Other => String::new(),
    };
    let upper = code.to_ascii_uppercase();
    let body = page(
        "Open in your browser",
        &format!(
            "<h1>Open in your browser</h1>\
             <p>You opened this link inside {app_name}. In your own browser you stay signed in \
             at the shop, and the creator still gets credit.</p>{open}\
             <p class=\"label\">Creator code, if the shop asks for one:</p>\
             <p class=\"code\" aria-label=\"Creator code\">{upper}</p>\
             <a class=\"btn alt\" href=\"{}\">Continue in {app_name}</a>",
            esc(&continued)
        ),
    );
    let mut resp = response::with_body(StatusCode::OK, "text/html; charset=utf-8", body);
    no_store(&mut resp);
    resp
}

fn no_store(resp: &mut Response) {
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
}

/// The small page frame: readable on a phone, light and dark, no requests.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>\
         :root{{color-scheme:light dark}}\
         body{{font:17px/1.5 system-ui,-apple-system,sans-serif;max-width:30rem;margin:0 auto;padding:2.5rem 1.25rem;color:#1d1d1f;background:#fff}}\
         h1{{font-size:1.5rem;margin:0 0 .75rem}}\
         .code{{font:700 2.4rem/1.2 ui-monospace,Menlo,monospace;letter-spacing:.08em;text-align:center;\
         border:2px dashed #888;border-radius:12px;padding:1rem .5rem;margin:1.5rem 0;user-select:all;word-break:break-all}}\
         .btn{{display:block;text-align:center;padding:1rem;border-radius:12px;background:#0a66ff;color:#fff;\
         text-decoration:none;font-weight:600;margin:1rem 0}}\
         .btn.alt{{background:transparent;color:#0a66ff;border:2px solid #0a66ff}}\
         .steps{{padding-left:1.25rem}}.label{{margin:1.5rem 0 0;font-size:.9rem;opacity:.75}}.label+.code{{margin-top:.5rem}}\
         @media (prefers-color-scheme:dark){{body{{background:#111;color:#eee}}.btn.alt{{color:#6ea8ff;border-color:#6ea8ff}}}}\
         </style></head><body>{body}</body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_found_only_by_name() {
        assert_eq!(
            follow_up(Some("qr=1&cl_esc=TOKEN")),
            Some((Step::Escaped, "TOKEN"))
        );
        assert_eq!(follow_up(Some("cl_cont=T2")), Some((Step::Continued, "T2")));
        assert_eq!(follow_up(Some("xcl_esc=T")), None);
        assert_eq!(follow_up(Some("qr=1")), None);
        assert_eq!(follow_up(None), None);
    }

    #[test]
    fn intent_urls_keep_the_query_and_encode_the_fallback() {
        let i = intent(
            "https://shop.example/p?a=1&cl_scan=T#frag",
            "com.shop.app",
            "https://shop.example/p?a=1&cl_scan=T",
        );
        assert_eq!(
            i,
            "intent://shop.example/p?a=1&cl_scan=T#Intent;scheme=https;package=com.shop.app;\
             S.browser_fallback_url=https%3A%2F%2Fshop.example%2Fp%3Fa%3D1%26cl_scan%3DT;end"
        );
    }

    #[test]
    fn pages_are_small() {
        let page = escape_page(
            "https://go.example",
            "/alice10/ig",
            "alice10",
            "01JABCDEFGHJKMNPQRSTVWXYZ0.alice10.ig.ABCDEFGHJKMNPQRS",
            "instagram",
            Device::Android,
        );
        let len = hyper::body::Body::size_hint(page.body())
            .exact()
            .unwrap_or(u64::MAX);
        assert!(len > 500 && len < 10 * 1024, "{len} bytes");
        let gone = gone_page("alice10", Gone::Expired);
        let len = hyper::body::Body::size_hint(gone.body())
            .exact()
            .unwrap_or(0);
        assert!(len > 300 && len < 10 * 1024, "{len} bytes");
    }
}

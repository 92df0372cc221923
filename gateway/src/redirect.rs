//! The hot path: `GET`/`HEAD /{code}` and `/{code}/{channel}` → 302 (a
//! channel the code does not have → the code's own destination; a disabled
//! or expired code → its page or fallback URL; the follower paths of
//! `follower.rs`: app links, the in-app escape page, the visitor token).
//!
//! **Invariant:** this handler never awaits. It reads the in-memory code table,
//! takes a scan id from an atomic counter, hands the scan to the recorder's
//! bounded queue (`try_send`) and answers.

use crate::client::Device;
use crate::follower;
use crate::request::Request;
use crate::response::{self, Response};
use crate::routing::{preferred_language, Facts};
use crate::scan::{Routed, ScanCapture};
use crate::state::AppState;
use codelink_analytics::event::Step;
use codelink_shared::code::{lowercase_slug, MAX_LEN};
use http::{header, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long after its scan an escape page's links still count as its
/// follow-ups (a day: a follower may come back to the tab later).
const FOLLOW_UP_MS: u64 = 24 * 3600 * 1000;

/// `None` when the path is not shaped like a short link (the router answers 404).
pub fn handle(state: &AppState, req: &Request, peer: SocketAddr) -> Option<Response> {
    let path = req.uri().path().strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let (code, channel) = match path.split_once('/') {
        Some((code, channel)) if !channel.contains('/') => (code, Some(channel)),
        Some(_) => return None,
        None => (path, None),
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Some(crate::error::ApiError::method_not_allowed("GET, HEAD").into_response());
    }
    let mut code_buf = [0u8; MAX_LEN];
    let mut channel_buf = [0u8; MAX_LEN];
    let Some(entry) = lowercase_slug(code, &mut code_buf).and_then(|c| state.codes.get(c)) else {
        state.metrics.code_misses.fetch_add(1, Relaxed);
        return Some(not_found());
    };
    state.metrics.code_hits.fetch_add(1, Relaxed);
    // A channel the code does not have (a typo in a bio, an old link) still
    // reaches the code's own destination: the follower is not stranded, and
    // the scan records the name asked for so the creator can see it.
    let mut unknown = "";
    let (channel, target) = match channel {
        None => ("", &entry.default),
        Some(raw) => match lowercase_slug(raw, &mut channel_buf)
            .and_then(|c| entry.channels.get_key_value(c))
        {
            Some((name, t)) => (name.as_str(), t),
            None => {
                unknown = raw;
                ("", &entry.default)
            }
        },
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let code = entry.record.code.as_str();
    let scan_id = state.scan_ids.next(now.as_millis() as u64);
    if let Some(gone) = entry.gone(now.as_secs() as i64) {
        // Still a scan of the code (with its own verdict), counted as `gone`:
        // the follower gets the code in large type, or its fallback URL.
        let (mut scan, set_cookie) = state
            .scans
            .capture(req, peer, scan_id, code, channel, unknown);
        scan.step = Step::Gone;
        state.analytics.record(scan);
        let mut resp = match entry.record.fallback_url.as_deref() {
            Some(url) => follower::fallback_redirect(url),
            None => None,
        }
        .unwrap_or_else(|| follower::gone_page(code, gone));
        if let Some(cookie) = set_cookie {
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return Some(resp);
    }
    // What the user agent says (device, OS, in-app browser), from the cache,
    // only for codes whose rules, app links or escape page need it.
    let needs_client = (!entry.routes.is_empty() && entry.routes.needs.client)
        || entry.apps.is_some()
        || entry.record.in_app_escape;
    let client = needs_client.then(|| {
        let ua = req.headers().get(header::USER_AGENT);
        state
            .clients
            .facts(ua.map_or(&b""[..], HeaderValue::as_bytes))
    });
    // Routing rules (most codes have none: one length check). The first
    // rule that matches picks the target; the scan records its name.
    let mut routed = Routed::default();
    let mut target = target;
    if !entry.routes.is_empty() {
        let needs = entry.routes.needs;
        let country = state.scans.country(req, peer);
        let facts = Facts {
            client: client.filter(|_| needs.client),
            country,
            language: if needs.language {
                req.headers()
                    .get(header::ACCEPT_LANGUAGE)
                    .map_or("", |v| preferred_language(v.as_bytes()))
            } else {
                ""
            },
            now: now.as_secs() as i64,
        };
        routed.country = Some(country);
        if let Some(rule) = entry.routes.first_match(&facts) {
            routed.route = &rule.name;
            target = rule.target(channel);
        }
    }
    // App links open the shop's app for the code's own destinations; a
    // matched rule's destination is followed as the rule says.
    let device = match client {
        Some(c) if routed.route.is_empty() => c.device,
        _ => Device::Other,
    };
    // A follower leaving the escape page is not a second scan: the step is
    // counted and the destination gets the token of the scan that showed it.
    let follow = follower::follow_up(req.uri().query()).filter(|(_, token)| {
        state.analytics.signer().verify(token).is_some_and(|t| {
            t.code == code && now.as_millis() as u64 <= t.scan_id.unix_ms() + FOLLOW_UP_MS
        })
    });
    let (token, set_cookie, visitor) = match follow {
        Some((step, token)) => {
            state
                .analytics
                .record(ScanCapture::follow_up(scan_id, code, step));
            (token.to_string(), None, None)
        }
        None => {
            let (mut scan, set_cookie) =
                state
                    .scans
                    .capture_routed(req, peer, scan_id, (code, channel, unknown), routed);
            let token = state.analytics.signer().token(scan_id, code, channel);
            let escape_app = client
                .map(|c| c.in_app)
                .filter(|app| entry.record.in_app_escape && follower::ESCAPE_APPS.contains(app));
            if let Some(app) = escape_app.filter(|_| req.method() == Method::GET) {
                scan.step = Step::EscapeShown;
                state.analytics.record(scan);
                let path = if channel.is_empty() {
                    format!("/{code}")
                } else {
                    format!("/{code}/{channel}")
                };
                let device = client.map_or(Device::Other, |c| c.device);
                let mut resp =
                    follower::escape_page(&state.public_base, &path, code, &token, app, device);
                if let Some(cookie) = set_cookie {
                    resp.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                return Some(resp);
            }
            let visitor = entry
                .record
                .visitor_token
                .then(|| state.scans.visitor_token(&scan.visitor_id));
            state.analytics.record(scan);
            (token, set_cookie, visitor)
        }
    };
    let location = follower::location(
        &entry,
        channel,
        target,
        device,
        &state.config.scan_param,
        &token,
        visitor.as_deref(),
    );
    let Ok(location) = HeaderValue::try_from(location) else {
        // Destinations are serialised by the URL parser (ASCII only); unreachable in practice.
        return Some(not_found());
    };
    let mut resp = response::empty(StatusCode::FOUND);
    let headers = resp.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer-when-downgrade"),
    );
    if let Some(cookie) = set_cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    Some(resp)
}

pub fn not_found() -> Response {
    response::html_page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "There is no link at this address. Check the code and try again.",
    )
}

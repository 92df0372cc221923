//! The hot path: `GET`/`HEAD /{code}` and `/{code}/{channel}` → 302 (a
//! channel the code does not have → the code's own destination).
//!
//! **Invariant:** this handler never awaits. It reads the in-memory code table,
//! takes a scan id from an atomic counter, hands the scan to the recorder's
//! bounded queue (`try_send`) and answers.

use crate::codes::Gone;
use crate::request::Request;
use crate::response::{self, Response};
use crate::routing::{preferred_language, Facts};
use crate::scan::Routed;
use crate::state::AppState;
use codelink_shared::code::{lowercase_slug, MAX_LEN};
use http::{header, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

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
    if let Some(gone) = entry.gone(now.as_secs() as i64) {
        let message = match gone {
            Gone::Disabled => "This link has been turned off by its owner.",
            Gone::Expired => "This link has expired.",
        };
        return Some(response::html_page(
            StatusCode::GONE,
            "Link no longer active",
            message,
        ));
    }
    // Routing rules (most codes have none: one length check). The first
    // rule that matches picks the target; the scan records its name.
    let mut routed = Routed::default();
    let mut target = target;
    if !entry.routes.is_empty() {
        let needs = entry.routes.needs;
        let country = state.scans.country(req, peer);
        let facts = Facts {
            client: needs.client.then(|| {
                let ua = req.headers().get(header::USER_AGENT);
                state
                    .clients
                    .facts(ua.map_or(&b""[..], HeaderValue::as_bytes))
            }),
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
    let scan_id = state.scan_ids.next(now.as_millis() as u64);
    let (scan, set_cookie) = state.scans.capture_routed(
        req,
        peer,
        scan_id,
        (&entry.record.code, channel, unknown),
        routed,
    );
    state.analytics.record(scan);
    let token = state
        .analytics
        .signer()
        .token(scan_id, &entry.record.code, channel);
    let location = target.location(&state.config.scan_param, &token);
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

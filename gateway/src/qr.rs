//! `GET /qr/{code}.png|.svg`: QR images of a code's short link, cached.
//!
//! The image is a pure function of the encoded URL and the options, so its ETag
//! is a hash of exactly those, and rendered bytes live in a cache bounded by
//! total size. The handler never touches a store: the code table is in memory.

use crate::codes::Gone;
use crate::error::ApiError;
use crate::qr_render::{self, Format, QrRequest};
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use codelink_shared::code::{lowercase_slug, MAX_LEN};
use http::{header, HeaderValue, Method, StatusCode};
use std::sync::atomic::Ordering::Relaxed;

/// Bumped whenever rendering changes, so old ETags stop matching.
const RENDER_VERSION: u32 = 2;

pub async fn handle(state: &AppState, req: &Request) -> Response {
    match render(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn render(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_allowed("GET, HEAD"));
    }
    let name = req.uri().path().strip_prefix("/qr/").unwrap_or("");
    let (code, format, mime) = if let Some(c) = name.strip_suffix(".png") {
        (c, Format::Png, "image/png")
    } else if let Some(c) = name.strip_suffix(".svg") {
        (c, Format::Svg, "image/svg+xml")
    } else {
        return Err(ApiError::not_found(
            "QR images are at /qr/{code}.png or /qr/{code}.svg",
        ));
    };
    let QrRequest { options, channel } = qr_render::parse_query(req.uri().query())
        .map_err(|e| ApiError::bad_request("invalid_qr_option", e.to_string()))?;

    let mut buf = [0u8; MAX_LEN];
    let Some(entry) = lowercase_slug(code, &mut buf).and_then(|c| state.codes.get(c)) else {
        state.metrics.code_misses.fetch_add(1, Relaxed);
        return Err(ApiError::not_found(format!("code '{code}' not found")));
    };
    state.metrics.code_hits.fetch_add(1, Relaxed);
    let code = &entry.record.code;
    // `?qr=1` tells the redirect that the scan came from the image, not the link.
    let content = match channel.as_deref() {
        None => format!("{}/{code}?qr=1", state.public_base),
        Some(raw) => {
            let mut cbuf = [0u8; MAX_LEN];
            match lowercase_slug(raw, &mut cbuf) {
                Some(c) if entry.channels.contains_key(c) => {
                    format!("{}/{code}/{c}?qr=1", state.public_base)
                }
                _ => {
                    return Err(ApiError::not_found(format!(
                        "code '{code}' has no channel '{raw}'"
                    )))
                }
            }
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Some(gone) = entry.gone(now) {
        let why = match gone {
            Gone::Disabled => "disabled",
            Gone::Expired => "expired",
        };
        return Err(ApiError::new(
            StatusCode::GONE,
            "code_gone",
            format!("code '{code}' is {why}"),
        ));
    }

    let key = format!(
        "{RENDER_VERSION}|{format:?}|{}|{:?}|{}|{}|{}|{content}",
        options.size,
        options.ecc,
        options.margin,
        options.fg.hex(),
        options.bg.hex()
    );
    let etag = format!("\"{:016x}\"", fnv1a64(key.as_bytes()));
    let etag = HeaderValue::try_from(etag).map_err(|_| ApiError::not_found("bad etag"))?;
    let cache_headers = |resp: &mut Response| {
        let h = resp.headers_mut();
        h.insert(header::ETAG, etag.clone());
        // The bytes depend only on the URL and the options in the request, so
        // clients and CDNs may keep them.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    };
    if if_none_match(req, etag.as_bytes()) {
        let mut resp = response::empty(StatusCode::NOT_MODIFIED);
        cache_headers(&mut resp);
        return Ok(resp);
    }

    let bytes = match state.qr_cache.get(&key) {
        Some(bytes) => {
            state.metrics.qr_cache_hits.fetch_add(1, Relaxed);
            bytes
        }
        None => {
            state.metrics.qr_cache_misses.fetch_add(1, Relaxed);
            // Large images take milliseconds: keep them off the async workers.
            let rendered =
                tokio::task::spawn_blocking(move || qr_render::render(&content, &options, format))
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "render_failed",
                            "QR rendering was interrupted",
                        )
                    })?
                    .map_err(|e| ApiError::bad_request("invalid_qr_option", e.to_string()))?;
            let bytes = Bytes::from(rendered);
            state.qr_cache.insert(key, bytes.clone());
            bytes
        }
    };
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        bytes
    };
    let mut resp = response::with_body(StatusCode::OK, mime, body);
    cache_headers(&mut resp);
    Ok(resp)
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak tags compare by their opaque part.
fn if_none_match(req: &Request, etag: &[u8]) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .map(|t| t.strip_prefix(b"W/").unwrap_or(t))
        .any(|t| t == b"*" || t == etag)
}

/// FNV-1a, 64 bit: stable across processes and versions, so every gateway
/// instance gives the same image the same ETag.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

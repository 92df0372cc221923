//! `GET /qr/{code}.png|.svg`: QR images of a code's short link, cached.
//!
//! The image is a pure function of the encoded URL and the options, so its ETag
//! is a hash of exactly those, and rendered bytes live in a cache bounded by
//! total size. The handler never touches a store: the code table is in memory,
//! the code's logo (decoded) with it, and the owner's default logo in the
//! profile table.
//!
//! A branded image (a logo, a frame, rounded or dot modules, other colours)
//! is read back by the gateway's QR reader before it is served or cached;
//! one that does not read is answered 422 `qr_unreadable`, saying why.

use crate::codes::Gone;
use crate::error::ApiError;
use crate::qr_cache::{Answer, Cached};
use crate::qr_render::{self, Brand, Format, QrRequest, RenderError};
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use codelink_shared::code::{lowercase_slug, MAX_LEN};
use codelink_shared::text::push_decimal;
use codelink_shared::CodeRecord;
use http::{header, HeaderValue, Method, StatusCode};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// How long a render waits for a free slot before the answer is 503.
const RENDER_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bumped whenever rendering changes, so old ETags stop matching.
const RENDER_VERSION: u32 = 4;

/// The call to action under a framed image: the preset's, else
/// `Use code {CODE}`.
pub fn frame_text(record: &CodeRecord) -> String {
    match record.qr.as_ref().and_then(|q| q.frame_text.as_deref()) {
        Some(text) => text.to_string(),
        None => format!("Use code {}", record.code.to_ascii_uppercase()),
    }
}

pub async fn handle(state: &AppState, req: &Request, peer: SocketAddr) -> Response {
    match render(state, req, peer).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn render(state: &AppState, req: &Request, peer: SocketAddr) -> Result<Response, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_allowed("GET, HEAD"));
    }
    let path_and_query = req.uri().path_and_query().map_or("", |p| p.as_str());
    if let Some(resp) = answer_again(state, req, path_and_query) {
        return Ok(resp);
    }
    let name = req.uri().path().strip_prefix("/qr/").unwrap_or("");
    let (code, format, mime) = if let Some(c) = name.strip_suffix(".png") {
        (c, Format::Png, "image/png")
    } else if let Some(c) = name.strip_suffix(".svg") {
        (c, Format::Svg, "image/svg+xml")
    } else if let Some(c) = name.strip_suffix(".pdf") {
        (c, Format::Pdf, "application/pdf")
    } else {
        return Err(ApiError::not_found(
            "QR images are at /qr/{code}.png, /qr/{code}.svg or /qr/{code}.pdf",
        ));
    };

    let mut buf = [0u8; MAX_LEN];
    let Some(entry) = lowercase_slug(code, &mut buf).and_then(|c| state.codes.get(c)) else {
        state.metrics.code_misses.fetch_add(1, Relaxed);
        return Err(ApiError::not_found(format!("code '{code}' not found")));
    };
    state.metrics.code_hits.fetch_add(1, Relaxed);
    let code = &entry.record.code;
    // A brand preset changes the defaults (and may forbid other colours).
    let bad_option =
        |e: qr_render::QrOptionError| ApiError::bad_request("invalid_qr_option", e.to_string());
    let QrRequest { options, channel } = match entry.qr_preset {
        None => qr_render::parse_query(req.uri().query()),
        Some((base, custom_colors)) => {
            qr_render::parse_query_on(req.uri().query(), base, custom_colors)
        }
    }
    .map_err(bad_option)?;
    // The channel, checked before anything else is built.
    let mut cbuf = [0u8; MAX_LEN];
    let channel = match channel.as_deref() {
        None => None,
        Some(raw) => match lowercase_slug(raw, &mut cbuf) {
            Some(c) if entry.channels.contains_key(c) => Some(c),
            _ => {
                return Err(ApiError::not_found(format!(
                    "code '{code}' has no channel '{raw}'"
                )))
            }
        },
    };
    // Only a code with an expiry needs the clock.
    let now = entry
        .record
        .expires_at
        .map_or(0, |_| time::OffsetDateTime::now_utc().unix_timestamp());
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

    // The code's own logo, else its owner's (both decoded, in memory).
    let logo = crate::admin::drawn_logo(state, &entry.record, entry.qr_logo.clone());
    // What a remembered answer compares with (weak: it holds no pixels).
    let answer_logo = logo.as_ref().map(Arc::downgrade);
    let text = if options.frame {
        frame_text(&entry.record)
    } else {
        String::new()
    };
    let options = qr_render::effective(
        &options,
        &Brand {
            logo: logo.as_deref(),
            frame_text: &text,
        },
    );
    // Everything the bytes depend on, written into one buffer (this runs on
    // every cached hit): `{version}|{format}|{size}|{ecc}|{margin}|{fg}|{bg}|`
    // then the content, then the brand's parts when present.
    let mut key = String::with_capacity(64 + state.public_base.len() + 2 * MAX_LEN);
    // Pushed part by part: `write!` was a tenth of a cached hit's handler.
    push_decimal(&mut key, RENDER_VERSION);
    key.push('|');
    key.push_str(format_name(format));
    key.push('|');
    push_decimal(&mut key, options.size);
    key.push('|');
    key.push_str(options.ecc.name());
    key.push('|');
    push_decimal(&mut key, options.margin);
    key.push('|');
    options.fg.push_hex(&mut key);
    key.push('|');
    options.bg.push_hex(&mut key);
    key.push('|');
    // `?qr=1` tells the redirect that the scan came from the image, not the link.
    let content_at = key.len();
    key.push_str(&state.public_base);
    key.push('/');
    key.push_str(code);
    if let Some(c) = channel {
        key.push('/');
        key.push_str(c);
    }
    key.push_str("?qr=1");
    let content_end = key.len();
    if options.style != qr_render::ModuleStyle::Square {
        key.push_str("|style=");
        key.push_str(options.style.name());
    }
    if let Some(logo) = &logo {
        let _ = write!(key, "|logo={}@{}", logo.sha256, options.logo_size);
    }
    if options.frame {
        key.push_str("|frame=");
        key.push_str(&text);
    }
    // A cached image carries its ETag: a hit hashes nothing.
    let (bytes, etag) = match state.qr_cache.get(&key) {
        Some(cached) => {
            if if_none_match(req, cached.etag.as_bytes()) {
                return Ok(not_modified(cached.etag));
            }
            state.metrics.qr_cache_hits.fetch_add(1, Relaxed);
            (cached.bytes, cached.etag)
        }
        None => {
            let etag = etag_value(fnv1a64(key.as_bytes()));
            if if_none_match(req, etag.as_bytes()) {
                return Ok(not_modified(etag));
            }
            // A style found unreadable stays so: its refusal is cached too,
            // so asking again costs no render.
            let refused_key = format!("{key}|unreadable");
            if let Some(why) = state.qr_cache.get(&refused_key) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "qr_unreadable",
                    String::from_utf8_lossy(&why.bytes).into_owned(),
                ));
            }
            state.metrics.qr_cache_misses.fetch_add(1, Relaxed);
            // Renders cost CPU (a plain 4096 px PNG ~0.5 ms, a branded one more): a rate per address,
            // and a bounded number at once (so a burst of misses can neither
            // pin every core nor grow the blocking pool).
            let content = key[content_at..content_end].to_string();
            let client = state.scans.client_ip(req, peer);
            if let Err(not_until) = state.qr_limiter.check_key(&client) {
                return Err(ApiError::rate_limited(
                    "too many new QR images from this address; slow down (cached ones are not limited)",
                    not_until,
                ));
            }
            let _permit =
                match tokio::time::timeout(RENDER_QUEUE_WAIT, state.qr_renders.acquire()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        let mut e = ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "busy",
                            "too many QR images are being rendered; retry in a second",
                        );
                        e.retry_after = Some(1);
                        return Err(e);
                    }
                };
            let running = state.metrics.qr_renders_running.fetch_add(1, Relaxed) + 1;
            state.metrics.qr_renders_peak.fetch_max(running, Relaxed);
            // Large images take milliseconds: keep them off the async workers.
            let rendered = tokio::task::spawn_blocking(move || {
                let brand = Brand {
                    logo: logo.as_deref(),
                    frame_text: &text,
                };
                qr_render::render_branded(&content, &options, format, &brand)
            })
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "render_failed",
                    "QR rendering was interrupted",
                )
            });
            state.metrics.qr_renders_running.fetch_sub(1, Relaxed);
            let rendered = rendered?.map_err(|e| match e {
                RenderError::Option(e) => ApiError::bad_request("invalid_qr_option", e.to_string()),
                RenderError::Unreadable(why) => {
                    state.qr_cache.insert(
                        refused_key,
                        Cached {
                            bytes: Bytes::from(why.clone().into_bytes()),
                            etag: HeaderValue::from_static(""),
                        },
                    );
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "qr_unreadable", why)
                }
            })?;
            let bytes = Bytes::from(rendered);
            state.qr_cache.insert(
                key,
                Cached {
                    bytes: bytes.clone(),
                    etag: etag.clone(),
                },
            );
            (bytes, etag)
        }
    };
    state.qr_cache.remember(
        path_and_query,
        Answer {
            code: code.as_str().into(),
            entry: Arc::downgrade(&entry),
            logo: answer_logo,
            mime,
            image: Cached {
                bytes: bytes.clone(),
                etag: etag.clone(),
            },
        },
    );
    Ok(image_response(req, mime, bytes, etag))
}

/// The answer remembered for this exact request, if it still holds (the
/// code unchanged, not gone, drawn with the same logo): no options parsed,
/// no key built, no hashing of the image's key.
fn answer_again(state: &AppState, req: &Request, path_and_query: &str) -> Option<Response> {
    let answer = state.qr_cache.answer(path_and_query)?;
    let entry = state.codes.get(&answer.code)?;
    let now = entry
        .record
        .expires_at
        .map_or(0, |_| time::OffsetDateTime::now_utc().unix_timestamp());
    if entry.gone(now).is_some() {
        return None;
    }
    let logo = crate::admin::drawn_logo(state, &entry.record, entry.qr_logo.clone());
    if !answer.holds_for(&entry, logo.as_ref()) {
        return None;
    }
    state.metrics.code_hits.fetch_add(1, Relaxed);
    let Cached { bytes, etag } = answer.image.clone();
    // A 304 is neither a hit nor a miss of the cache, as on the full path.
    if if_none_match(req, etag.as_bytes()) {
        return Some(not_modified(etag));
    }
    state.metrics.qr_cache_hits.fetch_add(1, Relaxed);
    Some(image_response(req, answer.mime, bytes, etag))
}

/// 200 with the image (no body for HEAD) and its caching headers.
fn image_response(req: &Request, mime: &'static str, bytes: Bytes, etag: HeaderValue) -> Response {
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        bytes
    };
    let mut resp = response::with_body(StatusCode::OK, mime, body);
    cache_headers(&mut resp, etag);
    resp
}

/// The headers of an image (or its 304): the ETag, and that clients and CDNs
/// may keep it five minutes, then ask again with the tag (a 304 while
/// unchanged). Not longer: the image of a URL changes when its code is
/// restyled (colours, logo, frame), and a year's `immutable` kept the old
/// one in browsers and CDNs.
fn cache_headers(resp: &mut Response, etag: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
}

fn not_modified(etag: HeaderValue) -> Response {
    let mut resp = response::empty(StatusCode::NOT_MODIFIED);
    cache_headers(&mut resp, etag);
    resp
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak tags compare by their opaque part.
pub(crate) fn if_none_match(req: &Request, etag: &[u8]) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .map(|t| t.strip_prefix(b"W/").unwrap_or(t))
        .any(|t| t == b"*" || t == etag)
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Png => "Png",
        Format::Svg => "Svg",
        Format::Pdf => "Pdf",
    }
}

/// `"{hash:016x}"`, the quoted ETag, without a format string.
fn etag_value(hash: u64) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = [b'"'; 18];
    for (i, digit) in tag[1..17].iter_mut().enumerate() {
        *digit = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// FNV-1a, 64 bit: stable across processes and versions, so every gateway
/// instance gives the same image the same ETag.
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_the_quoted_hex_hash() {
        for hash in [0u64, 0x0123_4567_89ab_cdef, u64::MAX, fnv1a64(b"4|Png|512")] {
            assert_eq!(
                etag_value(hash).as_bytes(),
                format!("\"{hash:016x}\"").as_bytes()
            );
        }
    }
}

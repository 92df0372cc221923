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
use crate::qr_render::{self, Brand, Format, QrRequest, RenderError};
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use codelink_shared::code::{lowercase_slug, MAX_LEN};
use codelink_shared::CodeRecord;
use http::{header, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

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

    // The code's own logo, else its owner's (both decoded, in memory).
    let logo = crate::admin::drawn_logo(state, &entry.record, entry.qr_logo.clone());
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
    // Everything the bytes depend on; the plain look's key is as before
    // (but for the version), the brand's parts are appended when present.
    let mut key = format!(
        "{RENDER_VERSION}|{format:?}|{}|{:?}|{}|{}|{}|{content}",
        options.size,
        options.ecc,
        options.margin,
        options.fg.hex(),
        options.bg.hex()
    );
    if options.style != qr_render::ModuleStyle::Square {
        key.push_str("|style=");
        key.push_str(options.style.name());
    }
    if let Some(logo) = &logo {
        key.push_str(&format!("|logo={}@{}", logo.sha256, options.logo_size));
    }
    if options.frame {
        key.push_str("|frame=");
        key.push_str(&text);
    }
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
            // A style found unreadable stays so: its refusal is cached too,
            // so asking again costs no render.
            let refused_key = format!("{key}|unreadable");
            if let Some(why) = state.qr_cache.get(&refused_key) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "qr_unreadable",
                    String::from_utf8_lossy(&why).into_owned(),
                ));
            }
            state.metrics.qr_cache_misses.fetch_add(1, Relaxed);
            // Renders cost CPU (a plain 4096 px PNG ~0.5 ms, a branded one more): a rate per address,
            // and a bounded number at once (so a burst of misses can neither
            // pin every core nor grow the blocking pool).
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
                    state
                        .qr_cache
                        .insert(refused_key, Bytes::from(why.clone().into_bytes()));
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "qr_unreadable", why)
                }
            })?;
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
pub(crate) fn if_none_match(req: &Request, etag: &[u8]) -> bool {
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
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

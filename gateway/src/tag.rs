//! `GET /t.js`: the tag a brand puts on its site (`assets/t.js`). It reads
//! `cl_scan` from the landing URL and keeps it first-party (cookie and/or
//! localStorage) until checkout; it sends nothing to the gateway.
//!
//! Cacheable: `/t.js` is revalidated after an hour (strong ETag, 304);
//! `/t.js?v={TAG_VERSION}` is the pinned form, immutable for a year, for a
//! brand that wants Subresource Integrity. Served gzipped when the client
//! takes it (compressed once), with CORS open so an `integrity` check works
//! from any origin.

use crate::request::Request;
use crate::response::{self, Response};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use std::io::Write;
use std::sync::OnceLock;

const SCRIPT: &str = include_str!("../assets/t.js");

/// The tag's version; `?v=` with this value makes the response immutable.
pub const TAG_VERSION: &str = "1";

struct Compiled {
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
    etag_gzip: HeaderValue,
}

fn compiled() -> &'static Compiled {
    static TAG: OnceLock<Compiled> = OnceLock::new();
    TAG.get_or_init(|| {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let _ = z.write_all(SCRIPT.as_bytes());
        let gzip = z.finish().unwrap_or_default();
        let hash = crate::qr::fnv1a64(SCRIPT.as_bytes());
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"t{TAG_VERSION}-{hash:016x}{suffix}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"t\""))
        };
        Compiled {
            plain: Bytes::from_static(SCRIPT.as_bytes()),
            gzip: Bytes::from(gzip),
            etag: tag(""),
            etag_gzip: tag("-gz"),
        }
    })
}

fn takes_gzip(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

pub fn handle(req: &Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return crate::error::ApiError::method_not_allowed("GET, HEAD").into_response();
    }
    let tag = compiled();
    let gzip = takes_gzip(req);
    let (body, etag) = if gzip {
        (&tag.gzip, &tag.etag_gzip)
    } else {
        (&tag.plain, &tag.etag)
    };
    let pinned = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.strip_prefix("v=") == Some(TAG_VERSION))
    });
    let mut resp = if crate::qr::if_none_match(req, etag.as_bytes()) {
        response::empty(StatusCode::NOT_MODIFIED)
    } else {
        let body = if req.method() == Method::HEAD {
            Bytes::new()
        } else {
            body.clone()
        };
        response::with_body(StatusCode::OK, "text/javascript; charset=utf-8", body)
    };
    let encoded = gzip && resp.status() == StatusCode::OK;
    let h = resp.headers_mut();
    if encoded {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if pinned {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=3600, stale-while-revalidate=86400"
        }),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_versioned() {
        // The bound is 3 KB gzipped.
        let gzipped = compiled().gzip.len();
        assert!(gzipped < 3 * 1024, "{gzipped} bytes");
        assert!(SCRIPT.contains(&format!("var VERSION = \"{TAG_VERSION}\"")));
    }
}

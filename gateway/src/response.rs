//! Response builders shared by the handlers.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;

pub type Body = Full<Bytes>;
pub type Response = http::Response<Body>;

pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut resp = http::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    // Serialising a serde_json::Value cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_body(status, "application/json", body)
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    with_body(status, "text/plain; charset=utf-8", body)
}

pub fn empty(status: StatusCode) -> Response {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// The small HTML page followers see for an unknown (404) or retired (410) link.
pub fn html_page(status: StatusCode, title: &'static str, message: &'static str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;\
         margin:4rem auto;padding:0 1rem;color:#222}}</style></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>"
    );
    let mut resp = with_body(status, "text/html; charset=utf-8", body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

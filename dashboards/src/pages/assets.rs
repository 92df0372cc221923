//! `/ui/assets/app.css` and `app.js`, compiled into the binary and cached for
//! a year (pages link them with a version derived from their contents).

use crate::html::{CSS, JS};
use crate::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;

pub fn serve(name: &str) -> Response {
    let (body, mime) = match name {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::error_plain(StatusCode::NOT_FOUND, "Not found", "No such asset."),
    };
    let mut resp = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

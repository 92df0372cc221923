//! `/api/v1/codes/{code}/logo`: the logo in the centre of a code's QR images.
//!
//! `PUT` takes the image itself as the body (`Content-Type: image/png` or
//! `image/svg+xml`, at most 64 KiB), validates it (see `qr_logo.rs`), checks
//! that the code's QR images still read with it, and stores it; `GET` returns
//! it; `DELETE` removes it. The code's JSON shows the logo's type, size and
//! SHA-256, never the bytes.

use super::auth::{visible, Principal};
use super::codes::view;
use crate::admin;
use crate::error::ApiError;
use crate::qr_logo::{Logo, LogoKind, MAX_LOGO_BYTES};
use crate::request::{read_body, BodyError, Request};
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

pub(super) async fn put(state: &AppState, code: &str, req: Request) -> Result<Response, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(kind) = LogoKind::from_content_type(content_type) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the logo itself as the body, with 'Content-Type: image/png' or 'image/svg+xml'",
        ));
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "logo_too_large",
            format!(
                "the logo exceeds {MAX_LOGO_BYTES} bytes (64 KiB); export it smaller \
                 (an SVG, or a PNG of at most 1024 px a side, usually fits)"
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_LOGO_BYTES as u64) {
        return Err(too_large());
    }
    let deadline = state.config.body_timeout();
    let body = match read_body(req.into_body(), MAX_LOGO_BYTES, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Broken(e)) => {
            return Err(ApiError::bad_request(
                "bad_body",
                format!("could not read the request body: {e}"),
            ))
        }
        Err(BodyError::TooSlow) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms; send it whole",
                    deadline.as_millis()
                ),
            ))
        }
    };
    // Decoding an image takes milliseconds: off the async workers.
    let logo = tokio::task::spawn_blocking(move || Logo::parse(kind, body))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the logo could not be checked; retry",
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_logo", e.0))?;
    let record = admin::set_logo(state, code, logo).await?;
    Ok(response::json(StatusCode::OK, &view(state, &record)))
}

pub(super) async fn get(
    state: &AppState,
    who: &Principal,
    code: &str,
) -> Result<Response, ApiError> {
    let entry = visible(state, who, code)?;
    let Some(named) = &entry.record.qr_logo else {
        return Err(ApiError::not_found(format!("code '{code}' has no logo")));
    };
    let bytes = match &entry.qr_logo {
        Some(logo) => logo.bytes.clone(),
        // Named but not loaded here (it failed to load): read the store.
        None => state
            .store
            .logos(vec![named.sha256.clone()])
            .await?
            .pop()
            .map(|(_, b)| Bytes::from(b))
            .ok_or_else(|| ApiError::not_found(format!("code '{code}' has no logo")))?,
    };
    let mime = match LogoKind::from_content_type(&named.content_type) {
        Some(kind) => kind.content_type(),
        None => "application/octet-stream",
    };
    let mut resp = response::with_body(StatusCode::OK, mime, bytes);
    let h = resp.headers_mut();
    // An SVG opened straight from the API must not run anything, even if a
    // check were ever missed.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::try_from(format!("\"{}\"", named.sha256)) {
        h.insert(header::ETAG, etag);
    }
    Ok(resp)
}

pub(super) async fn delete(state: &AppState, code: &str) -> Result<Response, ApiError> {
    match admin::remove_logo(state, code).await? {
        Some(record) => Ok(response::json(StatusCode::OK, &view(state, &record))),
        None => Err(ApiError::not_found(format!("code '{code}' has no logo"))),
    }
}

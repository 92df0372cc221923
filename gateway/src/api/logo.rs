//! `/api/v1/codes/{code}/logo`: the logo in the centre of a code's QR images;
//! `/api/v1/owners/{owner}/logo`: an owner's default logo, drawn on each of
//! their codes that has no logo of its own.
//!
//! `PUT` takes the image itself as the body (`Content-Type: image/png` or
//! `image/svg+xml`, at most 64 KiB), validates it (see `qr_logo.rs`), checks
//! that the QR images still read with it, and stores it; `GET` returns it;
//! `DELETE` removes it. The code's (or profile's) JSON shows the logo's type,
//! size and SHA-256, never the bytes.

use super::auth::{visible, Principal};
use super::codes::view;
use super::profiles;
use crate::admin;
use crate::error::ApiError;
use crate::qr_logo::{Logo, LogoKind, MAX_LOGO_BYTES};
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use bytes::Bytes;
use codelink_shared::LogoRef;
use http::{header, HeaderValue, StatusCode};
use std::sync::Arc;

pub(super) async fn put(state: &AppState, code: &str, req: Request) -> Result<Response, ApiError> {
    let logo = read_logo(state, req).await?;
    let record = admin::set_logo(state, code, logo).await?;
    Ok(response::json(StatusCode::OK, &view(state, &record)))
}

/// The logo a PUT sends as its body, read (bounded in size and time) and
/// validated: 415 for another type, 413 past 64 KiB, 422 `invalid_logo`.
async fn read_logo(state: &AppState, req: Request) -> Result<Arc<Logo>, ApiError> {
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
    let body = super::body::read_bounded(state, req, MAX_LOGO_BYTES, too_large).await?;
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
    Ok(logo)
}

pub(super) async fn get(
    state: &AppState,
    who: &Principal,
    code: &str,
) -> Result<Response, ApiError> {
    let entry = visible(state, who, code)?;
    let none = || ApiError::not_found(format!("code '{code}' has no logo"));
    let named = entry.record.qr_logo.as_ref().ok_or_else(none)?;
    serve_logo(state, named, entry.qr_logo.as_deref(), none).await
}

/// The logo's bytes as a response: `loaded` if this instance holds it
/// decoded, else read from the store (it failed to load here).
async fn serve_logo(
    state: &AppState,
    named: &LogoRef,
    loaded: Option<&Logo>,
    none: impl Fn() -> ApiError,
) -> Result<Response, ApiError> {
    let bytes = match loaded.filter(|l| l.sha256 == named.sha256) {
        Some(logo) => logo.bytes.clone(),
        None => state
            .store
            .logos(vec![named.sha256.clone()])
            .await?
            .pop()
            .map(|(_, b)| Bytes::from(b))
            .ok_or_else(none)?,
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

fn no_owner_logo(owner: &str) -> ApiError {
    ApiError::not_found(format!("owner '{owner}' has no logo"))
}

/// `PUT /owners/{owner}/logo` (admin): the owner's default logo, checked on
/// their codes without a logo of their own (at most
/// [`admin::OWNER_LOGO_CHECKS`]); creates their profile if they have none.
pub(super) async fn put_owner(
    state: &AppState,
    owner: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let logo = read_logo(state, req).await?;
    let profile = admin::set_owner_logo(state, owner, logo).await?;
    Ok(response::json(
        StatusCode::OK,
        &profiles::view(state, &profile),
    ))
}

/// `GET /owners/{owner}/logo` (admin, or the owner's own creator key).
pub(super) async fn get_owner(state: &AppState, owner: &str) -> Result<Response, ApiError> {
    let none = || no_owner_logo(owner);
    let profile = state.profiles.get(owner).ok_or_else(none)?;
    let named = profile.qr_logo.as_ref().ok_or_else(none)?;
    let loaded = state.profiles.logo_of(owner);
    serve_logo(state, named, loaded.as_deref(), none).await
}

/// `DELETE /owners/{owner}/logo` (admin): their codes without a logo of
/// their own are drawn plain again; the profile stays.
pub(super) async fn delete_owner(state: &AppState, owner: &str) -> Result<Response, ApiError> {
    match admin::remove_owner_logo(state, owner).await? {
        Some(profile) => Ok(response::json(
            StatusCode::OK,
            &profiles::view(state, &profile),
        )),
        None => Err(no_owner_logo(owner)),
    }
}

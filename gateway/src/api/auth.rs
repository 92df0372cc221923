//! Who is calling, and what they may see: the admin key sees everything; a
//! creator key sees the codes its creator owns (another creator's code is 404,
//! as if it did not exist); an ingest key only posts conversions.

use crate::codes::CompiledCode;
use crate::error::ApiError;
use crate::request::Request;
use crate::state::AppState;
use http::{header, StatusCode};
use std::sync::Arc;

pub use codelink_shared::Principal;

pub(super) fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this key may not use this endpoint",
    )
}

/// The admin key, or a stored creator/ingest key (compared by SHA-256), with
/// the key's id.
pub(super) async fn authorize(
    state: &AppState,
    req: &Request,
) -> Result<(Principal, String), ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 7235): `Bearer`, `bearer`, `BEARER`.
        .and_then(|v| {
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(ApiError::unauthorized)?;
    crate::admin::authenticate(state, presented)
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// The code if it exists and the caller may see it; 404 otherwise (never 403:
/// a creator cannot tell another creator's code from a missing one).
pub(super) fn visible(
    state: &AppState,
    who: &Principal,
    code: &str,
) -> Result<Arc<CompiledCode>, ApiError> {
    state
        .codes
        .get(code)
        .filter(|e| who.sees(&e.record.owner))
        .ok_or_else(|| ApiError::not_found(format!("code '{code}' not found")))
}

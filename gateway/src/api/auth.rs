//! Who is calling, and what they may see: the admin key sees everything; a
//! creator key sees the codes its creator owns (another creator's code is 404,
//! as if it did not exist); an ingest key only posts conversions.

use crate::codes::CompiledCode;
use crate::error::ApiError;
use crate::request::Request;
use crate::state::AppState;
use crate::store::KeyKind;
use http::{header, StatusCode};
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Creator(String),
    Ingest,
}

impl Principal {
    /// Whether this caller may see `owner`'s codes and numbers.
    pub fn sees(&self, owner: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Creator(c) => c == owner,
            Principal::Ingest => false,
        }
    }
}

pub(super) fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this key may not use this endpoint",
    )
}

/// The admin key, or a stored creator/ingest key (compared by SHA-256).
pub(super) async fn authorize(state: &AppState, req: &Request) -> Result<Principal, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(ApiError::unauthorized)?;
    if crate::keys::matches(presented.as_bytes(), state.admin_key.as_bytes()) {
        return Ok(Principal::Admin);
    }
    let hash = super::keys::hash(presented);
    match state.store.key_by_hash(&hash).await? {
        Some(k) if !k.revoked => Ok(match k.kind {
            KeyKind::Creator => Principal::Creator(k.creator.unwrap_or_default()),
            KeyKind::Ingest => Principal::Ingest,
        }),
        _ => Err(ApiError::unauthorized()),
    }
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

//! `/api/v1/owners/{owner}/profile`: a creator's bio page settings (title,
//! avatar, order of codes). The admin key reaches every owner; a creator key
//! its own owner only (another owner's is 404, as for codes). The owner's
//! default QR logo is shown here but set at `/owners/{owner}/logo`
//! (`logo.rs`); a PUT or DELETE of the profile keeps it.

use super::auth::Principal;
use super::body::read_json;
use super::times::format_time;
use crate::admin;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_shared::OwnerProfile;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) fn view(state: &AppState, p: &OwnerProfile) -> Value {
    json!({
        "owner": p.owner,
        "title": p.title,
        "avatar_url": p.avatar_url,
        "order": p.order,
        "qr_logo": p.qr_logo,
        "updated_at": format_time(p.updated_at),
        "links": { "page": format!("{}/@{}", state.public_base, p.owner) },
    })
}

/// The whole profile, as PUT replaces it: an absent field is cleared. The
/// QR logo is not part of it (`/owners/{owner}/logo`): it stays.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutProfile {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    order: Vec<String>,
}

fn not_found(owner: &str) -> ApiError {
    ApiError::not_found(format!("no profile for owner '{owner}'"))
}

/// The owner named in the path if the caller may see it: another creator's
/// handle, or one that cannot be a handle, is not found.
pub(super) fn visible_owner(who: &Principal, owner: &str) -> Result<String, ApiError> {
    if codelink_shared::record::validate_owner(owner).is_ok() && who.sees(owner) {
        Ok(owner.to_string())
    } else {
        Err(not_found(owner))
    }
}

pub(super) fn get(state: &AppState, owner: &str) -> Result<Response, ApiError> {
    let profile = state.profiles.get(owner).ok_or_else(|| not_found(owner))?;
    Ok(response::json(StatusCode::OK, &view(state, &profile)))
}

pub(super) async fn put(state: &AppState, owner: &str, req: Request) -> Result<Response, ApiError> {
    let body: PutProfile = read_json(state, req).await?;
    let profile = OwnerProfile {
        owner: owner.to_string(),
        title: body.title,
        avatar_url: body.avatar_url,
        order: body.order,
        ..OwnerProfile::default()
    };
    let profile = admin::put_profile(state, profile).await?;
    Ok(response::json(StatusCode::OK, &view(state, &profile)))
}

pub(super) async fn delete(state: &AppState, owner: &str) -> Result<Response, ApiError> {
    if admin::delete_profile(state, owner).await? {
        Ok(response::empty(StatusCode::NO_CONTENT))
    } else {
        Err(not_found(owner))
    }
}

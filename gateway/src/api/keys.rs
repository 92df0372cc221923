//! `/api/v1/keys`: creator and ingest keys, issued and revoked by the admin.
//! The secret is shown once, at creation; only its SHA-256 is stored.

use super::body::read_json;
use super::times::format_time;
use crate::admin;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_shared::{ApiKey, KeyKind};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    kind: KeyKind,
    #[serde(default)]
    creator: Option<String>,
}

fn view(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "kind": k.kind,
        "creator": k.creator,
        "created_at": format_time(k.created_at),
        "revoked": k.revoked,
    })
}

pub(super) async fn create(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: CreateKey = read_json(state, req).await?;
    let (key, secret) = admin::issue_key(state, body.kind, body.creator).await?;
    let mut out = view(&key);
    out["key"] = Value::String(secret);
    Ok(response::json(StatusCode::CREATED, &out))
}

pub(super) async fn list(state: &AppState) -> Result<Response, ApiError> {
    let keys = admin::list_keys(state).await?;
    let items: Vec<Value> = keys.iter().map(view).collect();
    Ok(response::json(StatusCode::OK, &json!({ "items": items })))
}

pub(super) async fn revoke(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let key = admin::revoke_key(state, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key '{id}' not found")))?;
    Ok(response::json(StatusCode::OK, &view(&key)))
}

//! `/api/v1/keys`: creator and ingest keys, issued and revoked by the admin.
//! The secret is shown once, at creation; only its SHA-256 is stored.

use super::body::read_json;
use super::times::{format_time, now};
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use crate::store::{ApiKey, KeyKind};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    let creator = match (body.kind, body.creator) {
        (KeyKind::Creator, Some(c)) => {
            codelink_shared::record::validate_owner(&c)?;
            Some(c)
        }
        (KeyKind::Creator, None) => {
            return Err(codelink_shared::ValidationError::new(
                "creator",
                "a creator key needs the creator handle it belongs to",
            )
            .into())
        }
        (KeyKind::Ingest, Some(_)) => {
            return Err(codelink_shared::ValidationError::new(
                "creator",
                "an ingest key belongs to no creator",
            )
            .into())
        }
        (KeyKind::Ingest, None) => None,
    };
    let prefix = match body.kind {
        KeyKind::Creator => "clc",
        KeyKind::Ingest => "cli",
    };
    let random: [u8; 24] = rand::random();
    let secret = format!(
        "{prefix}_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let hash = hash(&secret);
    let key = ApiKey {
        id: hash[..12].to_string(),
        kind: body.kind,
        creator,
        hash,
        created_at: now(),
        revoked: false,
    };
    state.store.put_key(key.clone()).await?;
    let mut out = view(&key);
    out["key"] = Value::String(secret);
    Ok(response::json(StatusCode::CREATED, &out))
}

pub(super) async fn list(state: &AppState) -> Result<Response, ApiError> {
    let mut keys = state.store.list_keys().await?;
    keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let items: Vec<Value> = keys.iter().map(view).collect();
    Ok(response::json(StatusCode::OK, &json!({ "items": items })))
}

pub(super) async fn revoke(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let keys = state.store.list_keys().await?;
    let mut key = keys
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::not_found(format!("key '{id}' not found")))?;
    key.revoked = true;
    state.store.put_key(key.clone()).await?;
    Ok(response::json(StatusCode::OK, &view(&key)))
}

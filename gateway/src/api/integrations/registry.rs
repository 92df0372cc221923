//! `/api/v1/integrations` (admin): register, list, read and remove
//! payment-provider endpoints. The secret is taken once and never shown.

use crate::admin::{self, MAX_INTEGRATIONS};
use crate::api::body::read_json;
use crate::api::times::format_time;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_shared::{Integration, Provider, ValidationError};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    provider: Provider,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

fn view(state: &AppState, i: &Integration) -> Value {
    json!({
        "id": i.id,
        "provider": i.provider,
        "name": i.name,
        "code": i.code,
        "url": format!("{}{}", state.public_base, i.path()),
        "secret_set": i.has_secret(),
        "created_at": format_time(i.created_at),
    })
}

pub(in crate::api) async fn create(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: Create = read_json(state, req).await?;
    let integration = admin::register_integration(
        state,
        body.provider,
        body.secret.unwrap_or_default(),
        body.name,
        body.code,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "too_many_integrations",
            format!("{MAX_INTEGRATIONS} endpoints are registered: delete one first"),
        )
    })?;
    Ok(response::json(
        StatusCode::CREATED,
        &view(state, &integration),
    ))
}

/// `PATCH`: a merge — `secret` sets or replaces the signing secret (once
/// the provider shows it, or when it is rolled), `name` and `code` change
/// (`null` clears them); absent fields stay.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    code: Option<Option<String>>,
}

/// A field that is present, `null` included (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub(in crate::api) async fn patch(
    state: &AppState,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let body: Patch = read_json(state, req).await?;
    let mut integration = state
        .store
        .integration(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(secret) = body.secret {
        if secret.is_empty() {
            return Err(ValidationError::new(
                "secret",
                "must not be empty: send the provider's signing secret",
            )
            .into());
        }
        integration.secret = secret;
    }
    if let Some(name) = body.name {
        integration.name = name.filter(|n| !n.is_empty());
    }
    if let Some(code) = body.code {
        integration.code = code;
    }
    admin::put_integration(state, &mut integration).await?;
    Ok(response::json(StatusCode::OK, &view(state, &integration)))
}

pub(in crate::api) async fn list(state: &AppState) -> Result<Response, ApiError> {
    let all = admin::list_integrations(state).await?;
    let items: Vec<Value> = all.iter().map(|i| view(state, i)).collect();
    Ok(response::json(StatusCode::OK, &json!({ "items": items })))
}

pub(in crate::api) async fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let found = state
        .store
        .integration(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(response::json(StatusCode::OK, &view(state, &found)))
}

pub(in crate::api) async fn delete(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let removed = state
        .store
        .delete_integration(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(response::json(StatusCode::OK, &view(state, &removed)))
}

pub(super) fn not_found(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no integration endpoint '{id}'"))
}

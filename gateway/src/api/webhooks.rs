//! `/api/v1/webhooks`: endpoints that receive codelink's events (admin key:
//! any, scoped to an `owner` or to every event; a creator key: its own,
//! scoped to its codes; another's is 404):
//! - `POST /api/v1/webhooks` `{url, events, description?, owner?,
//!   milestone_every?}` → 201 with the `secret`, shown this once;
//! - `GET /api/v1/webhooks` the endpoints, their status and last attempts;
//! - `GET /api/v1/webhooks/{id}` one, with its delivery log (last 50);
//! - `DELETE /api/v1/webhooks/{id}` (its pending deliveries are dropped);
//! - `POST /api/v1/webhooks/{id}/enable` re-enables a disabled endpoint.
//!
//! Parsing and rendering only: endpoints, events and delivery are
//! `codelink_analytics::webhooks`'.

use super::auth::Principal;
use super::body::read_json;
use super::times::format_ms;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::webhooks::{
    owner_for, Attempt, EndpointError, EndpointState, NewEndpoint, EVENT_TYPES,
};
use http::{header, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Invalid { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            ),
            EndpointError::Analytics(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    milestone_every: Option<u64>,
}

fn attempt_view(a: &Attempt) -> Value {
    json!({
        "event_id": a.event_id,
        "type": a.event_type,
        "attempt": a.attempt,
        "at": format_ms(a.at_ms),
        "status": a.status,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "next_retry_at": a.next_retry_ms.map_or(Value::Null, format_ms),
        "note": a.note,
    })
}

fn view(s: &EndpointState, log: bool) -> Value {
    let e = &s.endpoint;
    let mut out = json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "owner": e.owner,
        "milestone_every": (e.milestone_every > 0).then_some(e.milestone_every),
        "created_at": format_ms(e.created_ms),
        "status": if s.health.disabled.is_some() { "disabled" } else { "enabled" },
        "disabled": s.health.disabled.as_ref().map(|d| json!({
            "at": format_ms(d.at_ms),
            "reason": d.reason,
        })),
        "failing_since": s.health.failing_since_ms.map_or(Value::Null, format_ms),
    });
    let attempts: Vec<Value> = s.log.iter().map(attempt_view).collect();
    out[if log { "log" } else { "last_attempts" }] = Value::Array(attempts);
    out
}

/// The endpoint if the caller may see it; 404 otherwise.
async fn visible(state: &AppState, who: &Principal, id: &str) -> Result<EndpointState, ApiError> {
    state
        .analytics
        .webhook_endpoint_for(who, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook endpoint '{id}' not found")))
}

pub(super) async fn create(
    state: &AppState,
    who: &Principal,
    req: Request,
) -> Result<Response, ApiError> {
    let body: Create = read_json(state, req).await?;
    let Some(owner) = owner_for(who, body.owner) else {
        return Err(super::auth::forbidden());
    };
    let owner = owner?;
    let endpoint = state
        .analytics
        .create_webhook(NewEndpoint {
            url: body.url,
            events: body.events,
            description: body.description.unwrap_or_default(),
            owner,
            milestone_every: body.milestone_every.unwrap_or(0),
        })
        .await?;
    let secret = endpoint.secret.clone();
    let id = endpoint.id.clone();
    let mut out = view(
        &EndpointState {
            endpoint,
            health: Default::default(),
            log: Vec::new(),
        },
        false,
    );
    out["secret"] = json!(secret);
    let mut resp = response::json(StatusCode::CREATED, &out);
    if let Ok(location) = http::HeaderValue::try_from(format!("/api/v1/webhooks/{id}")) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

pub(super) async fn list(state: &AppState, who: &Principal) -> Result<Response, ApiError> {
    let items: Vec<Value> = state
        .analytics
        .webhook_endpoints_for(who)
        .await?
        .iter()
        .map(|s| view(s, false))
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({"items": items, "event_types": EVENT_TYPES}),
    ))
}

pub(super) async fn get(state: &AppState, who: &Principal, id: &str) -> Result<Response, ApiError> {
    let found = visible(state, who, id).await?;
    Ok(response::json(StatusCode::OK, &view(&found, true)))
}

pub(super) async fn delete(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<Response, ApiError> {
    visible(state, who, id).await?;
    state.analytics.delete_webhook(id).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub(super) async fn enable(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<Response, ApiError> {
    visible(state, who, id).await?;
    state.analytics.enable_webhook(id).await?;
    let found = visible(state, who, id).await?;
    Ok(response::json(StatusCode::OK, &view(&found, true)))
}

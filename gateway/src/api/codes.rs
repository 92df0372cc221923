//! `/api/v1/codes`: creating, reading, changing and disabling codes, and their live stats.

use super::auth::{visible, Principal};
use super::body::read_json;
use super::times::{format_time, future_expiry};
use crate::admin;
use crate::bulk::CodeInput;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_shared::{AppLinks, CodeChange, CodeRecord, CommissionPlan, QrStyle, RouteRule, Utm};
use http::{header, StatusCode};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// The API view of a code: the record plus the links a creator shares.
pub(super) fn view(state: &AppState, r: &CodeRecord) -> Value {
    let base = &state.public_base;
    let short = format!("{base}/{}", r.code);
    let channel_links: BTreeMap<&str, String> = r
        .channels
        .keys()
        .map(|c| (c.as_str(), format!("{short}/{c}")))
        .collect();
    json!({
        "code": r.code,
        "destination": r.destination,
        "owner": r.owner,
        "expires_at": r.expires_at.map_or(Value::Null, format_time),
        "enabled": r.enabled,
        "channels": r.channels,
        "commission": r.commission,
        "attribution_window_days": r.attribution_window_days,
        "qr": r.qr,
        "fallback_url": r.fallback_url,
        "app_links": r.app_links,
        "in_app_escape": r.in_app_escape,
        "visitor_token": r.visitor_token,
        "qr_logo": r.qr_logo,
        "routes": r.routes,
        "created_at": format_time(r.created_at),
        "updated_at": format_time(r.updated_at),
        "links": {
            "short": short,
            "channels": channel_links,
            "qr_png": format!("{base}/qr/{}.png", r.code),
            "qr_svg": format!("{base}/qr/{}.svg", r.code),
        }
    })
}

pub(super) async fn create(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: CodeInput = read_json(state, req).await?;
    if let Some(raw) = &body.expires_at {
        future_expiry(raw)?;
    }
    let record = body.into_record()?;
    let record = admin::create_code(state, record).await?;
    let out = view(state, &record);
    let mut resp = response::json(StatusCode::CREATED, &out);
    if let Ok(location) = http::HeaderValue::try_from(format!("/api/v1/codes/{}", record.code)) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

pub(super) fn get(state: &AppState, who: &Principal, code: &str) -> Result<Response, ApiError> {
    let entry = visible(state, who, code)?;
    Ok(response::json(StatusCode::OK, &view(state, &entry.record)))
}

pub(super) fn list(state: &AppState, who: &Principal, req: &Request) -> Result<Response, ApiError> {
    let mut cursor: Option<String> = None;
    let mut limit = DEFAULT_PAGE;
    let mut owner: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "cursor" => cursor = Some(value.to_ascii_lowercase()).filter(|c| !c.is_empty()),
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("limit: must be an integer from 1 to {MAX_PAGE}"),
                        )
                    })?
            }
            "owner" => owner = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{other}: unknown parameter (known: cursor, limit, owner)"),
                ))
            }
        }
    }
    let snapshot = state.codes.snapshot();
    let mut names: Vec<&str> = snapshot
        .iter()
        .filter(|(name, _)| cursor.as_deref().is_none_or(|c| &***name > c))
        .filter(|(_, entry)| owner.as_deref().is_none_or(|o| entry.record.owner == o))
        .filter(|(_, entry)| who.sees(&entry.record.owner))
        .map(|(name, _)| &**name)
        .collect();
    names.sort_unstable();
    let more = names.len() > limit;
    names.truncate(limit);
    let items: Vec<Value> = names
        .iter()
        .filter_map(|n| snapshot.get(*n))
        .map(|e| view(state, &e.record))
        .collect();
    let next = if more {
        names.last().map(|s| s.to_string())
    } else {
        None
    };
    Ok(response::json(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": next}),
    ))
}

/// `Some(None)` when the field is `null`, `None` when it is absent.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchCode {
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    channels: Option<BTreeMap<String, Utm>>,
    #[serde(default, deserialize_with = "nullable")]
    commission: Option<Option<CommissionPlan>>,
    #[serde(default)]
    attribution_window_days: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    qr: Option<Option<QrStyle>>,
    #[serde(default, deserialize_with = "nullable")]
    fallback_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    app_links: Option<Option<AppLinks>>,
    #[serde(default)]
    in_app_escape: Option<bool>,
    #[serde(default)]
    visitor_token: Option<bool>,
    /// Replaces every rule; `[]` removes them.
    #[serde(default)]
    routes: Option<Vec<RouteRule>>,
}

pub(super) async fn patch(
    state: &AppState,
    code: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let body: PatchCode = read_json(state, req).await?;
    let expires_at = match &body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(future_expiry(raw)?)),
    };
    let change = CodeChange {
        destination: body.destination,
        owner: body.owner,
        expires_at,
        enabled: body.enabled,
        channels: body.channels,
        commission: body.commission,
        attribution_window_days: body.attribution_window_days,
        qr: body.qr,
        fallback_url: body.fallback_url,
        app_links: body.app_links,
        in_app_escape: body.in_app_escape,
        visitor_token: body.visitor_token,
        routes: body.routes,
    };
    let record = admin::change_code(state, code, change).await?;
    Ok(response::json(StatusCode::OK, &view(state, &record)))
}

/// Disables the code: its link answers 410 from now on; the record and its
/// history stay, and a PATCH with `"enabled": true` brings it back.
pub(super) async fn disable(state: &AppState, code: &str) -> Result<Response, ApiError> {
    let change = CodeChange {
        enabled: Some(false),
        ..CodeChange::default()
    };
    let record = admin::change_code(state, code, change).await?;
    Ok(response::json(StatusCode::OK, &view(state, &record)))
}

/// Live scan counters of one code (Redis when configured, else embedded).
pub(super) async fn stats(
    state: &AppState,
    who: &Principal,
    code: &str,
) -> Result<Response, ApiError> {
    visible(state, who, code)?;
    let stats = state.analytics.code_stats(code).await?;
    let body = serde_json::to_value(&stats).unwrap_or_default();
    Ok(response::json(StatusCode::OK, &body))
}

//! The admin API, `/api/v1/...`: JSON in and out, `Authorization: Bearer <admin key>`.

use crate::error::ApiError;
use crate::response::{self, Response};
use crate::router::Request;
use crate::state::AppState;
use bytes::Bytes;
use codelink_shared::{CodeName, CodeRecord, CommissionPlan, Utm};
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    if let Err(not_until) = state.api_limiter.check_key(&peer.ip()) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many API requests from this address; slow down",
        )
        .into_response();
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(secs.max(1)));
        return resp;
    }
    match route(state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route(state: &AppState, req: Request) -> Result<Response, ApiError> {
    authorize(state, &req)?;
    let path = req.uri().path().to_string();
    let rest = path.trim_end_matches('/');
    let method = req.method().clone();
    match rest.strip_prefix("/api/v1/codes") {
        Some("") => match method {
            Method::POST => create(state, req).await,
            Method::GET => list(state, &req),
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        Some(sub)
            if sub.starts_with('/') && sub.ends_with("/stats") && sub.matches('/').count() == 2 =>
        {
            let code = canonical_path_code(&sub[1..sub.len() - "/stats".len()])?;
            match method {
                Method::GET => stats(state, &code).await,
                _ => Err(ApiError::method_not_allowed("GET")),
            }
        }
        Some(sub) if sub.starts_with('/') && !sub[1..].contains('/') => {
            let code = canonical_path_code(&sub[1..])?;
            match method {
                Method::GET => get(state, &code),
                Method::PATCH => patch(state, &code, req).await,
                Method::DELETE => disable(state, &code).await,
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            }
        }
        _ => Err(ApiError::not_found(format!("no API endpoint at {path}"))),
    }
}

fn authorize(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    if crate::keys::matches(presented.as_bytes(), state.admin_key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// A code named in a path: unknown-shaped names are simply not found.
fn canonical_path_code(raw: &str) -> Result<String, ApiError> {
    CodeName::parse(raw)
        .map(CodeName::into_string)
        .map_err(|_| ApiError::not_found(format!("code '{raw}' not found")))
}

/// Reads a JSON body: 415 unless it says JSON, 413 past the size limit, 400 when
/// it does not parse, 422 when it parses but a field has the wrong shape.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json")
        && !mime.eq_ignore_ascii_case("application/merge-patch+json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as 'Content-Type: application/json'",
        ));
    }
    let limit = state.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body: Bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::bad_request(
                "bad_body",
                format!("could not read the request body: {e}"),
            ))
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            ),
            _ => ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}")),
        }
    })
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn parse_time(field: &'static str, raw: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            ApiError::from(codelink_shared::ValidationError::new(
                field,
                format!("'{raw}' is not an RFC 3339 time such as 2027-01-31T23:59:59Z"),
            ))
        })
}

fn future_expiry(raw: &str) -> Result<i64, ApiError> {
    let t = parse_time("expires_at", raw)?;
    if t <= now() {
        return Err(
            codelink_shared::ValidationError::new("expires_at", "must be in the future").into(),
        );
    }
    Ok(t)
}

fn format_time(t: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// The API view of a code: the record plus the links a creator shares.
fn view(state: &AppState, r: &CodeRecord) -> Value {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCode {
    code: String,
    destination: String,
    owner: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    channels: BTreeMap<String, Utm>,
    #[serde(default)]
    commission: Option<CommissionPlan>,
}

fn yes() -> bool {
    true
}

async fn create(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: CreateCode = read_json(state, req).await?;
    let now = now();
    let mut record = CodeRecord {
        code: body.code,
        destination: body.destination,
        owner: body.owner,
        expires_at: body.expires_at.as_deref().map(future_expiry).transpose()?,
        enabled: body.enabled,
        channels: body.channels,
        commission: body.commission,
        created_at: now,
        updated_at: now,
    };
    record.validate()?;
    state.store.insert_new(record.clone()).await?;
    let out = view(state, &record);
    state.codes.upsert(record);
    let mut resp = response::json(StatusCode::CREATED, &out);
    if let Ok(location) = http::HeaderValue::try_from(format!(
        "/api/v1/codes/{}",
        out["code"].as_str().unwrap_or("")
    )) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

fn get(state: &AppState, code: &str) -> Result<Response, ApiError> {
    let entry = state
        .codes
        .get(code)
        .ok_or_else(|| ApiError::not_found(format!("code '{code}' not found")))?;
    Ok(response::json(StatusCode::OK, &view(state, &entry.record)))
}

fn list(state: &AppState, req: &Request) -> Result<Response, ApiError> {
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
}

async fn patch(state: &AppState, code: &str, req: Request) -> Result<Response, ApiError> {
    let body: PatchCode = read_json(state, req).await?;
    let expires_at = match &body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(future_expiry(raw)?)),
    };
    let now = now();
    let record = state
        .store
        .update(
            code,
            Box::new(move |r: &mut CodeRecord| {
                if let Some(d) = body.destination {
                    r.destination = d;
                }
                if let Some(o) = body.owner {
                    r.owner = o;
                }
                if let Some(e) = expires_at {
                    r.expires_at = e;
                }
                if let Some(e) = body.enabled {
                    r.enabled = e;
                }
                if let Some(c) = body.channels {
                    r.channels = c;
                }
                if let Some(c) = body.commission {
                    r.commission = c;
                }
                r.updated_at = now;
                Ok(())
            }),
        )
        .await?;
    let out = view(state, &record);
    state.codes.upsert(record);
    Ok(response::json(StatusCode::OK, &out))
}

/// Disables the code: its link answers 410 from now on; the record and its
/// history stay, and a PATCH with `"enabled": true` brings it back.
async fn disable(state: &AppState, code: &str) -> Result<Response, ApiError> {
    let now = now();
    let record = state
        .store
        .update(
            code,
            Box::new(move |r: &mut CodeRecord| {
                r.enabled = false;
                r.updated_at = now;
                Ok(())
            }),
        )
        .await?;
    let out = view(state, &record);
    state.codes.upsert(record);
    Ok(response::json(StatusCode::OK, &out))
}

/// Live scan counters of one code (Redis when configured, else embedded).
async fn stats(state: &AppState, code: &str) -> Result<Response, ApiError> {
    if state.codes.get(code).is_none() {
        return Err(ApiError::not_found(format!("code '{code}' not found")));
    }
    let unavailable = |why: String| {
        tracing::warn!(%why, "stats unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backend_unavailable",
            "the counter store is unreachable; retry shortly",
        )
    };
    let stats = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        state.counters.code_stats(code),
    )
    .await
    .map_err(|_| unavailable("timeout".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    let body = serde_json::to_value(&stats).unwrap_or_default();
    Ok(response::json(StatusCode::OK, &body))
}

//! The JSON API, `/api/v1/...`. Who may call what:
//! - the admin key: everything;
//! - a creator key: analytics, stats and reads of the creator's own codes
//!   (another creator's code is 404, as if it did not exist);
//! - an ingest key: `POST /api/v1/conversions` only.

mod analytics;
mod codes;
mod conversions;
mod keys;

use crate::error::ApiError;
use crate::response::Response;
use crate::router::Request;
use crate::state::AppState;
use crate::store::KeyKind;
use bytes::Bytes;
use codelink_shared::CodeName;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use std::net::SocketAddr;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this key may not use this endpoint",
    )
}

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    // Keyed like scans: behind a CDN every caller would otherwise share one bucket.
    let client = state.scans.client_ip(&req, peer);
    if let Err(not_until) = state.api_limiter.check_key(&client) {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        let wait = not_until.wait_time_from(now);
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
    let who = authorize(state, &req).await?;
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.split('/').skip(3).collect(); // "", "api", "v1"
    let admin_only = |who: &Principal| {
        if *who == Principal::Admin {
            Ok(())
        } else {
            Err(forbidden())
        }
    };
    // An ingest key reports conversions and reads nothing.
    if who == Principal::Ingest && segments.first() != Some(&"conversions") {
        return Err(forbidden());
    }
    match (segments.as_slice(), &method) {
        (["codes"], &Method::GET) => codes::list(state, &who, &req),
        (["codes"], &Method::POST) => {
            admin_only(&who)?;
            codes::create(state, req).await
        }
        (["codes"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["codes", code], m) => {
            let code = canonical_path_code(code)?;
            match *m {
                Method::GET => codes::get(state, &who, &code),
                Method::PATCH => {
                    admin_only(&who)?;
                    codes::patch(state, &code, req).await
                }
                Method::DELETE => {
                    admin_only(&who)?;
                    codes::disable(state, &code).await
                }
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            }
        }
        (["codes", code, "stats"], &Method::GET) => {
            let code = canonical_path_code(code)?;
            codes::stats(state, &who, &code).await
        }
        (["codes", _, "stats"], _) => Err(ApiError::method_not_allowed("GET")),
        (["keys"], &Method::GET) => {
            admin_only(&who)?;
            keys::list(state).await
        }
        (["keys"], &Method::POST) => {
            admin_only(&who)?;
            keys::create(state, req).await
        }
        (["keys"], _) => Err(ApiError::method_not_allowed("GET, POST")),
        (["keys", id], &Method::DELETE) => {
            admin_only(&who)?;
            keys::revoke(state, id).await
        }
        (["keys", _], _) => Err(ApiError::method_not_allowed("DELETE")),
        (["conversions"], &Method::POST) => {
            if !matches!(who, Principal::Admin | Principal::Ingest) {
                return Err(forbidden());
            }
            conversions::ingest(state, req).await
        }
        (["conversions"], _) => Err(ApiError::method_not_allowed("POST")),
        (["analytics", report], &Method::GET) => analytics::handle(state, &who, report, &req).await,
        (["analytics", _], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found(format!("no API endpoint at {path}"))),
    }
}

/// The admin key, or a stored creator/ingest key (compared by SHA-256).
async fn authorize(state: &AppState, req: &Request) -> Result<Principal, ApiError> {
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
    let hash = keys::hash(presented);
    match state.store.key_by_hash(&hash).await? {
        Some(k) if !k.revoked => Ok(match k.kind {
            KeyKind::Creator => Principal::Creator(k.creator.unwrap_or_default()),
            KeyKind::Ingest => Principal::Ingest,
        }),
        _ => Err(ApiError::unauthorized()),
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

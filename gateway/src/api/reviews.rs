//! The review of flagged conversions (admin key):
//! - `GET /api/v1/reviews?status=pending&code=&limit=&cursor=` the queue,
//!   newest first, a page at a time;
//! - `GET /api/v1/reviews/{event_id}` one flagged conversion with its decisions;
//! - `POST /api/v1/reviews/{event_id}` `{"decision":"approve"|"reject","note":…}`
//!   (approval releases the held earnings; a decided one is 409);
//! - `POST /api/v1/codes/{code}/ban` `{"reason":…}` disables the code and
//!   rejects its pending flagged conversions.
//!
//! The queue and every decision are `codelink_analytics::review`'s; who
//! decided is the admin key's id.

use super::body::read_json;
use super::times::format_ms;
use crate::admin;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::review::{Review, ReviewError, ReviewStatus, MAX_PAGE};
use codelink_shared::CodeChange;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_PAGE: usize = 50;
/// Longest note or ban reason kept.
const MAX_NOTE: usize = 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::NotFound(_) => ApiError::not_found(e.to_string()),
            ReviewError::AlreadyDecided { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_decided", e.to_string())
            }
            ReviewError::Analytics(e) => e.into(),
        }
    }
}

/// A path segment with its `%XX` escapes decoded (event ids may hold any
/// printable ASCII, `/` included as `%2F`).
fn decode_segment(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => return Err(ApiError::not_found("no such flagged conversion")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::not_found("no such flagged conversion"))
}

pub(super) fn view(r: &Review) -> Value {
    let c = &r.conversion;
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let flagged = c.flagged.as_ref();
    json!({
        "event_id": c.event_id,
        "type": c.kind.as_str(),
        "status": r.status.as_str(),
        "flags": flagged.map_or(&[][..], |f| f.flags.as_slice()),
        "held": {
            "amount": flagged.map_or(0, |f| f.held),
            "currency": opt(&c.earnings_currency),
        },
        "occurred_at": format_ms(c.occurred_ms),
        "received_at": format_ms(c.received_ms),
        "code": opt(&c.code),
        "owner": opt(&c.owner),
        "channel": opt(&c.channel),
        "rule": c.rule.as_str(),
        "scan": (!c.scan_id.is_empty()).then(|| json!({
            "scan_id": c.scan_id,
            "at": format_ms(c.scan_ms),
        })),
        "customer_id": opt(&c.customer_id),
        "visitor_id": opt(&c.visitor_id),
        "amount": c.amount,
        "currency": opt(&c.currency),
        "decisions": r.decisions.iter().map(|d| json!({
            "decision": d.decision,
            "note": d.note,
            "by": d.by,
            "at": format_ms(d.at_ms),
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn list(state: &AppState, req: &Request) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let mut status = ReviewStatus::Pending;
    let mut code: Option<String> = None;
    let mut limit = DEFAULT_PAGE;
    let mut cursor: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "status" => {
                status = ReviewStatus::parse(&v)
                    .ok_or_else(|| bad("status: one of pending, approved, rejected".to_string()))?
            }
            "code" => {
                let c =
                    codelink_shared::CodeName::parse(&v).map_err(|e| bad(format!("code: {e}")))?;
                code = Some(c.into_string());
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad(format!("limit: must be an integer from 1 to {MAX_PAGE}")))?
            }
            "cursor" => {
                // A cursor is a position: `{received ms, 20 digits}|{event id}`.
                let ok = v.len() > 21
                    && v.as_bytes()[..20].iter().all(u8::is_ascii_digit)
                    && v.as_bytes()[20] == b'|';
                if !ok {
                    return Err(bad("cursor: pass next_cursor of the previous page".into()));
                }
                cursor = Some(v.into_owned());
            }
            other => {
                return Err(bad(format!(
                    "{other}: unknown parameter (known: status, code, limit, cursor)"
                )))
            }
        }
    }
    let page = state
        .analytics
        .reviews(status, code.as_deref(), cursor.as_deref(), limit)
        .await?;
    let items: Vec<Value> = page.reviews.iter().map(view).collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": page.next }),
    ))
}

pub(super) async fn get(state: &AppState, raw_id: &str) -> Result<Response, ApiError> {
    let id = decode_segment(raw_id)?;
    match state.analytics.review(&id).await? {
        Some(r) => Ok(response::json(StatusCode::OK, &view(&r))),
        None => Err(ReviewError::NotFound(id).into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    decision: String,
    #[serde(default)]
    note: String,
}

fn check_note(field: &'static str, note: &str) -> Result<(), ApiError> {
    if note.len() > MAX_NOTE || note.chars().any(char::is_control) {
        return Err(codelink_shared::ValidationError::new(
            field,
            format!("at most {MAX_NOTE} bytes, no control characters"),
        )
        .into());
    }
    Ok(())
}

pub(super) async fn decide(
    state: &AppState,
    key_id: &str,
    raw_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let id = decode_segment(raw_id)?;
    let body: Decide = read_json(state, req).await?;
    let approve = match body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(
                codelink_shared::ValidationError::new("decision", "one of approve, reject").into(),
            )
        }
    };
    check_note("note", &body.note)?;
    let review = state
        .analytics
        .decide_review(&id, approve, &body.note, &by(key_id), now_ms())
        .await?;
    tracing::info!(event_id = %id, decision = %body.decision, "review decided");
    Ok(response::json(StatusCode::OK, &view(&review)))
}

/// Who decided, as kept with each decision.
fn by(key_id: &str) -> String {
    format!("admin:{key_id}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ban {
    reason: String,
}

/// Disables `code` (as `DELETE /api/v1/codes/{code}` does) and rejects its
/// pending flagged conversions, each with the reason as its note.
pub(super) async fn ban(
    state: &AppState,
    key_id: &str,
    code: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let body: Ban = read_json(state, req).await?;
    if body.reason.trim().is_empty() {
        return Err(codelink_shared::ValidationError::new("reason", "is required").into());
    }
    check_note("reason", &body.reason)?;
    let change = CodeChange {
        enabled: Some(false),
        ..CodeChange::default()
    };
    admin::change_code(state, code, change).await?;
    let note = format!("code banned: {}", body.reason);
    let rejected = state
        .analytics
        .reject_code_reviews(code, &note, &by(key_id), now_ms())
        .await?;
    tracing::info!(code, rejected, "code banned");
    Ok(response::json(
        StatusCode::OK,
        &json!({ "code": code, "enabled": false, "reason": body.reason, "rejected": rejected }),
    ))
}

//! `GET /api/v1/codes/{code}/scans?limit=&cursor=`: a code's recorded scans,
//! newest first, a page at a time (drill-down; the only read of raw scans).
//! A creator sees when, where from and on what each scan came, not the
//! visitor id or the IP prefix; the admin key sees those too.

use super::auth::{visible, Principal};
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::event::Scan;
use http::StatusCode;
use serde_json::{json, Value};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

pub(super) async fn list(
    state: &AppState,
    who: &Principal,
    code: &str,
    req: &Request,
) -> Result<Response, ApiError> {
    visible(state, who, code)?;
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let mut limit = DEFAULT_PAGE;
    let mut cursor: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad(format!("limit: must be an integer from 1 to {MAX_PAGE}")))?
            }
            "cursor" => cursor = Some(v.into_owned()).filter(|c| !c.is_empty()),
            other => {
                return Err(bad(format!(
                    "{other}: unknown parameter (known: limit, cursor)"
                )))
            }
        }
    }
    let page = state
        .analytics
        .recent_scans(code, cursor.as_deref(), limit)
        .await?;
    let admin = *who == Principal::Admin;
    let items: Vec<Value> = page.scans.iter().map(|s| view(s, admin)).collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": page.next }),
    ))
}

fn view(s: &Scan, admin: bool) -> Value {
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let mut v = json!({
        "scan_id": s.scan_id,
        "at": super::times::format_ms(s.ts_ms),
        "channel": opt(&s.channel),
        "source": s.source,
        "human": s.bot_reason.is_empty(),
        "verdict": s.verdict().as_str(),
        "bot_reason": opt(&s.bot_reason),
        "unique": s.is_unique,
        "device": opt(&s.device),
        "os": opt(&s.os),
        "browser": opt(&s.browser),
        "in_app": opt(&s.in_app),
        "country": opt(&s.country),
        "referrer_host": opt(&s.referrer_host),
        "user_agent": opt(&s.user_agent),
        "route": opt(&s.route),
    });
    if admin {
        v["visitor_id"] = json!(s.visitor_id);
        v["ip_prefix"] = json!(s.ip_prefix);
    }
    v
}

//! `POST /api/v1/erasure` (admin): erases a visitor's or a customer's
//! identifiers from every store (GDPR art. 17). The rows stay with the ids
//! blanked, so every number stays right; the answer says what changed.

use super::body::read_json;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::Subject;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Erase {
    #[serde(default)]
    visitor_id: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
}

fn invalid(message: &str) -> ApiError {
    codelink_shared::ValidationError::new("body", message).into()
}

pub(super) async fn erase(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: Erase = read_json(state, req).await?;
    let who = match (body.visitor_id, body.customer_id) {
        (Some(v), None) => {
            // A `cl_vid` cookie value `{id}.{signature}` names the id before the dot.
            let id = v.split('.').next().unwrap_or("").trim().to_string();
            if id.is_empty() || id.len() > 128 {
                return Err(invalid("visitor_id must be 1 to 128 characters"));
            }
            Subject::Visitor(id)
        }
        (None, Some(c)) => {
            if c.trim().is_empty() || c.len() > 256 {
                return Err(invalid("customer_id must be 1 to 256 characters"));
            }
            Subject::Customer(c)
        }
        _ => return Err(invalid("give exactly one of visitor_id and customer_id")),
    };
    let (kind, id) = match &who {
        Subject::Visitor(v) => ("visitor", v.clone()),
        Subject::Customer(c) => ("customer", c.clone()),
    };
    let erased = state.analytics.erase(who).await?;
    tracing::info!(kind, "erasure done");
    Ok(response::json(
        StatusCode::OK,
        &json!({ kind: id, "erased": erased }),
    ))
}

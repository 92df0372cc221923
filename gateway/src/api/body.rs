//! Reading a JSON request body, within the size limit.

use crate::error::ApiError;
use crate::request::{read_body, BodyError, Request};
use crate::state::AppState;
use bytes::Bytes;
use http::{header, StatusCode};

/// Reads a JSON object body (every body but a conversion batch's): as
/// [`read_json_any`], and 422 unless the body is an object. (serde would take
/// a struct's fields from an array too, in order: `[null, null]` is no
/// body a client means.)
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
) -> Result<T, ApiError> {
    read(state, req, true).await
}

/// Reads a JSON body of any shape: 415 unless it says JSON, 413 past the size
/// limit, 408 when it does not arrive within `--body-timeout-ms`, 400 when it
/// does not parse, 422 when it parses but a field has the wrong shape.
pub(super) async fn read_json_any<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
) -> Result<T, ApiError> {
    read(state, req, false).await
}

async fn read<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
    object: bool,
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
    let body = read_bounded(state, req, limit, || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    })
    .await?;
    if object {
        // Syntax errors are answered below, as for any body.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
            if !value.is_object() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "body: must be a JSON object",
                ));
            }
        }
    }
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

/// Reads a body of at most `limit` bytes within `--body-timeout-ms`:
/// `too_large` (413) when its declared or actual length is past the limit,
/// 408 when it does not arrive in time, 400 when the connection breaks.
pub(super) async fn read_bounded(
    state: &AppState,
    req: Request,
    limit: usize,
    too_large: impl Fn() -> ApiError,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let deadline = state.config.body_timeout();
    match read_body(req.into_body(), limit, deadline).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Broken(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("could not read the request body: {e}"),
        )),
        Err(BodyError::TooSlow) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms; send it whole",
                deadline.as_millis()
            ),
        )),
    }
}

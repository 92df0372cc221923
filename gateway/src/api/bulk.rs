//! `/api/v1/codes/import` and `/api/v1/codes/export`: codes in bulk, as CSV
//! or JSON lines (the formats and the import's rules: [`crate::bulk`]).

use super::auth::Principal;
use super::body::read_bounded;
use crate::bulk::{self, Mode, Options};
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

enum Format {
    Csv,
    Jsonl,
}

/// `POST /api/v1/codes/import[?dry_run=true][&mode=upsert|create_only][&atomic=true]`
/// (admin): 200 with the counts and every failed row, whatever the rows
/// hold; 4xx only for the request as a whole.
pub(super) async fn import(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let mut options = Options {
        dry_run: false,
        mode: Mode::Upsert,
        atomic: false,
    };
    for (key, value) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "dry_run" => options.dry_run = flag(&key, &value)?,
            "atomic" => options.atomic = flag(&key, &value)?,
            "mode" => {
                options.mode = match value.as_ref() {
                    "upsert" => Mode::Upsert,
                    "create_only" => Mode::CreateOnly,
                    other => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("mode: '{other}' is not upsert or create_only"),
                        ))
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{other}: unknown parameter (known: dry_run, mode, atomic)"),
                ))
            }
        }
    }
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match mime.as_str() {
        "text/csv" => Format::Csv,
        "application/x-ndjson" | "application/jsonl" => Format::Jsonl,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the file as 'Content-Type: text/csv' or, one JSON object a line, \
                 'Content-Type: application/x-ndjson'",
            ))
        }
    };
    let limit = state.config.max_import_bytes;
    let body = read_bounded(state, req, limit, || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the import exceeds {limit} bytes; split the file (`codelink import` sends it in parts)"
            ),
        )
    })
    .await?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ApiError::bad_request(
            "invalid_encoding",
            format!("line {line} is not UTF-8; save the file as UTF-8"),
        )
    })?;
    let rows = match format {
        Format::Csv => bulk::read_csv(text)?,
        Format::Jsonl => bulk::read_jsonl(text),
    };
    let max = state.config.max_import_rows;
    if rows.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!(
                "{} rows; at most {max} per request: split the file (`codelink import` sends 1,000 rows a request)",
                rows.len()
            ),
        ));
    }
    let total = rows.len();
    let report = bulk::import(state, rows, options).await?;
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "line": e.line,
                "code": e.code,
                "error": {"code": e.error.code, "message": e.error.message},
            })
        })
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "dry_run": options.dry_run,
            "mode": match options.mode { Mode::Upsert => "upsert", Mode::CreateOnly => "create_only" },
            "atomic": options.atomic,
            "applied": report.applied,
            "rows": total,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "failed": report.failed,
            "errors": errors,
        }),
    ))
}

fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("{key}: '{value}' is not true or false"),
        )),
    }
}

/// `GET /api/v1/codes/export[?format=csv|jsonl][&owner=…]`: every code the
/// key sees (a creator key: their own), by name, in the shape the import
/// reads back unchanged.
pub(super) async fn export(
    state: &AppState,
    who: &Principal,
    req: &Request,
) -> Result<Response, ApiError> {
    let mut format = Format::Csv;
    let mut owner: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "format" => {
                format = match value.as_ref() {
                    "csv" => Format::Csv,
                    "jsonl" => Format::Jsonl,
                    other => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("format: '{other}' is not csv or jsonl"),
                        ))
                    }
                }
            }
            "owner" => owner = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{other}: unknown parameter (known: format, owner)"),
                ))
            }
        }
    }
    let records = bulk::export(state, who, owner.as_deref()).await?;
    let (body, content_type, file) = match format {
        Format::Csv => (
            bulk::write_csv(&records),
            "text/csv; charset=utf-8",
            "codes.csv",
        ),
        Format::Jsonl => (
            bulk::write_jsonl(&records),
            "application/x-ndjson",
            "codes.jsonl",
        ),
    };
    let mut resp = response::with_body(StatusCode::OK, content_type, body);
    if let Ok(v) = HeaderValue::try_from(format!("attachment; filename=\"{file}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

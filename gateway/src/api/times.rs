//! Times in the API: RFC 3339 in, RFC 3339 out.

use crate::error::ApiError;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(super) fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn parse_time(field: &'static str, raw: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            ApiError::from(codelink_shared::ValidationError::new(
                field,
                format!("'{raw}' is not an RFC 3339 time such as 2027-01-31T23:59:59Z"),
            ))
        })
}

pub(super) fn future_expiry(raw: &str) -> Result<i64, ApiError> {
    let t = parse_time("expires_at", raw)?;
    if t <= now() {
        return Err(
            codelink_shared::ValidationError::new("expires_at", "must be in the future").into(),
        );
    }
    Ok(t)
}

pub(super) fn format_time(t: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// RFC 3339 with milliseconds, from Unix ms.
pub(super) fn format_ms(ms: u64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

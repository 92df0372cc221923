//! The one error type of the HTTP boundary: every failure a client can cause or
//! see becomes `{"error":{"code","message"}}` with a fitting status.

use crate::response::{self, Response};
use crate::store::StoreError;
use codelink_shared::ValidationError;
use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable reason (`invalid_json`, `not_found`, …).
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// The methods for an `Allow` header (a 405 must have one: RFC 9110).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: capped(message.into()),
            retry_after: None,
            allow: None,
        }
    }

    /// 429 `rate_limited` from a limiter's refusal, with `Retry-After`
    /// rounded up to whole seconds.
    pub fn rate_limited(
        message: &'static str,
        not_until: governor::NotUntil<governor::clock::QuantaInstant>,
    ) -> Self {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        let wait = not_until.wait_time_from(now);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
        )
    }

    pub fn method_not_allowed(allowed: &'static str) -> Self {
        Self {
            allow: Some(allowed),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("allowed methods: {allowed}"),
            )
        }
    }

    pub fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut resp = response::json(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Messages quote the input they refuse; a long input is quoted in part
/// (every message is cut here, where it is made).
const MAX_MESSAGE: usize = 500;

fn capped(message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
    }
}

impl From<codelink_analytics::Error> for ApiError {
    fn from(e: codelink_analytics::Error) -> Self {
        use codelink_analytics::Error as E;
        let unavailable = |code: &'static str, message: String| {
            Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        };
        match e {
            E::InvalidQuery(m) => Self::bad_request("invalid_query", m),
            E::Busy { retry_after } => Self {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..unavailable(
                    "busy",
                    "too many analytics queries are running; retry shortly".into(),
                )
            },
            E::Timeout(limit) => Self {
                retry_after: Some(5),
                ..unavailable(
                    "query_timeout",
                    format!(
                        "the query did not finish within {} ms; narrow the range or the codes",
                        limit.as_millis()
                    ),
                )
            },
            E::NotStored => unavailable(
                "not_stored",
                "could not be stored right now; retry with the same event_id".into(),
            ),
            E::Migrating { .. } => Self {
                retry_after: Some(10),
                ..unavailable("migrating", e.to_string())
            },
            E::MigrationRequired => unavailable("migration_required", e.to_string()),
            other => {
                tracing::warn!(error = %other, "analytics backend unavailable");
                Self {
                    retry_after: Some(1),
                    ..unavailable(
                        "backend_unavailable",
                        "the analytics store is unreachable; retry shortly".into(),
                    )
                }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "code_taken", e.to_string()),
            StoreError::NotFound(_) => Self::not_found(e.to_string()),
            StoreError::Invalid(v) => v.into(),
            StoreError::QrUnreadable(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "qr_unreadable", m)
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    "the code store is unreachable; retry shortly",
                )
            }
        }
    }
}

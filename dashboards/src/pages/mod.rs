//! One module per page (or group of forms), and the responses they share.

pub mod assets;
pub mod code;
pub mod codes;
pub mod edit;
pub mod export;
pub mod funnel;
pub mod integrations;
pub mod keys;
pub mod providers;
pub mod reviews;
pub mod sign_in;
pub mod webhooks;

use crate::console::ConsoleError;
use crate::html::{self, esc};
use crate::{Console, Ctx, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;

pub fn html_response(status: StatusCode, body: String) -> Response {
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// 303 See Other: after a form, and to the sign-in page.
pub fn redirect(to: &str) -> Response {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::try_from(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::try_from(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn message(title: &str, text: &str) -> String {
    format!(
        "<section class=\"card narrow\"><h1>{}</h1><p>{}</p><p><a href=\"/ui/codes\">Back to codes</a></p></section>",
        esc(title),
        esc(text)
    )
}

/// A page that says what went wrong and what to do.
pub fn error<C: Console>(
    ctx: Option<&Ctx<'_, C>>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let Some(ctx) = ctx else {
        return error_plain(status, title, text);
    };
    html_response(
        status,
        html::page(&ctx.frame(title, ""), &message(title, text)),
    )
}

/// [`error`] for requests without a session.
pub fn error_plain(status: StatusCode, title: &str, text: &str) -> Response {
    let frame = html::Frame {
        title,
        who: None,
        csrf: "",
        nav: "",
    };
    html_response(status, html::page(&frame, &message(title, text)))
}

pub fn not_found<C: Console>(ctx: Option<&Ctx<'_, C>>) -> Response {
    error(
        ctx,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here, or it is not yours to see.",
    )
}

pub fn unavailable(e: &ConsoleError) -> Response {
    let text = match e {
        ConsoleError::Unavailable(m) => {
            format!("The code store did not answer ({m}). Retry in a moment.")
        }
        other => format!("{other:?}"),
    };
    error_plain(StatusCode::SERVICE_UNAVAILABLE, "Try again shortly", &text)
}

/// An analytics error as a page: a bad range is the user's to fix; the rest
/// are the server's and pass.
pub fn analytics_error<C: Console>(ctx: &Ctx<'_, C>, e: codelink_analytics::Error) -> Response {
    use codelink_analytics::Error as E;
    let retry = match &e {
        E::InvalidQuery(_) => None,
        E::Busy { .. } => Some(1u64),
        _ => Some(5),
    };
    let (status, title, text) = match e {
        E::InvalidQuery(m) => (StatusCode::BAD_REQUEST, "Cannot show this range", m),
        E::Busy { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many reports are being computed right now. Reload in a second.".into(),
        ),
        E::Timeout(limit) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Took too long",
            format!(
                "The numbers did not come back within {} ms. Pick a shorter range.",
                limit.as_millis()
            ),
        ),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Numbers unavailable",
            format!("The analytics store did not answer ({other}). Reload in a moment."),
        ),
    };
    let mut resp = error(Some(ctx), status, title, &text);
    if let Some(secs) = retry {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// 429 for a client asking for pages faster than a person does.
pub fn too_many(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Response {
    let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
    let wait = not_until.wait_time_from(now).as_secs().max(1);
    let mut resp = error_plain(
        StatusCode::TOO_MANY_REQUESTS,
        "Slow down",
        &format!("Too many pages from this address. Wait {wait} s, then reload."),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    resp
}

/// Runs two analytics reads concurrently (each under its own query slot);
/// the first error wins.
pub async fn both<A, B>(
    a: impl std::future::Future<Output = Result<A, codelink_analytics::Error>>,
    b: impl std::future::Future<Output = Result<B, codelink_analytics::Error>>,
) -> Result<(A, B), codelink_analytics::Error> {
    tokio::try_join!(a, b)
}

/// A bad query parameter (range, zone): 400 with the reason.
pub fn bad_query<C: Console>(ctx: &Ctx<'_, C>, reason: &str) -> Response {
    error(
        Some(ctx),
        StatusCode::BAD_REQUEST,
        "Cannot show this range",
        reason,
    )
}

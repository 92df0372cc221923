//! Dispatch by the first path segment, and per-request metrics.

use crate::metrics::Route;
use crate::request::Request;
use crate::response::Response;
use crate::state::AppState;
use crate::{api, bio, console, ops, qr, redirect, tag};
use std::net::SocketAddr;
use std::time::Instant;

/// About how many bytes the request head took (hyper reads a head that
/// arrives whole at once whatever its size: this bound is checked here).
fn head_bytes(req: &Request) -> usize {
    let uri = req.uri();
    uri.path().len()
        + uri.query().map_or(0, str::len)
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    let started = Instant::now();
    if head_bytes(&req) > crate::server::MAX_HEAD_BYTES {
        let resp = crate::error::ApiError::new(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "head_too_large",
            format!(
                "the request's headers exceed {} bytes",
                crate::server::MAX_HEAD_BYTES
            ),
        )
        .into_response();
        state
            .metrics
            .observe(Route::Other, resp.status().as_u16(), started.elapsed());
        return resp;
    }
    let path = req.uri().path();
    let first = path[1.min(path.len())..].split('/').next().unwrap_or("");
    let (route, resp) = match first {
        "api" => (Route::Api, api::handle(state, req, peer).await),
        "qr" => (Route::Qr, qr::handle(state, &req, peer).await),
        "ui" => (Route::Ui, console::handle(state, req, peer).await),
        // `.` is not a slug byte: no code can be named like the tag.
        "t.js" => (Route::Tag, tag::handle(&req)),
        "healthz" | "readyz" | "metrics" => {
            let route = if first == "metrics" {
                Route::Metrics
            } else {
                Route::Health
            };
            (route, ops::handle(state, &req).await)
        }
        // `@` is not a slug byte: no code can be named like a bio page.
        _ if first.starts_with('@') => (Route::Bio, bio::handle(state, &req)),
        _ => match redirect::handle(state, &req, peer) {
            Some(resp) => (Route::Redirect, resp),
            None => (Route::Other, redirect::not_found()),
        },
    };
    state
        .metrics
        .observe(route, resp.status().as_u16(), started.elapsed());
    resp
}

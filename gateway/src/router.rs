//! Dispatch by the first path segment, and per-request metrics.

use crate::metrics::Route;
use crate::request::Request;
use crate::response::Response;
use crate::state::AppState;
use crate::{api, console, ops, qr, redirect};
use std::net::SocketAddr;
use std::time::Instant;

pub async fn handle(state: &AppState, req: Request, peer: SocketAddr) -> Response {
    let started = Instant::now();
    let path = req.uri().path();
    let first = path[1.min(path.len())..].split('/').next().unwrap_or("");
    let (route, resp) = match first {
        "api" => (Route::Api, api::handle(state, req, peer).await),
        "qr" => (Route::Qr, qr::handle(state, &req).await),
        "ui" => (Route::Ui, console::handle(state, req, peer).await),
        "healthz" | "readyz" | "metrics" => {
            let route = if first == "metrics" {
                Route::Metrics
            } else {
                Route::Health
            };
            (route, ops::handle(state, &req).await)
        }
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

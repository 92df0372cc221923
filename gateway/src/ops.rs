//! Operations endpoints: `/healthz` (the process answers), `/readyz` (its
//! backends answer and it is not draining), `/metrics` (Prometheus text).

use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use http::{header, HeaderValue, Method, StatusCode};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub async fn handle(state: &AppState, req: &Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return ApiError::method_not_allowed("GET, HEAD").into_response();
    }
    match req.uri().path() {
        "/healthz" => response::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" => ready(state).await,
        "/metrics" => {
            let mut text = state.metrics.render(state.codes.len());
            state.analytics.render_metrics(&mut text);
            let mut resp = response::text(StatusCode::OK, text);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => ApiError::not_found("no such endpoint").into_response(),
    }
}

async fn ready(state: &AppState) -> Response {
    let not_ready = |message: String| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message).into_response()
    };
    if state.draining.load(Ordering::Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this gateway is shutting down and still serves for --drain-secs; send new traffic to another instance",
        )
        .into_response();
    }
    let store = state.store.kind();
    let backends = match state.analytics.ready().await {
        Err(e) => Err(e.to_string()),
        Ok(()) => match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{store}: {e}")),
            Err(_) => Err(format!("{store}: no answer within 2 s")),
        },
    };
    let codes = state.codes.len();
    match backends {
        Ok(()) => response::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "store": store, "codes": codes}),
        ),
        // A backend away (one Redis master failing over, ClickHouse down) is
        // the same on every gateway: answering 503 would make the balancer
        // drop them all, while each still redirects from its table in memory
        // and spools its scans. So it is ready, degraded, with the reason.
        Err(reason) if codes > 0 => response::json(
            StatusCode::OK,
            &serde_json::json!({"status": "degraded", "store": store, "codes": codes, "reason": reason}),
        ),
        // Nothing to serve from memory either.
        Err(reason) => not_ready(reason),
    }
}

//! `POST /api/v1/integrations/{stripe|shopify}/{id}`: a provider's event,
//! verified, mapped and reported.
//!
//! Answers (providers retry any non-2xx, for days):
//! - 200 `created` / `duplicate` (the event id was recorded before: a
//!   provider retry, or another event about the same payment) / `ignored`
//!   (an event type codelink does not take, a payment of 0, a refund of a
//!   purchase codelink never saw) — nothing to retry;
//! - 404 unknown endpoint (or one of the other provider);
//! - 401 `no_secret` (the endpoint's secret is not set yet),
//!   `missing_signature`, `bad_signature`, and `signature_expired` for a
//!   genuine Stripe signature more than 300 s from now: not a malformed
//!   request but one whose sender cannot be trusted now; a retry from Stripe
//!   is signed afresh and passes;
//! - 400 `malformed_signature` (header not in the provider's format),
//!   `invalid_json`, `missing_topic` (Shopify);
//! - 409 `replayed`: the exact Stripe delivery (same event id and same
//!   signed timestamp) seen before. Stripe signs every retry with a new
//!   timestamp, so a repeat of both is someone replaying a captured request.
//!   Shopify signs no time, so a repeated Shopify delivery cannot be told
//!   from its retry: it is answered 200 `duplicate`, recording nothing;
//! - 200 `refused` with the reason: a verified event that lacks what a
//!   conversion needs, or that the ledger refuses (a refund above what is
//!   left, another currency) — a retry would be refused alike;
//! - 413 over 1 MiB, 503 when conversions cannot be stored.

use super::mapped::Mapped;
use super::registry::not_found;
use super::signature::{self, Refusal, STRIPE_TOLERANCE_SECS};
use super::{shopify, stripe};
use crate::api::body::read_bounded;
use crate::api::conversions;
use crate::api::times::now;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_shared::{Integration, Provider};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

/// Largest event body taken (a Shopify order with many lines is far past
/// the API's `--max-body-bytes`).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub(in crate::api) async fn receive(
    state: &AppState,
    provider: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let provider = Provider::parse(provider).ok_or_else(|| not_found(id))?;
    // Only ids of our own shape reach the store.
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found(id));
    }
    let integration = state
        .store
        .integration(id)
        .await?
        .filter(|i| i.provider == provider)
        .ok_or_else(|| not_found(id))?;
    if !integration.has_secret() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_secret",
            "this endpoint has no signing secret yet: set it with PATCH /api/v1/integrations/{id} \
             {\"secret\": …} (the provider shows it once the endpoint's URL is entered)",
        ));
    }
    let headers = req.headers().clone();
    let body = read_bounded(state, req, MAX_EVENT_BYTES, || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("an event body is at most {MAX_EVENT_BYTES} bytes"),
        )
    })
    .await?;
    let answered = match provider {
        Provider::Stripe => from_stripe(state, &integration, &headers, &body).await,
        Provider::Shopify => from_shopify(state, &integration, &headers, &body).await,
    };
    match answered {
        // A genuine event codelink cannot take (it lacks what a conversion
        // needs, or the ledger refuses it: a refund above what is left of its
        // purchase, another currency) is not made takeable by a retry: 200
        // `refused` with the reason (shown in the provider's delivery log),
        // so the provider neither retries it for days nor disables the
        // endpoint over it.
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            tracing::warn!(integration = %integration.id, code = e.code, reason = %e.message, "a provider event was refused");
            Ok(status(
                "refused",
                Some(format!("{}: {}", e.code, e.message)),
                None,
            ))
        }
        other => other,
    }
}

async fn from_stripe(
    state: &AppState,
    integration: &Integration,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let header = text_header(headers, "stripe-signature")?;
    let t = signature::stripe(header, body, &integration.secret, now()).map_err(refused)?;
    let event = parse(body)?;
    let mapped = stripe::map(&event, integration.code.as_deref())?;
    if let Mapped::Report { .. } = mapped {
        // Remembered until the signature is too old to be taken anyway.
        let evt = event.get("id").and_then(Value::as_str).unwrap_or_default();
        let delivery = format!("{}:{evt}:{t}", integration.id);
        let until = t + STRIPE_TOLERANCE_SECS + 60;
        if !state.store.first_delivery(&delivery, until).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "replayed",
                format!(
                    "this exact delivery of {evt} (signed at {t}) was received before; \
                     Stripe signs each retry afresh"
                ),
            ));
        }
    }
    answer(state, mapped).await
}

async fn from_shopify(
    state: &AppState,
    integration: &Integration,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let header = text_header(headers, "x-shopify-hmac-sha256")?;
    signature::shopify(header, body, &integration.secret).map_err(refused)?;
    let topic = text_header(headers, "x-shopify-topic")?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_topic",
            "send the X-Shopify-Topic header (orders/create, orders/paid, refunds/create)",
        )
    })?;
    let event = parse(body)?;
    let is_code = |code: &str| state.codes.get(code).is_some();
    let mapped = shopify::map(topic, &event, integration.code.as_deref(), &is_code)?;
    answer(state, mapped).await
}

/// Reports a mapped event and answers the provider.
async fn answer(state: &AppState, mapped: Mapped) -> Result<Response, ApiError> {
    let (event, fallback) = match mapped {
        Mapped::Ignored(reason) => return Ok(status("ignored", Some(reason), None)),
        Mapped::Report { event, fallback } => (event, fallback),
    };
    let event_id = event["event_id"].as_str().unwrap_or_default().to_string();
    let mut result = conversions::report(state, event).await;
    if let (Err(e), Some(fallback)) = (&result, fallback) {
        if unknown_purchase(e) {
            result = conversions::report(state, fallback).await;
        }
    }
    match result {
        Ok((outcomes, _)) => {
            let Some(outcome) = outcomes.first() else {
                return Ok(status("ignored", None, None));
            };
            let kind = if outcome.duplicate {
                "duplicate"
            } else {
                "created"
            };
            Ok(status(kind, None, Some(conversions::view(outcome))))
        }
        Err(e) if unknown_purchase(&e) => Ok(status("ignored", Some(e.message), None)),
        // The payment was recorded from another event (a checkout session
        // and its first invoice), whose answer stands.
        Err(e) if e.code == "idempotency_conflict" => Ok(status(
            "duplicate",
            Some(format!(
                "{event_id} was recorded from another event about the same payment"
            )),
            None,
        )),
        Err(e) => Err(e),
    }
}

/// A refund whose purchase was never reported (or is fully refunded): the
/// conversions API refuses it naming `purchase_event_id` or `customer_id`
/// (`ledger::decide_refund`). A provider retry cannot change that, so it
/// is answered as ignored, with the reason.
fn unknown_purchase(e: &ApiError) -> bool {
    e.code == "invalid_field"
        && (e.message.starts_with("purchase_event_id: no purchase")
            || e.message.starts_with("customer_id: no purchase"))
}

fn status(kind: &str, reason: Option<String>, conversion: Option<Value>) -> Response {
    let mut body = json!({ "status": kind });
    if let Some(reason) = reason {
        body["reason"] = Value::String(reason);
    }
    if let Some(conversion) = conversion {
        body["conversion"] = conversion;
    }
    response::json(StatusCode::OK, &body)
}

fn text_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request(
                    "malformed_signature",
                    format!("the {name} header is not ASCII"),
                )
            })
        })
        .transpose()
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}")))
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_signature",
            "no signature: the provider signs every event (Stripe-Signature, \
             X-Shopify-Hmac-Sha256); post only what the provider sends",
        ),
        Refusal::Malformed(why) => ApiError::bad_request(
            "malformed_signature",
            format!("the signature header is not in the provider's format: {why}"),
        ),
        Refusal::Mismatch => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the signature does not match the body with this endpoint's secret: register \
             the signing secret of this very endpoint, and forward the body unchanged",
        ),
        Refusal::Expired { age_secs } => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_expired",
            format!(
                "the signature was made {age_secs} s from now; it is taken within \
                 {STRIPE_TOLERANCE_SECS} s: check this server's clock (an old delivery \
                 replayed is refused)"
            ),
        ),
    }
}

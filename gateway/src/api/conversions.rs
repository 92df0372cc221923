//! `POST /api/v1/conversions`: signups, purchases and refunds reported by a
//! brand, attributed and answered with the decision (202).
//!
//! This module parses and renders; deciding, claiming (idempotency by
//! `event_id`) and recording are `codelink_analytics::Analytics::report_conversions`.

use super::body::read_json_any;
use super::times::parse_time;
use crate::error::ApiError;
use crate::request::Request;
use crate::response::{self, Response};
use crate::state::AppState;
use codelink_analytics::conversions::Outcome;
use codelink_analytics::event::ConversionKind;
use codelink_analytics::ledger::{CodeTerms, Reported};
use codelink_shared::currency::MAX_AMOUNT;
use codelink_shared::{CodeName, ValidationError};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Most events in one request.
pub const MAX_BATCH: usize = 100;
const MAX_ID_LEN: usize = 128;
/// A conversion may be stamped this far in the future (clock skew).
const FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;

struct Event {
    event_id: String,
    kind: ConversionKind,
    occurred_at: Option<String>,
    scan_id: Option<String>,
    code: Option<String>,
    visitor_id: Option<String>,
    customer_id: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    purchase_event_id: Option<String>,
    ip: Option<String>,
}

/// The fields of an event, as sent.
const FIELDS: [&str; 11] = [
    "event_id",
    "type",
    "occurred_at",
    "scan_id",
    "code",
    "visitor_id",
    "customer_id",
    "amount",
    "currency",
    "purchase_event_id",
    "ip",
];

/// Field `name` of `object`, taken out of it: `None` when absent or null.
fn take<T: DeserializeOwned>(
    index: Option<usize>,
    object: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, ApiError> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| invalid(index, name, e.to_string())),
    }
}

/// One event of the body, each field checked on its own so that an error
/// names the field (and, in a batch, the event's index).
fn parse_event(index: Option<usize>, value: Value) -> Result<Event, ApiError> {
    let unprocessable =
        |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
    let Value::Object(mut object) = value else {
        return Err(unprocessable(match index {
            Some(i) => format!("[{i}]: must be an object (an event)"),
            None => "body: must be an event (an object), or an array of events".to_string(),
        }));
    };
    let event = Event {
        event_id: take(index, &mut object, "event_id")?
            .ok_or_else(|| invalid(index, "event_id", "is required"))?,
        kind: take(index, &mut object, "type")?.ok_or_else(|| {
            invalid(
                index,
                "type",
                "is required: one of signup, purchase, refund",
            )
        })?,
        occurred_at: take(index, &mut object, "occurred_at")?,
        scan_id: take(index, &mut object, "scan_id")?,
        code: take(index, &mut object, "code")?,
        visitor_id: take(index, &mut object, "visitor_id")?,
        customer_id: take(index, &mut object, "customer_id")?,
        amount: take(index, &mut object, "amount")?,
        currency: take(index, &mut object, "currency")?,
        purchase_event_id: take(index, &mut object, "purchase_event_id")?,
        ip: take(index, &mut object, "ip")?,
    };
    if let Some(unknown) = object.keys().next() {
        // Named as sent (at most 64 characters of it).
        let name: String = unknown.chars().take(64).collect();
        let at = index.map_or_else(String::new, |i| format!("[{i}]."));
        return Err(unprocessable(format!(
            "{at}{name}: unknown field; the fields are {}",
            FIELDS.join(", ")
        )));
    }
    Ok(event)
}

fn invalid(index: Option<usize>, field: &'static str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let e = ValidationError::new(field, message);
    let mut api: ApiError = e.into();
    if let Some(i) = index {
        api.message = format!("[{i}].{}", api.message);
    }
    api
}

fn check_id(
    index: Option<usize>,
    field: &'static str,
    v: &Option<String>,
) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid(
            index,
            field,
            format!("must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"),
        )),
    }
}

fn validate(
    index: Option<usize>,
    e: Event,
    now_ms: u64,
    max_age_days: u32,
) -> Result<Reported, ApiError> {
    let event_id = check_id(index, "event_id", &Some(e.event_id))?
        .ok_or_else(|| invalid(index, "event_id", "is required"))?;
    let occurred_ms = match &e.occurred_at {
        None => now_ms,
        Some(raw) => {
            let secs_ms = parse_time("occurred_at", raw).map_err(|mut err| {
                if let Some(i) = index {
                    err.message = format!("[{i}].{}", err.message);
                }
                err
            })?;
            let ms = u64::try_from(secs_ms)
                .map_err(|_| invalid(index, "occurred_at", "must be after 1970"))?
                * 1000;
            if ms > now_ms + FUTURE_SKEW_MS {
                return Err(invalid(index, "occurred_at", "must not be in the future"));
            }
            if ms < now_ms.saturating_sub(u64::from(max_age_days) * 86_400_000) {
                return Err(invalid(
                    index,
                    "occurred_at",
                    format!(
                        "is more than {max_age_days} days ago (--max-event-age-days): \
                         too old to be attributed or held"
                    ),
                ));
            }
            ms
        }
    };
    let code = match e.code.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(
            CodeName::parse(raw)
                .map_err(|v| invalid(index, "code", v.message))?
                .into_string(),
        ),
    };
    let (amount, currency) = match (e.kind, e.amount, e.currency) {
        (ConversionKind::Signup, None | Some(0), None) => (0, String::new()),
        (_, Some(a), _) if a < 0 => {
            return Err(invalid(
                index,
                "amount",
                "must not be negative (a refund is its own type)",
            ))
        }
        (_, Some(a), _) if a as u64 > MAX_AMOUNT => {
            return Err(invalid(
                index,
                "amount",
                format!("must be at most {MAX_AMOUNT} (minor units)"),
            ))
        }
        // A refund's currency is its purchase's: it may be left out.
        (ConversionKind::Refund, Some(a), None) => (a, String::new()),
        (_, Some(_), None) => return Err(invalid(index, "currency", "is required with an amount")),
        (_, None, Some(_)) => return Err(invalid(index, "amount", "is required with a currency")),
        (ConversionKind::Purchase | ConversionKind::Refund, None, None) => {
            return Err(invalid(
                index,
                "amount",
                "is required for a purchase or refund, in minor units",
            ))
        }
        (_, Some(a), Some(c)) => {
            if !codelink_shared::currency::is_currency(&c) {
                return Err(invalid(
                    index,
                    "currency",
                    format!("'{c}' is not an ISO-4217 currency code"),
                ));
            }
            (a, c)
        }
    };
    let purchase_event_id = check_id(index, "purchase_event_id", &e.purchase_event_id)?;
    let customer_id = check_id(index, "customer_id", &e.customer_id)?;
    match e.kind {
        ConversionKind::Refund if purchase_event_id.is_none() && customer_id.is_none() => {
            return Err(invalid(
                index,
                "purchase_event_id",
                "a refund names its purchase: send purchase_event_id (the purchase's event_id), \
                 or customer_id to refund that customer's latest purchase not yet fully refunded",
            ))
        }
        ConversionKind::Signup | ConversionKind::Purchase if purchase_event_id.is_some() => {
            return Err(invalid(
                index,
                "purchase_event_id",
                "only a refund names a purchase",
            ))
        }
        _ => {}
    }
    Ok(Reported {
        event_id,
        kind: e.kind,
        occurred_ms,
        occurred_given: e.occurred_at.is_some(),
        received_ms: now_ms,
        scan_token: e.scan_id.filter(|s| !s.is_empty()),
        code,
        visitor_id: check_id(index, "visitor_id", &e.visitor_id)?,
        customer_id,
        amount,
        currency,
        purchase_event_id,
        ip_prefix: match &e.ip {
            None => None,
            Some(ip) => Some(codelink_analytics::enrich::anonymise(
                ip.trim().parse::<std::net::IpAddr>().map_err(|_| {
                    invalid(
                        index,
                        "ip",
                        "must be an IPv4 or IPv6 address (the customer's)",
                    )
                })?,
            )),
        },
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The events of a body (one event, or an array of them), validated at
/// `now`; and whether it was a single event.
pub(crate) fn parse_events(
    body: Value,
    now: u64,
    max_age_days: u32,
) -> Result<(Vec<Reported>, bool), ApiError> {
    let (events, single) = match body {
        Value::Array(v) => (v, false),
        one => (vec![one], true),
    };
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(invalid(
            None,
            "events",
            format!("send 1 to {MAX_BATCH} events at once"),
        ));
    }
    let mut reported = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let index = (!single).then_some(i);
        reported.push(validate(index, parse_event(index, e)?, now, max_age_days)?);
    }
    Ok((reported, single))
}

pub(super) async fn ingest(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let body: Value = read_json_any(state, req).await?;
    let (outcomes, single) = report(state, body).await?;
    let mut results: Vec<Value> = outcomes.iter().map(view).collect();
    let body = if single {
        results.pop().unwrap_or(Value::Null)
    } else {
        json!({ "results": results })
    };
    Ok(response::json(StatusCode::ACCEPTED, &body))
}

/// Validates and reports the events of a body in this endpoint's format
/// (one event, or an array of them): the outcomes, and whether it was a
/// single event. The payment-provider endpoints map their events to this
/// format and report them here, so both decide alike.
pub(super) async fn report(
    state: &AppState,
    body: Value,
) -> Result<(Vec<Outcome>, bool), ApiError> {
    let now = now_ms();
    let (mut reported, single) = parse_events(body, now, state.config.max_event_age_days)?;
    // A visitor token from a code's destination (`cl_vid`, opt-in) names the
    // gateway's own visitor id.
    for (i, r) in reported.iter_mut().enumerate() {
        if let Some(v) = r.visitor_id.as_mut() {
            *v = state.scans.visitor_of(v).map_err(|()| {
                invalid(
                    (!single).then_some(i),
                    "visitor_id",
                    "looks like a codelink visitor token (cl_vid) but its signature does not \
                     hold: send the cl_vid value exactly as the link gave it",
                )
            })?;
        }
    }
    let terms = |code: &str| {
        state.codes.get(code).map(|c| CodeTerms {
            owner: c.record.owner.clone(),
            window_ms: u64::from(c.record.attribution_window_days) * 86_400_000,
            plan: c.record.commission.clone(),
        })
    };
    let outcomes = state
        .analytics
        .report_conversions(reported, now, terms)
        .await
        .map_err(|e| match e {
            codelink_analytics::Error::Rejected {
                index,
                field,
                message,
            } => invalid((!single).then_some(index), field, message),
            codelink_analytics::Error::IdempotencyConflict { index, event_id } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "{}event_id '{event_id}' was already used for an event with a different body: \
                     send the same body again to get the first answer, or a new event_id for a new event",
                    if single { String::new() } else { format!("[{index}].") }
                ),
            ),
            codelink_analytics::Error::NotStored => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the conversions could not be stored (shutting down, or disk full); retry with the same event_id",
            ),
            other => {
                tracing::warn!(error = %other, "conversion store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    "conversions cannot be stored right now; retry with the same event_id",
                )
            }
        })?;
    Ok((outcomes, single))
}

fn rfc3339_ms(ms: u64) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok();
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

/// The answer for one event: the attribution decision and the earnings.
pub(super) fn view(outcome: &Outcome) -> Value {
    let c = &outcome.conversion;
    json!({
        "event_id": c.event_id,
        "status": if outcome.duplicate { "duplicate" } else { "created" },
        "type": c.kind,
        "occurred_at": rfc3339_ms(c.occurred_ms),
        "purchase_event_id": outcome.purchase_event_id,
        "attribution": {
            "rule": c.rule,
            "code": (!c.code.is_empty()).then_some(&c.code),
            "owner": (!c.owner.is_empty()).then_some(&c.owner),
            "channel": (!c.channel.is_empty()).then_some(&c.channel),
            "scan_id": (!c.scan_id.is_empty()).then_some(&c.scan_id),
            "scan_at": (c.scan_ms > 0).then(|| rfc3339_ms(c.scan_ms)),
        },
        "earnings": {
            "amount": c.earnings,
            "currency": (!c.earnings_currency.is_empty()).then_some(&c.earnings_currency),
            "status": if c.flagged.is_some() {
                "held"
            } else if outcome.confirmed {
                "confirmed"
            } else {
                "estimated"
            },
        },
        // Flagged by a fraud check: it earns nothing until a review approves
        // it (then `held` is released).
        "review": c.flagged.as_ref().map(|f| json!({
            "status": "pending",
            "flags": f.flags,
            "held": f.held,
        })),
        "notes": outcome.notes,
    })
}

#[cfg(test)]
#[path = "conversions_fuzz.rs"]
mod fuzz;

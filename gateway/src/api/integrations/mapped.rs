//! What a provider's event becomes: a conversion in the format of
//! `POST /api/v1/conversions`, or a reason to ignore it.

use crate::error::ApiError;
use http::StatusCode;
use serde_json::{json, Map, Value};

#[derive(Debug, PartialEq)]
pub enum Mapped {
    /// Not an event codelink records (answered 200, so the provider does
    /// not retry it): why.
    Ignored(String),
    /// One event for `report_conversions`, and for a refund whose named
    /// purchase was never reported, a second try by the customer's latest
    /// purchase.
    Report {
        event: Value,
        fallback: Option<Value>,
    },
}

/// A conversion in the conversions API's format; `None` fields are left out.
#[derive(Default)]
pub struct Conversion<'a> {
    pub event_id: String,
    pub kind: &'a str,
    pub occurred_at: Option<String>,
    pub scan_id: Option<String>,
    pub code: Option<String>,
    pub customer_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub purchase_event_id: Option<String>,
}

impl Conversion<'_> {
    pub fn into_json(self) -> Value {
        let mut out = Map::new();
        out.insert("event_id".into(), json!(self.event_id));
        out.insert("type".into(), json!(self.kind));
        let optional = [
            ("occurred_at", self.occurred_at.map(Value::String)),
            ("scan_id", self.scan_id.map(Value::String)),
            ("code", self.code.map(Value::String)),
            ("customer_id", self.customer_id.map(Value::String)),
            ("amount", self.amount.map(Value::from)),
            ("currency", self.currency.map(Value::String)),
            (
                "purchase_event_id",
                self.purchase_event_id.map(Value::String),
            ),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.insert(name.into(), v);
            }
        }
        Value::Object(out)
    }
}

/// 422 `invalid_event`: the provider's event lacks what codelink needs.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event",
        message.into(),
    )
}

/// A non-empty string at `pointer`; an expanded object's `id` too (Stripe
/// expands `customer`, `invoice`, `payment_intent` on request).
pub fn string_at(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => match o.get("id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// A decimal string ("19.99") in minor units of a currency with `digits`
/// decimals: exact, or `None` (more decimals than the currency has, a sign,
/// not a number, past 10^15).
pub fn decimal_minor(raw: &str, digits: u32) -> Option<i64> {
    let (whole, fraction) = raw.trim().split_once('.').unwrap_or((raw.trim(), ""));
    let fraction = fraction.trim_end_matches('0');
    if whole.is_empty()
        || whole.len() > 15
        || fraction.len() > digits as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut minor: i64 = whole.parse().ok()?;
    for i in 0..digits as usize {
        let d = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        minor = minor.checked_mul(10)?.checked_add(d)?;
    }
    Some(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal_minor("19.99", 2), Some(1999));
        assert_eq!(decimal_minor("19.9", 2), Some(1990));
        assert_eq!(decimal_minor("19", 2), Some(1900));
        assert_eq!(decimal_minor("19.990", 2), Some(1999));
        assert_eq!(decimal_minor("1500", 0), Some(1500));
        assert_eq!(decimal_minor("1.250", 3), Some(1250));
        assert_eq!(decimal_minor("0.00", 2), Some(0));
        for bad in ["19.999", "-1.00", "", ".5", "1e3", "1,00", "abc"] {
            assert_eq!(decimal_minor(bad, 2), None, "{bad}");
        }
    }

    #[test]
    fn strings_and_expanded_objects() {
        let v = json!({"customer": {"id": "cus_1"}, "n": 42, "e": "", "s": "x"});
        assert_eq!(string_at(&v, "/customer").as_deref(), Some("cus_1"));
        assert_eq!(string_at(&v, "/n").as_deref(), Some("42"));
        assert_eq!(string_at(&v, "/e"), None);
        assert_eq!(string_at(&v, "/s").as_deref(), Some("x"));
        assert_eq!(string_at(&v, "/missing"), None);
    }
}

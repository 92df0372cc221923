//! Stripe events → conversions.
//!
//! - `checkout.session.completed` (and `checkout.session.async_payment_succeeded`
//!   for payment methods that settle later): a purchase of `amount_total`; a
//!   session that took no money (a free trial) is a signup, tying the
//!   customer to the scan so their later invoices inherit it. The scan token
//!   is `metadata.cl_scan`, else `client_reference_id`; a code may be named
//!   in `metadata.cl_code`.
//! - `invoice.paid`: a purchase of `amount_paid`; the token in the invoice's
//!   or its subscription's metadata, else the customer's earlier
//!   attribution (the ledger's `inherited` rule).
//! - `charge.refunded`: a refund of what this event added to
//!   `amount_refunded` (against `data.previous_attributes`).
//!
//! Event ids: a purchase is keyed by the payment it records —
//! `stripe:{invoice id}` for a subscription's or a payment-mode session's
//! with post-payment invoices (its checkout session and its `invoice.paid`
//! then count once), else `stripe:{payment_intent}` — so a
//! refund, which knows only its charge, can name it. A refund is
//! `stripe:{evt id}`. A retry of an event carries the same ids.

use super::mapped::{invalid, string_at, Conversion, Mapped};
use crate::error::ApiError;
use codelink_shared::currency;
use serde_json::Value;

/// An event, mapped (`default_code`: the endpoint's code, for an event that
/// names neither a scan nor a code).
pub fn map(event: &Value, default_code: Option<&str>) -> Result<Mapped, ApiError> {
    let id = string_at(event, "/id")
        .filter(|id| id.starts_with("evt_"))
        .ok_or_else(|| invalid("id: a Stripe event has an id starting with evt_"))?;
    let kind =
        string_at(event, "/type").ok_or_else(|| invalid("type: a Stripe event has a type"))?;
    let object = event
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or_else(|| invalid("data.object: a Stripe event carries its object"))?;
    let occurred_at = event.get("created").and_then(Value::as_i64).and_then(|t| {
        super::super::times::format_time(t)
            .as_str()
            .map(str::to_string)
    });
    match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout(object, occurred_at, default_code)
        }
        "invoice.paid" => invoice(object, occurred_at, default_code),
        "charge.refunded" => refund(&id, event, object, occurred_at),
        other => Ok(Mapped::Ignored(format!(
            "codelink takes checkout.session.completed, \
             checkout.session.async_payment_succeeded, invoice.paid and charge.refunded, \
             not {other}"
        ))),
    }
}

fn checkout(
    session: &Value,
    occurred_at: Option<String>,
    default_code: Option<&str>,
) -> Result<Mapped, ApiError> {
    let session_id = string_at(session, "/id")
        .ok_or_else(|| invalid("data.object.id: the checkout session's id is missing"))?;
    let mode = string_at(session, "/mode").unwrap_or_default();
    if mode == "setup" {
        return Ok(Mapped::Ignored(
            "a setup-mode checkout session takes no payment".into(),
        ));
    }
    if string_at(session, "/payment_status").as_deref() == Some("unpaid") {
        return Ok(Mapped::Ignored(
            "not paid yet: the purchase is taken from checkout.session.async_payment_succeeded"
                .into(),
        ));
    }
    let scan_id = string_at(session, "/metadata/cl_scan")
        .or_else(|| string_at(session, "/client_reference_id"));
    let code = string_at(session, "/metadata/cl_code").or_else(|| default_code.map(String::from));
    let customer_id = string_at(session, "/customer");
    let total = session
        .get("amount_total")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if total <= 0 {
        return Ok(Mapped::Report {
            event: Conversion {
                event_id: format!("stripe:{session_id}"),
                kind: "signup",
                occurred_at,
                scan_id,
                code,
                customer_id,
                ..Conversion::default()
            }
            .into_json(),
            fallback: None,
        });
    }
    let (amount, currency) = money(session, "amount_total", total)?;
    // A payment-mode session with post-payment invoices (invoice_creation)
    // also sends invoice.paid for the same payment: named by its invoice,
    // both are one purchase (as in subscription mode), not two.
    let payment = if mode == "subscription" {
        string_at(session, "/invoice")
    } else {
        string_at(session, "/invoice").or_else(|| string_at(session, "/payment_intent"))
    };
    Ok(Mapped::Report {
        event: Conversion {
            event_id: format!("stripe:{}", payment.unwrap_or(session_id)),
            kind: "purchase",
            occurred_at,
            scan_id,
            code,
            customer_id,
            amount: Some(amount),
            currency: Some(currency),
            ..Conversion::default()
        }
        .into_json(),
        fallback: None,
    })
}

fn invoice(
    invoice: &Value,
    occurred_at: Option<String>,
    default_code: Option<&str>,
) -> Result<Mapped, ApiError> {
    let invoice_id = string_at(invoice, "/id")
        .ok_or_else(|| invalid("data.object.id: the invoice's id is missing"))?;
    let paid = invoice
        .get("amount_paid")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if paid <= 0 {
        return Ok(Mapped::Ignored(
            "nothing was paid (a trial or a zero invoice)".into(),
        ));
    }
    let (amount, currency) = money(invoice, "amount_paid", paid)?;
    // The invoice's own metadata, else its subscription's (where the
    // subscription details are, by API version).
    let metadata = |key: &str| {
        [
            "/metadata/",
            "/subscription_details/metadata/",
            "/parent/subscription_details/metadata/",
        ]
        .iter()
        .find_map(|at| string_at(invoice, &format!("{at}{key}")))
    };
    Ok(Mapped::Report {
        event: Conversion {
            event_id: format!("stripe:{invoice_id}"),
            kind: "purchase",
            occurred_at,
            scan_id: metadata("cl_scan"),
            code: metadata("cl_code").or_else(|| default_code.map(String::from)),
            customer_id: string_at(invoice, "/customer"),
            amount: Some(amount),
            currency: Some(currency),
            ..Conversion::default()
        }
        .into_json(),
        fallback: None,
    })
}

fn refund(
    event_id: &str,
    event: &Value,
    charge: &Value,
    occurred_at: Option<String>,
) -> Result<Mapped, ApiError> {
    let refunded = charge
        .get("amount_refunded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let before = event
        .pointer("/data/previous_attributes/amount_refunded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    // A negative or huge `before` (only a signed body can carry one) is not
    // an overflow nor a refund larger than the charge's.
    let delta = refunded.checked_sub(before.max(0)).unwrap_or(0);
    if delta <= 0 {
        return Ok(Mapped::Ignored("this event refunded nothing more".into()));
    }
    let (amount, currency) = money(charge, "amount_refunded", delta)?;
    let purchase = string_at(charge, "/invoice")
        .or_else(|| string_at(charge, "/payment_intent"))
        .map(|p| format!("stripe:{p}"));
    let customer_id = string_at(charge, "/customer");
    let conversion = |purchase_event_id: Option<String>| {
        Conversion {
            event_id: format!("stripe:{event_id}"),
            kind: "refund",
            occurred_at: occurred_at.clone(),
            customer_id: customer_id.clone(),
            amount: Some(amount),
            currency: Some(currency.clone()),
            purchase_event_id,
            ..Conversion::default()
        }
        .into_json()
    };
    if purchase.is_none() && customer_id.is_none() {
        return Ok(Mapped::Ignored(
            "the charge names no payment intent, invoice or customer: no purchase to refund".into(),
        ));
    }
    let fallback = (purchase.is_some() && customer_id.is_some()).then(|| conversion(None));
    Ok(Mapped::Report {
        event: conversion(purchase),
        fallback,
    })
}

/// `amount` (Stripe's, of field `field`) in codelink's minor units, and the
/// currency in capitals.
fn money(object: &Value, field: &str, amount: i64) -> Result<(i64, String), ApiError> {
    let currency = string_at(object, "/currency")
        .map(|c| c.to_ascii_uppercase())
        .filter(|c| currency::is_currency(c))
        .ok_or_else(|| {
            invalid(format!(
                "data.object.currency: an ISO-4217 currency is required with {field}"
            ))
        })?;
    let amount = to_minor(amount, &currency).ok_or_else(|| {
        invalid(format!(
            "data.object.{field}: {amount} is not a whole number of {currency}'s minor units"
        ))
    })?;
    Ok((amount, currency))
}

/// Digits after the point in Stripe's amounts: none for its zero-decimal
/// currencies, three for its three-decimal ones, else two — ISK too, which
/// Stripe keeps at two decimals (in multiples of 100) for compatibility.
fn stripe_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "JPY" | "KMF" | "KRW" | "MGA" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A Stripe amount in ISO-4217 minor units (`shared::currency::minor_digits`),
/// which is what conversions carry: exact, else `None`.
fn to_minor(amount: i64, currency: &str) -> Option<i64> {
    let (from, to) = (stripe_digits(currency), currency::minor_digits(currency));
    if to >= from {
        amount.checked_mul(10i64.pow(to - from))
    } else {
        let unit = 10i64.pow(from - to);
        (amount % unit == 0).then_some(amount / unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minor_units() {
        assert_eq!(to_minor(1999, "USD"), Some(1999));
        assert_eq!(to_minor(500, "JPY"), Some(500));
        assert_eq!(to_minor(50000, "ISK"), Some(500));
        assert_eq!(to_minor(50050, "ISK"), None);
        assert_eq!(to_minor(700, "MGA"), Some(70000));
        assert_eq!(to_minor(5120, "KWD"), Some(5120));
    }

    fn stripe_event(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "object": "event", "type": kind, "created": 1_800_000_000,
               "data": {"object": object}})
    }

    #[test]
    fn checkout_modes() {
        let paid = stripe_event(
            "checkout.session.completed",
            json!({"id": "cs_1", "mode": "payment", "payment_status": "paid",
                   "amount_total": 4900, "currency": "eur", "customer": "cus_9",
                   "payment_intent": "pi_7", "client_reference_id": "tok",
                   "metadata": {}}),
        );
        let Mapped::Report { event, fallback } = map(&paid, None).unwrap() else {
            panic!()
        };
        assert_eq!(event["event_id"], "stripe:pi_7");
        assert_eq!(event["amount"], 4900);
        assert_eq!(event["currency"], "EUR");
        assert_eq!(event["scan_id"], "tok");
        assert_eq!(event["customer_id"], "cus_9");
        assert_eq!(event["occurred_at"], "2027-01-15T08:00:00Z");
        assert!(fallback.is_none());
        // With invoice_creation, invoice.paid (stripe:in_…) is the same payment.
        let mut invoiced = paid.clone();
        invoiced["data"]["object"]["invoice"] = json!("in_5");
        let Mapped::Report { event, .. } = map(&invoiced, None).unwrap() else {
            panic!()
        };
        assert_eq!(event["event_id"], "stripe:in_5");
        let invoice = stripe_event(
            "invoice.paid",
            json!({"id": "in_5", "amount_paid": 4900, "currency": "eur", "customer": "cus_9"}),
        );
        let Mapped::Report { event, .. } = map(&invoice, None).unwrap() else {
            panic!()
        };
        assert_eq!(event["event_id"], "stripe:in_5");
        let trial = stripe_event(
            "checkout.session.completed",
            json!({"id": "cs_2", "mode": "subscription", "amount_total": 0,
                   "currency": "eur", "customer": "cus_9", "metadata": {"cl_scan": "t2"}}),
        );
        let Mapped::Report { event, .. } = map(&trial, Some("shop")).unwrap() else {
            panic!()
        };
        assert_eq!(event["type"], "signup");
        assert_eq!(event["scan_id"], "t2");
        assert_eq!(event["code"], "shop");
        let unpaid = stripe_event(
            "checkout.session.completed",
            json!({"id": "cs_3", "mode": "payment", "payment_status": "unpaid"}),
        );
        assert!(matches!(map(&unpaid, None).unwrap(), Mapped::Ignored(_)));
    }

    #[test]
    fn refunds_name_their_payment() {
        let mut e = stripe_event(
            "charge.refunded",
            json!({"id": "ch_1", "amount": 4900, "amount_refunded": 3000, "currency": "eur",
                   "payment_intent": "pi_7", "customer": "cus_9", "invoice": null}),
        );
        e["data"]["previous_attributes"] = json!({"amount_refunded": 1000});
        let Mapped::Report { event, fallback } = map(&e, None).unwrap() else {
            panic!()
        };
        assert_eq!(event["event_id"], "stripe:evt_1");
        assert_eq!(event["amount"], 2000);
        assert_eq!(event["purchase_event_id"], "stripe:pi_7");
        let fallback = fallback.unwrap();
        assert!(fallback.get("purchase_event_id").is_none());
        assert_eq!(fallback["customer_id"], "cus_9");
        // Out-of-range amounts refund nothing more (no overflow, no panic).
        e["data"]["object"]["amount_refunded"] = json!(i64::MIN);
        e["data"]["previous_attributes"] = json!({"amount_refunded": 1});
        assert!(matches!(map(&e, None).unwrap(), Mapped::Ignored(_)));
        e["data"]["object"]["amount_refunded"] = json!(3000);
        e["data"]["previous_attributes"] = json!({"amount_refunded": -5000});
        let Mapped::Report { event, .. } = map(&e, None).unwrap() else {
            panic!()
        };
        assert_eq!(event["amount"], 3000);
    }

    #[test]
    fn other_events_are_ignored_and_bad_ones_refused() {
        let e = stripe_event("customer.created", json!({"id": "cus_1"}));
        assert!(matches!(map(&e, None).unwrap(), Mapped::Ignored(_)));
        assert_eq!(map(&json!({"id": "x"}), None).unwrap_err().status, 422);
        let no_currency = stripe_event(
            "invoice.paid",
            json!({"id": "in_1", "amount_paid": 100, "customer": "cus_1"}),
        );
        assert_eq!(map(&no_currency, None).unwrap_err().code, "invalid_event");
    }
}

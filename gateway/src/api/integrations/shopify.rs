//! Shopify webhooks → conversions (topic in `X-Shopify-Topic`).
//!
//! - `orders/create`: a purchase of `total_price` (a decimal string in the
//!   order's `currency`; `total_price_set.presentment_money` when given, the
//!   currency refunds are made in), event id `shopify:order:{id}`, customer
//!   `shopify:{customer.id}`. The scan token is the cart attribute
//!   `cl_scan` (the order's `note_attributes`), else `cl_scan` in the query
//!   of `landing_site`. The code is the cart attribute `cl_code`, else the
//!   first discount code that is a codelink code (the follower typed the
//!   creator's code at checkout), else the endpoint's code.
//! - `orders/paid`: the same purchase (one id), for an order `orders/create`
//!   ignored as not paid yet (`financial_status` pending, authorized, voided).
//! - `refunds/create`: a refund of its successful `refund` transactions,
//!   event id `shopify:refund:{id}`, of purchase `shopify:order:{order_id}`.

use super::mapped::{decimal_minor, invalid, string_at, Conversion, Mapped};
use crate::error::ApiError;
use codelink_shared::{currency, CodeName};
use serde_json::Value;

/// `is_code`: whether a canonical code name is one of codelink's codes.
pub fn map(
    topic: &str,
    body: &Value,
    default_code: Option<&str>,
    is_code: &dyn Fn(&str) -> bool,
) -> Result<Mapped, ApiError> {
    match topic {
        // An order not paid yet (a manual payment method, cash on delivery, a
        // payment only authorized) is no purchase: one never paid is
        // cancelled without a refund, and its commission would stay. It is
        // taken when paid, from orders/paid (the same event id: counted once).
        "orders/create" => match unpaid(body) {
            Some(status) => Ok(Mapped::Ignored(format!(
                "the order is not paid yet (financial_status {status}): it is taken from \
                 orders/paid once paid; subscribe this endpoint to orders/paid"
            ))),
            None => order(body, default_code, is_code),
        },
        "orders/paid" => order(body, default_code, is_code),
        "refunds/create" => refund(body),
        other => Ok(Mapped::Ignored(format!(
            "codelink takes the topics orders/create, orders/paid and refunds/create, not '{}'",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// The `financial_status` of an order that took no money yet.
fn unpaid(order: &Value) -> Option<&str> {
    order
        .get("financial_status")
        .and_then(Value::as_str)
        .filter(|s| matches!(*s, "pending" | "authorized" | "voided"))
}

fn order(
    order: &Value,
    default_code: Option<&str>,
    is_code: &dyn Fn(&str) -> bool,
) -> Result<Mapped, ApiError> {
    let id = string_at(order, "/id").ok_or_else(|| invalid("id: the order's id is missing"))?;
    // The customer's (presentment) currency when the order gives it: a
    // refund's transactions are in it, and `currency`/`total_price` are the
    // shop's, which differ in a multi-currency shop.
    let presentment = order
        .pointer("/total_price_set/presentment_money")
        .filter(|m| string_at(m, "/amount").is_some() && string_at(m, "/currency_code").is_some());
    let (currency, total) = match presentment {
        Some(m) => (
            order_currency(m, "/currency_code")?,
            string_at(m, "/amount").unwrap_or_default(),
        ),
        None => (
            order_currency(order, "/currency")?,
            string_at(order, "/total_price")
                .ok_or_else(|| invalid("total_price: the order's total is missing"))?,
        ),
    };
    let amount = decimal_minor(&total, currency::minor_digits(&currency)).ok_or_else(|| {
        invalid(format!(
            "total_price: '{total}' is not an amount of {currency}"
        ))
    })?;
    if amount == 0 {
        return Ok(Mapped::Ignored("the order's total is 0".into()));
    }
    let attribute = |name: &str| {
        order
            .get("note_attributes")
            .and_then(Value::as_array)?
            .iter()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|a| string_at(a, "/value"))
    };
    let scan_id = attribute("cl_scan").or_else(|| {
        let landing = string_at(order, "/landing_site")?;
        let base = url::Url::parse("https://shop.invalid/").ok()?;
        let url = base.join(&landing).ok()?;
        let token = url
            .query_pairs()
            .find(|(k, _)| k == "cl_scan")
            .map(|(_, v)| v.into_owned());
        token
    });
    let discount_code = || {
        order
            .get("discount_codes")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(|d| d.get("code").and_then(Value::as_str))
            .filter_map(|c| CodeName::parse(c).ok().map(CodeName::into_string))
            .find(|c| is_code(c))
    };
    let code = attribute("cl_code")
        .or_else(discount_code)
        .or_else(|| default_code.map(String::from));
    Ok(Mapped::Report {
        event: Conversion {
            event_id: format!("shopify:order:{id}"),
            kind: "purchase",
            occurred_at: string_at(order, "/created_at"),
            scan_id,
            code,
            customer_id: string_at(order, "/customer/id").map(|c| format!("shopify:{c}")),
            amount: Some(amount),
            currency: Some(currency),
            ..Conversion::default()
        }
        .into_json(),
        fallback: None,
    })
}

fn refund(refund: &Value) -> Result<Mapped, ApiError> {
    let id = string_at(refund, "/id").ok_or_else(|| invalid("id: the refund's id is missing"))?;
    let order_id = string_at(refund, "/order_id")
        .ok_or_else(|| invalid("order_id: the refund names no order"))?;
    let mut amount = 0i64;
    let mut currency: Option<String> = None;
    let transactions = refund
        .get("transactions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, t) in transactions.iter().enumerate() {
        let kind = t.get("kind").and_then(Value::as_str);
        let status = t.get("status").and_then(Value::as_str);
        if kind != Some("refund") || status.is_some_and(|s| s != "success") {
            continue;
        }
        let c = order_currency(t, "/currency").map_err(|_| {
            invalid(format!(
                "transactions[{i}].currency: an ISO-4217 currency is required"
            ))
        })?;
        if currency.as_ref().is_some_and(|seen| *seen != c) {
            return Err(invalid(
                "transactions: refund transactions in more than one currency",
            ));
        }
        let raw = string_at(t, "/amount").unwrap_or_default();
        let minor = decimal_minor(&raw, currency::minor_digits(&c)).ok_or_else(|| {
            invalid(format!(
                "transactions[{i}].amount: '{raw}' is not an amount of {c}"
            ))
        })?;
        amount = amount
            .checked_add(minor)
            .ok_or_else(|| invalid("transactions: the amounts are too large"))?;
        currency = Some(c);
    }
    if amount == 0 {
        return Ok(Mapped::Ignored(
            "the refund moved no money (no successful refund transaction)".into(),
        ));
    }
    Ok(Mapped::Report {
        event: Conversion {
            event_id: format!("shopify:refund:{id}"),
            kind: "refund",
            occurred_at: string_at(refund, "/created_at"),
            amount: Some(amount),
            currency,
            purchase_event_id: Some(format!("shopify:order:{order_id}")),
            ..Conversion::default()
        }
        .into_json(),
        fallback: None,
    })
}

fn order_currency(object: &Value, pointer: &str) -> Result<String, ApiError> {
    string_at(object, pointer)
        .map(|c| c.to_ascii_uppercase())
        .filter(|c| currency::is_currency(c))
        .ok_or_else(|| invalid("currency: an ISO-4217 currency is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_attribution() {
        let order = json!({
            "id": 820982911946154508u64, "created_at": "2027-01-10T11:00:00-05:00",
            "currency": "USD", "total_price": "59.90",
            "customer": {"id": 115310627314723954u64},
            "discount_codes": [{"code": "WELCOME10"}, {"code": "Anna-Fit"}],
            "landing_site": "/products/mat?utm_source=ig&cl_scan=tok1",
            "note_attributes": []
        });
        let known = |c: &str| c == "anna-fit";
        let Mapped::Report { event, .. } = map("orders/create", &order, None, &known).unwrap()
        else {
            panic!()
        };
        assert_eq!(event["event_id"], "shopify:order:820982911946154508");
        assert_eq!(event["amount"], 5990);
        assert_eq!(event["currency"], "USD");
        assert_eq!(event["code"], "anna-fit");
        assert_eq!(event["scan_id"], "tok1");
        assert_eq!(event["customer_id"], "shopify:115310627314723954");
        let mut with_attribute = order.clone();
        with_attribute["note_attributes"] = json!([{"name": "cl_scan", "value": "tok2"}]);
        with_attribute["discount_codes"] = json!([{"code": "WELCOME10"}]);
        let Mapped::Report { event, .. } =
            map("orders/create", &with_attribute, Some("shop"), &known).unwrap()
        else {
            panic!()
        };
        assert_eq!(event["scan_id"], "tok2");
        assert_eq!(event["code"], "shop");
    }

    #[test]
    fn an_unpaid_order_is_taken_when_paid() {
        let mut order = json!({"id": 3, "currency": "USD", "total_price": "30.00",
                               "financial_status": "pending"});
        assert!(matches!(
            map("orders/create", &order, None, &|_| false).unwrap(),
            Mapped::Ignored(_)
        ));
        order["financial_status"] = json!("paid");
        let Mapped::Report { event: paid, .. } =
            map("orders/paid", &order, None, &|_| false).unwrap()
        else {
            panic!()
        };
        assert_eq!(paid["event_id"], "shopify:order:3");
        assert_eq!(paid["amount"], 3000);
        // Paid at creation: orders/create and orders/paid are one purchase.
        let created = map("orders/create", &order, None, &|_| false).unwrap();
        assert_eq!(
            created,
            Mapped::Report {
                event: paid,
                fallback: None
            }
        );
    }

    #[test]
    fn a_multi_currency_order_is_in_the_currency_its_refunds_are_in() {
        // Shop in USD, customer paying in EUR: refund transactions are in EUR.
        let order = json!({
            "id": 1, "currency": "USD", "total_price": "11.00",
            "presentment_currency": "EUR",
            "total_price_set": {
                "shop_money": {"amount": "11.00", "currency_code": "USD"},
                "presentment_money": {"amount": "10.00", "currency_code": "EUR"}
            }
        });
        let Mapped::Report { event, .. } = map("orders/create", &order, None, &|_| false).unwrap()
        else {
            panic!()
        };
        assert_eq!(event["currency"], "EUR");
        assert_eq!(event["amount"], 1000);
        let refund = json!({"id": 2, "order_id": 1, "transactions": [
            {"kind": "refund", "status": "success", "amount": "4.00", "currency": "EUR"}]});
        let Mapped::Report { event, .. } =
            map("refunds/create", &refund, None, &|_| false).unwrap()
        else {
            panic!()
        };
        assert_eq!(event["currency"], "EUR");
    }

    #[test]
    fn refund_sums_successful_refund_transactions() {
        let refund = json!({
            "id": 509562969, "order_id": 820982911946154508u64,
            "created_at": "2027-01-11T11:00:00-05:00",
            "transactions": [
                {"kind": "refund", "status": "success", "amount": "10.00", "currency": "USD"},
                {"kind": "refund", "status": "failure", "amount": "5.00", "currency": "USD"},
                {"kind": "refund", "status": "success", "amount": "2.50", "currency": "USD"}
            ]
        });
        let Mapped::Report { event, .. } =
            map("refunds/create", &refund, None, &|_| false).unwrap()
        else {
            panic!()
        };
        assert_eq!(event["amount"], 1250);
        assert_eq!(
            event["purchase_event_id"],
            "shopify:order:820982911946154508"
        );
        assert!(matches!(
            map("products/update", &refund, None, &|_| false).unwrap(),
            Mapped::Ignored(_)
        ));
    }
}

//! Payment-provider events in, over real HTTP: endpoints registered through
//! the admin API (embedded store and Redis), Stripe and Shopify events shaped
//! like the providers' documented payloads and signed here with the
//! endpoint's secret, read back through the analytics API.

mod common;

use codelink_testkit::http::{Client, Response};
use codelink_testkit::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

const STRIPE_SECRET: &str = "whsec_5ecret0fTheTestEndpoint";
const SHOPIFY_SECRET: &str = "shpss_test_client_secret_0123";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Stripe-Signature` for `body` signed at `t`.
fn stripe_header(secret: &str, t: i64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex(&codelink_dashboards::hmac(secret.as_bytes(), &signed))
    )
}

async fn post_raw(c: &Client, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut all = vec![("content-type", "application/json; charset=utf-8")];
    all.extend_from_slice(headers);
    c.send(
        http::Method::POST,
        path,
        &all,
        bytes::Bytes::copy_from_slice(body),
    )
    .await
}

/// Stripe posting `event`, signed at `t`: the response and the header used.
async fn stripe_post(c: &Client, path: &str, event: &Value, t: i64) -> (Response, String) {
    let body = serde_json::to_vec(event).unwrap();
    let header = stripe_header(STRIPE_SECRET, t, &body);
    let r = post_raw(c, path, &[("stripe-signature", &header)], &body).await;
    (r, header)
}

async fn shopify_post(
    c: &Client,
    path: &str,
    topic: &str,
    webhook_id: &str,
    body: &Value,
) -> Response {
    let body = serde_json::to_vec(body).unwrap();
    let hmac =
        gateway::qr_logo::base64(&codelink_dashboards::hmac(SHOPIFY_SECRET.as_bytes(), &body));
    post_raw(
        c,
        path,
        &[
            ("x-shopify-hmac-sha256", &hmac),
            ("x-shopify-topic", topic),
            ("x-shopify-webhook-id", webhook_id),
            ("x-shopify-shop-domain", "codelink-test.myshopify.com"),
        ],
        &body,
    )
    .await
}

/// Registers an endpoint; returns its inbound path.
async fn register(admin: &Client, body: Value) -> String {
    let r = admin.post_json("/api/v1/integrations", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert!(v.get("secret").is_none(), "the secret is never shown: {v}");
    let url = url::Url::parse(v["url"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.path(),
        format!(
            "/api/v1/integrations/{}/{}",
            v["provider"].as_str().unwrap(),
            v["id"].as_str().unwrap()
        )
    );
    url.path().to_string()
}

/// A redirect of a real follower: the `cl_scan` token its destination got.
async fn scan(client: &Client, path: &str) -> String {
    let r = client
        .send(
            http::Method::GET,
            path,
            &codelink_testkit::http::browser(ANDROID, &[]),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 302);
    let loc = url::Url::parse(r.header("location").unwrap()).unwrap();
    loc.query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .unwrap()
        .1
        .into_owned()
}

async fn summary(c: &Client, code: &str) -> Value {
    let query = if code.is_empty() {
        String::new()
    } else {
        format!("?code={code}")
    };
    let r = c.get(&format!("/api/v1/analytics/summary{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["summary"].clone()
}

/// Waits until the code's summary has `purchases` and `refunds`; returns it.
async fn settled(c: &Client, code: &str, purchases: u64, refunds: u64) -> Value {
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let s = summary(c, code).await;
        s["purchases"] == purchases && s["refunds"] == refunds
    })
    .await;
    let s = summary(c, code).await;
    assert!(ok, "{s}");
    s
}

fn checkout_session(id: &str, token: &str, customer: &str, pi: &str, amount: i64) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now(),
        "livemode": false,
        "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": format!("cs_test_{id}"),
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "client_reference_id": token,
            "currency": "eur",
            "customer": customer,
            "customer_details": {"email": "buyer@example.com", "name": "Jenny Rosen"},
            "metadata": {},
            "mode": "payment",
            "payment_intent": pi,
            "payment_status": "paid",
            "status": "complete",
            "subscription": null,
            "invoice": null
        }}
    })
}

fn invoice_paid(id: &str, invoice: &str, customer: &str, amount: i64, metadata: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "created": now(),
        "type": "invoice.paid",
        "data": {"object": {
            "id": invoice,
            "object": "invoice",
            "amount_due": amount,
            "amount_paid": amount,
            "billing_reason": "subscription_cycle",
            "currency": "eur",
            "customer": customer,
            "metadata": metadata,
            "status": "paid",
            "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs"
        }}
    })
}

fn charge_refunded(
    id: &str,
    pi: &str,
    customer: &str,
    amount: i64,
    before: i64,
    after: i64,
) -> Value {
    json!({
        "id": id,
        "object": "event",
        "created": now(),
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": after,
                "currency": "eur",
                "customer": customer,
                "payment_intent": pi,
                "refunded": after == amount,
                "status": "succeeded"
            },
            "previous_attributes": {"amount_refunded": before, "refunded": false}
        }
    })
}

async fn gateway_with_code() -> common::TestGateway {
    let (mut config, tmp) = common::config();
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    // EUR plan: 200 per signup, 10 % of purchases, capped at 50.00.
    assert_eq!(gw.create(common::alice()).await.status, 201);
    gw
}

#[tokio::test]
async fn stripe_checkout_invoice_and_refund() {
    let gw = gateway_with_code().await;
    let path = register(
        &gw.admin,
        json!({"provider": "stripe", "secret": STRIPE_SECRET, "name": "Stripe live"}),
    )
    .await;
    let token = scan(&gw.anon, "/alice10/yt").await;

    // A checkout: the scan token came in as client_reference_id.
    let event = checkout_session(
        "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        &token,
        "cus_NffrFeUfNV2Hib",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        4900,
    );
    let t = now();
    let (r, header) = stripe_post(&gw.anon, &path, &event, t).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "created", "{v}");
    let c = &v["conversion"];
    assert_eq!(c["event_id"], "stripe:pi_3MtwBwLkdIwHu7ix28a3tqPa");
    assert_eq!(c["type"], "purchase");
    assert_eq!(c["attribution"]["rule"], "scan_id");
    assert_eq!(c["attribution"]["code"], "alice10");
    assert_eq!(c["attribution"]["channel"], "yt");
    assert_eq!(c["earnings"]["amount"], 490);
    assert_eq!(c["earnings"]["currency"], "EUR");

    // Stripe's retry of the same event is signed afresh: a duplicate.
    let (r, _) = stripe_post(&gw.anon, &path, &event, t + 1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "duplicate", "{}", r.text());
    // The very same delivery again (same event, same signed time): a replay.
    let body = serde_json::to_vec(&event).unwrap();
    let r = post_raw(&gw.anon, &path, &[("stripe-signature", &header)], &body).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "replayed");

    // Refused deliveries of a new purchase record nothing.
    let other = checkout_session(
        "evt_1NG8Du2eZvKYlo2CUI79vXWz",
        &token,
        "cus_Other",
        "pi_other",
        100000,
    );
    let body = serde_json::to_vec(&other).unwrap();
    let wrong = stripe_header("whsec_someoneElsesSecret", now(), &body);
    let r = post_raw(&gw.anon, &path, &[("stripe-signature", &wrong)], &body).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "bad_signature")
    );
    let mut altered = body.clone();
    altered.extend_from_slice(b" ");
    let good = stripe_header(STRIPE_SECRET, now(), &body);
    let r = post_raw(&gw.anon, &path, &[("stripe-signature", &good)], &altered).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "bad_signature")
    );
    let (r, _) = stripe_post(&gw.anon, &path, &other, now() - 301).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "signature_expired"),
        "{}",
        r.text()
    );
    let (r, _) = stripe_post(&gw.anon, &path, &other, now() + 400).await;
    assert_eq!(r.error_code(), "signature_expired");
    let r = post_raw(&gw.anon, &path, &[], &body).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "missing_signature")
    );
    for malformed in ["v1=abc", "t=now,v1=00", "garbage"] {
        let r = post_raw(&gw.anon, &path, &[("stripe-signature", malformed)], &body).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code().as_str()),
            (400, "malformed_signature"),
            "{malformed}"
        );
    }

    // An event type codelink does not take: 200, so Stripe stops sending it.
    let ignored = json!({"id": "evt_ignored1", "object": "event", "created": now(),
        "type": "customer.created", "data": {"object": {"id": "cus_X", "object": "customer"}}});
    let (r, _) = stripe_post(&gw.anon, &path, &ignored, now()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ignored");

    // A renewal: no token, the customer's earlier attribution holds.
    let renewal = invoice_paid(
        "evt_1NG8InvoicePaid",
        "in_1MtHbELkdIwHu7ixl4OzzPMv",
        "cus_NffrFeUfNV2Hib",
        2000,
        json!({}),
    );
    let (r, _) = stripe_post(&gw.anon, &path, &renewal, now()).await;
    let v = r.json();
    assert_eq!(v["status"], "created", "{v}");
    assert_eq!(v["conversion"]["attribution"]["rule"], "inherited");
    assert_eq!(v["conversion"]["attribution"]["code"], "alice10");
    assert_eq!(v["conversion"]["earnings"]["amount"], 200);

    // A partial refund of the checkout's payment, then the rest of it.
    let refund1 = charge_refunded(
        "evt_3MmlRefund1",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "cus_NffrFeUfNV2Hib",
        4900,
        0,
        1000,
    );
    let (r, _) = stripe_post(&gw.anon, &path, &refund1, now()).await;
    let v = r.json();
    assert_eq!(v["status"], "created", "{v}");
    assert_eq!(v["conversion"]["type"], "refund");
    assert_eq!(
        v["conversion"]["purchase_event_id"],
        "stripe:pi_3MtwBwLkdIwHu7ix28a3tqPa"
    );
    assert_eq!(v["conversion"]["earnings"]["amount"], -100);
    let refund2 = charge_refunded(
        "evt_3MmlRefund2",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "cus_NffrFeUfNV2Hib",
        4900,
        1000,
        4900,
    );
    let (r, _) = stripe_post(&gw.anon, &path, &refund2, now()).await;
    assert_eq!(
        r.json()["conversion"]["earnings"]["amount"],
        -390,
        "{}",
        r.text()
    );
    // A refund of a payment codelink never saw: nothing to retry.
    let stray = charge_refunded("evt_3MmlStray", "pi_unknown", "cus_Nobody", 500, 0, 500);
    let (r, _) = stripe_post(&gw.anon, &path, &stray, now()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ignored", "{}", r.text());
    // A refund in another currency than its purchase's: refused for good,
    // answered 200 so that Stripe does not retry it for days.
    let mut usd = charge_refunded(
        "evt_3MmlUsd",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "cus_NffrFeUfNV2Hib",
        4900,
        0,
        100,
    );
    usd["data"]["object"]["currency"] = json!("usd");
    let (r, _) = stripe_post(&gw.anon, &path, &usd, now()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "refused", "{}", r.text());
    assert!(
        r.json()["reason"].as_str().unwrap().contains("currency"),
        "{}",
        r.text()
    );

    // Read back: two purchases (49.00 + 20.00), two refunds (49.00), and
    // earnings 490 + 200 − 100 − 390; the refused 1000.00 is nowhere.
    let s = settled(&gw.admin, "alice10", 2, 2).await;
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 2000}]),
        "{s}"
    );
    assert_eq!(
        s["earnings_estimated"],
        json!([{"currency": "EUR", "amount": 200}]),
        "{s}"
    );
    let all = summary(&gw.admin, "").await;
    assert_eq!(all["purchases"], 2, "{all}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn stripe_subscription_checkout_and_its_first_invoice_count_once() {
    let gw = gateway_with_code().await;
    let path = register(
        &gw.admin,
        json!({"provider": "stripe", "secret": STRIPE_SECRET}),
    )
    .await;
    let token = scan(&gw.anon, "/alice10/bio").await;
    let mut session = checkout_session("evt_sub_checkout", "", "cus_Sub", "", 1500);
    let object = &mut session["data"]["object"];
    object["mode"] = json!("subscription");
    object["payment_intent"] = Value::Null;
    object["client_reference_id"] = Value::Null;
    object["metadata"] = json!({"cl_scan": token});
    object["invoice"] = json!("in_first");
    object["subscription"] = json!("sub_1");
    let (r, _) = stripe_post(&gw.anon, &path, &session, now()).await;
    let v = r.json();
    assert_eq!(v["conversion"]["event_id"], "stripe:in_first", "{v}");
    assert_eq!(v["conversion"]["attribution"]["channel"], "bio");
    // The same payment through invoice.paid: counted once.
    let first = invoice_paid("evt_sub_invoice", "in_first", "cus_Sub", 1500, json!({}));
    let (r, _) = stripe_post(&gw.anon, &path, &first, now()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "duplicate", "{}", r.text());
    assert_eq!(
        r.json()["reason"],
        "stripe:in_first was recorded from another event about the same payment"
    );
    // A free trial's checkout is a signup: the customer is tied to the scan.
    let mut trial = checkout_session("evt_trial", &token, "cus_Trial", "", 0);
    trial["data"]["object"]["mode"] = json!("subscription");
    trial["data"]["object"]["payment_intent"] = Value::Null;
    let (r, _) = stripe_post(&gw.anon, &path, &trial, now()).await;
    let v = r.json();
    assert_eq!(v["conversion"]["type"], "signup", "{v}");
    assert_eq!(v["conversion"]["earnings"]["amount"], 200);
    let s = settled(&gw.admin, "alice10", 1, 0).await;
    assert_eq!(s["signups"], 1, "{s}");
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 1500}]),
        "{s}"
    );
    gw.stop().await.unwrap();
}

fn shopify_order(id: u64, discount: &str, attributes: Value, total: &str) -> Value {
    json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "name": "#1001",
        "created_at": rfc3339(now()),
        "currency": "EUR",
        "presentment_currency": "EUR",
        "financial_status": "paid",
        "subtotal_price": total,
        "total_price": total,
        "total_tax": "0.00",
        "customer": {"id": 115310627314723954u64, "email": "buyer@example.com"},
        "discount_codes": [{"code": discount, "amount": "5.00", "type": "fixed_amount"}],
        "landing_site": "/collections/all?utm_source=instagram",
        "note_attributes": attributes,
        "line_items": [{"id": 866550311766439020u64, "quantity": 1, "price": total, "title": "Yoga mat"}]
    })
}

fn shopify_refund(id: u64, order_id: u64, amount: &str) -> Value {
    json!({
        "id": id,
        "order_id": order_id,
        "created_at": rfc3339(now()),
        "note": "damaged",
        "refund_line_items": [],
        "transactions": [
            {"id": 389404469, "order_id": order_id, "kind": "refund", "status": "success",
             "amount": amount, "currency": "EUR", "gateway": "bogus"},
            {"id": 389404470, "order_id": order_id, "kind": "refund", "status": "failure",
             "amount": "99.00", "currency": "EUR", "gateway": "bogus"}
        ]
    })
}

#[tokio::test]
async fn shopify_orders_by_code_and_by_scan_and_refunds() {
    let gw = gateway_with_code().await;
    let path = register(
        &gw.admin,
        json!({"provider": "shopify", "secret": SHOPIFY_SECRET}),
    )
    .await;

    // The follower typed the creator's code at checkout: code only.
    let order = shopify_order(820982911946154508, "Alice10", json!([]), "120.00");
    let r = shopify_post(
        &gw.anon,
        &path,
        "orders/create",
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        &order,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "created", "{v}");
    let c = &v["conversion"];
    assert_eq!(c["event_id"], "shopify:order:820982911946154508");
    assert_eq!(c["attribution"]["rule"], "code_only");
    assert_eq!(c["attribution"]["code"], "alice10");
    assert_eq!(c["earnings"]["amount"], 1200);
    // Shopify's retry (the same webhook id, nothing signed in time): a duplicate.
    let r = shopify_post(
        &gw.anon,
        &path,
        "orders/create",
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        &order,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "duplicate");

    // The scan token carried as a cart attribute; a discount code that is
    // no codelink code is not a code.
    let token = scan(&gw.anon, "/alice10/yt").await;
    let order2 = shopify_order(
        820982911946154509,
        "WELCOME5",
        json!([{"name": "cl_scan", "value": token}]),
        "30.00",
    );
    let r = shopify_post(
        &gw.anon,
        &path,
        "orders/create",
        "c0ffee00-0000-4000-8000-000000000002",
        &order2,
    )
    .await;
    let v = r.json();
    assert_eq!(v["conversion"]["attribution"]["rule"], "scan_id", "{v}");
    assert_eq!(v["conversion"]["attribution"]["channel"], "yt");
    assert_eq!(v["conversion"]["earnings"]["amount"], 300);

    // A refund of 30.00 of the first order claws back 10 % of it.
    let refund = shopify_refund(509562969, 820982911946154508, "30.00");
    let r = shopify_post(
        &gw.anon,
        &path,
        "refunds/create",
        "c0ffee00-0000-4000-8000-000000000003",
        &refund,
    )
    .await;
    let v = r.json();
    assert_eq!(v["status"], "created", "{v}");
    assert_eq!(
        v["conversion"]["purchase_event_id"],
        "shopify:order:820982911946154508"
    );
    assert_eq!(v["conversion"]["earnings"]["amount"], -300);
    // A refund of an order codelink never saw.
    let stray = shopify_refund(509562970, 1, "5.00");
    let r = shopify_post(
        &gw.anon,
        &path,
        "refunds/create",
        "c0ffee00-0000-4000-8000-000000000004",
        &stray,
    )
    .await;
    assert_eq!(r.json()["status"], "ignored", "{}", r.text());
    // Other topics are ignored; bad signatures and missing topics refused.
    let r = shopify_post(
        &gw.anon,
        &path,
        "customers/create",
        "c0ffee00-0000-4000-8000-000000000005",
        &json!({"id": 1}),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["status"].clone()),
        (200, json!("ignored"))
    );
    let body = serde_json::to_vec(&shopify_order(9, "Alice10", json!([]), "500.00")).unwrap();
    let forged = gateway::qr_logo::base64(&codelink_dashboards::hmac(b"not-the-secret", &body));
    let r = post_raw(
        &gw.anon,
        &path,
        &[
            ("x-shopify-hmac-sha256", &forged),
            ("x-shopify-topic", "orders/create"),
        ],
        &body,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "bad_signature")
    );
    let r = post_raw(
        &gw.anon,
        &path,
        &[
            ("x-shopify-hmac-sha256", "bm90IGJhc2U2NA"),
            ("x-shopify-topic", "orders/create"),
        ],
        &body,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (400, "malformed_signature")
    );
    let good =
        gateway::qr_logo::base64(&codelink_dashboards::hmac(SHOPIFY_SECRET.as_bytes(), &body));
    let r = post_raw(&gw.anon, &path, &[("x-shopify-hmac-sha256", &good)], &body).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (400, "missing_topic")
    );

    // Read back: 150.00 bought, 30.00 refunded; 1200 + 300 − 300 earned.
    let s = settled(&gw.admin, "alice10", 2, 1).await;
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 12000}]),
        "{s}"
    );
    assert_eq!(
        s["earnings_estimated"],
        json!([{"currency": "EUR", "amount": 1200}]),
        "{s}"
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn registry_and_unknown_endpoints() {
    let gw = gateway_with_code().await;
    let admin = &gw.admin;
    // Bad registrations.
    for (body, field) in [
        (
            json!({"provider": "stripe", "secret": "sk_live_51HqLyjWDarjtT1zdp7dc"}),
            "secret",
        ),
        (json!({"provider": "shopify", "secret": "short"}), "secret"),
        (
            json!({"provider": "paypal", "secret": STRIPE_SECRET}),
            "shopify",
        ),
        (
            json!({"provider": "stripe", "secret": STRIPE_SECRET, "code": "nosuchcode"}),
            "code",
        ),
        (
            json!({"provider": "stripe", "secret": STRIPE_SECRET, "extra": 1}),
            "extra",
        ),
    ] {
        let r = admin.post_json("/api/v1/integrations", &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains(field), "{field}: {}", r.text());
    }
    let creator = gw.key(json!({"kind": "creator", "creator": "alice"})).await;
    let alice = gw.anon.clone().with_bearer(&creator);
    assert_eq!(alice.get("/api/v1/integrations").await.status, 403);
    assert_eq!(gw.anon.get("/api/v1/integrations").await.status, 401);

    let r = admin
        .post_json("/api/v1/integrations", &json!({"provider": "stripe", "secret": STRIPE_SECRET, "name": "shop", "code": "ALICE10"}))
        .await;
    assert_eq!(r.status, 201);
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["code"], "alice10");
    assert_eq!(created["secret_set"], true);
    let path = format!("/api/v1/integrations/stripe/{id}");
    let list = admin.get("/api/v1/integrations").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["items"][0]["id"], id.as_str());
    assert!(!list.text().contains(STRIPE_SECRET));
    let one = admin.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(one.json(), created);

    // The endpoint's code is credited to an event that names no scan.
    let event = checkout_session("evt_default_code", "", "", "pi_dc", 1000);
    let (r, _) = stripe_post(&gw.anon, &path, &event, now()).await;
    assert_eq!(
        r.json()["conversion"]["attribution"]["code"],
        "alice10",
        "{}",
        r.text()
    );

    // Unknown endpoints: another id, the other provider's path, junk.
    let (r, _) = stripe_post(
        &gw.anon,
        "/api/v1/integrations/stripe/0123456789abcdef01234567",
        &event,
        now(),
    )
    .await;
    assert_eq!(r.status, 404);
    let (r, _) = stripe_post(
        &gw.anon,
        &format!("/api/v1/integrations/shopify/{id}"),
        &event,
        now(),
    )
    .await;
    assert_eq!(r.status, 404);
    let (r, _) = stripe_post(
        &gw.anon,
        "/api/v1/integrations/stripe/..%2f..",
        &event,
        now(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(gw.anon.get(&path).await.status, 405);

    // Renamed, its code cleared; a bad PATCH changes nothing.
    let r = admin
        .patch_json(
            &format!("/api/v1/integrations/{id}"),
            &json!({"name": "EU shop", "code": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.json()["name"].clone(), r.json()["code"].clone()),
        (json!("EU shop"), Value::Null)
    );
    let r = admin
        .patch_json(
            &format!("/api/v1/integrations/{id}"),
            &json!({"secret": "sk_test_notASigningSecret"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        admin
            .patch_json("/api/v1/integrations/0123456789abcdef01234567", &json!({}))
            .await
            .status,
        404
    );

    let r = admin.delete(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        admin
            .delete(&format!("/api/v1/integrations/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .get(&format!("/api/v1/integrations/{id}"))
            .await
            .status,
        404
    );
    let (r, _) = stripe_post(&gw.anon, &path, &event, now()).await;
    assert_eq!(r.status, 404, "a removed endpoint takes nothing");
    gw.stop().await.unwrap();
}

/// Two instances on one Redis: an endpoint registered through one takes
/// events through the other, and a delivery replayed to the other instance
/// is still a replay.
#[tokio::test]
async fn redis_mode_shares_endpoints_and_replays() {
    let redis = RedisServer::start();
    let start = || async {
        let (mut c, tmp) = common::config();
        c.redis_url = Some(redis.url());
        c.redis_prefix = "integrations".into();
        c.secret = Some("shared-secret-of-both-instances".into());
        c.flush_ms = 50;
        common::start_with(c, Some(tmp)).await
    };
    let a = start().await;
    let b = start().await;
    assert_eq!(a.create(common::alice()).await.status, 201);
    let path = register(
        &a.admin,
        json!({"provider": "stripe", "secret": STRIPE_SECRET}),
    )
    .await;
    assert_eq!(
        b.admin.get("/api/v1/integrations").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The code reaches b's table through the Redis sync.
    assert!(
        codelink_testkit::wait_until(Duration::from_secs(5), || async {
            b.anon.get("/alice10").await.status == 302
        })
        .await
    );
    let token = scan(&a.anon, "/alice10/yt").await;
    let event = checkout_session("evt_redis_1", &token, "cus_R", "pi_R", 2500);
    let t = now();
    let (r, header) = stripe_post(&b.anon, &path, &event, t).await;
    assert_eq!(r.json()["status"], "created", "{}", r.text());
    let body = serde_json::to_vec(&event).unwrap();
    let r = post_raw(&a.anon, &path, &[("stripe-signature", &header)], &body).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let (r, _) = stripe_post(&a.anon, &path, &event, t + 2).await;
    assert_eq!(r.json()["status"], "duplicate", "{}", r.text());
    let id = path.rsplit('/').next().unwrap();
    assert_eq!(
        b.admin
            .delete(&format!("/api/v1/integrations/{id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        a.admin
            .get(&format!("/api/v1/integrations/{id}"))
            .await
            .status,
        404
    );
    // Conversion rows are in the embedded row store of the instance that took them.
    let s = settled(&b.admin, "alice10", 1, 0).await;
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 2500}]),
        "{s}"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

fn endpoint(id: &str) -> codelink_shared::Integration {
    codelink_shared::Integration {
        id: id.into(),
        provider: codelink_shared::Provider::Shopify,
        secret: SHOPIFY_SECRET.into(),
        name: Some("EU shop".into()),
        code: None,
        created_at: 1_800_000_000,
    }
}

/// What both store backends must do alike: keep endpoints with their
/// secrets, and tell a delivery's first sighting from a repeat until the
/// mark expires.
async fn check_store(store: gateway::store::Store) {
    assert!(store.list_integrations().await.unwrap().is_empty());
    store.put_integration(endpoint("a1")).await.unwrap();
    store.put_integration(endpoint("b2")).await.unwrap();
    let got = store.integration("a1").await.unwrap().unwrap();
    assert_eq!(got, endpoint("a1"), "kept whole, secret included");
    assert_eq!(store.list_integrations().await.unwrap().len(), 2);
    assert_eq!(
        store.delete_integration("a1").await.unwrap().unwrap().id,
        "a1"
    );
    assert!(store.delete_integration("a1").await.unwrap().is_none());
    assert!(store.integration("a1").await.unwrap().is_none());

    let until = now() + 60;
    assert!(store.first_delivery("b2:evt_1:100", until).await.unwrap());
    assert!(!store.first_delivery("b2:evt_1:100", until).await.unwrap());
    assert!(store.first_delivery("b2:evt_1:101", until).await.unwrap());
    // A mark lasts until `until` (at least a second), then the delivery is
    // new again (its signature would be refused as too old by then).
    assert!(store
        .first_delivery("b2:evt_2:100", now() + 1)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(store
        .first_delivery("b2:evt_2:100", now() + 60)
        .await
        .unwrap());
    assert!(!store.first_delivery("b2:evt_1:100", until).await.unwrap());
}

#[tokio::test]
async fn store_backends_keep_endpoints_and_deliveries() {
    let tmp = tempfile::tempdir().unwrap();
    let embedded = gateway::store::EmbeddedStore::open(tmp.path(), 16 << 20).unwrap();
    check_store(gateway::store::Store::Embedded(embedded)).await;
    let redis = RedisServer::start();
    let store = gateway::store::RedisStore::connect(
        &codelink_analytics::redis_conn::RedisTarget::Single(redis.url()),
        "store-test",
    )
    .unwrap();
    check_store(gateway::store::Store::Redis(store)).await;
}

/// Stripe shows an endpoint's signing secret only once its URL is entered:
/// the endpoint is registered without one, takes nothing until it is set,
/// then takes events signed with it, and a rolled secret replaces it.
#[tokio::test]
async fn the_secret_may_come_after_the_url() {
    let gw = gateway_with_code().await;
    let r = gw
        .admin
        .post_json("/api/v1/integrations", &json!({"provider": "stripe"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["secret_set"], false);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/integrations/stripe/{id}");
    let event = checkout_session("evt_secret_later", "", "cus_L", "pi_L", 1000);
    // Signed with the empty key, as a forger would: refused all the same.
    let body = serde_json::to_vec(&event).unwrap();
    let forged = stripe_header("", now(), &body);
    let r = post_raw(&gw.anon, &path, &[("stripe-signature", &forged)], &body).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_str()),
        (401, "no_secret")
    );
    let r = gw
        .admin
        .patch_json(
            &format!("/api/v1/integrations/{id}"),
            &json!({"secret": STRIPE_SECRET}),
        )
        .await;
    assert_eq!(r.json()["secret_set"], true, "{}", r.text());
    let (r, _) = stripe_post(&gw.anon, &path, &event, now()).await;
    assert_eq!(r.json()["status"], "created", "{}", r.text());
    // Rolled: the old secret's signatures no longer pass.
    let r = gw
        .admin
        .patch_json(
            &format!("/api/v1/integrations/{id}"),
            &json!({"secret": "whsec_theRolledSecret"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let (r, _) = stripe_post(&gw.anon, &path, &event, now()).await;
    assert_eq!(r.error_code(), "bad_signature");
    gw.stop().await.unwrap();
}

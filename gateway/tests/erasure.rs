//! Erasure (`POST /api/v1/erasure`, GDPR art. 17): a visitor's and a
//! customer's ids leave every store, on the embedded default and on real
//! Redis + ClickHouse, while every number stays the same.

mod common;

use codelink_testkit::{ClickHouseServer, RedisServer};
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/// A redirect from `ip`; returns the visitor id (from the signed cookie).
async fn visit(gw: &common::TestGateway, ip: &str) -> String {
    let r = gw
        .anon
        .send(
            Method::GET,
            "/alice10/yt",
            &codelink_testkit::http::browser(IPHONE, &[("x-forwarded-for", ip)]),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 302);
    let cookie = r.header("set-cookie").unwrap();
    cookie["cl_vid=".len()..]
        .split(['.', ';'])
        .next()
        .unwrap()
        .to_string()
}

async fn summary(gw: &common::TestGateway) -> Value {
    gw.admin
        .get("/api/v1/analytics/summary?code=alice10")
        .await
        .json()["summary"]
        .clone()
}

async fn scans(gw: &common::TestGateway) -> Vec<Value> {
    gw.admin.get("/api/v1/codes/alice10/scans").await.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Two visitors scan; one signs up and buys as customer c-1. Returns their ids.
async fn produce(gw: &common::TestGateway) -> (String, String) {
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let v1 = visit(gw, "10.1.0.1").await;
    let v2 = visit(gw, "10.1.0.2").await;
    for body in [
        json!({"event_id": "e1", "type": "signup", "code": "alice10", "visitor_id": v1, "customer_id": "c-1"}),
        json!({"event_id": "e2", "type": "purchase", "customer_id": "c-1", "amount": 3000, "currency": "EUR"}),
    ] {
        let r = gw.admin.post_json("/api/v1/conversions", &body).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let s = summary(gw).await;
        s["human_scans"] == 2 && s["purchases"] == 1
    })
    .await;
    assert!(ok, "not recorded");
    (v1, v2)
}

async fn erase(gw: &common::TestGateway, body: Value) -> Value {
    let r = gw.admin.post_json("/api/v1/erasure", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn erasure_on_the_embedded_store_keeps_every_number() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    let gw = common::start_with(config, Some(tmp)).await;
    let (v1, v2) = produce(&gw).await;
    let before = summary(&gw).await;

    // Only the admin, and exactly one subject.
    let creator = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": "alice"}),
        )
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = gw
        .anon
        .clone()
        .with_bearer(&creator)
        .post_json("/api/v1/erasure", &json!({"visitor_id": v1}))
        .await;
    assert_eq!(r.status, 403);
    for bad in [
        json!({}),
        json!({"visitor_id": v1, "customer_id": "c-1"}),
        json!({"visitor_id": ""}),
    ] {
        assert_eq!(
            gw.admin.post_json("/api/v1/erasure", &bad).await.status,
            422,
            "{bad}"
        );
    }

    let out = erase(&gw, json!({"visitor_id": v1})).await;
    assert_eq!(out["erased"]["embedded"]["scans"], 1, "{out}");
    assert_eq!(out["erased"]["embedded"]["last_visits"], 1, "{out}");
    assert_eq!(out["erased"]["embedded"]["conversions"], 1, "{out}");
    let rows = scans(&gw).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|s| s["visitor_id"] != v1.as_str()),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|s| s["visitor_id"] == v2.as_str()),
        "the other visitor stays"
    );
    let erased = rows
        .iter()
        .find(|s| s["visitor_id"] == "")
        .expect("the erased scan stays as a row");
    assert_eq!(erased["ip_prefix"], "");
    // Empty fields show as null in the drill-down.
    assert!(erased["user_agent"].is_null(), "{erased}");
    assert!(erased["referrer_host"].is_null(), "{erased}");

    let out = erase(&gw, json!({"customer_id": "c-1"})).await;
    assert_eq!(out["erased"]["embedded"]["conversions"], 2, "{out}");
    assert!(
        out["erased"]["embedded"]["customer_entries"]
            .as_u64()
            .unwrap()
            >= 2,
        "{out}"
    );
    // The customer is not known any more: a refund by customer id alone finds
    // no purchase.
    let r = gw
        .admin
        .post_json("/api/v1/conversions", &json!({"event_id": "e3", "type": "refund", "customer_id": "c-1", "amount": 100, "currency": "EUR"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // Every number is what it was.
    assert_eq!(summary(&gw).await, before);
    // Erasing again changes nothing.
    let again = erase(&gw, json!({"visitor_id": v1})).await;
    assert_eq!(again["erased"]["embedded"]["scans"], 0, "{again}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn erasure_reaches_redis_and_clickhouse() {
    let redis = RedisServer::start();
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.redis_url = Some(redis.url());
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "erasure".into();
    let gw = common::start_with(config, Some(tmp)).await;
    let (v1, _v2) = produce(&gw).await;
    let before = summary(&gw).await;
    let count = |sql: &str| ch.query_in("erasure", sql).trim().to_string();
    assert_eq!(
        count(&format!(
            "SELECT count() FROM scans WHERE visitor_id = '{v1}'"
        )),
        "1"
    );

    let out = erase(&gw, json!({"visitor_id": v1})).await;
    assert_eq!(out["erased"]["clickhouse_mutations"], true, "{out}");
    assert!(
        out["erased"]["redis_keys_deleted"].as_u64().unwrap() >= 1,
        "{out}"
    );
    assert_eq!(out["erased"]["redis_answers_rewritten"], 1, "{out}");
    let out = erase(&gw, json!({"customer_id": "c-1"})).await;
    assert!(
        out["erased"]["redis_keys_deleted"].as_u64().unwrap() >= 2,
        "{out}"
    );
    // ClickHouse applies mutations in the background.
    let done = codelink_testkit::wait_until(Duration::from_secs(20), || async {
        count(&format!(
            "SELECT count() FROM scans WHERE visitor_id = '{v1}'"
        )) == "0"
            && count("SELECT count() FROM conversions WHERE customer_id = 'c-1'") == "0"
            && count(&format!(
                "SELECT count() FROM conversions WHERE visitor_id = '{v1}'"
            )) == "0"
    })
    .await;
    assert!(done, "the mutations did not finish");
    assert_eq!(count("SELECT count() FROM scans"), "2");
    assert_eq!(count("SELECT count() FROM conversions FINAL"), "2");
    assert_eq!(summary(&gw).await, before);
    gw.stop().await.unwrap();
}

//! Conversions over real HTTP: keys, each attribution rule, signed scan ids,
//! window boundaries, refunds, idempotency (repeat, concurrent, restart, two
//! instances) and bad input.

mod common;

use codelink_analytics::token::Signer;
use codelink_analytics::ScanId;
use codelink_testkit::http::Client;
use codelink_testkit::RedisServer;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "conversion-test-secret-0123456789";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";

fn config() -> (gateway::Config, tempfile::TempDir) {
    let (mut config, tmp) = common::config();
    config.secret = Some(SECRET.into());
    config.flush_ms = 50;
    config.hold_days = 14;
    (config, tmp)
}

async fn key(gw: &common::TestGateway, body: Value) -> String {
    let r = gw.admin.post_json("/api/v1/keys", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_string()
}

async fn ingest(client: &Client, body: Value) -> (u16, Value) {
    let r = client.post_json("/api/v1/conversions", &body).await;
    let status = r.status.as_u16();
    (status, r.json())
}

/// A redirect; returns the cl_scan token and the visitor cookie.
async fn scan(client: &Client, path: &str) -> (String, String) {
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
    let token = loc
        .query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .unwrap()
        .1
        .into_owned();
    let cookie = r.header("set-cookie").unwrap();
    let visitor = cookie["cl_vid=".len()..]
        .split(';')
        .next()
        .unwrap()
        // The cookie is `{visitor id}.{signature}`.
        .split('.')
        .next()
        .unwrap()
        .to_string();
    (token, visitor)
}

fn ago(ms: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    now - ms
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn keys_scope_the_endpoints() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let ingest_key = key(&gw, json!({"kind": "ingest"})).await;
    let creator_key = key(&gw, json!({"kind": "creator", "creator": "alice"})).await;
    let brand = gw.anon.clone().with_bearer(&ingest_key);
    let alice = gw.anon.clone().with_bearer(&creator_key);
    let signup = json!({"event_id": "k1", "type": "signup"});
    assert_eq!(ingest(&brand, signup.clone()).await.0, 202);
    assert_eq!(ingest(&alice, signup.clone()).await.0, 403);
    assert_eq!(ingest(&gw.anon, signup).await.0, 401);
    assert_eq!(brand.get("/api/v1/codes").await.status, 403);
    assert_eq!(
        alice
            .post_json("/api/v1/codes", &common::alice())
            .await
            .status,
        403
    );
    assert_eq!(alice.get("/api/v1/keys").await.status, 403);
    // Bad key requests.
    let r = gw
        .admin
        .post_json("/api/v1/keys", &json!({"kind": "creator"}))
        .await;
    assert_eq!(r.status, 422);
    let r = gw
        .admin
        .post_json("/api/v1/keys", &json!({"kind": "root"}))
        .await;
    assert_eq!(r.status, 422);
    // Revoked keys stop working.
    let keys = gw.admin.get("/api/v1/keys").await.json();
    let id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "ingest")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        keys.to_string().find(&ingest_key).is_none(),
        "secret listed"
    );
    assert_eq!(
        gw.admin.delete(&format!("/api/v1/keys/{id}")).await.status,
        200
    );
    assert_eq!(
        ingest(&brand, json!({"event_id": "k2", "type": "signup"}))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn creator_sees_only_own_codes_and_others_are_404() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    gw.create(json!({"code": "bob20", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    let alice = gw
        .anon
        .clone()
        .with_bearer(&key(&gw, json!({"kind": "creator", "creator": "alice"})).await);
    assert_eq!(alice.get("/api/v1/codes/alice10").await.status, 200);
    assert_eq!(alice.get("/api/v1/codes/alice10/stats").await.status, 200);
    let r = alice.get("/api/v1/codes/bob20").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    assert_eq!(alice.get("/api/v1/codes/bob20/stats").await.status, 404);
    let list = alice.get("/api/v1/codes").await.json();
    let codes: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["alice10"]);
}

#[tokio::test]
async fn each_attribution_rule() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await; // plan: EUR, 200 per signup, 10 %, cap 5000
    let admin = &gw.admin;

    // 1. scan_id: the token from a real redirect.
    let (token, visitor) = scan(&gw.anon, "/alice10/yt").await;
    let (s, r) = ingest(admin, json!({"event_id": "e1", "type": "purchase", "scan_id": token, "amount": 12345, "currency": "EUR"})).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["status"], "created");
    assert_eq!(r["attribution"]["rule"], "scan_id");
    assert_eq!(r["attribution"]["code"], "alice10");
    assert_eq!(r["attribution"]["owner"], "alice");
    assert_eq!(r["attribution"]["channel"], "yt");
    assert_eq!(
        r["attribution"]["scan_id"],
        token.split('.').next().unwrap()
    );
    assert_eq!(r["earnings"]["amount"], 1235);
    assert_eq!(r["earnings"]["currency"], "EUR");
    assert_eq!(r["earnings"]["status"], "estimated");

    // 2. visitor: code typed at checkout + the visitor id; the scan is found.
    tokio::time::sleep(Duration::from_millis(300)).await; // the scan reaches the live store
    let (_, r) = ingest(admin, json!({"event_id": "e2", "type": "signup", "code": "ALICE10", "visitor_id": visitor, "customer_id": "cust-1"})).await;
    assert_eq!(r["attribution"]["rule"], "visitor", "{r}");
    assert_eq!(r["attribution"]["channel"], "yt");
    assert_eq!(r["earnings"]["amount"], 200);

    // 3. inherited: the customer's later purchase and refund follow the signup.
    let (_, r) = ingest(admin, json!({"event_id": "e3", "type": "purchase", "customer_id": "cust-1", "amount": 100000, "currency": "EUR"})).await;
    assert_eq!(r["attribution"]["rule"], "inherited", "{r}");
    assert_eq!(r["attribution"]["code"], "alice10");
    assert_eq!(r["attribution"]["channel"], "yt");
    assert_eq!(r["earnings"]["amount"], 5000, "capped");
    let (_, r) = ingest(admin, json!({"event_id": "e4", "type": "refund", "customer_id": "cust-1", "amount": 12345, "currency": "EUR"})).await;
    assert_eq!(r["attribution"]["rule"], "inherited");
    assert_eq!(
        r["purchase_event_id"], "e3",
        "the customer's latest purchase"
    );
    // Its share of what the purchase earned: 5000 × 12345 / 100000.
    assert_eq!(r["earnings"]["amount"], -617, "refunds claw back");

    // 4. code only: typed code, no scan by this visitor.
    let (_, r) = ingest(admin, json!({"event_id": "e5", "type": "signup", "code": "alice10", "visitor_id": "someone-else-entirely"})).await;
    assert_eq!(r["attribution"]["rule"], "code_only");
    assert_eq!(r["attribution"]["scan_id"], Value::Null);
    assert_eq!(r["earnings"]["amount"], 200);

    // 5. unattributed, stored and reported as such.
    let (s, r) = ingest(
        admin,
        json!({"event_id": "e6", "type": "purchase", "amount": 500, "currency": "USD"}),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(r["attribution"]["rule"], "unattributed");
    assert_eq!(r["attribution"]["code"], Value::Null);
    assert_eq!(r["earnings"]["amount"], 0);

    // A purchase in another currency than the plan earns nothing, with a note.
    let (_, r) = ingest(admin, json!({"event_id": "e7", "type": "purchase", "code": "alice10", "amount": 500, "currency": "USD"})).await;
    assert_eq!(r["earnings"]["amount"], 0);
    assert!(r["notes"][0].as_str().unwrap().contains("USD"), "{r}");
}

#[tokio::test]
async fn forged_or_altered_scan_ids_are_not_scans() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    gw.create(json!({"code": "bob20", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    let (token, _) = scan(&gw.anon, "/alice10/yt").await;
    let id = token.split('.').next().unwrap().to_string();
    let other_secret =
        Signer::new(b"not-the-server-secret").token(ScanId::parse(&id).unwrap(), "bob20", "");
    for (n, forged) in [
        token.replace("alice10", "bob20"), // re-pointed to another code
        token.replace(".yt.", ".bio."),    // another channel
        // signature changed (its last character, to one it is not)
        format!(
            "{}{}",
            &token[..token.len() - 1],
            if token.ends_with('X') { 'Y' } else { 'X' }
        ),
        id.clone(),   // the bare id, unsigned
        other_secret, // signed with another secret
        "garbage".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, r) = ingest(
            &gw.admin,
            json!({"event_id": format!("f{n}"), "type": "signup", "scan_id": forged}),
        )
        .await;
        assert_eq!(s, 202);
        assert_eq!(r["attribution"]["rule"], "unattributed", "{forged}: {r}");
        assert!(
            r["notes"][0]
                .as_str()
                .unwrap()
                .contains("not a valid scan token"),
            "{r}"
        );
    }
    // With a typed code as well, the code still counts, without the scan.
    let (_, r) = ingest(&gw.admin, json!({"event_id": "f9", "type": "signup", "scan_id": format!("{id}.bob20..AAAAAAAAAAAAAAAA"), "code": "alice10"})).await;
    assert_eq!(r["attribution"]["rule"], "code_only");
    assert_eq!(r["attribution"]["code"], "alice10");
}

#[tokio::test]
async fn attribution_window_boundaries() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let mut code = common::alice();
    code["attribution_window_days"] = json!(1);
    gw.create(code).await;
    let signer = Signer::new(SECRET.as_bytes());
    let day = 86_400_000;
    let token_at = |ms: u64| signer.token(ScanId::from_parts(ms, 7, 7), "alice10", "yt");
    let now = ago(0);
    // Scan 2 days ago: conversion 1 day - 1 s later is inside, 1 day + 1 s outside.
    let scan_ms = now - 2 * day;
    let inside = rfc3339(scan_ms + day - 1000);
    let outside = rfc3339(scan_ms + day + 2000);
    let (_, r) = ingest(&gw.admin, json!({"event_id": "w1", "type": "signup", "scan_id": token_at(scan_ms), "occurred_at": inside})).await;
    assert_eq!(r["attribution"]["rule"], "scan_id", "{r}");
    let (_, r) = ingest(&gw.admin, json!({"event_id": "w2", "type": "signup", "scan_id": token_at(scan_ms), "occurred_at": outside})).await;
    assert_eq!(r["attribution"]["rule"], "unattributed", "{r}");
    assert!(r["notes"][0].as_str().unwrap().contains("window"), "{r}");
    // A scan after the conversion cannot have caused it.
    let (_, r) = ingest(&gw.admin, json!({"event_id": "w3", "type": "signup", "scan_id": token_at(now - 1000), "occurred_at": rfc3339(now - day)})).await;
    assert_eq!(r["attribution"]["rule"], "unattributed", "{r}");
    // Earnings older than the hold period (14 days here) are confirmed.
    let old = now - 20 * day;
    let (_, r) = ingest(
        &gw.admin,
        json!({"event_id": "w4", "type": "signup", "code": "alice10", "occurred_at": rfc3339(old)}),
    )
    .await;
    assert_eq!(r["earnings"]["status"], "confirmed", "{r}");
}

#[tokio::test]
async fn same_event_twice_concurrently_and_after_restart_is_counted_once() {
    let (config, tmp) = config();
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    gw.create(common::alice()).await;
    let (token, _) = scan(&gw.anon, "/alice10/bio").await;
    let event = json!({"event_id": "dup-1", "type": "purchase", "scan_id": token, "amount": 1000, "currency": "EUR"});
    let (a, b) = tokio::join!(
        ingest(&gw.admin, event.clone()),
        ingest(&gw.admin, event.clone())
    );
    let mut statuses = [a.1["status"].clone(), b.1["status"].clone()];
    statuses.sort_by_key(|v| v.to_string());
    assert_eq!(statuses, [json!("created"), json!("duplicate")]);
    assert_eq!(a.1["attribution"], b.1["attribution"]);
    assert_eq!(a.1["earnings"], b.1["earnings"]);

    // A later retry with different content is refused: 409, like an
    // idempotency key reused for another request.
    let mut changed = event.clone();
    changed["amount"] = json!(999_999);
    let r = gw.admin.post_json("/api/v1/conversions", &changed).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "idempotency_conflict");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dup-1"));

    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();
    let gw = common::start_with(config, tmp).await;
    let (_, r) = ingest(&gw.admin, event.clone()).await;
    assert_eq!(r["status"], "duplicate");
    assert_eq!(r["earnings"]["amount"], 100);
    // The fingerprint survives the restart too.
    let mut changed = event;
    changed["currency"] = json!("USD");
    let r = gw.admin.post_json("/api/v1/conversions", &changed).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let tmp = {
        let mut gw = gw;
        let t = gw.take_tmp();
        gw.stop().await.unwrap();
        t.unwrap()
    };
    // One stored row.
    let sink = codelink_analytics::sink::EmbeddedSink::open(tmp.path(), true, true).unwrap();
    let rows = sink.all_conversions().await.unwrap();
    assert_eq!(rows.iter().filter(|c| c.event_id == "dup-1").count(), 1);
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn two_instances_share_idempotency_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    share_idempotency(&move |c| c.redis_url = Some(url.clone())).await;
}

/// The same on a 3-master Redis Cluster: claims and customer links are in
/// one slot (`{conv}:…`), and the two instances still agree.
#[tokio::test]
async fn two_instances_share_idempotency_through_a_redis_cluster() {
    let cluster = codelink_testkit::RedisCluster::start();
    let seeds = cluster.seeds();
    share_idempotency(&move |c| c.redis_cluster = Some(seeds.clone())).await;
}

async fn share_idempotency(use_redis: &dyn Fn(&mut gateway::Config)) {
    let make = || {
        let (mut c, t) = config();
        use_redis(&mut c);
        c.redis_prefix = "conv".into();
        (c, t)
    };
    let (ca, ta) = make();
    let a = common::start_with(ca, Some(ta)).await;
    let (cb, tb) = make();
    let b = common::start_with(cb, Some(tb)).await;
    a.create(common::alice()).await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(2), || async {
        b.admin.get("/api/v1/codes/alice10").await.status == 200
    })
    .await;
    assert!(ok);
    let event =
        json!({"event_id": "shared-1", "type": "signup", "code": "alice10", "customer_id": "c-9"});
    let (x, y) = tokio::join!(
        ingest(&a.admin, event.clone()),
        ingest(&b.admin, event.clone())
    );
    let mut statuses = [x.1["status"].clone(), y.1["status"].clone()];
    statuses.sort_by_key(|v| v.to_string());
    assert_eq!(statuses, [json!("created"), json!("duplicate")]);
    // The customer link is shared too: a purchase on the other instance inherits.
    let (_, r) = ingest(&b.admin, json!({"event_id": "shared-2", "type": "purchase", "customer_id": "c-9", "amount": 2000, "currency": "EUR"})).await;
    assert_eq!(r["attribution"]["rule"], "inherited", "{r}");
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let cases = [
        json!({"event_id": "b1", "type": "purchase", "amount": 100, "currency": "EURO"}),
        json!({"event_id": "b2", "type": "purchase", "amount": 100, "currency": "XYZ"}),
        json!({"event_id": "b3", "type": "purchase", "amount": -5, "currency": "EUR"}),
        json!({"event_id": "b4", "type": "purchase"}),
        json!({"event_id": "b5", "type": "purchase", "amount": 100}),
        json!({"event_id": "has space", "type": "signup"}),
        json!({"event_id": "", "type": "signup"}),
        json!({"event_id": "b6", "type": "signup", "customer_id": "x".repeat(200)}),
        json!({"event_id": "b7", "type": "gift"}),
        json!({"event_id": "b8", "type": "signup", "occurred_at": "yesterday"}),
        json!({"event_id": "b9", "type": "signup", "occurred_at": "2999-01-01T00:00:00Z"}),
        json!({"event_id": "b10", "type": "signup", "code": "no such code!"}),
        json!({"event_id": "b11", "type": "signup", "amount": "ten", "currency": "EUR"}),
        json!({"type": "signup"}),
        json!([]),
        Value::Array(
            (0..101)
                .map(|i| json!({"event_id": format!("m{i}"), "type": "signup"}))
                .collect(),
        ),
        json!([{"event_id": "ok", "type": "signup"}, {"event_id": "bad", "type": "purchase", "amount": -1, "currency": "EUR"}]),
    ];
    for case in cases {
        let r = gw.admin.post_json("/api/v1/conversions", &case).await;
        assert_eq!(r.status, 422, "{case} -> {}", r.text());
        assert!(r.json()["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Nothing of a rejected batch was stored: the valid event is still new.
    let (_, r) = ingest(&gw.admin, json!({"event_id": "ok", "type": "signup"})).await;
    assert_eq!(r["status"], "created");
    // Batch form answers per event.
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!([{"event_id": "ok", "type": "signup"}, {"event_id": "n2", "type": "signup"}]),
        )
        .await;
    assert_eq!(r.status, 202);
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results[0]["status"], "duplicate");
    assert_eq!(results[1]["status"], "created");
}

/// When a sink is down and its spool cannot take the batch (full disk), the
/// brand gets 503, not a 202 for a row that was never kept, and can retry.
#[tokio::test]
async fn conversions_that_cannot_be_stored_are_503() {
    let (mut config, tmp) = config();
    // ClickHouse "configured" on a port where nothing listens, and no room to spool.
    config.clickhouse_url = Some(format!(
        "http://127.0.0.1:{}",
        codelink_testkit::free_port()
    ));
    config.spool_max_bytes = 10;
    let gw = common::start_with(config, Some(tmp)).await;
    let event = json!({"event_id": "nospace-1", "type": "signup"});
    let r = gw.admin.post_json("/api/v1/conversions", &event).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "not_stored");
    let metrics = gw.anon.get("/metrics").await.text();
    assert!(
        metrics.contains("codelink_sink_failures_total{sink=\"clickhouse\"} 1"),
        "{metrics}"
    );
}

fn message(r: &codelink_testkit::http::Response) -> String {
    r.json()["error"]["message"].as_str().unwrap().to_string()
}

/// An `occurred_at` far back (1970) would be confirmed at once, past the
/// hold: older than `--max-event-age-days` (45) is refused, naming the field.
#[tokio::test]
async fn events_too_far_back_are_refused() {
    let (config, tmp) = config();
    assert_eq!(config.max_event_age_days, 45);
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let day = 86_400_000;
    for (id, at) in [
        ("old-1", "1970-01-01T00:00:00Z".to_string()),
        ("old-2", rfc3339(ago(46 * day))),
    ] {
        let body = json!({"event_id": id, "type": "purchase", "code": "alice10", "amount": 1000, "currency": "EUR", "occurred_at": at});
        let r = gw.admin.post_json("/api/v1/conversions", &body).await;
        assert_eq!(r.status, 422, "{at}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        let m = message(&r);
        assert!(
            m.starts_with("occurred_at: ") && m.contains("45 days"),
            "{m}"
        );
    }
    // In a batch, the event is named; nothing of the batch is kept.
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!([
                {"event_id": "fresh-1", "type": "signup"},
                {"event_id": "old-3", "type": "signup", "occurred_at": "1970-01-01T00:00:00Z"}
            ]),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(message(&r).starts_with("[1].occurred_at: "), "{}", r.text());
    // Within the bound: accepted (and, past the 14-day hold, confirmed).
    let (s, r) = ingest(&gw.admin, json!({"event_id": "late-1", "type": "signup", "code": "alice10", "occurred_at": rfc3339(ago(44 * day))})).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["earnings"]["status"], "confirmed");
    let (_, r) = ingest(&gw.admin, json!({"event_id": "fresh-1", "type": "signup"})).await;
    assert_eq!(r["status"], "created");
    drop(gw);

    // The bound is a setting, at least one day.
    let (mut config, tmp) = self::config();
    config.max_event_age_days = 7;
    let gw = common::start_with(config.clone(), Some(tmp)).await;
    let (s, _) = ingest(
        &gw.admin,
        json!({"event_id": "w-8", "type": "signup", "occurred_at": rfc3339(ago(8 * day))}),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = ingest(
        &gw.admin,
        json!({"event_id": "w-6", "type": "signup", "occurred_at": rfc3339(ago(6 * day))}),
    )
    .await;
    assert_eq!(s, 202);
    config.max_event_age_days = 0;
    assert!(config.validate().is_err());
}

/// A refund is tied to its purchase: by `purchase_event_id`, else the
/// customer's latest purchase not yet fully refunded. It refunds at most what
/// is left of it and claws back its share of what the purchase earned.
#[tokio::test]
async fn refunds_are_tied_to_their_purchase() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await; // EUR, 10 %, cap 5000
    let refused = |body: Value| {
        let admin = gw.admin.clone();
        async move {
            let r = admin.post_json("/api/v1/conversions", &body).await;
            assert_eq!(r.status, 422, "{body} -> {}", r.text());
            assert_eq!(r.error_code(), "invalid_field");
            message(&r)
        }
    };
    // The probe's attack: a refund of nothing used to earn -4000.
    let m = refused(json!({"event_id": "r0", "type": "refund", "code": "alice10", "amount": 40000, "currency": "EUR"})).await;
    assert!(
        m.starts_with("purchase_event_id: ") && m.contains("customer_id"),
        "{m}"
    );
    let m = refused(
        json!({"event_id": "r0", "type": "refund", "customer_id": "nobody", "amount": 100}),
    )
    .await;
    assert!(
        m.starts_with("customer_id: no purchase to refund for this customer"),
        "{m}"
    );
    let m = refused(
        json!({"event_id": "r0", "type": "refund", "purchase_event_id": "p404", "amount": 100}),
    )
    .await;
    assert!(m.contains("no purchase with event_id 'p404'"), "{m}");

    let (s, r) = ingest(&gw.admin, json!({"event_id": "p1", "type": "purchase", "code": "alice10", "customer_id": "c1", "amount": 20000, "currency": "EUR"})).await;
    assert_eq!(s, 202);
    assert_eq!(r["earnings"]["amount"], 2000);
    // The probe's other attack: a refund larger than the purchase.
    let m = refused(json!({"event_id": "r0", "type": "refund", "purchase_event_id": "p1", "amount": 30000, "currency": "EUR"})).await;
    assert!(
        m.starts_with("amount: 30000 is more than is left") && m.contains("20000 of 20000 EUR"),
        "{m}"
    );
    let m = refused(json!({"event_id": "r0", "type": "refund", "purchase_event_id": "p1", "amount": 100, "currency": "USD"})).await;
    assert!(m.starts_with("currency: ") && m.contains("EUR"), "{m}");
    let m = refused(json!({"event_id": "r0", "type": "refund", "purchase_event_id": "p1", "customer_id": "c2", "amount": 100})).await;
    assert!(m.starts_with("customer_id: "), "{m}");
    let m = refused(json!({"event_id": "p2", "type": "purchase", "purchase_event_id": "p1", "amount": 100, "currency": "EUR"})).await;
    assert!(m.contains("only a refund"), "{m}");

    // By purchase, currency left out (the purchase's): a quarter of it.
    let r1 = json!({"event_id": "r1", "type": "refund", "purchase_event_id": "p1", "amount": 5000});
    let (s, r) = ingest(&gw.admin, r1.clone()).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["purchase_event_id"], "p1");
    assert_eq!(r["attribution"]["code"], "alice10");
    assert_eq!(r["attribution"]["owner"], "alice");
    assert_eq!(r["attribution"]["rule"], "code_only", "the purchase's");
    assert_eq!(r["earnings"]["amount"], -500);
    assert_eq!(r["earnings"]["currency"], "EUR");
    // By customer: the rest; then nothing is left to refund.
    let (_, r) = ingest(&gw.admin, json!({"event_id": "r2", "type": "refund", "customer_id": "c1", "amount": 15000, "currency": "EUR"})).await;
    assert_eq!(r["purchase_event_id"], "p1", "{r}");
    assert_eq!(r["earnings"]["amount"], -1500);
    let m = refused(json!({"event_id": "r3", "type": "refund", "customer_id": "c1", "amount": 1}))
        .await;
    assert!(m.contains("no purchase to refund"), "{m}");
    // A retry of a refund keeps its answer, though its purchase is used up.
    let (s, r) = ingest(&gw.admin, r1).await;
    assert_eq!((s, r["status"].clone()), (202, json!("duplicate")));
    assert_eq!(r["earnings"]["amount"], -500);
    // In a batch, the refused event is named, and nothing is kept.
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!([
                {"event_id": "p3", "type": "purchase", "code": "alice10", "amount": 1000, "currency": "EUR"},
                {"event_id": "r4", "type": "refund", "purchase_event_id": "p3", "amount": 1000},
                {"event_id": "r5", "type": "refund", "purchase_event_id": "p3", "amount": 1}
            ]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(message(&r).starts_with("[2].amount: "), "{}", r.text());
    let m = refused(
        json!({"event_id": "r4", "type": "refund", "purchase_event_id": "p3", "amount": 1000}),
    )
    .await;
    assert!(m.contains("no purchase with event_id 'p3'"), "{m}");
}

/// A malformed body says which field (and, in a batch, which event) is
/// wrong, not "did not match any variant of untagged enum Body".
#[tokio::test]
async fn malformed_bodies_name_the_field() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    let ok = |id: &str| json!({"event_id": id, "type": "signup"});
    let cases = [
        (
            json!([ok("a"), ok("b"), {"event_id": "c", "type": "purchase", "amount": "x", "currency": "EUR"}]),
            "[2].amount: invalid type: string \"x\", expected i64",
        ),
        (
            json!({"event_id": "c", "type": "signup", "colour": "red"}),
            "colour: unknown field; the fields are event_id, type,",
        ),
        (
            json!([ok("a"), {"event_id": "c", "type": "signup", "colour": "red"}]),
            "[1].colour: unknown field",
        ),
        (
            json!({"event_id": "c", "type": "gift"}),
            "type: unknown variant `gift`",
        ),
        (json!({"event_id": "c"}), "type: is required"),
        (
            json!({"event_id": 5, "type": "signup"}),
            "event_id: invalid type: integer `5`",
        ),
        (
            json!({"event_id": "c", "type": "signup", "occurred_at": 17}),
            "occurred_at: invalid type: integer `17`, expected a string",
        ),
        (
            json!("hello"),
            "body: must be an event (an object), or an array",
        ),
        (json!([ok("a"), 7]), "[1]: must be an object"),
    ];
    for (body, expected) in cases {
        let r = gw.admin.post_json("/api/v1/conversions", &body).await;
        assert_eq!(r.status, 422, "{body} -> {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        let m = message(&r);
        assert!(m.starts_with(expected), "{body}: {m}");
        assert!(!m.contains("untagged"), "{m}");
    }
    // What was sent is quoted, but not at length.
    let long =
        json!({"event_id": "c", "type": "purchase", "amount": "x".repeat(5000), "currency": "EUR"});
    let r = gw.admin.post_json("/api/v1/conversions", &long).await;
    assert_eq!(r.status, 422);
    assert!(message(&r).len() < 600, "{}", message(&r));
    // Not JSON at all stays 400.
    let r = gw
        .admin
        .send(
            http::Method::POST,
            "/api/v1/conversions",
            &[("content-type", "application/json")],
            "{not json".into(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// A conversion is answered once stored, without waiting for the recorder's
/// age tick (`--flush-ms`, here a minute): its batch is cut early.
#[tokio::test]
async fn a_conversion_does_not_wait_for_the_age_tick() {
    let (mut config, tmp) = config();
    config.flush_ms = 60_000;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let (token, _) = scan(&gw.anon, "/alice10/yt").await;
    for (i, body) in [
        json!({"event_id": "early-1", "type": "signup", "scan_id": token}),
        json!({"event_id": "early-2", "type": "purchase", "scan_id": token, "amount": 1000, "currency": "EUR"}),
    ]
    .into_iter()
    .enumerate()
    {
        let answered = tokio::time::timeout(Duration::from_secs(20), ingest(&gw.admin, body))
            .await
            .unwrap_or_else(|_| panic!("conversion {i} waited for the minute-long age tick"));
        assert_eq!(answered.0, 202, "{}", answered.1);
        assert_eq!(answered.1["status"], "created");
    }
    gw.stop().await.unwrap();
}

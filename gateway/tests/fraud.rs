//! Fraud checks over real HTTP, on the embedded default and on real Redis +
//! ClickHouse: each rule flags a conversion (its answer, its claim — a
//! retry gets the same answer — and the review queue), and approval,
//! rejection and a code ban move the numbers exactly as a plain sum says.

mod common;

use codelink_testkit::http::Client;
use codelink_testkit::{ClickHouseServer, RedisServer};
use serde_json::{json, Value};
use std::time::Duration;

const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
const PREVIEW: &str = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";

fn config() -> (gateway::Config, tempfile::TempDir) {
    let (mut c, tmp) = common::config();
    c.flush_ms = 50;
    // Thresholds small enough to reach in a test; the too-fast check on at
    // its defaults (the shared test config turns it off).
    c.fraud_visitor_signups = 2;
    c.fraud_ip_signups = 2;
    c.fraud_signup_min_ms = 5_000;
    c.fraud_purchase_min_ms = 10_000;
    c.fraud_min_signups = 5;
    c.fraud_signups_per_scan = 1;
    (c, tmp)
}

fn code(name: &str, owner: &str) -> Value {
    json!({
        "code": name,
        "destination": "https://shop.example/signup",
        "owner": owner,
        "channels": {"yt": {"utm_source": "youtube"}},
        "commission": {"currency": "EUR", "signup_flat": 200, "purchase_bps": 1000, "cap": 5000}
    })
}

/// A redirect with `ua` and a browser's other navigation headers; returns
/// the cl_scan token.
async fn scan(client: &Client, path: &str, ua: &str) -> String {
    scan_with(client, path, &codelink_testkit::http::browser(ua, &[])).await
}

/// A redirect with exactly `headers`; returns the cl_scan token.
async fn scan_with(client: &Client, path: &str, headers: &[(&str, &str)]) -> String {
    let r = client
        .send(http::Method::GET, path, headers, Default::default())
        .await;
    assert_eq!(r.status, 302);
    let loc = url::Url::parse(r.header("location").unwrap()).unwrap();
    loc.query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .unwrap()
        .1
        .into_owned()
}

async fn ingest(client: &Client, body: Value) -> Value {
    let r = client.post_json("/api/v1/conversions", &body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()
}

fn flags(outcome: &Value) -> Vec<String> {
    outcome["review"]["flags"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn in_a_minute() -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Earnings (estimated + confirmed, EUR) and counts of the summary of `query`.
async fn earned(c: &Client, query: &str) -> (i64, u64) {
    let s = report(c, "summary", query).await["summary"].clone();
    let sum = |field: &str| -> i64 {
        s[field]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["currency"] == "EUR")
            .map(|m| m["amount"].as_i64().unwrap())
            .sum()
    };
    (
        sum("earnings_estimated") + sum("earnings_confirmed"),
        s["signups"].as_u64().unwrap() + s["purchases"].as_u64().unwrap(),
    )
}

/// An analytics report over the days around now.
async fn report(c: &Client, name: &str, query: &str) -> Value {
    let day = time::Duration::days(1);
    let at = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    let range = format!("from={}&to={}", at(now - day), at(now + day));
    let sep = if query.is_empty() { "" } else { "&" };
    let r = c
        .get(&format!("/api/v1/analytics/{name}?{range}{sep}{query}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Held earnings (EUR) and flagged signups and purchases of the summary.
async fn held(c: &Client) -> (Value, Value, Value) {
    let s = report(c, "summary", "").await["summary"].clone();
    (
        s["earnings_held"].clone(),
        s["flagged_signups"].clone(),
        s["flagged_purchases"].clone(),
    )
}

async fn wait_earned(c: &Client, query: &str, want: (i64, u64)) {
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        earned(c, query).await == want
    })
    .await;
    assert!(ok, "{query}: {:?}, want {want:?}", earned(c, query).await);
}

async fn reviews(c: &Client, query: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/v1/reviews?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().unwrap().clone()
}

async fn decide(c: &Client, event_id: &str, decision: &str, note: &str) -> (u16, Value) {
    let r = c
        .post_json(
            &format!("/api/v1/reviews/{event_id}"),
            &json!({"decision": decision, "note": note}),
        )
        .await;
    (r.status.as_u16(), r.json())
}

/// Every rule, then approve / reject / ban, on a started gateway.
async fn exercise(gw: &common::TestGateway) {
    let admin = &gw.admin;
    for (name, owner) in [
        ("alice10", "alice"),
        ("bob20", "bob"),
        ("carol30", "carol"),
        ("dave50", "dave"),
        ("erin40", "erin"),
        ("frank60", "frank"),
    ] {
        let r = admin.post_json("/api/v1/codes", &code(name, owner)).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }

    // too_fast: a signup right after its scan.
    let token = scan(&gw.anon, "/alice10/yt", ANDROID).await;
    let fast =
        json!({"event_id": "fast-1", "type": "signup", "scan_id": token, "customer_id": "c-fast"});
    let r = ingest(admin, fast.clone()).await;
    assert_eq!(flags(&r), ["too_fast"], "{r}");
    assert_eq!(r["earnings"]["amount"], 0);
    assert_eq!(r["earnings"]["status"], "held");
    assert_eq!(r["review"]["held"], 200);
    // A brand's retry gets the same decision.
    let again = ingest(admin, fast).await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["review"], r["review"]);
    assert_eq!(again["earnings"], r["earnings"]);

    // velocity_visitor: a third signup through one visitor id.
    for i in 1..=3 {
        let r = ingest(admin, json!({"event_id": format!("vv-{i}"), "type": "signup", "code": "bob20", "visitor_id": "v-same", "customer_id": format!("c-vv-{i}")})).await;
        let want: &[&str] = if i == 3 { &["velocity_visitor"] } else { &[] };
        assert_eq!(flags(&r), want, "{r}");
    }

    // velocity_ip: a third signup from one /24 (different hosts, visitors).
    for i in 1..=3 {
        let r = ingest(admin, json!({"event_id": format!("ip-{i}"), "type": "signup", "code": "erin40", "customer_id": format!("c-ip-{i}"), "ip": format!("203.0.113.{i}")})).await;
        let want: &[&str] = if i == 3 { &["velocity_ip"] } else { &[] };
        assert_eq!(flags(&r), want, "{r}");
    }
    let r = admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "ip-bad", "type": "signup", "code": "erin40", "ip": "not-an-ip"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());

    // scan_bot: a purchase credited to a link-preview fetch (reported for a
    // minute from now, so not too fast); the scan must be stored first.
    let bot = scan(&gw.anon, "/dave50/yt", PREVIEW).await;
    let stored = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let r = admin.get("/api/v1/codes/dave50/scans").await;
        r.json()["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(stored);
    let r = ingest(admin, json!({"event_id": "bot-1", "type": "purchase", "scan_id": bot, "amount": 10000, "currency": "EUR", "occurred_at": in_a_minute()})).await;
    assert_eq!(flags(&r), ["scan_bot"], "{r}");
    assert_eq!(r["review"]["held"], 1000);

    // multi_creator: a customer first credited to alice, then to frank.
    let r = ingest(
        admin,
        json!({"event_id": "mc-1", "type": "signup", "code": "alice10", "customer_id": "c-multi"}),
    )
    .await;
    assert_eq!(flags(&r), Vec::<String>::new(), "{r}");
    let r = ingest(
        admin,
        json!({"event_id": "mc-2", "type": "signup", "code": "frank60", "customer_id": "c-multi"}),
    )
    .await;
    assert_eq!(flags(&r), ["multi_creator"], "{r}");

    // signups_exceed_scans: the fifth signup of a code nobody scanned.
    for i in 1..=5 {
        let r = ingest(admin, json!({"event_id": format!("typed-{i}"), "type": "signup", "code": "carol30", "customer_id": format!("c-typed-{i}")})).await;
        let want: &[&str] = if i == 5 {
            &["signups_exceed_scans"]
        } else {
            &[]
        };
        assert_eq!(flags(&r), want, "{r}");
    }

    // The review queue: every flagged one, newest first, with its reasons.
    let pending = reviews(admin, "").await;
    let ids: Vec<&str> = pending
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["typed-5", "mc-2", "bot-1", "ip-3", "vv-3", "fast-1"],
        "{pending:?}"
    );
    let fast = &pending[5];
    assert_eq!(fast["status"], "pending");
    assert_eq!(fast["flags"], json!(["too_fast"]));
    assert_eq!(fast["held"], json!({"amount": 200, "currency": "EUR"}));
    assert_eq!(fast["code"], "alice10");
    assert_eq!(fast["customer_id"], "c-fast");
    assert_eq!(fast["scan"]["scan_id"], token.split('.').next().unwrap());
    assert_eq!(reviews(admin, "code=bob20").await.len(), 1);
    // Paged.
    let r = admin.get("/api/v1/reviews?limit=4").await.json();
    assert_eq!(r["items"].as_array().unwrap().len(), 4);
    let next = r["next_cursor"].as_str().unwrap();
    let rest = admin
        .get(&format!(
            "/api/v1/reviews?limit=4&cursor={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ))
        .await
        .json();
    let rest: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["vv-3", "fast-1"]);
    assert!(admin.get("/api/v1/reviews?status=maybe").await.status == 400);
    assert_eq!(
        gw.anon.get("/api/v1/reviews").await.status,
        401,
        "the queue needs the admin key"
    );

    // Numbers before any decision: flagged ones earn nothing.
    // alice10: mc-1 earns 200, fast-1 holds 200.
    wait_earned(admin, "code=alice10", (200, 2)).await;
    wait_earned(admin, "code=dave50", (0, 1)).await;
    // What is held: 200 for each of five signups, 1000 for the purchase.
    assert_eq!(
        held(admin).await,
        (
            json!([{"currency": "EUR", "amount": 2000}]),
            json!(5),
            json!(1)
        )
    );

    // Approve: the held earnings are released, once.
    let (s, r) = decide(admin, "fast-1", "approve", "checked with the brand").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "approved");
    assert_eq!(r["decisions"][0]["decision"], "approve");
    assert_eq!(r["decisions"][0]["note"], "checked with the brand");
    assert!(r["decisions"][0]["by"]
        .as_str()
        .unwrap()
        .starts_with("admin:"));
    assert!(r["decisions"][0]["at"].is_string());
    let (s, again) = decide(admin, "fast-1", "reject", "").await;
    assert_eq!(s, 409, "{again}");
    assert_eq!(again["error"]["code"], "already_decided");
    wait_earned(admin, "code=alice10", (400, 2)).await;
    let (s, r) = decide(admin, "bot-1", "approve", "").await;
    assert_eq!(s, 200, "{r}");
    wait_earned(admin, "code=dave50", (1000, 1)).await;

    // Reject: nothing was earned, nothing changes.
    let (s, r) = decide(admin, "vv-3", "reject", "fake accounts").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "rejected");
    wait_earned(admin, "code=bob20", (400, 3)).await;
    let (s, _) = decide(admin, "nope", "approve", "").await;
    assert_eq!(s, 404);
    let (s, r) = decide(admin, "mc-2", "maybe", "").await;
    assert_eq!(s, 422, "{r}");

    // Ban: the code is disabled and its pending ones rejected, with the reason.
    let r = admin
        .post_json(
            "/api/v1/codes/carol30/ban",
            &json!({"reason": "signup farm"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rejected"], 1);
    assert_eq!(gw.anon.get("/carol30").await.status, 410);
    let banned = admin.get("/api/v1/reviews/typed-5").await.json();
    assert_eq!(banned["status"], "rejected");
    assert_eq!(banned["decisions"][0]["note"], "code banned: signup farm");
    wait_earned(admin, "code=carol30", (800, 5)).await;

    // What is left pending, and the decided ones by status.
    let left: Vec<Value> = reviews(admin, "").await;
    let left: Vec<&str> = left
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["mc-2", "ip-3"]);
    assert_eq!(reviews(admin, "status=approved").await.len(), 2);
    assert_eq!(reviews(admin, "status=rejected").await.len(), 2);
    // Still held: ip-3 and mc-2 (pending); flagged and not approved: those
    // and the two rejected signups.
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        held(admin).await
            == (
                json!([{"currency": "EUR", "amount": 400}]),
                json!(4),
                json!(0),
            )
    })
    .await;
    assert!(ok, "{:?}", held(admin).await);
    let f = report(admin, "funnel", "").await["funnel"].clone();
    assert_eq!(
        (f["signups"].clone(), f["flagged_signups"].clone()),
        (json!(14), json!(4)),
        "{f}"
    );
    let f = report(admin, "funnel", "exclude_flagged=true").await["funnel"].clone();
    assert_eq!(
        (f["signups"].clone(), f["purchases"].clone()),
        (json!(10), json!(1)),
        "{f}"
    );
    // Over all codes: 200 + 200 (alice) + 1000 (dave) + 400 (bob) + 400
    // (erin: ip-3 held) + 0 (frank: mc-2 held) + 800 (carol).
    wait_earned(admin, "", (3000, 15)).await;

    // Counted in /metrics (by this process): one of each reason but
    // scan_suspect, and the decisions.
    let metrics = gw.anon.get("/metrics").await.text();
    for reason in [
        "velocity_visitor",
        "velocity_ip",
        "scan_bot",
        "too_fast",
        "multi_creator",
        "signups_exceed_scans",
    ] {
        let line = format!("codelink_conversions_flagged_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(metrics.contains("codelink_conversions_flagged_total{reason=\"scan_suspect\"} 0"));
    assert!(metrics.contains("codelink_reviews_decided_total{decision=\"approve\"} 2"));
    assert!(metrics.contains("codelink_reviews_decided_total{decision=\"reject\"} 2"));

    // Erasure reaches the review queue's copy of a conversion too.
    let r = admin
        .post_json("/api/v1/erasure", &json!({"customer_id": "c-ip-3"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ip3 = admin.get("/api/v1/reviews/ip-3").await.json();
    assert_eq!(ip3["customer_id"], Value::Null, "{ip3}");
    assert_eq!(ip3["status"], "pending");
}

/// A purchase credited through the token of a suspect scan (a script that
/// borrowed a phone's user agent but sends no Accept-Language) is held.
async fn suspect_scan(gw: &common::TestGateway) {
    let admin = &gw.admin;
    assert_eq!(
        admin
            .post_json("/api/v1/codes", &code("gina60", "gina"))
            .await
            .status,
        201
    );
    let token = scan_with(
        &gw.anon,
        "/gina60/yt",
        &[("user-agent", ANDROID), ("accept", "*/*")],
    )
    .await;
    let stored = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let r = admin.get("/api/v1/codes/gina60/scans").await;
        r.json()["items"][0]["bot_reason"] == "suspect:no-accept-language"
    })
    .await;
    assert!(stored, "the suspect scan was not stored");
    let r = ingest(admin, json!({"event_id": "sus-1", "type": "purchase", "scan_id": token, "amount": 10000, "currency": "EUR", "occurred_at": in_a_minute()})).await;
    assert_eq!(flags(&r), ["scan_suspect"], "{r}");
    assert_eq!(r["review"]["held"], 1000);
    wait_earned(admin, "code=gina60", (0, 1)).await;
}

#[tokio::test]
async fn a_suspect_scan_holds_its_conversion_embedded() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    suspect_scan(&gw).await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_suspect_scan_holds_its_conversion_on_clickhouse() {
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = config();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "fraud_suspect".into();
    let gw = common::start_with(config, Some(tmp)).await;
    suspect_scan(&gw).await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn fraud_checks_and_reviews_embedded() {
    let (config, tmp) = config();
    let gw = common::start_with(config, Some(tmp)).await;
    exercise(&gw).await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn fraud_checks_and_reviews_on_redis_and_clickhouse() {
    let redis = RedisServer::start();
    let mut ch = ClickHouseServer::start();
    let (mut config, tmp) = config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "fraud".into();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "fraud".into();
    // One instance: no need to poll Redis for other instances' code changes.
    // (A reload in `sync.rs` racing a code's creation on the same instance
    // can drop the new code from the table until the next poll: seen here
    // once as "code 'bob20' does not exist".)
    config.redis_sync_ms = 600_000;
    let gw = common::start_with(config, Some(tmp)).await;
    exercise(&gw).await;
    // The review queue lives in Redis.
    let pending: Vec<String> = {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("ZRANGE")
            .arg("fraud:reviews:pending")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(pending.len(), 2, "{pending:?}");

    // Two admins decide the same conversion at once: one wins, one is told.
    let (a, b) = tokio::join!(
        decide(&gw.admin, "ip-3", "approve", "a"),
        decide(&gw.admin, "ip-3", "reject", "b")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let decided = gw.admin.get("/api/v1/reviews/ip-3").await.json();
    assert_eq!(decided["decisions"].as_array().unwrap().len(), 1);
    let erin =
        if a.0 == 200 && a.1["status"] == "approved" || b.0 == 200 && b.1["status"] == "approved" {
            600
        } else {
            400
        };
    wait_earned(&gw.admin, "code=erin40", (erin, 3)).await;

    // An approval while ClickHouse is down waits in the spool and is
    // counted once when it is back (the batch keeps its id).
    ch.stop();
    let (s, r) = decide(&gw.admin, "mc-2", "approve", "during an outage").await;
    assert_eq!(s, 200, "{r}");
    // Conversions are still taken: the scan-verdict check cannot look, and
    // flags nothing.
    let token = scan(&gw.anon, "/alice10/yt", PREVIEW).await;
    let r = ingest(&gw.admin, json!({"event_id": "outage-1", "type": "purchase", "scan_id": token, "amount": 1000, "currency": "EUR", "occurred_at": in_a_minute()})).await;
    assert_eq!(flags(&r), Vec::<String>::new(), "{r}");
    ch.restart();
    wait_earned(&gw.admin, "code=frank60", (200, 1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(earned(&gw.admin, "code=frank60").await, (200, 1));
    let rows = ch.query_in(
        "fraud",
        "SELECT count() FROM conversion_rollup WHERE scope LIKE '#%/a0'",
    );
    assert_eq!(
        rows.trim(),
        "6",
        "one marker per decision (each moves a number here): {rows}"
    );
    gw.stop().await.unwrap();
}

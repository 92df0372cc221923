//! The analytics API over real HTTP, end to end: scans and conversions in,
//! summary / timeseries / breakdown / funnel / top out, as JSON and CSV; creator
//! keys limited to their own codes; bad parameters; `codelink report`.
//! (The numbers themselves are checked against both backends on a generated
//! data set in `analytics/tests/analytics_backends.rs`.)

mod common;

use codelink_testkit::http::Client;
use codelink_testkit::ClickHouseServer;
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
const BOT: &str = "Twitterbot/1.0";

async fn scan(c: &Client, path: &str, ip: &str, ua: &str) -> String {
    let r = c
        .send(
            Method::GET,
            path,
            &codelink_testkit::http::browser(
                ua,
                &[("x-forwarded-for", ip), ("cf-ipcountry", "NL")],
            ),
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
    token
}

/// alice10 (alice) gets 3 human scans from 2 visitors, 1 bot scan, 1 signup and
/// 1 purchase through scan tokens; bob20 (bob) gets 1 human scan.
async fn populate(gw: &common::TestGateway) {
    gw.create(common::alice()).await;
    gw.create(json!({"code": "bob20", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    let t1 = scan(&gw.anon, "/alice10/yt", "198.51.100.1", IPHONE).await;
    scan(&gw.anon, "/alice10/yt", "198.51.100.1", IPHONE).await;
    let t2 = scan(&gw.anon, "/alice10/bio?qr=1", "198.51.100.2", IPHONE).await;
    scan(&gw.anon, "/alice10", "198.51.100.3", BOT).await;
    scan(&gw.anon, "/bob20", "198.51.100.4", IPHONE).await;
    let r = gw
        .admin
        .post_json("/api/v1/conversions", &json!([
            {"event_id": "s1", "type": "signup", "scan_id": t1, "customer_id": "c1"},
            {"event_id": "p1", "type": "purchase", "scan_id": t2, "amount": 10000, "currency": "EUR"}
        ]))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

async fn summary(c: &Client, query: &str) -> Value {
    let r = c.get(&format!("/api/v1/analytics/summary?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["summary"].clone()
}

async fn check_reports(gw: &common::TestGateway) {
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let s = summary(&gw.admin, "code=alice10").await;
        s["scans"] == 4 && s["purchases"] == 1
    })
    .await;
    let s = summary(&gw.admin, "code=alice10").await;
    assert!(ok, "{s}");
    assert_eq!(s["human_scans"], 3, "{s}");
    assert_eq!(s["bot_scans"], 1, "{s}");
    assert_eq!(s["suspect_scans"], 0, "{s}");
    assert_eq!(s["bot_inflation"], 0.25, "{s}");
    assert_eq!(s["qr_scans"], 1, "{s}");
    assert_eq!(s["link_scans"], 2, "{s}");
    assert_eq!(s["unique_scanners"], 2, "{s}");
    assert_eq!(s["signups"], 1, "{s}");
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 10000}]),
        "{s}"
    );
    // 200 for the signup, 10 % of 100.00 EUR: all estimated (hold period not over).
    assert_eq!(
        s["earnings_estimated"],
        json!([{"currency": "EUR", "amount": 1200}]),
        "{s}"
    );
    assert_eq!(s["earnings_confirmed"], json!([]), "{s}");
    assert_eq!(s["scan_to_signup"], 0.5, "{s}");

    let all = summary(&gw.admin, "").await;
    assert_eq!(all["scans"], 5, "{all}");

    let r = gw
        .admin
        .get("/api/v1/analytics/breakdown?code=alice10&by=channel")
        .await;
    assert_eq!(r.status, 200);
    let rows = r.json()["rows"].clone();
    let yt = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "yt")
        .unwrap()
        .clone();
    assert_eq!(yt["human_scans"], 2, "{rows}");
    assert_eq!(yt["signups"], 1, "{rows}");

    let r = gw
        .admin
        .get("/api/v1/analytics/timeseries?code=alice10&interval=hour&tz=Europe/Berlin")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let buckets = r.json()["buckets"].clone();
    let total: u64 = buckets
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["human_scans"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "{buckets}");
    assert!(
        buckets[0]["start"]
            .as_str()
            .unwrap()
            .ends_with(":00:00+01:00")
            || buckets[0]["start"]
                .as_str()
                .unwrap()
                .ends_with(":00:00+02:00"),
        "{buckets}"
    );

    let f = gw
        .admin
        .get("/api/v1/analytics/funnel?code=alice10")
        .await
        .json();
    assert_eq!(
        f["funnel"],
        json!({"scans": 3, "unique_scanners": 2, "unique_scanners_exact": true, "signups": 1, "purchases": 1, "flagged_signups": 0, "flagged_purchases": 0})
    );

    let top = gw
        .admin
        .get("/api/v1/analytics/top?metric=scans")
        .await
        .json();
    assert_eq!(top["rows"][0]["code"], "alice10", "{top}");
    assert_eq!(top["rows"][0]["value"], 3, "{top}");

    // CSV, by parameter and by Accept header.
    let r = gw
        .admin
        .get("/api/v1/analytics/breakdown?code=alice10&by=channel&format=csv")
        .await;
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = r.text();
    assert!(
        csv.starts_with(
            "key,human_scans,suspect_scans,bot_scans,unique_scanners,unique_scanners_exact,signups,purchases,earnings_EUR\r\n"
        ),
        "{csv}"
    );
    assert!(csv.contains("\r\nyt,2,0,0,1,true,1,0,200\r\n"), "{csv}");
    let r = gw
        .admin
        .send(
            Method::GET,
            "/api/v1/analytics/summary?code=alice10",
            &[("accept", "text/csv")],
            Default::default(),
        )
        .await;
    let csv = r.text();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| values[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("human_scans"), "3");
    assert_eq!(col("revenue_EUR"), "10000");
}

#[tokio::test]
async fn reports_over_http_embedded() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    populate(&gw).await;
    check_reports(&gw).await;
}

#[tokio::test]
async fn reports_over_http_clickhouse() {
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "http_reports".into();
    let gw = common::start_with(config, Some(tmp)).await;
    populate(&gw).await;
    check_reports(&gw).await;
}

#[tokio::test]
async fn creator_keys_see_their_own_codes_only() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    populate(&gw).await;
    let alice = creator_key(&gw, "alice").await;
    codelink_testkit::wait_until(Duration::from_secs(5), || async {
        summary(&gw.admin, "").await["scans"] == 5
    })
    .await;
    // Another creator's code: 404, exactly like a code that does not exist.
    let other = alice.get("/api/v1/analytics/summary?code=bob20").await;
    let missing = alice.get("/api/v1/analytics/summary?code=nobody").await;
    assert_eq!(other.status, 404);
    assert_eq!(
        other.json()["error"]["code"],
        missing.json()["error"]["code"]
    );
    // Without a code: only alice's numbers (bob's scan is not in them).
    let own = summary(&alice, "").await;
    assert_eq!(own["scans"], 4, "{own}");
    let top = alice.get("/api/v1/analytics/top?metric=scans").await.json();
    let codes: Vec<&str> = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["alice10"]);
}

async fn creator_key(gw: &common::TestGateway, creator: &str) -> Client {
    let r = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": creator}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    gw.anon
        .clone()
        .with_bearer(r.json()["key"].as_str().unwrap())
}

/// A code that changes hands: scans follow the code, conversions (and their
/// earnings) stay with the creator they were credited to.
#[tokio::test]
async fn after_a_code_changes_hands_each_creator_sees_their_own_conversions() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    populate(&gw).await;
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"owner": "carol"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Before carol's first conversion the code's latest one is alice's; carol's
    // top list still names carol as the owner of her code.
    let carol = creator_key(&gw, "carol").await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        summary(&gw.admin, "code=alice10").await["scans"] == 4
    })
    .await;
    assert!(ok);
    let top = carol.get("/api/v1/analytics/top?metric=scans").await.json();
    assert_eq!(top["rows"][0]["code"], "alice10", "{top}");
    assert_eq!(top["rows"][0]["owner"], "carol", "{top}");
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "s2", "type": "signup", "code": "alice10"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        summary(&gw.admin, "code=alice10").await["signups"] == 2
    })
    .await;
    assert!(ok, "{}", summary(&gw.admin, "code=alice10").await);
    let s = summary(&carol, "code=alice10").await;
    assert_eq!(s["scans"], 4, "scans follow the code: {s}");
    assert_eq!(s["signups"], 1, "only the signup credited to carol: {s}");
    assert_eq!(s["purchases"], 0, "{s}");
    assert_eq!(s["revenue"], json!([]), "{s}");
    assert_eq!(
        s["earnings_estimated"],
        json!([{"currency": "EUR", "amount": 200}]),
        "{s}"
    );
    // Alice no longer owns the code: it is hers no more, like any other's.
    let alice = creator_key(&gw, "alice").await;
    assert_eq!(
        alice
            .get("/api/v1/analytics/summary?code=alice10")
            .await
            .status,
        404
    );
    let admin = summary(&gw.admin, "code=alice10").await;
    assert_eq!(
        (admin["signups"].clone(), admin["purchases"].clone()),
        (json!(2), json!(1))
    );
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    for q in [
        "summary?from=yesterday",
        "summary?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "summary?tz=Mars/Olympus",
        "timeseries?interval=week",
        "breakdown?by=planet",
        "breakdown",
        "top?metric=vibes",
        "top?limit=0",
        "summary?format=xml",
        "summary?colour=red",
    ] {
        let r = gw.admin.get(&format!("/api/v1/analytics/{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_query");
    }
    assert_eq!(gw.admin.get("/api/v1/analytics/nothing").await.status, 404);
    assert_eq!(
        gw.admin
            .get("/api/v1/analytics/summary?code=nobody")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn codelink_report_prints_tables() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    populate(&gw).await;
    codelink_testkit::wait_until(Duration::from_secs(5), || async {
        summary(&gw.admin, "code=alice10").await["purchases"] == 1
    })
    .await;
    // Async: the gateway under test runs on this test's runtime.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args(["report", "--code", "alice10", "--by", "channel"])
        .args(["--url", &format!("http://{}", gw.addr)])
        .args(["--key", common::ADMIN_KEY])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("codelink report — alice10"), "{text}");
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("scans (human)").ends_with(" 3"), "{text}");
    assert!(
        line("earnings (estimated)").ends_with("12.00 EUR"),
        "{text}"
    );
    assert!(line("yt ").contains(" 2 "), "{text}");
    // A wrong key is a clear error, not a panic.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args([
            "report",
            "--url",
            &format!("http://{}", gw.addr),
            "--key",
            "wrong-key-0123456789",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Protection over real HTTP: analytics queries under a timeout and a
//! concurrency limit (503 + Retry-After), a cap on timeseries buckets, money
//! bounded at 10^12 with sums that cannot overflow, a bounded shutdown when
//! ClickHouse hangs (nothing lost: the batch waits in the spool), and the
//! drill-down of a code's recent scans.

mod common;

use codelink_testkit::http::Client;
use codelink_testkit::ClickHouseServer;
use http::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";

async fn scan(c: &Client, path: &str, ip: &str) {
    let r = c
        .send(
            Method::GET,
            path,
            &codelink_testkit::http::browser(IPHONE, &[("x-forwarded-for", ip)]),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 302);
}

#[tokio::test]
async fn a_hanging_clickhouse_times_queries_out_and_extra_queries_are_turned_away() {
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = common::config();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "limits".into();
    config.query_timeout_ms = 800;
    config.max_concurrent_queries = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let r = gw.admin.get("/api/v1/analytics/summary?code=alice10").await;
    assert_eq!(r.status, 200, "{}", r.text());

    ch.freeze();
    let admin = gw.admin.clone();
    let started = Instant::now();
    let slow =
        tokio::spawn(async move { admin.get("/api/v1/analytics/summary?code=alice10").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The one query slot is taken: the next query is turned away at once.
    let busy = gw.admin.get("/api/v1/analytics/breakdown?by=country").await;
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(busy.error_code(), "busy");
    assert!(busy.header("retry-after").is_some());
    // The hanging one is abandoned at the timeout.
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 503, "{}", slow.text());
    assert_eq!(slow.error_code(), "query_timeout");
    assert!(slow.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
    // Redirects never waited on any of it.
    scan(&gw.anon, "/alice10/yt", "203.0.113.1").await;
    ch.thaw();
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        gw.admin
            .get("/api/v1/analytics/summary?code=alice10")
            .await
            .status
            == 200
    })
    .await;
    assert!(ok);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn timeseries_have_a_bucket_cap_and_ranges_are_whole_quarter_hours() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw
        .admin
        .get("/api/v1/analytics/timeseries?interval=hour&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2000 buckets"));
    let r = gw
        .admin
        .get("/api/v1/analytics/timeseries?interval=day&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z")
        .await;
    assert_eq!(r.status, 200);
    // The range counted is widened to whole quarter-hours, and says so.
    let r = gw
        .admin
        .get("/api/v1/analytics/summary?from=2026-01-01T10:07:00Z&to=2026-01-01T11:31:00Z")
        .await
        .json();
    assert_eq!(r["query"]["from"], "2026-01-01T10:00:00Z");
    assert_eq!(r["query"]["to"], "2026-01-01T11:45:00Z");
    let r = gw
        .admin
        .get("/api/v1/analytics/breakdown?by=source&from=2026-01-01T10:07:00Z&to=2026-01-01T11:31:00Z")
        .await
        .json();
    assert_eq!(r["query"]["from"], "2026-01-01T10:00:00Z");
    assert_eq!(r["query"]["to"], "2026-01-01T12:00:00Z");
}

#[tokio::test]
async fn money_is_bounded_and_sums_cannot_overflow() {
    let gw = common::start().await;
    // Plan values above 10^12 minor units are refused.
    let mut code = common::alice();
    code["commission"] =
        json!({"currency": "EUR", "purchase_bps": 10000, "signup_flat": 1_000_000_000_001u64});
    let r = gw.create(code).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let mut code = common::alice();
    code["commission"] = json!({"currency": "EUR", "purchase_bps": 10000});
    assert_eq!(gw.create(code).await.status, 201);
    // So are amounts (the two purchases of i64::MAX that summed to −2).
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "big", "type": "purchase", "code": "alice10",
                    "amount": 9_223_372_036_854_775_807i64, "currency": "EUR"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("at most 1000000000000"));
    // The largest amounts add up exactly.
    let events: Vec<Value> = (0..5)
        .map(|i| {
            json!({"event_id": format!("max{i}"), "type": "purchase", "code": "alice10",
                        "amount": 1_000_000_000_000u64, "currency": "EUR"})
        })
        .collect();
    let r = gw
        .admin
        .post_json("/api/v1/conversions", &json!(events))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let s = gw.admin.get("/api/v1/analytics/summary?code=alice10").await;
        s.json()["summary"]["purchases"] == 5
    })
    .await;
    assert!(ok);
    let s = gw
        .admin
        .get("/api/v1/analytics/summary?code=alice10")
        .await
        .json()["summary"]
        .clone();
    assert_eq!(
        s["revenue"],
        json!([{"currency": "EUR", "amount": 5_000_000_000_000u64}])
    );
    assert_eq!(
        s["earnings_estimated"],
        json!([{"currency": "EUR", "amount": 5_000_000_000_000u64}])
    );
}

#[tokio::test]
async fn shutdown_is_bounded_when_clickhouse_hangs_and_nothing_is_lost() {
    let ch = ClickHouseServer::start();
    let (mut config, tmp) = common::config();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "bounded".into();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    config.shutdown_timeout_secs = 2;
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    let tmp = gw.take_tmp();
    gw.create(common::alice()).await;
    // One scan reaches ClickHouse: the recorder's connection is up.
    scan(&gw.anon, "/alice10/yt", "198.51.100.200").await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        ch.query("SELECT count() FROM bounded.scans").trim() == "1"
    })
    .await;
    assert!(ok);
    ch.freeze();
    for i in 0..20 {
        scan(&gw.anon, "/alice10/yt", &format!("198.51.100.{i}")).await;
    }
    // A batch is cut and its write hangs on the frozen server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    gw.stop().await.unwrap();
    let took = started.elapsed();
    // HTTP drains at once; the recorder gives up on the frozen server at its
    // deadline (2 s, not the 10 s write timeout) and spools the batch.
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let spool = config.data_dir.join("spool").join("clickhouse");
    let spooled = std::fs::read_dir(&spool).unwrap().count();
    assert!(spooled > 0, "the batch waits in {}", spool.display());
    ch.thaw();
    // The next start replays the spool: every scan reaches ClickHouse, once.
    let gw = common::start_with(config, tmp).await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(15), || async {
        ch.query("SELECT count() FROM bounded.scans FINAL").trim() == "21"
    })
    .await;
    assert!(
        ok,
        "{}",
        ch.query("SELECT count() FROM bounded.scans FINAL")
    );
    let s = gw
        .admin
        .get("/api/v1/analytics/summary?code=alice10")
        .await
        .json();
    assert_eq!(s["summary"]["scans"], 21, "{s}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn recent_scans_page_newest_first_and_creators_see_less() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    gw.create(json!({"code": "bob20", "destination": "https://shop.example/", "owner": "bob"}))
        .await;
    for i in 0..7 {
        scan(&gw.anon, "/alice10/yt", &format!("198.51.100.{i}")).await;
    }
    scan(&gw.anon, "/bob20", "198.51.100.99").await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let r = gw.admin.get("/api/v1/codes/alice10/scans?limit=1000").await;
        r.status == 200 && r.json()["items"].as_array().unwrap().len() == 7
    })
    .await;
    assert!(ok);
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = gw
            .admin
            .get(&format!(
                "/api/v1/codes/alice10/scans?limit=3&cursor={cursor}"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["channel"], "yt");
            assert!(item["visitor_id"].is_string(), "the admin sees visitors");
            seen.push(item["scan_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    // A creator sees their own code's scans, without visitor ids or IP prefixes.
    let r = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": "alice"}),
        )
        .await;
    let alice = gw
        .anon
        .clone()
        .with_bearer(r.json()["key"].as_str().unwrap());
    let page = alice
        .get("/api/v1/codes/alice10/scans?limit=2")
        .await
        .json();
    let first = &page["items"][0];
    assert_eq!(first["device"], "mobile", "{first}");
    assert!(first.get("visitor_id").is_none() && first.get("ip_prefix").is_none());
    assert_eq!(alice.get("/api/v1/codes/bob20/scans").await.status, 404);
    for bad in ["limit=0", "limit=1001", "cursor=nope", "page=2"] {
        let r = gw
            .admin
            .get(&format!("/api/v1/codes/alice10/scans?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

/// Sends the head of a chunked POST and one chunk, then keeps the connection
/// open without finishing the body.
async fn trickle(addr: std::net::SocketAddr, path: &str, auth: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n",
        if path.starts_with("/ui") { "application/x-www-form-urlencoded" } else { "application/json" }
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// What came back on `s`: read until the server answers and closes, or
/// `wait` passes.
async fn answer_of(s: &mut tokio::net::TcpStream, wait: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408_and_redirects_go_on() {
    let (mut config, tmp) = common::config();
    config.body_timeout_ms = 600;
    let gw = common::start_with(config, Some(tmp)).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let auth = format!("Authorization: Bearer {}\r\n", common::ADMIN_KEY);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(trickle(gw.addr, "/api/v1/conversions", &auth).await);
    }
    slow.push(trickle(gw.addr, "/ui/sign-in", "").await);
    // While the bodies hang, followers are served.
    for _ in 0..20 {
        assert_eq!(gw.anon.get("/alice10/yt").await.status, 302);
        assert_eq!(gw.anon.get("/healthz").await.status, 200);
    }
    for (i, s) in slow.iter_mut().enumerate() {
        let answer = answer_of(s, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "connection {i}: {answer:?}"
        );
        if i < 20 {
            assert!(answer.contains("\"body_timeout\""), "{answer}");
        }
    }
    // Answered at the deadline, not later.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await.unwrap();
}

/// Sends `bytes` on a new connection to `addr`.
async fn send(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// How long until the server closes `s` (reading and dropping what it
/// sends), or `None` if it is still open after `wait`.
async fn closed_after(s: &mut tokio::net::TcpStream, wait: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let read_all = async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} };
    tokio::time::timeout(wait, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

#[tokio::test]
async fn a_connection_waiting_for_a_request_head_is_closed_and_busy_ones_stay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut config, tmp) = common::config();
    config.head_timeout_ms = 600;
    let gw = common::start_with(config, Some(tmp)).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // A head that never ends, one that trickles in a byte every 200 ms, an
    // idle keep-alive connection after one answer, and a connection that
    // never sends a byte: each is closed after 600 to 900 ms of waiting.
    let mut partial = send(gw.addr, b"GET /alice10/yt HTTP/1.1\r\nHost: x\r\n").await;
    let mut trickling = send(gw.addr, b"G").await;
    let mut idle = send(gw.addr, head).await;
    let mut silent = send(gw.addr, b"").await;
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let trickle = async {
        for byte in b"ET /healthz HTTP/1.1\r\n".iter() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickling.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
        closed_after(&mut trickling, Duration::from_secs(5)).await
    };
    let (p, t, i, s) = tokio::join!(
        closed_after(&mut partial, Duration::from_secs(5)),
        trickle,
        closed_after(&mut idle, Duration::from_secs(5)),
        closed_after(&mut silent, Duration::from_secs(5)),
    );
    for (what, closed) in [("partial head", p), ("idle", i), ("silent", s)] {
        let after = closed.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        assert!(
            after >= Duration::from_millis(500) && after < Duration::from_millis(1500),
            "{what}: closed after {after:?}"
        );
    }
    // The trickler was cut off before its 22 bytes (4.4 s) were in.
    assert!(t.is_some(), "trickling head: still open");

    // A connection that asks every 200 ms for 2 s is never closed.
    let mut busy = send(gw.addr, b"").await;
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        busy.write_all(head).await.unwrap();
        let mut answer = [0u8; 12];
        busy.read_exact(&mut answer)
            .await
            .unwrap_or_else(|e| panic!("request {n}: {e}"));
        assert_eq!(&answer, b"HTTP/1.1 200", "request {n}");
        // The rest of the answer (headers and a small body).
        let mut rest = [0u8; 2048];
        let _ = tokio::time::timeout(Duration::from_millis(100), busy.read(&mut rest)).await;
    }
    assert_eq!(gw.anon.get("/alice10/yt").await.status, 302);
    gw.stop().await.unwrap();
}

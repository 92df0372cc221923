//! Scan recording against real backends: the embedded default, Redis counters
//! and ClickHouse rows; outages, restarts and flush on shutdown.

mod common;

use codelink_analytics::event::Scan;
use codelink_analytics::sink::EmbeddedSink;
use codelink_testkit::http::{Client, Response};
use codelink_testkit::{ClickHouseServer, RedisServer};
use http::Method;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const IPHONE_INSTAGRAM: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 309.1.1.28.108 (iPhone15,3; iOS 17_1_2; en_US; en; scale=3.00; 1290x2796; 541907227)";
const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
const FACEBOOK_PREVIEW: &str =
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";
const TWITTERBOT: &str = "Twitterbot/1.0";

/// A config for recording tests: short flush interval, client IPs from X-Forwarded-For.
fn scan_config() -> (gateway::Config, tempfile::TempDir) {
    let (mut config, tmp) = common::config();
    config.flush_ms = 100;
    config.client_ip_header = Some("x-forwarded-for".into());
    (config, tmp)
}

async fn scan(client: &Client, path: &str, ip: &str, ua: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = codelink_testkit::http::browser(ua, &[("x-forwarded-for", ip)]);
    headers.extend_from_slice(extra);
    client
        .send(Method::GET, path, &headers, Default::default())
        .await
}

fn scan_id_of(r: &Response) -> String {
    let loc = r.header("location").expect("a redirect");
    let url = url::Url::parse(loc).unwrap();
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // `{scan id}.{code}.{channel}.{signature}`
    token.split('.').next().unwrap().to_string()
}

async fn stats(gw: &common::TestGateway, code: &str) -> Value {
    let r = gw.admin.get(&format!("/api/v1/codes/{code}/stats")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the code's stats show `total` scans (a backend that is just
/// coming back may answer 503 meanwhile).
async fn until_total(gw: &common::TestGateway, code: &str, total: u64, within: Duration) -> Value {
    let path = format!("/api/v1/codes/{code}/stats");
    let ok = codelink_testkit::wait_until(within, || async {
        let r = gw.admin.get(&path).await;
        r.status == 200 && r.json()["total"].as_u64() == Some(total)
    })
    .await;
    let last = stats(gw, code).await;
    assert!(ok, "stats never reached {total}: {last}");
    last
}

fn ch_scans(ch: &ClickHouseServer, db: &str, code: &str) -> Vec<Value> {
    ch.query(&format!(
        "SELECT * FROM {db}.scans FINAL WHERE code = '{code}' ORDER BY scan_id FORMAT JSONEachRow"
    ))
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn ch_count(ch: &ClickHouseServer, db: &str) -> (u64, u64) {
    let out = ch.query(&format!(
        "SELECT count(), uniqExact(scan_id) FROM {db}.scans FINAL FORMAT TSV"
    ));
    let mut parts = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[tokio::test]
async fn embedded_scan_round_trip_field_by_field_and_flush_on_shutdown() {
    let (mut config, tmp) = scan_config();
    config.public_url = Some("https://go.example.com".into());
    // A long interval: only the shutdown flush can have written the scan.
    config.flush_ms = 60_000;
    let mut gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let r = scan(
        &gw.anon,
        "/alice10/yt?qr=1",
        "203.0.113.77",
        IPHONE_INSTAGRAM,
        &[
            ("referer", "https://l.instagram.com/?u=abc"),
            ("cf-ipcountry", "de"),
        ],
    )
    .await;
    assert_eq!(r.status, 302);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("cl_vid="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let visitor = cookie["cl_vid=".len()..]
        .split(';')
        .next()
        .unwrap()
        // The cookie is `{visitor id}.{signature}`.
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let scan_id = scan_id_of(&r);

    let tmp = gw.take_tmp().unwrap();
    gw.stop().await.unwrap();
    let sink = EmbeddedSink::open(tmp.path(), true, true).unwrap();
    let scans: Vec<Scan> = sink.all_scans().await.unwrap();
    assert_eq!(scans.len(), 1);
    let s = &scans[0];
    assert_eq!(s.scan_id, scan_id);
    assert_eq!(s.code, "alice10");
    assert_eq!(s.channel, "yt");
    assert_eq!(s.visitor_id, visitor);
    assert_eq!(s.ip_prefix, "203.0.113.0");
    assert_eq!(s.user_agent, IPHONE_INSTAGRAM);
    assert_eq!(s.device, "mobile");
    assert_eq!(s.os, "iOS");
    assert_eq!(s.in_app, "instagram");
    assert_eq!(s.referrer_host, "l.instagram.com");
    assert_eq!(s.country, "DE");
    assert_eq!(s.source, "qr");
    assert_eq!(s.bot_reason, "");
    assert!(s.is_unique);
    let ts = codelink_analytics::ScanId::parse(&scan_id)
        .unwrap()
        .unix_ms();
    assert_eq!(s.ts_ms, ts);
    let stats = sink.code_stats("alice10").await.unwrap();
    assert_eq!((stats.total, stats.human, stats.qr), (1, 1, 1));
}

#[tokio::test]
async fn bots_are_kept_with_reasons_and_excluded_from_humans() {
    let (config, tmp) = scan_config();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let c = &gw.anon;
    // Two humans (one in-app), one of them twice with its cookie.
    let first = scan(c, "/alice10/bio", "198.51.100.1", IPHONE_INSTAGRAM, &[]).await;
    let cookie = first
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let again = scan(
        c,
        "/alice10/bio",
        "198.51.100.1",
        IPHONE_INSTAGRAM,
        &[("cookie", &cookie)],
    )
    .await;
    assert!(
        again.header("set-cookie").is_none(),
        "a known visitor gets no new cookie"
    );
    scan(c, "/alice10", "198.51.100.2", ANDROID_CHROME, &[]).await;
    // Bots: preview fetchers, HEAD, prefetch. All still redirected.
    assert_eq!(
        scan(c, "/alice10/bio", "198.51.100.3", FACEBOOK_PREVIEW, &[])
            .await
            .status,
        302
    );
    assert_eq!(
        scan(c, "/alice10/yt", "198.51.100.4", TWITTERBOT, &[])
            .await
            .status,
        302
    );
    let head = c
        .send(
            Method::HEAD,
            "/alice10",
            &[
                ("x-forwarded-for", "198.51.100.5"),
                ("user-agent", ANDROID_CHROME),
            ],
            Default::default(),
        )
        .await;
    assert_eq!(head.status, 302);
    let pre = scan(
        c,
        "/alice10",
        "198.51.100.6",
        ANDROID_CHROME,
        &[("sec-purpose", "prefetch;prerender")],
    )
    .await;
    assert_eq!(pre.status, 302);

    let s = until_total(&gw, "alice10", 7, Duration::from_secs(2)).await;
    assert_eq!(s["human"], 3, "{s}");
    assert_eq!(s["bot"], 4, "{s}");
    assert_eq!(s["bot_reasons"]["ua:facebookexternalhit"], 1, "{s}");
    assert_eq!(s["bot_reasons"]["ua:twitterbot"], 1, "{s}");
    assert_eq!(s["bot_reasons"]["head"], 1, "{s}");
    assert_eq!(s["bot_reasons"]["prefetch"], 1, "{s}");
    assert_eq!(s["channels"]["bio"]["human"], 2, "{s}");
    assert_eq!(s["channels"]["-"]["human"], 1, "{s}");
    let day = s["days"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(day["unique_visitors"], 2, "{s}");
    assert_eq!(s["link"], 7);
}

#[tokio::test]
async fn per_ip_rate_marks_scans_as_bots_but_still_redirects() {
    let (mut config, tmp) = scan_config();
    config.scan_rate_per_ip = 1;
    config.scan_burst_per_ip = 2;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    for _ in 0..5 {
        assert_eq!(
            scan(&gw.anon, "/alice10", "192.0.2.9", ANDROID_CHROME, &[])
                .await
                .status,
            302
        );
    }
    let s = until_total(&gw, "alice10", 5, Duration::from_secs(2)).await;
    assert_eq!(s["human"], 2, "{s}");
    assert_eq!(s["bot_reasons"]["rate"], 3, "{s}");
}

#[tokio::test]
async fn api_rate_limit_answers_429_with_retry_after() {
    let (mut config, tmp) = scan_config();
    config.api_rate_per_ip = 1;
    config.api_burst_per_ip = 3;
    let gw = common::start_with(config, Some(tmp)).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(gw.admin.get("/api/v1/codes").await);
    }
    let limited = statuses.iter().find(|r| r.status == 429).expect("no 429");
    assert_eq!(limited.error_code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Redirects are not limited by the API quota.
    assert_eq!(gw.anon.get("/nobody").await.status, 404);
}

#[tokio::test]
async fn stats_of_unknown_code_is_404() {
    let gw = common::start().await;
    let r = gw.admin.get("/api/v1/codes/nobody/stats").await;
    assert_eq!(r.status, 404);
    assert_eq!(gw.anon.get("/api/v1/codes/nobody/stats").await.status, 401);
}

/// The default flush interval (1 s, not the short one of the other tests)
/// still shows every scan in the live stats within 2 seconds, in Redis and in
/// the embedded store.
#[tokio::test]
async fn with_the_default_flush_each_scan_shows_in_the_stats_within_two_seconds() {
    let redis = RedisServer::start();
    for with_redis in [true, false] {
        let (mut config, tmp) = common::config();
        assert_eq!(config.flush_ms, 1000, "the documented default");
        config.client_ip_header = Some("x-forwarded-for".into());
        if with_redis {
            config.redis_url = Some(redis.url());
        }
        let gw = common::start_with(config, Some(tmp)).await;
        gw.create(common::alice()).await;
        for n in 1..=3u64 {
            let sent = std::time::Instant::now();
            let r = scan(&gw.anon, "/alice10", "198.51.100.20", ANDROID_CHROME, &[]).await;
            assert_eq!(r.status, 302);
            until_total(&gw, "alice10", n, Duration::from_secs(2)).await;
            let took = sent.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "redis {with_redis}: {took:?}"
            );
            // A different phase of the flush timer for the next scan.
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
    }
}

/// ClickHouse down and no room to spool it (a full disk): every redirect is
/// still served, and every scan that could not be kept is counted as lost.
#[tokio::test]
async fn a_full_spool_still_redirects_and_counts_every_lost_scan() {
    let (mut config, tmp) = scan_config();
    config.clickhouse_url = Some(format!(
        "http://127.0.0.1:{}",
        codelink_testkit::free_port()
    ));
    config.spool_max_bytes = 10;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    for i in 0..20 {
        let ip = format!("198.51.100.{}", 30 + i);
        let r = scan(&gw.anon, "/alice10", &ip, ANDROID_CHROME, &[]).await;
        assert_eq!(r.status, 302);
    }
    let lost = "codelink_scans_lost_total{sink=\"clickhouse\"}";
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        metric(&gw.anon.get("/metrics").await.text(), lost) == 20
    })
    .await;
    let text = gw.anon.get("/metrics").await.text();
    assert!(ok, "{text}");
    assert_eq!(metric(&text, "codelink_scans_queued_total"), 20);
    assert_eq!(metric(&text, "codelink_scans_dropped_total"), 0);
    // The counters (embedded, no Redis here) took them all the same.
    until_total(&gw, "alice10", 20, Duration::from_secs(2)).await;
}

/// A recorder queue far too small for a burst: redirects are all served, and
/// every scan is either queued (and then counted) or counted as dropped.
#[tokio::test]
async fn a_full_queue_still_redirects_and_counts_what_it_dropped() {
    let (mut config, tmp) = scan_config();
    config.queue_capacity = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let sent = 400u64;
    let tasks: Vec<_> = (0..sent)
        .map(|i| {
            let c = gw.anon.clone();
            tokio::spawn(async move {
                let ip = format!("10.1.{}.{}", i / 200, i % 200);
                scan(&c, "/alice10", &ip, ANDROID_CHROME, &[]).await.status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 302);
    }
    let text = gw.anon.get("/metrics").await.text();
    let queued = metric(&text, "codelink_scans_queued_total");
    let dropped = metric(&text, "codelink_scans_dropped_total");
    assert_eq!(queued + dropped, sent, "{text}");
    // A queue of one, drained every few ms, cannot take a burst of 400.
    assert!(dropped > 0, "{text}");
    // Every queued scan reaches the counters; the dropped ones are only counted.
    until_total(&gw, "alice10", queued, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn redis_and_clickhouse_round_trip_and_two_instances_add_up() {
    let redis = RedisServer::start();
    let ch = ClickHouseServer::start();
    let make = || {
        let (mut config, tmp) = scan_config();
        config.redis_url = Some(redis.url());
        config.redis_prefix = "rt".into();
        config.clickhouse_url = Some(ch.url());
        config.clickhouse_database = "rt".into();
        config.secret = Some("shared-secret-0123456789".into());
        (config, tmp)
    };
    let (ca, ta) = make();
    let a = common::start_with(ca, Some(ta)).await;
    let (cb, tb) = make();
    let b = common::start_with(cb, Some(tb)).await;
    assert_eq!(a.anon.get("/readyz").await.status, 200);
    a.create(common::alice()).await;
    // Polling the API, not the link: a link poll would be a scan itself.
    let deadline = codelink_testkit::wait_until(Duration::from_secs(2), || async {
        b.admin.get("/api/v1/codes/alice10").await.status == 200
    });
    assert!(deadline.await);

    let r = scan(
        &a.anon,
        "/alice10/yt-video42?qr=1",
        "2001:db8:abcd:12::1",
        IPHONE_INSTAGRAM,
        &[
            ("referer", "https://www.youtube.com/watch?v=42"),
            ("cf-ipcountry", "FR"),
        ],
    )
    .await;
    let id = scan_id_of(&r);
    let mut sent = 1 + 1; // that one, and b's scan before the loop
    scan(&b.anon, "/alice10", "203.0.113.5", FACEBOOK_PREVIEW, &[]).await;
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let ip = format!("10.0.{}.{}", i / 200, i % 200);
        assert_eq!(
            scan(&gw.anon, "/alice10/bio", &ip, ANDROID_CHROME, &[])
                .await
                .status,
            302
        );
        sent += 1;
    }
    let s = until_total(&a, "alice10", sent, Duration::from_secs(3)).await;
    assert_eq!(s["bot"], 1, "{s}");
    assert_eq!(s["human"], sent - 1, "{s}");
    assert_eq!(s["qr"], 1, "{s}");

    // ClickHouse has every row, once.
    let ok = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        ch_count(&ch, "rt") == (sent, sent)
    })
    .await;
    assert!(ok, "clickhouse rows: {:?}", ch_count(&ch, "rt"));
    let rows = ch_scans(&ch, "rt", "alice10");
    let row = rows.iter().find(|r| r["scan_id"] == id.as_str()).unwrap();
    assert_eq!(row["channel"], "yt-video42");
    assert_eq!(row["ip_prefix"], "2001:db8:abcd::");
    assert_eq!(row["in_app"], "instagram");
    assert_eq!(row["device"], "mobile");
    assert_eq!(row["referrer_host"], "www.youtube.com");
    assert_eq!(row["country"], "FR");
    assert_eq!(row["source"], "qr");
    assert_eq!(row["is_bot"], 0);
    assert_eq!(row["is_unique"], 1);
    let bot = rows.iter().find(|r| r["is_bot"] == 1).unwrap();
    assert_eq!(bot["bot_reason"], "ua:facebookexternalhit");
}

#[tokio::test]
async fn clickhouse_outage_mid_stream_loses_and_duplicates_nothing() {
    let mut ch = ClickHouseServer::start();
    let (mut config, tmp) = scan_config();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "outage".into();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let mut ids = HashSet::new();
    for i in 0..300 {
        if i == 100 {
            ch.stop();
        }
        if i == 150 {
            // Several flush intervals pass while ClickHouse is down.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        if i == 200 {
            ch.restart();
        }
        let r = scan(
            &gw.anon,
            "/alice10",
            &format!("10.1.{}.{}", i / 250, i % 250),
            ANDROID_CHROME,
            &[],
        )
        .await;
        assert_eq!(r.status, 302);
        ids.insert(scan_id_of(&r));
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await; // let batches form on both sides of the outage
        }
    }
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        ch_count(&ch, "outage") == (300, 300)
    })
    .await;
    assert!(ok, "rows after the outage: {:?}", ch_count(&ch, "outage"));
    let stored: HashSet<String> = ch_scans(&ch, "outage", "alice10")
        .into_iter()
        .map(|r| r["scan_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, ids);
    // The replay counter moves just after the rows land: wait for it.
    let settled = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let m = gw.anon.get("/metrics").await.text();
        let spooled = metric(&m, "codelink_scans_spooled_total{sink=\"clickhouse\"}");
        spooled > 0 && metric(&m, "codelink_scans_replayed_total{sink=\"clickhouse\"}") == spooled
    })
    .await;
    let metrics = gw.anon.get("/metrics").await.text();
    assert!(
        settled,
        "the outage spooled nothing, or the spool was not replayed:\n{metrics}"
    );
    assert_eq!(
        metric(&metrics, "codelink_scans_lost_total{sink=\"clickhouse\"}"),
        0
    );
}

#[tokio::test]
async fn redis_outage_mid_stream_counts_every_scan_once() {
    // A Redis with persistence, as in production: a kill loses nothing it acknowledged.
    let mut redis = RedisServer::start_durable();
    let (mut config, tmp) = scan_config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "cnt".into();
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    for i in 0..300 {
        if i == 100 {
            redis.stop();
        }
        if i == 150 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        if i == 200 {
            redis.restart();
        }
        let r = scan(
            &gw.anon,
            "/alice10/yt",
            &format!("10.2.{}.{}", i / 250, i % 250),
            ANDROID_CHROME,
            &[],
        )
        .await;
        assert_eq!(r.status, 302);
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let s = until_total(&gw, "alice10", 300, Duration::from_secs(10)).await;
    assert_eq!(s["human"], 300, "{s}");
    assert_eq!(s["channels"]["yt"]["total"], 300, "{s}");
    let m = gw.anon.get("/metrics").await.text();
    assert!(
        metric(&m, "codelink_scans_spooled_total{sink=\"redis\"}") > 0,
        "{m}"
    );
    assert_eq!(metric(&m, "codelink_scans_lost_total{sink=\"redis\"}"), 0);
    // Replaying a batch that was already applied changes nothing: stay at 300.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats(&gw, "alice10").await["total"], 300);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[tokio::test]
async fn spool_survives_a_restart_and_replays_into_clickhouse() {
    let mut ch = ClickHouseServer::start();
    let (mut config, tmp) = scan_config();
    config.clickhouse_url = Some(ch.url());
    config.clickhouse_database = "restart".into();
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    gw.create(common::alice()).await;
    ch.stop();
    let mut ids = BTreeMap::new();
    for i in 0..50 {
        let r = scan(
            &gw.anon,
            "/alice10",
            &format!("10.3.0.{i}"),
            ANDROID_CHROME,
            &[],
        )
        .await;
        ids.insert(scan_id_of(&r), ());
    }
    // Graceful stop while ClickHouse is down: the scans go to the spool.
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();
    let spool = tmp.as_ref().unwrap().path().join("spool/clickhouse");
    assert!(
        std::fs::read_dir(&spool).unwrap().count() > 0,
        "nothing spooled"
    );

    ch.restart();
    let _gw = common::start_with(config, tmp).await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        ch_count(&ch, "restart") == (50, 50)
    })
    .await;
    assert!(ok, "{:?}", ch_count(&ch, "restart"));
    // The spool file goes once its rows are in: wait for that, too.
    let emptied = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        std::fs::read_dir(&spool).unwrap().count() == 0
    })
    .await;
    assert!(emptied, "spool not emptied");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool not emptied"
    );
}

#[tokio::test]
async fn a_made_up_visitor_cookie_is_not_trusted() {
    let (config, tmp) = scan_config();
    let mut gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let c = &gw.anon;
    let first = scan(c, "/alice10", "198.51.100.9", IPHONE_INSTAGRAM, &[]).await;
    let signed = first
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (id, tag) = signed["cl_vid=".len()..].split_once('.').unwrap();
    assert_eq!((id.len(), tag.len()), (32, 16), "{signed}");
    // Posing as that visitor without the signature, with a wrong one, or as
    // an id never given out: a new visitor, with a cookie of its own.
    let forged_tag = format!("cl_vid={id}.{}", "0".repeat(16));
    for forged in [
        format!("cl_vid={id}"),
        forged_tag,
        "cl_vid=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(),
    ] {
        let r = scan(
            c,
            "/alice10",
            "198.51.100.10",
            ANDROID_CHROME,
            &[("cookie", &forged)],
        )
        .await;
        let fresh = r
            .header("set-cookie")
            .unwrap_or_else(|| panic!("{forged} was trusted"));
        assert!(!fresh.contains(id), "{forged}: {fresh}");
    }
    // The signed cookie is honoured.
    let r = scan(
        c,
        "/alice10",
        "198.51.100.11",
        ANDROID_CHROME,
        &[("cookie", &signed)],
    )
    .await;
    assert!(r.header("set-cookie").is_none());
    let tmp = gw.take_tmp().unwrap();
    gw.stop().await.unwrap();
    let sink = EmbeddedSink::open(tmp.path(), true, true).unwrap();
    let visitors: Vec<String> = sink
        .all_scans()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.visitor_id.to_string())
        .collect();
    assert_eq!(
        visitors.iter().filter(|v| *v == id).count(),
        2,
        "{visitors:?}"
    );
    assert_eq!(visitors.len(), 5);
}

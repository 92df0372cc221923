//! The verdict on a scan beyond its user agent (issue 11, part 2), from the
//! outside: real headless Chromium (Debian's `chromium` through
//! `chromedriver`) and hand-made requests against a gateway on its
//! defaults, each scan read back through the drill-down API.
//!
//! Calibration, from what chromium 156 sends (`--headless=new`): its user
//! agent says `HeadlessChrome/156`; with `--user-agent` set to another
//! Chrome, `Sec-CH-UA` still names `"Chromium";v="156"`; it always sends
//! `Accept`, `Accept-Language` and `Sec-Fetch-*` to a loopback (secure)
//! origin. So the markers are the UA itself and the client hints that
//! contradict it; a headless Chromium that claims its own version and
//! platform sends what a person's Chromium sends, and is human here (only
//! script in the page could tell: out of scope for a redirect).

mod common;

use codelink_testkit::browser::Browser;
use codelink_testkit::http::{browser, Client, Response};
use codelink_testkit::{ClickHouseServer, RedisServer};
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
const INSTAGRAM_ANDROID: &str = "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 Instagram 312.0.0.32.112 Android (33/13; 420dpi; 1080x2340; samsung; SM-S911B; dm1q; qcom; en_US; 548323757)";

/// The servers of a gateway on Redis + ClickHouse (kept alive with it).
struct Servers {
    redis: RedisServer,
    clickhouse: ClickHouseServer,
}

async fn gateway(dir: &std::path::Path) -> common::TestGateway {
    gateway_with(dir, None).await
}

async fn gateway_with(dir: &std::path::Path, servers: Option<&Servers>) -> common::TestGateway {
    let (mut config, tmp) = common::config();
    if let Some(s) = servers {
        config.redis_url = Some(s.redis.url());
        config.clickhouse_url = Some(s.clickhouse.url());
        config.clickhouse_database = "verdicts".into();
    }
    config.flush_ms = 50;
    config.client_ip_header = Some("x-forwarded-for".into());
    // The common test config turns repeats off; on here (the default is 10 s).
    config.repeat_window_secs = 4;
    let ranges = dir.join("datacenter.txt");
    std::fs::write(&ranges, "# a cloud\n192.0.2.0/24 test-cloud\n").unwrap();
    config.datacenter_ranges = Some(ranges);
    common::start_with(config, Some(tmp)).await
}

/// A code whose destination is the gateway's own health check (so a real
/// browser's navigation ends somewhere).
async fn code(gw: &common::TestGateway, name: &str) {
    let r = gw
        .create(json!({
            "code": name,
            "destination": format!("http://127.0.0.1:{}/healthz", gw.addr.port()),
            "owner": "tester",
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// The stored scans of `code`, newest first, once there are `n`.
async fn scans(gw: &common::TestGateway, code: &str, n: usize) -> Vec<Value> {
    let path = format!("/api/v1/codes/{code}/scans");
    let got = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let r = gw.admin.get(&path).await;
        r.json()["items"].as_array().map_or(0, Vec::len) >= n
    })
    .await;
    let items = gw.admin.get(&path).await.json()["items"].clone();
    assert!(got, "{code}: fewer than {n} scans: {items}");
    items.as_array().unwrap().clone()
}

async fn reason_of(gw: &common::TestGateway, code: &str) -> String {
    let scan = &scans(gw, code, 1).await[0];
    let reason = scan["bot_reason"].as_str().unwrap_or("").to_string();
    let verdict = match reason.as_str() {
        "" => "human",
        r if r == "repeat" || r == "datacenter" || r.starts_with("suspect:") => "suspect",
        _ => "bot",
    };
    assert_eq!(scan["verdict"], verdict, "{scan}");
    reason
}

async fn send(c: &Client, path: &str, headers: &[(&str, &str)]) -> Response {
    let r = c.send(Method::GET, path, headers, Default::default()).await;
    assert_eq!(r.status, 302, "{path}");
    r
}

#[tokio::test]
async fn headless_chromium_as_it_comes_and_disguised() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    for name in ["plain", "disguised", "own-version"] {
        code(&gw, name).await;
    }
    let url = |code: &str| format!("http://127.0.0.1:{}/{code}", gw.addr.port());

    // As it comes: the UA says HeadlessChrome.
    let b = Browser::start(800, 600).await;
    b.goto(&url("plain")).await;
    let ua = b.execute("return navigator.userAgent;", vec![]).await;
    let ua = ua.as_str().unwrap().to_string();
    b.quit().await;
    assert!(ua.contains("HeadlessChrome/"), "{ua}");
    assert_eq!(reason_of(&gw, "plain").await, "automation:headless-chrome");

    // Made up as Chrome 131 on Windows: the client hints still say its own
    // Chromium version.
    let b = Browser::start_with_args(800, 600, &[format!("--user-agent={CHROME_WIN}")]).await;
    b.goto(&url("disguised")).await;
    b.quit().await;
    assert_eq!(reason_of(&gw, "disguised").await, "suspect:client-hints");

    // Claiming its own version and platform, it sends every header a
    // person's Chromium sends: human (the calibration that no browser
    // header set is suspect).
    let major = ua
        .split("HeadlessChrome/")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .unwrap()
        .to_string();
    let own = format!(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"
    );
    let b = Browser::start_with_args(800, 600, &[format!("--user-agent={own}")]).await;
    b.goto(&url("own-version")).await;
    // A reload at once: the same visitor (its cl_vid cookie), a repeat.
    b.goto(&url("own-version")).await;
    b.quit().await;
    let own_scans = scans(&gw, "own-version", 2).await;
    let reasons: Vec<&str> = own_scans
        .iter()
        .rev()
        .map(|s| s["bot_reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["", "repeat"], "{own_scans:?}");

    let stats = gw.admin.get("/api/v1/codes/disguised/stats").await.json();
    assert_eq!(
        (
            &stats["total"],
            &stats["human"],
            &stats["suspect"],
            &stats["bot"]
        ),
        (&json!(1), &json!(0), &json!(1), &json!(0)),
        "{stats}"
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn header_signs_datacenter_and_repeats_embedded() {
    let dir = tempfile::tempdir().unwrap();
    header_signs_datacenter_and_repeats(gateway(dir.path()).await).await;
}

#[tokio::test]
async fn header_signs_datacenter_and_repeats_redis_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Servers {
        redis: RedisServer::start(),
        clickhouse: ClickHouseServer::start(),
    };
    header_signs_datacenter_and_repeats(gateway_with(dir.path(), Some(&servers)).await).await;
}

async fn header_signs_datacenter_and_repeats(gw: common::TestGateway) {
    let c = &gw.anon;
    let ip = |n: u8| format!("198.51.100.{n}");
    // (code, headers, expected reason)
    let cases: Vec<Case> =
        vec![
        // Every header a browser sends.
        ("chrome", owned(&browser(CHROME_WIN, &[])), ""),
        ("firefox", owned(&browser(FIREFOX, &[])), ""),
        // Safari before 16.4 sent no Sec-Fetch-*: only Chromium is held to it.
        (
            "old-safari",
            vec![
                ("user-agent", SAFARI_IOS.into()),
                ("accept", "text/html".into()),
                ("accept-language", "de-DE".into()),
            ],
            "",
        ),
        // In-app browsers are not held to Sec-Fetch-* either.
        (
            "in-app",
            vec![
                ("user-agent", INSTAGRAM_ANDROID.into()),
                ("accept", "text/html".into()),
                ("accept-language", "en-US".into()),
            ],
            "",
        ),
        // A script that borrowed Chrome's UA.
        (
            "no-accept",
            vec![("user-agent", CHROME_WIN.into())],
            "suspect:no-accept",
        ),
        (
            "no-language",
            vec![("user-agent", CHROME_WIN.into()), ("accept", "*/*".into())],
            "suspect:no-accept-language",
        ),
        (
            "no-sec-fetch",
            vec![
                ("user-agent", CHROME_WIN.into()),
                ("accept", "text/html".into()),
                ("accept-language", "en".into()),
            ],
            "suspect:no-sec-fetch",
        ),
        // Firefox does not send client hints: a UA that is not Chromium with them.
        (
            "hints-without-chromium",
            owned(&browser(
                FIREFOX,
                &[("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"")],
            )),
            "suspect:client-hints",
        ),
        // Google Chrome's own brand list, in step with its UA: human.
        (
            "hints-in-step",
            owned(&browser(
                CHROME_WIN,
                &[(
                    "sec-ch-ua",
                    "\"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
                )],
            )),
            "",
        ),
        // Older headless Chrome put itself in the brand list.
        (
            "headless-brand",
            owned(&browser(
                CHROME_WIN,
                &[("sec-ch-ua", "\"HeadlessChrome\";v=\"131\", \"Chromium\";v=\"131\"")],
            )),
            "automation:headless-chrome",
        ),
        ("curl", vec![("user-agent", "curl/8.5.0".into())], "ua:curl"),
    ];
    for (i, (name, headers, _)) in cases.iter().enumerate() {
        code(&gw, name).await;
        let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let addr = ip(i as u8 + 1);
        h.push(("x-forwarded-for", &addr));
        send(c, &format!("/{name}"), &h).await;
    }
    for (name, _, reason) in &cases {
        assert_eq!(reason_of(&gw, name).await, *reason, "{name}");
    }

    // Datacenter: the full address is in the ranges file (and is then cut
    // to its /24 like any other).
    code(&gw, "cloud").await;
    send(
        c,
        "/cloud",
        &browser(SAFARI_IOS, &[("x-forwarded-for", "192.0.2.77")]),
    )
    .await;
    let cloud = &scans(&gw, "cloud", 1).await[0];
    assert_eq!(cloud["bot_reason"], "datacenter", "{cloud}");
    assert_eq!(cloud["ip_prefix"], "192.0.2.0", "{cloud}");

    // Repeats: a double tap is counted once as human; the window is 4 s
    // here. A repeat is the same browser: it sends back the cl_vid cookie
    // the first scan set.
    code(&gw, "tap").await;
    let tap = browser(SAFARI_IOS, &[("x-forwarded-for", "203.0.113.8")]);
    let first = send(c, "/tap", &tap).await;
    let cookie = first
        .header("set-cookie")
        .and_then(|v| v.split(';').next())
        .expect("the first scan sets cl_vid")
        .to_string();
    let mut again = tap.clone();
    again.push(("cookie", &cookie));
    send(c, "/tap", &again).await;
    // The same address and user agent without the cookie: another phone
    // behind the same carrier NAT, not a repeat.
    send(c, "/tap", &tap).await;
    // Another visitor at the same moment is not a repeat either.
    send(
        c,
        "/tap",
        &browser(FIREFOX, &[("x-forwarded-for", "203.0.113.9")]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(4_300)).await;
    send(c, "/tap", &again).await;
    let taps = scans(&gw, "tap", 5).await;
    let reasons: Vec<&str> = taps
        .iter()
        .rev()
        .map(|s| s["bot_reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["", "repeat", "", "", ""], "{taps:?}");

    // The three verdicts apart, in the live stats and in the analytics API.
    let stats = gw.admin.get("/api/v1/codes/tap/stats").await.json();
    assert_eq!(
        (
            &stats["total"],
            &stats["human"],
            &stats["suspect"],
            &stats["bot"]
        ),
        (&json!(5), &json!(4), &json!(1), &json!(0)),
        "{stats}"
    );
    assert_eq!(stats["bot_inflation"], 0.2, "{stats}");
    let all = gw.admin.get("/api/v1/analytics/summary").await.json()["summary"].clone();
    // 17 scans: 9 human (5 cases, 4 taps), 6 suspects (4 cases, the cloud, a
    // repeat), 2 bots.
    let human = all["human_scans"].as_u64().unwrap();
    let suspect = all["suspect_scans"].as_u64().unwrap();
    let bot = all["bot_scans"].as_u64().unwrap();
    assert_eq!((human, suspect, bot), (9, 6, 2), "{all}");
    assert_eq!(all["scans"].as_u64().unwrap(), human + suspect + bot);
    let r = gw
        .admin
        .get("/api/v1/analytics/breakdown?by=verdict")
        .await
        .json();
    let rows: Vec<(String, u64, u64, u64)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["human_scans"].as_u64().unwrap(),
                r["suspect_scans"].as_u64().unwrap(),
                r["bot_scans"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("human".to_string(), 9, 0, 0),
            ("bot".to_string(), 0, 0, 2),
            ("suspect".to_string(), 0, 6, 0),
        ],
        "{r}"
    );
    gw.stop().await.unwrap();
}

/// A code, the headers of its one scan, and the reason expected.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

fn owned<'a>(headers: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    headers.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

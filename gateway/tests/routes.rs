//! Routing rules per code over real HTTP: every kind of condition on real
//! user agents, country headers and a GeoIP database; first match wins; the
//! scan records the rule and a breakdown by `route` counts it; bad rules are
//! a 422 that names the rule.

mod common;

use codelink_testkit::http::{Client, Response, NAVIGATION};
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36";
const WINDOWS_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const LINUX_FIREFOX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";
const MAC_FIREFOX: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0";
const INSTAGRAM_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone14,7; iOS 17_5_1; en_GB; en; scale=3.00; 1170x2532; 614785563; IABMV/1)";
const TIKTOK_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_35.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/GB isDarkMode/1 WKWebView/1 RevealType/Dialog BytedanceWebview/d8a21c6 FalconTag/4E1F2B7B-3B54-4D3B-9B2F-2F6B2C0B8F21";
const TIKTOK_ANDROID: &str = "Mozilla/5.0 (Linux; Android 13; SM-A546B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 musical_ly_2023508030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/35.8.3 ByteLocale/en ByteFullLocale/en Region/GB AppId/1233 Spark/1.5.8.4-bugfix AppVersion/35.8.3 BytedanceWebview/d8a21c6";
const FACEBOOK_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; SM-G991B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.122 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/472.0.0.45.86;IABMV/1;]";

/// A browser navigation with `ua`, `accept-language` and more headers.
async fn visit(c: &Client, path: &str, ua: &str, lang: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers: Vec<(&str, &str)> = vec![("user-agent", ua), ("accept-language", lang)];
    headers.extend(
        NAVIGATION
            .iter()
            .copied()
            .filter(|(k, _)| *k != "accept-language"),
    );
    headers.extend_from_slice(extra);
    let r = c
        .send(Method::GET, path, &headers, Default::default())
        .await;
    assert_eq!(r.status, 302, "{path} {ua}: {}", r.text());
    r
}

/// The Location without its scan parameter.
fn landing(r: &Response) -> String {
    let loc = r.header("location").expect("a redirect");
    let (before, after) = loc.split_once("cl_scan=").expect("a scan parameter");
    let fragment = after.find('#').map_or("", |i| &after[i..]);
    format!("{}{fragment}", before.trim_end_matches(['?', '&']))
}

fn routed_code() -> Value {
    json!({
        "code": "mia22",
        "destination": "https://shop.example/mia#top",
        "owner": "mia",
        "channels": {"yt": {"utm_source": "youtube", "utm_medium": "video"}},
        "routes": [
            {"name": "in-app", "destination": "https://shop.example/app", "in_app": ["instagram", "facebook"]},
            {"name": "TikTok-Android", "destination": "https://shop.example/tt", "in_app": ["tiktok"], "os": ["android"]},
            {"name": "ios-dach", "destination": "https://apps.example/de?x=1", "device": ["ios"], "country": ["de", "AT", "CH"]},
            {"name": "android", "destination": "https://play.example/mia", "device": ["android"]},
            {"name": "br", "destination": "https://shop.example/br", "language": ["pt-BR"]},
            {"name": "desktop-fr", "destination": "https://shop.example/fr", "device": ["desktop"], "country": ["FR"]},
            {"destination": "https://shop.example/linux", "os": ["linux"]}
        ]
    })
}

#[tokio::test]
async fn every_rule_kind_first_match_wins_and_scans_record_the_rule() {
    let (mut config, tmp) = common::config();
    config.flush_ms = 100;
    let gw = common::start_with(config, Some(tmp)).await;
    let r = gw.create(routed_code()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let code = r.json();
    // Shown canonical, named by position when not named.
    assert_eq!(code["routes"][1]["name"], "tiktok-android");
    assert_eq!(code["routes"][2]["country"], json!(["AT", "CH", "DE"]));
    assert_eq!(code["routes"][6]["name"], "7");
    assert_eq!(
        gw.admin.get("/api/v1/codes/mia22").await.json()["routes"],
        code["routes"]
    );

    let en = "en-US,en;q=0.9";
    let de = [("cf-ipcountry", "DE")];
    let us = [("cf-ipcountry", "US")];
    let fr = [("cf-ipcountry", "fr")];
    let c = &gw.anon;
    let cases: Vec<(Response, &str)> = vec![
        // An Instagram in-app browser on an iPhone in Germany: rule 1, not 3.
        (
            visit(c, "/mia22", INSTAGRAM_IOS, en, &de).await,
            "https://shop.example/app",
        ),
        (
            visit(c, "/mia22", FACEBOOK_ANDROID, en, &us).await,
            "https://shop.example/app",
        ),
        // TikTok: only on Android (rule 2); on iOS outside DACH nothing matches.
        (
            visit(c, "/mia22", TIKTOK_ANDROID, en, &us).await,
            "https://shop.example/tt",
        ),
        (
            visit(c, "/mia22", TIKTOK_IOS, en, &us).await,
            "https://shop.example/mia#top",
        ),
        (
            visit(c, "/mia22", IPHONE_SAFARI, en, &de).await,
            "https://apps.example/de?x=1",
        ),
        (
            visit(c, "/mia22", IPHONE_SAFARI, en, &[("cf-ipcountry", "ch")]).await,
            "https://apps.example/de?x=1",
        ),
        (
            visit(c, "/mia22", IPHONE_SAFARI, en, &us).await,
            "https://shop.example/mia#top",
        ),
        // No country header (and no GeoIP): a country rule cannot match.
        (
            visit(c, "/mia22", IPHONE_SAFARI, en, &[]).await,
            "https://shop.example/mia#top",
        ),
        (
            visit(c, "/mia22", ANDROID_CHROME, en, &de).await,
            "https://play.example/mia",
        ),
        // The preferred language decides; a language listed lower does not.
        (
            visit(c, "/mia22", MAC_FIREFOX, "pt-BR,pt;q=0.9,en;q=0.8", &us).await,
            "https://shop.example/br",
        ),
        (
            visit(c, "/mia22", MAC_FIREFOX, "en-US,pt-BR;q=0.8", &us).await,
            "https://shop.example/mia#top",
        ),
        (
            visit(c, "/mia22", MAC_FIREFOX, "pt-PT,pt;q=0.9", &us).await,
            "https://shop.example/mia#top",
        ),
        (
            visit(c, "/mia22", WINDOWS_CHROME, en, &fr).await,
            "https://shop.example/fr",
        ),
        (
            visit(c, "/mia22", WINDOWS_CHROME, en, &de).await,
            "https://shop.example/mia#top",
        ),
        (
            visit(c, "/mia22", LINUX_FIREFOX, en, &us).await,
            "https://shop.example/linux",
        ),
        // A channel: the rule's destination (its own fragment: none) with
        // the channel's UTM.
        (
            visit(c, "/mia22/YT", IPHONE_SAFARI, en, &de).await,
            "https://apps.example/de?x=1&utm_source=youtube&utm_medium=video",
        ),
        (
            visit(c, "/mia22/yt", IPHONE_SAFARI, en, &us).await,
            "https://shop.example/mia?utm_source=youtube&utm_medium=video#top",
        ),
        // A channel the code does not have: the rule's own destination.
        (
            visit(c, "/mia22/tiktok", TIKTOK_ANDROID, en, &us).await,
            "https://shop.example/tt",
        ),
    ];
    for (i, (r, expected)) in cases.iter().enumerate() {
        assert_eq!(landing(r), *expected, "case {i}");
    }
    let expected_routes: Vec<&str> = vec![
        "in-app",
        "in-app",
        "tiktok-android",
        "",
        "ios-dach",
        "ios-dach",
        "",
        "",
        "android",
        "br",
        "",
        "",
        "desktop-fr",
        "",
        "7",
        "ios-dach",
        "",
        "tiktok-android",
    ];
    assert_eq!(expected_routes.len(), cases.len());

    // The scans record the rule, newest first in the drill-down.
    let items_of = || async {
        let r = gw.admin.get("/api/v1/codes/mia22/scans?limit=100").await;
        r.json()["items"].as_array().cloned().unwrap_or_default()
    };
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        items_of().await.len() == cases.len()
    })
    .await;
    let items = items_of().await;
    assert!(ok, "scans recorded: {}", items.len());
    let mut recorded: Vec<String> = items
        .iter()
        .map(|s| s["route"].as_str().unwrap_or("").to_string())
        .collect();
    recorded.reverse();
    assert_eq!(recorded, expected_routes);
    // GeoIP is off: the scan's country is the header's, or none.
    assert_eq!(items.last().unwrap()["country"], "DE");
    assert_eq!(items[items.len() - 8]["country"], Value::Null);

    // A breakdown by route counts each rule.
    let r = gw
        .admin
        .get("/api/v1/analytics/breakdown?code=mia22&by=route")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["rows"].clone();
    let count = |key: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .map_or(0, |r| {
                r["human_scans"].as_u64().unwrap() + r["bot_scans"].as_u64().unwrap()
            })
    };
    for name in [
        "in-app",
        "tiktok-android",
        "ios-dach",
        "android",
        "br",
        "desktop-fr",
        "7",
        "",
    ] {
        let expected = expected_routes.iter().filter(|r| **r == name).count() as u64;
        assert_eq!(count(name), expected, "route {name:?}: {rows}");
    }
    assert_eq!(count("ios-dach"), 3, "{rows}");
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn time_windows_around_now() {
    let gw = common::start().await;
    let now = OffsetDateTime::now_utc();
    let hour = now.hour();
    let today = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [now.weekday().number_days_from_monday() as usize];
    let other_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [(now.weekday().number_days_from_monday() as usize + 3) % 7];
    let next = (hour + 1) % 24;
    let after = (hour + 2) % 24;
    let r = gw
        .create(json!({
            "code": "timed",
            "destination": "https://shop.example/",
            "owner": "tim",
            "routes": [
                {"name": "later", "destination": "https://shop.example/later",
                 "from": rfc3339(now + time::Duration::hours(1))},
                {"name": "over", "destination": "https://shop.example/over",
                 "until": rfc3339(now - time::Duration::minutes(1))},
                {"name": "not-this-hour", "destination": "https://shop.example/h", "hours": [next, after]},
                {"name": "not-today", "destination": "https://shop.example/d", "weekdays": [other_day]},
                {"name": "now", "destination": "https://shop.example/now",
                 "from": rfc3339(now - time::Duration::hours(1)),
                 "until": rfc3339(now + time::Duration::hours(1)),
                 "hours": [hour, next], "weekdays": [today]}
            ]
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = visit(&gw.anon, "/timed", IPHONE_SAFARI, "en", &[]).await;
    // (A test started in the last seconds of an hour may see the next one.)
    let expected = if OffsetDateTime::now_utc().hour() == hour {
        "https://shop.example/now"
    } else {
        "https://shop.example/h"
    };
    assert_eq!(landing(&r), expected);

    // PATCH replaces the rules; [] removes them.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/timed",
            &json!({"routes": [
                {"destination": "https://shop.example/ios", "device": ["ios"]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["routes"][0]["name"], "1");
    assert_eq!(
        landing(&visit(&gw.anon, "/timed", IPHONE_SAFARI, "en", &[]).await),
        "https://shop.example/ios"
    );
    let r = gw
        .admin
        .patch_json("/api/v1/codes/timed", &json!({"routes": []}))
        .await;
    assert_eq!(r.json()["routes"], json!([]));
    assert_eq!(
        landing(&visit(&gw.anon, "/timed", IPHONE_SAFARI, "en", &[]).await),
        "https://shop.example/"
    );
}

#[tokio::test]
async fn bad_rules_are_422_naming_the_rule() {
    let gw = common::start().await;
    let ok = json!({"destination": "https://shop.example/de", "country": ["DE"]});
    let cases = [
        (
            json!({"destination": "javascript:alert(1)", "device": ["ios"]}),
            "routes: rule 2: destination",
        ),
        (
            json!({"destination": "https://x.example/", "device": ["iphone"]}),
            "routes: rule 2: device: 'iphone' is not one of ios, android, desktop",
        ),
        (
            json!({"destination": "https://x.example/", "in_app": ["myspace"]}),
            "routes: rule 2: in_app",
        ),
        (
            json!({"destination": "https://x.example/", "country": ["Germany"]}),
            "routes: rule 2: country",
        ),
        (
            json!({"destination": "https://x.example/", "language": ["deutsch!"]}),
            "routes: rule 2: language",
        ),
        (
            json!({"destination": "https://x.example/", "from": "yesterday"}),
            "routes: rule 2: from",
        ),
        (
            json!({"destination": "https://x.example/", "hours": [3, 3]}),
            "routes: rule 2: hours",
        ),
        (
            json!({"destination": "https://x.example/", "weekdays": ["someday"]}),
            "routes: rule 2: weekdays",
        ),
        (
            json!({"destination": "https://x.example/"}),
            "routes: rule 2: has no condition",
        ),
        (
            json!({"name": "1", "destination": "https://x.example/", "os": ["ios"]}),
            "routes: rule 2: name '1' is used",
        ),
        (
            json!({"name": "a b", "destination": "https://x.example/", "os": ["ios"]}),
            "routes: rule 2: name",
        ),
    ];
    for (bad, expected) in cases {
        let r = gw
            .create(json!({
                "code": "badrules", "destination": "https://shop.example/", "owner": "b",
                "routes": [ok, bad]
            }))
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_field");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(expected), "{message} vs {expected}");
    }
    let many: Vec<Value> = (0..33)
        .map(|_| json!({"destination": "https://x.example/", "os": ["ios"]}))
        .collect();
    let r = gw
        .create(json!({"code": "badrules", "destination": "https://shop.example/", "owner": "b", "routes": many}))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("at most 32 rules"), "{}", r.text());
    // An unknown field of a rule is a 400 like any unknown field.
    let r = gw
        .create(
            json!({"code": "badrules", "destination": "https://shop.example/", "owner": "b",
            "routes": [{"destination": "https://x.example/", "devices": ["ios"]}]}),
        )
        .await;
    assert!(r.status == 400 || r.status == 422, "{}", r.status);
    // A PATCH is checked the same way and leaves the code as it was.
    assert_eq!(gw.create(json!({"code": "goodrules", "destination": "https://shop.example/", "owner": "b", "routes": [ok]})).await.status, 201);
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/goodrules",
            &json!({"routes": [ok, {"destination": "https://x.example/", "country": ["XYZ"]}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("rule 2: country"), "{}", r.text());
    assert_eq!(
        gw.admin.get("/api/v1/codes/goodrules").await.json()["routes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn geoip_fills_the_country_for_rules_and_scans() {
    let (mut config, tmp) = common::config();
    let db = tmp.path().join("countries.mmdb");
    std::fs::write(
        &db,
        codelink_testkit::mmdb::country_db(&[
            ("203.0.113.0".parse().unwrap(), 24, "NZ"),
            ("2001:db8:5::".parse().unwrap(), 48, "BR"),
        ]),
    )
    .unwrap();
    config.geoip_db = Some(db);
    config.flush_ms = 100;
    config.client_ip_header = Some("x-forwarded-for".into());
    let gw = common::start_with(config, Some(tmp)).await;
    let r = gw
        .create(json!({
            "code": "kiwi", "destination": "https://shop.example/", "owner": "k",
            "routes": [{"name": "nz", "destination": "https://shop.example/nz", "country": ["NZ"]}]
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    gw.create(json!({"code": "plain", "destination": "https://shop.example/", "owner": "k"}))
        .await;
    let c = &gw.anon;
    let en = "en";
    // No CDN header: the database's country.
    let nz = visit(
        c,
        "/kiwi",
        IPHONE_SAFARI,
        en,
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(landing(&nz), "https://shop.example/nz");
    // The CDN header wins over the database.
    let au = visit(
        c,
        "/kiwi",
        IPHONE_SAFARI,
        en,
        &[("x-forwarded-for", "203.0.113.9"), ("cf-ipcountry", "AU")],
    )
    .await;
    assert_eq!(landing(&au), "https://shop.example/");
    // An address the database does not know: no country.
    let none = visit(
        c,
        "/kiwi",
        IPHONE_SAFARI,
        en,
        &[("x-forwarded-for", "192.0.2.1")],
    )
    .await;
    assert_eq!(landing(&none), "https://shop.example/");
    // A code without rules still records the looked-up country (IPv6 too).
    visit(
        c,
        "/plain",
        IPHONE_SAFARI,
        en,
        &[("x-forwarded-for", "2001:db8:5:1::7")],
    )
    .await;

    let scans = |code: &'static str| {
        let admin = gw.admin.clone();
        async move {
            admin
                .get(&format!("/api/v1/codes/{code}/scans"))
                .await
                .json()["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        scans("kiwi").await.len() == 3 && scans("plain").await.len() == 1
    })
    .await;
    assert!(ok);
    let kiwi = scans("kiwi").await;
    let seen: Vec<(&str, &str)> = kiwi
        .iter()
        .rev()
        .map(|s| {
            (
                s["country"].as_str().unwrap_or(""),
                s["route"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seen, [("NZ", "nz"), ("AU", ""), ("", "")]);
    assert_eq!(scans("plain").await[0]["country"], "BR");
    // The full address is not stored: only its network.
    assert_eq!(kiwi[0]["ip_prefix"], "192.0.2.0");
}

#[tokio::test]
async fn a_bad_geoip_file_stops_start_up_with_a_clear_error() {
    let (mut config, tmp) = common::config();
    let db = tmp.path().join("broken.mmdb");
    std::fs::write(&db, b"this is not a MaxMind database").unwrap();
    config.geoip_db = Some(db);
    let addr = "127.0.0.1:0".parse().unwrap();
    let e = gateway::build(config, addr)
        .await
        .err()
        .expect("start-up refused");
    let message = e.to_string();
    assert!(
        message.contains("--geoip-db")
            && message.contains("broken.mmdb")
            && message.contains("not a MaxMind DB file"),
        "{message}"
    );
}

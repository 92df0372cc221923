//! Follower paths over real HTTP: the page (or fallback URL) of a disabled or
//! expired code, app deep links, the in-app browser escape page and its
//! follow-ups, and the opt-in visitor token — each on real user agents.

mod common;

use codelink_testkit::http::{browser, Client, Response};
use codelink_testkit::RedisServer;
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;

const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
const DESKTOP_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const INSTAGRAM_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 615768281)";
const INSTAGRAM_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android (34/14; 480dpi; 1080x2340; samsung; SM-S918B; dm3q; qcom; en_US; 658359497)";
const TIKTOK_ANDROID: &str = "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 trill_310303 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/31.3.3 ByteLocale/en ByteFullLocale/en Region/US";
const FACEBOOK_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.35.108;FBBV/614738488;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]";
const YOUTUBE_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 com.google.ios.youtube/19.29.1 (iPhone14,5; U; CPU iOS 17_5 like Mac OS X; en_US)";

async fn visit(client: &Client, path: &str, ua: &str) -> Response {
    client
        .send(Method::GET, path, &browser(ua, &[]), Default::default())
        .await
}

fn query(location: &str, key: &str) -> Option<String> {
    url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Waits until `pick(stats)` is `want`; returns the stats.
async fn until_stats(gw: &common::TestGateway, code: &str, pick: &str, want: u64) -> Value {
    let path = format!("/api/v1/codes/{code}/stats");
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let r = gw.admin.get(&path).await;
        r.status == 200 && r.json().pointer(pick).and_then(Value::as_u64) == Some(want)
    })
    .await;
    let last = gw.admin.get(&path).await.json();
    assert!(ok, "{pick} never reached {want}: {last}");
    last
}

#[tokio::test]
async fn a_disabled_code_shows_the_code_and_is_recorded() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    assert_eq!(gw.admin.delete("/api/v1/codes/alice10").await.status, 200);

    let r = visit(&gw.anon, "/alice10/yt", IPHONE_SAFARI).await;
    assert_eq!(r.status, 410);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = r.text();
    assert!(
        page.contains("<p class=\"code\" aria-label=\"Creator code\">ALICE10</p>"),
        "the code in large type: {page}"
    );
    assert!(page.contains("turned off"), "{page}");
    assert!(page.len() < 10 * 1024);
    // A bot's visit is recorded too, with its own verdict.
    let r = visit(&gw.anon, "/alice10", "curl/8.5.0").await;
    assert_eq!(r.status, 410);
    let stats = until_stats(&gw, "alice10", "/steps/gone", 2).await;
    assert_eq!(stats["total"], 2, "{stats}");
    assert_eq!(stats["human"], 1, "{stats}");
    assert_eq!(stats["bot"], 1, "{stats}");
    assert_eq!(stats["channels"]["yt"]["human"], 1, "{stats}");
}

#[tokio::test]
async fn an_expired_code_with_a_fallback_url_redirects_there() {
    let gw = common::start().await;
    let mut body = common::alice();
    body["fallback_url"] = json!("https://Shop.Example/sale");
    let r = gw.create(body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["fallback_url"], "https://shop.example/sale");
    // Expired: the stored expiry is in the past (set through PATCH to the
    // near future, then waited out).
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"expires_at": soon}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let r = visit(&gw.anon, "/alice10/bio", ANDROID_CHROME).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://shop.example/sale"));
    let stats = until_stats(&gw, "alice10", "/steps/gone", 1).await;
    assert_eq!(stats["human"], 1, "{stats}");

    // Clearing the fallback brings the page back.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"fallback_url": null}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["fallback_url"].is_null());
    assert_eq!(
        visit(&gw.anon, "/alice10", ANDROID_CHROME).await.status,
        410
    );
    // A bad fallback is refused with the field named.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"fallback_url": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("fallback_url"), "{}", r.text());
}

#[tokio::test]
async fn app_links_open_the_app_on_its_platform() {
    let gw = common::start().await;
    let mut body = common::alice();
    body["app_links"] = json!({
        "ios": "https://app.shop.example/open/alice10",
        "android": {"package": "com.shop.app", "fallback": "store"}
    });
    let r = gw.create(body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["app_links"]["android"]["fallback"], "store");

    // iPhone: the universal link, with the channel's UTM and the scan token.
    let r = visit(&gw.anon, "/alice10/yt", IPHONE_SAFARI).await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("https://app.shop.example/open/alice10?utm_source=youtube"),
        "{loc}"
    );
    let token = query(loc, "cl_scan").expect("the scan token");
    assert!(token.contains(".alice10.yt."), "{token}");

    // Android: an intent to the app, the store (with the scan as the install
    // referrer) when it is not installed.
    let r = visit(&gw.anon, "/alice10/yt", ANDROID_CHROME).await;
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("intent://shop.example/signup?ref=home&utm_source=youtube"),
        "{loc}"
    );
    assert!(
        loc.contains("#Intent;scheme=https;package=com.shop.app;S.browser_fallback_url=https%3A%2F%2Fplay.google.com%2Fstore%2Fapps%2Fdetails%3Fid%3Dcom.shop.app%26referrer%3Dcl_scan%253D"),
        "{loc}"
    );
    assert!(loc.ends_with(";end"), "{loc}");
    assert!(
        !loc.contains("#form"),
        "the fragment cannot precede #Intent: {loc}"
    );

    // Desktop: the destination as before.
    let r = visit(&gw.anon, "/alice10/yt", DESKTOP_CHROME).await;
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with("https://shop.example/signup?ref=home&utm_source=youtube"));
    assert!(loc.ends_with("#form"));

    // Web fallback: the App Link itself, which opens the page without the app.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"app_links": {"android": {"package": "com.shop.app", "url": "https://shop.example/app/alice10"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = visit(&gw.anon, "/alice10", ANDROID_CHROME).await;
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("intent://shop.example/app/alice10?cl_scan="),
        "{loc}"
    );
    assert!(
        loc.contains(
            ";S.browser_fallback_url=https%3A%2F%2Fshop.example%2Fapp%2Falice10%3Fcl_scan%3D"
        ),
        "{loc}"
    );
    // iOS lost its link in that PATCH: the destination again.
    let r = visit(&gw.anon, "/alice10", IPHONE_SAFARI).await;
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("https://shop.example/signup"));

    // Validation: the field and what to fix.
    for (links, says) in [
        (json!({"ios": "http://app.shop.example/"}), "https"),
        (json!({"android": {"package": "shop"}}), "package"),
        (
            json!({"android": {"package": "com.shop.app", "fallback": "moon"}}),
            "`web` or `store`",
        ),
        (json!({"windows": "https://x.example/"}), "windows"),
    ] {
        let r = gw
            .admin
            .patch_json("/api/v1/codes/alice10", &json!({"app_links": links}))
            .await;
        assert_eq!(r.status, 422, "{links}: {}", r.text());
        assert!(r.text().contains(says), "{links}: {}", r.text());
    }
}

/// Both ways out of the escape page carry the scan's token to the
/// destination, and count as steps, not as scans.
#[tokio::test]
async fn the_in_app_escape_page_carries_the_scan_through() {
    let gw = common::start().await;
    let mut body = common::alice();
    body["in_app_escape"] = json!(true);
    assert_eq!(gw.create(body).await.status, 201);

    // Instagram on Android: an intent that opens Chrome, with the token.
    let r = visit(&gw.anon, "/alice10/yt", INSTAGRAM_ANDROID).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = r.text();
    assert!(page.len() < 10 * 1024, "{} bytes", page.len());
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "no requests: {page}"
    );
    assert!(page.contains("Instagram"), "{page}");
    let href = |page: &str, needle: &str| -> String {
        let at = page
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {page}"));
        let start = page[..at].rfind("href=\"").unwrap() + 6;
        page[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    let open = href(&page, ">Open in your browser</a>");
    let base = format!("http://{}", gw.addr);
    let host = base.strip_prefix("http://").unwrap();
    assert!(
        open.starts_with(&format!("intent://{host}/alice10/yt?cl_esc=")),
        "{open}"
    );
    assert!(
        open.contains("#Intent;scheme=http;package=com.android.chrome;"),
        "{open}"
    );
    let token = open["intent://".len()..]
        .split("cl_esc=")
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .to_string();
    assert!(token.contains(".alice10.yt."), "{token}");

    // Chrome opens the escaped link: the destination gets that token.
    let escaped = format!("/alice10/yt?cl_esc={token}");
    let r = visit(&gw.anon, &escaped, ANDROID_CHROME).await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert_eq!(query(loc, "cl_scan").as_deref(), Some(token.as_str()));
    assert_eq!(query(loc, "utm_source").as_deref(), Some("youtube"));

    // "Continue" in the app: the same token, no page again.
    let cont = href(&page, ">Continue in Instagram</a>");
    assert_eq!(cont, format!("/alice10/yt?cl_cont={token}"));
    let r = visit(&gw.anon, &cont, INSTAGRAM_ANDROID).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        query(r.header("location").unwrap(), "cl_scan").as_deref(),
        Some(token.as_str())
    );

    // iOS (Instagram, Facebook): the instruction, and continue.
    for (ua, app) in [(INSTAGRAM_IOS, "Instagram"), (FACEBOOK_IOS, "Facebook")] {
        let r = visit(&gw.anon, "/alice10", ua).await;
        assert_eq!(r.status, 200, "{app}");
        let page = r.text();
        assert!(page.contains("Open in external browser"), "{page}");
        assert!(page.contains(&format!("Continue in {app}")), "{page}");
        assert!(!page.contains("intent://"), "{page}");
    }
    // TikTok on Android gets it; YouTube's in-app browser and plain
    // browsers do not (YouTube hands links to the system browser).
    assert_eq!(
        visit(&gw.anon, "/alice10", TIKTOK_ANDROID).await.status,
        200
    );
    for ua in [YOUTUBE_IOS, IPHONE_SAFARI, DESKTOP_CHROME] {
        assert_eq!(visit(&gw.anon, "/alice10", ua).await.status, 302, "{ua}");
    }
    // A forged token is no follow-up: a scan of its own, with a new token.
    let r = visit(
        &gw.anon,
        "/alice10/yt?cl_cont=01JFAKE.alice10.yt.AAAAAAAAAAAAAAAA",
        DESKTOP_CHROME,
    )
    .await;
    assert_eq!(r.status, 302);
    assert_ne!(
        query(r.header("location").unwrap(), "cl_scan").as_deref(),
        Some(token.as_str())
    );

    // 4 pages shown + 5 plain scans (YouTube, Safari, Chrome, the forged
    // one; the follow-ups are not scans).
    let stats = until_stats(&gw, "alice10", "/steps/escape_shown", 4).await;
    assert_eq!(stats["steps"]["escaped"], 1, "{stats}");
    assert_eq!(stats["steps"]["continued"], 1, "{stats}");
    assert_eq!(stats["total"], 8, "{stats}");
}

/// The opt-in visitor token reaches the destination, and a conversion that
/// sends it back is credited to that visitor's scan.
#[tokio::test]
async fn the_visitor_token_comes_back_as_visitor_id() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    // Off by default.
    let r = visit(&gw.anon, "/alice10/yt", IPHONE_SAFARI).await;
    assert_eq!(query(r.header("location").unwrap(), "cl_vid"), None);

    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"visitor_token": true}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["visitor_token"], true);
    let r = visit(&gw.anon, "/alice10/yt", IPHONE_SAFARI).await;
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.ends_with("#form"), "the fragment stays last: {loc}");
    let vt = query(&loc, "cl_vid").expect("a visitor token");
    let (id, tag) = vt.split_once('.').unwrap();
    assert_eq!((id.len(), tag.len()), (32, 16), "{vt}");
    // Not the cookie's value (that one is the browser's, not the brand's).
    let cookie = r.header("set-cookie").unwrap();
    assert!(!cookie.contains(&vt), "{cookie}");

    // The scan reaches the live store (where the visitor's latest scan is).
    until_stats(&gw, "alice10", "/total", 2).await;
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "vt-1", "type": "signup", "code": "ALICE10", "visitor_id": vt}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let out = r.json();
    assert_eq!(out["attribution"]["rule"], "visitor", "{out}");
    assert_eq!(out["attribution"]["channel"], "yt", "{out}");

    // A token with a changed tag is refused, saying what to send.
    let forged = format!("{id}.{}", "0".repeat(16));
    let r = gw
        .admin
        .post_json(
            "/api/v1/conversions",
            &json!({"event_id": "vt-2", "type": "signup", "code": "ALICE10", "visitor_id": forged}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("visitor_id"), "{}", r.text());
}

/// In Redis mode the steps are Redis counters like every other.
#[tokio::test]
async fn steps_are_counted_in_redis_too() {
    let redis = RedisServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    let gw = common::start_with(config, Some(tmp)).await;
    let mut body = common::alice();
    body["in_app_escape"] = json!(true);
    assert_eq!(gw.create(body).await.status, 201);
    let page = visit(&gw.anon, "/alice10", INSTAGRAM_IOS).await.text();
    let at = page.find("cl_cont=").unwrap();
    let cont_token = page[at + 8..].split('"').next().unwrap();
    let r = visit(
        &gw.anon,
        &format!("/alice10?cl_cont={cont_token}"),
        INSTAGRAM_IOS,
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(gw.admin.delete("/api/v1/codes/alice10").await.status, 200);
    assert_eq!(visit(&gw.anon, "/alice10", INSTAGRAM_IOS).await.status, 410);
    let stats = until_stats(&gw, "alice10", "/steps/continued", 1).await;
    assert_eq!(stats["steps"]["escape_shown"], 1, "{stats}");
    assert_eq!(stats["steps"]["gone"], 1, "{stats}");
    assert_eq!(stats["total"], 2, "{stats}");
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "HGET",
            "codelink:stats:alice10",
            "step:continued",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

/// A matched routing rule's destination is followed as the rule says; app
/// links apply to the code's own destinations.
#[tokio::test]
async fn a_matched_rule_wins_over_app_links() {
    let gw = common::start().await;
    let mut body = common::alice();
    body["app_links"] = json!({"ios": "https://app.shop.example/open"});
    body["routes"] = json!([
        {"name": "de", "destination": "https://shop.example/de", "country": ["DE"]}
    ]);
    let r = gw.create(body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let de = gw
        .anon
        .send(
            Method::GET,
            "/alice10/yt",
            &browser(IPHONE_SAFARI, &[("cf-ipcountry", "DE")]),
            Default::default(),
        )
        .await;
    let loc = de.header("location").unwrap();
    assert!(
        loc.starts_with("https://shop.example/de?utm_source=youtube"),
        "{loc}"
    );
    let fr = gw
        .anon
        .send(
            Method::GET,
            "/alice10/yt",
            &browser(IPHONE_SAFARI, &[("cf-ipcountry", "FR")]),
            Default::default(),
        )
        .await;
    let loc = fr.header("location").unwrap();
    assert!(
        loc.starts_with("https://app.shop.example/open?utm_source=youtube"),
        "{loc}"
    );
}

//! The web console in a real browser (Debian's chromium through
//! chromedriver): a creator and the admin use it as people would, on data
//! produced by scripted redirects and conversions. Screenshots of every page
//! at phone (390 px) and desktop (1440 px) width land in
//! `target/ui-screenshots/`.

mod common;

use codelink_testkit::browser::Browser;
use codelink_testkit::http::Client;
use common::{TestGateway, ADMIN_KEY};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const ANDROID_INSTAGRAM: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 Instagram 330.0.0.40.92 Android";
const PREVIEW: &str = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

/// One redirect from `ip` with `ua`; returns the scan token given to the shop.
async fn redirect(gw: &TestGateway, path: &str, ua: &str, ip: &str) -> String {
    let r = gw
        .anon
        .send(
            http::Method::GET,
            path,
            &codelink_testkit::http::browser(ua, &[("x-forwarded-for", ip)]),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 302, "{path}");
    let loc = url::Url::parse(r.header("location").unwrap()).unwrap();
    loc.query_pairs()
        .find(|(k, _)| k == "cl_scan")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// The numbers the scripted traffic produces, checked against the API too.
struct Produced {
    alice10_human: u64,
    alice10_bots: u64,
}

async fn produce(gw: &TestGateway) -> Produced {
    let admin = &gw.admin;
    for body in [
        json!({"code": "ALICE10", "destination": "https://shop.example/signup", "owner": "alice",
               "channels": {"yt": {"utm_source": "youtube", "utm_medium": "video"},
                            "bio": {"utm_source": "instagram", "utm_medium": "bio"}},
               "commission": {"currency": "EUR", "signup_flat": 200, "purchase_bps": 1000}}),
        json!({"code": "ALICE20", "destination": "https://shop.example/", "owner": "alice"}),
        json!({"code": "BOB5", "destination": "https://shop.example/", "owner": "bob"}),
    ] {
        assert_eq!(gw.create(body).await.status, 201);
    }
    // ALICE10: 6 human scans from YouTube (4 of them QR), 1 of a channel it
    // does not have, 3 from the
    // Instagram bio in Instagram's browser; 3 link previews and 1 crawler;
    // 2 suspects (below).
    let mut first = String::new();
    for i in 0..6 {
        let path = if i < 4 {
            "/alice10/yt?qr=1"
        } else {
            "/alice10/yt"
        };
        let t = redirect(gw, path, IPHONE, &format!("10.0.1.{i}")).await;
        if i == 0 {
            first = t;
        }
    }
    for i in 0..3 {
        redirect(
            gw,
            "/alice10/bio",
            ANDROID_INSTAGRAM,
            &format!("10.0.2.{i}"),
        )
        .await;
    }
    for i in 0..3 {
        redirect(gw, "/alice10/bio", PREVIEW, &format!("10.0.3.{i}")).await;
    }
    redirect(gw, "/alice10", GOOGLEBOT, "10.0.4.1").await;
    // A typo in a bio: a channel ALICE10 does not have (a human scan of the
    // bare code).
    redirect(gw, "/alice10/tiktok", IPHONE, "10.0.8.1").await;
    // 2 suspects: a script with an iPhone's user agent that sends no
    // Accept-Language.
    for i in 0..2 {
        let ip = format!("10.0.7.{i}");
        let r = gw
            .anon
            .send(
                http::Method::GET,
                "/alice10/yt",
                &[
                    ("user-agent", IPHONE),
                    ("accept", "*/*"),
                    ("x-forwarded-for", &ip),
                ],
                Default::default(),
            )
            .await;
        assert_eq!(r.status, 302);
    }
    for i in 0..2 {
        redirect(gw, "/alice20", IPHONE, &format!("10.0.5.{i}")).await;
    }
    for i in 0..3 {
        redirect(gw, "/bob5", IPHONE, &format!("10.0.6.{i}")).await;
    }
    // A signup through the first scan's token, then that customer's purchase
    // of EUR 50.00: 2.00 + 10 % of 50.00 = EUR 7.00 earned, still estimated.
    for body in [
        json!({"event_id": "ui-1", "type": "signup", "scan_id": first, "customer_id": "c1"}),
        json!({"event_id": "ui-2", "type": "purchase", "customer_id": "c1", "amount": 5000, "currency": "EUR"}),
        json!({"event_id": "ui-3", "type": "signup", "code": "BOB5"}),
    ] {
        let r = admin.post_json("/api/v1/conversions", &body).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // The recorder flushes every second: wait until the API sees it all.
    let ok = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        let r = admin.get("/api/v1/analytics/summary?code=alice10").await;
        let s = &r.json()["summary"];
        s["human_scans"] == 10
            && s["bot_scans"] == 4
            && s["suspect_scans"] == 2
            && s["purchases"] == 1
    })
    .await;
    assert!(ok, "scans and conversions were not recorded in time");
    Produced {
        alice10_human: 10,
        alice10_bots: 4,
    }
}

/// Problems a person using a screen reader, a keyboard or weak eyes would
/// meet: unlabelled fields, headings out of order, text under 4.5:1 contrast.
const A11Y: &str = r#"
var problems = [];
document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach(function (el) {
  if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
});
document.querySelectorAll('button, a[href]').forEach(function (el) {
  if (!(el.textContent || '').trim() && !el.getAttribute('aria-label')) problems.push('nameless ' + el.outerHTML.slice(0, 80));
});
var levels = [].map.call(document.querySelectorAll('h1, h2, h3, h4, h5, h6'), function (h) { return +h.tagName[1]; });
if (levels[0] !== 1) problems.push('first heading is h' + levels[0]);
if (levels.filter(function (l) { return l === 1; }).length !== 1) problems.push('not exactly one h1');
for (var i = 1; i < levels.length; i++) if (levels[i] > levels[i - 1] + 1) problems.push('heading h' + levels[i] + ' after h' + levels[i - 1]);
function rgba(c) { var m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; var p = m[1].split(',').map(parseFloat); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; }
function lum(c) { var f = function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); }
function background(el) { while (el) { var c = rgba(getComputedStyle(el).backgroundColor); if (c && c.a > 0.5) return c; el = el.parentElement; } return { r: 255, g: 255, b: 255, a: 1 }; }
document.querySelectorAll('body *').forEach(function (el) {
  var text = [].some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  if (!text) return;
  var s = getComputedStyle(el), box = el.getBoundingClientRect();
  if (s.display === 'none' || s.visibility === 'hidden' || box.width === 0 || box.height === 0 || el.closest('.visually-hidden')) return;
  var a = lum(rgba(s.color)), b = lum(background(el));
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ' ' + el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '"');
});
if (document.documentElement.scrollWidth > window.innerWidth) {
  var wide = [].filter.call(document.querySelectorAll('body *'), function (el) {
    var r = el.getBoundingClientRect();
    return r.right > window.innerWidth + 1;
  }).slice(0, 5).map(function (el) { return el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right); });
  problems.push('page wider than the screen (' + document.documentElement.scrollWidth + ' > ' + window.innerWidth + '): ' + wide.join(', '));
}
return problems;
"#;

/// Console errors, except the browser's note that the page itself came with
/// a 4xx status (a form shown again with its errors is a 422 on purpose);
/// a stylesheet, script or image that failed to load still counts.
async fn console_errors(b: &Browser) -> Vec<String> {
    let page = b.current_url().await;
    b.console_errors()
        .await
        .into_iter()
        .filter(|e| !(e.contains(&format!("{page} - Failed to load resource"))))
        .collect()
}

/// Checks the open page: no console errors, basic accessibility, and saves
/// a screenshot at the browser's width.
async fn check_page(b: &Browser, name: &str, width: u32) {
    let problems = b.execute(A11Y, vec![]).await;
    assert_eq!(problems, json!([]), "{name}: accessibility problems");
    let errors = console_errors(b).await;
    assert!(errors.is_empty(), "{name}: console errors {errors:?}");
    let kind = if width < 800 { "phone" } else { "desktop" };
    b.screenshot(&shots().join(format!("{name}-{kind}.png")))
        .await;
}

/// Both widths of the open page.
async fn both_widths(b: &Browser, name: &str) {
    b.set_window_size(390, 844).await;
    check_page(b, name, 390).await;
    b.set_window_size(1440, 900).await;
    check_page(b, name, 1440).await;
}

async fn wait_for_url(b: &Browser, needle: &str) -> bool {
    for _ in 0..50 {
        if b.current_url().await.contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn sign_in(b: &Browser, base: &str, key: &str) {
    b.goto(&format!("{base}/ui/")).await;
    assert!(b.current_url().await.ends_with("/ui/sign-in"));
    let input = b.find("#key").await;
    // The key field has focus at once: type and press Enter, no mouse.
    assert!(input.is_focused().await, "the key field should be focused");
    input.send_keys(key).await;
    b.press_key("\u{E007}").await;
    assert!(
        b.wait_for_text("h1", "odes", Duration::from_secs(5)).await,
        "not signed in"
    );
}

/// The session cookie's value, for requests made beside the browser.
async fn session_cookie(b: &Browser) -> String {
    let cookies = b.cookies().await;
    let c = cookies
        .iter()
        .find(|c| c["name"] == "cl_session")
        .expect("a session cookie");
    assert_eq!(c["httpOnly"], true);
    assert_eq!(c["sameSite"], "Strict");
    format!("cl_session={}", c["value"].as_str().unwrap())
}

async fn page_bytes(client: &Client, path: &str, cookie: &str) -> (u16, usize) {
    let r = client
        .send(
            http::Method::GET,
            path,
            &[("cookie", cookie)],
            Default::default(),
        )
        .await;
    (r.status.as_u16(), r.body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creator_and_admin_use_the_console_in_a_browser() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    let gw = common::start_with(config, Some(tmp)).await;
    let base = format!("http://{}", gw.addr);
    let produced = produce(&gw).await;
    let key = gw
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

    let b = Browser::start(390, 844).await;

    // --- The creator, on a phone. ---
    b.goto(&format!("{base}/ui/")).await;
    both_widths(&b, "sign-in").await;
    b.set_window_size(390, 844).await;
    sign_in(&b, &base, &key).await;
    let cookie = session_cookie(&b).await;
    assert!(!b.current_url().await.contains(&key));
    assert!(
        !b.page_source().await.contains(&key),
        "the key is in the page"
    );
    // The keyboard: the first Tab reaches the skip link.
    b.press_key("\u{E004}").await;
    assert!(
        b.find("a.skip").await.is_focused().await,
        "Tab should reach the skip link"
    );
    // My codes: ALICE10 and ALICE20, not Bob's.
    assert_eq!(b.find_all("article.code").await.len(), 2);
    assert!(b.find_all("[data-code=bob5]").await.is_empty());
    let card = "[data-code=alice10]";
    for (k, want) in [
        ("today", "10"),
        ("d7", "10"),
        ("d30", "10"),
        ("signups", "1"),
        ("purchases", "1"),
        ("estimated", "EUR 7.00"),
        ("confirmed", "–"),
    ] {
        let got = b.find(&format!("{card} [data-k={k}]")).await.text().await;
        assert_eq!(got, want, "my codes, alice10, {k}");
    }
    // 1 signup and 1 purchase over 10 distinct human scanners.
    assert_eq!(
        b.find(&format!("{card} [data-k=scan_to_signup]"))
            .await
            .text()
            .await,
        "10.0 %"
    );
    assert_eq!(
        b.find("[data-code=alice20] [data-k=today]")
            .await
            .text()
            .await,
        "2"
    );
    both_widths(&b, "creator-my-codes").await;

    // One code.
    b.set_window_size(390, 844).await;
    b.find("[data-code=alice10] h2 a").await.click().await;
    assert!(
        b.wait_for_text("h1", "ALICE10", Duration::from_secs(5))
            .await
    );
    let tile = |k: &'static str| {
        let b = &b;
        async move { b.find(&format!("[data-live={k}]")).await.text().await }
    };
    assert_eq!(
        tile("human_scans").await,
        produced.alice10_human.to_string()
    );
    assert_eq!(tile("bot_scans").await, produced.alice10_bots.to_string());
    assert_eq!(tile("suspect_scans").await, "2");
    // 4 bots and 2 suspects of 16 hits.
    assert_eq!(tile("bot_share").await, "37.5 %");
    assert_eq!(tile("signups").await, "1");
    assert_eq!(tile("estimated").await, "EUR 7.00");
    let text = b.find("main").await.text().await;
    for needle in [
        "Link previews",
        "facebookexternalhit (3)",
        "Crawlers and other bots",
        "googlebot (1)",
        "Suspect: headers no browser would send",
        "no-accept-language (2)",
        "Channels this code does not have",
        "tiktok",
        "QR code",
        "instagram",
        "the scan's link",
        "the customer's signup",
    ] {
        assert!(text.contains(needle), "code page lacks {needle:?}");
    }
    both_widths(&b, "creator-code").await;

    // Live: a redirect shows up on the open page within 5 s, no reload.
    b.set_window_size(390, 844).await;
    b.execute("window.notReloaded = true; return null;", vec![])
        .await;
    redirect(&gw, "/alice10/yt", IPHONE, "10.0.9.9").await;
    assert!(
        b.wait_for_text("dd[data-live=human_scans]", "11", Duration::from_secs(5))
            .await,
        "the new scan did not show within 5 s"
    );
    assert_eq!(
        b.execute("return window.notReloaded === true;", vec![])
            .await,
        true
    );

    // Change the date range: January has nothing, then back to 7 days.
    b.execute(
        "document.querySelector('input[name=from]').value = '2026-01-01';\
         document.querySelector('input[name=to]').value = '2026-01-31'; return null;",
        vec![],
    )
    .await;
    b.find(".custom button[type=submit]").await.click().await;
    assert!(
        wait_for_url(&b, "range=custom").await,
        "custom range not applied"
    );
    assert_eq!(tile("human_scans").await, "0");
    assert!(
        b.find_all("[data-live-url]").await.is_empty(),
        "a past range is not live"
    );
    b.find(".presets a[href*='range=7d']").await.click().await;
    assert!(
        b.wait_for_text("dd[data-live=human_scans]", "11", Duration::from_secs(5))
            .await
    );

    // Download a QR of the YouTube channel at 512 px and decode it.
    let form = "form[data-qr]";
    b.find(&format!("{form} select[name=qr_channel]"))
        .await
        .select_by_value("yt")
        .await;
    b.find(&format!("{form} select[name=qr_size]"))
        .await
        .select_by_value("512")
        .await;
    let link = b.find("#qr-download").await;
    assert_eq!(
        link.attr("download").await.as_deref(),
        Some("alice10-yt-512.png")
    );
    link.click().await;
    let png = b
        .wait_for_download("alice10-yt-512.png", Duration::from_secs(10))
        .await;
    let (w, _, payload) = codelink_testkit::qr::decode_png_qr(&png);
    assert_eq!(w, 512);
    assert!(
        payload.starts_with(&format!("{base}/alice10/yt")),
        "QR says {payload}"
    );
    assert_eq!(console_errors(&b).await, Vec::<String>::new());

    // Another creator's code: 404, in the browser and on the wire.
    b.goto(&format!("{base}/ui/codes/bob5")).await;
    assert!(
        b.wait_for_text("h1", "Not found", Duration::from_secs(5))
            .await
    );
    assert!(!b.page_source().await.contains("BOB5"));
    assert_eq!(page_bytes(&gw.anon, "/ui/codes/bob5", &cookie).await.0, 404);
    b.console_errors().await; // the 404 itself is logged by the browser

    // The funnel, as the creator sees it (only alice's codes).
    b.goto(&format!("{base}/ui/funnel?by=channel")).await;
    assert_eq!(b.find("[data-step='0']").await.text().await, "13");
    both_widths(&b, "creator-funnel").await;

    // Page weight: every page with its stylesheet and script under 200 KB.
    let css = page_bytes(&gw.anon, "/ui/assets/app.css", "").await;
    let js = page_bytes(&gw.anon, "/ui/assets/app.js", "").await;
    assert_eq!((css.0, js.0), (200, 200));
    for path in ["/ui/codes", "/ui/codes/alice10?range=90d", "/ui/funnel"] {
        let (status, n) = page_bytes(&gw.anon, path, &cookie).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            n + css.1 + js.1 < 200_000,
            "{path}: {} bytes",
            n + css.1 + js.1
        );
    }

    // The in-app escape page as its own step: ALICE20 turns it on, a
    // follower in Instagram is shown it and goes on in the app.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice20", &json!({"in_app_escape": true}))
        .await;
    assert_eq!(r.status, 200);
    let page = gw
        .anon
        .send(
            http::Method::GET,
            "/alice20",
            &codelink_testkit::http::browser(
                ANDROID_INSTAGRAM,
                &[("x-forwarded-for", "10.0.10.1")],
            ),
            Default::default(),
        )
        .await;
    assert_eq!(page.status, 200);
    let page = page.text();
    let at = page.find("cl_cont=").expect("a continue link");
    let cont = format!("/alice20?{}", page[at..].split('"').next().unwrap());
    let r = gw
        .anon
        .send(
            http::Method::GET,
            &cont,
            &codelink_testkit::http::browser(
                ANDROID_INSTAGRAM,
                &[("x-forwarded-for", "10.0.10.1")],
            ),
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 302);
    let counted = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        gw.admin.get("/api/v1/codes/alice20/stats").await.json()["steps"]["continued"] == 1
    })
    .await;
    assert!(counted, "the continue step was not counted");
    b.goto(&format!("{base}/ui/codes/alice20")).await;
    assert!(
        b.wait_for_text("#steps", "Follower paths", Duration::from_secs(5))
            .await
    );
    let text = b.find("main").await.text().await;
    for needle in [
        "Shown the “open in your browser” page",
        "Went on in the app",
        "100%",
    ] {
        assert!(text.contains(needle), "alice20's page lacks {needle:?}");
    }
    both_widths(&b, "creator-code-steps").await;

    // Sign out: the session ends, pages send you to sign in.
    b.find("form.signout button").await.click().await;
    assert!(
        b.wait_for_text("h1", "Sign in", Duration::from_secs(5))
            .await
    );
    b.goto(&format!("{base}/ui/codes")).await;
    assert!(b.current_url().await.ends_with("/ui/sign-in"));
    assert!(b.cookies().await.iter().all(|c| c["name"] != "cl_session"));

    // --- The admin, on a desktop. ---
    b.set_window_size(1440, 900).await;
    sign_in(&b, &base, ADMIN_KEY).await;
    assert!(!b.page_source().await.contains(ADMIN_KEY));
    let rows = b.find_all("table.data tbody tr").await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].text().await.starts_with("ALICE10"),
        "sorted by scans"
    );
    both_widths(&b, "admin-codes").await;
    b.set_window_size(1440, 900).await;
    // Sort by code, then search.
    b.find("th a[href*='sort=code']").await.click().await;
    assert!(
        b.wait_for_text("table.data tbody tr", "ALICE10", Duration::from_secs(5))
            .await
    );
    let q = b.find("#q").await;
    q.send_keys("bob").await;
    b.press_key("\u{E007}").await;
    assert!(
        b.wait_for_text("table.data tbody", "BOB5", Duration::from_secs(5))
            .await
    );
    assert_eq!(b.find_all("table.data tbody tr").await.len(), 1);

    // Create a code through the form: first with a wrong destination.
    b.goto(&format!("{base}/ui/codes/new")).await;
    b.find("#code").await.send_keys("CARL").await;
    b.find("#destination")
        .await
        .send_keys("shop.example/no-scheme")
        .await;
    b.find("#owner").await.send_keys("carl").await;
    b.find("#ch0_name").await.send_keys("tiktok").await;
    b.find("#ch0_source").await.send_keys("tiktok").await;
    b.find("#currency").await.send_keys("USD").await;
    b.find("#percent").await.send_keys("12.5").await;
    b.find("form.form button[type=submit]").await.click().await;
    assert!(
        b.wait_for_text("#destination-error", "absolute URL", Duration::from_secs(5))
            .await,
        "the API's message shows next to the field"
    );
    assert_eq!(
        b.find("#destination")
            .await
            .attr("aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    // What was typed is kept.
    assert_eq!(b.find("#ch0_name").await.prop("value").await, "tiktok");
    both_widths(&b, "admin-new-code-invalid").await;
    let dest = b.find("#destination").await;
    dest.clear().await;
    dest.send_keys("https://shop.example/carl").await;
    b.find("form.form button[type=submit]").await.click().await;
    assert!(b.wait_for_text("h1", "CARL", Duration::from_secs(5)).await);
    let carl = gw.admin.get("/api/v1/codes/carl").await.json();
    assert_eq!(carl["destination"], "https://shop.example/carl");
    assert_eq!(carl["channels"]["tiktok"]["utm_source"], "tiktok");
    assert_eq!(
        carl["commission"],
        json!({"currency": "USD", "signup_flat": 0, "purchase_bps": 1250})
    );
    both_widths(&b, "admin-code").await;

    // Edit it: disable through the form.
    b.goto(&format!("{base}/ui/codes/carl/edit")).await;
    both_widths(&b, "admin-edit-code").await;
    b.find("#enabled").await.click().await;
    b.find("form.form button[type=submit]").await.click().await;
    assert!(
        b.wait_for_text("h1", "Disabled", Duration::from_secs(5))
            .await
    );
    assert_eq!(
        gw.admin.get("/api/v1/codes/carl").await.json()["enabled"],
        false
    );

    // Keys: issue a creator key for carl (shown once), then revoke it.
    b.goto(&format!("{base}/ui/keys")).await;
    b.find("#creator").await.send_keys("carl").await;
    b.find("form[action='/ui/keys'] button").await.click().await;
    let shown = b.find("#new-key").await.prop("value").await;
    let shown = shown.as_str().unwrap().to_string();
    assert!(shown.starts_with("clc_"), "{shown}");
    both_widths(&b, "admin-keys").await;
    b.goto(&format!("{base}/ui/keys")).await;
    assert!(
        !b.page_source().await.contains(&shown),
        "a key is shown only once"
    );
    // Revoking asks first; accept the dialog by pre-answering it.
    b.execute(
        "window.confirm = function () { return true; }; return null;",
        vec![],
    )
    .await;
    b.find("form[action$='/revoke'] button").await.click().await;
    assert!(
        b.wait_for_text("table.data", "Revoked", Duration::from_secs(5))
            .await
    );
    let keys = gw.admin.get("/api/v1/keys").await.json();
    let revoked = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["creator"] == "carl")
        .unwrap()
        .clone();
    assert_eq!(revoked["revoked"], Value::Bool(true));

    // The funnel over every code (with ALICE20's follower in Instagram).
    b.goto(&format!("{base}/ui/funnel?by=device")).await;
    assert_eq!(b.find("[data-step='0']").await.text().await, "17");
    both_widths(&b, "admin-funnel").await;

    b.quit().await;
    gw.stop().await.unwrap();
}

/// The admin's review page: flagged conversions with their reasons and held
/// earnings; approving one from the page releases it (as the API would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reviews_flagged_conversions_in_a_browser() {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.fraud_signup_min_ms = 5_000;
    config.fraud_purchase_min_ms = 10_000;
    let gw = common::start_with(config, Some(tmp)).await;
    let base = format!("http://{}", gw.addr);
    let r = gw.admin.post_json("/api/v1/codes", &common::alice()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    for (i, ua) in [IPHONE, ANDROID_INSTAGRAM].into_iter().enumerate() {
        let token = redirect(&gw, "/alice10/yt", ua, &format!("198.51.100.{i}")).await;
        let r = gw
            .admin
            .post_json(
                "/api/v1/conversions",
                &json!({"event_id": format!("fast-{i}"), "type": "signup", "scan_id": token, "customer_id": format!("c-{i}")}),
            )
            .await;
        assert_eq!(
            r.json()["review"]["flags"],
            json!(["too_fast"]),
            "{}",
            r.text()
        );
    }

    let b = Browser::start(390, 844).await;
    sign_in(&b, &base, ADMIN_KEY).await;
    // The code's page shows what is held, apart from its earnings.
    b.goto(&format!("{base}/ui/codes/alice10")).await;
    assert!(
        b.wait_for_text("[data-live='held']", "EUR 4.00", Duration::from_secs(5))
            .await,
        "held earnings on the code page"
    );
    let held_rows = |page: &str| page.matches("badge wait\">Held for review<").count();
    assert_eq!(held_rows(&b.page_source().await), 2, "both rows held");
    both_widths(&b, "admin-code-held").await;
    b.goto(&format!("{base}/ui/reviews")).await;
    assert!(
        b.wait_for_text("table.data", "too_fast", Duration::from_secs(5))
            .await
    );
    let source = b.page_source().await;
    assert!(source.contains("fast-0") && source.contains("fast-1"));
    assert!(source.contains("EUR 2.00"), "held earnings shown");
    both_widths(&b, "admin-reviews").await;

    // Approve the newest (the first row).
    b.find("form[action='/ui/reviews'] button.primary")
        .await
        .click()
        .await;
    let approved = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        gw.admin.get("/api/v1/reviews/fast-1").await.json()["status"] == "approved"
    })
    .await;
    assert!(approved);
    let r = gw.admin.get("/api/v1/reviews/fast-1").await.json();
    assert!(r["decisions"][0]["by"]
        .as_str()
        .unwrap()
        .starts_with("admin:"));
    assert!(wait_for_url(&b, "/ui/reviews").await);
    assert!(!b.page_source().await.contains("fast-1"));
    b.goto(&format!("{base}/ui/reviews?status=approved")).await;
    assert!(b.page_source().await.contains("fast-1"));
    both_widths(&b, "admin-reviews-approved").await;
    // The code page: one row still held, the approved one earning.
    b.goto(&format!("{base}/ui/codes/alice10")).await;
    assert_eq!(held_rows(&b.page_source().await), 1);
    assert!(
        b.wait_for_text("[data-live='held']", "EUR 2.00", Duration::from_secs(5))
            .await
    );

    b.quit().await;
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sets_up_integrations_in_a_browser() {
    let (mut config, tmp) = common::config();
    config.webhook_allow_private = true;
    config.webhook_retry_base_ms = 50;
    config.webhook_disable_after_secs = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    let base = format!("http://{}", gw.addr);
    let r = gw.admin.post_json("/api/v1/codes", &common::alice()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // An endpoint where nothing listens: its deliveries fail until it is disabled.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/hooks/codelink")
    };
    let r = gw
        .admin
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": closed, "events": ["code.created", "code.disabled", "conversion.created"], "description": "Old shop backend"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let dead = r.json()["id"].as_str().unwrap().to_string();
    let r = gw
        .admin
        .post_json(
            "/api/v1/codes",
            &json!({"code": "BOB5", "destination": "https://shop.example/", "owner": "bob"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let path = format!("/api/v1/webhooks/{dead}");
    let disabled = codelink_testkit::wait_until(Duration::from_secs(15), || async {
        let v = gw.admin.get(&path).await.json();
        v["status"] == "disabled"
            && v["log"].as_array().unwrap().iter().any(|a| {
                a["note"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("endpoint disabled"))
            })
    })
    .await;
    assert!(disabled, "{:#}", gw.admin.get(&path).await.json());
    // A Stripe endpoint with its secret, a Shopify one still without.
    for body in [
        json!({"provider": "stripe", "name": "Main shop", "code": "ALICE10", "secret": "whsec_0123456789abcdef"}),
        json!({"provider": "shopify", "name": "EU store"}),
    ] {
        let r = gw.admin.post_json("/api/v1/integrations", &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }

    let b = Browser::start(390, 844).await;
    sign_in(&b, &base, ADMIN_KEY).await;
    b.find("nav a[href='/ui/integrations']").await.click().await;
    assert!(
        b.wait_for_text("h1", "Integrations", Duration::from_secs(5))
            .await
    );
    let source = b.page_source().await;
    assert!(source.contains("badge off\">Disabled"));
    assert!(source.contains(&format!("{base}/api/v1/integrations/stripe/")));
    assert!(source.contains(&format!("{base}/t.js?v=1")));
    both_widths(&b, "admin-integrations").await;

    // Add an endpoint through the form: the secret is shown once.
    b.set_window_size(390, 844).await;
    b.find("#wh-url")
        .await
        .send_keys("http://127.0.0.1:9/hooks/new")
        .await;
    b.find("input[name='events'][value='conversion.created']")
        .await
        .click()
        .await;
    b.find("input[name='events'][value='commission.confirmed']")
        .await
        .click()
        .await;
    b.find("#wh-desc").await.send_keys("Payouts service").await;
    b.find("form[action='/ui/integrations/webhooks'] button.primary")
        .await
        .click()
        .await;
    assert!(
        b.wait_for_text(
            ".issued h2",
            "Webhook endpoint added",
            Duration::from_secs(5)
        )
        .await
    );
    let secret = b.find("#new-secret").await.prop("value").await;
    assert!(secret.as_str().unwrap().starts_with("whsec_"), "{secret}");
    both_widths(&b, "admin-integrations-created").await;

    // The disabled endpoint's delivery log, with its failures.
    b.goto(&format!("{base}/ui/integrations/webhooks/{dead}"))
        .await;
    assert!(
        b.wait_for_text("table.log", "cannot connect", Duration::from_secs(5))
            .await
    );
    both_widths(&b, "admin-webhook-log").await;
    // Re-enable it.
    b.find("form[action$='/enable'] button").await.click().await;
    assert!(wait_for_url(&b, "done=enabled").await);
    assert!(b.page_source().await.contains("Re-enabled"));
    // Delete it (the confirmation accepted).
    b.execute(
        "window.confirm = function () { return true; }; return null;",
        vec![],
    )
    .await;
    b.find("form[action$='/delete'] button").await.click().await;
    assert!(wait_for_url(&b, "done=webhook-deleted").await);
    assert_eq!(gw.admin.get(&path).await.status, 404);
    both_widths(&b, "admin-integrations-deleted").await;

    // A creator: its own endpoints, no payment providers.
    let r = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": "alice"}),
        )
        .await;
    let key = r.json()["key"].as_str().unwrap().to_string();
    let r = gw
        .admin
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/alice", "events": ["conversion.created", "commission.confirmed"], "owner": "alice"}),
        )
        .await;
    assert_eq!(r.status, 201);
    b.delete_all_cookies().await;
    sign_in(&b, &base, &key).await;
    b.goto(&format!("{base}/ui/integrations")).await;
    let source = b.page_source().await;
    assert!(source.contains("127.0.0.1:9/alice"));
    assert!(!source.contains("127.0.0.1:9/hooks/new") && !source.contains("Payment providers"));
    both_widths(&b, "creator-integrations").await;

    b.quit().await;
    gw.stop().await.unwrap();
}

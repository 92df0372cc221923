//! The web console over plain HTTP: sign-in, cookies, CSRF, rate limits and
//! who sees what. (`ui_browser.rs` drives it in a real browser.)

mod common;

use common::console::{csrf_of, get, post, set_cookie, sign_in};
use common::{TestGateway, ADMIN_KEY};
use http::Method;
use serde_json::json;

async fn setup() -> TestGateway {
    let gw = common::start().await;
    for (code, owner) in [("ALICE10", "alice"), ("BOB5", "bob")] {
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": owner}))
            .await;
        assert_eq!(r.status, 201);
    }
    gw
}

async fn creator_key(gw: &TestGateway, creator: &str) -> (String, String) {
    let r = gw
        .admin
        .post_json(
            "/api/v1/keys",
            &json!({"kind": "creator", "creator": creator}),
        )
        .await;
    let v = r.json();
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_key_becomes_a_signed_session_cookie() {
    let gw = setup().await;
    let page = gw.anon.get("/ui/sign-in").await;
    let (pre, line) = set_cookie(&page, "cl_pre").unwrap();
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"));
    let pre = format!("cl_pre={pre}");
    let csrf = csrf_of(&page.text());
    for h in [
        "content-security-policy",
        "x-frame-options",
        "server-timing",
    ] {
        assert!(page.header(h).is_some(), "{h}");
    }
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // Without the form's token: refused, no session.
    let r = post(&gw.anon, "/ui/sign-in", &pre, &[("key", ADMIN_KEY)], None).await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, "cl_session").is_none());
    // A wrong key: 401, and the key typed is not sent back.
    let r = post(
        &gw.anon,
        "/ui/sign-in",
        &pre,
        &[("csrf", &csrf), ("key", "wrong-key-12345")],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("wrong-key-12345"));
    assert!(set_cookie(&r, "cl_session").is_none());
    // The right key: a session cookie, HttpOnly, SameSite=Strict, not Secure on http.
    let r = post(
        &gw.anon,
        "/ui/sign-in",
        &pre,
        &[("csrf", &csrf), ("key", ADMIN_KEY)],
        None,
    )
    .await;
    assert_eq!(r.status, 303);
    let (value, line) = set_cookie(&r, "cl_session").unwrap();
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Max-Age=")
    );
    assert!(!line.contains("Secure"));
    assert!(!line.contains(ADMIN_KEY) && !r.text().contains(ADMIN_KEY));
    let cookie = format!("cl_session={value}");
    let page = get(&gw.anon, "/ui/codes", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("ALICE10") && !page.text().contains(ADMIN_KEY));

    // A cookie changed by hand is not a session.
    let mut forged = value.into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = format!("cl_session={}", String::from_utf8(forged).unwrap());
    let r = get(&gw.anon, "/ui/codes", &forged).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/sign-in"))
    );

    // Signing out needs the token too, and clears the cookie.
    let html = page.text();
    let r = post(&gw.anon, "/ui/sign-out", &cookie, &[], None).await;
    assert_eq!(r.status, 403);
    let r = post(
        &gw.anon,
        "/ui/sign-out",
        &cookie,
        &[("csrf", &csrf_of(&html))],
        None,
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(set_cookie(&r, "cl_session")
        .unwrap()
        .1
        .contains("Max-Age=0"));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let (mut config, tmp) = common::config();
    config.public_url = Some("https://go.example".into());
    let gw = common::start_with(config, Some(tmp)).await;
    let page = gw.anon.get("/ui/sign-in").await;
    assert!(set_cookie(&page, "cl_pre").unwrap().1.contains("; Secure"));
    let pre = format!("cl_pre={}", set_cookie(&page, "cl_pre").unwrap().0);
    let r = post(
        &gw.anon,
        "/ui/sign-in",
        &pre,
        &[("csrf", &csrf_of(&page.text())), ("key", ADMIN_KEY)],
        None,
    )
    .await;
    assert!(set_cookie(&r, "cl_session").unwrap().1.contains("; Secure"));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn forms_need_the_token_and_this_origin() {
    let gw = setup().await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let csrf = csrf_of(&get(&gw.anon, "/ui/codes/new", &cookie).await.text());
    let fields = |token: &'static str| {
        vec![
            ("csrf", token),
            ("code", "CARL"),
            ("destination", "https://shop.example/carl"),
            ("owner", "carl"),
            ("enabled", "on"),
        ]
    };
    // No token, a wrong token, or another site's form: refused, nothing created.
    let r = post(&gw.anon, "/ui/codes", &cookie, &fields("")[1..], None).await;
    assert_eq!(r.status, 403);
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &fields("not-the-token"),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let token: &'static str = Box::leak(csrf.into_boxed_str());
    let host = format!("http://{}", gw.addr);
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &fields(token),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(gw.admin.get("/api/v1/codes/carl").await.status, 404);
    // The real thing.
    let r = post(&gw.anon, "/ui/codes", &cookie, &fields(token), Some(&host)).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/codes/carl"))
    );
    assert_eq!(
        gw.admin.get("/api/v1/codes/carl").await.json()["owner"],
        "carl"
    );
    // Invalid input: 422 with the API's message next to the field, the rest kept.
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &[
            ("csrf", token),
            ("code", "CARL"),
            ("destination", "https://shop.example/"),
            ("owner", "carl"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains("id=\"code-error\""), "{}", r.text());
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &[
            ("csrf", token),
            ("code", "DORA"),
            ("destination", "https://shop.example/"),
            ("owner", "dora!"),
            ("percent", "ten"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains("id=\"commission-error\""), "{html}");
    assert!(html.contains("value=\"dora!\""));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let gw = setup().await;
    let mut limited = None;
    for i in 0..15 {
        let r = post(&gw.anon, "/ui/sign-in", "", &[("key", "guess")], None).await;
        if r.status == 429 {
            limited = Some((i, r.header("retry-after").map(str::to_string)));
            break;
        }
    }
    let (at, retry) = limited.expect("no 429 after 15 attempts");
    assert_eq!(at, 10, "10 attempts a minute are allowed");
    assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_creator_sees_only_their_codes() {
    let gw = setup().await;
    let (key, id) = creator_key(&gw, "alice").await;
    let cookie = sign_in(&gw, &key).await;
    let page = get(&gw.anon, "/ui/codes", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("ALICE10") && !page.text().contains("BOB5"));
    assert!(!page.text().contains(&key));
    for path in [
        "/ui/codes/bob5",
        "/ui/codes/BOB5",
        "/ui/codes/bob5/live",
        "/ui/codes/bob5/edit",
        "/ui/export?report=summary&code=bob5",
        "/ui/codes/nosuch",
        "/ui/keys",
        "/ui/codes/new",
    ] {
        assert_eq!(get(&gw.anon, path, &cookie).await.status, 404, "{path}");
    }
    assert_eq!(
        get(&gw.anon, "/ui/codes/alice10", &cookie).await.status,
        200
    );
    let csv = get(&gw.anon, "/ui/export?report=codes", &cookie).await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    // No scans yet: the header only, and never bob's code.
    assert!(!csv.text().contains("bob5"));
    // A creator cannot post the admin's forms.
    let csrf = csrf_of(&page.text());
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &[
            ("csrf", &csrf),
            ("code", "X1"),
            ("destination", "https://a.example/"),
            ("owner", "alice"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(gw.admin.get("/api/v1/codes/x1").await.status, 404);

    // Revoking the key ends the session at once.
    assert_eq!(
        gw.admin.delete(&format!("/api/v1/keys/{id}")).await.status,
        200
    );
    let r = get(&gw.anon, "/ui/codes", &cookie).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/sign-in"))
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn ingest_keys_do_not_sign_in() {
    let gw = setup().await;
    let key = gw
        .admin
        .post_json("/api/v1/keys", &json!({"kind": "ingest"}))
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let page = gw.anon.get("/ui/sign-in").await;
    let pre = format!("cl_pre={}", set_cookie(&page, "cl_pre").unwrap().0);
    let r = post(
        &gw.anon,
        "/ui/sign-in",
        &pre,
        &[("csrf", &csrf_of(&page.text())), ("key", &key)],
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("ingest key"));
    assert!(set_cookie(&r, "cl_session").is_none());
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn csv_exports_match_the_api() {
    let gw = setup().await;
    for i in 0..3 {
        let r = gw
            .anon
            .send(
                Method::GET,
                "/alice10",
                &codelink_testkit::http::browser(
                    &format!("Mozilla/5.0 (iPhone) Safari/60{i}"),
                    &[],
                ),
                Default::default(),
            )
            .await;
        assert_eq!(r.status, 302);
    }
    let ok = codelink_testkit::wait_until(std::time::Duration::from_secs(10), || async {
        gw.admin
            .get("/api/v1/analytics/summary?code=alice10")
            .await
            .json()["summary"]["human_scans"]
            == 3
    })
    .await;
    assert!(ok);
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    // One UTC day, asked of both.
    let today = time::OffsetDateTime::now_utc().date();
    let tomorrow = today.next_day().unwrap();
    let ui = get(
        &gw.anon,
        &format!("/ui/export?report=breakdown&by=device&code=alice10&range=custom&from={today}&to={today}&tz=UTC"),
        &cookie,
    )
    .await;
    let api = gw
        .admin
        .get(&format!(
            "/api/v1/analytics/breakdown?by=device&code=alice10&from={today}T00:00:00Z&to={tomorrow}T00:00:00Z&format=csv"
        ))
        .await;
    assert_eq!(ui.status, 200);
    assert!(ui
        .header("content-disposition")
        .unwrap()
        .contains("codelink-breakdown-alice10.csv"));
    assert_eq!(ui.text(), api.text());
    assert!(ui.text().contains("mobile,3,"), "{}", ui.text());
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let gw = setup().await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let page = get(&gw.anon, "/ui/codes", &cookie).await;
    assert_eq!(page.status, 200);
    let r = post(
        &gw.anon,
        "/ui/sign-out",
        &cookie,
        &[("csrf", &csrf_of(&page.text()))],
        None,
    )
    .await;
    assert_eq!(r.status, 303);
    // A copy of the cookie kept from before no longer works.
    let r = get(&gw.anon, "/ui/codes", &cookie).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/sign-in"))
    );
    // Signing out is a form; a link cannot do it.
    let r = gw.anon.get("/ui/sign-out").await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("POST")));
    // Signing in again gives a new, working session.
    let again = sign_in(&gw, ADMIN_KEY).await;
    assert_ne!(again, cookie);
    assert_eq!(get(&gw.anon, "/ui/codes", &again).await.status, 200);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn forms_from_the_public_url_pass_behind_a_proxy() {
    let (mut config, tmp) = common::config();
    config.public_url = Some("https://links.example".into());
    let gw = common::start_with(config, Some(tmp)).await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let csrf = csrf_of(&get(&gw.anon, "/ui/codes/new", &cookie).await.text());
    let form = [
        ("csrf", csrf.as_str()),
        ("code", "PROXY1"),
        ("destination", "https://shop.example/"),
        ("owner", "pat"),
    ];
    // The proxy sent its upstream address as Host; the browser's Origin is the public URL.
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &form,
        Some("https://links.example"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = post(
        &gw.anon,
        "/ui/codes",
        &cookie,
        &form,
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("--public-url"));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn console_pages_are_rate_limited_per_address() {
    let (mut config, tmp) = common::config();
    config.ui_pages_per_second = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let mut responses = Vec::new();
    for _ in 0..8 {
        responses.push(get(&gw.anon, "/ui/codes", &cookie).await);
    }
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    // One page a second, with a burst of four.
    assert_eq!(&statuses[..4], &[200, 200, 200, 200], "{statuses:?}");
    let limited = responses
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert!(limited.header("retry-after").is_some());
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn charts_count_in_zones_that_skip_midnight() {
    let gw = setup().await;
    for i in 0..3 {
        let ua = format!("Mozilla/5.0 (iPhone) Safari/60{i}");
        let r = gw
            .anon
            .send(
                Method::GET,
                "/alice10",
                &codelink_testkit::http::browser(&ua, &[]),
                Default::default(),
            )
            .await;
        assert_eq!(r.status, 302);
    }
    let ok = codelink_testkit::wait_until(std::time::Duration::from_secs(10), || async {
        gw.admin
            .get("/api/v1/analytics/summary?code=alice10")
            .await
            .json()["summary"]["human_scans"]
            == 3
    })
    .await;
    assert!(ok);
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    // 90 days back cross a September midnight Chile skips (clocks go 00:00 → 01:00),
    // after which each day still starts at midnight.
    for tz in ["America/Santiago", "Asia/Kathmandu", "UTC"] {
        let html = get(
            &gw.anon,
            &format!("/ui/codes/alice10?range=90d&tz={tz}"),
            &cookie,
        )
        .await
        .text();
        assert!(
            html.contains("3 human scans and 0 bot or suspect hits over"),
            "{tz}: the chart lost the scans"
        );
    }
    gw.stop().await.unwrap();
}

/// A gateway whose webhook endpoints may be on 127.0.0.1, retried from
/// 50 ms and disabled after failing for 1 s.
async fn integrations_gateway() -> TestGateway {
    let (mut config, tmp) = common::config();
    config.webhook_allow_private = true;
    config.webhook_retry_base_ms = 50;
    config.webhook_timeout_ms = 2_000;
    config.webhook_disable_after_secs = 1;
    let gw = common::start_with(config, Some(tmp)).await;
    for (code, owner) in [("ALICE10", "alice"), ("BOB5", "bob")] {
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": owner}))
            .await;
        assert_eq!(r.status, 201);
    }
    gw
}

fn pairs(f: &[(String, String)]) -> Vec<(&str, &str)> {
    f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// An http URL on 127.0.0.1 where nothing listens (connections refused).
async fn closed_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/hook")
}

#[tokio::test]
async fn webhook_endpoints_are_added_shown_once_listed_and_deleted_through_the_console() {
    let gw = integrations_gateway().await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let host = format!("http://{}", gw.addr);
    let page = get(&gw.anon, "/ui/integrations", &cookie).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("href=\"/ui/integrations\" aria-current=\"page\">Integrations"));
    // The tag snippet names this server's public URL.
    assert!(
        html.contains(&format!(
            "&lt;script src=&quot;{host}/t.js?v=1&quot; defer data-days=&quot;30&quot; data-attach=&quot;form.checkout&quot;&gt;&lt;/script&gt;"
        )),
        "{html}"
    );
    assert!(html.contains("codelink import codes.csv --dry-run"));
    let csrf = csrf_of(&html);
    let url = closed_url().await;
    let fields = |token: &str| {
        vec![
            ("csrf".to_string(), token.to_string()),
            ("url".into(), url.clone()),
            ("events".into(), "code.created".into()),
            ("events".into(), "conversion.created".into()),
            ("description".into(), "Shop backend".into()),
        ]
    };
    // CSRF: without the token, with a wrong one, or from another site: nothing made.
    let f = fields("");
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &pairs(&f[1..]),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let f = fields("not-the-token");
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &pairs(&f),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let f = fields(&csrf);
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &pairs(&f),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(r.status, 403);
    let list = gw.admin.get("/api/v1/webhooks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list:#}");

    // Refused input: 422, the API's message next to the field, the rest kept.
    let bad = vec![
        ("csrf", csrf.as_str()),
        ("url", "ftp://shop.example/hook"),
        ("events", "code.created"),
    ];
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &bad,
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains("id=\"wh-url-error\""), "{html}");
    assert!(html.contains("value=\"ftp://shop.example/hook\""));
    assert!(html.contains("value=\"code.created\" checked"));
    let none = vec![("csrf", csrf.as_str()), ("url", url.as_str())];
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &none,
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("id=\"wh-events-error\""));
    let milestone = vec![
        ("csrf", csrf.as_str()),
        ("url", url.as_str()),
        ("events", "scan.milestone"),
        ("milestone_every", "often"),
    ];
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &milestone,
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("id=\"wh-milestone_every-error\""));
    assert_eq!(
        gw.admin.get("/api/v1/webhooks").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Added: the secret is on the answer, once.
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &pairs(&f),
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let html = r.text();
    let at = html.find("value=\"whsec_").expect("the secret is shown") + 7;
    let secret = html[at..].split('"').next().unwrap().to_string();
    assert!(html.contains("shown only once"));
    let list = gw.admin.get("/api/v1/webhooks").await.json();
    let item = &list["items"][0];
    assert_eq!(item["url"], url.as_str());
    assert_eq!(
        item["events"],
        json!(["code.created", "conversion.created"])
    );
    assert_eq!(item["description"], "Shop backend");
    assert_eq!(item["owner"], serde_json::Value::Null);
    let id = item["id"].as_str().unwrap().to_string();
    // Listed, with its details page; the secret is on neither.
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(html.contains(&format!("href=\"/ui/integrations/webhooks/{id}\"")));
    assert!(html.contains(&url) && !html.contains(&secret));
    let details = get(
        &gw.anon,
        &format!("/ui/integrations/webhooks/{id}"),
        &cookie,
    )
    .await;
    assert_eq!(details.status, 200);
    assert!(details.text().contains("Delivery log") && !details.text().contains(&secret));
    assert_eq!(
        get(&gw.anon, "/ui/integrations/webhooks/we_nothere", &cookie)
            .await
            .status,
        404
    );

    // Deleted (the token again), with a flash.
    let delete = format!("/ui/integrations/webhooks/{id}/delete");
    let r = post(&gw.anon, &delete, &cookie, &[], None).await;
    assert_eq!(r.status, 403);
    let r = post(&gw.anon, &delete, &cookie, &[("csrf", &csrf)], Some(&host)).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/integrations?done=webhook-deleted"))
    );
    let list = gw.admin.get("/api/v1/webhooks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let html = get(&gw.anon, "/ui/integrations?done=webhook-deleted", &cookie)
        .await
        .text();
    assert!(html.contains("Webhook endpoint deleted"));
    let r = post(&gw.anon, &delete, &cookie, &[("csrf", &csrf)], Some(&host)).await;
    assert_eq!(r.status, 404);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_creator_sees_and_changes_only_its_own_webhooks_and_no_providers() {
    let gw = integrations_gateway().await;
    let url = closed_url().await;
    let r = gw
        .admin
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": url, "events": ["code.created"], "owner": "bob", "description": "bob's"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let bobs = r.json()["id"].as_str().unwrap().to_string();
    let (key, _) = creator_key(&gw, "alice").await;
    let cookie = sign_in(&gw, &key).await;
    let host = format!("http://{}", gw.addr);
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(html.contains(">Integrations</a>"));
    assert!(!html.contains(&bobs) && !html.contains("bob&#39;s"));
    assert!(!html.contains("Payment providers"));
    assert!(
        !html.contains("id=\"wh-owner\""),
        "no owner field for a creator"
    );
    let csrf = csrf_of(&html);
    // Another's endpoint: 404 to read, delete or re-enable.
    for path in [format!("/ui/integrations/webhooks/{bobs}")] {
        assert_eq!(get(&gw.anon, &path, &cookie).await.status, 404);
    }
    for action in ["delete", "enable"] {
        let r = post(
            &gw.anon,
            &format!("/ui/integrations/webhooks/{bobs}/{action}"),
            &cookie,
            &[("csrf", &csrf)],
            Some(&host),
        )
        .await;
        assert_eq!(r.status, 404, "{action}");
    }
    assert_eq!(
        gw.admin
            .get(&format!("/api/v1/webhooks/{bobs}"))
            .await
            .status,
        200
    );
    // An owner typed in by hand is ignored: the endpoint is alice's.
    let r = post(
        &gw.anon,
        "/ui/integrations/webhooks",
        &cookie,
        &[
            ("csrf", &csrf),
            ("url", &url),
            ("events", "code.disabled"),
            ("owner", "bob"),
        ],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = gw.admin.get("/api/v1/webhooks").await.json();
    let mine: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["owner"] == "alice")
        .collect();
    assert_eq!(mine.len(), 1, "{list:#}");
    let id = mine[0]["id"].as_str().unwrap();
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(html.contains(id) && !html.contains(&bobs));
    // Provider forms are the admin's.
    let r = post(
        &gw.anon,
        "/ui/integrations/providers",
        &cookie,
        &[("csrf", &csrf), ("provider", "stripe")],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 404);
    let all = gw.admin.get("/api/v1/integrations").await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn payment_provider_endpoints_are_added_given_a_secret_and_deleted_through_the_console() {
    let gw = integrations_gateway().await;
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let host = format!("http://{}", gw.addr);
    let csrf = csrf_of(&get(&gw.anon, "/ui/integrations", &cookie).await.text());
    let add = |code: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("provider", "stripe".to_string()),
            ("name", "Main shop".to_string()),
            ("code", code.to_string()),
        ]
    };
    let form = add("NOSUCH");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(
        &gw.anon,
        "/ui/integrations/providers",
        &cookie,
        &pairs,
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("no code &#39;nosuch&#39;") || r.text().contains("no code"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("value=\"Main shop\""));
    let form = add("ALICE10");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post(
        &gw.anon,
        "/ui/integrations/providers",
        &cookie,
        &pairs,
        Some(&host),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (303, Some("/ui/integrations?done=provider-added"))
    );
    let all = gw.admin.get("/api/v1/integrations").await.json();
    let item = &all["items"][0];
    assert_eq!(item["secret_set"], false);
    assert_eq!(item["code"], "alice10");
    let id = item["id"].as_str().unwrap().to_string();
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(
        html.contains(&format!("value=\"{host}/api/v1/integrations/stripe/{id}\"")),
        "{html}"
    );
    assert!(html.contains("No secret yet"));
    // Not a Stripe endpoint secret: refused, next to that endpoint.
    let secret_path = format!("/ui/integrations/providers/{id}/secret");
    let r = post(
        &gw.anon,
        &secret_path,
        &cookie,
        &[("csrf", &csrf), ("secret", "sk_live_0123456789abcdef")],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("whsec_"));
    assert!(!r.text().contains("sk_live_0123456789abcdef"));
    let r = post(
        &gw.anon,
        &secret_path,
        &cookie,
        &[("secret", "whsec_0123456789abcdef")],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &gw.anon,
        &secret_path,
        &cookie,
        &[("csrf", &csrf), ("secret", "whsec_0123456789abcdef")],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 303);
    let item = gw
        .admin
        .get(&format!("/api/v1/integrations/{id}"))
        .await
        .json();
    assert_eq!(item["secret_set"], true);
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(html.contains("Secret set") && html.contains("Roll secret"));
    assert!(!html.contains("whsec_0123456789abcdef"));
    // Deleted.
    let r = post(
        &gw.anon,
        &format!("/ui/integrations/providers/{id}/delete"),
        &cookie,
        &[("csrf", &csrf)],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        gw.admin
            .get(&format!("/api/v1/integrations/{id}"))
            .await
            .status,
        404
    );
    let r = post(
        &gw.anon,
        &format!("/ui/integrations/providers/{id}/delete"),
        &cookie,
        &[("csrf", &csrf)],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 404);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_disabled_endpoint_shows_why_and_its_failed_deliveries_and_is_re_enabled() {
    let gw = integrations_gateway().await;
    let url = closed_url().await;
    let r = gw
        .admin
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": url, "events": ["code.created"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        gw.create(json!({"code": "CARL", "destination": "https://shop.example/", "owner": "carl"}))
            .await
            .status,
        201
    );
    let path = format!("/api/v1/webhooks/{id}");
    let disabled = codelink_testkit::wait_until(std::time::Duration::from_secs(15), || async {
        gw.admin.get(&path).await.json()["status"] == "disabled"
    })
    .await;
    assert!(disabled, "{:#}", gw.admin.get(&path).await.json());
    // The note is written to the log just after the health.
    let noted = codelink_testkit::wait_until(std::time::Duration::from_secs(5), || async {
        gw.admin.get(&path).await.json()["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["note"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("endpoint disabled"))
            })
    })
    .await;
    assert!(noted, "{:#}", gw.admin.get(&path).await.json());
    let cookie = sign_in(&gw, ADMIN_KEY).await;
    let host = format!("http://{}", gw.addr);
    let html = get(&gw.anon, "/ui/integrations", &cookie).await.text();
    assert!(html.contains("badge off\">Disabled"), "{html}");
    let details = get(
        &gw.anon,
        &format!("/ui/integrations/webhooks/{id}"),
        &cookie,
    )
    .await;
    let html = details.text();
    assert!(html.contains("failed for"), "the reason: {html}");
    assert!(html.contains("<code>code.created</code>"));
    assert!(
        html.contains("badge off\">Error"),
        "a failed attempt: {html}"
    );
    assert!(
        html.contains("endpoint disabled"),
        "the log says so: {html}"
    );
    let csrf = csrf_of(&html);
    let r = post(
        &gw.anon,
        &format!("/ui/integrations/webhooks/{id}/enable"),
        &cookie,
        &[("csrf", &csrf)],
        Some(&host),
    )
    .await;
    assert_eq!(r.status, 303);
    let back = r.header("location").unwrap().to_string();
    assert_eq!(back, format!("/ui/integrations/webhooks/{id}?done=enabled"));
    // Re-enabled (it fails again later: nothing listens).
    let html = get(&gw.anon, &back, &cookie).await.text();
    assert!(html.contains("Re-enabled"));
    gw.stop().await.unwrap();
}

//! The creator bio page `/@{owner}`: exactly the owner's enabled, unexpired
//! codes in the profile's order; every link on it, followed, is a scan with
//! source `bio`; the profile API (validation, creator keys); a profile written
//! on one gateway served by another sharing Redis; and the page in a real
//! browser, screenshots at phone and desktop width in
//! `target/ui-screenshots/bio-*.png`.

mod common;

use codelink_testkit::browser::Browser;
use codelink_testkit::http::{Client, Response};
use codelink_testkit::RedisServer;
use common::TestGateway;
use http::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

async fn gateway() -> TestGateway {
    let (mut config, tmp) = common::config();
    config.client_ip_header = Some("x-forwarded-for".into());
    config.flush_ms = 50;
    common::start_with(config, Some(tmp)).await
}

fn rfc3339_in(secs: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The codes a page shows, in order (each code's card has its name as id).
fn listed(html: &str) -> Vec<String> {
    html.split("<section class=\"card\" id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// Every link on a page (`href` of `<a>`), in order.
fn links(html: &str) -> Vec<String> {
    html.split("<a ")
        .skip(1)
        .filter_map(|a| a.split("href=\"").nth(1))
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// A tap as a phone's browser sends it, from its own address.
async fn tap(client: &Client, path: &str, ip: &str) -> Response {
    let headers = codelink_testkit::http::browser(IPHONE, &[("x-forwarded-for", ip)]);
    client
        .send(Method::GET, path, &headers, Default::default())
        .await
}

async fn create(gw: &TestGateway, body: Value) {
    let r = gw.create(body).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn alice_and_bob(gw: &TestGateway) {
    // alice10: three channels (common::alice).
    create(gw, common::alice()).await;
    create(
        gw,
        json!({"code": "alice20", "destination": "https://www.other.example/", "owner": "alice"}),
    )
    .await;
    create(
        gw,
        json!({"code": "alice-zz", "destination": "https://shop.example/", "owner": "alice"}),
    )
    .await;
    create(
        gw,
        json!({"code": "alice-off", "destination": "https://shop.example/", "owner": "alice",
               "enabled": false}),
    )
    .await;
    create(
        gw,
        json!({"code": "bob5", "destination": "https://shop.example/", "owner": "bob"}),
    )
    .await;
}

#[tokio::test]
async fn page_lists_exactly_the_active_codes_in_order_and_its_taps_are_bio_scans() {
    let gw = gateway().await;
    alice_and_bob(&gw).await;
    // Expires in 3 s: listed now, gone after.
    create(
        &gw,
        json!({"code": "alice-soon", "destination": "https://shop.example/", "owner": "alice",
               "expires_at": rfc3339_in(3)}),
    )
    .await;

    // Without a profile: the owner's active codes by name.
    let r = gw.anon.get("/@alice").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        listed(&r.text()),
        ["alice-soon", "alice-zz", "alice10", "alice20"]
    );

    let profile = json!({"title": "Alice <Cooks>", "avatar_url": "https://cdn.example/alice.png",
                         "order": ["ALICE20", "alice10", "bob5", "nosuchcode"]});
    let r = gw
        .admin
        .send_json(Method::PUT, "/api/v1/owners/alice/profile", &profile)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["order"],
        json!(["alice20", "alice10", "bob5", "nosuchcode"])
    );
    assert!(r.json()["links"]["page"]
        .as_str()
        .unwrap()
        .ends_with("/@alice"));

    let r = gw.anon.get("/@alice").await;
    assert_eq!(r.status, 200);
    let html = r.text();
    // The profile's order first (another owner's code and unknown names
    // skipped), then the rest by name; not disabled, not another owner's.
    assert_eq!(
        listed(&html),
        ["alice20", "alice10", "alice-soon", "alice-zz"]
    );
    assert!(!html.contains("bob5") && !html.contains("alice-off"));
    // Title escaped, avatar, the code in capitals, destination hosts.
    assert!(html.contains("<h1>Alice &lt;Cooks&gt;</h1>"), "{html}");
    assert!(html.contains("src=\"https://cdn.example/alice.png\""));
    assert!(html.contains("<span class=\"text\">ALICE10</span>"));
    assert!(html.contains(">Open other.example</a>"));
    // Works without JavaScript: the copy button shows only once the script runs.
    assert!(html.contains("data-copy=\"ALICE10\" aria-live=\"polite\" hidden>Copy</button>"));
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert!(html.contains("<img src=\"/qr/alice10.svg\""));
    println!("bio page: {} bytes", html.len());
    assert!(html.len() < 10_000, "{} bytes", html.len());

    // Headers: revalidated, tagged, locked down, the avatar's origin allowed.
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("style-src 'self'")
            && csp.contains("img-src 'self' https://cdn.example;")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = gw
        .anon
        .send(
            Method::GET,
            "/@alice",
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 304);
    let r = gw
        .anon
        .send(Method::HEAD, "/@alice", &[], Default::default())
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("etag")),
        (200, Some(etag.as_str()))
    );
    assert!(r.body.is_empty());
    assert_eq!(
        gw.anon
            .send(Method::POST, "/@alice", &[], Default::default())
            .await
            .status,
        405
    );

    // The page's style and script are served here, cached for good.
    for asset in ["/@/bio.css", "/@/bio.js"] {
        let path = html
            .split(&format!("\"{asset}?v="))
            .nth(1)
            .map(|v| format!("{asset}?v={}", v.split('"').next().unwrap()))
            .unwrap_or_else(|| panic!("{asset} linked"));
        let r = gw.anon.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("cache-control").unwrap().contains("immutable"));
        println!("{asset}: {} bytes", r.body.len());
    }

    // Every link on the page, followed, is a scan of source `bio`.
    let links = links(&html);
    assert_eq!(links.len(), 4 + 3, "{links:?}"); // a link per code, alice10's channels
    assert!(links.iter().all(|l| l.ends_with("?src=bio")), "{links:?}");
    assert!(links.contains(&"/alice10/yt-video42?src=bio".to_string()));
    for (i, link) in links.iter().enumerate() {
        let r = tap(&gw.anon, link, &format!("10.9.0.{i}")).await;
        assert_eq!(r.status, 302, "{link}");
    }
    // alice10: its bare link and 3 channels.
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        gw.admin.get("/api/v1/codes/alice10/scans").await.json()["items"]
            .as_array()
            .is_some_and(|a| a.len() == 4)
    })
    .await;
    assert!(ok, "alice10's four scans recorded");
    let scans = gw.admin.get("/api/v1/codes/alice10/scans").await.json();
    for s in scans["items"].as_array().unwrap() {
        assert_eq!(s["source"], "bio", "{s}");
        assert_eq!(s["verdict"], "human", "{s}");
    }
    let mut channels: Vec<&str> = scans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["channel"].as_str().unwrap_or(""))
        .collect();
    channels.sort_unstable();
    assert_eq!(channels, ["", "bio", "yt", "yt-video42"]);
    // The live counters: bio taps are link taps, and counted as bio.
    let stats = gw.admin.get("/api/v1/codes/alice10/stats").await.json();
    assert_eq!(
        (&stats["link"], &stats["bio"], &stats["qr"]),
        (&json!(4), &json!(4), &json!(0))
    );
    // The source breakdown over all of alice's codes has them as `bio`;
    // a plain tap and a QR scan are told apart from them.
    assert_eq!(tap(&gw.anon, "/alice10", "10.9.1.1").await.status, 302);
    assert_eq!(tap(&gw.anon, "/alice10?qr=1", "10.9.1.2").await.status, 302);
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let b = gw
            .admin
            .get("/api/v1/analytics/breakdown?by=source")
            .await
            .json();
        let n = |k: &str| {
            b["rows"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["key"] == k))
                .map(|r| r["human_scans"].clone())
        };
        n("bio") == Some(json!(7)) && n("link") == Some(json!(1)) && n("qr") == Some(json!(1))
    })
    .await;
    assert!(
        ok,
        "breakdown by source: {}",
        gw.admin
            .get("/api/v1/analytics/breakdown?by=source")
            .await
            .text()
    );

    // The console's code page names the source.
    let cookie = common::console::sign_in(&gw, common::ADMIN_KEY).await;
    let page = common::console::get(&gw.anon, "/ui/codes/alice10", &cookie).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Bio page"), "{}", page.text());

    // An expired code leaves the page without a write.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = gw.anon.get("/@alice").await;
    assert_eq!(listed(&r.text()), ["alice20", "alice10", "alice-zz"]);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // A disabled one too, at once.
    assert_eq!(gw.admin.delete("/api/v1/codes/alice20").await.status, 200);
    assert_eq!(
        listed(&gw.anon.get("/@alice").await.text()),
        ["alice10", "alice-zz"]
    );

    // Friendly 404s: a creator with no active code, an unknown one, a bad handle.
    assert_eq!(gw.admin.delete("/api/v1/codes/bob5").await.status, 200);
    for (path, says) in [
        ("/@bob", "@bob</b> has no active codes"),
        ("/@nobody", "@nobody</b> has no active codes"),
        ("/@bad%20handle", "no creator page at this address"),
        ("/@", "no creator page at this address"),
    ] {
        let r = gw.anon.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains(says), "{path}: {}", r.text());
        assert!(r.header("content-security-policy").is_some());
    }
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn profile_api_validates_and_creator_keys_reach_their_own_only() {
    let mut gw = gateway().await;
    alice_and_bob(&gw).await;
    let path = "/api/v1/owners/alice/profile";
    let put = |client: &Client, path: &str, body: Value| {
        let client = client.clone();
        let path = path.to_string();
        async move { client.send_json(Method::PUT, &path, &body).await }
    };

    // Validation: 422 naming the field.
    for (body, field) in [
        (
            json!({"avatar_url": "http://cdn.example/a.png"}),
            "avatar_url",
        ),
        (json!({"avatar_url": "javascript:alert(1)"}), "avatar_url"),
        (
            json!({"avatar_url": "https://user:pw@cdn.example/a.png"}),
            "avatar_url",
        ),
        (json!({"title": "x".repeat(81)}), "title"),
        (json!({"title": "two\nlines"}), "title"),
        (json!({"order": ["alice10", "ALICE10"]}), "order"),
        (json!({"order": ["not a code"]}), "order"),
    ] {
        let r = put(&gw.admin, path, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{}",
            r.text()
        );
    }
    let r = put(&gw.admin, path, json!({"colour": "red"})).await;
    assert_eq!(r.status, 422, "unknown field: {}", r.text());
    // Nothing was stored by those.
    assert_eq!(gw.admin.get(path).await.status, 404);
    let r = put(&gw.admin, path, json!({"title": "x".repeat(80)})).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A creator key: its own owner's profile, read and write; another's is 404.
    let key = gw.key(json!({"kind": "creator", "creator": "alice"})).await;
    let alice = Client::new(gw.addr).with_bearer(&key);
    let r = put(
        &alice,
        path,
        json!({"title": "Alice", "order": ["alice20"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(alice.get(path).await.json()["title"], "Alice");
    assert!(gw
        .anon
        .get("/@alice")
        .await
        .text()
        .contains("<h1>Alice</h1>"));
    assert_eq!(
        put(
            &gw.admin,
            "/api/v1/owners/bob/profile",
            json!({"title": "Bob"})
        )
        .await
        .status,
        200
    );
    for r in [
        alice.get("/api/v1/owners/bob/profile").await,
        put(
            &alice,
            "/api/v1/owners/bob/profile",
            json!({"title": "Bob"}),
        )
        .await,
        alice.delete("/api/v1/owners/bob/profile").await,
        alice.get("/api/v1/owners/nobody/profile").await,
    ] {
        assert_eq!(r.status, 404, "{}", r.text());
    }
    assert_eq!(
        gw.admin.get("/api/v1/owners/bob/profile").await.json()["title"],
        "Bob"
    );
    let ingest = gw.key(json!({"kind": "ingest"})).await;
    let ingest = Client::new(gw.addr).with_bearer(&ingest);
    assert_eq!(ingest.get(path).await.status, 403);
    assert_eq!(gw.anon.get(path).await.status, 401);
    assert_eq!(
        gw.admin
            .send(Method::POST, path, &[], Default::default())
            .await
            .status,
        405
    );

    // Kept across a restart (embedded store).
    let tmp = gw.take_tmp();
    let (mut config, _unused) = common::config();
    config.data_dir = gw.data_dir.clone();
    gw.stop().await.unwrap();
    let gw = common::start_with(config, tmp).await;
    assert_eq!(gw.admin.get(path).await.json()["order"], json!(["alice20"]));
    assert!(gw
        .anon
        .get("/@alice")
        .await
        .text()
        .contains("<h1>Alice</h1>"));

    // Deleted: the page shows the handle again.
    assert_eq!(gw.admin.delete(path).await.status, 204);
    assert_eq!(gw.admin.get(path).await.status, 404);
    assert_eq!(gw.admin.delete(path).await.status, 404);
    assert!(gw
        .anon
        .get("/@alice")
        .await
        .text()
        .contains("<h1>alice</h1>"));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_profile_written_on_one_gateway_is_served_by_another_sharing_redis() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let instance = || async {
        let (mut config, tmp) = common::config();
        config.redis_url = Some(url.clone());
        config.redis_prefix = "bio".into();
        common::start_with(config, Some(tmp)).await
    };
    let a = instance().await;
    let b = instance().await;
    create(&a, common::alice()).await;
    create(
        &a,
        json!({"code": "alice20", "destination": "https://shop.example/", "owner": "alice"}),
    )
    .await;
    let profile = json!({"title": "Alice on B", "order": ["alice20", "alice10"]});
    let r = a
        .admin
        .send_json(Method::PUT, "/api/v1/owners/alice/profile", &profile)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        let html = b.anon.get("/@alice").await.text();
        html.contains("<h1>Alice on B</h1>") && listed(&html) == ["alice20", "alice10"]
    })
    .await;
    assert!(
        ok,
        "B serves A's profile: {}",
        b.anon.get("/@alice").await.text()
    );
    assert_eq!(
        b.admin.get("/api/v1/owners/alice/profile").await.json()["title"],
        "Alice on B"
    );
    // A delete through B reaches A.
    assert_eq!(
        b.admin.delete("/api/v1/owners/alice/profile").await.status,
        204
    );
    let ok = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        a.anon
            .get("/@alice")
            .await
            .text()
            .contains("<h1>alice</h1>")
    })
    .await;
    assert!(ok, "A drops the deleted profile");

    // Redis restarts empty (no persistence in the harness): the instances
    // put back the codes and the profiles they hold; a new instance has them.
    let profile = json!({"title": "Alice again", "order": ["alice20"]});
    let r = a
        .admin
        .send_json(Method::PUT, "/api/v1/owners/alice/profile", &profile)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        b.anon
            .get("/@alice")
            .await
            .text()
            .contains("<h1>Alice again</h1>")
    })
    .await;
    assert!(ok, "B has the profile before the restart");
    redis.restart();
    let c = instance().await;
    let ok = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let html = c.anon.get("/@alice").await.text();
        html.contains("<h1>Alice again</h1>") && listed(&html) == ["alice20", "alice10"]
    })
    .await;
    assert!(
        ok,
        "C serves the restored profile: {}",
        c.anon.get("/@alice").await.text()
    );
    for gw in [a, b, c] {
        gw.stop().await.unwrap();
    }
}

#[tokio::test]
async fn page_in_a_browser_at_phone_and_desktop_width() {
    let gw = gateway().await;
    alice_and_bob(&gw).await;
    let r = gw
        .admin
        .send_json(
            Method::PUT,
            "/api/v1/owners/alice/profile",
            &json!({"title": "Alice's kitchen", "order": ["alice10"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let base = format!("http://{}", gw.addr);
    for (scheme, args) in [
        ("light", vec![]),
        ("dark", vec!["--force-dark-mode".to_string()]),
    ] {
        let b = Browser::start_with_args(390, 844, &args).await;
        b.goto(&format!("{base}/@alice")).await;
        // The script ran: copy buttons shown, and copying says so.
        let copy = b.find("#alice10 button.copy").await;
        assert_eq!(copy.prop("hidden").await, json!(false));
        copy.click().await;
        assert!(
            b.wait_for_text("#alice10 button.copy", "Copied", Duration::from_secs(2))
                .await
        );
        // The browser's own favicon request is not the page's.
        let errors: Vec<String> = b
            .console_errors()
            .await
            .into_iter()
            .filter(|e| !e.contains("/favicon.ico"))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let dark = b
            .execute(
                "return matchMedia('(prefers-color-scheme: dark)').matches",
                vec![],
            )
            .await;
        assert_eq!(dark, json!(scheme == "dark"), "{scheme}");
        // Tappable: every button and link at least 44 px high.
        let small = b
            .execute(
                "return [...document.querySelectorAll('a, button:not([hidden]), summary')]\
                 .filter(e => e.getBoundingClientRect().height < 44).map(e => e.outerHTML)",
                vec![],
            )
            .await;
        assert_eq!(small, json!([]), "{scheme}");
        // Nothing wider than the phone.
        let overflow = b
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await;
        assert_eq!(overflow, json!(false));
        b.screenshot(&shots().join(format!("bio-{scheme}-phone.png")))
            .await;
        b.set_window_size(1280, 900).await;
        b.goto(&format!("{base}/@alice")).await;
        // Wide screens open the QR codes.
        let open = b.find("#alice10 details.qr").await.prop("open").await;
        assert_eq!(open, json!(true));
        b.screenshot(&shots().join(format!("bio-{scheme}-desktop.png")))
            .await;
        // A tap on a channel button is a redirect (to the shop, unreachable
        // here: the URL is enough).
        b.quit().await;
    }
    gw.stop().await.unwrap();
}

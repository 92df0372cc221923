//! QR images over real HTTP, read back with a real QR decoder.

mod common;

use codelink_testkit::qr::decode_png_qr;
use http::Method;

#[tokio::test]
async fn png_decodes_to_the_short_link_for_every_ecc_and_size() {
    // The QR carries `?qr=1` so that its scans are told apart from link taps.
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let base = format!("http://{}", gw.addr);
    for ecc in ["L", "M", "Q", "H"] {
        for size in [128, 300, 512, 1024] {
            for (query, expected) in [
                (String::new(), format!("{base}/alice10?qr=1")),
                (
                    "&channel=YT-video42".to_string(),
                    format!("{base}/alice10/yt-video42?qr=1"),
                ),
            ] {
                let path = format!("/qr/ALICE10.png?ecc={ecc}&size={size}{query}");
                let r = gw.anon.get(&path).await;
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                assert_eq!(r.header("content-type"), Some("image/png"));
                let (w, h, text) = decode_png_qr(&r.body);
                assert_eq!((w, h), (size, size), "{path}");
                assert_eq!(text, expected, "{path}");
            }
        }
    }
}

#[tokio::test]
async fn public_url_and_colours_are_honoured() {
    let (mut config, tmp) = common::config();
    config.public_url = Some("https://go.example.com/".into());
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let r = gw
        .anon
        .get("/qr/alice10.png?channel=bio&fg=%231a237e&bg=fff8e1&margin=2&size=400")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, _, text) = decode_png_qr(&r.body);
    assert_eq!(text, "https://go.example.com/alice10/bio?qr=1");
}

#[tokio::test]
async fn svg_is_served() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw.anon.get("/qr/alice10.svg?size=256").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    let svg = r.text();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("width=\"256\""), "{svg}");
    assert_eq!(svg.matches("<path").count(), 1);
}

#[tokio::test]
async fn etag_and_304() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    let r = gw.anon.get("/qr/alice10.png?size=200").await;
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    // A restyled code changes the image at the same URL: kept a few
    // minutes, then asked again with its tag, never `immutable`.
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));

    let again = gw.anon.get("/qr/alice10.png?size=200").await;
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.body, r.body);

    let r304 = gw
        .anon
        .send(
            Method::GET,
            "/qr/alice10.png?size=200",
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .await;
    assert_eq!(r304.status, 304);
    assert!(r304.body.is_empty());
    assert_eq!(r304.header("etag"), Some(etag.as_str()));

    // A different image has a different tag, and an old tag no longer matches it.
    let other = gw
        .anon
        .send(
            Method::GET,
            "/qr/alice10.png?size=300",
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .await;
    assert_eq!(other.status, 200);
    assert_ne!(other.header("etag"), Some(etag.as_str()));

    // The second request was a cache hit.
    let metrics = gw.anon.get("/metrics").await.text();
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("codelink_qr_cache_hits_total"))
        .unwrap();
    assert_ne!(hits, "codelink_qr_cache_hits_total 0", "{metrics}");
}

#[tokio::test]
async fn bad_options_are_400_naming_the_option() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    for (query, option) in [
        ("size=63", "size"),
        ("size=4097", "size"),
        ("size=big", "size"),
        ("ecc=X", "ecc"),
        ("margin=99", "margin"),
        ("fg=zzz", "fg"),
        ("bg=12345", "bg"),
        ("fg=ffffff&bg=000000", "fg"),
        ("fg=eeeeee&bg=ffffff", "fg"),
        ("size=64&margin=32", "size"),
        ("wat=1", "wat"),
    ] {
        let r = gw.anon.get(&format!("/qr/alice10.png?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_qr_option");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(option), "{query}: {msg}");
    }
}

#[tokio::test]
async fn unknown_code_channel_or_format() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    assert_eq!(gw.anon.get("/qr/nobody.png").await.status, 404);
    assert_eq!(gw.anon.get("/qr/alice10.png?channel=tt").await.status, 404);
    assert_eq!(gw.anon.get("/qr/alice10.gif").await.status, 404);
    assert_eq!(gw.anon.get("/qr/alice10").await.status, 404);
    gw.admin.delete("/api/v1/codes/alice10").await;
    let r = gw.anon.get("/qr/alice10.png").await;
    assert_eq!(r.status, 410);
    assert_eq!(r.error_code(), "code_gone");
}

#[tokio::test]
async fn new_renders_are_rate_limited_per_address_and_cached_images_are_not() {
    let (mut config, tmp) = common::config();
    config.qr_renders_per_ip = 1;
    config.qr_render_burst_per_ip = 3;
    config.client_ip_header = Some("x-forwarded-for".into());
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let get = |path: String, ip: &'static str| {
        let c = gw.anon.clone();
        async move {
            c.send(
                http::Method::GET,
                &path,
                &[("x-forwarded-for", ip)],
                Default::default(),
            )
            .await
        }
    };
    // Three new images (the burst), then a fourth is refused with Retry-After.
    for size in [200, 201, 202] {
        let r = get(format!("/qr/alice10.png?size={size}"), "10.0.0.1").await;
        assert_eq!(r.status, 200);
    }
    let r = get("/qr/alice10.png?size=203".into(), "10.0.0.1").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    assert!(r.header("retry-after").is_some());
    // What is cached costs nothing and is served to the same address...
    for _ in 0..10 {
        assert_eq!(
            get("/qr/alice10.png?size=200".into(), "10.0.0.1")
                .await
                .status,
            200
        );
    }
    // ...and another address has its own budget.
    assert_eq!(
        get("/qr/alice10.png?size=203".into(), "10.0.0.2")
            .await
            .status,
        200
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn renders_run_a_bounded_number_at_once() {
    let (mut config, tmp) = common::config();
    config.qr_renders = 1;
    config.client_ip_header = Some("x-forwarded-for".into());
    let gw = std::sync::Arc::new(common::start_with(config, Some(tmp)).await);
    gw.create(common::alice()).await;
    // 12 big misses at once from 12 addresses: one renders at a time, the
    // others wait their turn (or, past 2 s, get 503 busy); none fails otherwise.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let c = gw.anon.clone();
        tasks.push(tokio::spawn(async move {
            let ip = format!("10.0.1.{i}");
            c.send(
                http::Method::GET,
                &format!("/qr/alice10.png?size={}", 4000 + i),
                &[("x-forwarded-for", ip.as_str())],
                Default::default(),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            503 => assert_eq!(r.error_code(), "busy"),
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(ok >= 1);
    let metrics = gw.anon.get("/metrics").await.text();
    let peak: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("codelink_qr_renders_peak "))
        .expect("codelink_qr_renders_peak in /metrics")
        .parse()
        .unwrap();
    assert_eq!(peak, 1.0, "never more than --qr-renders at once");
}

#[tokio::test]
async fn a_brand_preset_sets_the_defaults_and_can_fix_the_colours() {
    let gw = common::start().await;
    let mut body = common::alice();
    body["qr"] = serde_json::json!({"fg": "#1a237e", "bg": "#fff8e1", "ecc": "H", "margin": 2});
    assert_eq!(gw.create(body).await.status, 201);
    let code = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(code["qr"]["fg"], "#1a237e");
    assert_eq!(code["qr"]["custom_colors"], true);
    // The image uses the preset: dark modules in its fg, light in its bg.
    let r = gw.anon.get("/qr/alice10.svg").await;
    let svg = r.text();
    assert!(svg.contains("1a237e") && svg.contains("fff8e1"), "{svg}");
    let png = gw.anon.get("/qr/alice10.png?size=300").await;
    let (_, _, text) = decode_png_qr(&png.body);
    assert!(text.ends_with("/alice10?qr=1"), "{text}");
    // A request may still pick its colours...
    let r = gw.anon.get("/qr/alice10.svg?fg=000000&bg=ffffff").await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("1a237e"));
    // ...until the owner fixes them; size and channel stay free.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &serde_json::json!({"qr": {"fg": "#1a237e", "bg": "#fff8e1", "custom_colors": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for path in ["/qr/alice10.svg?fg=ff0000", "/qr/alice10.png?bg=000"] {
        let r = gw.anon.get(path).await;
        assert_eq!(r.status, 400, "{path}");
        assert!(r.text().contains("set by its owner"), "{}", r.text());
    }
    assert_eq!(
        gw.anon
            .get("/qr/alice10.png?size=256&channel=yt")
            .await
            .status,
        200
    );
    // A preset that would not scan is refused with the field named.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &serde_json::json!({"qr": {"fg": "#eeeeee", "bg": "#ffffff"}}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("qr: "),
        "{}",
        r.text()
    );
    // null removes the preset.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &serde_json::json!({"qr": null}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("qr").is_none_or(|q| q.is_null()));
    assert_eq!(gw.anon.get("/qr/alice10.svg?fg=ff0000").await.status, 200);
}

#[tokio::test]
async fn a_repeated_request_follows_every_change_of_its_code() {
    let gw = common::start().await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    let hits = || async {
        let metrics = gw.anon.get("/metrics").await.text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("codelink_qr_cache_hits_total "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let admin = &gw.admin;
    let patch = |change: serde_json::Value| async move {
        let r = admin.patch_json("/api/v1/codes/alice10", &change).await;
        assert_eq!(r.status, 200, "{change}: {}", r.text());
    };
    let path = "/qr/alice10.png?size=200&channel=yt";
    let first = gw.anon.get(path).await;
    assert_eq!(first.status, 200);
    // Asked again (as sent), it is answered from memory, the same bytes
    // and tag; HEAD gives the headers without the body, and the tag a 304.
    let before = hits().await;
    let again = gw.anon.get(path).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(hits().await, before + 1);
    let head = gw
        .anon
        .send(Method::HEAD, path, &[], Default::default())
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), first.header("etag"));
    let etag = first.header("etag").unwrap().to_string();
    let before = hits().await;
    let r304 = gw
        .anon
        .send(
            Method::GET,
            path,
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .await;
    assert_eq!(r304.status, 304);
    // A 304 is not counted as a cache hit (nor as a miss).
    assert_eq!(hits().await, before);

    // New colours: the same request gets the new image.
    patch(serde_json::json!({"qr": {"fg": "#1a237e"}})).await;
    let recoloured = gw.anon.get(path).await;
    assert_eq!(recoloured.status, 200);
    assert_ne!(recoloured.body, first.body);
    assert_ne!(recoloured.header("etag"), first.header("etag"));
    assert_eq!(gw.anon.get(path).await.body, recoloured.body);

    // Without the channel: 404; disabled: 410; deleted (retired): 410.
    patch(serde_json::json!({"channels": {"bio": {"utm_source": "instagram"}}})).await;
    assert_eq!(gw.anon.get(path).await.status, 404);
    let bare = "/qr/alice10.svg";
    assert_eq!(gw.anon.get(bare).await.status, 200);
    assert_eq!(gw.anon.get(bare).await.status, 200);
    patch(serde_json::json!({"enabled": false})).await;
    assert_eq!(gw.anon.get(bare).await.status, 410);
    patch(serde_json::json!({"enabled": true})).await;
    assert_eq!(gw.anon.get(bare).await.status, 200);
    assert_eq!(gw.admin.delete("/api/v1/codes/alice10").await.status, 200);
    assert_eq!(gw.anon.get(bare).await.status, 410);
}

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
    assert!(r
        .header("cache-control")
        .unwrap()
        .contains("max-age=31536000"));

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

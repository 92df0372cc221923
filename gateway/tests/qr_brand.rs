//! Branded QR images over real HTTP: logos (PNG and SVG) uploaded through
//! the API, frames with a call to action, rounded and dot modules, colours;
//! every image read back by zbarimg (SVG rasterized by rsvg-convert, PDF by
//! pdftoppm first),
//! and the refusals: unreadable styles (422 `qr_unreadable`) and bad logos.

mod common;

use codelink_testkit::qr::decode_png_qr;
use codelink_testkit::RedisServer;
use http::Method;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The public URL the QR images of [`gateway`] encode: fixed, so that what
/// a reader makes of an image does not depend on the test's random port.
const PUBLIC: &str = "https://go.example.com";

/// A gateway whose QR rate limit does not get in the way of many renders.
async fn gateway() -> common::TestGateway {
    let (mut config, tmp) = common::config();
    config.qr_renders_per_ip = 10_000;
    config.public_url = Some(PUBLIC.into());
    common::start_with(config, Some(tmp)).await
}

/// A 96×96 RGBA PNG: a blue rounded square with a white bar, transparent corners.
fn png_logo() -> Vec<u8> {
    let side = 96u32;
    let mut rgba = Vec::new();
    for y in 0..side {
        for x in 0..side {
            let (dx, dy) = ((x as i32 - 48).abs(), (y as i32 - 48).abs());
            let corner = dx > 30 && dy > 30 && (dx - 30).pow(2) + (dy - 30).pow(2) > 18 * 18;
            let px = if corner {
                [0, 0, 0, 0]
            } else if dy < 8 && dx < 30 {
                [255, 255, 255, 255]
            } else {
                [0x1e, 0x50, 0xd0, 255]
            };
            rgba.extend_from_slice(&px);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&rgba).unwrap();
    w.finish().unwrap();
    out
}

const SVG_LOGO: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 80">
  <defs><linearGradient id="g" x1="0" x2="1"><stop offset="0" stop-color="#ff6f00"/><stop offset="1" stop-color="#d81b60"/></linearGradient></defs>
  <rect width="120" height="80" rx="16" fill="url(#g)"/>
  <path d="M30 58 L60 18 L90 58 Z" fill="#ffffff"/>
</svg>"##;

async fn put_logo(
    gw: &common::TestGateway,
    code: &str,
    mime: &str,
    body: Vec<u8>,
) -> codelink_testkit::http::Response {
    gw.admin
        .send(
            Method::PUT,
            &format!("/api/v1/codes/{code}/logo"),
            &[("content-type", mime)],
            body.into(),
        )
        .await
}

/// What zbarimg reads in a PNG (one symbol, raw).
fn zbar(png: &[u8], dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    let out = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(&path)
        .output()
        .expect("zbarimg (zbar-tools) is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An SVG rasterized by rsvg-convert at `width` px, as PNG bytes.
fn rsvg(svg: &[u8], width: u32, dir: &Path, name: &str) -> Vec<u8> {
    let src = dir.join(format!("{name}.svg"));
    let dst = dir.join(format!("{name}.svg.png"));
    std::fs::write(&src, svg).unwrap();
    let status = Command::new("rsvg-convert")
        .arg("-w")
        .arg(width.to_string())
        .arg("-b")
        .arg("white")
        .arg("-o")
        .arg(&dst)
        .arg(&src)
        .status()
        .expect("rsvg-convert (librsvg2-bin) is installed");
    assert!(status.success(), "rsvg-convert failed on {name}");
    std::fs::read(&dst).unwrap()
}

/// A PDF rasterized by pdftoppm (poppler-utils) at `dpi`, as PNG bytes.
fn poppler(pdf: &[u8], dpi: u32, dir: &Path, name: &str) -> Vec<u8> {
    let src = dir.join(format!("{name}.pdf"));
    std::fs::write(&src, pdf).unwrap();
    let prefix = dir.join(format!("{name}.pdf"));
    let status = Command::new("pdftoppm")
        .args(["-png", "-singlefile", "-r"])
        .arg(dpi.to_string())
        .arg(&src)
        .arg(&prefix)
        .status()
        .expect("pdftoppm (poppler-utils) is installed");
    assert!(status.success(), "pdftoppm failed on {name}");
    std::fs::read(dir.join(format!("{name}.pdf.png"))).unwrap()
}

fn png_size(png: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(png).read_info().unwrap();
    (reader.info().width, reader.info().height)
}

#[tokio::test]
async fn every_styled_image_reads_back_in_zbarimg() {
    let gw = gateway().await;
    let base = PUBLIC;
    let dir = std::env::var_os("QR_BRAND_SAMPLES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| gw.data_dir.join("samples"));
    std::fs::create_dir_all(&dir).unwrap();

    // alice10: a PNG logo; svglogo: an SVG logo; plain: none.
    assert_eq!(gw.create(common::alice()).await.status, 201);
    for code in ["svglogo", "plain"] {
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": "bob"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = put_logo(&gw, "alice10", "image/png", png_logo()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put_logo(&gw, "svglogo", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // (code, query, expected link): logo, frame, colours and module styles,
    // alone and together.
    let cases = [
        ("plain", "fg=1a237e&bg=fff8e1", format!("{base}/plain?qr=1")),
        ("plain", "style=rounded", format!("{base}/plain?qr=1")),
        ("plain", "style=dots", format!("{base}/plain?qr=1")),
        ("plain", "frame=1", format!("{base}/plain?qr=1")),
        ("alice10", "", format!("{base}/alice10?qr=1")),
        (
            "alice10",
            "style=rounded&frame=1&channel=bio",
            format!("{base}/alice10/bio?qr=1"),
        ),
        (
            "svglogo",
            "style=dots&fg=4a148c",
            format!("{base}/svglogo?qr=1"),
        ),
        (
            "svglogo",
            "frame=1&style=rounded&fg=004d40&bg=f1f8e9",
            format!("{base}/svglogo?qr=1"),
        ),
    ];
    let mut read = 0;
    for size in [256u32, 512, 2048] {
        for (i, (code, query, expected)) in cases.iter().enumerate() {
            let name = format!("{code}-{i}-{size}");
            let sep = if query.is_empty() { "" } else { "&" };
            let r = gw
                .anon
                .get(&format!("/qr/{code}.png?size={size}{sep}{query}"))
                .await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("image/png"));
            let (w, h) = png_size(&r.body);
            assert_eq!(w, size, "{name}");
            if query.contains("frame=1") {
                assert!(h > w, "{name}: a frame adds the text band under the code");
            } else {
                assert_eq!(h, size, "{name}");
            }
            assert_eq!(
                zbar(&r.body, &dir, &format!("{name}.png")),
                *expected,
                "{name}.png"
            );
            // The gateway's own reader agrees.
            assert_eq!(decode_png_qr(&r.body).2, *expected, "{name}.png (rqrr)");

            let r = gw
                .anon
                .get(&format!("/qr/{code}.svg?size={size}{sep}{query}"))
                .await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("image/svg+xml"));
            let png = rsvg(&r.body, size, &dir, &name);
            assert_eq!(
                zbar(&png, &dir, &format!("{name}.svg.png")),
                *expected,
                "{name}.svg"
            );

            // The print PDF: `size` px at 300 dpi, so rasterized at 300 dpi
            // it is `size` px wide again.
            let r = gw
                .anon
                .get(&format!("/qr/{code}.pdf?size={size}{sep}{query}"))
                .await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("application/pdf"));
            assert!(r.body.starts_with(b"%PDF-1.4"));
            let png = poppler(&r.body, 300, &dir, &name);
            assert_eq!(png_size(&png).0, size, "{name}.pdf");
            assert_eq!(
                zbar(&png, &dir, &format!("{name}.pdf.png")),
                *expected,
                "{name}.pdf"
            );
            read += 3;
        }
    }
    assert_eq!(read, 3 * cases.len() * 3);
}

#[tokio::test]
async fn plain_images_are_unchanged_and_brand_changes_the_etag() {
    let gw = gateway().await;
    gw.create(common::alice()).await;
    let r = gw.anon.get("/qr/alice10.png?size=300").await;
    // Byte for byte the plain renderer's image, as before brands existed.
    let options = gateway::qr_render::parse_query(Some("size=300"))
        .unwrap()
        .options;
    let content = format!("{PUBLIC}/alice10?qr=1");
    let plain =
        gateway::qr_render::render(&content, &options, gateway::qr_render::Format::Png).unwrap();
    assert_eq!(r.body, plain);
    let plain_etag = r.header("etag").unwrap().to_string();

    assert_eq!(
        put_logo(&gw, "alice10", "image/png", png_logo())
            .await
            .status,
        200
    );
    let r = gw.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(plain_etag.as_str()));
    assert_ne!(r.body, plain);
    // A logo forces ecc H: asking for L gives the same image.
    let low = gw.anon.get("/qr/alice10.png?size=300&ecc=L").await;
    assert_eq!(low.body, r.body);

    for (query, option) in [("style=hearts", "style"), ("frame=2", "frame")] {
        let r = gw.anon.get(&format!("/qr/alice10.png?{query}")).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.error_code(), "invalid_qr_option");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(option));
    }
}

#[tokio::test]
async fn unreadable_styles_are_refused_with_the_reason() {
    let gw = gateway().await;
    gw.create(common::alice()).await;
    assert_eq!(
        put_logo(&gw, "alice10", "image/svg+xml", SVG_LOGO.into())
            .await
            .status,
        200
    );

    // A logo over 40 % of the width is refused by the schema, 40 % by the reader.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"qr": {"logo_size": 41}}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("logo_size"), "{}", r.text());
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"qr": {"logo_size": 40}}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "qr_unreadable");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("logo covers too much"), "{msg}");
    // Nothing was stored: the code still has the default logo size.
    let code = gw.admin.get("/api/v1/codes/alice10").await.json();
    assert_eq!(code["qr"], serde_json::Value::Null);

    // A fine style is taken, and shown.
    let r = gw
        .admin
        .patch_json(
            "/api/v1/codes/alice10",
            &json!({"qr": {"style": "rounded", "frame": true, "frame_text": "10% off: ALICE10", "logo_size": 26}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["qr"]["style"], "rounded");
    assert_eq!(r.json()["qr"]["frame_text"], "10% off: ALICE10");

    // Colours: dark on light with enough contrast is the contract; the rest is refused.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/alice10", &json!({"qr": {"fg": "#bbbbbb"}}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("contrast"), "{}", r.text());

    // A frame text that is not printable ASCII, or too long.
    for text in ["caf\u{e9}", "line\nbreak", &"x".repeat(33)] {
        let r = gw
            .admin
            .patch_json(
                "/api/v1/codes/alice10",
                &json!({"qr": {"frame": true, "frame_text": text}}),
            )
            .await;
        assert_eq!(r.status, 422, "{text:?}: {}", r.text());
        assert!(r.text().contains("frame_text"), "{}", r.text());
    }
}

#[tokio::test]
async fn logo_uploads_are_validated() {
    let gw = gateway().await;
    gw.create(common::alice()).await;
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        ("image/png", vec![0x89; 64 * 1024 + 1], 413, "logo_too_large", "64 KiB"),
        ("image/gif", b"GIF89a".to_vec(), 415, "unsupported_media_type", "image/png"),
        ("image/png", b"not a png at all".to_vec(), 422, "invalid_logo", "not a readable PNG"),
        (
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><script>alert(1)</script><rect width="10" height="10"/></svg>"#.to_vec(),
            422,
            "invalid_logo",
            "<script>",
        ),
        (
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><image href="https://tracker.example/p.png" width="10" height="10"/></svg>"#.to_vec(),
            422,
            "invalid_logo",
            "href",
        ),
        (
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" onload="x()"><rect width="10" height="10"/></svg>"#.to_vec(),
            422,
            "invalid_logo",
            "onload",
        ),
        ("image/svg+xml", b"<svg><rect".to_vec(), 422, "invalid_logo", "does not parse"),
    ];
    for (mime, body, status, code, says) in cases {
        let r = put_logo(&gw, "alice10", mime, body).await;
        assert_eq!(r.status, status, "{mime} {says}: {}", r.text());
        assert_eq!(r.error_code(), code, "{says}");
        assert!(r.text().contains(says), "{says}: {}", r.text());
    }
    // A 1×1 PNG is no logo.
    let mut tiny = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut tiny, 1, 1);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 0, 0]).unwrap();
    }
    let r = put_logo(&gw, "alice10", "image/png", tiny).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("16 to 2048 px"), "{}", r.text());
    // Nothing of that was stored.
    assert_eq!(gw.admin.get("/api/v1/codes/alice10/logo").await.status, 404);
    assert_eq!(
        gw.admin.get("/api/v1/codes/alice10").await.json()["qr_logo"],
        serde_json::Value::Null
    );

    // Unknown code, and who may do what.
    assert_eq!(
        put_logo(&gw, "nobody", "image/png", png_logo())
            .await
            .status,
        404
    );
    let r = gw
        .anon
        .send(
            Method::PUT,
            "/api/v1/codes/alice10/logo",
            &[("content-type", "image/png")],
            png_logo().into(),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = gw
        .admin
        .post_json("/api/v1/codes/alice10/logo", &json!({}))
        .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn logo_is_shown_served_deleted_and_survives_a_restart() {
    let (mut config, tmp) = common::config();
    config.qr_renders_per_ip = 10_000;
    // The images encode the public link: fixed, so the restarted gateway's
    // images can be compared byte for byte.
    config.public_url = Some(PUBLIC.into());
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    gw.create(common::alice()).await;
    let logo = png_logo();
    let r = put_logo(&gw, "alice10", "image/png; charset=binary", logo.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let meta = r.json()["qr_logo"].clone();
    assert_eq!(meta["content_type"], "image/png");
    assert_eq!(meta["bytes"], logo.len());
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);

    // A creator reads their own code's logo; the bytes come back as sent.
    let secret = gw.key(json!({"kind": "creator", "creator": "alice"})).await;
    let creator = codelink_testkit::http::Client::new(gw.addr).with_bearer(&secret);
    let r = creator.get("/api/v1/codes/alice10/logo").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(&r.body[..], &logo[..]);
    // A creator cannot change it.
    let r = creator
        .send(
            Method::DELETE,
            "/api/v1/codes/alice10/logo",
            &[],
            Default::default(),
        )
        .await;
    assert_eq!(r.status, 403);

    let with_logo = gw.anon.get("/qr/alice10.png?size=400").await;
    assert_eq!(with_logo.status, 200);

    // Restart on the same data dir: the logo is still there, and drawn the same.
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();
    let gw = common::start_with(config, tmp).await;
    assert_eq!(
        gw.admin.get("/api/v1/codes/alice10").await.json()["qr_logo"],
        meta
    );
    let r = gw.admin.get("/api/v1/codes/alice10/logo").await;
    assert_eq!(&r.body[..], &logo[..]);
    let again = gw.anon.get("/qr/alice10.png?size=400").await;
    assert_eq!(again.body, with_logo.body);

    // DELETE removes it: the images are plain again.
    let r = gw.admin.delete("/api/v1/codes/alice10/logo").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["qr_logo"], serde_json::Value::Null);
    assert_eq!(gw.admin.get("/api/v1/codes/alice10/logo").await.status, 404);
    assert_eq!(
        gw.admin.delete("/api/v1/codes/alice10/logo").await.status,
        404
    );
    let plain = gw.anon.get("/qr/alice10.png?size=400").await;
    assert_ne!(plain.body, with_logo.body);
    assert_eq!(png_size(&plain.body), (400, 400));
}

#[tokio::test]
async fn a_second_gateway_sharing_redis_draws_the_logo() {
    let redis = RedisServer::start();
    let start = |prefix: &'static str| {
        let url = redis.url();
        async move {
            let (mut config, tmp) = common::config();
            config.redis_url = Some(url);
            config.redis_prefix = prefix.to_string();
            config.qr_renders_per_ip = 10_000;
            config.public_url = Some(PUBLIC.into());
            common::start_with(config, Some(tmp)).await
        }
    };
    let a = start("brand").await;
    let b = start("brand").await;
    assert_eq!(a.create(common::alice()).await.status, 201);
    let r = put_logo(&a, "alice10", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let meta = r.json()["qr_logo"].clone();

    let seen = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        b.admin.get("/api/v1/codes/alice10").await.json()["qr_logo"] == meta
    })
    .await;
    assert!(seen, "B never saw the logo");
    let r = b.admin.get("/api/v1/codes/alice10/logo").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), SVG_LOGO);
    // B draws it: its image is A's image, byte for byte (one public link).
    let qa = a.anon.get("/qr/alice10.png?size=300").await;
    let qb = b.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(qa.status, 200);
    assert_eq!(qb.status, 200);
    assert_eq!(qa.body, qb.body);
    // Both carry the logo's orange: count strongly orange pixels.
    for q in [&qa, &qb] {
        let mut decoder = png::Decoder::new(&q.body[..]);
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let orange = buf[..frame.buffer_size()]
            .chunks_exact(3)
            .filter(|p| p[0] > 200 && p[1] > 60 && p[1] < 160 && p[2] < 120)
            .count();
        assert!(orange > 200, "logo pixels: {orange}");
    }

    // A third instance started afterwards loads it at start-up.
    let c = start("brand").await;
    assert_eq!(
        c.admin.get("/api/v1/codes/alice10/logo").await.text(),
        SVG_LOGO
    );
}

#[tokio::test]
async fn a_gateway_restarted_while_redis_is_down_still_draws_the_logo() {
    let mut redis = RedisServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "brand-outage".into();
    config.public_url = Some(PUBLIC.into());
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    gw.create(common::alice()).await;
    let r = put_logo(&gw, "alice10", "image/png", png_logo()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let with_logo = gw.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(with_logo.status, 200);
    // Let the sync task write its snapshot (codes and logo copies).
    let copies = gw.data_dir.join("redis-logos.snapshot");
    let written = codelink_testkit::wait_until(Duration::from_secs(3), || {
        let copies = copies.clone();
        async move { std::fs::read_dir(&copies).is_ok_and(|mut d| d.next().is_some()) }
    })
    .await;
    assert!(written, "no logo copy next to the snapshot");
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();

    redis.stop();
    let gw = common::start_with(config, tmp).await;
    // Redis is away: it serves from its snapshot (degraded).
    assert_eq!(gw.anon.get("/readyz").await.json()["status"], "degraded");
    let again = gw.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, with_logo.body, "drawn with the logo, as before");
}

/// A record whose style no longer reads (written past the API's check: by
/// another version, or straight into Redis) is refused when drawn, never
/// served as an image a phone cannot read.
#[tokio::test]
async fn an_image_that_does_not_read_is_refused_when_drawn() {
    let redis = RedisServer::start();
    let (mut config, tmp) = common::config();
    config.redis_url = Some(redis.url());
    config.redis_prefix = "brand-raw".into();
    config.qr_renders_per_ip = 10_000;
    let gw = common::start_with(config, Some(tmp)).await;
    gw.create(common::alice()).await;
    let r = put_logo(&gw, "alice10", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The stored record, changed in Redis itself: a logo over 40 % of the width.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Vec<u8> = redis::cmd("HGET")
        .arg("brand-raw:codes")
        .arg("alice10")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    record["qr"] = json!({"logo_size": 60, "custom_colors": true});
    let () = redis::pipe()
        .atomic()
        .hset(
            "brand-raw:codes",
            "alice10",
            serde_json::to_vec(&record).unwrap(),
        )
        .ignore()
        .set("brand-raw:codes:version", 7)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let reloaded = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        gw.admin.get("/api/v1/codes/alice10").await.json()["qr"]["logo_size"] == 60
    })
    .await;
    assert!(reloaded);

    for format in ["png", "svg", "pdf"] {
        let r = gw.anon.get(&format!("/qr/alice10.{format}?size=512")).await;
        assert_eq!(r.status, 422, "{format}: {}", r.text());
        assert_eq!(r.error_code(), "qr_unreadable");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("logo covers too much"), "{msg}");
        assert!(msg.contains("logo_size 60%"), "{msg}");
    }
    // The refusal is remembered: asking again renders nothing.
    let misses = || async {
        let metrics = gw.anon.get("/metrics").await.text();
        metrics
            .lines()
            .find(|l| l.starts_with("codelink_qr_cache_misses_total "))
            .expect("miss counter")
            .to_string()
    };
    let before = misses().await;
    let r = gw.anon.get("/qr/alice10.png?size=512").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "qr_unreadable");
    assert_eq!(misses().await, before);
}

// ---- An owner's default logo -------------------------------------------

async fn put_owner_logo(
    client: &codelink_testkit::http::Client,
    owner: &str,
    mime: &str,
    body: Vec<u8>,
) -> codelink_testkit::http::Response {
    client
        .send(
            Method::PUT,
            &format!("/api/v1/owners/{owner}/logo"),
            &[("content-type", mime)],
            body.into(),
        )
        .await
}

/// Pixels of a PNG (any colour type, expanded) for which `pick` holds, RGB.
fn count_pixels(png: &[u8], pick: impl Fn(u8, u8, u8) -> bool) -> usize {
    let mut decoder = png::Decoder::new(png);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = frame.color_type.samples();
    buf[..frame.buffer_size()]
        .chunks_exact(channels)
        .filter(|p| channels >= 3 && pick(p[0], p[1], p[2]))
        .count()
}

/// The PNG logo's blue, and the SVG logo's orange.
fn blue(png: &[u8]) -> usize {
    count_pixels(png, |r, g, b| r < 80 && (50..130).contains(&g) && b > 170)
}
fn orange(png: &[u8]) -> usize {
    count_pixels(png, |r, g, b| r > 200 && g > 60 && g < 160 && b < 120)
}

#[tokio::test]
async fn an_owner_logo_draws_on_their_codes_without_one_and_survives_a_restart() {
    let (mut config, tmp) = common::config();
    config.qr_renders_per_ip = 10_000;
    config.public_url = Some(PUBLIC.into());
    let mut gw = common::start_with(config.clone(), Some(tmp)).await;
    let dir = gw.data_dir.join("samples");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(gw.create(common::alice()).await.status, 201);
    for (code, owner) in [("alice20", "alice"), ("bob10", "bob")] {
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": owner}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // alice20 has a logo of its own (the orange SVG).
    let r = put_logo(&gw, "alice20", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let q = |code: &str| format!("/qr/{code}.png?size=400");
    let plain = gw.anon.get(&q("alice10")).await;
    assert_eq!(plain.status, 200);
    let own_before = gw.anon.get(&q("alice20")).await.body;
    let bob_before = gw.anon.get(&q("bob10")).await;
    assert_eq!(blue(&plain.body), 0);

    // No profile, no logo yet.
    assert_eq!(gw.admin.get("/api/v1/owners/alice/logo").await.status, 404);
    assert_eq!(
        gw.admin.get("/api/v1/owners/alice/profile").await.status,
        404
    );
    // The same body rules as a code's logo.
    let r = put_owner_logo(&gw.admin, "alice", "image/gif", b"GIF89a".to_vec()).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = put_owner_logo(&gw.admin, "alice", "image/png", b"no png".to_vec()).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "invalid_logo");
    let r = put_owner_logo(&gw.admin, "alice", "image/png", vec![0x89; 64 * 1024 + 1]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "logo_too_large");
    assert_eq!(
        put_owner_logo(&gw.admin, "a%20b", "image/png", png_logo())
            .await
            .status,
        404
    );

    // The owner logo: the profile is created to hold it.
    let logo = png_logo();
    let r = put_owner_logo(&gw.admin, "alice", "image/png", logo.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let meta = r.json()["qr_logo"].clone();
    assert_eq!(meta["content_type"], "image/png");
    assert_eq!(meta["bytes"], logo.len());
    assert_eq!(r.json()["owner"], "alice");
    let profile = gw.admin.get("/api/v1/owners/alice/profile").await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.json()["qr_logo"], meta);
    let r = gw.admin.get("/api/v1/owners/alice/logo").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(&r.body[..], &logo[..]);

    // alice10 (no logo of its own) is drawn with it: another image, another
    // ETag, the logo's blue in it, and it still reads.
    let branded = gw.anon.get(&q("alice10")).await;
    assert_eq!(branded.status, 200);
    assert_ne!(branded.body, plain.body);
    assert_ne!(branded.header("etag"), plain.header("etag"));
    assert!(blue(&branded.body) > 500, "blue: {}", blue(&branded.body));
    assert_eq!(
        zbar(&branded.body, &dir, "owner-alice10.png"),
        "https://go.example.com/alice10?qr=1"
    );
    let svg = gw.anon.get("/qr/alice10.svg?size=512").await;
    assert_eq!(svg.status, 200);
    let raster = rsvg(&svg.body, 512, &dir, "owner-alice10");
    assert_eq!(
        zbar(&raster, &dir, "owner-alice10-svg.png"),
        "https://go.example.com/alice10?qr=1"
    );
    // A code's own logo wins; another owner's code is untouched.
    let own = gw.anon.get(&q("alice20")).await;
    assert_eq!(own.body, own_before);
    assert!(orange(&own.body) > 200);
    assert_eq!(blue(&own.body), 0);
    let bob = gw.anon.get(&q("bob10")).await;
    assert_eq!(bob.body, bob_before.body);
    assert_eq!(bob.header("etag"), bob_before.header("etag"));

    // A profile PUT (the whole profile) keeps the logo, and so does a DELETE.
    let r = gw
        .admin
        .send_json(
            Method::PUT,
            "/api/v1/owners/alice/profile",
            &json!({"title": "Alice's codes"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["qr_logo"], meta);
    assert_eq!(gw.anon.get(&q("alice10")).await.body, branded.body);
    let r = gw.admin.delete("/api/v1/owners/alice/profile").await;
    assert_eq!(r.status, 204);
    let profile = gw.admin.get("/api/v1/owners/alice/profile").await.json();
    assert_eq!(profile["title"], serde_json::Value::Null);
    assert_eq!(profile["qr_logo"], meta);
    assert_eq!(gw.anon.get(&q("alice10")).await.body, branded.body);

    // Keys: alice's creator key reads her logo, not bob's, and changes
    // nothing; an ingest key reads nothing.
    let alice = codelink_testkit::http::Client::new(gw.addr)
        .with_bearer(&gw.key(json!({"kind": "creator", "creator": "alice"})).await);
    let r = alice.get("/api/v1/owners/alice/logo").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], &logo[..]);
    assert_eq!(alice.get("/api/v1/owners/bob/logo").await.status, 404);
    assert_eq!(
        put_owner_logo(&alice, "alice", "image/png", png_logo())
            .await
            .status,
        403
    );
    assert_eq!(alice.delete("/api/v1/owners/alice/logo").await.status, 403);
    let ingest = codelink_testkit::http::Client::new(gw.addr)
        .with_bearer(&gw.key(json!({"kind": "ingest"})).await);
    assert_eq!(ingest.get("/api/v1/owners/alice/logo").await.status, 403);
    assert_eq!(
        put_owner_logo(&ingest, "alice", "image/png", png_logo())
            .await
            .status,
        403
    );
    assert_eq!(gw.anon.get("/api/v1/owners/alice/logo").await.status, 401);

    // Restart on the same data dir: still drawn, byte for byte.
    let tmp = gw.take_tmp();
    gw.stop().await.unwrap();
    let gw = common::start_with(config, tmp).await;
    let again = gw.anon.get(&q("alice10")).await;
    assert_eq!(again.body, branded.body);
    assert_eq!(again.header("etag"), branded.header("etag"));
    assert_eq!(gw.anon.get(&q("alice20")).await.body, own_before);
    let r = gw.admin.get("/api/v1/owners/alice/logo").await;
    assert_eq!(&r.body[..], &logo[..]);

    // Removing alice20's own logo draws it with the owner's.
    let r = gw.admin.delete("/api/v1/codes/alice20/logo").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let fallen = gw.anon.get(&q("alice20")).await.body;
    assert!(blue(&fallen) > 500);
    assert_eq!(orange(&fallen), 0);

    // DELETE: plain again, with the plain image's ETag.
    let r = gw.admin.delete("/api/v1/owners/alice/logo").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["qr_logo"], serde_json::Value::Null);
    let back = gw.anon.get(&q("alice10")).await;
    assert_eq!(back.body, plain.body);
    assert_eq!(back.header("etag"), plain.header("etag"));
    assert_eq!(gw.admin.get("/api/v1/owners/alice/logo").await.status, 404);
    assert_eq!(
        gw.admin.delete("/api/v1/owners/alice/logo").await.status,
        404
    );
    // The profile stays (without the logo).
    assert_eq!(
        gw.admin.get("/api/v1/owners/alice/profile").await.status,
        200
    );
}

#[tokio::test]
async fn an_owner_logo_that_does_not_read_on_their_codes_is_refused() {
    let gw = gateway().await;
    // A code whose preset draws logos at 40 % (fine while it has none).
    let mut big = common::alice();
    big["code"] = json!("big");
    big["owner"] = json!("carol");
    big["qr"] = json!({"logo_size": 40});
    let r = gw.create(big.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = put_owner_logo(&gw.admin, "carol", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "qr_unreadable");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("code 'big'"), "{msg}");
    assert!(msg.contains("logo covers too much"), "{msg}");
    // Nothing stored.
    assert_eq!(gw.admin.get("/api/v1/owners/carol/logo").await.status, 404);
    assert_eq!(gw.anon.get("/qr/big.png").await.status, 200);

    // With a readable preset it is taken; then a code created or changed to
    // a style that does not read with the owner's logo is refused.
    let r = gw
        .admin
        .patch_json("/api/v1/codes/big", &json!({"qr": {"logo_size": 22}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put_owner_logo(&gw.admin, "carol", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .admin
        .patch_json("/api/v1/codes/big", &json!({"qr": {"logo_size": 40}}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "qr_unreadable");
    big["code"] = json!("big2");
    let r = gw.create(big).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "qr_unreadable");
    // An owner with no code at all may have a logo (checked on nothing yet).
    let r = put_owner_logo(&gw.admin, "newcomer", "image/png", png_logo()).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_second_gateway_sharing_redis_draws_the_owner_logo() {
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let start = |tmp: Option<tempfile::TempDir>, data_dir: Option<std::path::PathBuf>| {
        let url = redis_url.clone();
        async move {
            let (mut config, fresh) = common::config();
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            config.redis_url = Some(url);
            config.redis_prefix = "owner-brand".to_string();
            config.qr_renders_per_ip = 10_000;
            config.public_url = Some(PUBLIC.into());
            common::start_with(config, tmp.or(Some(fresh))).await
        }
    };
    let a = start(None, None).await;
    let mut b = start(None, None).await;
    assert_eq!(a.create(common::alice()).await.status, 201);
    let plain = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        b.anon.get("/qr/alice10.png?size=300").await.status == 200
    })
    .await;
    assert!(plain, "B never saw the code");
    let plain = b.anon.get("/qr/alice10.png?size=300").await.body;

    let r = put_owner_logo(&a.admin, "alice", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let qa = a.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(qa.status, 200);
    assert!(orange(&qa.body) > 200);
    let seen = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        b.anon.get("/qr/alice10.png?size=300").await.body == qa.body
    })
    .await;
    assert!(seen, "B never drew the owner logo");
    assert_ne!(qa.body, plain);
    assert_eq!(
        b.admin.get("/api/v1/owners/alice/logo").await.text(),
        SVG_LOGO
    );

    // A profile PUT through B keeps it; a code written through A (a reload
    // on B) does not make B forget it.
    let r = b
        .admin
        .send_json(
            Method::PUT,
            "/api/v1/owners/alice/profile",
            &json!({"title": "Alice"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["qr_logo"].is_object(), "{}", r.text());
    let r = a
        .create(
            json!({"code": "alice30", "destination": "https://shop.example/", "owner": "alice"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let reloaded = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        b.anon.get("/qr/alice30.png?size=300").await.status == 200
    })
    .await;
    assert!(reloaded);
    let b30 = b.anon.get("/qr/alice30.png?size=300").await;
    assert!(orange(&b30.body) > 200, "alice30 on B has the owner logo");
    assert_eq!(b.anon.get("/qr/alice10.png?size=300").await.body, qa.body);
    assert_eq!(
        a.admin.get("/api/v1/owners/alice/profile").await.json()["title"],
        "Alice"
    );

    // A third instance started afterwards loads it at start-up.
    let c = start(None, None).await;
    assert_eq!(c.anon.get("/qr/alice10.png?size=300").await.body, qa.body);

    // B restarted while Redis is down draws it from its snapshot's copies.
    let copies = b.data_dir.join("redis-logos.snapshot");
    let written = codelink_testkit::wait_until(Duration::from_secs(3), || {
        let copies = copies.clone();
        async move {
            std::fs::read_dir(&copies).is_ok_and(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                    .count()
                    == 1
            })
        }
    })
    .await;
    assert!(written, "no copy of the owner logo next to B's snapshot");
    let dir = b.data_dir.clone();
    let tmp = b.take_tmp();
    b.stop().await.unwrap();
    redis.stop();
    let b = start(tmp, Some(dir)).await;
    // Redis is away: it serves from its snapshot (degraded).
    assert_eq!(b.anon.get("/readyz").await.json()["status"], "degraded");
    let again = b.anon.get("/qr/alice10.png?size=300").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, qa.body, "drawn with the owner logo, as before");
    drop((a, c));
}

/// Redis restarted empty: the instance puts back the codes and profiles it
/// holds, and the logo bytes they name, so an instance started afterwards
/// draws both logos.
#[tokio::test]
async fn logos_are_put_back_when_redis_lost_its_data() {
    let mut redis = RedisServer::start();
    let redis_url = redis.url();
    let start = || {
        let url = redis_url.clone();
        async move {
            let (mut config, tmp) = common::config();
            config.redis_url = Some(url);
            config.redis_prefix = "owner-lost".to_string();
            // Started on an empty Redis, the instance saw no change token (0);
            // the writes below and Redis's restart all fall within one poll,
            // so after it the token is 0 again: the instance must still see
            // that Redis lost its data.
            config.redis_sync_ms = 1_000;
            config.qr_renders_per_ip = 10_000;
            config.public_url = Some(PUBLIC.into());
            common::start_with(config, Some(tmp)).await
        }
    };
    let a = start().await;
    assert_eq!(a.create(common::alice()).await.status, 201);
    let r = a
        .create(
            json!({"code": "alice20", "destination": "https://shop.example/", "owner": "alice"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = put_logo(&a, "alice20", "image/png", png_logo()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = put_owner_logo(&a.admin, "alice", "image/svg+xml", SVG_LOGO.into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let q10 = a.anon.get("/qr/alice10.png?size=300").await.body;
    let q20 = a.anon.get("/qr/alice20.png?size=300").await.body;
    assert!(orange(&q10) > 200);
    assert!(blue(&q20) > 200);

    redis.restart();
    let client = redis::Client::open(redis.url()).unwrap();
    let restored = codelink_testkit::wait_until(Duration::from_secs(5), || {
        let client = client.clone();
        async move {
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return false;
            };
            let logos: usize = redis::cmd("HLEN")
                .arg("owner-lost:logos")
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            let owners: usize = redis::cmd("HLEN")
                .arg("owner-lost:owners")
                .query_async(&mut conn)
                .await
                .unwrap_or(0);
            logos == 2 && owners == 1
        }
    })
    .await;
    assert!(restored, "the logos and the profile were not put back");
    let c = start().await;
    assert_eq!(c.anon.get("/qr/alice10.png?size=300").await.body, q10);
    assert_eq!(c.anon.get("/qr/alice20.png?size=300").await.body, q20);
    assert_eq!(
        c.admin.get("/api/v1/owners/alice/logo").await.text(),
        SVG_LOGO
    );
}

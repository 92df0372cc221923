//! The headless-browser harness against Debian's real `chromium` + `chromedriver`,
//! on a tiny local HTTP server.

use codelink_testkit::browser::Browser;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FILE_BYTES: &[u8] = b"code,scans\nabc,3\nxyz,\xff\x00\x01\n";

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Harness page</title>
<link rel="icon" href="data:,">
<style>body { margin: 0; font: 16px sans-serif } #tall { height: 2000px }</style>
</head><body>
<form id="f" onsubmit="return false">
  <input id="name" name="name">
  <input id="next" name="next">
  <select id="plan"><option value="free">Free</option><option value="pro">Pro</option></select>
</form>
<button id="go" onclick="document.getElementById('out').textContent = 'clicked ' + document.getElementById('name').value">Go</button>
<p id="out">idle</p>
<p id="sel">none</p>
<a id="dl" href="/file.bin" download="report.csv">Download</a>
<div id="tall"></div>
<script>
  document.getElementById('plan').addEventListener('change', e => {
    document.getElementById('sel').textContent = 'plan ' + e.target.value;
  });
  console.error("x");
</script>
</body></html>"#;

/// Serves `/` (the page, with an HttpOnly SameSite=Strict cookie) and
/// `/file.bin`; anything else is a 404.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, &str, &[u8]) = match path.as_str() {
                    "/" => (
                        "200 OK",
                        "content-type: text/html; charset=utf-8\r\n\
                         set-cookie: sid=s3cr3t; Path=/; HttpOnly; SameSite=Strict\r\n",
                        PAGE.as_bytes(),
                    ),
                    "/file.bin" => (
                        "200 OK",
                        "content-type: application/octet-stream\r\n",
                        FILE_BYTES,
                    ),
                    _ => (
                        "404 Not Found",
                        "content-type: text/plain\r\n",
                        b"not found",
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// (width, height) from a PNG's IHDR.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |r: std::ops::Range<usize>| u32::from_be_bytes(png[r].try_into().unwrap());
    (be(16..20), be(20..24))
}

#[tokio::test]
async fn drives_a_real_headless_chromium() {
    let addr = serve().await;
    let url = format!("http://{addr}/");

    let t0 = Instant::now();
    let browser = Browser::start(390, 844).await;
    eprintln!("Browser::start: {:?}", t0.elapsed());

    let t1 = Instant::now();
    browser.goto(&url).await;
    eprintln!("first goto: {:?}", t1.elapsed());
    assert_eq!(browser.current_url().await, url);
    assert_eq!(browser.title().await, "Harness page");
    assert!(browser.page_source().await.contains("id=\"dl\""));
    assert_eq!(
        browser
            .execute(
                "return [innerWidth, innerHeight, document.documentElement.clientWidth];",
                vec![]
            )
            .await,
        serde_json::json!([390, 844, 390])
    );
    assert_eq!(
        browser
            .execute(
                "return arguments[0] + arguments[1];",
                vec![2.into(), 3.into()]
            )
            .await,
        5
    );

    // Typing, clicking, waiting for JS-driven text.
    let name = browser.find("#name").await;
    name.click().await;
    name.send_keys("Ada").await;
    assert_eq!(name.prop("value").await, "Ada");
    name.clear().await;
    name.send_keys("Grace").await;
    assert_eq!(name.prop("value").await, "Grace");
    assert_eq!(name.attr("name").await.as_deref(), Some("name"));
    assert_eq!(name.attr("placeholder").await, None);
    browser.find("#go").await.click().await;
    assert!(
        browser
            .wait_for_text("#out", "clicked Grace", Duration::from_secs(5))
            .await
    );
    assert!(
        !browser
            .wait_for_text("#out", "never", Duration::from_millis(200))
            .await
    );
    assert_eq!(browser.find("#out").await.text().await, "clicked Grace");
    assert_eq!(browser.find_all("input").await.len(), 2);
    assert!(browser.find_all(".missing").await.is_empty());

    // Keyboard focus.
    name.click().await;
    assert!(name.is_focused().await);
    browser.press_key("\u{E004}").await;
    assert!(browser.find("#next").await.is_focused().await);
    assert!(!name.is_focused().await);

    // <select>
    let plan = browser.find("#plan").await;
    plan.select_by_value("pro").await;
    assert_eq!(plan.prop("value").await, "pro");
    assert!(
        browser
            .wait_for_text("#sel", "plan pro", Duration::from_secs(5))
            .await
    );

    // Console errors are drained by each call.
    let errors = browser.console_errors().await;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("SEVERE") && e.contains("\"x\"")),
        "{errors:?}"
    );
    assert!(browser.console_errors().await.is_empty());

    // Cookies.
    let cookies = browser.cookies().await;
    let sid = cookies
        .iter()
        .find(|c| c["name"] == "sid")
        .unwrap_or_else(|| panic!("no sid cookie in {cookies:?}"));
    assert_eq!(sid["value"], "s3cr3t");
    assert_eq!(sid["httpOnly"], true);
    assert_eq!(sid["sameSite"], "Strict");
    browser.delete_all_cookies().await;
    assert!(browser.cookies().await.is_empty());

    // Download via a link with a `download` attribute.
    let t2 = Instant::now();
    browser.find("#dl").await.click().await;
    let got = browser
        .wait_for_download("report.csv", Duration::from_secs(10))
        .await;
    eprintln!("download: {:?}", t2.elapsed());
    assert_eq!(got, FILE_BYTES);

    // Full-page screenshots at a phone and a desktop width.
    let shots = tempfile::tempdir().unwrap();
    let phone = shots.path().join("a/b/phone.png");
    let t3 = Instant::now();
    browser.screenshot(&phone).await;
    eprintln!("screenshot: {:?}", t3.elapsed());
    let (w, h) = png_size(&phone);
    assert_eq!(w, 390);
    assert!(h > 2000, "full page, not just the viewport: {h}");
    assert_eq!(
        browser
            .execute("return [innerWidth, innerHeight];", vec![])
            .await,
        serde_json::json!([390, 844]),
        "the viewport is back after a full-page capture"
    );

    browser.set_window_size(1440, 900).await;
    assert_eq!(browser.execute("return innerWidth;", vec![]).await, 1440);
    let desktop = shots.path().join("desktop.png");
    browser.screenshot(&desktop).await;
    let (w, h) = png_size(&desktop);
    assert_eq!(w, 1440);
    assert!(h > 2000, "{h}");

    let t4 = Instant::now();
    browser.quit().await;
    eprintln!("quit: {:?}", t4.elapsed());
}

//! `/healthz`, `/readyz` and `/metrics`.

mod common;

#[tokio::test]
async fn health_and_readiness() {
    let gw = common::start().await;
    let r = gw.anon.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = gw.anon.get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["store"], "embedded");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let gw = common::start().await;
    gw.create(common::alice()).await;
    for _ in 0..3 {
        gw.anon.get("/alice10").await;
    }
    gw.anon.get("/nobody").await;
    let text = gw.anon.get("/metrics").await.text();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has("codelink_http_requests_total{route=\"redirect\",status=\"302\"} 3"),
        "{text}"
    );
    assert!(
        has("codelink_http_requests_total{route=\"redirect\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        has("codelink_http_requests_total{route=\"api\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        has("codelink_http_request_duration_seconds_count{route=\"redirect\"} 4"),
        "{text}"
    );
    assert!(has("codelink_code_lookup_hits_total 3"), "{text}");
    assert!(has("codelink_code_lookup_misses_total 1"), "{text}");
    assert!(has("codelink_codes_loaded 1"), "{text}");
}

#[tokio::test]
async fn data_files_are_private_and_panics_are_counted() {
    let gw = common::start().await;
    #[cfg(unix)]
    for file in ["codelink.redb", "scans.redb", "secret.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(gw.data_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
    let metrics = gw.anon.get("/metrics").await.text();
    assert!(metrics.contains("\ncodelink_panics_total "), "{metrics}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn requests_hyper_refuses_are_counted_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = common::start().await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"NOT A REQUEST\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    let counted = codelink_testkit::wait_until(std::time::Duration::from_secs(3), || async {
        gw.anon.get("/metrics").await.text().lines().any(|l| {
            l.starts_with("codelink_http_requests_total{route=\"other\",status=\"400\"} ")
                && !l.ends_with(" 0")
        })
    })
    .await;
    assert!(counted, "{}", gw.anon.get("/metrics").await.text());
    gw.stop().await.unwrap();
}

/// SIGTERM (the shutdown future) turns `/readyz` to 503 `draining` at once
/// while redirects and `/healthz` still answer for `--drain-secs`; then the
/// listener closes and the run ends cleanly.
#[tokio::test]
async fn shutdown_drains_with_readyz_not_ready_before_the_listener_closes() {
    let (mut config, tmp) = common::config();
    config.drain_secs = 2;
    let mut gw = common::start_with(config, Some(tmp)).await;
    assert_eq!(gw.create(common::alice()).await.status, 201);
    assert_eq!(gw.anon.get("/readyz").await.status, 200);

    let signalled = std::time::Instant::now();
    gw.signal_shutdown();
    let draining = codelink_testkit::wait_until(std::time::Duration::from_secs(1), || async {
        gw.anon.get("/readyz").await.status == 503
    })
    .await;
    assert!(
        draining,
        "/readyz did not turn 503 after the shutdown signal"
    );
    let r = gw.anon.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "draining", "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another instance"),
        "{}",
        r.text()
    );
    // Still serving: new connections are accepted and answered, each told to close.
    let r = gw.anon.get("/alice10?ch=yt").await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("https://shop.example/signup"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(gw.anon.get("/healthz").await.status, 200);
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(2),
        "the checks above took the whole drain period; the test proves nothing"
    );

    let addr = gw.addr;
    gw.stop().await.unwrap();
    assert!(
        signalled.elapsed() >= std::time::Duration::from_secs(2),
        "stopped after {:?}, before --drain-secs",
        signalled.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after the gateway stopped"
    );
}

#[tokio::test]
async fn readyz_is_ready_again_on_a_gateway_that_was_never_signalled() {
    // The draining flag belongs to one gateway: a second one in the same
    // process (as in a rolling restart on one host) answers ready.
    let mut first = common::start().await;
    let second = common::start().await;
    first.signal_shutdown();
    first.stop().await.unwrap();
    assert_eq!(second.anon.get("/readyz").await.status, 200);
    second.stop().await.unwrap();
}

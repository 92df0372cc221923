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

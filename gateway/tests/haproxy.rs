//! deploy/haproxy.cfg run for real (the `haproxy` binary, no containers) in
//! front of two gateways: round robin over both, and a gateway sent the
//! shutdown signal is taken out of rotation by the `/readyz` check while it
//! still serves, so no request through HAProxy is refused or lost.

mod common;

use codelink_testkit::http::Client;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// deploy/haproxy.cfg with the compose addresses replaced by local ones.
fn config(front: u16, stats: u16, gateways: [SocketAddr; 2]) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy.cfg"),
    )
    .unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.trim() {
            "bind :8080" => format!("    bind 127.0.0.1:{front}"),
            "bind :8404" => format!("    bind 127.0.0.1:{stats}"),
            "server gateway1 gateway1:8080" => format!("    server gateway1 {}", gateways[0]),
            "server gateway2 gateway2:8080" => format!("    server gateway2 {}", gateways[1]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for needed in [
        "bind 127.0.0.1",
        "server gateway1 127.",
        "server gateway2 127.",
    ] {
        assert!(
            out.matches(needed).count() >= 1,
            "deploy/haproxy.cfg changed shape: {needed}"
        );
    }
    out
}

fn redirects_served(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("codelink_http_requests_total{route=\"redirect\",status=\"302\"} ")
        })
        .map_or(0, |n| n.parse().unwrap())
}

/// gateway1's status in HAProxy's stats CSV (`UP`, `DOWN`, …).
async fn status_of(stats: &Client, server: &str) -> String {
    let csv = stats.get("/stats;csv").await.text();
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > 17 && f[0] == "gateways" && f[1] == server)
        .map(|f| f[17].to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn haproxy_rotates_over_two_gateways_and_takes_a_draining_one_out() {
    let mut gws = Vec::new();
    for _ in 0..2 {
        let (mut config, tmp) = common::config();
        config.drain_secs = 6;
        let gw = common::start_with(config, Some(tmp)).await;
        assert_eq!(gw.create(common::alice()).await.status, 201);
        gws.push(gw);
    }
    let front = codelink_testkit::free_port();
    let stats_port = codelink_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, config(front, stats_port, [gws[0].addr, gws[1].addr])).unwrap();
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (Debian `haproxy`; scripts/test installs it)"),
    );
    let lb = Client::new(SocketAddr::from(([127, 0, 0, 1], front)));
    let stats = Client::new(SocketAddr::from(([127, 0, 0, 1], stats_port)));
    let up = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(lb.addr).await.is_ok()
            && status_of(&stats, "gateway1").await.starts_with("UP")
            && status_of(&stats, "gateway2").await.starts_with("UP")
    })
    .await;
    assert!(up, "HAProxy did not come up with both gateways UP");

    // Round robin: both gateways answer.
    for _ in 0..10 {
        assert_eq!(lb.get("/alice10?ch=yt").await.status, 302);
    }
    let served: Vec<u64> = {
        let mut v = Vec::new();
        for gw in &gws {
            v.push(redirects_served(&gw.anon.get("/metrics").await.text()));
        }
        v
    };
    assert_eq!(served.iter().sum::<u64>(), 10, "{served:?}");
    assert!(
        served.iter().all(|&n| n >= 3),
        "not spread over both: {served:?}"
    );

    // gateway1 is signalled: HAProxy's /readyz check takes it out while it
    // still serves (drain 6 s; HAProxy needs inter 1 s × fall 2).
    gws[0].signal_shutdown();
    let out = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        status_of(&stats, "gateway1").await.starts_with("DOWN")
    })
    .await;
    assert!(
        out,
        "HAProxy kept gateway1 in rotation: {}",
        status_of(&stats, "gateway1").await
    );
    assert_eq!(
        gws[0].anon.get("/healthz").await.status,
        200,
        "gateway1 stopped serving before HAProxy took it out"
    );
    let before = redirects_served(&gws[0].anon.get("/metrics").await.text());
    for _ in 0..10 {
        assert_eq!(lb.get("/alice10?ch=yt").await.status, 302);
    }
    assert_eq!(
        redirects_served(&gws[0].anon.get("/metrics").await.text()),
        before,
        "a draining gateway still got requests from HAProxy"
    );

    // gateway1 stops; every request still answers through gateway2.
    let first = gws.remove(0);
    first.stop().await.unwrap();
    for _ in 0..10 {
        assert_eq!(lb.get("/alice10?ch=yt").await.status, 302);
    }
    let second = gws.remove(0);
    assert_eq!(
        redirects_served(&second.anon.get("/metrics").await.text()),
        served[1] + 20
    );
    second.stop().await.unwrap();
}

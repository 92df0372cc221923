//! The ClickHouse harness against the real Debian `clickhouse-server` 18.16.

use codelink_testkit::ClickHouseServer;
use std::time::Instant;

#[test]
fn replacing_merge_tree_dedups_and_data_survives_a_restart() {
    let t0 = Instant::now();
    let mut ch = ClickHouseServer::start();
    eprintln!(
        "clickhouse-server start-up: {:?} (http {})",
        t0.elapsed(),
        ch.http_port()
    );
    assert_eq!(ch.url(), format!("http://127.0.0.1:{}", ch.http_port()));
    assert!(ch.query("SELECT version()").starts_with("18."));

    ch.query("CREATE DATABASE codelink");
    ch.query(
        "CREATE TABLE codelink.scans (code String, ts DateTime, scan_id String, ua String) \
         ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (code, ts, scan_id)",
    );
    ch.query(
        "INSERT INTO codelink.scans FORMAT JSONEachRow\n\
         {\"code\":\"abc\",\"ts\":\"2024-01-15 10:00:00\",\"scan_id\":\"s1\",\"ua\":\"first\"}\n\
         {\"code\":\"abc\",\"ts\":\"2024-01-15 10:00:05\",\"scan_id\":\"s2\",\"ua\":\"x\"}\n\
         {\"code\":\"xyz\",\"ts\":\"2024-02-01 08:30:00\",\"scan_id\":\"s3\",\"ua\":\"y\"}\n",
    );
    // The same scan delivered again (a retry), in a separate INSERT: a separate part.
    ch.query(
        "INSERT INTO codelink.scans FORMAT JSONEachRow\n\
         {\"code\":\"abc\",\"ts\":\"2024-01-15 10:00:00\",\"scan_id\":\"s1\",\"ua\":\"again\"}\n",
    );
    let raw: u64 = ch
        .query("SELECT count() FROM codelink.scans")
        .trim()
        .parse()
        .unwrap();
    assert!(raw == 3 || raw == 4, "raw count {raw}");
    assert_eq!(final_count(&ch), "3");

    let port = ch.http_port();
    ch.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped server still listens"
    );
    let t1 = Instant::now();
    ch.restart();
    eprintln!("clickhouse-server restart with data: {:?}", t1.elapsed());
    assert_eq!(ch.http_port(), port);
    assert_eq!(final_count(&ch), "3");
    assert_eq!(
        ch.query("SELECT scan_id FROM codelink.scans FINAL ORDER BY scan_id"),
        "s1\ns2\ns3\n"
    );
    assert_eq!(
        ch.query("SELECT count() FROM codelink.scans FINAL WHERE toYYYYMM(ts) = 202401"),
        "2\n"
    );
}

#[test]
#[should_panic(expected = "Unknown identifier: no_such_column")]
fn a_failing_query_panics_with_the_server_error() {
    let ch = ClickHouseServer::start();
    ch.query("SELECT no_such_column");
}

#[test]
fn many_servers_start_in_parallel() {
    let t0 = Instant::now();
    let servers: Vec<ClickHouseServer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(ClickHouseServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("4 clickhouse-servers in parallel: {:?}", t0.elapsed());
    let mut ports: Vec<u16> = servers.iter().map(|s| s.http_port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4);
    for server in &servers {
        assert_eq!(server.query("SELECT 1"), "1\n");
    }
}

fn final_count(ch: &ClickHouseServer) -> String {
    ch.query("SELECT count() FROM codelink.scans FINAL")
        .trim()
        .to_string()
}

//! The gateway on a ClickHouse cluster (`--clickhouse-cluster`), on real
//! `clickhouse-server` 18.16 nodes (2 shards, `testkit::ClickHouseCluster`):
//! the `codelink` binary records redirects on the shard of each code and
//! answers the analytics API; a shard down mid-stream spools the batches,
//! which are replayed once it is back, every scan stored and counted once;
//! an unknown cluster stops the binary with a message saying what to do.

mod common;

use codelink_analytics::sink::ShardMap;
use codelink_testkit::http::Client;
use codelink_testkit::{ClickHouseCluster, ClickHouseServer};
use http::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";

/// Codes of which the first half is on shard 1 and the rest on shard 2.
fn codes_on_both_shards(per_shard: usize) -> Vec<String> {
    let map = ShardMap::new(vec![1, 1]).unwrap();
    let mut by_shard = [Vec::new(), Vec::new()];
    for i in 0.. {
        let code = format!("creator{i}");
        let shard = map.shard(&code);
        if by_shard[shard].len() < per_shard {
            by_shard[shard].push(code);
        }
        if by_shard.iter().all(|s| s.len() == per_shard) {
            break;
        }
    }
    by_shard.concat()
}

async fn scan(client: &Client, path: &str, ip: &str) {
    let headers = codelink_testkit::http::browser(ANDROID_CHROME, &[("x-forwarded-for", ip)]);
    let r = client
        .send(Method::GET, path, &headers, Default::default())
        .await;
    assert_eq!(r.status, 302, "{path}");
}

async fn summary(admin: &Client, query: &str) -> Value {
    let r = admin
        .get(&format!("/api/v1/analytics/summary?{query}"))
        .await;
    if r.status != 200 {
        return Value::Null;
    }
    r.json()["summary"].clone()
}

/// Scans stored on `node` for `code`, each once (`FINAL`), and all rows.
fn rows(node: &ClickHouseServer, db: &str, code: &str) -> (u64, u64) {
    let out = node.query(&format!(
        "SELECT (SELECT count() FROM {db}.scans FINAL WHERE code = '{code}'), \
         (SELECT uniqExact(scan_id) FROM {db}.scans WHERE code = '{code}') FORMAT TSV"
    ));
    let mut n = out.split_whitespace().map(|v| v.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data_dir: &std::path::Path, addr: SocketAddr, extra: &[&str]) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_codelink"))
        .arg("serve")
        .args(["--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("CODELINK_LOG", "warn")
        .env("CODELINK_ADMIN_KEY", common::ADMIN_KEY)
        .env("CODELINK_DRAIN_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Process(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_records_and_answers_on_a_cluster() {
    let cluster = ClickHouseCluster::start(&[1, 1], None);
    let seed = cluster.seed().url();
    let tmp = tempfile::tempdir().unwrap();

    // An unknown cluster: the binary exits, naming it and the known ones.
    let addr: SocketAddr = format!("127.0.0.1:{}", codelink_testkit::free_port())
        .parse()
        .unwrap();
    let mut wrong = serve(
        tmp.path(),
        addr,
        &["--clickhouse-url", &seed, "--clickhouse-cluster", "nope"],
    );
    let status = (0..600)
        .find_map(|_| {
            let s = wrong.0.try_wait().unwrap();
            if s.is_none() {
                std::thread::sleep(Duration::from_millis(25));
            }
            s
        })
        .expect("codelink serve with an unknown cluster did not exit");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(wrong.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("no cluster \"nope\"") && stderr.contains(ClickHouseCluster::NAME),
        "{stderr}"
    );
    drop(wrong);

    let addr: SocketAddr = format!("127.0.0.1:{}", codelink_testkit::free_port())
        .parse()
        .unwrap();
    let _gw = serve(
        tmp.path(),
        addr,
        &[
            "--clickhouse-url",
            &seed,
            "--clickhouse-cluster",
            ClickHouseCluster::NAME,
            "--clickhouse-database",
            "e2e",
            "--client-ip-header",
            "x-forwarded-for",
            "--flush-ms",
            "100",
        ],
    );
    assert!(
        common::comes_up(addr, 20).await,
        "codelink serve did not come up"
    );
    let admin = Client::new(addr).with_bearer(common::ADMIN_KEY);
    let anon = Client::new(addr);
    let codes = codes_on_both_shards(2);
    for (i, code) in codes.iter().enumerate() {
        let r = admin
            .post_json(
                "/api/v1/codes",
                &json!({"code": code, "destination": "https://shop.example/", "owner": "pat"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        for j in 0..=i {
            scan(&anon, &format!("/{code}"), &format!("10.9.{i}.{j}")).await;
        }
    }
    // 1 + 2 + 3 + 4 scans.
    let all = codelink_testkit::wait_until(Duration::from_secs(15), || async {
        summary(&admin, "").await["scans"] == 10
    })
    .await;
    assert!(all, "summary: {}", summary(&admin, "").await);
    for (i, code) in codes.iter().enumerate() {
        let s = summary(&admin, &format!("code={code}")).await;
        assert_eq!(s["scans"], i as u64 + 1, "{code}: {s}");
        // The sink writes a batch's rollups (the summary) before its raw
        // rows (the drill-down): wait for the rows too.
        let listed = || async {
            let r = admin.get(&format!("/api/v1/codes/{code}/scans")).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["items"].as_array().map_or(0, Vec::len)
        };
        let rows_in = codelink_testkit::wait_until(Duration::from_secs(15), || async {
            listed().await == i + 1
        })
        .await;
        assert!(
            rows_in,
            "{code}: {} scans listed, want {}",
            listed().await,
            i + 1
        );
        // On the code's shard only.
        let held: Vec<u64> = cluster.nodes().map(|n| rows(n, "e2e", code).0).collect();
        let shard = usize::from(i >= 2);
        let mut want = vec![0, 0];
        want[shard] = i as u64 + 1;
        assert_eq!(held, want, "{code}");
    }
    let r = admin
        .get("/api/v1/analytics/top?metric=scans&limit=10")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["rows"].as_array().map(Vec::len),
        Some(4),
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_mid_stream_spools_and_replays_every_scan_once() {
    let mut cluster = ClickHouseCluster::start(&[1, 1], None);
    let (mut config, tmp) = common::config();
    config.flush_ms = 100;
    config.client_ip_header = Some("x-forwarded-for".into());
    config.clickhouse_url = Some(cluster.seed().url());
    config.clickhouse_cluster = Some(ClickHouseCluster::NAME.into());
    config.clickhouse_database = "outage".into();
    let gw = common::start_with(config, Some(tmp)).await;
    let codes = codes_on_both_shards(1);
    for code in &codes {
        let r = gw
            .create(json!({"code": code, "destination": "https://shop.example/", "owner": "pat"}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    for i in 0..200 {
        if i == 60 {
            cluster.shards[1][0].stop();
        }
        if i == 100 {
            // Several flush intervals pass while shard 2 is down.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        if i == 140 {
            cluster.shards[1][0].restart();
        }
        let code = &codes[i % 2];
        scan(
            &gw.anon,
            &format!("/{code}"),
            &format!("10.7.{}.{}", i / 250, i % 250),
        )
        .await;
        if i % 40 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let done = codelink_testkit::wait_until(Duration::from_secs(20), || async {
        rows(&cluster.shards[0][0], "outage", &codes[0]) == (100, 100)
            && rows(&cluster.shards[1][0], "outage", &codes[1]) == (100, 100)
    })
    .await;
    assert!(
        done,
        "rows after the outage: {:?} {:?}",
        rows(&cluster.shards[0][0], "outage", &codes[0]),
        rows(&cluster.shards[1][0], "outage", &codes[1])
    );
    // The rollups count each scan once, on both shards (shard 1's part of
    // a replayed batch was already in).
    let counted = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        summary(&gw.admin, "").await["scans"] == 200
    })
    .await;
    assert!(counted, "summary: {}", summary(&gw.admin, "").await);
    for code in &codes {
        assert_eq!(
            summary(&gw.admin, &format!("code={code}")).await["scans"],
            100
        );
    }
    let settled = codelink_testkit::wait_until(Duration::from_secs(5), || async {
        let m = gw.anon.get("/metrics").await.text();
        let spooled = metric(&m, "codelink_scans_spooled_total{sink=\"clickhouse\"}");
        spooled > 0 && metric(&m, "codelink_scans_replayed_total{sink=\"clickhouse\"}") == spooled
    })
    .await;
    let m = gw.anon.get("/metrics").await.text();
    assert!(settled, "nothing spooled, or the spool not replayed:\n{m}");
    assert_eq!(
        metric(&m, "codelink_scans_lost_total{sink=\"clickhouse\"}"),
        0
    );
    gw.stop().await.unwrap();
}

//! The `codelink` binary itself: first start, persistence across restart,
//! SIGTERM, and a data dir that is already in use.

mod common;

use codelink_testkit::http::Client;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(data_dir: &Path, extra: &[&str]) -> Process {
    // A port found free can be taken before the child binds it (by another
    // test's server: a Redis Cluster node's bus port is its port + 10000,
    // outside what `free_port` sees). The child then exits saying so, and
    // another port is tried.
    for _ in 0..3 {
        let port = codelink_testkit::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_codelink"))
            .arg("serve")
            .args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("CODELINK_LOG", "warn")
            .env_remove("CODELINK_ADMIN_KEY")
            // SIGTERM stops at once unless a test passes --drain-secs.
            .env("CODELINK_DRAIN_SECS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        match wait_up(&mut child, addr, Duration::from_secs(15)).await {
            Ok(()) => return Process { child, addr },
            Err(stderr) if stderr.contains("cannot listen") => continue,
            Err(stderr) => panic!("codelink serve did not come up: {stderr}"),
        }
    }
    panic!("codelink serve found no free port in 3 tries");
}

/// Waits until the child answers `GET /healthz` with 200 on `addr`; `Err`
/// with what it printed if it exited first (or a note if it never answered).
async fn wait_up(child: &mut Child, addr: SocketAddr, within: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(pipe) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(pipe, &mut stderr);
            }
            return Err(format!("exited ({status}): {stderr}"));
        }
        if healthy(addr).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("no 200 from /healthz on {addr} within {within:?}"))
}

/// One `GET /healthz` over a raw connection: true on a 200, false on
/// anything else (nothing listening yet, a reset, another server).
async fn healthy(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/1.1 200")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// Sends `signal` (`-TERM`, `-INT`) to the process.
fn signal(p: &Process, signal: &str) {
    let pid = p.child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
}

/// How the process exited, if it did within `secs` seconds.
fn exit_within(p: &mut Process, secs: u64) -> Option<std::process::ExitStatus> {
    for _ in 0..secs * 40 {
        if let Some(status) = p.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn sigterm(p: &mut Process) -> std::process::ExitStatus {
    signal(p, "-TERM");
    exit_within(p, 5).expect("codelink did not exit within 5 s of SIGTERM")
}

#[tokio::test]
async fn generated_key_and_codes_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = spawn(tmp.path(), &[]).await;
    let key_path = tmp.path().join("admin.key");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(key.len() >= 32, "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "admin key readable by others: {mode:o}");
    }
    let admin = Client::new(first.addr).with_bearer(&key);
    let r = admin
        .post_json(
            "/api/v1/codes",
            &serde_json::json!({"code": "Persist1", "destination": "https://shop.example/p", "owner": "pat",
                                "channels": {"ig": {"utm_source": "instagram"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let status = sigterm(&mut first);
    assert!(status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(first.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&key_path.display().to_string()),
        "key location not printed: {stderr}"
    );
    drop(first);

    // The smallest page cache allowed serves the same store.
    let second = spawn(tmp.path(), &["--cache-mb", "4"]).await;
    assert_eq!(
        std::fs::read_to_string(&key_path).unwrap(),
        key,
        "key changed on restart"
    );
    let anon = Client::new(second.addr);
    let r = anon.get("/persist1/ig").await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("https://shop.example/p?utm_source=instagram&cl_scan="),
        "{loc}"
    );
    let admin = Client::new(second.addr).with_bearer(&key);
    assert_eq!(
        admin.get("/api/v1/codes/persist1").await.json()["owner"],
        "pat"
    );
}

#[tokio::test]
async fn second_instance_on_the_same_data_dir_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = spawn(tmp.path(), &[]).await;
    let out = Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("codelink.redb"), "{stderr}");
}

#[tokio::test]
async fn bad_flags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["--public-url", "not a url"],
        vec!["--scan-param", "has space"],
        vec!["--admin-key", "short"],
        vec!["--listen", "nowhere"],
        vec![
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--redis-cluster",
            "redis://127.0.0.1:2",
        ],
        vec!["--redis-cluster", "not a url"],
        vec!["--redis-cluster", "redis://127.0.0.1:2/3"],
        vec!["--cache-mb", "0"],
        vec!["--cache-mb", "lots"],
        vec!["--clickhouse-cluster", "codelink"],
        vec![
            "--clickhouse-url",
            "http://127.0.0.1:1",
            "--clickhouse-cluster",
            "has space",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_codelink"))
            .arg("serve")
            .arg("--data-dir")
            .arg(tmp.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

/// SIGKILL mid-stream, then restart: every stored scan got a 302, none is stored
/// twice, and the only scans missing are those of the last flush interval
/// before the kill (the documented crash loss).
#[tokio::test]
async fn kill_and_restart_mid_stream_accounts_for_every_scan() {
    use codelink_analytics::{sink::EmbeddedSink, ScanId};
    use std::collections::HashMap;

    const FLUSH_MS: u64 = 100;
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--admin-key",
        "kill-test-admin-key-0123",
        "--flush-ms",
        "100",
    ];
    let mut first = spawn(tmp.path(), &args).await;
    let admin = Client::new(first.addr).with_bearer("kill-test-admin-key-0123");
    let r = admin
        .post_json(
            "/api/v1/codes",
            &serde_json::json!({"code": "killme", "destination": "https://shop.example/", "owner": "k"}),
        )
        .await;
    assert_eq!(r.status, 201);

    let mut answered: HashMap<String, u64> = HashMap::new();
    let scan_id = |r: &codelink_testkit::http::Response| {
        let loc = r.header("location").unwrap().to_string();
        let token = loc.split("cl_scan=").nth(1).unwrap();
        token.split('.').next().unwrap().to_string()
    };
    let anon = Client::new(first.addr);
    for i in 0..400 {
        let r = anon.get("/killme").await;
        assert_eq!(r.status, 302);
        let id = scan_id(&r);
        answered.insert(id.clone(), ScanId::parse(&id).unwrap().unix_ms());
        // Pauses let batches form; the last 100 go straight into the kill.
        if i % 100 == 99 && i < 399 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    let mut second = spawn(tmp.path(), &args).await;
    let anon = Client::new(second.addr);
    let mut after_restart = Vec::new();
    for _ in 0..100 {
        let r = anon.get("/killme").await;
        assert_eq!(r.status, 302);
        after_restart.push(scan_id(&r));
    }
    assert!(sigterm(&mut second).success());
    drop(second);

    let sink = EmbeddedSink::open(tmp.path(), true, true).unwrap();
    let stored = sink.all_scans().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for s in &stored {
        assert!(
            seen.insert(s.scan_id.to_string()),
            "scan {} stored twice",
            s.scan_id
        );
        assert!(
            answered.contains_key(s.scan_id.as_str())
                || after_restart.iter().any(|id| *id == s.scan_id),
            "stored scan {} never got a 302",
            s.scan_id
        );
    }
    for id in &after_restart {
        assert!(seen.contains(id), "scan {id} after the restart is missing");
    }
    let window = 3 * FLUSH_MS + 200;
    let lost: Vec<u64> = answered
        .iter()
        .filter(|(id, _)| !seen.contains(*id))
        .map(|(_, ts)| *ts)
        .collect();
    for ts in &lost {
        assert!(
            *ts + window >= killed_at,
            "a scan {} ms older than the kill was lost",
            killed_at - ts
        );
    }
    let stats = sink.code_stats("killme").await.unwrap();
    assert_eq!(
        stats.total as usize,
        stored.len(),
        "counters disagree with rows"
    );
    // The rollups went into the same transactions as the rows: they agree too.
    let rollups = codelink_analytics::query::Backend::Embedded(sink)
        .summary(&codelink_analytics::query::Query {
            from_ms: 0,
            to_ms: u64::MAX / 2,
            tz: "UTC".into(),
            codes: Some(vec!["killme".into()]),
            owner: None,
            now_ms: 0,
            hold_ms: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        rollups.scans as usize,
        stored.len(),
        "rollups disagree with rows"
    );
    eprintln!(
        "answered {} before the kill, {} after; stored {}; lost {} (all within {window} ms of the kill)",
        answered.len(),
        after_restart.len(),
        stored.len(),
        lost.len()
    );
}

/// `codelink migrate` on a data dir the previous version left (scans as JSON
/// rows, no rollups): progress on stderr, then the gateway answers from the
/// rollups; a second run has nothing to do.
#[tokio::test]
async fn migrate_builds_the_rollups_of_an_old_data_dir() {
    use codelink_analytics::event::Scan;
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    {
        let db = redb::Database::create(tmp.path().join("scans.redb")).unwrap();
        let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("scans");
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            for i in 0..30u64 {
                let ts = now - 3_600_000 + i * 1000;
                let s = Scan {
                    scan_id: codelink_analytics::ScanId::from_parts(ts, 1, i)
                        .to_string()
                        .into(),
                    ts_ms: ts,
                    code: "oldcode".into(),
                    visitor_id: format!("v{}", i % 4).into(),
                    source: "link".into(),
                    ..Scan::default()
                };
                t.insert(
                    s.scan_id.as_str(),
                    serde_json::to_vec(&s).unwrap().as_slice(),
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let migrate = || {
        Command::new(env!("CARGO_BIN_EXE_codelink"))
            .arg("migrate")
            .arg("--data-dir")
            .arg(tmp.path())
            .env("CODELINK_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = migrate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("30/30 entries (100%)") && err.contains("done"),
        "{err}"
    );
    let out = migrate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("nothing to migrate"),
        "{err}"
    );

    let key = "migrate-test-admin-key-0123";
    let mut p = spawn(tmp.path(), &["--admin-key", key]).await;
    let admin = Client::new(p.addr).with_bearer(key);
    let r = admin
        .post_json(
            "/api/v1/codes",
            &serde_json::json!({"code": "oldcode", "destination": "https://shop.example/", "owner": "o"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let s = admin
        .get("/api/v1/analytics/summary?code=oldcode")
        .await
        .json();
    assert_eq!(s["summary"]["scans"], 30, "{s}");
    assert_eq!(s["summary"]["unique_scanners"], 4, "{s}");
    assert!(sigterm(&mut p).success());
}

fn healthcheck(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_codelink"))
        .args(["healthcheck", "--url", url, "--timeout-ms", "2000"])
        .env("CODELINK_LOG", "warn")
        .output()
        .unwrap()
}

/// `codelink healthcheck` (the container image's HEALTHCHECK) and SIGTERM's
/// drain on the real binary: ready → SIGTERM → `/readyz` 503 `draining`
/// (the health check of `/readyz` fails, of `/healthz` passes, redirects
/// still answer) → exit 0 → the health check fails on the closed port.
#[tokio::test]
async fn healthcheck_subcommand_and_sigterm_drain() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = spawn(tmp.path(), &["--drain-secs", "3"]).await;
    let base = format!("http://{}", p.addr);
    let ok = healthcheck(&format!("{base}/healthz"));
    assert!(ok.status.success(), "{ok:?}");
    let ok = healthcheck(&format!("{base}/readyz"));
    assert!(ok.status.success(), "{ok:?}");
    let missing = healthcheck(&format!("{base}/no-such-code-here"));
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{missing:?}"
    );

    let key = std::fs::read_to_string(tmp.path().join("admin.key")).unwrap();
    let admin = Client::new(p.addr).with_bearer(key.trim());
    let r = admin
        .post_json(
            "/api/v1/codes",
            &serde_json::json!({"code": "drain1", "destination": "https://shop.example/d", "owner": "d"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    signal(&p, "-TERM");
    let anon = Client::new(p.addr);
    let draining = codelink_testkit::wait_until(Duration::from_secs(2), || async {
        anon.get("/readyz").await.status == 503
    })
    .await;
    assert!(draining, "/readyz did not turn 503 after SIGTERM");
    assert_eq!(anon.get("/readyz").await.error_code(), "draining");
    let not_ready = healthcheck(&format!("{base}/readyz"));
    assert_eq!(not_ready.status.code(), Some(1), "{not_ready:?}");
    assert!(
        String::from_utf8_lossy(&not_ready.stderr).contains("shutting down"),
        "{not_ready:?}"
    );
    assert!(healthcheck(&format!("{base}/healthz")).status.success());
    assert_eq!(anon.get("/drain1").await.status, 302);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "exited during the drain period"
    );

    let status = exit_within(&mut p, 10)
        .expect("codelink did not exit within 10 s of SIGTERM with --drain-secs 3");
    assert!(status.success(), "{status:?}");
    let closed = healthcheck(&format!("{base}/healthz"));
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
    assert!(
        String::from_utf8_lossy(&closed.stderr).contains("cannot connect"),
        "{closed:?}"
    );
}

/// Ctrl-C (SIGINT) is a person at a terminal: the stop skips `--drain-secs`
/// (SIGTERM, above, drains).
#[tokio::test]
async fn ctrl_c_stops_without_the_drain() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = spawn(tmp.path(), &["--drain-secs", "60"]).await;
    signal(&p, "-INT");
    // Well under the 60 s drain: the stop did not wait for it.
    let status = exit_within(&mut p, 10)
        .expect("codelink did not exit within 10 s of SIGINT with --drain-secs 60");
    assert!(status.success(), "{status:?}");
}

/// `codelink serve --redis-cluster …` on a 3-master Redis Cluster: scans
/// redirected by two gateways are counted together, and a code created on
/// one is served by the other within the poll interval.
#[tokio::test]
async fn serve_on_a_redis_cluster_shares_codes_and_counts() {
    let cluster = codelink_testkit::RedisCluster::start();
    let seeds = cluster.seeds();
    let flags = [
        "--redis-cluster",
        seeds.as_str(),
        "--redis-prefix",
        "e2e",
        "--admin-key",
        common::ADMIN_KEY,
        "--flush-ms",
        "100",
    ];
    let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn(ta.path(), &flags).await;
    let b = spawn(tb.path(), &flags).await;
    let admin_a = Client::new(a.addr).with_bearer(common::ADMIN_KEY);
    let r = admin_a.get("/readyz").await;
    assert_eq!(
        (r.status.as_u16(), r.json()["store"].clone()),
        (200, serde_json::json!("redis"))
    );
    let r = admin_a
        .post_json(
            "/api/v1/codes",
            &serde_json::json!({"code": "Cluster1", "destination": "https://shop.example/c", "owner": "pat"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = std::time::Instant::now();
    let (anon_a, anon_b) = (Client::new(a.addr), Client::new(b.addr));
    let served = codelink_testkit::wait_until(Duration::from_secs(3), || async {
        anon_b.get("/cluster1").await.status == 302
    })
    .await;
    let took = created.elapsed();
    assert!(served, "the other gateway never served the new code");
    // The poll interval is 250 ms: well within a second.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    for _ in 0..20 {
        assert_eq!(anon_a.get("/cluster1").await.status, 302);
    }
    for _ in 0..10 {
        assert_eq!(anon_b.get("/cluster1").await.status, 302);
    }
    let admin_b = Client::new(b.addr).with_bearer(common::ADMIN_KEY);
    let counted = codelink_testkit::wait_until(Duration::from_secs(10), || async {
        // 30, and the poll's one 302 on B.
        admin_b.get("/api/v1/codes/cluster1/stats").await.json()["total"] == 31
    })
    .await;
    let stats = admin_b.get("/api/v1/codes/cluster1/stats").await.json();
    assert!(counted, "both gateways' scans counted once: {stats}");
    // The code's counters are tagged by code, the code table by the prefix.
    assert_eq!(
        cluster.cli(&["HGET", "e2e:stats:{cluster1}", "total"]),
        "31"
    );
    assert!(cluster
        .cli(&["HGET", "{e2e}:codes", "cluster1"])
        .contains("shop.example"));
}

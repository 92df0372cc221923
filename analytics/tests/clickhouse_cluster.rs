//! The ClickHouse backend on a cluster (`ClickHouseConfig::cluster`), on real
//! `clickhouse-server` 18.16 nodes started by `testkit::ClickHouseCluster`:
//! where codes land (the gateway's shard function is ClickHouse's own), a
//! shard down while a batch is written (the batch fails; written again once
//! the shard is back, every count is exact, nothing twice), and replicated
//! tables over a private ZooKeeper, created with `ON CLUSTER` DDL through
//! ZooKeeper's queue.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::query::{Backend, Query};
use codelink_analytics::sink::{sip_hash64, ClickHouseConfig, ClickHouseEvents, ShardMap, Subject};
use codelink_analytics::ScanId;
use codelink_testkit::{ClickHouseCluster, ClickHouseServer, ZooKeeper};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// 2026-03-02T00:00:00Z.
const T0: u64 = 1_772_409_600_000;

fn events(seed: &ClickHouseServer, database: &str) -> ClickHouseEvents {
    ClickHouseEvents::new(&ClickHouseConfig {
        url: seed.url(),
        database: database.to_string(),
        user: None,
        password: None,
        cluster: Some(ClickHouseCluster::NAME.to_string()),
    })
}

fn count(node: &ClickHouseServer, sql: &str) -> u64 {
    node.query(sql).trim().parse().unwrap()
}

fn scans(codes: &[String], per_code: u64) -> Vec<Scan> {
    let mut out = Vec::new();
    for (c, code) in codes.iter().enumerate() {
        for i in 0..per_code {
            let ts_ms = T0 + i * 61_000 + c as u64;
            out.push(Scan {
                scan_id: ScanId::from_parts(ts_ms, 9, (c as u64) << 20 | i)
                    .to_string()
                    .into(),
                ts_ms,
                code: code.as_str().into(),
                visitor_id: format!("v{}", i % 7).into(),
                source: if i % 3 == 0 { "qr" } else { "link" }.into(),
                bot_reason: if i % 5 == 0 { "head" } else { "" }.into(),
                ..Scan::default()
            });
        }
    }
    out
}

fn signup(id: &str, code: &str, occurred_ms: u64) -> Conversion {
    Conversion {
        event_id: id.into(),
        kind: ConversionKind::Signup,
        occurred_ms,
        received_ms: occurred_ms + 500,
        code: code.into(),
        owner: "ann".into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: String::new(),
        customer_id: format!("c-{id}"),
        amount: 0,
        currency: String::new(),
        rule: Rule::CodeOnly,
        earnings: 100,
        earnings_currency: "EUR".into(),
        repeat: false,
        flagged: None,
    }
}

fn day_query(codes: Option<&[String]>) -> Query {
    Query {
        from_ms: T0,
        to_ms: T0 + 86_400_000,
        tz: "UTC".into(),
        codes: codes.map(<[String]>::to_vec),
        owner: None,
        now_ms: T0 + 86_400_000,
        hold_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_land_on_the_shard_clickhouse_would_pick() {
    let cluster = ClickHouseCluster::start(&[1, 1], None);
    let seed = cluster.seed();
    // The gateway's hash is ClickHouse's sipHash64, over many codes.
    let codes: Vec<String> = (0..2000).map(|i| format!("code-{i}")).collect();
    let list = codes
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(",");
    let theirs = seed.query(&format!(
        "SELECT sipHash64(c) FROM (SELECT arrayJoin([{list}]) AS c)"
    ));
    let ours: Vec<String> = codes
        .iter()
        .map(|c| sip_hash64(c.as_bytes()).to_string())
        .collect();
    assert_eq!(theirs.lines().collect::<Vec<_>>(), ours);

    let ch = events(seed, "placed");
    ch.migrate().await.unwrap();
    let urls = ch.shard_urls().await.unwrap();
    assert_eq!(
        urls,
        vec![
            vec![cluster.shards[0][0].url()],
            vec![cluster.shards[1][0].url()]
        ]
    );
    // A row inserted through the Distributed table lands where the gateway
    // would write it.
    let map = ShardMap::new(vec![1, 1]).unwrap();
    let some: Vec<&String> = codes.iter().take(200).collect();
    let values = some
        .iter()
        .enumerate()
        .map(|(i, c)| format!("('id{i}', '{c}')"))
        .collect::<Vec<_>>()
        .join(",");
    seed.query_with(
        &[("insert_distributed_sync", "1")],
        &format!("INSERT INTO placed_cluster.scans (scan_id, code) VALUES {values}"),
    );
    for (s, node) in cluster.nodes().enumerate() {
        let held = node.query("SELECT code FROM placed.scans ORDER BY code");
        let mut want: Vec<&str> = some
            .iter()
            .filter(|c| map.shard(c) == s)
            .map(|c| c.as_str())
            .collect();
        want.sort();
        assert_eq!(held.lines().collect::<Vec<_>>(), want, "shard {}", s + 1);
        assert!(want.len() > 50, "both shards get codes");
    }

    // The gateway's own writes: each code's rows and rollup cells on its
    // shard only; the '*' cells on every shard, adding up.
    let ch = events(seed, "written");
    let written: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    let batch = Batch::new(
        scans(&written, 10),
        vec![signup("e1", "c1", T0 + 1000), signup("e2", "c2", T0 + 2000)],
    );
    ch.write(&batch).await.unwrap();
    for code in &written {
        let holders: Vec<usize> = cluster
            .nodes()
            .enumerate()
            .filter(|(_, n)| {
                count(
                    n,
                    &format!("SELECT count() FROM written.scans WHERE code = '{code}'"),
                ) > 0
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(holders, vec![map.shard(code)], "{code}");
        let cells: Vec<u64> = cluster
            .nodes()
            .map(|n| {
                count(
                    n,
                    &format!("SELECT count() FROM written.scan_rollup WHERE scope = '{code}'"),
                )
            })
            .collect();
        assert_eq!(
            cells.iter().filter(|n| **n > 0).count(),
            1,
            "{code}: {cells:?}"
        );
    }
    for node in cluster.nodes() {
        assert!(
            count(
                node,
                "SELECT count() FROM written.scan_rollup WHERE scope = '*'"
            ) > 0
        );
    }
    // Reads through the cluster: one code (its shard's local tables) and all.
    let backend = Backend::from(ch.clone());
    let all = backend.summary(&day_query(None)).await.unwrap();
    assert_eq!(all.scans, 120);
    assert_eq!(all.signups, 2);
    let one = backend
        .summary(&day_query(Some(&["c1".to_string()])))
        .await
        .unwrap();
    assert_eq!(one.scans, 10);
    assert_eq!(one.signups, 1);
    let page = ch.recent_scans("c3", None, 100).await.unwrap();
    assert_eq!(page.scans.len(), 10);
    let id = &page.scans[0].scan_id;
    assert_eq!(
        ch.find_scan("c3", id).await.unwrap().map(|s| s.code),
        Some("c3".into())
    );
    assert_eq!(
        ch.recent_conversions("c2", None, 10).await.unwrap().len(),
        1
    );

    // Maintenance reaches every shard: an erasure (mutations) and retention
    // (the month's partition of raw scans, rollups kept).
    ch.erase(&Subject::Visitor("v3".into())).await.unwrap();
    let erased = codelink_testkit::wait_until(Duration::from_secs(20), || async {
        cluster.nodes().all(|n| {
            count(
                n,
                "SELECT count() FROM written.scans WHERE visitor_id = 'v3'",
            ) == 0
        })
    })
    .await;
    assert!(erased, "the visitor's ids are blanked on both shards");
    assert_eq!(
        count(seed, "SELECT count() FROM written_cluster.scans"),
        120,
        "rows are kept"
    );
    let dropped = ch.drop_scans_before(T0 + 40 * 86_400_000).await.unwrap();
    assert_eq!(dropped, vec!["202603".to_string()]);
    for node in cluster.nodes() {
        assert_eq!(count(node, "SELECT count() FROM written.scans"), 0);
    }
    assert_eq!(backend.summary(&day_query(None)).await.unwrap().scans, 120);

    // An unknown cluster is named in the error, with the ones the seed knows.
    let wrong = ClickHouseEvents::new(&ClickHouseConfig {
        url: seed.url(),
        database: "x".into(),
        user: None,
        password: None,
        cluster: Some("nope".into()),
    });
    let e = wrong.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("no cluster \"nope\"") && e.contains(ClickHouseCluster::NAME),
        "{e}"
    );
}

/// Raw rows counted once (`FINAL`) and the rollups' totals, per code.
async fn totals(backend: &Backend, codes: &[String]) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for code in codes {
        let s = backend
            .summary(&day_query(Some(std::slice::from_ref(code))))
            .await
            .unwrap();
        out.insert(code.clone(), (s.scans, s.signups));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_fails_the_batch_and_its_replay_counts_once() {
    let mut cluster = ClickHouseCluster::start(&[1, 1], None);
    let ch = events(cluster.seed(), "once");
    ch.migrate().await.unwrap();
    let codes: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let map = ShardMap::new(vec![1, 1]).unwrap();
    assert!(codes.iter().any(|c| map.shard(c) == 0) && codes.iter().any(|c| map.shard(c) == 1));
    let conversions: Vec<Conversion> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| signup(&format!("s{i}"), c, T0 + 5000))
        .collect();
    let first = Batch::new(scans(&codes, 6), conversions);
    ch.write(&first).await.unwrap();

    // Shard 2 down: the next batch fails as a whole (shard 1's part is in).
    cluster.shards[1][0].stop();
    let second = Batch::new(scans(&codes, 20)[6 * codes.len()..].to_vec(), Vec::new());
    let second = Batch {
        scans: scans(&codes, 20)
            .into_iter()
            .filter(|s| !first.scans.iter().any(|f| f.scan_id == s.scan_id))
            .collect(),
        ..second
    };
    assert_eq!(second.scans.len(), 14 * codes.len());
    let e = ch.write(&second).await.unwrap_err().to_string();
    assert!(e.contains("shard 2"), "{e}");

    // Back: the replay (the spool writes the same batch again) completes it,
    // and a replay of a fully written batch adds nothing.
    cluster.shards[1][0].restart();
    ch.write(&second).await.unwrap();
    ch.write(&second).await.unwrap();
    // A writer that remembers no part written (a gateway restarted with the
    // batches in its spool): the markers on each shard skip the rollups.
    let restarted = events(cluster.seed(), "once");
    restarted.write(&second).await.unwrap();
    restarted.write(&first).await.unwrap();
    let backend = Backend::from(ch.clone());
    let want: BTreeMap<String, (u64, u64)> = codes.iter().map(|c| (c.clone(), (20, 1))).collect();
    assert_eq!(totals(&backend, &codes).await, want);
    let all = backend.summary(&day_query(None)).await.unwrap();
    assert_eq!((all.scans, all.signups), (20 * 8, 8));
    // Raw rows: each scan once after FINAL, on its shard.
    for (s, node) in cluster.nodes().enumerate() {
        let on_shard = codes.iter().filter(|c| map.shard(c) == s).count() as u64;
        assert_eq!(
            count(node, "SELECT count() FROM once.scans FINAL"),
            20 * on_shard
        );
    }
    assert_eq!(
        count(
            cluster.seed(),
            "SELECT count() FROM (SELECT DISTINCT scan_id FROM once_cluster.scans)"
        ),
        160
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_tables_over_zookeeper() {
    let zk = ZooKeeper::start();
    let mut cluster = ClickHouseCluster::start(&[2], Some(&zk));
    let ch = events(cluster.seed(), "repl");
    ch.migrate().await.unwrap();
    // The tables on both replicas, replicated.
    for node in cluster.nodes() {
        let engine = node
            .query("SELECT engine FROM system.tables WHERE database = 'repl' AND name = 'scans'");
        assert_eq!(engine.trim(), "ReplicatedReplacingMergeTree");
        let engine = node.query(
            "SELECT engine FROM system.tables WHERE database = 'repl_cluster' AND name = 'scans'",
        );
        assert_eq!(engine.trim(), "Distributed");
    }
    let codes: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
    ch.write(&Batch::new(scans(&codes, 5), Vec::new()))
        .await
        .unwrap();
    // Written to the first replica, readable on both.
    let replicated = codelink_testkit::wait_until(Duration::from_secs(30), || async {
        cluster
            .nodes()
            .all(|n| count(n, "SELECT count() FROM repl.scans") == 20)
            && cluster
                .nodes()
                .all(|n| count(n, "SELECT count() FROM repl.scan_rollup WHERE scope = '*'") > 0)
    })
    .await;
    assert!(replicated, "rows reach both replicas");

    // The first replica down: writes go to the second.
    cluster.shards[0][0].stop();
    let more: Vec<String> = (0..4).map(|i| format!("q{i}")).collect();
    ch.write(&Batch::new(scans(&more, 5), Vec::new()))
        .await
        .unwrap();
    assert_eq!(
        count(&cluster.shards[0][1], "SELECT count() FROM repl.scans"),
        40
    );
    // One code's query reads its shard: the second replica answers.
    let backend = Backend::from(ch.clone());
    let one = backend
        .summary(&day_query(Some(&["q1".to_string()])))
        .await
        .unwrap();
    assert_eq!(one.scans, 5);
    assert_eq!(
        ch.recent_scans("q1", None, 10).await.unwrap().scans.len(),
        5
    );
    cluster.shards[0][0].restart();
    let caught_up = codelink_testkit::wait_until(Duration::from_secs(30), || async {
        count(&cluster.shards[0][0], "SELECT count() FROM repl.scans") == 40
    })
    .await;
    assert!(caught_up, "the first replica catches up");
    assert_eq!(backend.summary(&day_query(None)).await.unwrap().scans, 40);
}

/// The harness's `<distributed_ddl>` path.
const DDL_QUEUE: &str = "/clickhouse/task_queue/ddl";

/// The tasks in the DDL queue: each one's entry (its query, backquotes
/// removed, and hosts) and the hosts
/// (`address:tcp_port`) that finished it.
fn ddl_tasks(node: &ClickHouseServer) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut tasks = BTreeMap::new();
    let names = node.query(&format!(
        "SELECT name FROM system.zookeeper WHERE path = '{DDL_QUEUE}' ORDER BY name"
    ));
    for name in names.lines() {
        let entry = node.query(&format!(
            "SELECT value FROM system.zookeeper WHERE path = '{DDL_QUEUE}' AND name = '{name}'"
        ));
        let finished = node
            .query(&format!(
                "SELECT name FROM system.zookeeper WHERE path = '{DDL_QUEUE}/{name}/finished'"
            ))
            .lines()
            // Host ids are escaped as file names: '.' is %2E.
            .map(|h| h.replace("%2E", "."))
            .collect();
        // 18.16 stores the statement as it prints it: without backquotes.
        tasks.insert(name.to_string(), (entry.replace('`', ""), finished));
    }
    tasks
}

fn column_on(node: &ClickHouseServer, database: &str, table: &str, column: &str) -> bool {
    count(
        node,
        &format!(
            "SELECT count() FROM system.columns \
             WHERE database = '{database}' AND table = '{table}' AND name = '{column}'"
        ),
    ) == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cluster_ddl_goes_through_the_queue_to_every_host() {
    let zk = ZooKeeper::start();
    let cluster = ClickHouseCluster::start(&[2, 1], Some(&zk));
    let seed = cluster.seed();
    let hosts: BTreeSet<String> = cluster
        .nodes()
        .map(|n| format!("{}:{}", n.host(), n.tcp_port()))
        .collect();
    assert_eq!(hosts.len(), 3);
    assert!(ddl_tasks(seed).is_empty());

    // Two gateways starting at once.
    let (a, b) = (events(seed, "onc"), events(seed, "onc"));
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    // A figure for the README, not a check.
    eprintln!(
        "first migration, 2 gateways at once: {:?}",
        started.elapsed()
    );
    ra.unwrap();
    rb.unwrap();
    let tasks = ddl_tasks(seed);
    assert!(!tasks.is_empty());
    eprintln!("tasks queued: {}", tasks.len());
    // Every statement went through the queue and was run by every host.
    for (name, (query, finished)) in &tasks {
        assert!(
            query.contains("ON CLUSTER codelink_test"),
            "{name}: {query}"
        );
        assert_eq!(finished, &hosts, "{name}: {query}");
    }
    for statement in [
        "CREATE DATABASE IF NOT EXISTS onc ON CLUSTER",
        "CREATE TABLE IF NOT EXISTS onc.scans ON CLUSTER",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS onc.scan_rollup_mv ON CLUSTER",
        "CREATE DATABASE IF NOT EXISTS onc_cluster ON CLUSTER",
        "CREATE TABLE IF NOT EXISTS onc_cluster.code_totals ON CLUSTER",
    ] {
        assert!(
            tasks.values().any(|(q, _)| q.contains(statement)),
            "{statement}"
        );
    }
    // Each node's tables, replicated under its own shard's path.
    for (s, shard) in cluster.shards.iter().enumerate() {
        for node in shard {
            let replica = node.query(
                "SELECT zookeeper_path, replica_name FROM system.replicas \
                 WHERE database = 'onc' AND table = 'scans'",
            );
            assert_eq!(
                replica.trim(),
                format!("/clickhouse/tables/{}/onc/scans\t{}", s + 1, node.host())
            );
            let engines = node.query(
                "SELECT name, engine FROM system.tables WHERE database = 'onc_cluster' ORDER BY name",
            );
            assert_eq!(
                engines
                    .lines()
                    .filter(|l| l.ends_with("\tDistributed"))
                    .count(),
                5,
                "{engines}"
            );
            assert_eq!(
                count(
                    node,
                    "SELECT count() FROM system.tables WHERE database = 'onc'"
                ),
                11
            );
        }
    }

    // A second start finds every node up to date: no task queued.
    let started = std::time::Instant::now();
    events(seed, "onc").migrate().await.unwrap();
    eprintln!("a restart's migration: {:?}", started.elapsed());
    assert_eq!(
        ddl_tasks(seed).len(),
        tasks.len(),
        "a restart queues nothing"
    );

    // Rows written by shard, read through the Distributed tables.
    let codes: Vec<String> = (0..10).map(|i| format!("o{i}")).collect();
    a.write(&Batch::new(scans(&codes, 3), Vec::new()))
        .await
        .unwrap();
    let backend = Backend::from(a.clone());
    assert_eq!(backend.summary(&day_query(None)).await.unwrap().scans, 30);

    // An earlier version's schema: a column missing on both shards (dropped
    // on each first replica, replicated) and in the Distributed tables, and
    // one node's Distributed table gone. The next start adds the column on each shard's first replica
    // and makes the Distributed tables anew through the queue.
    for shard in &cluster.shards {
        shard[0].query("ALTER TABLE onc.scans DROP COLUMN route");
    }
    for node in cluster.nodes() {
        node.query("ALTER TABLE onc_cluster.scans DROP COLUMN route");
    }
    cluster.shards[1][0].query("DROP TABLE onc_cluster.code_totals");
    let dropped = codelink_testkit::wait_until(Duration::from_secs(30), || async {
        cluster
            .nodes()
            .all(|n| !column_on(n, "onc", "scans", "route"))
    })
    .await;
    assert!(dropped, "the column is gone on every replica");
    events(seed, "onc").migrate().await.unwrap();
    let upgraded = ddl_tasks(seed);
    assert!(upgraded.len() > tasks.len());
    for (name, (query, finished)) in &upgraded {
        assert_eq!(finished, &hosts, "{name}: {query}");
    }
    assert!(
        upgraded
            .values()
            .any(|(q, _)| q.contains("DROP TABLE IF EXISTS onc_cluster.scans ON CLUSTER")),
        "the stale Distributed table is dropped on every host"
    );
    let added = codelink_testkit::wait_until(Duration::from_secs(30), || async {
        cluster.nodes().all(|n| {
            column_on(n, "onc", "scans", "route")
                && column_on(n, "onc_cluster", "scans", "route")
                && column_on(n, "onc_cluster", "code_totals", "scope")
        })
    })
    .await;
    assert!(
        added,
        "every node has the column and the Distributed tables"
    );
    assert_eq!(backend.summary(&day_query(None)).await.unwrap().scans, 30);

    // A node that does not answer: the migration fails within its bound,
    // naming the node, and queues nothing.
    cluster.shards[1][0].query("DROP TABLE onc_cluster.conversions");
    let queued = ddl_tasks(seed).len();
    cluster.shards[1][0].freeze();
    let started = std::time::Instant::now();
    let e = events(seed, "onc")
        .with_ddl_timeout(Duration::from_secs(3))
        .migrate()
        .await
        .unwrap_err()
        .to_string();
    let waited = started.elapsed();
    cluster.shards[1][0].thaw();
    assert!(
        e.contains(&cluster.shards[1][0].url()) && e.contains("no answer within 3s"),
        "{e}"
    );
    assert!(waited < Duration::from_secs(60), "bounded: {waited:?}");
    assert_eq!(ddl_tasks(seed).len(), queued);
    // Back: the next start completes it.
    events(seed, "onc").migrate().await.unwrap();
    assert!(
        column_on(&cluster.shards[1][0], "onc_cluster", "conversions", "code"),
        "recreated on the node that was frozen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_without_a_ddl_queue_gets_the_tables_node_by_node() {
    let zk = ZooKeeper::start();
    let cluster = ClickHouseCluster::start_with(&[2], Some(&zk), false);
    let ch = events(cluster.seed(), "noq");
    ch.migrate().await.unwrap();
    for node in cluster.nodes() {
        let engine = node
            .query("SELECT engine FROM system.tables WHERE database = 'noq' AND name = 'scans'");
        assert_eq!(engine.trim(), "ReplicatedReplacingMergeTree");
        assert_eq!(
            count(
                node,
                "SELECT count() FROM system.tables WHERE database = 'noq_cluster'"
            ),
            5
        );
    }
    // Nothing went through a DDL queue.
    assert_eq!(
        count(
            cluster.seed(),
            "SELECT count() FROM system.zookeeper WHERE path = '/clickhouse' AND name = 'task_queue'"
        ),
        0
    );
    ch.write(&Batch::new(scans(&["n1".to_string()], 4), Vec::new()))
        .await
        .unwrap();
    let replicated = codelink_testkit::wait_until(Duration::from_secs(30), || async {
        cluster
            .nodes()
            .all(|n| count(n, "SELECT count() FROM noq.scans") == 4)
    })
    .await;
    assert!(replicated, "rows reach both replicas");
}

/// The insert rate per shard: batches of 50,000 scans over 200 codes written
/// by the cluster writer (rollups and raw rows; the shards in parallel), and
/// the same batches on one node. A measurement, not a check:
/// `cargo test -p codelink-analytics --test clickhouse_cluster -- --ignored --nocapture insert_rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it by name"]
async fn insert_rate_per_shard() {
    let cluster = ClickHouseCluster::start(&[1, 1], None);
    let single = ClickHouseServer::start();
    let sharded = events(cluster.seed(), "rate");
    let one = ClickHouseEvents::new(&ClickHouseConfig {
        url: single.url(),
        database: "rate".into(),
        user: None,
        password: None,
        cluster: None,
    });
    sharded.migrate().await.unwrap();
    one.migrate().await.unwrap();
    let codes: Vec<String> = (0..200).map(|i| format!("rate{i}")).collect();
    let all = scans(&codes, 1000);
    let batches: Vec<Batch> = all
        .chunks(50_000)
        .map(|c| Batch::new(c.to_vec(), Vec::new()))
        .collect();
    for (name, ch) in [("2 shards", &sharded), ("1 node", &one)] {
        let started = std::time::Instant::now();
        for b in &batches {
            ch.write(b).await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {} scans in {secs:.2} s: {:.0} scans/s in all",
            all.len(),
            all.len() as f64 / secs
        );
    }
    for (i, node) in cluster.nodes().enumerate() {
        let rows = count(node, "SELECT count() FROM rate.scans");
        eprintln!("shard {}: {rows} rows", i + 1);
    }
}

//! Retention of raw scans (`--retain-days`): old raw scans go, with the
//! visitor data of their age; every number from the rollups stays the same.
//! On the embedded store and on a real ClickHouse 18.16.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::Scan;
use codelink_analytics::query::{Backend, Dimension, Query};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents, EmbeddedSink};
use codelink_analytics::ScanId;
use codelink_testkit::ClickHouseServer;
use std::sync::Arc;

const DAY: u64 = 86_400_000;
/// 2026-01-10T12:00:00Z, 2026-03-10T12:00:00Z.
const JAN: u64 = 1_768_046_400_000;
const MAR: u64 = 1_773_144_000_000;

fn scan(i: u64, ts_ms: u64, visitor: &str) -> Scan {
    Scan {
        scan_id: ScanId::from_parts(ts_ms, 1, i).to_string().into(),
        ts_ms,
        code: "abc".into(),
        channel: "yt".into(),
        visitor_id: visitor.into(),
        source: "qr".into(),
        device: "mobile".into(),
        ..Scan::default()
    }
}

fn batches() -> Vec<Batch> {
    let old: Vec<Scan> = (0..40)
        .map(|i| scan(i, JAN + i * 1000, &format!("v{}", i % 7)))
        .collect();
    let new: Vec<Scan> = (0..25)
        .map(|i| scan(100 + i, MAR + i * 1000, &format!("w{}", i % 5)))
        .collect();
    vec![Batch::new(old, Vec::new()), Batch::new(new, Vec::new())]
}

fn query(from_ms: u64, to_ms: u64) -> Query {
    Query {
        from_ms,
        to_ms,
        tz: "UTC".into(),
        codes: Some(vec!["abc".into()]),
        owner: None,
        now_ms: MAR + DAY,
        hold_ms: 0,
    }
}

/// Every number the rollups give over January, March and both.
async fn numbers(b: &Backend) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in [
        (JAN - DAY, JAN + DAY),
        (MAR - DAY, MAR + DAY),
        (JAN - DAY, MAR + DAY),
    ] {
        let q = query(from, to);
        out.push(format!("{:?}", b.summary(&q).await.unwrap()));
        out.push(format!(
            "{:?}",
            b.breakdown(&q, Dimension::Channel).await.unwrap()
        ));
        out.push(format!("{:?}", b.funnel(&q).await.unwrap()));
    }
    out
}

#[tokio::test]
async fn embedded_prunes_old_raw_scans_and_keeps_every_number() {
    let dir = tempfile::tempdir().unwrap();
    let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
    for b in batches() {
        sink.write(&Arc::new(b)).await.unwrap();
    }
    let backend = Backend::from(sink.clone());
    let before = numbers(&backend).await;
    assert_eq!(sink.all_scans().await.unwrap().len(), 65);

    // Cut at 1 February: January's raw scans and visitor data go.
    let cutoff = JAN + 22 * DAY;
    let pruned = sink.prune_before(cutoff).await.unwrap();
    assert!(pruned.scan_chunks >= 1, "{pruned:?}");
    // Per-day marks are what earlier versions wrote (the unique visitors
    // come from the last visits now): none here to prune.
    assert_eq!(pruned.visit_marks, 0, "{pruned:?}");
    assert_eq!(pruned.last_visits, 7, "{pruned:?}");
    let left = sink.all_scans().await.unwrap();
    assert_eq!(left.len(), 25);
    assert!(left.iter().all(|s| s.ts_ms >= cutoff));
    assert_eq!(numbers(&backend).await, before, "rollups changed");
    // The drill-down finds March only.
    let page = sink.recent_scans("abc", None, 1000).await.unwrap();
    assert_eq!(page.scans.len(), 25);
    // Idempotent.
    let again = sink.prune_before(cutoff).await.unwrap();
    assert_eq!(
        (again.scan_chunks, again.visit_marks, again.last_visits),
        (0, 0, 0)
    );
    // The live counters stay too.
    assert_eq!(sink.code_stats("abc").await.unwrap().total, 65);
}

#[tokio::test]
async fn clickhouse_drops_whole_old_months_of_raw_scans_only() {
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: "retention".to_string(),
        user: None,
        password: None,
        cluster: None,
    });
    events.migrate().await.unwrap();
    for b in batches() {
        events.write(&b).await.unwrap();
    }
    let backend = Backend::from(events.clone());
    let before = numbers(&backend).await;
    let rows = || {
        server
            .query_in("retention", "SELECT count() FROM scans FINAL")
            .trim()
            .to_string()
    };
    assert_eq!(rows(), "65");
    // A cutoff inside February keeps February's partition (if any) and drops
    // January's, which ended more than a day before.
    let dropped = events.drop_scans_before(JAN + 30 * DAY).await.unwrap();
    assert_eq!(dropped, ["202601"]);
    assert_eq!(rows(), "25");
    assert_eq!(numbers(&backend).await, before, "rollups changed");
    // Nothing more to drop; a cutoff a day after March's end would drop it.
    assert!(events
        .drop_scans_before(JAN + 30 * DAY)
        .await
        .unwrap()
        .is_empty());
    assert!(events.drop_scans_before(MAR).await.unwrap().is_empty());
}

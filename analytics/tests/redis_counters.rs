//! The Redis counter sink against a real redis-server: a batch is applied once
//! and whole, or not at all, also when Redis is out of memory or holds a key of
//! the wrong type.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::Scan;
use codelink_analytics::redis_conn::RedisTarget;
use codelink_analytics::sink::RedisCounters;
use codelink_analytics::ScanId;
use codelink_testkit::RedisServer;
use std::sync::Arc;

fn scan(code: &str, n: u64) -> Scan {
    let ms = 1_700_000_000_000 + n;
    Scan {
        scan_id: ScanId::from_parts(ms, 11, n).to_string().into(),
        ts_ms: ms,
        code: code.into(),
        channel: "yt".into(),
        visitor_id: format!("visitor-{n}").into(),
        source: "link".into(),
        ..Scan::default()
    }
}

fn batch(code: &str, range: std::ops::Range<u64>) -> Arc<Batch> {
    Arc::new(Batch::new(
        range.map(|n| scan(code, n)).collect(),
        Vec::new(),
    ))
}

async fn redis_cmd(url: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn out_of_memory_refuses_the_whole_batch_and_the_retry_applies_it_once() {
    let server = RedisServer::start();
    let url = server.url();
    let sink = RedisCounters::connect(&RedisTarget::Single(url.clone()), "t").unwrap();
    sink.write(&batch("spring", 0..10)).await.unwrap();

    // Out of memory (noeviction): the batch is refused before any of it lands.
    redis_cmd(&url, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let b = batch("spring", 10..30);
    assert!(
        sink.write(&b).await.is_err(),
        "an OOM Redis must refuse the batch"
    );
    redis_cmd(&url, &["CONFIG", "SET", "maxmemory", "0"]).await;
    assert_eq!(sink.code_stats("spring").await.unwrap().total, 10);

    // The retry (what the spool replay does) applies it, once.
    sink.write(&b).await.unwrap();
    sink.write(&b).await.unwrap();
    let stats = sink.code_stats("spring").await.unwrap();
    assert_eq!(stats.total, 30);
    assert_eq!(stats.human, 30);
}

#[tokio::test]
async fn a_key_of_the_wrong_type_spoils_only_its_own_updates() {
    let server = RedisServer::start();
    let url = server.url();
    let sink = RedisCounters::connect(&RedisTarget::Single(url.clone()), "t").unwrap();
    // Something else wrote a string where the counters of `broken` go.
    redis_cmd(&url, &["SET", "t:stats:broken", "not a hash"]).await;
    let mut scans: Vec<Scan> = (0..5).map(|n| scan("broken", n)).collect();
    scans.extend((5..12).map(|n| scan("fine", n)));
    let b = Arc::new(Batch::new(scans, Vec::new()));
    sink.write(&b).await.unwrap();
    sink.write(&b).await.unwrap();
    let fine = sink.code_stats("fine").await.unwrap();
    assert_eq!((fine.total, fine.human), (7, 7));
    assert_eq!(
        redis_cmd(&url, &["GET", "t:stats:broken"]).await,
        redis::Value::BulkString(b"not a hash".to_vec())
    );
    // The visitors of `broken` were still counted: only its hash was refused.
    let uv = redis_cmd(&url, &["PFCOUNT", "t:uv:broken:2023-11-14"]).await;
    assert_eq!(uv, redis::Value::Int(5));
}

/// A batch seen before still writes (its marker's TTL), so the `WAIT` that
/// follows a replay on a new connection (after a failover or a restart) has
/// a write of that connection to wait for, replicated after the batch.
#[tokio::test]
async fn a_replay_renews_the_marker_and_counts_nothing_again() {
    let server = RedisServer::start();
    let url = server.url();
    let b = batch("summer", 0..10);
    let first = RedisCounters::connect(&RedisTarget::Single(url.clone()), "t").unwrap();
    first.write(&b).await.unwrap();
    let marker = format!("t:batch:{}", b.id);
    redis_cmd(&url, &["EXPIRE", &marker, "100"]).await;

    // The replay, as the spool does it after a restart: another connection.
    let again = RedisCounters::connect(&RedisTarget::Single(url.clone()), "t").unwrap();
    again.write(&b).await.unwrap();
    let ttl = match redis_cmd(&url, &["TTL", &marker]).await {
        redis::Value::Int(n) => n,
        other => panic!("TTL answered {other:?}"),
    };
    assert!(ttl > 6 * 24 * 3600, "the marker was not renewed: TTL {ttl}");
    assert_eq!(again.code_stats("summer").await.unwrap().total, 10);
}

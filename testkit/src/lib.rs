//! The project's own test harness.
//!
//! - [`RedisServer`]: a real `redis-server` (Debian package) started in a temp dir
//!   on a free port and killed on drop. Can be stopped and started again on the
//!   same port to simulate an outage.
//! - [`RedisCluster`]: a real Redis Cluster of 3 masters (optionally each with
//!   a replica) from `redis-server --cluster-enabled yes` and
//!   `redis-cli --cluster create`, for the `--redis-cluster` suites and failover.
//! - [`http`]: a minimal HTTP/1.1 client over a fresh TCP connection, so tests talk
//!   to the gateway exactly as followers and operators do.
//! - [`ClickHouseServer`]: a real `clickhouse-server` (Debian 18.16) on free ports,
//!   stop/restart on the same ports and data for outages.
//! - [`ClickHouseCluster`]: shards and replicas of `clickhouse-server`, each
//!   node on its own loopback address with the same HTTP port, and [`ZooKeeper`]
//!   (Debian's jars, run with `java`) for replicated tables and `ON CLUSTER`
//!   DDL; [`ensure_loopback_aliases`] puts those addresses on `lo`.
//! - [`qr`]: reading QR images back with a real decoder.
//! - [`mmdb`]: writing a small MaxMind DB (GeoIP) file of countries.
//! - [`browser`]: a headless Debian `chromium` driven through `chromedriver` (WebDriver).

pub mod browser;
mod clickhouse;
mod clickhouse_cluster;
pub mod http;
mod loopback;
pub mod mmdb;
pub mod qr;
mod redis;
mod redis_cluster;
mod zookeeper;

pub use clickhouse::ClickHouseServer;
pub use clickhouse_cluster::ClickHouseCluster;
pub use loopback::ensure_loopback_aliases;
pub use redis::RedisServer;
pub use redis_cluster::{RedisCluster, NODE_TIMEOUT_MS};
pub use zookeeper::ZooKeeper;

use std::net::TcpListener;

/// A port that was free a moment ago (bind to :0, read, release).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

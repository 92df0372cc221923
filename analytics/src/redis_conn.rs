//! The one Redis connection type of the live store, the webhook outbox and
//! the gateway's code store: a single server (`--redis-url`, a
//! `ConnectionManager`) or a Redis Cluster (`--redis-cluster`, the `redis`
//! crate's async cluster connection, which follows `MOVED`/`ASK` and
//! re-reads the slot map after a failover).
//!
//! Both implement [`redis::aio::ConnectionLike`] through [`RedisConn`], so a
//! command, a pipeline or a script is sent the same way in either mode; the
//! cluster connection routes each by its first key (every pipeline and
//! script here keeps its keys in one slot: see [`crate::redis_keys`]). Only
//! what must reach every master ([`RedisConn::scan_keys`],
//! [`RedisConn::wait_replicas`]) knows the mode.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://host:port/`.
    Single(String),
    /// Seed nodes of a Redis Cluster; the others are found from them.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// `redis://h1:p1,redis://h2:p2,…` (the `--redis-cluster` value): at
    /// least one seed, each a `redis://` URL without a database number
    /// (a cluster has only database 0).
    pub fn cluster_from_list(list: &str) -> Result<Self, String> {
        let nodes: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if nodes.is_empty() {
            return Err("--redis-cluster needs at least one seed node, e.g. redis://127.0.0.1:7000,redis://127.0.0.1:7001".into());
        }
        for n in &nodes {
            let info =
                redis::IntoConnectionInfo::into_connection_info(n.as_str()).map_err(|e| {
                    format!(
                        "--redis-cluster: {n:?} is not a Redis URL ({e}); write redis://host:port"
                    )
                })?;
            if info.redis_settings().db() != 0 {
                return Err(format!(
                    "--redis-cluster: {n:?} names database {}; a Redis Cluster has only database 0",
                    info.redis_settings().db()
                ));
            }
        }
        Ok(RedisTarget::Cluster(nodes))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }
}

/// A lazily connecting connection to a single server or a cluster (cheap to
/// clone: both are multiplexed handles).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterHandle),
}

/// The cluster connection, replaced by a fresh one after it timed out or
/// lost a node (at most every [`RECONNECT_GAP`]): after a master was killed
/// and its replica promoted, the crate's connection sometimes kept timing
/// out on the moved slots while a new connection worked at once (seen in
/// `tests/redis_cluster.rs`, about one failover in five).
#[derive(Clone)]
pub struct ClusterHandle(Arc<ClusterShared>);

struct ClusterShared {
    client: ClusterClient,
    config: redis::cluster::ClusterConfig,
    current: Mutex<(ClusterConnection, Instant)>,
}

/// The shortest time between two replacements of the cluster connection.
const RECONNECT_GAP: Duration = Duration::from_secs(2);

impl ClusterHandle {
    fn conn(&self) -> ClusterConnection {
        match self.0.current.lock() {
            Ok(c) => c.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Replaces the connection after an error that says it may be stuck.
    fn after<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() {
                if let Ok(mut c) = self.0.current.lock() {
                    if c.1.elapsed() >= RECONNECT_GAP {
                        tracing::debug!(error = %e, "redis cluster connection replaced");
                        *c = (
                            self.0
                                .client
                                .get_pending_async_connection_with_config(self.0.config.clone()),
                            Instant::now(),
                        );
                    }
                }
            }
        }
        r
    }

    async fn route(&self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        let r = self.conn().route_command(cmd, routing).await;
        self.after(r)
    }
}

impl RedisConn {
    /// Connects lazily (the first command connects), with `response` as the
    /// longest wait for one answer: 1 s to connect; a single server is retried
    /// once, a cluster command a few times within `response` (it follows
    /// redirections and waits out a failover's election up to that bound).
    pub fn open(target: &RedisTarget, response: Duration) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(response))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisTarget::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .retries(4)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .overall_response_timeout(Some(response))
                    .build()?;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(Duration::from_secs(1))
                    .set_response_timeout(response);
                let conn = client.get_pending_async_connection_with_config(config.clone());
                Ok(RedisConn::Cluster(ClusterHandle(Arc::new(ClusterShared {
                    client,
                    config,
                    current: Mutex::new((conn, Instant::now())),
                }))))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Every key matching `pattern` (a Redis glob), by `SCAN`: on a cluster,
    /// on every master in turn (each holds its own slots' keys).
    pub async fn scan_keys(&self, pattern: &str) -> RedisResult<Vec<String>> {
        match self {
            RedisConn::Single(c) => {
                scan_node(pattern, |cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<(u64, Vec<String>)>(&mut c).await }
                })
                .await
            }
            RedisConn::Cluster(c) => {
                let mut out = Vec::new();
                for (host, port) in self.masters().await? {
                    let keys = scan_node(pattern, |cmd| {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        async move {
                            let v = c.route(cmd, routing).await?;
                            redis::from_redis_value::<(u64, Vec<String>)>(v)
                                .map_err(redis::RedisError::from)
                        }
                    })
                    .await?;
                    out.extend(keys);
                }
                Ok(out)
            }
        }
    }

    /// The masters of the cluster (host, port), from `CLUSTER SLOTS`; on a
    /// single server, nothing.
    pub async fn masters(&self) -> RedisResult<Vec<(String, u16)>> {
        let RedisConn::Cluster(c) = self else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let slots: Vec<Value> = redis::from_redis_value(
            c.route(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                .await?,
        )
        .map_err(redis::RedisError::from)?;
        let mut masters = Vec::new();
        for range in slots {
            // [start, end, [host, port, id, …] master, replicas…]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let host: String = match master.first() {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => continue,
            };
            let port: u16 = match master.get(1) {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => continue,
            };
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        Ok(masters)
    }

    /// `WAIT replicas timeout` on every master but those in `skip` (a
    /// single server: on it),
    /// at once: for each, its address (empty on a single server) and how
    /// many replicas acknowledged this connection's writes to it so far.
    /// `WAIT` blocks the connection it is sent on, so it is sent once per
    /// master, after the writes, not once per write.
    pub async fn wait_replicas(
        &self,
        replicas: u32,
        timeout: Duration,
        skip: &[NodeAddr],
    ) -> RedisResult<Vec<(NodeAddr, u64)>> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout.as_millis() as u64);
        match self {
            RedisConn::Single(c) => Ok(vec![(
                NodeAddr::default(),
                cmd.query_async(&mut c.clone()).await?,
            )]),
            RedisConn::Cluster(c) => {
                let mut set = tokio::task::JoinSet::new();
                for (host, port) in self.masters().await? {
                    if skip.iter().any(|(h, p)| *h == host && *p == port) {
                        continue;
                    }
                    let (c, cmd) = (c.clone(), cmd.clone());
                    set.spawn(async move {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let v = c.route(cmd, routing).await?;
                        let n: u64 = redis::from_redis_value(v).map_err(redis::RedisError::from)?;
                        Ok::<_, redis::RedisError>(((host, port), n))
                    });
                }
                let mut out = Vec::new();
                while let Some(r) = set.join_next().await {
                    let r = r.map_err(|e| {
                        redis::RedisError::from(std::io::Error::other(format!("WAIT task: {e}")))
                    })?;
                    out.push(r?);
                }
                Ok(out)
            }
        }
    }

    /// How many replicas are connected to the master at `addr` (single
    /// server: the server): `connected_slaves` of `INFO replication`.
    pub async fn connected_replicas(&self, addr: &NodeAddr) -> RedisResult<u64> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        let text: String = match self {
            RedisConn::Single(c) => cmd.query_async(&mut c.clone()).await?,
            RedisConn::Cluster(c) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: addr.0.clone(),
                    port: addr.1,
                });
                let v = c.route(cmd, routing).await?;
                redis::from_redis_value(v).map_err(redis::RedisError::from)?
            }
        };
        Ok(text
            .lines()
            .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// A node's (host, port); empty for the single server.
pub type NodeAddr = (String, u16);

/// `SCAN 0 MATCH pattern COUNT 1000` until the cursor comes back to 0, each
/// step sent by `send`.
async fn scan_node<F, Fut>(pattern: &str, send: F) -> RedisResult<Vec<String>>
where
    F: Fn(Cmd) -> Fut,
    Fut: std::future::Future<Output = RedisResult<(u64, Vec<String>)>>,
{
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, keys) = send(cmd).await?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(h) => {
                let h = h.clone();
                Box::pin(async move {
                    let r = h.conn().req_packed_command(cmd).await;
                    h.after(r)
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(h) => {
                let h = h.clone();
                Box::pin(async move {
                    let r = h.conn().req_packed_commands(cmd, offset, count).await;
                    h.after(r)
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(h) => h.conn().get_db(),
        }
    }
}

//! A ClickHouse cluster (`--clickhouse-cluster NAME`): the shards and
//! replicas of one `<remote_servers>` entry, found in the seed node's
//! `system.clusters`.
//!
//! - **Nodes.** Every node's HTTP URL is the seed's with the host replaced
//!   (`host_name` in `system.clusters`): every node's HTTP interface listens
//!   on the seed's port, with the seed's credentials and database.
//! - **Tables.** Every node holds the single-node tables (`MIGRATIONS`, same
//!   names, so one writer serves both); the database `{db}_cluster` on every
//!   node holds a `Distributed` table of the same name over each raw and
//!   rollup table ([`DISTRIBUTED`]), so every query the single-node backend
//!   sends reads the whole cluster unchanged.
//! - **Writes** are sharded by code ([`ShardMap`]: `sipHash64(code)` modulo
//!   the total weight, through the shards' weights, as `Distributed` places a
//!   row; the rollups' sharding key is `sipHash64(scope)`, a code). A batch is
//!   split per shard, each part keeping the batch's id, and written by the
//!   single-node writer to the first replica of its shard that takes it. The
//!   part's rollup chunks carry markers named by the batch id, kept on that
//!   shard; a shard's part is cut from the same scans on every replay (the
//!   shard of a code never changes), so a replay skips what a shard holds.
//!   The batch fails (and is spooled) when any shard fails.
//! - **Reads.** A query over one code's scope (or codes all on one shard), a
//!   code's drill-down and the fraud check's point read go to that shard
//!   (its replicas in order, the first that answers); everything else
//!   through the `Distributed` tables of the seed. A code lives on one shard, so `FINAL`, `LIMIT 1 BY` and `argMax`
//!   dedupe as on one node.
//! - **Replication.** When the seed has ZooKeeper (its `system.zookeeper`
//!   table exists: a `<zookeeper>` config), the local tables are
//!   `Replicated*MergeTree` ([`REPLICATED_ENGINE`], ZooKeeper path by the
//!   `{shard}` macro, replica by `{replica}`). The gateway writes one replica
//!   of a shard and ZooKeeper copies the parts;
//!   `<internal_replication>true</internal_replication>` is what the cluster
//!   must declare for other writers inserting through the `Distributed`
//!   tables (18.16's `system.clusters` does not show the setting, so the
//!   gateway cannot check it).
//! - **DDL with ZooKeeper: `ON CLUSTER`.** The seed runs every `CREATE` and
//!   `DROP` once with `ON CLUSTER` ([`ON_CLUSTER`]) and waits until every
//!   host of the cluster has run it (`distributed_ddl_task_timeout`, 20 s
//!   by default): the answer lists each host's status, and a host's error
//!   fails the migration with its message. Before that every node is asked
//!   for its tables and columns (each within that bound): a node that does
//!   not answer fails the migration at once, naming it, and nothing is sent
//!   to the DDL queue when every node is up to date (a restart adds no
//!   task). `ALTER … ADD COLUMN` runs on each shard's first replica, not `ON
//!   CLUSTER`: 18.16 has no `IF NOT EXISTS` for columns, so each shard is
//!   checked on its own, and a replicated `ALTER` reaches the shard's other
//!   replicas through ZooKeeper. Every statement is idempotent (`IF [NOT]
//!   EXISTS`), so gateways starting at once queue the same statements and
//!   the later ones change nothing. A host that times out keeps the task in
//!   the queue and runs it when it is back; the migration is retried before
//!   the next write. A seed without `<distributed_ddl>` (18.16: "DDL
//!   background thread is not initialized") gets per-node DDL, as without
//!   ZooKeeper, with a warning.
//! - **DDL without ZooKeeper: per node.** The gateway creates the tables on
//!   every node itself, each shard's first replica first.
//!   Without ZooKeeper each shard must have one replica.

use super::{
    quote_ident, ClickHouseConfig, ClickHouseEvents, Tables, ADDED_COLUMNS, MIGRATIONS, RECREATED,
};
use crate::batch::Batch;
use crate::sink::SinkError;
use serde::Deserialize;
use std::sync::Arc;

/// The `Distributed` tables (in `{db}_cluster`), one per local table, and
/// their sharding key's column.
pub const DISTRIBUTED: &[(&str, &str)] = &[
    ("scans", "code"),
    ("conversions", "code"),
    ("scan_rollup", "scope"),
    ("conversion_rollup", "scope"),
    ("code_totals", "scope"),
];

/// A `Distributed` table over a local one. `{cdb}` the cluster database,
/// `{db}` the local one (quoted), `{cluster}`, `{dbname}`, `{table}` string
/// literals, `{key}` the sharding column.
pub const DISTRIBUTED_DDL: &str = "CREATE TABLE IF NOT EXISTS {cdb}.{table_ident} \
    AS {db}.{table_ident} ENGINE = Distributed({cluster}, {dbname}, {table}, sipHash64({key}))";

/// What goes after the name of the database, table or view a statement
/// creates or drops to run it on every host of the cluster; `{cluster}` the
/// cluster's name as a quoted identifier.
pub const ON_CLUSTER: &str = " ON CLUSTER {cluster}";

/// How long `ON CLUSTER` DDL waits for every host by default (below the 30 s
/// the gateway gives a cluster's migration at start-up, so the error it logs
/// is this one).
pub const DDL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The engine of a replicated local table: `{engine}` is `ReplacingMergeTree`
/// or `AggregatingMergeTree`; `{shard}` and `{replica}` are each node's
/// `<macros>`.
pub const REPLICATED_ENGINE: &str =
    "ENGINE = Replicated{engine}('/clickhouse/tables/{shard}/{dbname}/{table}', '{replica}')";

/// Where each code's rows live: `sipHash64(code) % total weight`, each shard
/// owning as many consecutive slots as its weight, in shard order — what a
/// `Distributed` table with the sharding key `sipHash64(code)` computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Each shard's weight, in `shard_num` order.
    weights: Vec<u64>,
    total: u64,
}

impl ShardMap {
    /// `None` when no shard has a weight.
    pub fn new(weights: Vec<u64>) -> Option<Self> {
        let total = weights.iter().sum();
        (total > 0).then_some(Self { weights, total })
    }

    /// The index (from 0, in `shard_num` order) of `code`'s shard.
    pub fn shard(&self, code: &str) -> usize {
        let mut slot = sip_hash64(code.as_bytes()) % self.total;
        for (i, w) in self.weights.iter().enumerate() {
            if slot < *w {
                return i;
            }
            slot -= w;
        }
        unreachable!("slot < total weight")
    }
}

/// ClickHouse's `sipHash64` of a string: SipHash-2-4 with both keys 0.
pub fn sip_hash64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    // std's SipHasher is exactly SipHash-2-4 with zero keys; it is deprecated
    // only as the default hasher of maps (which want random keys), not as a
    // function. `write` hashes the bytes alone (no length suffix).
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write(bytes);
    h.finish()
}

/// The cluster as the seed describes it.
pub(super) struct Cluster {
    pub(super) name: String,
    seed: ClickHouseConfig,
    topology: tokio::sync::OnceCell<Arc<Topology>>,
    migrated: tokio::sync::OnceCell<()>,
    /// `ON CLUSTER` DDL's bound, in milliseconds ([`DDL_TIMEOUT`]).
    ddl_timeout_ms: std::sync::atomic::AtomicU64,
    /// The (batch id, shard) parts this process wrote, newest last (at
    /// most [`WRITTEN_KEPT`]): while one shard is down, the spool retries
    /// its batch every second, and the shards that took their part are not
    /// written again (their rollups would be skipped by the markers, but
    /// the raw rows would be inserted again, to be merged away later).
    written: std::sync::Mutex<std::collections::VecDeque<(String, usize)>>,
}

/// Parts remembered as written.
const WRITTEN_KEPT: usize = 4096;

pub(super) struct Topology {
    map: ShardMap,
    /// Shards in `shard_num` order; each its replicas in `replica_num` order.
    shards: Vec<Vec<ClickHouseEvents>>,
    replicated: bool,
}

#[derive(Deserialize, clickhouse::Row)]
struct ClusterRow {
    shard_num: u32,
    shard_weight: u32,
    host_name: String,
}

impl Cluster {
    pub(super) fn new(name: String, seed: ClickHouseConfig) -> Self {
        Self {
            name,
            seed,
            topology: Default::default(),
            migrated: Default::default(),
            ddl_timeout_ms: (DDL_TIMEOUT.as_millis() as u64).into(),
            written: Default::default(),
        }
    }

    pub(super) fn set_ddl_timeout(&self, timeout: std::time::Duration) {
        self.ddl_timeout_ms.store(
            timeout.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn ddl_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.ddl_timeout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The database of the `Distributed` tables.
    pub(super) fn database(seed_database: &str) -> String {
        format!("{seed_database}_cluster")
    }

    /// The shards and replicas, read once from the seed (again on the next
    /// call when that failed).
    pub(super) async fn topology(&self) -> Result<Arc<Topology>, SinkError> {
        self.topology
            .get_or_try_init(|| self.discover())
            .await
            .cloned()
    }

    async fn discover(&self) -> Result<Arc<Topology>, SinkError> {
        let seed = ClickHouseEvents::node(&self.seed);
        let admin = seed.client.clone().with_database("default");
        let rows = admin
            .query(
                "SELECT shard_num, shard_weight, host_name FROM system.clusters \
                 WHERE cluster = ? ORDER BY shard_num, replica_num",
            )
            .bind(&self.name)
            .fetch_all::<ClusterRow>()
            .await?;
        if rows.is_empty() {
            let known: Vec<String> = admin
                .query("SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster")
                .fetch_all()
                .await?;
            return Err(SinkError::ClusterConfig(format!(
                "the ClickHouse at {} knows no cluster {:?} (it knows: {}); name one of its \
                 <remote_servers> entries in --clickhouse-cluster",
                self.seed.url,
                self.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        // `system.zookeeper` exists exactly when the node has a <zookeeper>
        // config (a query on it could fail while the session is being made).
        let replicated = admin
            .query("SELECT count() FROM system.tables WHERE database = 'system' AND name = 'zookeeper'")
            .fetch_one::<u64>()
            .await?
            > 0;
        let mut shards: Vec<Vec<ClickHouseEvents>> = Vec::new();
        let mut weights = Vec::new();
        let mut last = None;
        for row in rows {
            if last != Some(row.shard_num) {
                last = Some(row.shard_num);
                shards.push(Vec::new());
                weights.push(u64::from(row.shard_weight));
            }
            let url = node_url(&self.seed.url, &row.host_name)?;
            let config = ClickHouseConfig {
                url,
                cluster: None,
                ..self.seed.clone()
            };
            let mut node = ClickHouseEvents::node(&config);
            node.in_cluster = true;
            shards.last_mut().expect("pushed").push(node);
        }
        if !replicated {
            if let Some(n) = shards.iter().position(|s| s.len() > 1) {
                return Err(SinkError::ClusterConfig(format!(
                    "shard {} of cluster {:?} has {} replicas, but the ClickHouse at {} has no \
                     ZooKeeper: replicas need Replicated tables (configure <zookeeper> on every \
                     node), or give each shard one replica",
                    n + 1,
                    self.name,
                    shards[n].len(),
                    self.seed.url
                )));
            }
        }
        let map = ShardMap::new(weights).ok_or_else(|| {
            SinkError::ClusterConfig(format!(
                "every shard of cluster {:?} has weight 0: give at least one a <weight>",
                self.name
            ))
        })?;
        Ok(Arc::new(Topology {
            map,
            shards,
            replicated,
        }))
    }
}

impl Cluster {
    /// The tables on every node and the `Distributed` tables over them:
    /// `ON CLUSTER` with ZooKeeper, else node by node (see the module docs).
    pub(super) async fn migrate(&self) -> Result<(), SinkError> {
        let topology = self.topology().await?;
        if topology.replicated {
            match self.migrate_on_cluster(&topology).await {
                Err(e) if e.to_string().contains(NO_DDL_WORKER) => tracing::warn!(
                    cluster = %self.name,
                    "the seed runs no distributed DDL (no <distributed_ddl> in its config); \
                     creating the tables on each node instead of ON CLUSTER"
                ),
                done => {
                    done?;
                    for node in topology.nodes() {
                        let _ = node.migrated.set(());
                    }
                    return Ok(());
                }
            }
        }
        self.migrate_each_node(&topology).await
    }

    /// The tables created node by node (each shard's first replica first).
    async fn migrate_each_node(&self, topology: &Topology) -> Result<(), SinkError> {
        let database = &self.seed.database;
        let cdb = quote_ident(&Cluster::database(database));
        let mut order: Vec<(usize, &ClickHouseEvents)> = topology
            .shards
            .iter()
            .flat_map(|s| s.iter().enumerate())
            .collect();
        order.sort_by_key(|(replica, _)| *replica);
        for (replica, node) in order {
            let tables = if topology.replicated {
                Tables::Replicated {
                    first: replica == 0,
                }
            } else {
                Tables::Plain
            };
            node.migrate_ddl(tables).await.map_err(|e| at(node, e))?;
            let admin = node.client.clone().with_database("default");
            admin
                .query(&format!("CREATE DATABASE IF NOT EXISTS {cdb}"))
                .execute()
                .await
                .map_err(|e| at(node, e.into()))?;
            for (table, key) in DISTRIBUTED {
                if distributed_stale(node, table).await? {
                    let drop = format!("DROP TABLE IF EXISTS {cdb}.{}", quote_ident(table));
                    admin.query(&drop).execute().await?;
                }
                let sql = distributed_sql(&self.name, database, table, key);
                admin
                    .query(&sql)
                    .execute()
                    .await
                    .map_err(|e| at(node, e.into()))?;
            }
        }
        for node in topology.nodes() {
            let _ = node.migrated.set(());
        }
        Ok(())
    }

    /// The migration through the DDL queue (see the module docs).
    async fn migrate_on_cluster(&self, topology: &Topology) -> Result<(), SinkError> {
        let database = &self.seed.database;
        let cdb_name = Cluster::database(database);
        let bound = self.ddl_timeout();
        let mut schemas = Vec::new();
        for node in topology.nodes() {
            let why = match tokio::time::timeout(bound, node_schema(node, &cdb_name)).await {
                Ok(Ok(schema)) => {
                    schemas.push(schema);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {bound:?}"),
            };
            return Err(at(
                node,
                SinkError::Cluster(format!(
                    "{why}; ON CLUSTER DDL needs every node of the cluster up: start it \
                     (or take it out of <remote_servers>)"
                )),
            ));
        }
        if schemas.iter().all(|s| up_to_date(s, database, &cdb_name)) {
            tracing::debug!(cluster = %self.name, "clickhouse cluster tables up to date");
            return Ok(());
        }
        let seed = ClickHouseEvents::node(&self.seed)
            .client
            .with_database("default");
        let db = quote_ident(database);
        let cdb = quote_ident(&cdb_name);
        // As on one node: a view and its input lacking a column go first.
        for (input, view, column) in RECREATED {
            let key = (database.clone(), input.to_string());
            if schemas
                .iter()
                .any(|s| s.get(&key).is_some_and(|c| !c.contains(*column)))
            {
                for table in [view, input] {
                    let sql = format!("DROP TABLE IF EXISTS {db}.{}", quote_ident(table));
                    self.on_cluster(&seed, &on_cluster_sql(&sql, &db, &self.name))
                        .await?;
                }
            }
        }
        for node in topology.each_shard_once() {
            node.add_columns().await.map_err(|e| at(node, e))?;
        }
        for sql in MIGRATIONS {
            let sql = replicated_sql(&sql.replace("{db}", &db), database, &db);
            self.on_cluster(&seed, &on_cluster_sql(&sql, &db, &self.name))
                .await?;
        }
        let sql = format!("CREATE DATABASE IF NOT EXISTS {cdb}");
        self.on_cluster(&seed, &on_cluster_sql(&sql, &cdb, &self.name))
            .await?;
        for (table, key) in DISTRIBUTED {
            // Checked now: the ALTERs above may have added local columns.
            let mut stale = false;
            for node in topology.nodes() {
                stale |= distributed_stale(node, table).await?;
            }
            if stale {
                let sql = format!("DROP TABLE IF EXISTS {cdb}.{}", quote_ident(table));
                self.on_cluster(&seed, &on_cluster_sql(&sql, &cdb, &self.name))
                    .await?;
            }
            let sql = distributed_sql(&self.name, database, table, key);
            self.on_cluster(&seed, &on_cluster_sql(&sql, &cdb, &self.name))
                .await?;
        }
        Ok(())
    }

    /// Runs `sql` (an `ON CLUSTER` statement) on the seed and waits until
    /// every host has run it; a host's error or the bound passing fails it.
    async fn on_cluster(&self, seed: &clickhouse::Client, sql: &str) -> Result<(), SinkError> {
        let bound = self.ddl_timeout();
        let hosts = seed
            .query(sql)
            .with_setting(
                "distributed_ddl_task_timeout",
                bound.as_secs().max(1).to_string(),
            )
            // The whole answer before the status: a host's error or the
            // timeout (raised after the hosts' lines) is then an HTTP error.
            .with_setting("wait_end_of_query", "1")
            .fetch_all::<HostStatus>()
            .await
            .map_err(|e| {
                let e = e.to_string();
                SinkError::Cluster(if e.contains("distributed_ddl_task_timeout") {
                    format!(
                        "ON CLUSTER DDL on cluster {:?} did not finish on every host within \
                         {bound:?}: {e}. Every node needs <distributed_ddl> and the same \
                         ZooKeeper, and must find itself among the hosts of <remote_servers> \
                         (one of its addresses with its own TCP port); an unfinished host runs \
                         the DDL when it can, and the gateway migrates again before its next \
                         write",
                        self.name
                    )
                } else {
                    format!("ON CLUSTER DDL on cluster {:?}: {e}", self.name)
                })
            })?;
        if let Some(h) = hosts.iter().find(|h| h.status != 0) {
            return Err(SinkError::Cluster(format!(
                "ON CLUSTER DDL on cluster {:?} failed on host {}:{} (code {}): {}",
                self.name, h.host, h.port, h.status, h.error
            )));
        }
        tracing::debug!(cluster = %self.name, hosts = hosts.len(), sql, "ON CLUSTER DDL done");
        Ok(())
    }

    /// Splits the batch per shard and writes every part (see the module
    /// docs); fails when any shard fails.
    pub(super) async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        let topology = self.topology().await?;
        let mut writes = tokio::task::JoinSet::new();
        let done: Vec<usize> = {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written
                .iter()
                .filter(|(id, _)| *id == batch.id)
                .map(|(_, shard)| *shard)
                .collect()
        };
        for (shard, part) in topology.split(batch) {
            if done.contains(&shard) {
                continue;
            }
            let replicas = topology.shards[shard].clone();
            writes.spawn(async move { (shard, write_shard(replicas, part).await) });
        }
        let mut failed = None;
        while let Some(done) = writes.join_next().await {
            match done {
                Ok((shard, Ok(()))) => {
                    let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
                    if written.len() >= WRITTEN_KEPT {
                        written.pop_front();
                    }
                    written.push_back((batch.id.clone(), shard));
                }
                Ok((shard, Err(e))) => {
                    failed.get_or_insert(SinkError::Cluster(format!(
                        "shard {} of cluster {:?}: {e}",
                        shard + 1,
                        self.name
                    )));
                }
                Err(e) => {
                    failed.get_or_insert(SinkError::Cluster(format!("a shard's write: {e}")));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    pub(super) async fn drop_scans_before(&self, cutoff_ms: u64) -> Result<Vec<String>, SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        let mut dropped = Vec::new();
        for node in self.topology().await?.each_shard_once() {
            dropped.extend(node.drop_scans_before_node(cutoff_ms).await?);
        }
        dropped.sort();
        dropped.dedup();
        Ok(dropped)
    }

    pub(super) async fn erase(&self, who: &crate::sink::Subject) -> Result<(), SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        for node in self.topology().await?.each_shard_once() {
            node.erase_node(who).await?;
        }
        Ok(())
    }

    pub(super) async fn backfill_pending(&self) -> Result<bool, SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        for node in self.topology().await?.each_shard_once() {
            if node.backfill_pending_node().await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) async fn backfill_todo(&self) -> Result<super::BackfillProgress, SinkError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        let mut days = Vec::new();
        for node in self.topology().await?.each_shard_once() {
            days.extend(node.backfill_todo_node().await?.days);
        }
        days.sort_unstable();
        days.dedup();
        Ok(super::BackfillProgress { days })
    }

    pub(super) async fn backfill_day(&self, day: u32) -> Result<(), SinkError> {
        for node in self.topology().await?.each_shard_once() {
            node.backfill_day_node(day).await?;
        }
        Ok(())
    }

    pub(super) async fn backfill_finish(&self) -> Result<(), SinkError> {
        for node in self.topology().await?.each_shard_once() {
            node.backfill_finish_node().await?;
        }
        Ok(())
    }
}

/// 18.16's error for `ON CLUSTER` on a node without `<distributed_ddl>`.
const NO_DDL_WORKER: &str = "DDL background thread is not initialized";

/// One host's line of the answer to an `ON CLUSTER` statement (18.16's
/// columns, in order).
#[derive(Deserialize, clickhouse::Row)]
struct HostStatus {
    host: String,
    port: u16,
    status: i64,
    error: String,
    _num_hosts_remaining: u64,
    _num_hosts_active: u64,
}

/// A node's tables (database, name) in the local and cluster databases,
/// each with its columns.
type Schema = std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>;

#[derive(Deserialize, clickhouse::Row)]
struct ColumnRow {
    database: String,
    table: String,
    name: String,
}

async fn node_schema(node: &ClickHouseEvents, cdb: &str) -> Result<Schema, SinkError> {
    let rows = node
        .client
        .clone()
        .with_database("default")
        .query("SELECT database, table, name FROM system.columns WHERE database IN (?, ?)")
        .bind(node.database.as_str())
        .bind(cdb)
        .fetch_all::<ColumnRow>()
        .await?;
    let mut schema = Schema::new();
    for r in rows {
        schema
            .entry((r.database, r.table))
            .or_default()
            .insert(r.name);
    }
    Ok(schema)
}

/// Whether a node's schema is what the migration makes: every table and
/// view of [`MIGRATIONS`], no [`RECREATED`] input or [`ADDED_COLUMNS`] table
/// lacking its column, every `Distributed` table with its local table's columns.
fn up_to_date(schema: &Schema, database: &str, cdb: &str) -> bool {
    let columns = |db: &str, table: &str| schema.get(&(db.to_string(), table.to_string()));
    let db_ident = quote_ident(database);
    for sql in MIGRATIONS {
        let sql = sql.replace("{db}", &db_ident);
        match named_object(&sql, &db_ident) {
            Some((_, "")) | None => {}
            Some((_, table)) if columns(database, table).is_none() => return false,
            Some(_) => {}
        }
    }
    RECREATED
        .iter()
        .all(|(input, _, column)| columns(database, input).is_some_and(|c| c.contains(*column)))
        && ADDED_COLUMNS
            .iter()
            .all(|(table, column, _)| columns(database, table).is_some_and(|c| c.contains(*column)))
        && DISTRIBUTED.iter().all(|(table, _)| {
            columns(cdb, table).is_some() && columns(cdb, table) == columns(database, table)
        })
}

/// The object a DDL statement names first after `db_ident`: where its name
/// ends in `sql`, and the name (empty for the database itself).
fn named_object<'a>(sql: &'a str, db_ident: &str) -> Option<(usize, &'a str)> {
    let start = sql.find(db_ident)? + db_ident.len();
    let Some(name) = sql[start..].strip_prefix('.') else {
        return Some((start, ""));
    };
    let len = if let Some(quoted) = name.strip_prefix('`') {
        quoted.find('`')? + 2
    } else {
        name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(name.len())
    };
    Some((start + 1 + len, name[..len].trim_matches('`')))
}

/// `sql` with [`ON_CLUSTER`] after the object it names first after
/// `db_ident` (a database, or a table or view in it).
pub(super) fn on_cluster_sql(sql: &str, db_ident: &str, cluster: &str) -> String {
    let mut out = sql.to_string();
    if let Some((end, _)) = named_object(sql, db_ident) {
        out.insert_str(end, &ON_CLUSTER.replace("{cluster}", &quote_ident(cluster)));
    }
    out
}

/// Whether the `Distributed` table over `table` exists with other columns
/// than the local table (a column was added since): it is then made anew.
async fn distributed_stale(node: &ClickHouseEvents, table: &str) -> Result<bool, SinkError> {
    let cdb = Cluster::database(&node.database);
    let columns = |db: String| {
        node.client
            .clone()
            .with_database("default")
            .query("SELECT name FROM system.columns WHERE database = ? AND table = ? ORDER BY name")
            .bind(db)
            .bind(table)
    };
    let distributed: Vec<String> = columns(cdb)
        .fetch_all()
        .await
        .map_err(|e| at(node, e.into()))?;
    let local: Vec<String> = columns(node.database.clone()).fetch_all().await?;
    Ok(!distributed.is_empty() && distributed != local)
}

/// `e` naming the node it came from.
fn at(node: &ClickHouseEvents, e: SinkError) -> SinkError {
    SinkError::Cluster(format!("node {}: {e}", node.url))
}

/// `seed` with its host replaced by `host`.
fn node_url(seed: &str, host: &str) -> Result<String, SinkError> {
    let bad = |e: String| SinkError::ClusterConfig(format!("node {host:?} of the cluster: {e}"));
    let mut url = url::Url::parse(seed).map_err(|e| bad(e.to_string()))?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    url.set_host(Some(&host)).map_err(|e| bad(e.to_string()))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl Topology {
    pub(super) fn map(&self) -> &ShardMap {
        &self.map
    }

    pub(super) fn shards(&self) -> &[Vec<ClickHouseEvents>] {
        &self.shards
    }

    /// Every node, shard by shard.
    pub(super) fn nodes(&self) -> impl Iterator<Item = &ClickHouseEvents> {
        self.shards.iter().flatten()
    }

    /// The nodes a statement on local tables must run on so every shard
    /// gets it once: one replica per shard when ZooKeeper copies it, every
    /// node otherwise.
    pub(super) fn each_shard_once(&self) -> Vec<&ClickHouseEvents> {
        if self.replicated {
            self.shards.iter().filter_map(|s| s.first()).collect()
        } else {
            self.nodes().collect()
        }
    }

    /// The replicas of `code`'s shard.
    pub(super) fn replicas_of(&self, code: &str) -> &[ClickHouseEvents] {
        &self.shards[self.map.shard(code)]
    }

    /// The batch's rows per shard, each part keeping the batch's id (its
    /// markers are then the same on every replay) and its rows' order.
    pub(super) fn split(&self, batch: &Batch) -> Vec<(usize, Batch)> {
        let mut parts: Vec<Batch> = (0..self.shards.len())
            .map(|_| Batch {
                id: batch.id.clone(),
                created_ms: batch.created_ms,
                scans: Vec::new(),
                conversions: Vec::new(),
                adjustments: Vec::new(),
                steps: Vec::new(),
            })
            .collect();
        for s in &batch.scans {
            parts[self.map.shard(&s.code)].scans.push(s.clone());
        }
        for c in &batch.conversions {
            parts[self.map.shard(&c.code)].conversions.push(c.clone());
        }
        for a in &batch.adjustments {
            parts[self.map.shard(&a.conversion.code)]
                .adjustments
                .push(a.clone());
        }
        parts
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .collect()
    }
}

/// `read` from the first of `replicas` that answers.
pub(super) async fn first_answer<'a, T, F, Fut>(
    replicas: &'a [ClickHouseEvents],
    read: F,
) -> Result<T, SinkError>
where
    F: Fn(&'a ClickHouseEvents) -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let mut last = None;
    for node in replicas {
        match read(node).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(at(node, e)),
        }
    }
    Err(last.unwrap_or_else(|| SinkError::Cluster("a shard without replicas".into())))
}

/// Writes a shard's part to the first of its replicas that takes it.
pub(super) async fn write_shard(
    replicas: Vec<ClickHouseEvents>,
    part: Batch,
) -> Result<(), SinkError> {
    let mut last = None;
    for node in &replicas {
        match node.write_node(&part).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(node = %node.url, error = %e, "clickhouse replica refused a batch; trying the next");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| SinkError::Cluster("a shard without replicas".into())))
}

/// The `Distributed` DDL of `table` (see [`DISTRIBUTED_DDL`]).
pub(super) fn distributed_sql(cluster: &str, database: &str, table: &str, key: &str) -> String {
    let literal = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    DISTRIBUTED_DDL
        .replace("{cdb}", &quote_ident(&Cluster::database(database)))
        .replace("{table_ident}", &quote_ident(table))
        .replace("{db}", &quote_ident(database))
        .replace("{cluster}", &literal(cluster))
        .replace("{dbname}", &literal(database))
        .replace("{table}", &literal(table))
        .replace("{key}", key)
}

/// A migration statement with `Replicated*MergeTree` engines (see
/// [`REPLICATED_ENGINE`]); `sql` has `{db}` already replaced by `db_ident`.
pub(super) fn replicated_sql(sql: &str, database: &str, db_ident: &str) -> String {
    let mut out = sql.to_string();
    for engine in ["ReplacingMergeTree", "AggregatingMergeTree"] {
        let plain = format!("ENGINE = {engine}");
        if let Some(at) = out.find(&plain) {
            // The table's name: what follows `{db}.` in the statement.
            let table = out
                .split_once(&format!("{db_ident}."))
                .map(|(_, rest)| {
                    rest.split(|c: char| c.is_whitespace() || c == '(')
                        .next()
                        .unwrap_or("")
                        .trim_matches('`')
                        .to_string()
                })
                .unwrap_or_default();
            let replicated = REPLICATED_ENGINE
                .replace("{engine}", engine)
                .replace("{dbname}", database)
                .replace("{table}", &table);
            out.replace_range(at..at + plain.len(), &replicated);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_place_codes_in_slots() {
        let map = ShardMap::new(vec![1, 0, 2]).unwrap();
        for code in ["a", "bob", "alice10", "carol-x", ""] {
            let slot = sip_hash64(code.as_bytes()) % 3;
            assert_eq!(map.shard(code), if slot == 0 { 0 } else { 2 }, "{code}");
        }
        assert!(ShardMap::new(vec![0, 0]).is_none());
    }

    #[test]
    fn sip_hash_matches_the_reference_vector() {
        // SipHash-2-4 of the empty input under the zero key.
        assert_eq!(sip_hash64(b""), 0x1e92_4b9d_7377_00d7);
        // What ClickHouse 26.9 answers (sql-check) and 18.16 (the cluster tests).
        assert_eq!(sip_hash64(b"alice10"), 6_450_758_586_718_566_183);
    }

    #[test]
    fn node_urls_keep_all_but_the_host() {
        assert_eq!(
            node_url("http://u:p@127.0.0.1:8123", "127.0.0.2").unwrap(),
            "http://u:p@127.0.0.2:8123"
        );
        assert_eq!(
            node_url("https://ch.example:8443/", "::1").unwrap(),
            "https://[::1]:8443"
        );
    }

    #[test]
    fn on_cluster_follows_the_named_object() {
        let c = "codelink";
        assert_eq!(
            on_cluster_sql("CREATE DATABASE IF NOT EXISTS `db`", "`db`", c),
            "CREATE DATABASE IF NOT EXISTS `db` ON CLUSTER `codelink`"
        );
        assert_eq!(
            on_cluster_sql(
                "CREATE TABLE IF NOT EXISTS `db`.scans (\n a String)",
                "`db`",
                c
            ),
            "CREATE TABLE IF NOT EXISTS `db`.scans ON CLUSTER `codelink` (\n a String)"
        );
        assert_eq!(
            on_cluster_sql("CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.v_mv TO `db`.t AS SELECT 1", "`db`", c),
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.v_mv ON CLUSTER `codelink` TO `db`.t AS SELECT 1"
        );
        assert_eq!(
            on_cluster_sql(
                "DROP TABLE IF EXISTS `db_cluster`.`scans`",
                "`db_cluster`",
                "a`b"
            ),
            "DROP TABLE IF EXISTS `db_cluster`.`scans` ON CLUSTER `a\\`b`"
        );
        let dist = distributed_sql("codelink", "db", "scans", "code");
        assert!(on_cluster_sql(&dist, "`db_cluster`", c).starts_with(
            "CREATE TABLE IF NOT EXISTS `db_cluster`.`scans` ON CLUSTER `codelink` AS `db`.`scans`"
        ));
        // Every migration names its object.
        for sql in MIGRATIONS {
            assert!(
                named_object(&sql.replace("{db}", "`db`"), "`db`").is_some(),
                "{sql}"
            );
        }
    }

    #[test]
    fn replicated_ddl_names_the_engine_and_its_path() {
        let sql = "CREATE TABLE IF NOT EXISTS `db`.scans (\n a String\n) ENGINE = ReplacingMergeTree\n ORDER BY a";
        assert_eq!(
            replicated_sql(sql, "db", "`db`"),
            "CREATE TABLE IF NOT EXISTS `db`.scans (\n a String\n) ENGINE = \
             ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/scans', '{replica}')\n ORDER BY a"
        );
        let view = "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.v TO `db`.t AS SELECT 1";
        assert_eq!(replicated_sql(view, "db", "`db`"), view);
    }
}

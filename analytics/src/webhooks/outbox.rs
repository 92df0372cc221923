//! Where webhook state lives: the live store (Redis when configured, shared by
//! every instance; else redb tables in `scans.redb`, which one instance owns).
//!
//! Redis keys (prefix `p`; on a Redis Cluster `{p}`, so that every key here
//! is in one slot and each script below runs there):
//! - `{p}:wh:endpoints` hash endpoint id → [`Endpoint`] JSON;
//! - `{p}:wh:health` hash endpoint id → [`Health`] JSON;
//! - `{p}:wh:ev:{event id}` marker of an enqueued event (400 days, as claims);
//! - `{p}:wh:d:{delivery id}` a pending [`Delivery`] JSON;
//! - `{p}:wh:due` sorted set of delivery ids scored by due time (ms); a claim
//!   moves the score a lease ahead, so no other instance takes it meanwhile;
//! - `{p}:wh:log:{endpoint id}` list of the last [`LOG_LEN`] attempts, newest first.
//!
//! Embedded tables: `webhook_endpoints`, `webhook_health`, `webhook_events`
//! (event id → enqueued ms), `webhook_deliveries`, `webhook_due`
//! (`{due ms, 20 digits}\0{delivery id}` → ()), `webhook_log`
//! (`{endpoint id}\0{at ms, 20 digits}{sequence, 10 digits}` → attempt JSON).

use super::{Attempt, Endpoint, Event, Health, LOG_LEN};
use crate::redis_conn::{RedisConn, RedisTarget};
use crate::sink::SinkError;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_endpoints");
const HEALTH: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_health");
const EVENTS: TableDefinition<&str, u64> = TableDefinition::new("webhook_events");
const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_deliveries");
const DUE: TableDefinition<&str, ()> = TableDefinition::new("webhook_due");
const LOG: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_log");

/// A map of id → JSON: a redb table (embedded) or a hash (Redis).
#[derive(Clone, Copy)]
struct Map {
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    hash: &'static str,
}

const ENDPOINT_MAP: Map = Map {
    table: ENDPOINTS,
    hash: "endpoints",
};
const HEALTH_MAP: Map = Map {
    table: HEALTH,
    hash: "health",
};

/// How long an enqueued event's marker is kept in Redis (as conversion claims).
const EVENT_TTL_SECS: u64 = 400 * 86_400;

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Delivery {
    /// `{endpoint id}:{event id}`.
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes signed and sent.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_ms: u64,
    pub due_ms: u64,
}

/// Stores `event` for every endpoint in `endpoints` that wants it and is not
/// disabled.
fn fan_out(
    event: &Event,
    endpoints: &[Endpoint],
    health: &HashMap<String, Health>,
    now_ms: u64,
) -> Vec<Delivery> {
    let body = event.body();
    endpoints
        .iter()
        .filter(|e| e.wants(event))
        .filter(|e| health.get(&e.id).is_none_or(|h| h.disabled.is_none()))
        .map(|e| Delivery {
            id: format!("{}:{}", e.id, event.id),
            endpoint_id: e.id.clone(),
            event_id: event.id.clone(),
            event_type: event.kind.to_string(),
            body: body.clone(),
            attempts: 0,
            created_ms: now_ms,
            due_ms: event.due_ms.max(now_ms),
        })
        .collect()
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Embedded(e.to_string())
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(v).map_err(err)
}

/// The keys [`ENQUEUE`] is given for `e`: its marker, the due set, each
/// delivery's key.
fn enqueue_keys(prefix: &str, event_id: &str, deliveries: &[Delivery]) -> Vec<String> {
    let mut keys = vec![format!("{prefix}:ev:{event_id}"), format!("{prefix}:due")];
    keys.extend(deliveries.iter().map(|d| format!("{prefix}:d:{}", d.id)));
    keys
}

/// The keys [`CLAIM`] is given: the due set, then each delivery's key.
fn lease_keys(prefix: &str, ids: &[String]) -> Vec<String> {
    let mut keys = vec![format!("{prefix}:due")];
    keys.extend(ids.iter().map(|id| format!("{prefix}:d:{id}")));
    keys
}

fn due_key(due_ms: u64, id: &str) -> String {
    format!("{due_ms:020}\0{id}")
}

/// Enqueues one event once: KEYS[1] its marker, KEYS[2] the due set, then
/// per delivery its key; ARGV[1] the marker's TTL, then per delivery: JSON,
/// due ms, id. The marker is the first write, so an event is enqueued whole
/// or not at all.
const ENQUEUE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local k = 3
local i = 2
while i <= #ARGV do
  redis.call('SET', KEYS[k], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[i+1], ARGV[i+2])
  k = k + 1
  i = i + 3
end
return 1
"#;

/// Leases deliveries read as due (by a `ZRANGEBYSCORE` just before): KEYS[1]
/// the due set, then each delivery's key; ARGV[1] the time now, ARGV[2] the
/// lease's end, then each delivery's id. One still due by ARGV[1] (no other
/// instance leased it since it was read) gets score ARGV[2] and its JSON is
/// returned; an id without JSON is dropped.
const CLAIM: &str = r#"
local out = {}
for j = 2, #KEYS do
  local id = ARGV[j + 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    local body = redis.call('GET', KEYS[j])
    if body then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      table.insert(out, body)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return out
"#;

pub(super) enum Outbox {
    Embedded {
        db: Arc<Database>,
        seq: Arc<AtomicU64>,
    },
    Redis {
        conn: RedisConn,
        prefix: String,
        enqueue: redis::Script,
        claim: redis::Script,
    },
}

impl Outbox {
    pub fn embedded(db: Arc<Database>) -> Result<Self, SinkError> {
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(ENDPOINTS).map_err(err)?;
        tx.open_table(HEALTH).map_err(err)?;
        tx.open_table(EVENTS).map_err(err)?;
        tx.open_table(DELIVERIES).map_err(err)?;
        tx.open_table(DUE).map_err(err)?;
        tx.open_table(LOG).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Outbox::Embedded {
            db,
            seq: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn redis(target: &RedisTarget, prefix: &str) -> Result<Self, SinkError> {
        let global = crate::redis_keys::global_prefix(prefix, target.is_cluster());
        Ok(Outbox::Redis {
            conn: crate::sink::redis_connection(target)?,
            prefix: format!("{global}:wh"),
            enqueue: redis::Script::new(ENQUEUE),
            claim: redis::Script::new(CLAIM),
        })
    }

    async fn blocking<T: Send + 'static>(
        db: &Arc<Database>,
        f: impl FnOnce(&Database) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let db = db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(err)?
    }

    /// Every value of `map`, with its key.
    async fn all_of(&self, map: Map) -> Result<Vec<(String, Vec<u8>)>, SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                Self::blocking(db, move |db| {
                    let tx = db.begin_read().map_err(err)?;
                    let t = tx.open_table(map.table).map_err(err)?;
                    let mut out = Vec::new();
                    for item in t.iter().map_err(err)? {
                        let (k, v) = item.map_err(err)?;
                        out.push((k.value().to_string(), v.value().to_vec()));
                    }
                    Ok(out)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let all: HashMap<String, Vec<u8>> = conn
                    .clone()
                    .hgetall(format!("{prefix}:{}", map.hash))
                    .await?;
                Ok(all.into_iter().collect())
            }
        }
    }

    /// The value of `id` in `map`.
    async fn one_of(&self, map: Map, id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                let id = id.to_string();
                Self::blocking(db, move |db| {
                    let tx = db.begin_read().map_err(err)?;
                    let t = tx.open_table(map.table).map_err(err)?;
                    Ok(t.get(id.as_str()).map_err(err)?.map(|v| v.value().to_vec()))
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => Ok(conn
                .clone()
                .hget(format!("{prefix}:{}", map.hash), id)
                .await?),
        }
    }

    /// Sets `id` in `map` to `value`.
    async fn put_in(&self, map: Map, id: &str, value: Vec<u8>) -> Result<(), SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                let id = id.to_string();
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    tx.open_table(map.table)
                        .map_err(err)?
                        .insert(id.as_str(), value.as_slice())
                        .map_err(err)?;
                    tx.commit().map_err(err)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let _: i64 = conn
                    .clone()
                    .hset(format!("{prefix}:{}", map.hash), id, value)
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, SinkError> {
        Ok(self
            .all_of(ENDPOINT_MAP)
            .await?
            .iter()
            .filter_map(|(_, r)| serde_json::from_slice(r).ok())
            .collect())
    }

    pub async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, SinkError> {
        let raw = self.one_of(ENDPOINT_MAP, id).await?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    pub async fn put_endpoint(&self, e: &Endpoint) -> Result<(), SinkError> {
        self.put_in(ENDPOINT_MAP, &e.id, json(e)?).await
    }

    /// Deletes the endpoint, its health and its log; false if unknown.
    pub async fn delete_endpoint(&self, id: &str) -> Result<bool, SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                let id = id.to_string();
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    let found = tx
                        .open_table(ENDPOINTS)
                        .map_err(err)?
                        .remove(id.as_str())
                        .map_err(err)?
                        .is_some();
                    tx.open_table(HEALTH)
                        .map_err(err)?
                        .remove(id.as_str())
                        .map_err(err)?;
                    {
                        let mut log = tx.open_table(LOG).map_err(err)?;
                        let (lo, hi) = (format!("{id}\0"), format!("{id}\u{1}"));
                        log.retain_in(lo.as_str()..hi.as_str(), |_, _| false)
                            .map_err(err)?;
                    }
                    tx.commit().map_err(err)?;
                    Ok(found)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let mut c = conn.clone();
                let removed: i64 = c.hdel(format!("{prefix}:endpoints"), id).await?;
                let _: i64 = c.hdel(format!("{prefix}:health"), id).await?;
                let _: i64 = c.del(format!("{prefix}:log:{id}")).await?;
                Ok(removed > 0)
            }
        }
    }

    async fn all_health(&self) -> Result<HashMap<String, Health>, SinkError> {
        Ok(self
            .all_of(HEALTH_MAP)
            .await?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect())
    }

    pub async fn health(&self, id: &str) -> Result<Health, SinkError> {
        let raw = self.one_of(HEALTH_MAP, id).await?;
        Ok(raw
            .and_then(|r| serde_json::from_slice(&r).ok())
            .unwrap_or_default())
    }

    pub async fn set_health(&self, id: &str, h: &Health) -> Result<(), SinkError> {
        self.put_in(HEALTH_MAP, id, json(h)?).await
    }

    /// The endpoint's last `n` attempts, newest first.
    pub async fn log(&self, id: &str, n: usize) -> Result<Vec<Attempt>, SinkError> {
        let raw: Vec<Vec<u8>> = match self {
            Outbox::Embedded { db, .. } => {
                let id = id.to_string();
                Self::blocking(db, move |db| {
                    let tx = db.begin_read().map_err(err)?;
                    let t = tx.open_table(LOG).map_err(err)?;
                    let (lo, hi) = (format!("{id}\0"), format!("{id}\u{1}"));
                    let mut out = Vec::new();
                    for item in t.range(lo.as_str()..hi.as_str()).map_err(err)?.rev() {
                        if out.len() >= n {
                            break;
                        }
                        out.push(item.map_err(err)?.1.value().to_vec());
                    }
                    Ok(out)
                })
                .await?
            }
            Outbox::Redis { conn, prefix, .. } => {
                conn.clone()
                    .lrange(format!("{prefix}:log:{id}"), 0, n as isize - 1)
                    .await?
            }
        };
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_slice(r).ok())
            .collect())
    }

    pub async fn push_log(&self, id: &str, a: &Attempt) -> Result<(), SinkError> {
        let value = json(a)?;
        match self {
            Outbox::Embedded { db, seq } => {
                let key = format!("{id}\0{:020}{:010}", a.at_ms, seq.fetch_add(1, Relaxed));
                let id = id.to_string();
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    {
                        let mut t = tx.open_table(LOG).map_err(err)?;
                        t.insert(key.as_str(), value.as_slice()).map_err(err)?;
                        let (lo, hi) = (format!("{id}\0"), format!("{id}\u{1}"));
                        let old: Vec<String> = t
                            .range(lo.as_str()..hi.as_str())
                            .map_err(err)?
                            .rev()
                            .skip(LOG_LEN)
                            .filter_map(|i| i.ok().map(|(k, _)| k.value().to_string()))
                            .collect();
                        for k in old {
                            t.remove(k.as_str()).map_err(err)?;
                        }
                    }
                    tx.commit().map_err(err)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let key = format!("{prefix}:log:{id}");
                let _: () = redis::pipe()
                    .lpush(&key, value)
                    .ignore()
                    .ltrim(&key, 0, LOG_LEN as isize - 1)
                    .ignore()
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// Fans each event out to the endpoints subscribed now (not disabled)
    /// and stores the deliveries, each event only if it was never enqueued.
    pub async fn enqueue(&self, events: &[Event]) -> Result<(), SinkError> {
        let endpoints = self.endpoints().await?;
        if endpoints.is_empty() {
            // Nothing subscribed (most installations): no write at all.
            return Ok(());
        }
        let health = self.all_health().await?;
        let now = super::now_ms();
        match self {
            Outbox::Embedded { db, .. } => {
                let mut planned = Vec::new();
                for e in events {
                    let deliveries = fan_out(e, &endpoints, &health, now)
                        .iter()
                        .map(|d| Ok((d.id.clone(), d.due_ms, json(d)?)))
                        .collect::<Result<Vec<_>, SinkError>>()?;
                    planned.push((e.id.clone(), deliveries));
                }
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    {
                        let mut seen = tx.open_table(EVENTS).map_err(err)?;
                        let mut rows = tx.open_table(DELIVERIES).map_err(err)?;
                        let mut due = tx.open_table(DUE).map_err(err)?;
                        for (event_id, deliveries) in planned {
                            if seen.get(event_id.as_str()).map_err(err)?.is_some() {
                                continue;
                            }
                            seen.insert(event_id.as_str(), now).map_err(err)?;
                            for (id, due_ms, value) in deliveries {
                                rows.insert(id.as_str(), value.as_slice()).map_err(err)?;
                                due.insert(due_key(due_ms, &id).as_str(), ()).map_err(err)?;
                            }
                        }
                    }
                    tx.commit().map_err(err)
                })
                .await
            }
            Outbox::Redis {
                conn,
                prefix,
                enqueue,
                ..
            } => {
                let mut c = conn.clone();
                for e in events {
                    let mut inv = enqueue.prepare_invoke();
                    let deliveries = fan_out(e, &endpoints, &health, now);
                    for key in enqueue_keys(prefix, &e.id, &deliveries) {
                        inv.key(key);
                    }
                    inv.arg(EVENT_TTL_SECS);
                    for d in &deliveries {
                        inv.arg(json(&d)?).arg(d.due_ms).arg(&d.id);
                    }
                    let _: i64 = inv.invoke_async(&mut c).await?;
                }
                Ok(())
            }
        }
    }

    /// Up to `limit` deliveries due at `now_ms` and not in `busy` (this
    /// instance's attempts under way); in Redis each is leased until
    /// `lease_until_ms` so that no other instance takes it meanwhile.
    pub async fn claim(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        limit: usize,
        busy: HashSet<String>,
    ) -> Result<Vec<Delivery>, SinkError> {
        let raw: Vec<Vec<u8>> = match self {
            Outbox::Embedded { db, .. } => {
                Self::blocking(db, move |db| {
                    let tx = db.begin_read().map_err(err)?;
                    let due = tx.open_table(DUE).map_err(err)?;
                    let rows = tx.open_table(DELIVERIES).map_err(err)?;
                    let hi = format!("{now_ms:020}\u{1}");
                    let mut out = Vec::new();
                    for item in due.range(..hi.as_str()).map_err(err)? {
                        if out.len() >= limit {
                            break;
                        }
                        let (k, _) = item.map_err(err)?;
                        let Some(id) = k.value().get(21..) else {
                            continue;
                        };
                        if busy.contains(id) {
                            continue;
                        }
                        if let Some(v) = rows.get(id).map_err(err)? {
                            out.push(v.value().to_vec());
                        }
                    }
                    Ok(out)
                })
                .await?
            }
            Outbox::Redis {
                conn,
                prefix,
                claim,
                ..
            } => {
                let due = format!("{prefix}:due");
                let ids: Vec<String> = conn
                    .clone()
                    .zrangebyscore_limit(&due, "-inf", now_ms, 0, limit as isize)
                    .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut inv = claim.prepare_invoke();
                for key in lease_keys(prefix, &ids) {
                    inv.key(key);
                }
                inv.arg(now_ms).arg(lease_until_ms);
                for id in &ids {
                    inv.arg(id);
                }
                inv.invoke_async(&mut conn.clone()).await?
            }
        };
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_slice(r).ok())
            .collect())
    }

    /// Removes a delivery (delivered, given up or dropped).
    pub async fn finish(&self, d: &Delivery) -> Result<(), SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                let (id, key) = (d.id.clone(), due_key(d.due_ms, &d.id));
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    tx.open_table(DELIVERIES)
                        .map_err(err)?
                        .remove(id.as_str())
                        .map_err(err)?;
                    tx.open_table(DUE)
                        .map_err(err)?
                        .remove(key.as_str())
                        .map_err(err)?;
                    tx.commit().map_err(err)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let _: () = redis::pipe()
                    .del(format!("{prefix}:d:{}", d.id))
                    .ignore()
                    .zrem(format!("{prefix}:due"), &d.id)
                    .ignore()
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// Stores `d` (its attempts and due time changed) in place of the one
    /// due at `old_due_ms`.
    pub async fn reschedule(&self, d: &Delivery, old_due_ms: u64) -> Result<(), SinkError> {
        let value = json(d)?;
        match self {
            Outbox::Embedded { db, .. } => {
                let (id, old, new) = (
                    d.id.clone(),
                    due_key(old_due_ms, &d.id),
                    due_key(d.due_ms, &d.id),
                );
                Self::blocking(db, move |db| {
                    let tx = db.begin_write().map_err(err)?;
                    tx.open_table(DELIVERIES)
                        .map_err(err)?
                        .insert(id.as_str(), value.as_slice())
                        .map_err(err)?;
                    {
                        let mut due = tx.open_table(DUE).map_err(err)?;
                        due.remove(old.as_str()).map_err(err)?;
                        due.insert(new.as_str(), ()).map_err(err)?;
                    }
                    tx.commit().map_err(err)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                let _: () = redis::pipe()
                    .set(format!("{prefix}:d:{}", d.id), value)
                    .ignore()
                    .zadd(format!("{prefix}:due"), &d.id, d.due_ms)
                    .ignore()
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
        }
    }

    /// Deliveries pending.
    pub async fn depth(&self) -> Result<u64, SinkError> {
        match self {
            Outbox::Embedded { db, .. } => {
                Self::blocking(db, |db| {
                    let tx = db.begin_read().map_err(err)?;
                    tx.open_table(DUE).map_err(err)?.len().map_err(err)
                })
                .await
            }
            Outbox::Redis { conn, prefix, .. } => {
                Ok(conn.clone().zcard(format!("{prefix}:due")).await?)
            }
        }
    }
}

#[cfg(test)]
mod slot_tests {
    //! On a Redis Cluster each script call must name keys of one slot.
    use super::*;
    use crate::redis_keys::{global_prefix, key_slot};

    fn slots(keys: &[String]) -> HashSet<u16> {
        keys.iter().map(|k| key_slot(k.as_bytes())).collect()
    }

    #[test]
    fn enqueue_and_lease_are_one_slot() {
        let prefix = format!("{}:wh", global_prefix("codelink", true));
        let deliveries: Vec<Delivery> = (0..20)
            .map(|i| Delivery {
                id: format!("ep{i}:evt_x"),
                endpoint_id: format!("ep{i}"),
                event_id: "evt_x".into(),
                event_type: "conversion.created".into(),
                body: "{}".into(),
                attempts: 0,
                created_ms: 1,
                due_ms: 1,
            })
            .collect();
        let keys = enqueue_keys(&prefix, "evt_x", &deliveries);
        assert_eq!(keys.len(), 22);
        assert_eq!(slots(&keys).len(), 1, "ENQUEUE: {keys:?}");
        let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
        let keys = lease_keys(&prefix, &ids);
        assert_eq!(slots(&keys).len(), 1, "CLAIM: {keys:?}");
        // A single server keeps its names.
        assert_eq!(
            enqueue_keys("codelink:wh", "evt_x", &deliveries[..1]),
            [
                "codelink:wh:ev:evt_x",
                "codelink:wh:due",
                "codelink:wh:d:ep0:evt_x"
            ]
        );
    }
}

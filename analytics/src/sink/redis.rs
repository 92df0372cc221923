//! Live counters in Redis, shared by every gateway instance.
//!
//! Keys (prefix `codelink` by default; on a Redis Cluster the per-code ones
//! are tagged by code, `p:stats:{code}`, and the others by the prefix,
//! `{p}:conv:…`: see [`crate::redis_keys`]):
//! - `{p}:stats:{code}` hash of counter fields (see [`crate::batch::counter_deltas`]);
//! - `{p}:uv:{code}:{day}` HyperLogLog of human visitor ids that day (kept 400 days);
//! - `{p}:batch:{id}` marker of an applied batch (kept 7 days: longer than any spool replay;
//!   on a cluster one per slot part of the batch, `p:batch:{code}:{id}`);
//! - `{p}:lv:{code}:{visitor}` the visitor's latest human scan of the code (400 days, or
//!   the raw-scan retention when shorter);
//! - `{p}:conv:{event id}` the answer given for a conversion event (400 days);
//! - `{p}:refund:{purchase event id}` hash of what was refunded of a purchase:
//!   `amount`, `earnings` clawed back (400 days from its last refund);
//! - `{p}:cpur:{customer id}` sorted set of the customer's purchases (event
//!   ids scored by time of occurrence; 400 days from the last);
//! - `{p}:cust:{customer id}` the customer's first attribution (400 days).

use super::SinkError;
use crate::batch::{counter_deltas, human_visitors, human_visits, Batch};
use crate::event::{Conversion, ConversionKind};
use crate::records::{Claim, ClaimRecord, CustomerLink, LastVisit, RefundOf, Refunded};
use crate::redis_conn::{NodeAddr, RedisConn, RedisTarget};
use crate::redis_keys::{key_slot, KeyLayout};
use crate::review::{Review, ReviewStatus};
use crate::stats::CodeStats;
use redis::AsyncCommands;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

const MARKER_TTL_SECS: u64 = 7 * 24 * 3600;
const VISITS_TTL_SECS: u64 = 400 * 24 * 3600;
/// Members per PFADD call (Lua's unpack is limited by its C stack, ~8000).
const PFADD_CHUNK: usize = 4000;

/// Applies one batch (on a cluster: the part of a batch in one slot)
/// atomically, once: KEYS[1] the marker, the other KEYS the keys it writes;
/// ARGV[1] = marker TTL, then a flat list of operations naming keys by their
/// index in KEYS: `h k field delta` (HINCRBY), `p k n member…` (PFADD of n
/// members), `e k seconds` (EXPIRE), `l k value ts seconds` (SET unless the
/// stored value starts with a later ts). Returns `{1, errors, first error}`
/// when applied, `{0, 0, ""}` when the batch was seen before (after renewing
/// the marker's TTL: a write of this connection that a later `WAIT` can only
/// see replicated after the batch itself, even when the batch was applied
/// through another connection, before a reconnect or a restart).
///
/// The marker is the first write: an out-of-memory Redis refuses a script's
/// first write and, once a script has written, lets it finish, so a batch is
/// applied whole or not at all. An operation Redis refuses on its own (a key of
/// the wrong type, left there by something else) is skipped with `pcall`
/// instead of abandoning the rest of the batch half-applied, and reported.
const APPLY_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  -- Seen before: still write (the marker's TTL), so a WAIT on this
  -- connection covers the first application, which the replication
  -- stream carried before this write.
  redis.pcall('EXPIRE', KEYS[1], ARGV[1])
  return {0, 0, ''}
end
local errors, first = 0, ''
local function run(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if errors == 0 then first = r.err end
    errors = errors + 1
  end
  return r
end
local i = 2
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i+1])]
  if op == 'h' then
    run('HINCRBY', key, ARGV[i+2], ARGV[i+3]); i = i + 4
  elseif op == 'p' then
    local n = tonumber(ARGV[i+2])
    run('PFADD', key, unpack(ARGV, i+3, i+2+n)); i = i + 3 + n
  elseif op == 'l' then
    local cur = run('GET', key)
    local ts = type(cur) == 'string' and tonumber(string.match(cur, '^(%d+)'))
    if type(cur) ~= 'table' and ((not ts) or ts <= tonumber(ARGV[i+3])) then
      run('SET', key, ARGV[i+2], 'EX', ARGV[i+4])
    end
    i = i + 5
  else
    run('EXPIRE', key, ARGV[i+2]); i = i + 3
  end
end
return {1, errors, first}
"#;

/// The scripts, hashed once.
static APPLY_ONCE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(APPLY_ONCE));
static CLAIM_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CLAIM));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));

#[derive(Clone)]
pub struct RedisCounters {
    conn: RedisConn,
    keys: KeyLayout,
    /// How long a latest visit (`{p}:lv:…`, which names a visitor) is kept.
    last_visit_ttl_secs: u64,
    /// After each batch part, wait for this many replicas of the master that
    /// took it to acknowledge it (`WAIT`), at most this long; fewer is a
    /// failed write (spooled, replayed: the marker keeps it once).
    wait: Option<(u32, Duration)>,
    /// Masters found without any replica connected, and
    /// when: their parts skip the wait until [`ALONE_RECHECK`] passed.
    alone: Arc<Mutex<HashMap<NodeAddr, std::time::Instant>>>,
}

/// How long a master found without replicas is not waited on.
const ALONE_RECHECK: Duration = Duration::from_secs(2);

/// The keys and arguments of one call of [`APPLY_ONCE`]: a whole batch on a
/// single server, the part of a batch in one slot on a cluster.
#[derive(Debug, Default)]
pub(crate) struct BatchPart {
    /// The marker first, then each key the operations write, once.
    pub keys: Vec<String>,
    args: Vec<Vec<u8>>,
    index: HashMap<String, usize>,
    /// The smallest code of the part: it names the marker.
    first_code: String,
}

impl BatchPart {
    /// `key`'s position in KEYS (1-based, after the marker), added if new.
    fn key(&mut self, key: String) -> Vec<u8> {
        let next = self.index.len() + 2;
        let i = *self.index.entry(key.clone()).or_insert_with(|| {
            self.keys.push(key);
            next
        });
        i.to_string().into_bytes()
    }

    fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        a.write_redis_args(&mut self.args);
        self
    }

    fn code(&mut self, code: &str) {
        if self.first_code.is_empty() || code < self.first_code.as_str() {
            self.first_code = code.to_string();
        }
    }
}

/// Deletes KEYS[1] only if it still holds ARGV[1], and then: unless ARGV[2]
/// is empty, the sorted set KEYS[2] loses ARGV[3]; unless ARGV[4] is empty,
/// the purchase's refund hash KEYS[3] gets ARGV[5] added to `amount` and
/// ARGV[6] to `earnings`. (A key not used is KEYS[1] again: one slot.)
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HINCRBY', KEYS[3], 'amount', ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'earnings', ARGV[6])
end
return 1
"#;

/// Claims a conversion event id: KEYS[1] the claim, ARGV[1] the answer,
/// ARGV[2] the TTL; unless the flag is empty: ARGV[3] a customer link
/// stored in KEYS[2] only if absent; ARGV[5] (flag) a customer's purchases
/// (sorted set KEYS[3]) to add ARGV[7] to with score ARGV[6]; ARGV[8] (flag)
/// the refunded purchase's hash KEYS[4], which must still hold
/// ARGV[9]/ARGV[10] (`amount`/`earnings`, absent = 0) and then holds
/// ARGV[11]/ARGV[12]. (A key not used is KEYS[1] again: one slot.) Returns
/// `{0, ''}` when claimed now, `{1, earlier answer}`, or `{2, ''}` when the
/// refund hash changed (nothing written).
const CLAIM: &str = r#"
local prev = redis.call('GET', KEYS[1])
if prev then return {1, prev} end
if ARGV[8] ~= '' then
  local cur = redis.call('HMGET', KEYS[4], 'amount', 'earnings')
  if (cur[1] or '0') ~= ARGV[9] or (cur[2] or '0') ~= ARGV[10] then return {2, ''} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[2]) end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[4], 'amount', ARGV[11], 'earnings', ARGV[12])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
end
return {0, ''}
"#;

/// Customers' purchases read per round trip when looking for one to refund.
const PURCHASE_PAGE: usize = 50;

/// A lazily connecting Redis connection with the live store's timeouts
/// (1 s to connect, 5 s per answer).
pub(crate) fn connection(target: &RedisTarget) -> Result<RedisConn, SinkError> {
    Ok(RedisConn::open(target, Duration::from_secs(5))?)
}

impl RedisCounters {
    /// Connects lazily: scans are spooled while Redis is unreachable.
    pub fn connect(target: &RedisTarget, prefix: &str) -> Result<Self, SinkError> {
        Ok(Self {
            conn: connection(target)?,
            keys: KeyLayout::new(prefix, target.is_cluster()),
            last_visit_ttl_secs: VISITS_TTL_SECS,
            wait: None,
            alone: Arc::default(),
        })
    }

    /// After each batch part, `WAIT` for `replicas` replicas (at most
    /// `timeout`); 0 replicas: no wait.
    pub fn with_replica_wait(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// The global prefix (`p`, or `{p}` on a cluster).
    fn g(&self) -> &str {
        self.keys.global()
    }

    /// Keeps latest visits at most `retain` (the raw-scan retention) instead
    /// of 400 days, so that what names a visitor goes when their scans do.
    pub fn with_retention(mut self, retain: Option<Duration>) -> Self {
        if let Some(r) = retain {
            self.last_visit_ttl_secs = r.as_secs().clamp(1, VISITS_TTL_SECS);
        }
        self
    }

    /// The calls of [`APPLY_ONCE`] that apply `batch`: one on a single
    /// server; on a cluster one per slot its codes fall in, each with its
    /// own marker in that slot. The same batch always gives the same parts.
    pub(crate) fn batch_parts(&self, batch: &Batch) -> Vec<BatchPart> {
        let k = &self.keys;
        let mut parts: BTreeMap<u16, BatchPart> = BTreeMap::new();
        let cluster = k.is_cluster();
        fn part_of<'a>(
            parts: &'a mut BTreeMap<u16, BatchPart>,
            cluster: bool,
            code: &str,
        ) -> &'a mut BatchPart {
            let slot = if cluster {
                key_slot(code.as_bytes())
            } else {
                0
            };
            let p = parts.entry(slot).or_default();
            p.code(code);
            p
        }
        for (code, fields) in counter_deltas(&batch.scans, &batch.steps) {
            let p = part_of(&mut parts, cluster, code);
            let i = p.key(k.stats(code));
            for (field, n) in fields {
                p.arg("h").arg(&i).arg(field).arg(n);
            }
        }
        // One PFADD per HyperLogLog with all its members (in chunks that Lua's
        // unpack can take), and one last-visit write per (code, visitor): a
        // batch repeats visitors a lot, and Redis time is shared by everyone.
        for (code, day, members) in human_visitors(&batch.scans) {
            let p = part_of(&mut parts, cluster, code);
            let i = p.key(k.uv(code, day));
            for chunk in members.chunks(PFADD_CHUNK) {
                p.arg("p").arg(&i).arg(chunk.len()).arg(chunk);
            }
            p.arg("e").arg(&i).arg(VISITS_TTL_SECS);
        }
        for ((code, visitor), visits) in human_visits(&batch.scans) {
            let scan = visits.latest;
            let p = part_of(&mut parts, cluster, code);
            let i = p.key(k.lv(code, visitor));
            p.arg("l")
                .arg(&i)
                .arg(LastVisit::encode(scan))
                .arg(scan.ts_ms)
                .arg(self.last_visit_ttl_secs);
        }
        let mut out: Vec<BatchPart> = parts.into_values().collect();
        if out.is_empty() {
            // A batch of conversions only: its marker still says "applied".
            out.push(BatchPart::default());
        }
        for p in &mut out {
            let marker = k.batch(&batch.id.to_string(), &p.first_code);
            p.keys.insert(0, marker);
        }
        out
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        let id = batch.id.to_string();
        self.write_parts(&id, self.batch_parts(batch)).await?;
        if let Some((replicas, timeout)) = self.wait {
            self.confirm_replicated(&id, replicas, timeout).await?;
        }
        Ok(())
    }

    async fn write_parts(&self, id: &str, parts: Vec<BatchPart>) -> Result<(), SinkError> {
        if parts.len() == 1 {
            let part = parts.into_iter().next().unwrap_or_default();
            return self.write_part(id, part).await;
        }
        // A cluster: the parts go to their masters at once. Any part failed
        // fails the batch (spooled); its replay skips the parts that landed.
        let mut set = tokio::task::JoinSet::new();
        for part in parts {
            let me = self.clone();
            let id = id.to_string();
            set.spawn(async move { me.write_part(&id, part).await });
        }
        let mut first_err = None;
        while let Some(r) = set.join_next().await {
            let r = r.map_err(|e| SinkError::Embedded(format!("redis batch part task: {e}")))?;
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn write_part(&self, batch_id: &str, part: BatchPart) -> Result<(), SinkError> {
        let mut inv = APPLY_ONCE_SCRIPT.prepare_invoke();
        for key in &part.keys {
            inv.key(key);
        }
        inv.arg(MARKER_TTL_SECS);
        for a in &part.args {
            inv.arg(a.as_slice());
        }
        let mut conn = self.conn.clone();
        let (_applied, errors, first): (i64, u64, String) = inv.invoke_async(&mut conn).await?;
        if errors > 0 {
            // Not retried: the batch is marked applied, and the same keys
            // would refuse it again. Loud instead of silent.
            tracing::error!(
                batch = %batch_id,
                errors,
                first_error = %first,
                "redis refused some counter updates of a batch (a key of the wrong type?); the rest was applied"
            );
        }
        Ok(())
    }

    /// `WAIT` on every master after a batch's parts all landed (also parts
    /// whose marker was there already: an earlier attempt wrote them, maybe
    /// on a connection since replaced, and that is what must reach a replica;
    /// the script renews such a marker's TTL, a write of this connection
    /// that replicas receive after the batch, so the `WAIT` covers it).
    /// Short of the replicas asked for,
    /// the batch failed (spooled, replayed: the markers keep it once),
    /// unless that master has no replica connected at all: it cannot fail
    /// over to one that lacks the write (its shard is down while it is), so
    /// waiting would only stop the counts until a replica is back.
    async fn confirm_replicated(
        &self,
        batch_id: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        // Masters found alone lately are not waited on (each WAIT there
        // would last its whole timeout).
        let alone: Vec<NodeAddr> = self
            .alone
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, t)| t.elapsed() < ALONE_RECHECK)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default();
        for (addr, acked) in self.conn.wait_replicas(replicas, timeout, &alone).await? {
            if acked >= u64::from(replicas) {
                continue;
            }
            if self.conn.connected_replicas(&addr).await? == 0 {
                tracing::warn!(
                    batch = %batch_id,
                    master = %format!("{}:{}", addr.0, addr.1),
                    "a redis master has no replica connected; not waiting for one"
                );
                if let Ok(mut m) = self.alone.lock() {
                    m.insert(addr, std::time::Instant::now());
                }
                continue;
            }
            return Err(SinkError::NotReplicated(format!(
                "{acked} of {replicas} replicas of {}:{} acknowledged batch {batch_id} within {} ms",
                addr.0,
                addr.1,
                timeout.as_millis()
            )));
        }
        Ok(())
    }

    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        let mut conn = self.conn.clone();
        let fields: Vec<(String, u64)> = conn.hgetall(self.keys.stats(code)).await?;
        let days = CodeStats::days_in(&fields);
        let mut uniques = BTreeMap::new();
        if !days.is_empty() {
            let mut pipe = redis::pipe();
            for day in &days {
                pipe.pfcount(self.keys.uv(code, day));
            }
            let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
            uniques.extend(days.into_iter().zip(counts));
        }
        Ok(CodeStats::from_fields(code, fields, &uniques))
    }

    pub async fn last_visit(
        &self,
        code: &str,
        visitor: &str,
    ) -> Result<Option<LastVisit>, SinkError> {
        let mut conn = self.conn.clone();
        let v: Option<Vec<u8>> = conn.get(self.keys.lv(code, visitor)).await?;
        Ok(v.and_then(|v| LastVisit::decode(&v)))
    }

    /// The keys [`CLAIM`] is given: the claim, the customer link, the
    /// customer's purchases and the refunded purchase's hash (each the
    /// claim's key when not used).
    pub(crate) fn claim_keys(
        &self,
        c: &Conversion,
        link: bool,
        refund: Option<&RefundOf>,
    ) -> [String; 4] {
        let claim = format!("{}:conv:{}", self.g(), c.event_id);
        let customer = if link {
            format!("{}:cust:{}", self.g(), c.customer_id)
        } else {
            claim.clone()
        };
        let purchases = self.purchases_key(c).unwrap_or_else(|| claim.clone());
        let refunded =
            refund.map_or_else(|| claim.clone(), |r| self.refund_key(&r.purchase_event_id));
        [claim, customer, purchases, refunded]
    }

    pub async fn claim(
        &self,
        record: &ClaimRecord,
        link: Option<&CustomerLink>,
        refund: Option<&RefundOf>,
    ) -> Result<Claim, SinkError> {
        let c = &record.conversion;
        let row = serde_json::to_string(record).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let mut inv = CLAIM_SCRIPT.prepare_invoke();
        for key in self.claim_keys(c, link.is_some(), refund) {
            inv.key(key);
        }
        inv.arg(row).arg(VISITS_TTL_SECS);
        match link {
            Some(link) => {
                let value =
                    serde_json::to_string(link).map_err(|e| SinkError::Embedded(e.to_string()))?;
                inv.arg("1").arg(value);
            }
            None => {
                inv.arg("").arg("");
            }
        }
        match self.purchases_key(c) {
            Some(_) => inv.arg("1").arg(c.occurred_ms).arg(&c.event_id),
            None => inv.arg("").arg(0).arg(""),
        };
        match refund {
            Some(r) => inv
                .arg("1")
                .arg(r.before.amount)
                .arg(r.before.earnings)
                .arg(r.after.amount)
                .arg(r.after.earnings),
            None => inv.arg("").arg(0).arg(0).arg(0).arg(0),
        };
        let mut conn = self.conn.clone();
        let (status, existing): (u8, String) = inv.invoke_async(&mut conn).await?;
        match status {
            0 => Ok(Claim::New),
            2 => Ok(Claim::Stale),
            _ => Ok(Claim::Existing(Box::new(
                serde_json::from_str(&existing).map_err(|e| SinkError::Embedded(e.to_string()))?,
            ))),
        }
    }

    /// The keys [`RELEASE`] is given: the claim, the customer's purchases
    /// and the refunded purchase's hash (the claim's key when not used).
    pub(crate) fn release_keys(&self, c: &Conversion, refund: Option<&RefundOf>) -> [String; 3] {
        let claim = format!("{}:conv:{}", self.g(), c.event_id);
        let purchases = self.purchases_key(c).unwrap_or_else(|| claim.clone());
        let refunded =
            refund.map_or_else(|| claim.clone(), |r| self.refund_key(&r.purchase_event_id));
        [claim, purchases, refunded]
    }

    pub async fn release(
        &self,
        record: &ClaimRecord,
        refund: Option<&RefundOf>,
    ) -> Result<(), SinkError> {
        let row = serde_json::to_string(record).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let c = &record.conversion;
        let mut inv = RELEASE_SCRIPT.prepare_invoke();
        for key in self.release_keys(c, refund) {
            inv.key(key);
        }
        inv.arg(row);
        match self.purchases_key(c) {
            Some(_) => inv.arg("1").arg(&c.event_id),
            None => inv.arg("").arg(""),
        };
        match refund {
            Some(r) => inv
                .arg("1")
                .arg(r.before.amount - r.after.amount)
                .arg(r.before.earnings - r.after.earnings),
            None => inv.arg("").arg(0).arg(0),
        };
        let mut conn = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// `{p}:cpur:{customer}` for a purchase with a customer, else `None`.
    fn purchases_key(&self, c: &Conversion) -> Option<String> {
        (c.kind == ConversionKind::Purchase && !c.customer_id.is_empty())
            .then(|| format!("{}:cpur:{}", self.g(), c.customer_id))
    }

    fn refund_key(&self, purchase_event_id: &str) -> String {
        format!("{}:refund:{purchase_event_id}", self.g())
    }

    pub async fn claimed(&self, event_id: &str) -> Result<Option<ClaimRecord>, SinkError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn.get(format!("{}:conv:{event_id}", self.g())).await?;
        v.map(|v| serde_json::from_str(&v).map_err(|e| SinkError::Embedded(e.to_string())))
            .transpose()
    }

    pub async fn refunded(&self, event_id: &str) -> Result<Refunded, SinkError> {
        let mut conn = self.conn.clone();
        let (amount, earnings): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.refund_key(event_id))
            .arg("amount")
            .arg("earnings")
            .query_async(&mut conn)
            .await?;
        Ok(Refunded {
            amount: amount.unwrap_or(0),
            earnings: earnings.unwrap_or(0),
        })
    }

    pub async fn latest_refundable_purchase(
        &self,
        customer_id: &str,
    ) -> Result<Option<(ClaimRecord, Refunded)>, SinkError> {
        let key = format!("{}:cpur:{customer_id}", self.g());
        let mut conn = self.conn.clone();
        let mut start = 0;
        while start < super::REFUNDABLE_SEARCH {
            let stop = (start + PURCHASE_PAGE).min(super::REFUNDABLE_SEARCH) - 1;
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(start)
                .arg(stop)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.get(format!("{}:conv:{id}", self.g()));
                pipe.cmd("HMGET")
                    .arg(self.refund_key(id))
                    .arg("amount")
                    .arg("earnings");
            }
            let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            for pair in flat.chunks(2) {
                let claim: Option<String> =
                    redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
                let (amount, earnings): (Option<i64>, Option<i64>) = match pair.get(1) {
                    Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                    None => (None, None),
                };
                let Some(claim) = claim else { continue };
                let record: ClaimRecord =
                    serde_json::from_str(&claim).map_err(|e| SinkError::Embedded(e.to_string()))?;
                let refunded = Refunded {
                    amount: amount.unwrap_or(0),
                    earnings: earnings.unwrap_or(0),
                };
                if refunded.amount < record.conversion.amount {
                    return Ok(Some((record, refunded)));
                }
            }
            if ids.len() < PURCHASE_PAGE {
                break;
            }
            start += PURCHASE_PAGE;
        }
        Ok(None)
    }

    pub async fn customer(&self, customer_id: &str) -> Result<Option<CustomerLink>, SinkError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn.get(format!("{}:cust:{customer_id}", self.g())).await?;
        v.map(|v| serde_json::from_str(&v).map_err(|e| SinkError::Embedded(e.to_string())))
            .transpose()
    }

    pub async fn ping(&self) -> Result<(), SinkError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

impl RedisCounters {
    /// Erases `who` from the live data in Redis: a visitor's latest visits
    /// (`{p}:lv:*:{visitor}`), a customer's attribution link and purchase
    /// index, and their ids in the recorded answers (`{p}:conv:*`, rewritten
    /// with their TTL kept). The per-day visitor HyperLogLogs hold only
    /// hashes. Returns (keys deleted, answers rewritten).
    pub async fn erase(&self, who: &super::Subject) -> Result<(u64, u64), SinkError> {
        // Keys are found by SCAN, on every master of a cluster. A latest
        // visit is `p:lv:{code}:{visitor}` (the code tagged on a cluster),
        // the rest under the global prefix.
        let g = self.g();
        let lv = self.keys.lv("*", "");
        let mut deleted = 0u64;
        let mut doomed: Vec<String> = Vec::new();
        match who {
            super::Subject::Visitor(v) => {
                // Latest visits, and velocity counts (expiring anyway).
                let lv_pattern = format!("{}{}", lv.replace("{*}", "*"), escape_glob(v));
                for pattern in [lv_pattern, format!("{g}:fraud:v:{}:*", escape_glob(v))] {
                    doomed.extend(self.conn.scan_keys(&pattern).await?);
                }
            }
            super::Subject::Customer(c) => {
                doomed.push(format!("{g}:cust:{c}"));
                doomed.push(format!("{g}:cpur:{c}"));
            }
        }
        let mut conn = self.conn.clone();
        for k in &doomed {
            deleted += redis::cmd("DEL")
                .arg(k)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        let mut keys: Vec<String> = Vec::new();
        // Claims, and the reviews that copy flagged ones.
        for pattern in [
            format!("{}:conv:*", escape_glob(g)),
            format!("{}:review:*", escape_glob(g)),
        ] {
            keys.extend(self.conn.scan_keys(&pattern).await?);
        }
        let review_prefix = format!("{g}:review:");
        let scrub = |c: &mut Conversion, who: &super::Subject| match who {
            super::Subject::Visitor(v) if c.visitor_id == *v => {
                c.visitor_id.clear();
                true
            }
            super::Subject::Customer(id) if c.customer_id == *id => {
                c.customer_id.clear();
                c.visitor_id.clear();
                true
            }
            _ => false,
        };
        let mut rewritten = 0u64;
        for k in keys {
            let raw: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut conn).await?;
            let Some(raw) = raw else { continue };
            // A claim, or a review (a copy of a flagged claim's conversion).
            let json = if k.starts_with(&review_prefix) {
                let Ok(mut r) = serde_json::from_slice::<Review>(&raw) else {
                    continue;
                };
                if !scrub(&mut r.conversion, who) {
                    continue;
                }
                serde_json::to_vec(&r)
            } else {
                let Ok(mut r) = serde_json::from_slice::<ClaimRecord>(&raw) else {
                    continue;
                };
                if !scrub(&mut r.conversion, who) {
                    continue;
                }
                serde_json::to_vec(&r)
            };
            redis::cmd("SET")
                .arg(&k)
                .arg(json.unwrap_or_default())
                .arg("KEEPTTL")
                .arg("XX")
                .query_async::<Option<String>>(&mut conn)
                .await?;
            rewritten += 1;
        }
        Ok((deleted, rewritten))
    }
}

/// `text` with Redis glob characters escaped.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Puts a review in: KEYS[1] the review (ARGV[1], only if absent), then its
/// position ARGV[2] into the queues KEYS[2] (all codes) and KEYS[3] (its code).
const OPEN_REVIEW: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
  return 1
end
return 0
"#;

/// Compare-and-set of a review: KEYS[1] must hold ARGV[1]; it then holds
/// ARGV[2] (or is deleted when ARGV[2] is empty), and position ARGV[3] moves
/// from the queues KEYS[2]/KEYS[3] to KEYS[4]/KEYS[5] (unless ARGV[2] is
/// empty; KEYS[4]/KEYS[5] are then KEYS[2]/KEYS[3] again: one slot).
const SWAP_REVIEW: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[4], 0, ARGV[3])
  redis.call('ZADD', KEYS[5], 0, ARGV[3])
end
return 1
"#;

/// Compare-and-set of a purchase's refunded totals: KEYS[1] must hold
/// ARGV[1]/ARGV[2] (`amount`/`earnings`, absent = 0); it then holds
/// ARGV[3]/ARGV[4], kept ARGV[5] seconds.
const SWAP_REFUNDED: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'amount', 'earnings')
if (cur[1] or '0') ~= ARGV[1] or (cur[2] or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'amount', ARGV[3], 'earnings', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// Fraud counts and the review queue (see `crate::review`): `{p}:fraud:{key}`
/// (one key per fixed window, expiring), `{p}:review:{event id}` (JSON) and
/// the queues `{p}:reviews:{status}` and `{p}:reviews:{status}:{code}`
/// (sorted sets of positions, all scores 0, so ordered by position).
impl RedisCounters {
    pub async fn bump(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, SinkError> {
        let mut conn = self.conn.clone();
        if window_ms == 0 {
            let n: u64 = conn.incr(format!("{}:fraud:{key}", self.g()), 1).await?;
            return Ok(n);
        }
        let full = format!("{}:fraud:{key}:{}", self.g(), now_ms / window_ms);
        let (n, _): (u64, i64) = redis::pipe()
            .atomic()
            .incr(&full, 1)
            .pexpire(&full, (2 * window_ms) as i64)
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub async fn swap_refunded(
        &self,
        purchase_event_id: &str,
        before: Refunded,
        after: Refunded,
    ) -> Result<bool, SinkError> {
        let mut conn = self.conn.clone();
        let swapped: i64 = redis::Script::new(SWAP_REFUNDED)
            .key(self.refund_key(purchase_event_id))
            .arg(before.amount)
            .arg(before.earnings)
            .arg(after.amount)
            .arg(after.earnings)
            .arg(VISITS_TTL_SECS)
            .invoke_async(&mut conn)
            .await?;
        Ok(swapped == 1)
    }

    pub async fn human_scans(&self, code: &str) -> Result<u64, SinkError> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = conn.hget(self.keys.stats(code), "human").await?;
        Ok(n.unwrap_or(0))
    }

    fn review_key(&self, event_id: &str) -> String {
        format!("{}:review:{event_id}", self.g())
    }

    /// The queues (all codes, the review's code) of `review`'s status.
    fn queue_keys(&self, review: &Review) -> [String; 2] {
        let (p, status) = (self.g(), review.status.as_str());
        [
            format!("{p}:reviews:{status}"),
            format!("{p}:reviews:{status}:{}", review.conversion.code),
        ]
    }

    pub async fn open_review(&self, review: &Review) -> Result<(), SinkError> {
        let value =
            serde_json::to_string(review).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let [all, code] = self.queue_keys(review);
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(OPEN_REVIEW)
            .key(self.review_key(&review.conversion.event_id))
            .key(all)
            .key(code)
            .arg(value)
            .arg(review.position())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn swap(&self, before: &Review, after: Option<&Review>) -> Result<bool, SinkError> {
        let json =
            |r: &Review| serde_json::to_string(r).map_err(|e| SinkError::Embedded(e.to_string()));
        let [from_all, from_code] = self.queue_keys(before);
        let (value, [to_all, to_code]) = match after {
            Some(a) => (json(a)?, self.queue_keys(a)),
            None => (String::new(), [from_all.clone(), from_code.clone()]),
        };
        let mut conn = self.conn.clone();
        let swapped: i64 = redis::Script::new(SWAP_REVIEW)
            .key(self.review_key(&before.conversion.event_id))
            .key(from_all)
            .key(from_code)
            .key(to_all)
            .key(to_code)
            .arg(json(before)?)
            .arg(value)
            .arg(before.position())
            .invoke_async(&mut conn)
            .await?;
        Ok(swapped == 1)
    }

    pub async fn swap_review(&self, before: &Review, after: &Review) -> Result<bool, SinkError> {
        self.swap(before, Some(after)).await
    }

    pub async fn drop_review(&self, event_id: &str) -> Result<(), SinkError> {
        if let Some(r) = self.review(event_id).await? {
            if r.status == ReviewStatus::Pending && r.decisions.is_empty() {
                self.swap(&r, None).await?;
            }
        }
        Ok(())
    }

    pub async fn review(&self, event_id: &str) -> Result<Option<Review>, SinkError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn.get(self.review_key(event_id)).await?;
        v.map(|v| serde_json::from_str(&v).map_err(|e| SinkError::Embedded(e.to_string())))
            .transpose()
    }

    pub async fn reviews(
        &self,
        status: ReviewStatus,
        code: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Review>, SinkError> {
        let p = self.g();
        let queue = match code {
            Some(c) => format!("{p}:reviews:{}:{c}", status.as_str()),
            None => format!("{p}:reviews:{}", status.as_str()),
        };
        let max = before.map_or_else(|| "+".to_string(), |b| format!("({b}"));
        let mut conn = self.conn.clone();
        let positions: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
            .arg(&queue)
            .arg(max)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let keys: Vec<String> = positions
            .iter()
            .filter_map(|pos| pos.split_once('|'))
            .map(|(_, id)| self.review_key(id))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        values
            .into_iter()
            .flatten()
            .map(|v| serde_json::from_str(&v).map_err(|e| SinkError::Embedded(e.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod slot_tests {
    //! On a Redis Cluster every call of a script must name keys of one hash
    //! slot (else `CROSSSLOT`). For every script here, the keys it is given
    //! are computed as the code computes them and their slots compared.
    use super::*;
    use crate::event::{Rule, Scan};
    use crate::redis_keys::key_slot;
    use std::collections::HashSet;

    fn one_slot(what: &str, keys: &[String]) {
        let slots: HashSet<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
        assert_eq!(slots.len(), 1, "{what}: keys {keys:?} span slots {slots:?}");
    }

    fn cluster() -> RedisCounters {
        // Lazy: nothing listens there, and nothing is sent.
        let target = RedisTarget::Cluster(vec!["redis://127.0.0.1:1".into()]);
        RedisCounters::connect(&target, "codelink").unwrap()
    }

    fn purchase(id: &str, customer: &str) -> Conversion {
        Conversion {
            event_id: id.into(),
            kind: ConversionKind::Purchase,
            occurred_ms: 1,
            received_ms: 1,
            code: "spring".into(),
            owner: "alice".into(),
            channel: String::new(),
            scan_id: String::new(),
            scan_ms: 0,
            visitor_id: "v".into(),
            customer_id: customer.into(),
            amount: 100,
            currency: "EUR".into(),
            rule: Rule::CodeOnly,
            earnings: 10,
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        }
    }

    #[tokio::test]
    async fn every_batch_part_is_one_slot_with_its_marker_and_covers_every_code() {
        let r = cluster();
        let codes: Vec<String> = (0..300).map(|i| format!("code{i}")).collect();
        let scans: Vec<Scan> = codes
            .iter()
            .enumerate()
            .flat_map(|(i, code)| {
                (0..3).map(move |n| Scan {
                    scan_id: format!("s{i}-{n}").into(),
                    ts_ms: 1_700_000_000_000 + n,
                    code: code.as_str().into(),
                    channel: "yt".into(),
                    visitor_id: format!("visitor-{n}").into(),
                    source: "link".into(),
                    ..Scan::default()
                })
            })
            .collect();
        let batch = Batch::new(scans, Vec::new());
        let parts = r.batch_parts(&batch);
        assert!(parts.len() > 100, "300 codes fall in many slots");
        let mut markers = HashSet::new();
        let mut seen = HashSet::new();
        for p in &parts {
            one_slot("APPLY_ONCE", &p.keys);
            assert!(p.keys[0].contains(":batch:{"), "{}", p.keys[0]);
            assert!(markers.insert(p.keys[0].clone()));
            for k in &p.keys[1..] {
                seen.insert(k.split(['{', '}']).nth(1).unwrap().to_string());
            }
        }
        assert_eq!(seen.len(), codes.len(), "every code's keys are in a part");
        // The same batch gives the same parts with the same markers (a replay
        // finds them), whatever order the keys inside a part come in.
        let sorted = |parts: Vec<BatchPart>| -> Vec<Vec<String>> {
            parts
                .into_iter()
                .map(|p| {
                    let mut rest = p.keys[1..].to_vec();
                    rest.sort();
                    rest.insert(0, p.keys[0].clone());
                    rest
                })
                .collect()
        };
        let again = sorted(r.batch_parts(&batch));
        assert!(
            again == sorted(parts),
            "a batch's parts changed between two calls"
        );
        // A batch with no scans still has its one marker.
        let empty = r.batch_parts(&Batch::new(Vec::new(), Vec::new()));
        assert_eq!(empty.len(), 1);
        // A single server: one part, the marker as before.
        let single = RedisCounters::connect(
            &RedisTarget::Single("redis://127.0.0.1:1/".into()),
            "codelink",
        )
        .unwrap()
        .batch_parts(&batch);
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].keys[0], format!("codelink:batch:{}", batch.id));
    }

    #[tokio::test]
    async fn claims_releases_reviews_and_refunds_are_one_slot() {
        let r = cluster();
        let c = purchase("evt-1", "cust-9");
        let refund = RefundOf {
            purchase_event_id: "evt-0".into(),
            before: Refunded::default(),
            after: Refunded::default(),
        };
        one_slot("CLAIM", &r.claim_keys(&c, true, Some(&refund)));
        one_slot("CLAIM", &r.claim_keys(&c, false, None));
        one_slot("RELEASE", &r.release_keys(&c, Some(&refund)));
        let pending = Review {
            conversion: c.clone(),
            status: ReviewStatus::Pending,
            decisions: Vec::new(),
        };
        let approved = Review {
            status: ReviewStatus::Approved,
            ..pending.clone()
        };
        let mut review = vec![r.review_key(&c.event_id)];
        review.extend(r.queue_keys(&pending));
        one_slot("OPEN_REVIEW", &review);
        review.extend(r.queue_keys(&approved));
        one_slot("SWAP_REVIEW", &review);
        one_slot(
            "SWAP_REFUNDED and the purchase look-ups",
            &[
                r.refund_key("evt-0"),
                format!("{}:conv:evt-0", r.g()),
                format!("{}:cpur:cust-9", r.g()),
            ],
        );
        // A code's stats and its days' visitors, read in one pipeline.
        one_slot(
            "code_stats",
            &[
                r.keys.stats("spring"),
                r.keys.uv("spring", 19_000),
                r.keys.uv("spring", 19_001),
            ],
        );
    }
}

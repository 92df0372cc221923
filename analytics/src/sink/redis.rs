//! Live counters in Redis, shared by every gateway instance.
//!
//! Keys (prefix `codelink` by default):
//! - `{p}:stats:{code}` hash of counter fields (see [`crate::batch::counter_deltas`]);
//! - `{p}:uv:{code}:{day}` HyperLogLog of human visitor ids that day (kept 400 days);
//! - `{p}:batch:{id}` marker of an applied batch (kept 7 days: longer than any spool replay);
//! - `{p}:lv:{code}:{visitor}` the visitor's latest human scan of the code (400 days, or
//!   the raw-scan retention when shorter);
//! - `{p}:conv:{event id}` the answer given for a conversion event (400 days);
//! - `{p}:refund:{purchase event id}` hash of what was refunded of a purchase:
//!   `amount`, `earnings` clawed back (400 days from its last refund);
//! - `{p}:cpur:{customer id}` sorted set of the customer's purchases (event
//!   ids scored by time of occurrence; 400 days from the last);
//! - `{p}:cust:{customer id}` the customer's first attribution (400 days).

use super::SinkError;
use crate::batch::{counter_deltas, human_visitors, latest_human_scans, Batch};
use crate::event::{Conversion, ConversionKind};
use crate::records::{Claim, ClaimRecord, CustomerLink, LastVisit, RefundOf, Refunded};
use crate::review::{Review, ReviewStatus};
use crate::stats::CodeStats;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

const MARKER_TTL_SECS: u64 = 7 * 24 * 3600;
const VISITS_TTL_SECS: u64 = 400 * 24 * 3600;
/// Members per PFADD call (Lua's unpack is limited by its C stack, ~8000).
const PFADD_CHUNK: usize = 4000;

/// Applies one batch atomically, once: ARGV[1] = marker TTL, then a flat list of
/// operations: `h key field delta` (HINCRBY), `p key n member…` (PFADD of n members),
/// `e key seconds` (EXPIRE), `l key value ts seconds` (SET unless the stored
/// value starts with a later ts). Returns `{1, errors, first error}` when
/// applied, `{0, 0, ""}` when the batch was seen before.
///
/// The marker is the first write: an out-of-memory Redis refuses a script's
/// first write and, once a script has written, lets it finish, so a batch is
/// applied whole or not at all. An operation Redis refuses on its own (a key of
/// the wrong type, left there by something else) is skipped with `pcall`
/// instead of abandoning the rest of the batch half-applied, and reported.
const APPLY_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return {0, 0, ''} end
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
  if op == 'h' then
    run('HINCRBY', ARGV[i+1], ARGV[i+2], ARGV[i+3]); i = i + 4
  elseif op == 'p' then
    local n = tonumber(ARGV[i+2])
    run('PFADD', ARGV[i+1], unpack(ARGV, i+3, i+2+n)); i = i + 3 + n
  elseif op == 'l' then
    local cur = run('GET', ARGV[i+1])
    local ts = type(cur) == 'string' and tonumber(string.match(cur, '^(%d+)'))
    if type(cur) ~= 'table' and ((not ts) or ts <= tonumber(ARGV[i+3])) then
      run('SET', ARGV[i+1], ARGV[i+2], 'EX', ARGV[i+4])
    end
    i = i + 5
  else
    run('EXPIRE', ARGV[i+1], ARGV[i+2]); i = i + 3
  end
end
return {1, errors, first}
"#;

#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    claim_script: redis::Script,
    release_script: redis::Script,
    /// How long a latest visit (`{p}:lv:…`, which names a visitor) is kept.
    last_visit_ttl_secs: u64,
}

/// Deletes KEYS[1] only if it still holds ARGV[1], and then: ARGV[2] (unless
/// empty) a sorted set to remove ARGV[3] from; ARGV[4] (unless empty) a
/// purchase's refund hash to add ARGV[5] to `amount` and ARGV[6] to `earnings`.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', ARGV[2], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HINCRBY', ARGV[4], 'amount', ARGV[5])
  redis.call('HINCRBY', ARGV[4], 'earnings', ARGV[6])
end
return 1
"#;

/// Claims a conversion event id: KEYS[1] the claim, ARGV[1] the answer,
/// ARGV[2] the TTL; unless empty: ARGV[3]/ARGV[4] a customer key and link
/// stored only if absent; ARGV[5] a customer's purchases (sorted set) to add
/// ARGV[7] to with score ARGV[6]; ARGV[8] the refunded purchase's hash, which
/// must still hold ARGV[9]/ARGV[10] (`amount`/`earnings`, absent = 0) and
/// then holds ARGV[11]/ARGV[12]. Returns `{0, ''}` when claimed now, `{1,
/// earlier answer}`, or `{2, ''}` when the refund hash changed (nothing written).
const CLAIM: &str = r#"
local prev = redis.call('GET', KEYS[1])
if prev then return {1, prev} end
if ARGV[8] ~= '' then
  local cur = redis.call('HMGET', ARGV[8], 'amount', 'earnings')
  if (cur[1] or '0') ~= ARGV[9] or (cur[2] or '0') ~= ARGV[10] then return {2, ''} end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', ARGV[3], ARGV[4], 'NX', 'EX', ARGV[2]) end
if ARGV[5] ~= '' then
  redis.call('ZADD', ARGV[5], ARGV[6], ARGV[7])
  redis.call('EXPIRE', ARGV[5], ARGV[2])
end
if ARGV[8] ~= '' then
  redis.call('HSET', ARGV[8], 'amount', ARGV[11], 'earnings', ARGV[12])
  redis.call('EXPIRE', ARGV[8], ARGV[2])
end
return {0, ''}
"#;

/// Customers' purchases read per round trip when looking for one to refund.
const PURCHASE_PAGE: usize = 50;

/// A lazily connecting Redis connection with the live store's timeouts
/// (1 s to connect, 5 s per answer, one retry).
pub(crate) fn connection(url: &str) -> Result<ConnectionManager, SinkError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

impl RedisCounters {
    /// Connects lazily: scans are spooled while Redis is unreachable.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, SinkError> {
        Ok(Self {
            conn: connection(url)?,
            prefix: prefix.to_string(),
            script: redis::Script::new(APPLY_ONCE),
            claim_script: redis::Script::new(CLAIM),
            release_script: redis::Script::new(RELEASE),
            last_visit_ttl_secs: VISITS_TTL_SECS,
        })
    }

    /// Keeps latest visits at most `retain` (the raw-scan retention) instead
    /// of 400 days, so that what names a visitor goes when their scans do.
    pub fn with_retention(mut self, retain: Option<Duration>) -> Self {
        if let Some(r) = retain {
            self.last_visit_ttl_secs = r.as_secs().clamp(1, VISITS_TTL_SECS);
        }
        self
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        let p = &self.prefix;
        let mut inv = self.script.prepare_invoke();
        inv.key(format!("{p}:batch:{}", batch.id))
            .arg(MARKER_TTL_SECS);
        for (code, fields) in counter_deltas(&batch.scans, &batch.steps) {
            let key = format!("{p}:stats:{code}");
            for (field, n) in fields {
                inv.arg("h").arg(&key).arg(field).arg(n);
            }
        }
        // One PFADD per HyperLogLog with all its members (in chunks that Lua's
        // unpack can take), and one last-visit write per (code, visitor): a
        // batch repeats visitors a lot, and Redis time is shared by everyone.
        for (code, day, members) in human_visitors(&batch.scans) {
            let key = format!("{p}:uv:{code}:{day}");
            for chunk in members.chunks(PFADD_CHUNK) {
                inv.arg("p").arg(&key).arg(chunk.len()).arg(chunk);
            }
            inv.arg("e").arg(&key).arg(VISITS_TTL_SECS);
        }
        let mut key = String::new();
        for ((code, visitor), scan) in latest_human_scans(&batch.scans) {
            key.clear();
            let _ = write!(key, "{p}:lv:{code}:{visitor}");
            inv.arg("l")
                .arg(key.as_str())
                .arg(LastVisit::encode(scan))
                .arg(scan.ts_ms)
                .arg(self.last_visit_ttl_secs);
        }
        let mut conn = self.conn.clone();
        let (_applied, errors, first): (i64, u64, String) = inv.invoke_async(&mut conn).await?;
        if errors > 0 {
            // Not retried: the batch is marked applied, and the same keys
            // would refuse it again. Loud instead of silent.
            tracing::error!(
                batch = %batch.id,
                errors,
                first_error = %first,
                "redis refused some counter updates of a batch (a key of the wrong type?); the rest was applied"
            );
        }
        Ok(())
    }

    pub async fn code_stats(&self, code: &str) -> Result<CodeStats, SinkError> {
        let p = &self.prefix;
        let mut conn = self.conn.clone();
        let fields: Vec<(String, u64)> = conn.hgetall(format!("{p}:stats:{code}")).await?;
        let days = CodeStats::days_in(&fields);
        let mut uniques = BTreeMap::new();
        if !days.is_empty() {
            let mut pipe = redis::pipe();
            for day in &days {
                pipe.pfcount(format!("{p}:uv:{code}:{day}"));
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
        let v: Option<Vec<u8>> = conn
            .get(format!("{}:lv:{code}:{visitor}", self.prefix))
            .await?;
        Ok(v.and_then(|v| LastVisit::decode(&v)))
    }

    pub async fn claim(
        &self,
        record: &ClaimRecord,
        link: Option<&CustomerLink>,
        refund: Option<&RefundOf>,
    ) -> Result<Claim, SinkError> {
        let p = &self.prefix;
        let c = &record.conversion;
        let row = serde_json::to_string(record).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let mut inv = self.claim_script.prepare_invoke();
        inv.key(format!("{p}:conv:{}", c.event_id))
            .arg(row)
            .arg(VISITS_TTL_SECS);
        match link {
            Some(link) => {
                let value =
                    serde_json::to_string(link).map_err(|e| SinkError::Embedded(e.to_string()))?;
                inv.arg(format!("{p}:cust:{}", c.customer_id)).arg(value);
            }
            None => {
                inv.arg("").arg("");
            }
        }
        match self.purchases_key(c) {
            Some(key) => inv.arg(key).arg(c.occurred_ms).arg(&c.event_id),
            None => inv.arg("").arg(0).arg(""),
        };
        match refund {
            Some(r) => inv
                .arg(self.refund_key(&r.purchase_event_id))
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

    pub async fn release(
        &self,
        record: &ClaimRecord,
        refund: Option<&RefundOf>,
    ) -> Result<(), SinkError> {
        let row = serde_json::to_string(record).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let c = &record.conversion;
        let mut inv = self.release_script.prepare_invoke();
        inv.key(format!("{}:conv:{}", self.prefix, c.event_id))
            .arg(row);
        match self.purchases_key(c) {
            Some(key) => inv.arg(key).arg(&c.event_id),
            None => inv.arg("").arg(""),
        };
        match refund {
            Some(r) => inv
                .arg(self.refund_key(&r.purchase_event_id))
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
            .then(|| format!("{}:cpur:{}", self.prefix, c.customer_id))
    }

    fn refund_key(&self, purchase_event_id: &str) -> String {
        format!("{}:refund:{purchase_event_id}", self.prefix)
    }

    pub async fn claimed(&self, event_id: &str) -> Result<Option<ClaimRecord>, SinkError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn.get(format!("{}:conv:{event_id}", self.prefix)).await?;
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
        let key = format!("{}:cpur:{customer_id}", self.prefix);
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
                pipe.get(format!("{}:conv:{id}", self.prefix));
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
        let v: Option<String> = conn
            .get(format!("{}:cust:{customer_id}", self.prefix))
            .await?;
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
        let mut conn = self.conn.clone();
        let p = &self.prefix;
        let mut deleted = 0u64;
        let mut doomed: Vec<String> = Vec::new();
        match who {
            super::Subject::Visitor(v) => {
                // Latest visits, and velocity counts (expiring anyway).
                for pattern in [
                    format!("{p}:lv:*:{}", escape_glob(v)),
                    format!("{p}:fraud:v:{}:*", escape_glob(v)),
                ] {
                    let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
                    while let Some(k) = iter.next_item().await {
                        doomed.push(k?);
                    }
                }
            }
            super::Subject::Customer(c) => {
                doomed.push(format!("{p}:cust:{c}"));
                doomed.push(format!("{p}:cpur:{c}"));
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
        {
            let mut scan_conn = self.conn.clone();
            // Claims, and the reviews that copy flagged ones.
            for pattern in [format!("{p}:conv:*"), format!("{p}:review:*")] {
                let mut iter: redis::AsyncIter<String> = scan_conn.scan_match(pattern).await?;
                while let Some(k) = iter.next_item().await {
                    keys.push(k?);
                }
            }
        }
        let review_prefix = format!("{p}:review:");
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
/// from the queues KEYS[2]/KEYS[3] to KEYS[4]/KEYS[5] (unless empty).
const SWAP_REVIEW: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if KEYS[4] ~= '' then
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
            let n: u64 = conn.incr(format!("{}:fraud:{key}", self.prefix), 1).await?;
            return Ok(n);
        }
        let full = format!("{}:fraud:{key}:{}", self.prefix, now_ms / window_ms);
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
        let n: Option<u64> = conn
            .hget(format!("{}:stats:{code}", self.prefix), "human")
            .await?;
        Ok(n.unwrap_or(0))
    }

    fn review_key(&self, event_id: &str) -> String {
        format!("{}:review:{event_id}", self.prefix)
    }

    /// The queues (all codes, the review's code) of `review`'s status.
    fn queue_keys(&self, review: &Review) -> [String; 2] {
        let (p, status) = (&self.prefix, review.status.as_str());
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
            None => (String::new(), [String::new(), String::new()]),
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
        let p = &self.prefix;
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

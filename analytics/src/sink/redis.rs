//! Live counters in Redis, shared by every gateway instance.
//!
//! Keys (prefix `codelink` by default):
//! - `{p}:stats:{code}` hash of counter fields (see [`crate::batch::counter_deltas`]);
//! - `{p}:uv:{code}:{day}` HyperLogLog of human visitor ids that day (kept 400 days);
//! - `{p}:batch:{id}` marker of an applied batch (kept 7 days: longer than any spool replay);
//! - `{p}:lv:{code}:{visitor}` the visitor's latest human scan of the code (400 days);
//! - `{p}:conv:{event id}` the answer given for a conversion event (400 days);
//! - `{p}:cust:{customer id}` the customer's first attribution (400 days).

use super::SinkError;
use crate::batch::{counter_deltas, human_visitors, latest_human_scans, Batch};
use crate::event::Conversion;
use crate::records::{Claim, CustomerLink, LastVisit};
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
}

/// Deletes KEYS[1] only if it still holds ARGV[1].
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Claims a conversion event id: KEYS[1] the claim, ARGV[1] the answer,
/// ARGV[2] its TTL, optionally ARGV[3]/ARGV[4] a customer key and link stored
/// only if absent. Returns nil when claimed now, else the earlier answer.
const CLAIM: &str = r#"
local prev = redis.call('GET', KEYS[1])
if prev then return prev end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] then redis.call('SET', ARGV[3], ARGV[4], 'NX', 'EX', ARGV[2]) end
return false
"#;

impl RedisCounters {
    /// Connects lazily: scans are spooled while Redis is unreachable.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, SinkError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: prefix.to_string(),
            script: redis::Script::new(APPLY_ONCE),
            claim_script: redis::Script::new(CLAIM),
            release_script: redis::Script::new(RELEASE),
        })
    }

    pub async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        let p = &self.prefix;
        let mut inv = self.script.prepare_invoke();
        inv.key(format!("{p}:batch:{}", batch.id))
            .arg(MARKER_TTL_SECS);
        for (code, fields) in counter_deltas(&batch.scans) {
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
                .arg(VISITS_TTL_SECS);
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
        c: &Conversion,
        link: Option<&CustomerLink>,
    ) -> Result<Claim, SinkError> {
        let p = &self.prefix;
        let row = serde_json::to_string(c).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let mut inv = self.claim_script.prepare_invoke();
        inv.key(format!("{p}:conv:{}", c.event_id))
            .arg(row)
            .arg(VISITS_TTL_SECS);
        if let Some(link) = link {
            let value =
                serde_json::to_string(link).map_err(|e| SinkError::Embedded(e.to_string()))?;
            inv.arg(format!("{p}:cust:{}", c.customer_id)).arg(value);
        }
        let mut conn = self.conn.clone();
        let existing: Option<String> = inv.invoke_async(&mut conn).await?;
        match existing {
            None => Ok(Claim::New),
            Some(json) => Ok(Claim::Existing(Box::new(
                serde_json::from_str(&json).map_err(|e| SinkError::Embedded(e.to_string()))?,
            ))),
        }
    }

    pub async fn release(&self, c: &Conversion) -> Result<(), SinkError> {
        let row = serde_json::to_string(c).map_err(|e| SinkError::Embedded(e.to_string()))?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release_script
            .key(format!("{}:conv:{}", self.prefix, c.event_id))
            .arg(row)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
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

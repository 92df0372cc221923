//! Live counters in Redis, shared by every gateway instance.
//!
//! Keys (prefix `codelink` by default):
//! - `{p}:stats:{code}` hash of counter fields (see [`crate::batch::counter_deltas`]);
//! - `{p}:uv:{code}:{day}` HyperLogLog of human visitor ids that day (kept 400 days);
//! - `{p}:batch:{id}` marker of an applied batch (kept 7 days: longer than any spool replay).

use super::SinkError;
use crate::batch::{counter_deltas, human_visits, Batch};
use crate::stats::CodeStats;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MARKER_TTL_SECS: u64 = 7 * 24 * 3600;
const VISITS_TTL_SECS: u64 = 400 * 24 * 3600;

/// Applies one batch atomically, once: ARGV[1] = marker TTL, then a flat list of
/// operations: `h key field delta` (HINCRBY), `p key member` (PFADD),
/// `e key seconds` (EXPIRE). Returns 1 when applied, 0 when the batch was seen.
const APPLY_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local i = 2
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  if op == 'h' then
    redis.call('HINCRBY', ARGV[i+1], ARGV[i+2], ARGV[i+3]); i = i + 4
  elseif op == 'p' then
    redis.call('PFADD', ARGV[i+1], ARGV[i+2]); i = i + 3
  else
    redis.call('EXPIRE', ARGV[i+1], ARGV[i+2]); i = i + 3
  end
end
return 1
"#;

#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

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
        let mut hll_keys = BTreeSet::new();
        for (code, day, visitor) in human_visits(&batch.scans) {
            let key = format!("{p}:uv:{code}:{day}");
            inv.arg("p").arg(&key).arg(visitor);
            hll_keys.insert(key);
        }
        for key in hll_keys {
            inv.arg("e").arg(key).arg(VISITS_TTL_SECS);
        }
        let mut conn = self.conn.clone();
        let _applied: i64 = inv.invoke_async(&mut conn).await?;
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

    pub async fn ping(&self) -> Result<(), SinkError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

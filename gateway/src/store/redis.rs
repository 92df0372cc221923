//! The Redis store: codes shared by every gateway instance.
//!
//! Layout (prefix `codelink` by default):
//! - `{prefix}:codes` — hash, field = canonical code, value = the record as JSON;
//! - `{prefix}:owners` — hash, field = owner handle, value = the creator's
//!   profile (bio page title, avatar, order) as JSON;
//! - `{prefix}:logos` — hash, field = SHA-256 (hex) of a QR logo, value = its
//!   bytes; written in the same MULTI as the record naming it;
//! - `{prefix}:keys` — hash, field = SHA-256 of an API key, value = the key record;
//! - `{prefix}:ui:ended:{nonce}` — a console session signed out, until its
//!   cookie would have expired (`EX`);
//! - `{prefix}:integrations` — hash, field = payment-provider endpoint id,
//!   value = the endpoint (with its signing secret) as JSON;
//! - `{prefix}:integrations:seen:{delivery}` — a signed provider delivery
//!   seen, until its signature is too old to be taken anyway (`EX`);
//! - `{prefix}:codes:version` — a random token replaced in the same MULTI as
//!   every write of a code or a profile. Random rather than a counter: a Redis that lost its data and
//!   counts again from 1 must not look unchanged to the instances.
//!
//! On a Redis Cluster (`--redis-cluster`) the prefix is `{prefix}` with the
//! braces: every key here is in one hash slot (one master), so the `MULTI`s
//! and scripts below run there and the version token moves atomically with
//! the codes it announces.
//!
//! Each instance polls the version (one GET every `--redis-sync-ms`) and reloads
//! the hash when it moved, so a change made through one instance reaches the
//! others within that interval plus one reload.

use super::{
    decode, decode_integration, decode_key, decode_profile, encode, encode_profile, ApiKey,
    Mutation, ProfileChange, ProfileWrite, Result, StoreError,
};
use super::{BulkWrite, BulkWritten, StoredCode, BULK_CHUNK};
use codelink_analytics::redis_conn::{RedisConn, RedisTarget};
use codelink_shared::{CodeRecord, Integration, OwnerProfile};
use redis::AsyncCommands;
use std::time::Duration;

#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    codes_key: String,
    version_key: String,
    keys_key: String,
    owners_key: String,
    logos_key: String,
    /// `{prefix}:ui:ended:` + a signed-out session's nonce.
    ended_prefix: String,
    integrations_key: String,
    /// `{prefix}:integrations:seen:` + a signed provider delivery.
    seen_prefix: String,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects lazily: the gateway starts (and serves its snapshot) even when Redis is down.
    pub fn connect(target: &RedisTarget, prefix: &str) -> anyhow::Result<Self> {
        let conn = RedisConn::open(target, Duration::from_secs(2)).map_err(|e| match target {
            RedisTarget::Single(url) => anyhow::anyhow!("--redis-url {url:?} is not usable: {e}"),
            RedisTarget::Cluster(_) => anyhow::anyhow!("--redis-cluster is not usable: {e}"),
        })?;
        let prefix = &codelink_analytics::redis_keys::global_prefix(prefix, target.is_cluster());
        Ok(Self {
            conn,
            codes_key: format!("{prefix}:codes"),
            version_key: format!("{prefix}:codes:version"),
            keys_key: format!("{prefix}:keys"),
            owners_key: format!("{prefix}:owners"),
            logos_key: format!("{prefix}:logos"),
            ended_prefix: format!("{prefix}:ui:ended:"),
            integrations_key: format!("{prefix}:integrations"),
            seen_prefix: format!("{prefix}:integrations:seen:"),
        })
    }

    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// The change token; moves whenever any instance writes a code. 0 when the
    /// key is missing: nothing was ever written, or Redis lost its data.
    pub async fn version(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let v: Option<u64> = conn.get(&self.version_key).await.map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    pub async fn load_all(&self) -> Result<Vec<CodeRecord>> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, Vec<u8>)> =
            conn.hgetall(&self.codes_key).await.map_err(unavailable)?;
        all.iter().map(|(_, v)| decode(v)).collect()
    }

    pub async fn insert_new(&self, record: CodeRecord) -> Result<()> {
        let mut conn = self.conn.clone();
        // HSETNX makes "first writer wins" atomic across instances.
        let (created, ()): (bool, ()) = redis::pipe()
            .atomic()
            .hset_nx(&self.codes_key, &record.code, encode(&record))
            .set(&self.version_key, new_version())
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Conflict(record.code))
        }
    }

    pub async fn update(&self, code: &str, change: Mutation) -> Result<CodeRecord> {
        self.update_inner(code, change, None).await
    }

    /// [`Self::update`], storing `logo` (SHA-256 hex, bytes) in the same MULTI.
    pub async fn update_inner(
        &self,
        code: &str,
        change: Mutation,
        logo: Option<(String, Vec<u8>)>,
    ) -> Result<CodeRecord> {
        let mut conn = self.conn.clone();
        let current: Option<Vec<u8>> = conn
            .hget(&self.codes_key, code)
            .await
            .map_err(unavailable)?;
        let mut record = match current {
            Some(bytes) => decode(&bytes)?,
            None => return Err(StoreError::NotFound(code.to_string())),
        };
        let stored_destination = record.destination.clone();
        change(&mut record)?;
        record.validate_update(&stored_destination)?;
        // Concurrent PATCHes of one code through two instances: the last write wins.
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some((sha, bytes)) = &logo {
            pipe.hset(&self.logos_key, sha, bytes.as_slice()).ignore();
        }
        pipe.hset(&self.codes_key, code, encode(&record))
            .ignore()
            .set(&self.version_key, new_version())
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(record)
    }

    pub async fn logos(&self, sha256s: Vec<String>) -> Result<Vec<(String, Vec<u8>)>> {
        let mut conn = self.conn.clone();
        let found: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(&self.logos_key)
            .arg(&sha256s)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(sha256s
            .into_iter()
            .zip(found)
            .filter_map(|(sha, bytes)| bytes.map(|b| (sha, b)))
            .collect())
    }
}

impl RedisStore {
    pub async fn read_codes(&self, codes: &[String]) -> Result<Vec<Option<StoredCode>>> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(BULK_CHUNK) {
            let found: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                .arg(&self.codes_key)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for raw in found {
                out.push(match raw {
                    Some(raw) => Some(StoredCode {
                        record: decode(&raw)?,
                        raw,
                    }),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    /// One script per [`BULK_CHUNK`] writes (a compare-and-set of each
    /// record, atomic per chunk); the version token is moved by the last
    /// chunk's script, or after a chunk fails.
    pub async fn write_codes(&self, writes: Vec<BulkWrite>) -> BulkWritten {
        let mut conn = self.conn.clone();
        let mut done = BulkWritten::default();
        let chunks = writes.len().div_ceil(BULK_CHUNK);
        for (i, chunk) in writes.chunks(BULK_CHUNK).enumerate() {
            let version = if i + 1 == chunks {
                new_version().to_string()
            } else {
                String::new()
            };
            let mut call = BULK_CAS.key(&self.codes_key);
            call.key(&self.version_key).arg(version);
            for w in chunk {
                call.arg(&w.record.code)
                    .arg(w.expected.as_deref().unwrap_or_default())
                    .arg(encode(&w.record));
            }
            match call.invoke_async::<Vec<i64>>(&mut conn).await {
                Ok(flags) => done.written.extend(flags.into_iter().map(|f| f == 1)),
                Err(e) => {
                    done.error = Some(unavailable(e));
                    if i > 0 {
                        // What the chunks before wrote reaches the others.
                        let _ = conn.set::<_, _, ()>(&self.version_key, new_version()).await;
                    }
                    break;
                }
            }
        }
        done
    }
}

/// The writes of one import chunk: KEYS codes, version; ARGV the new
/// version token (empty: leave it) and then per code its name, the stored
/// JSON the import read (empty: none; a stored record is never empty) and
/// the JSON to write. Each code is written only if it is still as read.
static BULK_CAS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local out = {}
for i = 2, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (cur or '') == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if ARGV[1] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
return out
",
    )
});

impl RedisStore {
    /// Writes back codes that Redis no longer has (it restarted without
    /// persistence). `HSETNX` never overwrites a code written meanwhile; the new
    /// version token makes the other instances reload them.
    pub async fn restore(&self, records: &[CodeRecord]) -> Result<()> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for r in records {
            pipe.hset_nx(&self.codes_key, &r.code, encode(r)).ignore();
        }
        pipe.set(&self.version_key, new_version()).ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    /// Writes back profiles Redis no longer has, as [`Self::restore`] does
    /// codes (`HSETNX`: one written meanwhile is kept).
    pub async fn restore_profiles(&self, profiles: &[OwnerProfile]) -> Result<()> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for p in profiles {
            pipe.hset_nx(&self.owners_key, &p.owner, encode_profile(p))
                .ignore();
        }
        pipe.set(&self.version_key, new_version()).ignore();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    /// Writes back logo bytes (SHA-256 → bytes) Redis no longer has, for
    /// the codes and profiles [`Self::restore`] and
    /// [`Self::restore_profiles`] put back (`HSETNX`).
    pub async fn restore_logos(&self, logos: &[(String, bytes::Bytes)]) -> Result<()> {
        if logos.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (sha, bytes) in logos {
            pipe.hset_nx(&self.logos_key, sha, bytes.as_ref()).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }
}

impl RedisStore {
    pub async fn load_profiles(&self) -> Result<Vec<OwnerProfile>> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, Vec<u8>)> =
            conn.hgetall(&self.owners_key).await.map_err(unavailable)?;
        all.iter().map(|(_, v)| decode_profile(v)).collect()
    }

    /// See [`super::Store::update_profile`]: the profile is read, changed
    /// here, and written by one script only if it is still the one read
    /// (else read again); the logo's bytes, the profile and the version
    /// token (so the other instances reload it as they reload codes) in that
    /// script, the logo's first: on a Redis out of memory nothing is written.
    pub async fn update_profile(
        &self,
        owner: &str,
        change: ProfileChange,
        logo: Option<(String, Vec<u8>)>,
    ) -> Result<(Option<OwnerProfile>, Option<OwnerProfile>)> {
        let mut conn = self.conn.clone();
        for _ in 0..10 {
            let read: Option<Vec<u8>> = conn
                .hget(&self.owners_key, owner)
                .await
                .map_err(unavailable)?;
            let before = read.as_deref().map(decode_profile).transpose()?;
            let (write, after): (Vec<u8>, _) = match change(before.as_ref())? {
                ProfileWrite::Keep => return Ok((before.clone(), before)),
                ProfileWrite::Delete => (Vec::new(), None),
                ProfileWrite::Put(p) => (encode_profile(&p), Some(p)),
            };
            let (sha, bytes) = match (&logo, &after) {
                (Some((sha, bytes)), Some(_)) => (sha.as_str(), bytes.as_slice()),
                _ => ("", &[][..]),
            };
            let written: i64 = PROFILE_CAS
                .key(&self.owners_key)
                .key(&self.version_key)
                .key(&self.logos_key)
                .arg(owner)
                .arg(read.unwrap_or_default())
                .arg(write)
                .arg(new_version())
                .arg(sha)
                .arg(bytes)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if written == 1 {
                return Ok((before, after));
            }
        }
        Err(StoreError::Unavailable(format!(
            "the profile of '{owner}' kept changing while it was written; retry"
        )))
    }
}

/// Compare-and-set of one profile: KEYS owners, version, logos; ARGV owner,
/// the stored JSON read (empty: none), the JSON to write (empty: delete),
/// the new version token, the logo's SHA-256 (empty: none) and bytes.
/// A stored profile is never empty, so empty stands for "none" safely.
static PROFILE_CAS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('SET', KEYS[2], ARGV[4])
return 1
",
    )
});

impl RedisStore {
    pub async fn put_key(&self, key: ApiKey) -> Result<()> {
        let mut conn = self.conn.clone();
        let value = serde_json::to_vec(&key).unwrap_or_default();
        conn.hset::<_, _, _, ()>(&self.keys_key, &key.hash, value)
            .await
            .map_err(unavailable)
    }

    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let mut conn = self.conn.clone();
        let v: Option<Vec<u8>> = conn.hget(&self.keys_key, hash).await.map_err(unavailable)?;
        v.map(|v| decode_key(&v)).transpose()
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, Vec<u8>)> =
            conn.hgetall(&self.keys_key).await.map_err(unavailable)?;
        all.iter().map(|(_, v)| decode_key(v)).collect()
    }
}

impl RedisStore {
    pub async fn end_session(&self, nonce: &str, expires: i64) -> Result<()> {
        let mut conn = self.conn.clone();
        let ttl = (expires - crate::admin::now()).max(1) as u64;
        conn.set_ex::<_, _, ()>(format!("{}{nonce}", self.ended_prefix), 1, ttl)
            .await
            .map_err(unavailable)
    }

    pub async fn session_ended(&self, nonce: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        conn.exists(format!("{}{nonce}", self.ended_prefix))
            .await
            .map_err(unavailable)
    }
}

fn new_version() -> u64 {
    rand::random::<u64>() | 1
}

impl RedisStore {
    pub async fn put_integration(&self, integration: Integration) -> Result<()> {
        let mut conn = self.conn.clone();
        let value = serde_json::to_vec(&integration).unwrap_or_default();
        conn.hset::<_, _, _, ()>(&self.integrations_key, &integration.id, value)
            .await
            .map_err(unavailable)
    }

    pub async fn integration(&self, id: &str) -> Result<Option<Integration>> {
        let mut conn = self.conn.clone();
        let v: Option<Vec<u8>> = conn
            .hget(&self.integrations_key, id)
            .await
            .map_err(unavailable)?;
        v.map(|v| decode_integration(&v)).transpose()
    }

    pub async fn list_integrations(&self) -> Result<Vec<Integration>> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, Vec<u8>)> = conn
            .hgetall(&self.integrations_key)
            .await
            .map_err(unavailable)?;
        all.iter().map(|(_, v)| decode_integration(v)).collect()
    }

    pub async fn delete_integration(&self, id: &str) -> Result<Option<Integration>> {
        let mut conn = self.conn.clone();
        // Read and delete in one script: of two DELETEs, one sees the record.
        let v: Option<Vec<u8>> = redis::Script::new(
            "local v = redis.call('HGET', KEYS[1], ARGV[1]) \
             if v then redis.call('HDEL', KEYS[1], ARGV[1]) end return v",
        )
        .key(&self.integrations_key)
        .arg(id)
        .invoke_async(&mut conn)
        .await
        .map_err(unavailable)?;
        v.map(|v| decode_integration(&v)).transpose()
    }

    /// `SET NX` with an expiry: true for the first instance to see `delivery`.
    pub async fn first_delivery(&self, delivery: &str, until: i64) -> Result<bool> {
        let mut conn = self.conn.clone();
        let ttl = (until - crate::admin::now()).max(1) as u64;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}{delivery}", self.seen_prefix))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod slot_tests {
    use super::*;
    use codelink_analytics::redis_keys::key_slot;

    /// On a Redis Cluster every key of the code store is in one slot, so its
    /// `MULTI`s and scripts (BULK_CAS, PROFILE_CAS, the integration delete)
    /// run there; on a single server the names are as before.
    #[tokio::test]
    async fn the_code_store_is_one_slot_on_a_cluster() {
        let target = RedisTarget::Cluster(vec!["redis://127.0.0.1:1".into()]);
        let s = RedisStore::connect(&target, "codelink").unwrap();
        let keys = [
            s.codes_key.clone(),
            s.version_key.clone(),
            s.keys_key.clone(),
            s.owners_key.clone(),
            s.logos_key.clone(),
            format!("{}nonce", s.ended_prefix),
            s.integrations_key.clone(),
            format!("{}delivery", s.seen_prefix),
        ];
        let slots: std::collections::HashSet<u16> =
            keys.iter().map(|k| key_slot(k.as_bytes())).collect();
        assert_eq!(slots.len(), 1, "{keys:?}");
        assert_eq!(s.version_key, "{codelink}:codes:version");

        let single = RedisStore::connect(
            &RedisTarget::Single("redis://127.0.0.1:1/".into()),
            "codelink",
        )
        .unwrap();
        assert_eq!(single.codes_key, "codelink:codes");
        assert_eq!(single.version_key, "codelink:codes:version");
    }
}

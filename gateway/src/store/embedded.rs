//! The embedded store: one redb file in the data dir. redb is synchronous, so
//! every call runs on the blocking pool; admin writes are rare and small.

use super::{
    decode, decode_integration, decode_key, decode_profile, encode, encode_profile, ApiKey,
    Mutation, ProfileChange, ProfileWrite, Result, StoreError,
};
use super::{BulkWrite, BulkWritten, StoredCode, BULK_CHUNK};
use codelink_shared::{CodeRecord, Integration, OwnerProfile};
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("codes");
/// key hash → ApiKey as JSON.
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
/// owner handle → OwnerProfile as JSON (the bio page's title, avatar, order).
const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("owner_profiles");
/// SHA-256 (hex) of a QR logo → its bytes (content-addressed).
const LOGOS: TableDefinition<&str, &[u8]> = TableDefinition::new("qr_logos");
/// Nonces of console sessions signed out → when their cookie expires (Unix s).
const ENDED_SESSIONS: TableDefinition<&str, i64> = TableDefinition::new("ended_sessions");
/// Payment-provider endpoint id → `Integration` as JSON (with its secret).
const INTEGRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("integrations");
/// A signed provider delivery seen → until when it is remembered (Unix s).
const DELIVERIES: TableDefinition<&str, i64> = TableDefinition::new("integration_deliveries");
/// `{until, 12 digits}\0{delivery}`: the same, by expiry, for pruning.
const DELIVERIES_BY_EXPIRY: TableDefinition<&str, ()> =
    TableDefinition::new("integration_deliveries_by_expiry");

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl EmbeddedStore {
    /// Opens `codelink.redb` with a page cache of `cache_bytes`.
    pub fn open(data_dir: &Path, cache_bytes: u64) -> anyhow::Result<Self> {
        let path = data_dir.join("codelink.redb");
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(&path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} ({e}); is another codelink using this data dir?",
                    path.display()
                )
            })?;
        // Key hashes and customer data: readable by this user only.
        crate::keys::owner_only(&path)?;
        // Create the table so that readers never see it missing.
        let tx = db.begin_write()?;
        tx.open_table(CODES)?;
        tx.open_table(KEYS)?;
        tx.open_table(ENDED_SESSIONS)?;
        tx.open_table(PROFILES)?;
        tx.open_table(LOGOS)?;
        tx.open_table(INTEGRATIONS)?;
        tx.open_table(DELIVERIES)?;
        tx.open_table(DELIVERIES_BY_EXPIRY)?;
        tx.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }

    pub async fn load_all(&self) -> Result<Vec<CodeRecord>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(CODES).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(unavailable)? {
                let (_, value) = item.map_err(unavailable)?;
                out.push(decode(value.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn insert_new(&self, record: CodeRecord) -> Result<()> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut table = tx.open_table(CODES).map_err(unavailable)?;
                if table
                    .get(record.code.as_str())
                    .map_err(unavailable)?
                    .is_some()
                {
                    return Err(StoreError::Conflict(record.code));
                }
                table
                    .insert(record.code.as_str(), encode(&record).as_slice())
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    pub async fn update(&self, code: &str, change: Mutation) -> Result<CodeRecord> {
        self.update_inner(code, change, None).await
    }

    /// [`Self::update`], storing `logo` (SHA-256 hex, bytes) in the same transaction.
    pub async fn update_inner(
        &self,
        code: &str,
        change: Mutation,
        logo: Option<(String, Vec<u8>)>,
    ) -> Result<CodeRecord> {
        let code = code.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            if let Some((sha, bytes)) = &logo {
                let mut logos = tx.open_table(LOGOS).map_err(unavailable)?;
                logos
                    .insert(sha.as_str(), bytes.as_slice())
                    .map_err(unavailable)?;
            }
            let record = {
                let mut table = tx.open_table(CODES).map_err(unavailable)?;
                let mut record = match table.get(code.as_str()).map_err(unavailable)? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StoreError::NotFound(code)),
                };
                let stored_destination = record.destination.clone();
                change(&mut record)?;
                record.validate_update(&stored_destination)?;
                table
                    .insert(code.as_str(), encode(&record).as_slice())
                    .map_err(unavailable)?;
                record
            };
            tx.commit().map_err(unavailable)?;
            Ok(record)
        })
        .await
    }
}

impl EmbeddedStore {
    pub async fn read_codes(&self, codes: &[String]) -> Result<Vec<Option<StoredCode>>> {
        let codes = codes.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(CODES).map_err(unavailable)?;
            let mut out = Vec::with_capacity(codes.len());
            for code in &codes {
                out.push(match table.get(code.as_str()).map_err(unavailable)? {
                    Some(v) => {
                        let raw = v.value().to_vec();
                        Some(StoredCode {
                            record: decode(&raw)?,
                            raw,
                        })
                    }
                    None => None,
                });
            }
            Ok(out)
        })
        .await
    }

    /// One transaction per [`BULK_CHUNK`] writes: an import of 10,000 codes
    /// commits (and syncs the file) 10 times, not 10,000.
    pub async fn write_codes(&self, writes: Vec<BulkWrite>) -> BulkWritten {
        let db = self.db.clone();
        let run = tokio::task::spawn_blocking(move || {
            let mut done = BulkWritten::default();
            for chunk in writes.chunks(BULK_CHUNK) {
                match write_chunk(&db, chunk) {
                    Ok(written) => done.written.extend(written),
                    Err(e) => {
                        done.error = Some(e);
                        break;
                    }
                }
            }
            done
        });
        run.await.unwrap_or_else(|e| BulkWritten {
            written: Vec::new(),
            error: Some(unavailable(e)),
        })
    }
}

/// One chunk of an import in one transaction.
fn write_chunk(db: &Database, chunk: &[BulkWrite]) -> Result<Vec<bool>> {
    let tx = db.begin_write().map_err(unavailable)?;
    let mut written = Vec::with_capacity(chunk.len());
    {
        let mut table = tx.open_table(CODES).map_err(unavailable)?;
        for w in chunk {
            let current = table
                .get(w.record.code.as_str())
                .map_err(unavailable)?
                .map(|v| v.value().to_vec());
            let ok = current == w.expected;
            if ok {
                table
                    .insert(w.record.code.as_str(), encode(&w.record).as_slice())
                    .map_err(unavailable)?;
            }
            written.push(ok);
        }
    }
    tx.commit().map_err(unavailable)?;
    Ok(written)
}

impl EmbeddedStore {
    pub async fn load_profiles(&self) -> Result<Vec<OwnerProfile>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(PROFILES).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(unavailable)? {
                out.push(decode_profile(item.map_err(unavailable)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn logos(&self, sha256s: Vec<String>) -> Result<Vec<(String, Vec<u8>)>> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(LOGOS).map_err(unavailable)?;
            let mut out = Vec::new();
            for sha in sha256s {
                if let Some(v) = table.get(sha.as_str()).map_err(unavailable)? {
                    out.push((sha, v.value().to_vec()));
                }
            }
            Ok(out)
        })
        .await
    }

    /// See [`super::Store::update_profile`]: one write transaction.
    pub async fn update_profile(
        &self,
        owner: &str,
        change: ProfileChange,
        logo: Option<(String, Vec<u8>)>,
    ) -> Result<(Option<OwnerProfile>, Option<OwnerProfile>)> {
        let owner = owner.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let (before, after) = {
                let mut table = tx.open_table(PROFILES).map_err(unavailable)?;
                let before = match table.get(owner.as_str()).map_err(unavailable)? {
                    Some(v) => Some(decode_profile(v.value())?),
                    None => None,
                };
                match change(before.as_ref())? {
                    ProfileWrite::Keep => return Ok((before.clone(), before)),
                    ProfileWrite::Delete => {
                        table.remove(owner.as_str()).map_err(unavailable)?;
                        (before, None)
                    }
                    ProfileWrite::Put(profile) => {
                        table
                            .insert(owner.as_str(), encode_profile(&profile).as_slice())
                            .map_err(unavailable)?;
                        (before, Some(profile))
                    }
                }
            };
            if let (Some((sha, bytes)), Some(_)) = (&logo, &after) {
                let mut logos = tx.open_table(LOGOS).map_err(unavailable)?;
                logos
                    .insert(sha.as_str(), bytes.as_slice())
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok((before, after))
        })
        .await
    }
}

impl EmbeddedStore {
    pub async fn put_key(&self, key: ApiKey) -> Result<()> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut table = tx.open_table(KEYS).map_err(unavailable)?;
                let value = serde_json::to_vec(&key).map_err(unavailable)?;
                table
                    .insert(key.hash.as_str(), value.as_slice())
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let hash = hash.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(KEYS).map_err(unavailable)?;
            let found = table.get(hash.as_str()).map_err(unavailable)?;
            found.map(|v| decode_key(v.value())).transpose()
        })
        .await
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(KEYS).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(unavailable)? {
                out.push(decode_key(item.map_err(unavailable)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn end_session(&self, nonce: &str, expires: i64) -> Result<()> {
        let nonce = nonce.to_string();
        let now = crate::admin::now();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut table = tx.open_table(ENDED_SESSIONS).map_err(unavailable)?;
                // Sign-outs are rare: forget those whose cookies expired on the way.
                table.retain(|_, until| until > now).map_err(unavailable)?;
                table.insert(nonce.as_str(), expires).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    pub async fn session_ended(&self, nonce: &str) -> Result<bool> {
        let nonce = nonce.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(ENDED_SESSIONS).map_err(unavailable)?;
            Ok(table.get(nonce.as_str()).map_err(unavailable)?.is_some())
        })
        .await
    }
}

impl EmbeddedStore {
    pub async fn put_integration(&self, integration: Integration) -> Result<()> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut table = tx.open_table(INTEGRATIONS).map_err(unavailable)?;
                let value = serde_json::to_vec(&integration).map_err(unavailable)?;
                table
                    .insert(integration.id.as_str(), value.as_slice())
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    pub async fn integration(&self, id: &str) -> Result<Option<Integration>> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(INTEGRATIONS).map_err(unavailable)?;
            let found = table.get(id.as_str()).map_err(unavailable)?;
            found.map(|v| decode_integration(v.value())).transpose()
        })
        .await
    }

    pub async fn list_integrations(&self) -> Result<Vec<Integration>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = tx.open_table(INTEGRATIONS).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(unavailable)? {
                out.push(decode_integration(item.map_err(unavailable)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn delete_integration(&self, id: &str) -> Result<Option<Integration>> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut table = tx.open_table(INTEGRATIONS).map_err(unavailable)?;
                let removed = table.remove(id.as_str()).map_err(unavailable)?;
                removed.map(|v| decode_integration(v.value())).transpose()?
            };
            tx.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }

    /// Marks `delivery` seen until `until` (Unix s); false when it already
    /// was. Up to 256 expired marks are pruned on the way, oldest first, so
    /// the table holds about the deliveries of one tolerance window.
    pub async fn first_delivery(&self, delivery: &str, until: i64) -> Result<bool> {
        let delivery = delivery.to_string();
        let now = crate::admin::now();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let first = {
                let mut seen = tx.open_table(DELIVERIES).map_err(unavailable)?;
                let mut by_expiry = tx.open_table(DELIVERIES_BY_EXPIRY).map_err(unavailable)?;
                let bound = format!("{:012}", now.max(0));
                let expired: Vec<String> = by_expiry
                    .range(..bound.as_str())
                    .map_err(unavailable)?
                    .take(256)
                    .map(|e| e.map(|(k, _)| k.value().to_string()))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(unavailable)?;
                for key in &expired {
                    by_expiry.remove(key.as_str()).map_err(unavailable)?;
                    if let Some((_, name)) = key.split_once('\0') {
                        seen.remove(name).map_err(unavailable)?;
                    }
                }
                let live = seen
                    .get(delivery.as_str())
                    .map_err(unavailable)?
                    .is_some_and(|v| v.value() > now);
                if !live {
                    seen.insert(delivery.as_str(), until).map_err(unavailable)?;
                    let key = format!("{:012}\0{delivery}", until.max(0));
                    by_expiry.insert(key.as_str(), ()).map_err(unavailable)?;
                }
                !live
            };
            tx.commit().map_err(unavailable)?;
            Ok(first)
        })
        .await
    }
}

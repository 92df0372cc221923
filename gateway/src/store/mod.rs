//! Where codes persist: the embedded database in the data dir (default) or Redis.
//!
//! **Invariant:** nothing on the redirect or QR path calls into a store. Handlers
//! read the in-memory [`crate::codes::CodeTable`]; the store is touched by admin
//! writes, at start-up and by the Redis sync task.

mod embedded;
mod redis;

pub use self::embedded::EmbeddedStore;
pub use self::redis::RedisStore;

pub use codelink_shared::{ApiKey, KeyKind};
use codelink_shared::{CodeRecord, Integration, LogoRef, OwnerProfile, ValidationError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("code '{0}' is already taken")]
    Conflict(String),
    #[error("code '{0}' not found")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The code's QR style (or logo) gives images the QR reader cannot read;
    /// the message says which choice to change.
    #[error("{0}")]
    QrUnreadable(String),
    /// The backend could not be reached or failed; the request may be retried.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a profile write makes of the stored profile (`None`: none stored).
/// `Fn`: the Redis store calls it again when another write came between.
pub type ProfileChange =
    Box<dyn Fn(Option<&OwnerProfile>) -> Result<ProfileWrite, ValidationError> + Send + Sync>;

pub enum ProfileWrite {
    Put(OwnerProfile),
    Delete,
    /// Leave the stored profile as it is.
    Keep,
}

/// A change applied to a stored record; returns a validation error to abort.
pub type Mutation = Box<dyn FnOnce(&mut CodeRecord) -> Result<(), ValidationError> + Send>;

/// Writes of an import go to the store in chunks of this many records.
pub const BULK_CHUNK: usize = 1000;

/// What [`Store::write_codes`] did: for the writes of the chunks it got
/// to, in order, whether each was written; and the error that stopped it
/// (the writes after those were not tried).
#[derive(Default)]
pub struct BulkWritten {
    pub written: Vec<bool>,
    pub error: Option<StoreError>,
}

/// A stored code and its bytes as stored.
pub struct StoredCode {
    pub record: CodeRecord,
    pub raw: Vec<u8>,
}

/// One write of an import.
pub struct BulkWrite {
    pub record: CodeRecord,
    /// The stored bytes the import read (`None`: the code must not exist).
    pub expected: Option<Vec<u8>>,
}

pub enum Store {
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

impl Store {
    pub async fn load_all(&self) -> Result<Vec<CodeRecord>> {
        match self {
            Store::Embedded(s) => s.load_all().await,
            Store::Redis(s) => s.load_all().await,
        }
    }

    /// Stores a new code; [`StoreError::Conflict`] when the name is taken.
    pub async fn insert_new(&self, record: CodeRecord) -> Result<()> {
        match self {
            Store::Embedded(s) => s.insert_new(record).await,
            Store::Redis(s) => s.insert_new(record).await,
        }
    }

    /// Reads the stored record, applies `change`, validates and writes it back
    /// (a destination the change keeps is checked as stored:
    /// [`CodeRecord::validate_update`]).
    pub async fn update(&self, code: &str, change: Mutation) -> Result<CodeRecord> {
        match self {
            Store::Embedded(s) => s.update(code, change).await,
            Store::Redis(s) => s.update(code, change).await,
        }
    }

    /// The stored records of `codes` (canonical names), in that order, with
    /// their stored bytes (what [`Self::write_codes`] compares against);
    /// `None` for a code not stored. For imports: read in chunks of
    /// [`BULK_CHUNK`].
    pub async fn read_codes(&self, codes: &[String]) -> Result<Vec<Option<StoredCode>>> {
        match self {
            Store::Embedded(s) => s.read_codes(codes).await,
            Store::Redis(s) => s.read_codes(codes).await,
        }
    }

    /// Writes many records, each only if the store still holds what the
    /// import planned on ([`BulkWrite::expected`]); whether each was written
    /// (`false`: another write came between; nothing is overwritten).
    /// One redb transaction, or one Redis script, per [`BULK_CHUNK`] writes;
    /// in Redis the version token moves once, with the last chunk (or after
    /// the chunk that failed, so the instances load what was written).
    pub async fn write_codes(&self, writes: Vec<BulkWrite>) -> BulkWritten {
        if writes.is_empty() {
            return BulkWritten::default();
        }
        match self {
            Store::Embedded(s) => s.write_codes(writes).await,
            Store::Redis(s) => s.write_codes(writes).await,
        }
    }

    /// Every creator profile (the bio pages' titles, avatars and order).
    pub async fn load_profiles(&self) -> Result<Vec<OwnerProfile>> {
        match self {
            Store::Embedded(s) => s.load_profiles().await,
            Store::Redis(s) => s.load_profiles().await,
        }
    }

    /// Stores a validated profile, replacing the owner's previous one but
    /// keeping the QR logo the stored one names (the logo is set only by
    /// [`Self::set_profile_logo`]); returns what was stored.
    pub async fn put_profile(&self, profile: OwnerProfile) -> Result<OwnerProfile> {
        let owner = profile.owner.clone();
        let (_, after) = self
            .update_profile(
                &owner,
                Box::new(move |stored: Option<&OwnerProfile>| {
                    let mut next = profile.clone();
                    next.qr_logo = stored.and_then(|p| p.qr_logo.clone());
                    Ok(ProfileWrite::Put(next))
                }),
                None,
            )
            .await?;
        Ok(after.unwrap_or_default())
    }

    /// Deletes an owner's profile: whether there was one, and what remains.
    /// A profile naming a QR logo is reduced to its owner and logo instead
    /// (the logo has its own DELETE).
    pub async fn delete_profile(&self, owner: &str) -> Result<(bool, Option<OwnerProfile>)> {
        let (before, after) = self
            .update_profile(
                owner,
                Box::new(|stored: Option<&OwnerProfile>| {
                    Ok(match stored {
                        None => ProfileWrite::Keep,
                        Some(p) if p.qr_logo.is_some() => ProfileWrite::Put(OwnerProfile {
                            owner: p.owner.clone(),
                            qr_logo: p.qr_logo.clone(),
                            updated_at: p.updated_at,
                            ..OwnerProfile::default()
                        }),
                        Some(_) => ProfileWrite::Delete,
                    })
                }),
                None,
            )
            .await?;
        Ok((before.is_some(), after))
    }

    /// Sets (`Some`, with its bytes, stored under their SHA-256 in the same
    /// write) or removes (`None`) the owner's QR logo, creating the profile
    /// when the owner has none. Returns the profile before and after
    /// (removing a logo the owner does not have writes nothing).
    pub async fn set_profile_logo(
        &self,
        owner: &str,
        logo: Option<(LogoRef, Vec<u8>)>,
        now: i64,
    ) -> Result<(Option<OwnerProfile>, Option<OwnerProfile>)> {
        let owner_name = owner.to_string();
        let named = logo.as_ref().map(|(r, _)| r.clone());
        let bytes = logo.map(|(r, b)| (r.sha256, b));
        self.update_profile(
            owner,
            Box::new(move |stored: Option<&OwnerProfile>| {
                if named.is_none() && stored.is_none_or(|p| p.qr_logo.is_none()) {
                    return Ok(ProfileWrite::Keep);
                }
                let mut next = stored.cloned().unwrap_or_else(|| OwnerProfile {
                    owner: owner_name.clone(),
                    ..OwnerProfile::default()
                });
                next.qr_logo = named.clone();
                next.updated_at = now;
                Ok(ProfileWrite::Put(next))
            }),
            bytes,
        )
        .await
    }

    /// Reads the owner's stored profile, lets `change` decide, and writes
    /// that (with `logo`'s bytes, SHA-256 → bytes, when it puts a profile)
    /// atomically: one redb transaction, or in Redis one script that writes
    /// only if the profile is still the one read (else read again), and
    /// moves the version token. Returns the profile before and after.
    async fn update_profile(
        &self,
        owner: &str,
        change: ProfileChange,
        logo: Option<(String, Vec<u8>)>,
    ) -> Result<(Option<OwnerProfile>, Option<OwnerProfile>)> {
        match self {
            Store::Embedded(s) => s.update_profile(owner, change, logo).await,
            Store::Redis(s) => s.update_profile(owner, change, logo).await,
        }
    }

    /// [`Self::update`] that also stores a logo's bytes under their SHA-256
    /// (hex), in the same write: a record never names a logo the store lacks.
    /// Logo bytes are content-addressed and kept (a later upload of the same
    /// image, or another code's, reuses them).
    pub async fn update_with_logo(
        &self,
        code: &str,
        change: Mutation,
        logo: (String, Vec<u8>),
    ) -> Result<CodeRecord> {
        match self {
            Store::Embedded(s) => s.update_inner(code, change, Some(logo)).await,
            Store::Redis(s) => s.update_inner(code, change, Some(logo)).await,
        }
    }

    /// The stored logos among `sha256s` (hex), as (SHA-256, bytes); a missing
    /// one is left out.
    pub async fn logos(&self, sha256s: Vec<String>) -> Result<Vec<(String, Vec<u8>)>> {
        if sha256s.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Store::Embedded(s) => s.logos(sha256s).await,
            Store::Redis(s) => s.logos(sha256s).await,
        }
    }

    pub async fn put_key(&self, key: ApiKey) -> Result<()> {
        match self {
            Store::Embedded(s) => s.put_key(key).await,
            Store::Redis(s) => s.put_key(key).await,
        }
    }

    /// The key whose secret hashes to `hash`.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        match self {
            Store::Embedded(s) => s.key_by_hash(hash).await,
            Store::Redis(s) => s.key_by_hash(hash).await,
        }
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        match self {
            Store::Embedded(s) => s.list_keys().await,
            Store::Redis(s) => s.list_keys().await,
        }
    }

    /// Ends a console session for good (sign-out): `session_ended` is true
    /// for its nonce until `expires` (Unix seconds), when the cookie itself
    /// has expired.
    pub async fn end_session(&self, nonce: &str, expires: i64) -> Result<()> {
        match self {
            Store::Embedded(s) => s.end_session(nonce, expires).await,
            Store::Redis(s) => s.end_session(nonce, expires).await,
        }
    }

    pub async fn session_ended(&self, nonce: &str) -> Result<bool> {
        match self {
            Store::Embedded(s) => s.session_ended(nonce).await,
            Store::Redis(s) => s.session_ended(nonce).await,
        }
    }

    /// Whether the backend answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Embedded(_) => Ok(()),
            Store::Redis(s) => s.ping().await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Embedded(_) => "embedded",
            Store::Redis(_) => "redis",
        }
    }
}

fn decode_key(bytes: &[u8]) -> Result<ApiKey> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Unavailable(format!("stored API key is corrupt: {e}")))
}

fn decode(bytes: &[u8]) -> Result<CodeRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Unavailable(format!("stored code record is corrupt: {e}")))
}

fn decode_profile(bytes: &[u8]) -> Result<OwnerProfile> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Unavailable(format!("stored owner profile is corrupt: {e}")))
}

fn encode_profile(profile: &OwnerProfile) -> Vec<u8> {
    // Strings, numbers and a list of strings: it always serialises.
    serde_json::to_vec(profile).unwrap_or_default()
}

fn encode(record: &CodeRecord) -> Vec<u8> {
    // A CodeRecord has only strings, numbers and maps with string keys: it always serialises.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Payment-provider endpoints (`/api/v1/integrations`) and the signed
/// deliveries seen, for refusing a replay.
impl Store {
    pub async fn put_integration(&self, integration: Integration) -> Result<()> {
        match self {
            Store::Embedded(s) => s.put_integration(integration).await,
            Store::Redis(s) => s.put_integration(integration).await,
        }
    }

    pub async fn integration(&self, id: &str) -> Result<Option<Integration>> {
        match self {
            Store::Embedded(s) => s.integration(id).await,
            Store::Redis(s) => s.integration(id).await,
        }
    }

    pub async fn list_integrations(&self) -> Result<Vec<Integration>> {
        match self {
            Store::Embedded(s) => s.list_integrations().await,
            Store::Redis(s) => s.list_integrations().await,
        }
    }

    /// Removes an endpoint: what was stored, if anything.
    pub async fn delete_integration(&self, id: &str) -> Result<Option<Integration>> {
        match self {
            Store::Embedded(s) => s.delete_integration(id).await,
            Store::Redis(s) => s.delete_integration(id).await,
        }
    }

    /// Marks a signed delivery as seen until `until` (Unix s): true the first
    /// time, false while the mark lasts (atomic across instances in Redis).
    pub async fn first_delivery(&self, delivery: &str, until: i64) -> Result<bool> {
        match self {
            Store::Embedded(s) => s.first_delivery(delivery, until).await,
            Store::Redis(s) => s.first_delivery(delivery, until).await,
        }
    }
}

fn decode_integration(bytes: &[u8]) -> Result<Integration> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Unavailable(format!("stored integration is corrupt: {e}")))
}

//! What an operator can do, whatever asks: the JSON API (`api/`) and the web
//! console (`console.rs`) both call these, so a code created or a key issued
//! through either is checked and stored the same way.

use crate::state::AppState;
use crate::store::StoreError;
use codelink_shared::{
    ApiKey, CodeChange, CodeRecord, KeyKind, OwnerProfile, Principal, ValidationError,
};
use sha2::{Digest, Sha256};

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// SHA-256 of a key's secret, hex: what is stored and looked up.
pub fn key_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Public handle of a key: the first 12 hex characters of its hash.
pub fn key_id(hash: &str) -> String {
    hash[..12.min(hash.len())].to_string()
}

/// The admin key's handle in console sessions (a session ends when the key
/// changes): keyed with the server secret, so that a session cookie tells
/// nothing about the admin key to someone who does not have the secret.
pub fn admin_key_id(secret: &str, admin_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"codelink admin key id\0");
    h.update(secret.as_bytes());
    h.update(b"\0");
    h.update(admin_key.as_bytes());
    key_id(&hex(&h.finalize()))
}

/// A presented key: the admin key, or a stored creator/ingest key that is not
/// revoked (compared by SHA-256). With the key's id.
pub async fn authenticate(
    state: &AppState,
    presented: &str,
) -> Result<Option<(Principal, String)>, StoreError> {
    if presented.is_empty() || presented.len() > 256 {
        return Ok(None);
    }
    if crate::keys::matches(presented.as_bytes(), state.admin_key.as_bytes()) {
        return Ok(Some((Principal::Admin, state.admin_key_id.clone())));
    }
    let hash = key_hash(presented);
    Ok(match state.store.key_by_hash(&hash).await? {
        Some(k) if !k.revoked => Some((principal_of(&k), k.id)),
        _ => None,
    })
}

/// Whether a console session still holds: the key with this id still signs
/// `who` in (not revoked, not rotated, same creator) and the session (by its
/// nonce) was not signed out.
pub async fn session_valid(
    state: &AppState,
    who: &Principal,
    id: &str,
    nonce: &str,
) -> Result<bool, StoreError> {
    let key_ok = if *who == Principal::Admin {
        crate::keys::matches(id.as_bytes(), state.admin_key_id.as_bytes())
    } else {
        let keys = state.store.list_keys().await?;
        keys.iter()
            .any(|k| k.id == id && !k.revoked && principal_of(k) == *who)
    };
    Ok(key_ok && !state.store.session_ended(nonce).await?)
}

fn principal_of(k: &ApiKey) -> Principal {
    match k.kind {
        KeyKind::Creator => Principal::Creator(k.creator.clone().unwrap_or_default()),
        KeyKind::Ingest => Principal::Ingest,
    }
}

/// Validates and stores a new code, then serves it. `record.expires_at`, when
/// set, must be in the future.
pub async fn create_code(
    state: &AppState,
    mut record: CodeRecord,
) -> Result<CodeRecord, StoreError> {
    let now = now();
    if record.expires_at.is_some_and(|t| t <= now) {
        return Err(ValidationError::new("expires_at", "must be in the future").into());
    }
    record.created_at = now;
    record.updated_at = now;
    record.validate()?;
    check_qr_preset(&record)?;
    state.store.insert_new(record.clone()).await?;
    state.codes.upsert(record.clone());
    Ok(record)
}

/// Applies `change` to a stored code (validated as a whole), then serves it.
pub async fn change_code(
    state: &AppState,
    code: &str,
    change: CodeChange,
) -> Result<CodeRecord, StoreError> {
    let now = now();
    if let Some(Some(t)) = change.expires_at {
        if t <= now {
            return Err(ValidationError::new("expires_at", "must be in the future").into());
        }
    }
    let record = state
        .store
        .update(
            code,
            Box::new(move |r: &mut CodeRecord| {
                change.apply(r, now);
                check_qr_preset(r)
            }),
        )
        .await?;
    state.codes.upsert(record.clone());
    Ok(record)
}

/// A QR preset's colours must read as a request's must (dark on light,
/// enough contrast).
fn check_qr_preset(record: &CodeRecord) -> Result<(), ValidationError> {
    match &record.qr {
        Some(style) => crate::qr_render::preset(style)
            .map(|_| ())
            .map_err(|e| ValidationError::new("qr", e.to_string())),
        None => Ok(()),
    }
}

/// Validates and stores a creator's profile (replacing theirs), then serves it
/// on their bio page.
pub async fn put_profile(
    state: &AppState,
    mut profile: OwnerProfile,
) -> Result<OwnerProfile, StoreError> {
    profile.validate()?;
    profile.updated_at = now();
    state.store.put_profile(profile.clone()).await?;
    state.profiles.upsert(profile.clone());
    Ok(profile)
}

/// Deletes a creator's profile (their bio page falls back to the handle, by
/// code name); whether there was one.
pub async fn delete_profile(state: &AppState, owner: &str) -> Result<bool, StoreError> {
    let existed = state.store.delete_profile(owner).await?;
    state.profiles.remove(owner);
    Ok(existed)
}

/// Issues a creator or ingest key: the stored key and its secret (shown once).
pub async fn issue_key(
    state: &AppState,
    kind: KeyKind,
    creator: Option<String>,
) -> Result<(ApiKey, String), StoreError> {
    let creator = match (kind, creator) {
        (KeyKind::Creator, Some(c)) => {
            codelink_shared::record::validate_owner(&c)?;
            Some(c)
        }
        (KeyKind::Creator, None) => {
            return Err(ValidationError::new(
                "creator",
                "a creator key needs the creator handle it belongs to",
            )
            .into())
        }
        (KeyKind::Ingest, Some(_)) => {
            return Err(
                ValidationError::new("creator", "an ingest key belongs to no creator").into(),
            )
        }
        (KeyKind::Ingest, None) => None,
    };
    let prefix = match kind {
        KeyKind::Creator => "clc",
        KeyKind::Ingest => "cli",
    };
    let random: [u8; 24] = rand::random();
    let secret = format!("{prefix}_{}", hex(&random));
    let hash = key_hash(&secret);
    let key = ApiKey {
        id: key_id(&hash),
        kind,
        creator,
        hash,
        created_at: now(),
        revoked: false,
    };
    state.store.put_key(key.clone()).await?;
    Ok((key, secret))
}

/// Every issued key, oldest first.
pub async fn list_keys(state: &AppState) -> Result<Vec<ApiKey>, StoreError> {
    let mut keys = state.store.list_keys().await?;
    keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(keys)
}

/// Revokes a key: it signs nothing in from now on (sessions included).
/// `None` when no key has this id.
pub async fn revoke_key(state: &AppState, id: &str) -> Result<Option<ApiKey>, StoreError> {
    let Some(mut key) = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .find(|k| k.id == id)
    else {
        return Ok(None);
    };
    key.revoked = true;
    state.store.put_key(key.clone()).await?;
    Ok(Some(key))
}

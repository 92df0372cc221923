//! What an operator can do, whatever asks: the JSON API (`api/`) and the web
//! console (`console.rs`) both call these, so a code created or a key issued
//! through either is checked and stored the same way.

use crate::qr_logo::Logo;
use crate::state::AppState;
use crate::store::StoreError;
use codelink_shared::{
    ApiKey, CodeChange, CodeRecord, Integration, KeyKind, LogoRef, OwnerProfile, Principal,
    Provider, ValidationError,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
    let logo = drawn_logo(state, &record, None);
    check_qr_readable(state, &record, logo).await?;
    state.store.insert_new(record.clone()).await?;
    state.codes.upsert(record.clone());
    state.analytics.code_created(&code_facts(&record)).await;
    Ok(record)
}

/// A code as webhook events describe it.
pub fn code_facts(r: &CodeRecord) -> codelink_analytics::webhooks::CodeFacts {
    let ms = |s: i64| u64::try_from(s).unwrap_or(0) * 1000;
    codelink_analytics::webhooks::CodeFacts {
        code: r.code.clone(),
        owner: r.owner.clone(),
        destination: r.destination.clone(),
        enabled: r.enabled,
        created_ms: ms(r.created_at),
        changed_ms: ms(r.updated_at),
    }
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
    let was_enabled = state.codes.get(code).is_some_and(|e| e.record.enabled);
    // Whether the images still read is judged on the record as this
    // instance holds it, changed (reading the images back takes a few ms of
    // CPU, kept off the store's write); the QR endpoint checks every image
    // it draws anyway.
    if let Some(entry) = state.codes.get(code) {
        let mut changed = entry.record.clone();
        change.clone().apply(&mut changed, now);
        check_qr_preset(&changed)?;
        let logo = drawn_logo(state, &changed, entry.qr_logo.clone());
        check_qr_readable(state, &changed, logo).await?;
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
    if was_enabled && !record.enabled {
        state.analytics.code_disabled(&code_facts(&record)).await;
    }
    Ok(record)
}

/// Makes `logo` the code's QR logo, once its images are seen to read with
/// it; the bytes are stored under their SHA-256 in the same write as the
/// record naming them.
pub async fn set_logo(
    state: &AppState,
    code: &str,
    logo: Arc<Logo>,
) -> Result<CodeRecord, StoreError> {
    let now = now();
    let entry = state
        .codes
        .get(code)
        .ok_or_else(|| StoreError::NotFound(code.to_string()))?;
    let named = LogoRef {
        content_type: logo.kind.content_type().to_string(),
        bytes: logo.bytes.len() as u32,
        sha256: logo.sha256.clone(),
    };
    let mut with_logo = entry.record.clone();
    with_logo.qr_logo = Some(named.clone());
    check_qr_readable(state, &with_logo, Some(logo.clone())).await?;
    let record = state
        .store
        .update_with_logo(
            code,
            Box::new(move |r: &mut CodeRecord| {
                r.qr_logo = Some(named);
                r.updated_at = now;
                Ok(())
            }),
            (logo.sha256.clone(), logo.bytes.to_vec()),
        )
        .await?;
    state.codes.upsert_with_logo(record.clone(), Some(logo));
    Ok(record)
}

/// Removes the code's QR logo; `Ok(None)` when it had none. Its images are
/// then drawn with its owner's logo, if they have one: checked first.
pub async fn remove_logo(state: &AppState, code: &str) -> Result<Option<CodeRecord>, StoreError> {
    let now = now();
    if let Some(entry) = state.codes.get(code) {
        let mut without = entry.record.clone();
        if without.qr_logo.take().is_some() {
            let logo = drawn_logo(state, &without, None);
            check_qr_readable(state, &without, logo).await?;
        }
    }
    let had = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = had.clone();
    let record = state
        .store
        .update(
            code,
            Box::new(move |r: &mut CodeRecord| {
                if r.qr_logo.take().is_some() {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                    r.updated_at = now;
                }
                Ok(())
            }),
        )
        .await?;
    state.codes.upsert(record.clone());
    Ok(had
        .load(std::sync::atomic::Ordering::Relaxed)
        .then_some(record))
}

/// The QR checks [`create_code`] and [`change_code`] make, for a code an
/// import writes: its preset's colours, and its images read back with the
/// logo they would be drawn with (its own, if loaded, else its owner's).
pub async fn check_code_qr(state: &AppState, record: &CodeRecord) -> Result<(), StoreError> {
    check_qr_preset(record)?;
    let own = record
        .qr_logo
        .as_ref()
        .and_then(|l| state.codes.logo(&l.sha256));
    let logo = drawn_logo(state, record, own);
    check_qr_readable(state, record, logo).await
}

/// The logo a code's QR images are drawn with: its own (`own`, decoded)
/// when the record names one, else its owner's default logo, if any. From
/// memory only (the QR handler calls it).
pub fn drawn_logo(
    state: &AppState,
    record: &CodeRecord,
    own: Option<Arc<Logo>>,
) -> Option<Arc<Logo>> {
    if record.qr_logo.is_some() {
        own
    } else {
        state.profiles.logo_of(&record.owner)
    }
}

/// Draws the code's QR image (its bare link and its longest channel link)
/// the way the QR endpoint would by default, with `logo` (the one it would
/// be drawn with: [`drawn_logo`]), and reads it back: a style or logo that
/// gives unreadable images is refused when it is set, not when a follower
/// scans. The plain look is not checked (it always reads).
async fn check_qr_readable(
    state: &AppState,
    record: &CodeRecord,
    logo: Option<Arc<Logo>>,
) -> Result<(), StoreError> {
    let options = match &record.qr {
        Some(style) => crate::qr_render::preset(style)
            .map_err(|e| ValidationError::new("qr", e.to_string()))?,
        None => crate::qr_render::QrOptions::default(),
    };
    if logo.is_none() && options == crate::qr_render::QrOptions::default() {
        return Ok(());
    }
    let base = format!("{}/{}", state.public_base, record.code);
    let longest = record
        .channels
        .keys()
        .max_by_key(|c| c.len())
        .map(|c| format!("{base}/{c}?qr=1"));
    let contents: Vec<String> = std::iter::once(format!("{base}?qr=1"))
        .chain(longest)
        .collect();
    let text = crate::qr::frame_text(record);
    let checked = tokio::task::spawn_blocking(move || {
        let brand = crate::qr_render::Brand {
            logo: logo.as_deref(),
            frame_text: &text,
        };
        let options = crate::qr_render::effective(&options, &brand);
        for content in &contents {
            crate::qr_render::check(content, &options, &brand)?;
        }
        Ok::<_, crate::qr_render::RenderError>(())
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("QR check interrupted: {e}")))?;
    checked.map_err(|e| match e {
        crate::qr_render::RenderError::Unreadable(m) => StoreError::QrUnreadable(m),
        crate::qr_render::RenderError::Option(o) => {
            ValidationError::new("qr", o.to_string()).into()
        }
    })
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

/// Validates and stores a creator's profile (replacing theirs, but for the
/// QR logo it names, which stays), then serves it on their bio page.
pub async fn put_profile(
    state: &AppState,
    mut profile: OwnerProfile,
) -> Result<OwnerProfile, StoreError> {
    profile.validate()?;
    profile.updated_at = now();
    profile.qr_logo = None;
    let stored = state.store.put_profile(profile).await?;
    let decoded = decoded_logo(state, &stored);
    state.profiles.upsert(stored.clone(), decoded);
    Ok(stored)
}

/// The profile's logo, if the registry holds it (else the profile table
/// keeps the one it holds for the owner, if the same).
fn decoded_logo(state: &AppState, profile: &OwnerProfile) -> Option<Arc<Logo>> {
    profile
        .qr_logo
        .as_ref()
        .and_then(|l| state.codes.logo(&l.sha256))
}

/// Deletes a creator's profile (their bio page falls back to the handle, by
/// code name); whether there was one. Their QR logo stays (it has its own
/// DELETE): the profile is then reduced to it.
pub async fn delete_profile(state: &AppState, owner: &str) -> Result<bool, StoreError> {
    let (existed, remaining) = state.store.delete_profile(owner).await?;
    match remaining {
        Some(profile) => {
            let decoded = decoded_logo(state, &profile);
            state.profiles.upsert(profile, decoded);
        }
        None => state.profiles.remove(owner),
    }
    Ok(existed)
}

/// How many of an owner's codes a new owner logo is tried on (their codes
/// without a logo of their own, served ones first, then by name): each
/// check draws and reads back one or two images.
pub const OWNER_LOGO_CHECKS: usize = 20;

/// Makes `logo` the owner's default QR logo (creating their profile if they
/// have none), once their codes without a logo of their own are seen to
/// read with it (at most [`OWNER_LOGO_CHECKS`] of them); the bytes are
/// stored under their SHA-256 in the same write as the profile naming them.
pub async fn set_owner_logo(
    state: &AppState,
    owner: &str,
    logo: Arc<Logo>,
) -> Result<OwnerProfile, StoreError> {
    codelink_shared::record::validate_owner(owner)?;
    let now = now();
    let mut codes: Vec<CodeRecord> = state
        .codes
        .snapshot()
        .values()
        .filter(|c| c.record.owner == owner && c.record.qr_logo.is_none())
        .map(|c| c.record.clone())
        .collect();
    let served = |r: &CodeRecord| r.enabled && r.expires_at.is_none_or(|t| t > now);
    codes.sort_by(|a, b| (!served(a), &a.code).cmp(&(!served(b), &b.code)));
    for record in codes.iter().take(OWNER_LOGO_CHECKS) {
        check_qr_readable(state, record, Some(logo.clone()))
            .await
            .map_err(|e| match e {
                StoreError::QrUnreadable(why) => {
                    StoreError::QrUnreadable(format!("code '{}': {why}", record.code))
                }
                e => e,
            })?;
    }
    let named = LogoRef {
        content_type: logo.kind.content_type().to_string(),
        bytes: logo.bytes.len() as u32,
        sha256: logo.sha256.clone(),
    };
    let (_, after) = state
        .store
        .set_profile_logo(owner, Some((named, logo.bytes.to_vec())), now)
        .await?;
    let profile = after.ok_or_else(|| StoreError::Unavailable("profile not written".into()))?;
    state.codes.add_logo(logo.clone());
    state.profiles.upsert(profile.clone(), Some(logo));
    Ok(profile)
}

/// Removes the owner's default QR logo (their profile stays); `Ok(None)`
/// when they had none.
pub async fn remove_owner_logo(
    state: &AppState,
    owner: &str,
) -> Result<Option<OwnerProfile>, StoreError> {
    let (before, after) = state.store.set_profile_logo(owner, None, now()).await?;
    if before.is_none_or(|p| p.qr_logo.is_none()) {
        return Ok(None);
    }
    match after {
        Some(profile) => {
            state.profiles.upsert(profile.clone(), None);
            Ok(Some(profile))
        }
        None => Ok(None),
    }
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

/// Most payment-provider endpoints registered at once.
pub const MAX_INTEGRATIONS: usize = 1000;

/// Checks (and normalises) a payment-provider endpoint (its fields; its
/// default code exists) and stores it, new or changed.
pub async fn put_integration(
    state: &AppState,
    integration: &mut Integration,
) -> Result<(), StoreError> {
    integration.validate()?;
    if let Some(code) = &integration.code {
        if state.codes.get(code).is_none() {
            return Err(ValidationError::new(
                "code",
                format!("no code '{code}': create it first, or leave code out"),
            )
            .into());
        }
    }
    state.store.put_integration(integration.clone()).await
}

/// Registers a payment-provider endpoint with a new random id; `None` when
/// [`MAX_INTEGRATIONS`] are registered already.
pub async fn register_integration(
    state: &AppState,
    provider: Provider,
    secret: String,
    name: Option<String>,
    code: Option<String>,
) -> Result<Option<Integration>, StoreError> {
    let id: [u8; 12] = rand::random();
    let mut integration = Integration {
        id: hex(&id),
        provider,
        secret,
        name: name.filter(|n| !n.is_empty()),
        code,
        created_at: now(),
    };
    integration.validate()?;
    if state.store.list_integrations().await?.len() >= MAX_INTEGRATIONS {
        return Ok(None);
    }
    put_integration(state, &mut integration).await?;
    Ok(Some(integration))
}

/// Every payment-provider endpoint, oldest first.
pub async fn list_integrations(state: &AppState) -> Result<Vec<Integration>, StoreError> {
    let mut all = state.store.list_integrations().await?;
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(all)
}

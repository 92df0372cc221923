//! Loading codes into memory, and keeping them in step with Redis.
//!
//! Embedded mode: one load at start-up; afterwards every write goes through this
//! process, which updates the table itself.
//!
//! Redis mode: a task polls the shared version counter and reloads the table when
//! another instance changed a code. After each load it writes a snapshot to the
//! data dir, so that a gateway restarted while Redis is down still serves the
//! codes it knew instead of 404s.

use crate::qr_logo::{Logo, LogoKind};
use crate::state::AppState;
use crate::store::{RedisStore, Store, StoreError};
use codelink_shared::{CodeRecord, LogoRef, OwnerProfile};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SNAPSHOT_FILE: &str = "redis-codes.snapshot.json";
/// The creator profiles Redis held at the last load, beside the codes' snapshot.
const PROFILES_SNAPSHOT_FILE: &str = "redis-profiles.snapshot.json";
/// Copies of the QR logos the snapshot's codes and profiles name, one file
/// per SHA-256.
const LOGO_DIR: &str = "redis-logos.snapshot";

/// Background tasks started by [`start`]; [`Tasks::stop`] ends them.
pub struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

pub async fn start(state: &Arc<AppState>) -> anyhow::Result<Tasks> {
    let (stop, stop_rx) = watch::channel(false);
    let mut handles = vec![tokio::spawn(housekeeping(state.clone(), stop_rx.clone()))];
    match &state.store {
        Store::Embedded(store) => {
            let records = store
                .load_all()
                .await
                .map_err(|e| anyhow::anyhow!("loading codes: {e}"))?;
            let profiles = store
                .load_profiles()
                .await
                .map_err(|e| anyhow::anyhow!("loading owner profiles: {e}"))?;
            load_logos(state, &records, &profiles)
                .await
                .map_err(|e| anyhow::anyhow!("loading QR logos: {e}"))?;
            install(state, records, profiles);
        }
        Store::Redis(store) => {
            let snapshot = state.config.data_dir.join(SNAPSHOT_FILE);
            let version = match reload(state, store, &snapshot).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "redis unreachable at start-up; serving the last snapshot");
                    let records: Vec<CodeRecord> = read_snapshot(&snapshot);
                    let profiles: Vec<OwnerProfile> =
                        read_snapshot(&snapshot.with_file_name(PROFILES_SNAPSHOT_FILE));
                    read_logo_copies(state, &records, &profiles).await;
                    install(state, records, profiles);
                    None
                }
            };
            let task = poll_redis(state.clone(), store.clone(), snapshot, version, stop_rx);
            handles.push(tokio::spawn(task));
        }
    }
    Ok(Tasks { stop, handles })
}

/// Serves `records` and `profiles`, the logos they name loaded already
/// (the registry keeps the profiles' logos too).
fn install(state: &AppState, records: Vec<CodeRecord>, profiles: Vec<OwnerProfile>) {
    state.codes.replace_all(records, &profile_logos(&profiles));
    state
        .profiles
        .replace_all(profiles, |sha| state.codes.logo(sha));
}

/// The SHA-256s of the logos `profiles` name.
fn profile_logos(profiles: &[OwnerProfile]) -> HashSet<String> {
    profiles
        .iter()
        .filter_map(|p| p.qr_logo.as_ref().map(|l| l.sha256.clone()))
        .collect()
}

/// Every logo `records` and `profiles` name.
fn named_logos<'a>(
    records: &'a [CodeRecord],
    profiles: &'a [OwnerProfile],
) -> impl Iterator<Item = &'a LogoRef> {
    records
        .iter()
        .filter_map(|r| r.qr_logo.as_ref())
        .chain(profiles.iter().filter_map(|p| p.qr_logo.as_ref()))
}

/// Forgets rate-limiter state of addresses that went quiet, so the per-IP maps
/// stay bounded by the addresses seen in the last minute.
async fn housekeeping(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for limiter in [state.scans.limiter(), &state.api_limiter, &state.qr_limiter] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        state.ui.housekeeping();
    }
}

/// Loads every code from Redis; returns the version counter read before the load
/// (a change racing the load moves the counter again, so it is never missed).
async fn reload(state: &AppState, store: &RedisStore, snapshot: &Path) -> anyhow::Result<u64> {
    // A code written on this instance while Redis is read would be in the
    // table but not in what was read: the table is replaced only if no code
    // was written meanwhile, else Redis is read again.
    for _ in 0..5 {
        // Taken first: a code written here before it is in Redis already (the
        // store is written before the table), one written after it makes the
        // swap below fail.
        let held = state.codes.snapshot();
        let version = store.version().await?;
        let mut records = store.load_all().await?;
        // Profiles move the same version token: read after it, like the
        // codes, so a profile written meanwhile is read at the next poll.
        let mut profiles = store.load_profiles().await?;
        // Codes are never deleted, only disabled: a code this instance serves
        // that Redis no longer has was lost (Redis restarted without
        // persistence). Put it back rather than start answering 404 for it.
        let in_redis: HashSet<&str> = records.iter().map(|r| r.code.as_str()).collect();
        let lost: Vec<CodeRecord> = held
            .iter()
            .filter(|(code, _)| !in_redis.contains(&***code))
            .map(|(_, c)| c.record.clone())
            .collect();
        if !lost.is_empty() {
            // The logos they name, from memory: Redis lost those bytes too.
            let mut logos: Vec<(String, bytes::Bytes)> = held
                .iter()
                .filter(|(code, _)| !in_redis.contains(&***code))
                .filter_map(|(_, c)| c.qr_logo.as_ref())
                .map(|l| (l.sha256.clone(), l.bytes.clone()))
                .collect();
            store.restore(&lost).await?;
            tracing::warn!(
                codes = lost.len(),
                "redis had lost codes; restored them from memory"
            );
            records.extend(lost);
            // Profiles, unlike codes, can be deleted: only when Redis lost
            // codes (it lost its data) are the ones held here put back.
            let in_redis: HashSet<&str> = profiles.iter().map(|p| p.owner.as_str()).collect();
            let lost: Vec<_> = state
                .profiles
                .snapshot()
                .values()
                .filter(|p| !in_redis.contains(p.owner.as_str()))
                .map(|p| OwnerProfile::clone(p))
                .collect();
            logos.extend(
                lost.iter()
                    .filter_map(|p| state.profiles.logo_of(&p.owner))
                    .map(|l| (l.sha256.clone(), l.bytes.clone())),
            );
            if !lost.is_empty() {
                store.restore_profiles(&lost).await?;
                profiles.extend(lost);
            }
            store.restore_logos(&logos).await?;
        }
        load_logos(state, &records, &profiles).await?;
        let owner_logos = profile_logos(&profiles);
        if state
            .codes
            .replace_if_unchanged(&held, records.clone(), &owner_logos)
        {
            // A profile written here meanwhile is in Redis already (the store
            // is written first) or moved the version: the next poll reads it.
            state
                .profiles
                .replace_all(profiles.clone(), |sha| state.codes.logo(sha));
            let logos = state.codes.logos_of(named_logos(&records, &profiles));
            let copies = state.config.data_dir.join(LOGO_DIR);
            write_snapshot(snapshot.to_path_buf(), records).await;
            write_snapshot(snapshot.with_file_name(PROFILES_SNAPSHOT_FILE), profiles).await;
            keep_logo_copies(copies, logos).await;
            return Ok(version);
        }
    }
    anyhow::bail!(
        "codes kept changing on this instance while redis was read; trying again at the next poll"
    )
}

async fn poll_redis(
    state: Arc<AppState>,
    store: RedisStore,
    snapshot: PathBuf,
    mut seen: Option<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let period = Duration::from_millis(state.config.redis_sync_ms.max(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let current = match store.version().await {
            Ok(v) => v,
            Err(e) => {
                state.metrics.redis_sync_errors.fetch_add(1, Relaxed);
                tracing::debug!(error = %e, "redis version poll failed; serving from memory");
                continue;
            }
        };
        // No token (0) while this instance serves codes: Redis lost its
        // data. The token seen may be 0 too (this instance started on an
        // empty Redis, and it lost its data within one poll of the first
        // write), so "unchanged" does not hold then: the reload puts the
        // codes back, with a new token.
        let lost = current == 0 && !state.codes.is_empty();
        if seen == Some(current) && !lost {
            continue;
        }
        match reload(&state, &store, &snapshot).await {
            Ok(v) => seen = Some(v),
            Err(e) => {
                state.metrics.redis_sync_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "reloading codes from redis failed");
            }
        }
    }
}

/// The logos `records` and `profiles` name that the registry does not hold,
/// as (SHA-256, kind).
fn missing_logos(
    state: &AppState,
    records: &[CodeRecord],
    profiles: &[OwnerProfile],
) -> Vec<(String, LogoKind)> {
    let mut out: Vec<(String, LogoKind)> = Vec::new();
    for named in named_logos(records, profiles) {
        let Some(kind) = LogoKind::from_content_type(&named.content_type) else {
            continue;
        };
        if !state.codes.has_logo(&named.sha256) && !out.iter().any(|(s, _)| *s == named.sha256) {
            out.push((named.sha256.clone(), kind));
        }
    }
    out
}

/// Loads the logos `records` and `profiles` name that the registry does not
/// hold yet from the store and decodes them (on the blocking pool).
async fn load_logos(
    state: &AppState,
    records: &[CodeRecord],
    profiles: &[OwnerProfile],
) -> Result<(), StoreError> {
    let missing = missing_logos(state, records, profiles);
    if missing.is_empty() {
        return Ok(());
    }
    let found = state
        .store
        .logos(missing.iter().map(|(s, _)| s.clone()).collect())
        .await?;
    let decoded = tokio::task::spawn_blocking(move || decode_logos(&missing, found))
        .await
        .unwrap_or_default();
    for logo in decoded {
        state.codes.add_logo(logo);
    }
    Ok(())
}

fn decode_logos(wanted: &[(String, LogoKind)], found: Vec<(String, Vec<u8>)>) -> Vec<Arc<Logo>> {
    let mut out = Vec::new();
    for (sha, bytes) in found {
        let Some((_, kind)) = wanted.iter().find(|(s, _)| *s == sha) else {
            continue;
        };
        match Logo::parse(*kind, bytes.into()) {
            Ok(logo) if logo.sha256 == sha => out.push(logo),
            Ok(_) => tracing::error!(%sha, "stored QR logo does not match its SHA-256; skipped"),
            Err(e) => {
                tracing::error!(%sha, error = %e, "stored QR logo no longer decodes; skipped")
            }
        }
    }
    out
}

/// Keeps a copy of each logo the snapshot's codes and profiles name next to
/// it (one file per SHA-256, written once), and removes the copies none
/// names.
async fn keep_logo_copies(dir: PathBuf, logos: Vec<Arc<Logo>>) {
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        for logo in &logos {
            let path = dir.join(&logo.sha256);
            if !path.exists() {
                let tmp = dir.join(format!("{}.tmp", logo.sha256));
                std::fs::write(&tmp, &logo.bytes)?;
                std::fs::rename(&tmp, &path)?;
            }
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !logos
                .iter()
                .any(|l| name.to_str() == Some(l.sha256.as_str()))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::warn!(error = %e, "could not keep copies of the QR logos");
    }
}

/// The logos of a snapshot's codes and profiles, from the copies kept next
/// to it.
async fn read_logo_copies(state: &AppState, records: &[CodeRecord], profiles: &[OwnerProfile]) {
    let missing = missing_logos(state, records, profiles);
    let dir = state.config.data_dir.join(LOGO_DIR);
    let decoded = tokio::task::spawn_blocking(move || {
        let found = missing
            .iter()
            .filter_map(|(sha, _)| std::fs::read(dir.join(sha)).ok().map(|b| (sha.clone(), b)))
            .collect();
        decode_logos(&missing, found)
    })
    .await
    .unwrap_or_default();
    for logo in decoded {
        state.codes.add_logo(logo);
    }
}

fn read_snapshot<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "snapshot unreadable; starting empty");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

/// Writes the snapshot next to itself and renames it into place, so a crash
/// never leaves half a file.
async fn write_snapshot<T: serde::Serialize + Send + 'static>(path: PathBuf, records: Vec<T>) {
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&records)?)?;
        std::fs::rename(&tmp, &path)
    })
    .await;
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(%error, "could not write the redis code snapshot");
}

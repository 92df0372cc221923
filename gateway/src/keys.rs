//! Keys kept in the data dir: the admin API key and the server secret (visitor
//! hashes). Each is given by flag/env, or generated at first start into a file
//! (mode 0600) so that it survives restarts.

use crate::config::Config;
use std::io::Write;
use std::path::Path;

pub const ADMIN_KEY_FILE: &str = "admin.key";
pub const SECRET_FILE: &str = "secret.key";

pub fn admin_key(config: &Config) -> anyhow::Result<String> {
    if let Some(key) = &config.admin_key {
        anyhow::ensure!(
            key.len() >= 16,
            "--admin-key must be at least 16 characters"
        );
        return Ok(key.clone());
    }
    let (key, generated) = load_or_generate(&config.data_dir.join(ADMIN_KEY_FILE))?;
    let path = config.data_dir.join(ADMIN_KEY_FILE);
    if generated {
        tracing::info!(path = %path.display(), "generated an admin key");
        eprintln!(
            "codelink: admin key generated and stored in {}",
            path.display()
        );
    } else {
        tracing::info!(path = %path.display(), "admin key read from the data dir");
    }
    Ok(key)
}

pub fn secret(config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.secret {
        anyhow::ensure!(
            secret.len() >= 16,
            "--secret must be at least 16 characters"
        );
        return Ok(secret.clone());
    }
    Ok(load_or_generate(&config.data_dir.join(SECRET_FILE))?.0)
}

/// Reads the key in `path`, or writes a new random one there. Returns it and
/// whether it was generated now.
fn load_or_generate(path: &Path) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(key) if !key.trim().is_empty() => return Ok((key.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    let bytes: [u8; 24] = rand::random();
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    Ok((key, true))
}

/// Makes `path` readable and writable by its owner only (0600), as the key
/// files are; a no-op where file modes do not exist.
pub fn owner_only(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| anyhow::anyhow!("cannot restrict {} to its owner: {e}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Compares a presented key with the real one in time that does not depend on
/// where they first differ.
pub fn matches(presented: &[u8], real: &[u8]) -> bool {
    if presented.len() != real.len() {
        return false;
    }
    presented
        .iter()
        .zip(real)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

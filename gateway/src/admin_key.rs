//! The admin API key: given by flag or env, or generated at first start and
//! kept in the data dir (mode 0600) so that it survives restarts.

use crate::config::Config;
use std::io::Write;

pub const FILE_NAME: &str = "admin.key";

pub fn resolve(config: &Config) -> anyhow::Result<String> {
    if let Some(key) = &config.admin_key {
        anyhow::ensure!(
            key.len() >= 16,
            "--admin-key must be at least 16 characters"
        );
        return Ok(key.clone());
    }
    let path = config.data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => {
            tracing::info!(path = %path.display(), "admin key read from the data dir");
            return Ok(key.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    let bytes: [u8; 24] = rand::random();
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated an admin key");
    eprintln!(
        "codelink: admin key generated and stored in {}",
        path.display()
    );
    Ok(key)
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

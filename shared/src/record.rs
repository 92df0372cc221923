//! The stored form of a code, as both stores (embedded and Redis) keep it.

use crate::{ChannelName, CodeName, CommissionPlan, Destination, Utm, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_OWNER_LEN: usize = 64;
pub const MAX_CHANNELS: usize = 256;
pub const DEFAULT_WINDOW_DAYS: u32 = 30;
pub const MAX_WINDOW_DAYS: u32 = 365;

fn default_window() -> u32 {
    DEFAULT_WINDOW_DAYS
}

/// One creator code. Times are Unix seconds; the API shows them as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Canonical (lowercase) code name.
    pub code: String,
    pub destination: String,
    /// The creator handle that owns the code.
    pub owner: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub enabled: bool,
    #[serde(default)]
    pub channels: BTreeMap<String, Utm>,
    #[serde(default)]
    pub commission: Option<CommissionPlan>,
    /// How long after a scan a conversion may still be credited to it (days).
    #[serde(default = "default_window")]
    pub attribution_window_days: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CodeRecord {
    /// Checks every field and canonicalises names in place (code and channel names lowercase).
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.code = CodeName::parse(&self.code)?.into_string();
        Destination::parse(&self.destination)?;
        validate_owner(&self.owner)?;
        if self.channels.len() > MAX_CHANNELS {
            return Err(ValidationError::new(
                "channels",
                format!("at most {MAX_CHANNELS} channels per code"),
            ));
        }
        let mut canonical = BTreeMap::new();
        for (name, utm) in std::mem::take(&mut self.channels) {
            let name = ChannelName::parse(&name)?.into_string();
            utm.validate()?;
            if canonical.insert(name.clone(), utm).is_some() {
                return Err(ValidationError::new(
                    "channels",
                    format!("channel '{name}' is given twice (names are case-insensitive)"),
                ));
            }
        }
        self.channels = canonical;
        if let Some(plan) = &self.commission {
            plan.validate()?;
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.attribution_window_days) {
            return Err(ValidationError::new(
                "attribution_window_days",
                format!("must be from 1 to {MAX_WINDOW_DAYS}"),
            ));
        }
        Ok(())
    }
}

/// Creator handles: 1–64 of letters, digits, `_`, `-`, `.`.
pub fn validate_owner(owner: &str) -> Result<(), ValidationError> {
    let ok_len = !owner.is_empty() && owner.len() <= MAX_OWNER_LEN;
    let ok_chars = owner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(ValidationError::new(
            "owner",
            format!("must be 1 to {MAX_OWNER_LEN} of letters, digits, '_', '-' and '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CodeRecord {
        CodeRecord {
            code: "Alice10".into(),
            destination: "https://shop.example/".into(),
            owner: "alice".into(),
            expires_at: None,
            enabled: true,
            channels: BTreeMap::from([("YT".to_string(), Utm::default())]),
            commission: None,
            attribution_window_days: DEFAULT_WINDOW_DAYS,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn validate_canonicalises() {
        let mut r = record();
        r.validate().unwrap();
        assert_eq!(r.code, "alice10");
        assert!(r.channels.contains_key("yt"));
    }

    #[test]
    fn duplicate_channel_in_other_case_refused() {
        let mut r = record();
        r.channels.insert("yt".into(), Utm::default());
        assert!(r.validate().is_err());
    }

    #[test]
    fn bad_owner_refused() {
        let mut r = record();
        r.owner = "al ice".into();
        assert_eq!(r.validate().unwrap_err().field, "owner");
    }
}

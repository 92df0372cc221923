//! Channels: where a scan came from (`yt`, `ig`, `bio`, `yt-video42`), chosen by
//! the link or QR variant, and the UTM parameters each one appends.

use crate::{is_slug_byte, ValidationError};
use serde::{Deserialize, Serialize};

pub const MAX_LEN: usize = 32;
/// Longest value accepted for one UTM parameter.
pub const MAX_UTM_LEN: usize = 256;

/// A validated, canonical (lowercase) channel name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > MAX_LEN {
            return Err(ValidationError::new(
                "channels",
                format!("channel name '{raw}' must be 1 to {MAX_LEN} characters long"),
            ));
        }
        if !raw.bytes().all(is_slug_byte) {
            return Err(ValidationError::new(
                "channels",
                format!("channel name '{raw}' may contain only letters, digits, '-' and '_'"),
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The UTM parameters a channel appends to the destination. Absent fields add nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
}

impl Utm {
    /// The parameters in a fixed order, skipping absent ones.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("utm_source", self.utm_source.as_deref()),
            ("utm_medium", self.utm_medium.as_deref()),
            ("utm_campaign", self.utm_campaign.as_deref()),
            ("utm_content", self.utm_content.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        for (key, value) in self.pairs() {
            if value.is_empty() || value.len() > MAX_UTM_LEN {
                return Err(ValidationError::new(
                    "channels",
                    format!("{key} must be 1 to {MAX_UTM_LEN} bytes long"),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "channels",
                    format!("{key} must not contain control characters"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            ChannelName::parse("YT-Video42").unwrap().as_str(),
            "yt-video42"
        );
        assert!(ChannelName::parse("").is_err());
        assert!(ChannelName::parse("a b").is_err());
        assert!(ChannelName::parse(&"c".repeat(33)).is_err());
    }

    #[test]
    fn utm_validation() {
        let ok = Utm {
            utm_source: Some("youtube".into()),
            ..Utm::default()
        };
        assert!(ok.validate().is_ok());
        let bad = Utm {
            utm_medium: Some("a\r\nb".into()),
            ..Utm::default()
        };
        assert!(bad.validate().is_err());
        let unknown = serde_json::from_str::<Utm>(r#"{"utm_term":"x"}"#);
        assert!(unknown.is_err());
    }
}

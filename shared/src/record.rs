//! The stored form of a code, as both stores (embedded and Redis) keep it.

use crate::{
    AppLinks, ChannelName, CodeName, CommissionPlan, Destination, LogoRef, QrStyle, RouteRule, Utm,
    ValidationError,
};
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
/// `Default` is for building records in code and tests (`..Default::default()`);
/// it is not a valid record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The QR brand preset (colours, error correction, margin, and whether
    /// public requests may pick other colours); `None`: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<QrStyle>,
    /// Where followers of the code go while it is disabled or expired; `None`:
    /// a page that shows the code, so it can still be typed at checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_url: Option<String>,
    /// Links that open the shop's app on iOS and Android.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_links: Option<AppLinks>,
    /// Show followers in Instagram's, TikTok's and Facebook's in-app browsers
    /// a page that offers to open the link in their own browser first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_app_escape: bool,
    /// Append a signed, opaque visitor token (`cl_vid`) to the destination,
    /// so the brand can send it back as `visitor_id`. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub visitor_token: bool,
    /// The logo drawn in the centre of the code's QR images (uploaded through
    /// `PUT /api/v1/codes/{code}/logo`; the bytes are stored by SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_logo: Option<LogoRef>,
    /// Routing rules, first match wins ([`crate::route`]); empty: every
    /// scan goes to `destination` (or its channel's variant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteRule>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CodeRecord {
    /// Checks every field of a new record and canonicalises it in place: code
    /// and channel names lowercase, the destination normalised (the URL that
    /// is followed), its ambiguous forms refused ([`Destination::parse`]).
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.code = CodeName::parse(&self.code)?.into_string();
        self.destination = Destination::parse(&self.destination)?.into_string();
        self.validate_rest()
    }

    /// [`Self::validate`] for a stored record after a change. `stored_destination`
    /// is its destination before the change: when it is kept, it is checked by
    /// the rules it was stored under ([`Destination::parse_stored`]), so that a
    /// record stored before the stricter rules can still be changed in its other
    /// fields; a new destination gets every rule. Either way it is normalised.
    pub fn validate_update(&mut self, stored_destination: &str) -> Result<(), ValidationError> {
        self.code = CodeName::parse(&self.code)?.into_string();
        let destination = if self.destination == stored_destination {
            Destination::parse_stored(&self.destination)?
        } else {
            Destination::parse(&self.destination)?
        };
        self.destination = destination.into_string();
        self.validate_rest()
    }

    /// Everything after the code and the destination.
    fn validate_rest(&mut self) -> Result<(), ValidationError> {
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
        if let Some(style) = &self.qr {
            style.validate()?;
        }
        if let Some(url) = &self.fallback_url {
            self.fallback_url = Some(crate::follow::validate_fallback(url)?);
        }
        if let Some(links) = &mut self.app_links {
            links.validate()?;
            if links.is_empty() {
                self.app_links = None;
            }
        }
        crate::route::validate_routes(&mut self.routes)?;
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
            qr: None,
            fallback_url: None,
            app_links: None,
            in_app_escape: false,
            visitor_token: false,
            qr_logo: None,
            routes: Vec::new(),
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
    fn destination_stored_normalised() {
        let mut r = record();
        r.destination = "HTTPS://Shop.Example:443/a/../signup?b=%20x&flag".into();
        r.validate().unwrap();
        assert_eq!(r.destination, "https://shop.example/signup?b=%20x&flag");
        r.destination = r"https://evil.example\@shop.example/".into();
        assert_eq!(r.validate().unwrap_err().field, "destination");
    }

    #[test]
    fn update_checks_a_kept_destination_as_stored() {
        let legacy = r"https://evil.example\@shop.example/";
        let mut r = record();
        r.destination = legacy.into();
        // Kept (another field changed): accepted, stored as it is followed.
        r.validate_update(legacy).unwrap();
        assert_eq!(r.destination, "https://evil.example/@shop.example/");
        // Set anew: every rule.
        let mut r = record();
        r.destination = "https:evil.example".into();
        assert!(r.validate_update("https://shop.example/").is_err());
        r.destination = "https://shop.example/".into();
        r.validate_update("https://shop.example/").unwrap();
        // A kept destination that was never valid is still refused.
        r.destination = "javascript:alert(1)".into();
        assert!(r.validate_update("javascript:alert(1)").is_err());
    }

    #[test]
    fn bad_owner_refused() {
        let mut r = record();
        r.owner = "al ice".into();
        assert_eq!(r.validate().unwrap_err().field, "owner");
    }
}

//! A creator's profile: how their bio page (`/@{owner}`) looks. Stored next to
//! the codes in both stores; every optional field has a serde default, so a
//! field added later reads from profiles stored before it.

use crate::{CodeName, Destination, LogoRef, ValidationError};
use serde::{Deserialize, Serialize};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 80;
/// Most code names in `order`.
pub const MAX_ORDER: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OwnerProfile {
    /// The creator handle (`CodeRecord::owner`).
    pub owner: String,
    /// The page's heading; the handle when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// An https image shown round at the top of the page. The one address
    /// the page loads from elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Code names listed first, in this order; the owner's other codes follow
    /// by name. A name that is not (or no longer) one of the owner's enabled
    /// codes is skipped when the page is built.
    #[serde(default)]
    pub order: Vec<String>,
    /// Unix seconds of the last write.
    #[serde(default)]
    pub updated_at: i64,
    /// The owner's default QR logo: drawn on each of their codes that has no
    /// logo of its own. Set and removed only through its own endpoint
    /// (`/owners/{owner}/logo`); a profile PUT or DELETE keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_logo: Option<LogoRef>,
}

impl OwnerProfile {
    /// Checks every field and canonicalises in place: the title trimmed (empty
    /// is none), the avatar URL normalised, code names lowercase.
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        crate::record::validate_owner(&self.owner)?;
        if let Some(title) = self.title.take() {
            let title = title.trim().to_string();
            if title.chars().count() > MAX_TITLE_CHARS {
                return Err(ValidationError::new(
                    "title",
                    format!("at most {MAX_TITLE_CHARS} characters"),
                ));
            }
            if title.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "title",
                    "must be printable (no control characters or line breaks)",
                ));
            }
            self.title = Some(title).filter(|t| !t.is_empty());
        }
        if let Some(url) = self.avatar_url.take().filter(|u| !u.is_empty()) {
            let url = Destination::parse(&url)
                .map_err(|e| ValidationError::new("avatar_url", e.message))?;
            if url.url().scheme() != "https" {
                return Err(ValidationError::new("avatar_url", "must be an https URL"));
            }
            self.avatar_url = Some(url.into_string());
        }
        if self.order.len() > MAX_ORDER {
            return Err(ValidationError::new(
                "order",
                format!("at most {MAX_ORDER} code names"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &mut self.order {
            let code = CodeName::parse(name)
                .map_err(|e| ValidationError::new("order", format!("'{name}': {}", e.message)))?
                .into_string();
            if !seen.insert(code.clone()) {
                return Err(ValidationError::new(
                    "order",
                    format!("'{code}' is listed twice"),
                ));
            }
            *name = code;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> OwnerProfile {
        OwnerProfile {
            owner: "alice".into(),
            title: Some("  Alice's codes ".into()),
            avatar_url: Some("https://cdn.example/a.png".into()),
            order: vec!["Alice10".into(), "alice20".into()],
            updated_at: 0,
            qr_logo: None,
        }
    }

    #[test]
    fn canonicalises() {
        let mut p = profile();
        p.validate().unwrap();
        assert_eq!(p.title.as_deref(), Some("Alice's codes"));
        assert_eq!(p.order, ["alice10", "alice20"]);
        let mut p = OwnerProfile {
            title: Some("   ".into()),
            avatar_url: Some(String::new()),
            ..profile()
        };
        p.validate().unwrap();
        assert_eq!((p.title, p.avatar_url), (None, None));
    }

    #[test]
    fn refuses_bad_fields() {
        let field = |p: OwnerProfile| {
            let mut p = p;
            p.validate().unwrap_err().field
        };
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            field(OwnerProfile {
                title: Some(long),
                ..profile()
            }),
            "title"
        );
        let broken = Some("a\nb".to_string());
        assert_eq!(
            field(OwnerProfile {
                title: broken,
                ..profile()
            }),
            "title"
        );
        for url in [
            "http://cdn.example/a.png",
            "javascript:alert(1)",
            "https://",
            "a.png",
        ] {
            let p = OwnerProfile {
                avatar_url: Some(url.into()),
                ..profile()
            };
            assert_eq!(field(p), "avatar_url", "{url}");
        }
        let twice = vec!["alice10".into(), "ALICE10".into()];
        assert_eq!(
            field(OwnerProfile {
                order: twice,
                ..profile()
            }),
            "order"
        );
        let bad = vec!["no spaces".into()];
        assert_eq!(
            field(OwnerProfile {
                order: bad,
                ..profile()
            }),
            "order"
        );
        let many = (0..=MAX_ORDER).map(|i| format!("code{i}")).collect();
        assert_eq!(
            field(OwnerProfile {
                order: many,
                ..profile()
            }),
            "order"
        );
        assert_eq!(
            field(OwnerProfile {
                owner: "a b".into(),
                ..profile()
            }),
            "owner"
        );
        // A title of exactly the limit, in multi-byte characters, is fine.
        let mut p = OwnerProfile {
            title: Some("é".repeat(MAX_TITLE_CHARS)),
            ..profile()
        };
        p.validate().unwrap();
    }

    #[test]
    fn older_stored_form_reads() {
        let p: OwnerProfile = serde_json::from_str(r#"{"owner":"alice"}"#).unwrap();
        assert_eq!(
            p,
            OwnerProfile {
                owner: "alice".into(),
                ..Default::default()
            }
        );
        // A profile without a logo is stored as before (no `qr_logo` key);
        // one with a logo reads back with it.
        let plain = serde_json::to_string(&p).unwrap();
        assert!(!plain.contains("qr_logo"), "{plain}");
        let with = OwnerProfile {
            qr_logo: Some(LogoRef {
                content_type: "image/png".into(),
                bytes: 10,
                sha256: "ab".repeat(32),
            }),
            ..p
        };
        let back: OwnerProfile =
            serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }
}

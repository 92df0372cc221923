//! Who may call what: the callers the API and the web console both know, and
//! the stored keys they sign in with.

use serde::{Deserialize, Serialize};

/// Who is calling: the admin key sees everything; a creator key sees the codes
/// its creator owns (another creator's code is "not found", as if it did not
/// exist); an ingest key only posts conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Creator(String),
    Ingest,
}

impl Principal {
    /// Whether this caller may see `owner`'s codes and numbers.
    pub fn sees(&self, owner: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Creator(c) => c == owner,
            Principal::Ingest => false,
        }
    }

    /// The creator handle of a creator caller.
    pub fn creator(&self) -> Option<&str> {
        match self {
            Principal::Creator(c) => Some(c),
            _ => None,
        }
    }
}

/// An API key other than the admin key: a creator key (analytics of the
/// creator's own codes) or an ingest key (conversions only). Only a SHA-256 of
/// the secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public handle of the key: the first 12 hex characters of its hash.
    pub id: String,
    pub kind: KeyKind,
    /// For creator keys: the creator handle whose codes it may read.
    #[serde(default)]
    pub creator: Option<String>,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    pub created_at: i64,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Creator,
    Ingest,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Creator => "creator",
            KeyKind::Ingest => "ingest",
        }
    }
}

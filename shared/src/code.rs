//! Creator code names: case-insensitive slugs, stored lowercase.

use crate::{is_slug_byte, ValidationError};
use std::fmt;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 32;

/// Path segments and names the gateway uses itself; a code may not take them.
pub const RESERVED: &[&str] = &[
    "api",
    "qr",
    "healthz",
    "readyz",
    "metrics",
    "dashboard",
    "dashboards",
    "static",
    "assets",
    "admin",
    "login",
    "logout",
    "favicon.ico",
    "robots.txt",
    "well-known",
    "_next",
    "www",
    "help",
    "docs",
    "status",
    // `/api/v1/codes/import` and `/api/v1/codes/export` (codes in bulk).
    "import",
    "export",
];

/// A validated, canonical (lowercase) code name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeName(String);

impl CodeName {
    /// Validates `raw` and returns its canonical form.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.len();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "code",
                format!("must be {MIN_LEN} to {MAX_LEN} characters long (got {len})"),
            ));
        }
        if !raw.bytes().all(is_slug_byte) {
            return Err(ValidationError::new(
                "code",
                "may contain only letters A-Z, digits, '-' and '_'",
            ));
        }
        let canonical = raw.to_ascii_lowercase();
        if RESERVED.contains(&canonical.as_str()) {
            return Err(ValidationError::new(
                "code",
                format!("'{canonical}' is reserved"),
            ));
        }
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercases a path segment into `buf` for a lookup without allocating.
/// Returns `None` when the segment cannot be a code or channel name
/// (too long, or a byte outside the slug alphabet).
pub fn lowercase_slug<'a>(segment: &str, buf: &'a mut [u8; MAX_LEN]) -> Option<&'a str> {
    let bytes = segment.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_LEN {
        return None;
    }
    for (dst, &b) in buf.iter_mut().zip(bytes) {
        if !is_slug_byte(b) {
            return None;
        }
        *dst = b.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..bytes.len()]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_lowercase() {
        assert_eq!(CodeName::parse("ALICE10").unwrap().as_str(), "alice10");
        assert_eq!(CodeName::parse("a_b-C").unwrap().as_str(), "a_b-c");
    }

    #[test]
    fn length_and_alphabet() {
        assert!(CodeName::parse("ab").is_err());
        assert!(CodeName::parse(&"a".repeat(33)).is_err());
        assert!(CodeName::parse(&"a".repeat(32)).is_ok());
        for bad in ["al ce", "al/ce", "alicé", "al.ce", "al%20"] {
            assert!(CodeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_words_refused_in_any_case() {
        for word in ["API", "Healthz", "readyz", "metrics", "dashboard", "static"] {
            let err = CodeName::parse(word).unwrap_err();
            assert!(err.message.contains("reserved"), "{word}: {err}");
        }
    }

    #[test]
    fn lowercase_slug_matches_parse() {
        let mut buf = [0u8; MAX_LEN];
        assert_eq!(lowercase_slug("AliCe10", &mut buf), Some("alice10"));
        assert_eq!(lowercase_slug("a.b", &mut buf), None);
        assert_eq!(lowercase_slug("", &mut buf), None);
        assert_eq!(lowercase_slug(&"x".repeat(33), &mut buf), None);
    }
}

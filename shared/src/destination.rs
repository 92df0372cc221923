//! Destination URLs: where a code's link sends followers.

use crate::ValidationError;
use url::Url;

pub const MAX_LEN: usize = 2048;

/// A validated absolute http(s) URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(Url);

impl Destination {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("destination", m);
        if raw.len() > MAX_LEN {
            return Err(err("must be at most 2048 bytes"));
        }
        // Checked on the raw text: the URL parser would silently strip tabs and
        // newlines, and we want such input refused, not repaired.
        if raw.chars().any(|c| c.is_control() || c == ' ') {
            return Err(err("must not contain spaces or control characters"));
        }
        let url = Url::parse(raw).map_err(|e| err(&format!("not an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err("scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(err("must have a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("must not contain credentials"));
        }
        if url.as_str().len() > MAX_LEN {
            return Err(err("must be at most 2048 bytes once normalised"));
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https() {
        assert!(Destination::parse("https://shop.example/signup?x=1#top").is_ok());
        assert!(Destination::parse("http://127.0.0.1:9000/").is_ok());
    }

    #[test]
    fn refuses_dangerous_or_malformed() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,hi",
            "ftp://x.example/",
            "/relative/path",
            "shop.example",
            "https://user:pw@shop.example/",
            "https://user@shop.example/",
            "https://shop.example/\r\nSet-Cookie: x=1",
            "https://shop.example/a\tb",
            "https://shop.example/a b",
            "https://",
            "",
        ] {
            assert!(Destination::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(2048));
        assert!(Destination::parse(&long).is_err());
    }
}

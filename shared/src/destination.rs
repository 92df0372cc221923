//! Destination URLs: where a code's link sends followers.
//!
//! What is stored and shown is the URL's normalised form (the `url` crate's
//! serialisation), which is exactly what a redirect follows. New destinations
//! ([`Destination::parse`]) are refused, not repaired, when a person could read
//! them as another URL than the one followed: a backslash before the query
//! (`https://evil.example\@shop.example/` goes to evil.example), a scheme not
//! followed by `//` (`https:evil.example`, `http:/\evil.example`), an `@` or an
//! empty host in the authority. Records stored before these rules keep loading
//! and redirecting ([`Destination::parse_stored`]).

use crate::ValidationError;
use url::Url;

pub const MAX_LEN: usize = 2048;

/// A validated absolute http(s) URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(Url);

fn err(m: &str) -> ValidationError {
    ValidationError::new("destination", m)
}

impl Destination {
    /// A destination being set (a new code, or a change of its destination):
    /// every rule, the ambiguous forms refused. `as_str` is the normalised URL.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(err("must be at most 2048 bytes"));
        }
        // Checked on the raw text: the URL parser would silently strip tabs and
        // newlines, and we want such input refused, not repaired.
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err("must not contain spaces or control characters"));
        }
        let dest = Self::parse_stored(raw)?;
        check_unambiguous(raw)?;
        Ok(dest)
    }

    /// A destination already stored: the rules it was accepted under before
    /// the ambiguous forms were refused, so that such a record still loads,
    /// redirects and can be changed in its other fields.
    pub fn parse_stored(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(err("must be at most 2048 bytes"));
        }
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

    /// The normalised URL: what is stored, shown and followed.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn into_string(self) -> String {
        self.0.into()
    }
}

/// The raw text's forms that read as one URL but are followed as another.
/// Runs after the URL parsed with an http(s) scheme.
fn check_unambiguous(raw: &str) -> Result<(), ValidationError> {
    // Scheme, authority and path: up to the query or the fragment.
    let head = &raw[..raw.find(['?', '#']).unwrap_or(raw.len())];
    if head.contains('\\') {
        return Err(err(
            "must not contain a backslash before the query (it is followed as '/')",
        ));
    }
    let Some((_, rest)) = head.split_once(':') else {
        return Err(err("not an absolute URL"));
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(err("must start with http:// or https://"));
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(err("must not contain credentials or '@' before the host"));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(err("must have a host right after '//'"));
    }
    Ok(())
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

    #[test]
    fn stores_the_normalised_url() {
        let d = Destination::parse("HTTPS://Shop.Example:443/a/../b?q=%20x&flag#top").unwrap();
        assert_eq!(d.as_str(), "https://shop.example/b?q=%20x&flag#top");
        assert_eq!(
            Destination::parse("http://shop.example")
                .unwrap()
                .into_string(),
            "http://shop.example/"
        );
        // A backslash in the query or the fragment is data, not a delimiter.
        let d = Destination::parse(r"https://shop.example/p?q=a\b#x\y").unwrap();
        assert_eq!(d.url().host_str(), Some("shop.example"));
    }

    /// Each reads as one URL and is followed as another.
    const AMBIGUOUS: [&str; 12] = [
        r"https://evil.example\@shop.example/",
        r"https://evil.example\shop.example/",
        r"http:/\evil.example",
        r"http:\\evil.example/",
        r"https://shop.example\..\x",
        "https:evil.example",
        "https:/evil.example/",
        "https:///evil.example/",
        "https://@shop.example/",
        "https://:@shop.example/",
        "https://shop.example/\u{a0}",
        "https://shop.example/a\u{3000}b",
    ];

    #[test]
    fn refuses_ambiguous_forms() {
        for bad in AMBIGUOUS {
            let e = Destination::parse(bad).expect_err(bad);
            assert_eq!(e.field, "destination");
        }
        let e = Destination::parse(r"https://evil.example\@shop.example/").unwrap_err();
        assert!(e.message.contains("backslash"), "{e}");
        let e = Destination::parse("https:evil.example").unwrap_err();
        assert!(e.message.contains("https://"), "{e}");
    }

    /// Records stored before the ambiguous forms were refused still parse,
    /// and their normalised form (what they redirect to) passes every rule.
    #[test]
    fn stored_ambiguous_forms_still_load_and_normalise_to_valid() {
        for legacy in &AMBIGUOUS[..10] {
            let d = Destination::parse_stored(legacy).expect(legacy);
            let again = Destination::parse(d.as_str())
                .unwrap_or_else(|e| panic!("{legacy}: normalised form refused ({e})"));
            assert_eq!(again.as_str(), d.as_str());
        }
        assert_eq!(
            Destination::parse_stored(r"https://evil.example\@shop.example/")
                .unwrap()
                .as_str(),
            "https://evil.example/@shop.example/"
        );
        assert!(Destination::parse_stored("javascript:alert(1)").is_err());
    }
}

//! Fuzz targets for the parsers of what people type: code names, channel
//! names and destinations. Under `cargo test` each runs a bounded number of
//! random inputs (proptest; `PROPTEST_CASES` overrides the count); the same
//! checks run coverage-guided from `fuzz/` (`cargo +nightly fuzz run …`).
//!
//! Each check asserts what is known of an accepted value, not only that
//! nothing panics: a canonical form parses again to itself, and it obeys the
//! rules the parser promises.

use codelink_shared::code::{lowercase_slug, RESERVED};
use codelink_shared::{ChannelName, CodeName, Destination};
use proptest::prelude::*;

/// `n` cases, or `PROPTEST_CASES` when set.
fn cases(n: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

pub fn check_code(raw: &str) {
    let mut buf = [0u8; codelink_shared::code::MAX_LEN];
    match CodeName::parse(raw) {
        Ok(code) => {
            let c = code.as_str();
            assert!((3..=32).contains(&c.len()), "{raw:?}");
            assert!(c
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
            assert!(!RESERVED.contains(&c), "{raw:?} is reserved");
            assert_eq!(c, raw.to_ascii_lowercase(), "only the case changes");
            assert_eq!(
                CodeName::parse(c).as_ref(),
                Ok(&code),
                "canonical is stable"
            );
            assert_eq!(
                CodeName::parse(&raw.to_ascii_uppercase()).as_ref(),
                Ok(&code)
            );
            // The allocation-free lookup agrees with the parser.
            assert_eq!(lowercase_slug(raw, &mut buf), Some(c));
        }
        Err(e) => {
            assert_eq!(e.field, "code");
            // The lookup never finds a name the parser refuses for its alphabet.
            if let Some(lower) = lowercase_slug(raw, &mut buf) {
                assert!(lower.len() < 3 || RESERVED.contains(&lower), "{raw:?}: {e}");
            }
        }
    }
}

pub fn check_channel(raw: &str) {
    match ChannelName::parse(raw) {
        Ok(ch) => {
            let c = ch.as_str();
            assert!((1..=32).contains(&c.len()));
            assert_eq!(c, raw.to_ascii_lowercase());
            assert_eq!(
                ChannelName::parse(c).as_ref(),
                Ok(&ch),
                "canonical is stable"
            );
        }
        Err(e) => assert_eq!(e.field, "channels"),
    }
}

pub fn check_destination(raw: &str) {
    let strict = Destination::parse(raw);
    let stored = Destination::parse_stored(raw);
    if let Ok(d) = &strict {
        // What is accepted is what a stored record loads as.
        assert_eq!(stored.as_ref(), Ok(d), "{raw:?}");
    }
    if let Ok(d) = &stored {
        let url = d.url();
        assert!(matches!(url.scheme(), "http" | "https"), "{raw:?}");
        assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{raw:?}");
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(d.as_str().len() <= codelink_shared::destination::MAX_LEN);
        assert!(!d.as_str().chars().any(|c| c.is_control() || c == ' '));
        // The normalised form (stored, shown and followed) passes every rule
        // and normalises to itself: what is shown is what is followed.
        let again = Destination::parse(d.as_str())
            .unwrap_or_else(|e| panic!("{raw:?} → {:?} refused: {e}", d.as_str()));
        assert_eq!(again.as_str(), d.as_str(), "{raw:?}");
    }
    if let Err(e) = &strict {
        assert_eq!(e.field, "destination");
        assert!(e.message.len() <= 200, "a short message: {}", e.message);
    }
}

/// Names near the alphabet's edges: slug bytes, a few others, some reserved.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,34}",
        "[a-zA-Z0-9_\\-. /%é\u{130}\u{212a}]{0,34}",
        proptest::sample::select(RESERVED).prop_map(|r| r.to_ascii_uppercase()),
        any::<String>(),
    ]
}

/// URL-shaped text from the pieces that make URLs ambiguous.
fn url_like() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(vec![
        "http",
        "https",
        "HTTPS",
        "javascript",
        ":",
        "//",
        "/",
        "\\",
        "@",
        "?",
        "#",
        ":80",
        ":443",
        "shop.example",
        "evil.example",
        "127.0.0.1",
        "[::1]",
        "xn--bcher-kva.example",
        "bücher",
        "%20",
        "%2f",
        "%00",
        "&",
        "=",
        ".",
        "..",
        "a",
        "user:pw",
        "\u{a0}",
        "\u{3000}",
        "\t",
        " ",
        "%",
        "[",
        "]",
    ]);
    prop_oneof![
        proptest::collection::vec(piece.clone(), 0..12).prop_map(|p| p.concat()),
        (
            proptest::sample::select(vec![
                "http://",
                "https://",
                "https:",
                "http:/\\",
                "https:///"
            ]),
            proptest::collection::vec(piece, 0..10),
        )
            .prop_map(|(head, p)| format!("{head}{}", p.concat())),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn code_names(raw in name_like()) {
        check_code(&raw);
    }

    #[test]
    fn channel_names(raw in name_like()) {
        check_channel(&raw);
    }

    #[test]
    fn destinations(raw in url_like()) {
        check_destination(&raw);
    }
}

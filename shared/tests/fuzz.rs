//! Fuzz targets for the parsers of what people type: code names, channel
//! names and destinations. Under `cargo test` each runs a bounded number of
//! random inputs (proptest; `PROPTEST_CASES` overrides the count); the same
//! checks run coverage-guided from `fuzz/` (`cargo +nightly fuzz run …`).
//!
//! Each check asserts what is known of an accepted value, not only that
//! nothing panics: a canonical form parses again to itself, and it obeys the
//! rules the parser promises.

use codelink_shared::code::{lowercase_slug, RESERVED};
use codelink_shared::route::{validate_routes, MAX_NAME, MAX_RULES};
use codelink_shared::{ChannelName, CodeName, Destination, RouteRule};
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

/// Routing rules: on success the rules are canonical (validating them again
/// changes nothing), named uniquely, and their values in canonical case; an
/// error names the rules. Returns whether they were accepted.
pub fn check_routes(mut rules: Vec<RouteRule>) -> bool {
    let count = rules.len();
    match validate_routes(&mut rules) {
        Ok(()) => {
            assert!(count <= MAX_RULES);
            let mut again = rules.clone();
            validate_routes(&mut again).expect("canonical rules validate again");
            assert_eq!(again, rules, "canonical is stable");
            for (i, r) in rules.iter().enumerate() {
                assert!(!r.name.is_empty() && r.name.len() <= MAX_NAME);
                assert!(rules[..i].iter().all(|o| o.name != r.name));
                assert!(r
                    .country
                    .iter()
                    .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
                assert!(r.language.iter().all(|l| *l == l.to_ascii_lowercase()));
                assert_eq!(
                    Destination::parse(&r.destination).unwrap().as_str(),
                    r.destination
                );
            }
            true
        }
        Err(e) => {
            assert_eq!(e.field, "routes");
            assert!(
                e.message.starts_with("rule ") || e.message.starts_with("at most"),
                "{e}"
            );
            false
        }
    }
}

fn rule_like() -> impl Strategy<Value = RouteRule> {
    let word = |valid: &'static [&'static str]| {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(valid).prop_map(str::to_string),
                1 => "[A-Za-z0-9-]{0,10}",
            ],
            0..3,
        )
    };
    let time = proptest::option::of(prop_oneof![
        Just("2027-01-01T00:00:00Z".to_string()),
        Just("2027-01-01T01:00:00+01:00".to_string()),
        Just("2026-12-31T23:59:59.5Z".to_string()),
        "[0-9:TZ+-]{0,25}",
    ]);
    let destination = prop_oneof![
        3 => Just("https://shop.example/x?a=1#f".to_string()),
        3 => Just("HTTP://Shop.Example:80/a/../b".to_string()),
        1 => url_like(),
    ];
    (
        (
            proptest::sample::select(vec!["", "", "", "1", "2", "vip-DE", "a b"]),
            destination,
        ),
        (
            word(&["ios", "IOS", "android", "desktop"]),
            word(&["ios", "macos", "Linux"]),
            word(&["any", "instagram", "TikTok"]),
            word(&["de", "AT", "br"]),
            word(&["de", "pt-BR", "en-gb"]),
            word(&["mon", "SUN"]),
        ),
        (
            time.clone(),
            time,
            proptest::option::of(proptest::array::uniform2(0u8..30)),
        ),
    )
        .prop_map(
            |(
                (name, destination),
                (device, os, in_app, country, language, weekdays),
                (from, until, hours),
            )| RouteRule {
                name: name.to_string(),
                destination,
                device,
                os,
                in_app,
                country,
                language,
                from,
                until,
                hours,
                weekdays,
            },
        )
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

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn routes(rules in proptest::collection::vec(rule_like(), 0..4)) {
        check_routes(rules);
    }
}

/// The rule strategy reaches accepted rule sets, not only errors.
#[test]
fn the_rule_strategy_is_accepted_often_enough() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(rule_like(), 1..4);
    let accepted = (0..2_000)
        .filter(|_| check_routes(strategy.new_tree(&mut runner).unwrap().current()))
        .count();
    assert!(accepted >= 100, "only {accepted} of 2000 accepted");
}

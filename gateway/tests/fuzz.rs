//! Fuzz target for QR image options (`/qr/{code}?size=…&fg=…`): a bounded
//! run under `cargo test` (proptest; `PROPTEST_CASES` overrides the count),
//! the same check coverage-guided from `fuzz/`. (Conversion bodies are fuzzed
//! in `src/api/conversions_fuzz.rs`, beside the private parser.)
//!
//! Properties: no panic; accepted options are within their ranges and
//! readable colours, and the canonical query of what was accepted parses to
//! the same request; a refusal names a known option with a short message.

use gateway::qr_render::{
    parse_query, parse_query_on, QrOptions, QrRequest, Rgb, MAX_MARGIN, MAX_SIZE, MIN_SIZE,
};
use proptest::prelude::*;

fn cases(n: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

const OPTIONS: [&str; 9] = [
    "channel", "size", "ecc", "margin", "fg", "bg", "style", "frame", "query",
];

/// The query that asks for exactly `r`.
fn canonical(r: &QrRequest) -> String {
    let o = &r.options;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("size", &o.size.to_string())
        .append_pair("ecc", &format!("{:?}", o.ecc))
        .append_pair("margin", &o.margin.to_string())
        .append_pair("fg", &o.fg.hex())
        .append_pair("bg", &o.bg.hex())
        .append_pair("style", o.style.name())
        .append_pair("frame", if o.frame { "1" } else { "0" });
    if let Some(c) = &r.channel {
        q.append_pair("channel", c);
    }
    q.finish()
}

pub fn check_query(query: &str) {
    match parse_query(Some(query)) {
        Ok(r) => {
            let o = r.options;
            assert!((MIN_SIZE..=MAX_SIZE).contains(&o.size), "{query:?}");
            assert!(o.margin <= MAX_MARGIN);
            let again = canonical(&r);
            let back = parse_query(Some(&again)).unwrap_or_else(|e| panic!("{again}: {e}"));
            assert_eq!(back, r, "{query:?} → {again}");
            // With custom colours refused, the same query is accepted exactly
            // when it names neither colour.
            let no_colours = parse_query_on(Some(query), QrOptions::default(), false);
            let names_colour =
                url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                    .any(|(k, _)| k == "fg" || k == "bg");
            assert_eq!(no_colours.is_ok(), !names_colour, "{query:?}");
        }
        Err(e) => {
            assert!(OPTIONS.contains(&e.option), "{e}");
            assert!(e.message.len() <= 400, "{e}");
        }
    }
}

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[0-9]{0,5}",
        "#?[0-9a-fA-F]{0,7}",
        proptest::sample::select(vec![
            "L", "m", "Q", "h", "X", "+64", "0x10", "%20", "%23fff", "4096", "4097", "63", "dots",
            "Rounded", "square", "hearts", "1", "0", "2"
        ])
        .prop_map(String::from),
        "\\PC{0,8}",
    ];
    let name = prop_oneof![
        4 => proptest::sample::select(vec!["channel", "size", "ecc", "margin", "fg", "bg", "style", "frame"]).prop_map(String::from),
        1 => "[a-z%+]{0,6}",
    ];
    prop_oneof![
        4 => (proptest::option::of(Just("?")), proptest::collection::vec((name, value, any::<bool>()), 0..6))
            .prop_map(|(q, pairs)| {
                let pairs: Vec<String> = pairs
                    .into_iter()
                    .map(|(k, v, eq)| if eq || !v.is_empty() { format!("{k}={v}") } else { k })
                    .collect();
                format!("{}{}", q.unwrap_or(""), pairs.join("&"))
            }),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(20_000))]

    #[test]
    fn qr_options(q in query()) {
        check_query(&q);
    }

    /// Any pair of colours: accepted exactly when dark-on-light with enough
    /// contrast, and then as given.
    #[test]
    fn qr_colours(fg in any::<[u8; 3]>(), bg in any::<[u8; 3]>()) {
        let (fg, bg) = (Rgb(fg[0], fg[1], fg[2]), Rgb(bg[0], bg[1], bg[2]));
        let q = format!("fg=%23{}&bg={}", fg.hex(), bg.hex().to_uppercase());
        if let Ok(r) = parse_query(Some(&q)) {
            prop_assert_eq!((r.options.fg, r.options.bg), (fg, bg));
        }
        check_query(&q);
    }
}

/// The generator reaches the accepting path often, not only refusals.
#[test]
fn generated_queries_are_often_accepted() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = query();
    let accepted = (0..2_000)
        .filter(|_| parse_query(Some(&strategy.new_tree(&mut runner).unwrap().current())).is_ok())
        .count();
    assert!(accepted >= 200, "{accepted} of 2000 accepted");
}

/// SVG logos: any text made of SVG-ish pieces is accepted or refused with a
/// message, never a panic; an accepted one draws at any box size.
fn svg_text() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(vec![
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\">",
        "<svg width=\"0\" height=\"5\">",
        "</svg>",
        "<rect width=\"10\" height=\"10\" fill=\"#123\"/>",
        "<circle cx=\"5\" cy=\"5\" r=\"4\" fill=\"url(#g)\"/>",
        "<linearGradient id=\"g\"><stop offset=\"0\" stop-color=\"red\"/></linearGradient>",
        "<image href=\"data:image/png;base64,iVBORw0K\" width=\"5\" height=\"5\"/>",
        "<image href=\"http://x/y\"/>",
        "<use href=\"#g\"/>",
        "<script>x()</script>",
        " onload=\"x()\"",
        "<!DOCTYPE svg>",
        "<g transform=\"scale(1e30)\">",
        "</g>",
        "<text>é😀</text>",
        "<path d=\"M0 0 L10 10 Z\"/>",
        "url( 'javascript:x' )",
        "href",
        "on",
        "<",
        ">",
        "\"",
    ]);
    prop_oneof![
        4 => proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn svg_logos(text in svg_text(), side in 1u32..64) {
        use gateway::qr_logo::{Logo, LogoKind};
        match Logo::parse(LogoKind::Svg, bytes::Bytes::from(text.clone())) {
            Ok(logo) => {
                let px = logo.rasterize(side, side);
                prop_assert_eq!(px.len(), (side * side * 4) as usize);
                prop_assert!(logo.aspect().is_finite() && logo.aspect() > 0.0);
            }
            Err(e) => prop_assert!(!e.0.is_empty() && e.0.len() < 400, "{e}"),
        }
    }

    #[test]
    fn png_logos(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        use gateway::qr_logo::{Logo, LogoKind};
        // Random bytes behind a PNG signature reach the decoder's chunk parser.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&bytes);
        for body in [bytes.clone(), png] {
            if let Err(e) = Logo::parse(LogoKind::Png, body.into()) {
                prop_assert!(!e.0.is_empty());
            }
        }
    }
}

//! The public bot-pattern list, compiled once into one matcher.
//!
//! `data/crawler-user-agents.json` is the `crawler-user-agents` package
//! (MIT, licence beside it), vendored verbatim and refreshed with
//! `scripts/update-bot-patterns`. Each entry is a regular expression written
//! for case-sensitive matching; they are matched here against the lowercased
//! UA, so they act case-insensitively (what every other consumer of the list
//! does, and what catches `GOOGLEBOT` spelt by hand).
//!
//! Most patterns are plain words once their escapes are removed (`Mail\.RU_Bot`
//! is `mail.ru_bot`): those go into one Aho-Corasick automaton, one pass over
//! the UA for all of them (a DFA: ~3.4 MiB, two to three times faster than
//! the smaller NFA). The few real expressions (anchors, classes,
//! alternations) go into one `RegexSet`. Both are built on first use
//! (~20 ms) and shared by every thread; `tests/classify_cost.rs` measures
//! both costs.
//!
//! The JSON is embedded with `include_str!`: the binary reads no file.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{RegexBuilder, RegexSet, RegexSetBuilder};
use std::borrow::Cow;
use std::sync::LazyLock;

/// The vendored list.
pub(super) const JSON: &str = include_str!("../../data/crawler-user-agents.json");

/// Patterns of the list left out, each with the reason. A pattern belongs here
/// when it matches what people use — a browser, an in-app browser, an app's
/// own client — or names no bot at all. `tests/bot_corpus.rs` finds them:
/// every browser and in-app UA there must stay human.
pub(super) const EXCLUDED: &[(&str, &str)] = &[
    // An Android build id ("Build/AP3A.240617.008"): every phone on that
    // build, browsers and in-app browsers alike, carries it.
    (r"AP3A\.240617\.008", "an Android build id, on real phones"),
    // Sogou's mobile browser and search app ("SogouMobileBrowser/5.28",
    // "SogouSearch Android1.0"); Sogou's spiders say "spider" and give a URL.
    ("Sogou", "Sogou's browser and search app"),
    // Slack's desktop app ("… Sonic Slack_SSB/4.39.90"); the Sonic crawler
    // gives its URL.
    ("Sonic", "Slack's desktop app"),
    // The Fluid site-specific browser for macOS ("… Fluid/0.9.6 Safari/528.16").
    ("Fluid", "a macOS browser"),
    // Android apps' HTTP stack: people's apps (see `okhttp` in classify.rs).
    ("okhttp", "Android apps' HTTP client"),
    // Browsers and web views that mention WhatsApp ("… Mobile Safari/537.36
    // WhatsApp/2.24.17.79"); the preview fetcher, whose UA starts with
    // "WhatsApp/", is a named rule in classify.rs.
    ("WhatsApp", "in browser UAs; the fetcher is a named rule"),
];

/// Longest family name (bytes).
pub const MAX_FAMILY: usize = 32;

/// The compiled list.
pub(super) struct Corpus {
    literals: AhoCorasick,
    literal_names: Vec<Box<str>>,
    /// Per literal: it starts with a letter or digit, so it must start a
    /// word ("008/" is not in "TS1008/", "sonic" not in "airsonic").
    literal_word_start: Vec<bool>,
    regexes: RegexSet,
    regex_names: Vec<Box<str>>,
    /// Patterns the regex engine refused (none in the vendored list; a test
    /// checks), so a bad future entry costs one pattern, not the matcher.
    pub(super) refused: Vec<String>,
}

pub(super) static CORPUS: LazyLock<Corpus> = LazyLock::new(|| Corpus::build(JSON));

#[derive(serde::Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    pattern: Cow<'a, str>,
}

impl Corpus {
    fn build(json: &str) -> Self {
        // The vendored file is checked by tests; an unreadable one (a bad
        // update) leaves the matcher empty rather than failing every scan.
        let entries: Vec<Entry<'_>> = serde_json::from_str(json).unwrap_or_default();
        let mut literals = Vec::new();
        let mut literal_names = Vec::new();
        let mut literal_word_start = Vec::new();
        let mut regexes = Vec::new();
        let mut regex_names = Vec::new();
        for e in &entries {
            let p = e.pattern.as_ref();
            if EXCLUDED.iter().any(|(x, _)| *x == p) {
                continue;
            }
            let name = family(p).into_boxed_str();
            match literal(p) {
                Some(lit) => {
                    literal_word_start.push(lit.starts_with(|c: char| c.is_ascii_alphanumeric()));
                    literals.push(lit);
                    literal_names.push(name);
                }
                None => {
                    regexes.push(p.to_owned());
                    regex_names.push(name);
                }
            }
        }
        // Every match (overlapping), so that one refused for starting inside
        // a word does not hide another; `find` picks the leftmost, longest.
        let literals = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&literals)
            .expect("literal patterns always build");
        let set = |pats: &[String]| {
            RegexSetBuilder::new(pats)
                .case_insensitive(true)
                .unicode(false)
                .build()
        };
        let mut refused = Vec::new();
        let regexes = match set(&regexes) {
            Ok(s) => s,
            Err(_) => {
                // Find the culprits one by one (only ever on a bad update).
                let mut keep = Vec::new();
                let mut names = Vec::new();
                for (p, n) in regexes.iter().zip(&regex_names) {
                    match RegexBuilder::new(p).unicode(false).build() {
                        Ok(_) => {
                            keep.push(p.clone());
                            names.push(n.clone());
                        }
                        Err(_) => refused.push(p.clone()),
                    }
                }
                regex_names = names;
                set(&keep).unwrap_or_else(|_| RegexSet::empty())
            }
        };
        Self {
            literals,
            literal_names,
            literal_word_start,
            regexes,
            regex_names,
            refused,
        }
    }

    /// The family of the pattern found in `lc` (the lowercased UA): the
    /// leftmost literal (the longest of those starting there, so
    /// "googlebot-image" before "googlebot"), else the first expression.
    pub(super) fn find(&self, lc: &str) -> Option<&str> {
        let bytes = lc.as_bytes();
        let mut best: Option<(usize, usize, usize)> = None; // (start, len, id)
        for m in self.literals.find_overlapping_iter(lc) {
            let (start, id) = (m.start(), m.pattern().as_usize());
            if self.literal_word_start[id] && start > 0 && bytes[start - 1].is_ascii_alphanumeric()
            {
                continue;
            }
            if best.is_none_or(|(s, len, _)| start < s || (start == s && m.len() > len)) {
                best = Some((start, m.len(), id));
            }
        }
        if let Some((_, _, id)) = best {
            return Some(&self.literal_names[id]);
        }
        let first = self.regexes.matches(lc.as_bytes()).into_iter().next()?;
        Some(&self.regex_names[first])
    }

    /// (literal patterns, regular expressions) compiled.
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.literal_names.len(), self.regex_names.len())
    }

    /// Heap the Aho-Corasick automaton holds (the `RegexSet` does not say).
    pub(super) fn literal_memory(&self) -> usize {
        self.literals.memory_usage()
    }
}

/// The pattern as a plain lowercase string, when it is one: only escaped
/// punctuation (`\.`, `\/`, `\(`) and no operator.
fn literal(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => out.push(e),
                _ => return None, // \d, \s, \S, … or a trailing backslash
            },
            '[' | ']' | '(' | ')' | '{' | '}' | '.' | '*' | '+' | '?' | '^' | '$' | '|' => {
                return None
            }
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A short name for what a pattern matches: its words, lowercased, joined
/// by `-`, at most [`MAX_FAMILY`] bytes. `Ask Jeeves` → `ask-jeeves`,
/// `ia_archiver` → `ia-archiver`, `Googlebot\/` → `googlebot`,
/// `(sistrix|SISTRIX) [cC]rawler` → `sistrix-crawler` (first alternative;
/// `[cC]` is its first letter), `^Apache-HttpClient` → `apache-httpclient`.
pub fn family(pattern: &str) -> String {
    let mut raw = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut depth = 0usize;
    // While Some(d): skipping the other alternatives of the group at depth d.
    let mut skip: Option<usize> = None;
    while let Some(c) = chars.next() {
        if let Some(d) = skip {
            match c {
                '\\' => {
                    chars.next();
                }
                '(' => depth += 1,
                ')' => {
                    if depth == d {
                        skip = None;
                    }
                    depth = depth.saturating_sub(1);
                }
                '[' => {
                    skip_class(&mut chars);
                }
                _ => {}
            }
            continue;
        }
        match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => raw.push(e),
                _ => raw.push(' '),
            },
            '[' => {
                let class = skip_class(&mut chars);
                // `[wW]`, `[cC]`: a letter in either case is that letter.
                let mut letters = class.chars().map(|c| c.to_ascii_lowercase());
                match letters.next() {
                    Some(first)
                        if first.is_ascii_alphanumeric()
                            && class.chars().all(|c| c.to_ascii_lowercase() == first) =>
                    {
                        raw.push(first)
                    }
                    _ => raw.push(' '),
                }
            }
            '(' => {
                depth += 1;
                if chars.peek() == Some(&'?') {
                    // (?:…), (?i): flags are not words.
                    for n in chars.by_ref() {
                        if n == ':' {
                            break;
                        }
                        if n == ')' {
                            depth = depth.saturating_sub(1);
                            break;
                        }
                    }
                }
            }
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => break,
            '|' => skip = Some(depth),
            '{' => {
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                }
                raw.push(' ');
            }
            c => raw.push(c),
        }
    }
    slug(&raw)
}

/// Consumes a character class after its `[`, returning its content.
fn skip_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut class = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                class.push(c);
                if let Some(e) = chars.next() {
                    class.push(e);
                }
            }
            ']' => break,
            c => class.push(c),
        }
    }
    class
}

/// Lowercase ASCII letters and digits, runs of anything else as one `-`,
/// without a leading scheme or `www`, at most [`MAX_FAMILY`] bytes.
pub(super) fn slug(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut s = out.trim_end_matches('-');
    for prefix in ["https-", "http-", "www-"] {
        s = s.strip_prefix(prefix).unwrap_or(s);
    }
    if s.len() > MAX_FAMILY {
        // Cut at a word boundary when one is not too far back.
        let cut = s[..=MAX_FAMILY]
            .rfind('-')
            .filter(|&i| i >= MAX_FAMILY / 2)
            .unwrap_or(MAX_FAMILY);
        s = s[..cut].trim_end_matches('-');
    }
    if s.is_empty() {
        "crawler".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_read_like_the_bot() {
        for (pattern, want) in [
            ("Ask Jeeves", "ask-jeeves"),
            ("ia_archiver", "ia-archiver"),
            (r"Googlebot\/", "googlebot"),
            (r"AdsBot-Google([^-]|$)", "adsbot-google"),
            (r"Mediapartners \(Googlebot\)", "mediapartners-googlebot"),
            ("[wW]get", "wget"),
            ("^Seekbot", "seekbot"),
            (r"Mail\.RU_Bot", "mail-ru-bot"),
            ("(sistrix|SISTRIX) [cC]rawler", "sistrix-crawler"),
            ("Ahrefs(Bot|SiteAudit)", "ahrefsbot"),
            (r"(^| )sentry\/", "sentry"),
            (
                r"BlogTraffic\/\d\.\d+ Feed-Fetcher",
                "blogtraffic-feed-fetcher",
            ),
            (
                r"ContextualBot[\s\S]*outcomes\.net",
                "contextualbot-outcomes-net",
            ),
            ("Automaton|Newsify Feed Fetcher", "automaton"),
            (
                r"https:\/\/developers\.cloudflare\.com\/security-center\/",
                "developers-cloudflare-com",
            ),
            (" DVbot", "dvbot"),
            (r"008\/", "008"),
            ("GoogleAssociationService$", "googleassociationservice"),
            (r"Unshorten\.It\!", "unshorten-it"),
            ("(?i)x{2,3}", "x"),
            ("", "crawler"),
            ("***", "crawler"),
        ] {
            assert_eq!(family(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn every_vendored_pattern_compiles_and_names_a_family() {
        let c = &*CORPUS;
        assert!(c.refused.is_empty(), "refused: {:?}", c.refused);
        let entries: Vec<Entry<'_>> = serde_json::from_str(JSON).unwrap();
        let (lits, res) = c.sizes();
        assert_eq!(lits + res + EXCLUDED.len(), entries.len());
        for e in &entries {
            let f = family(&e.pattern);
            assert!(!f.is_empty() && f.len() <= MAX_FAMILY, "{f:?}");
            assert!(
                f.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{f:?}"
            );
            assert!(!f.starts_with('-') && !f.ends_with('-'), "{f:?}");
        }
        for (p, _) in EXCLUDED {
            assert!(
                entries.iter().any(|e| e.pattern == *p),
                "excluded pattern {p:?} is no longer in the list: drop it"
            );
        }
    }

    #[test]
    fn literals_and_expressions_both_match() {
        let c = &*CORPUS;
        assert_eq!(
            c.find("mozilla/5.0 (compatible; mj12bot/v1.4.8)"),
            Some("mj12bot")
        );
        assert_eq!(c.find("wget/1.21"), Some("wget"));
        assert_eq!(c.find("seekbot/1.0"), Some("seekbot"));
        assert_eq!(c.find("x seekbot/1.0"), None); // anchored at the start
        assert_eq!(c.find("ts1008/1.0"), None); // "008/" must start a word
        assert_eq!(
            c.find("mozilla/5.0 (iphone) applewebkit/605.1.15 safari/604.1"),
            None
        );
    }

    #[test]
    fn a_bad_pattern_costs_only_itself() {
        let c = Corpus::build(
            r#"[{"pattern": "good\\/"}, {"pattern": "(unclosed"}, {"pattern": "x[ab]y"}]"#,
        );
        assert_eq!(c.refused, vec!["(unclosed".to_owned()]);
        assert_eq!(c.find("a good/1"), Some("good"));
        assert_eq!(c.find("xby"), Some("x-y"));
        assert_eq!(Corpus::build("not json").find("anything"), None);
    }
}

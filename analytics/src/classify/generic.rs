//! The generic fallback: signs that software wrote the UA, for bots no list
//! names yet. Run after the named rules, the in-app markers and the pattern
//! list, on the lowercased UA with the Android device model blanked out
//! ([`mask_device_model`]): phone makers name models "BOT", "Spider 8",
//! "Butterfly", and a model name is not a signal.
//!
//! Each sign was kept only while it called none of the browser UAs we test
//! against a bot (`tests/bot_corpus.rs`, and the larger lists its ignored
//! tests read); each names the bot by what it found.

use super::corpus::slug;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Tokens (runs of ASCII letters and digits) that end in "bot" but are not
/// bots: Cubot is a phone brand ("CUBOT X30", "CUBOT_NOTE_20"), outside the
/// model position too ("cubot echo" in lowercase logs).
const NOT_BOT_TOKENS: &[&str] = &["cubot"];

/// Parts of a token that only software names itself with: a token containing
/// one is the bot's name ("Screaming Frog SEO Spider" → `spider`,
/// "SiteLockSpider" → `sitelockspider`). Each was checked against the browser
/// lists; words that real browsers and devices use were left out ("index"
/// is in feature phones' UAs, "search", "client", "agent", "link", "proxy",
/// "test", "reader" and "download" in browsers' and apps').
const BOT_WORDS: &[&str] = &[
    "crawl",
    "spider",
    "scrape",
    "slurp",
    "archiv",
    "fetch",
    "scan",
    "monitor",
    "check",
    "preview",
    "validat",
    "indexer",
    "probe",
    "harvest",
    "extractor",
    "parser",
    "feed",
    "analyz",
    "analys",
    "audit",
    "sitemap",
    "screenshot",
    "capture",
    "tracker",
    "lookup",
    "research",
    "survey",
    "verif",
    "inspect",
    "uptime",
    "heritrix",
    "nutch",
    "collector",
    "grabber",
    "sniff",
    "unfurl",
    "metadata",
    "daemon",
    "service",
    "observatory",
    "diagnostic",
    "transcoder",
    "measur",
    "phish",
    "fingerprint",
    "domain",
    "jiankong",
];

/// Whole tokens that are HTTP client libraries, script languages and
/// scanners (sorted, to read): a person's browser never names one ("Java" does appear, in
/// feature phones' "(Java; U; MIDP-2.0; …)", so only `java/` at the start
/// is a bot rule; `okhttp`, `Dalvik`, `CFNetwork` and `Dart` are what real
/// apps on phones send, not bots).
const LIBRARY_TOKENS: &[&str] = &[
    "aiohttp",
    "axios",
    "colly",
    "curl",
    "deno",
    "faraday",
    "fasthttp",
    "golang",
    "guzzlehttp",
    "httparty",
    "httpclient",
    "httpunit",
    "httpx",
    "httrack",
    "libcurl",
    "lwp",
    "masscan",
    "mechanize",
    "nikto",
    "nmap",
    "node",
    "nodejs",
    "nuclei",
    "perl",
    "php",
    "powershell",
    "pycurl",
    "python",
    "requests",
    "reqwest",
    "restsharp",
    "ruby",
    "scrapy",
    "sqlmap",
    "typhoeus",
    "undici",
    "urllib",
    "urllib3",
    "wget",
    "zgrab",
];

/// What a browser, a device or an app's own client says about its platform.
/// A UA with none of these is only product tokens of a non-browser
/// ("Feedly/1.0", "Podcast Fetcher 2", "AIDA64"), which no person's browser
/// sends. `okhttp`, `dalvik`, `cfnetwork`, `darwin`, `dart` and `cronet` are
/// the HTTP stacks of phone apps (their users are people).
const PLATFORM_MARKERS: &[&str] = &[
    "mozilla",
    "opera",
    "opr/",
    "omi/",
    "msie",
    "webtv",
    "brew",
    "polaris",
    "powerpc",
    "risc os",
    "beos",
    "inferno",
    "gecko",
    "webkit",
    "khtml",
    "presto",
    "trident",
    "chrome",
    "safari",
    "firefox",
    "browser",
    "android",
    "iphone",
    "ipad",
    "ipod",
    "ios",
    "darwin",
    "cfnetwork",
    "dalvik",
    "okhttp",
    "dart",
    "cronet",
    "electron",
    "windows",
    "win32",
    "win64",
    "win7",
    "win8",
    "win10",
    "win11",
    "macintosh",
    "mac os",
    "macos",
    "linux",
    "x11",
    "cros",
    "unix",
    "bsd",
    "sunos",
    "haiku",
    "amiga",
    "os/2",
    "tizen",
    "webos",
    "web0s",
    "kaios",
    "harmony",
    "playstation",
    "xbox",
    "nintendo",
    "roku",
    "tvos",
    "watchos",
    "smarttv",
    "smart-tv",
    "hbbtv",
    "midp",
    "cldc",
    "j2me",
    "symbian",
    "series",
    "blackberry",
    "bb10",
    "palm",
    "wap",
    "up.browser",
    "netfront",
    "obigo",
    "teleca",
    "openwave",
    "maui",
    "mre/",
    "nokia",
    "samsung",
    "sonyericsson",
    "htc",
    "huawei",
    "zte",
    "lenovo",
    "alcatel",
    "docomo",
    "kddi",
    "softbank",
    "mobile",
    "phone",
    "tablet",
    "kindle",
    "silk",
    "lynx",
    "links",
    "w3m",
    "mosaic",
    "amaya",
    "dillo",
    "netsurf",
    "konqueror",
    "ucweb",
    "hotjava",
    "xiino",
    "fban",
    "fbios",
    "instagram",
];

/// Browser names that, sent alone as the whole UA, are a script's guess.
const BARE_NAMES: &[&str] = &[
    "mozilla", "chrome", "firefox", "safari", "opera", "edge", "browser", "msie",
];

/// Words of a UA that are never a product's name, skipped when naming one.
const NOT_NAMES: &[&str] = &[
    "mozilla",
    "compatible",
    "applewebkit",
    "khtml",
    "like",
    "gecko",
    "chrome",
    "safari",
    "version",
    "mobile",
    "http",
    "https",
    "www",
    "u",
    "en",
    "en-us",
    "x11",
    "linux",
    "windows",
];

/// The bot name when a generic sign is found in `m` (the lowercased UA with
/// the device model masked).
pub(super) fn bot(m: &str) -> Option<String> {
    let matchers = &*MATCHERS;
    // A token ending in "bot" ("MJ12bot", "robot", "yandex.com/bots"), a
    // library's name, or a compound such as "SeznamEmailProxy", "FeedFetcher",
    // "Feedly" (a bare "Proxy" is in transcoding browsers' UAs, a bare "Feed"
    // in page titles).
    let by_token = m.split(|c: char| !c.is_ascii_alphanumeric()).find(|t| {
        ((t.ends_with("bot") || t.ends_with("bots")) && !NOT_BOT_TOKENS.contains(t))
            || (t.len() > 5 && t.ends_with("proxy"))
    });
    // A library's name as a whole token ("pycurl", not "xcurl").
    let by_library = matchers.libraries.find_iter(m).find_map(|l| {
        let token = token_at(m, l.start());
        (offset(m, token) == l.start() && token.len() == l.len()).then_some(token)
    });
    // A token containing a word only software uses: the token around the
    // leftmost such word ("feed" only in a longer token).
    let by_word = matchers
        .bot_words
        .find_iter(m)
        .map(|w| (BOT_WORDS[w.pattern().as_usize()], token_at(m, w.start())))
        .find(|(word, token)| *word != "feed" || token.len() > word.len())
        .map(|(_, token)| token);
    let named = [by_token, by_library, by_word]
        .into_iter()
        .flatten()
        .min_by_key(|t| offset(m, t));
    if let Some(t) = named {
        return Some(slug(t));
    }
    // Google's tools are "Google-<Tool>" or "<Tool>-Google" ("Google-AMPHTML",
    // "DuplexWeb-Google/1.0", "Google-Sites-Thumbnails"); no browser has one.
    if let Some(name) = google_tool(m) {
        return Some(name);
    }
    // Anything added inside WebKit's "(KHTML, like Gecko)" comment is a tool
    // ("(KHTML, like Gecko; Google Search Console)", "…; compatible; pageburst)").
    if let Some(rest) = m.split_once("(khtml, like gecko;").map(|(_, r)| r) {
        let inside = rest.split(')').next().unwrap_or("");
        let name = inside
            .split(';')
            .map(str::trim)
            .find(|p| !p.is_empty() && *p != "compatible")
            .map(slug)
            .unwrap_or_else(|| "webkit-tool".to_owned());
        return Some(name);
    }
    // Unfilled templates: "{{.custom_user_agent}}", "${userAgent}".
    if m.contains("{{") || m.contains("${") {
        return Some("template".to_owned());
    }
    // A web address or an e-mail address: where to complain about a bot,
    // which no browser gives.
    if has_url(m) {
        return Some(product_name(m, false).unwrap_or_else(|| "url".to_owned()));
    }
    if has_email(m) {
        return Some(product_name(m, false).unwrap_or_else(|| "email".to_owned()));
    }
    // A browser's name alone ("Chrome", "firefox"): no browser sends that.
    if BARE_NAMES.contains(&m) {
        return Some(slug(m));
    }
    // Only product tokens, none of a browser or a platform ("Feedly/1.0",
    // "Mozilla/5.0 (compatible; Crusader/1.0)", "Mozilla/5.0 Keydrop": the
    // leading "Mozilla/5.0" alone says nothing).
    let rest = strip_mozilla(m);
    if !matchers.platforms.is_match(rest) {
        return Some(product_name(m, true).unwrap_or_else(|| "no-platform".to_owned()));
    }
    None
}

/// [`BOT_WORDS`], [`LIBRARY_TOKENS`] and [`PLATFORM_MARKERS`] compiled,
/// once: checking each word or token one by one cost microseconds per UA.
struct Matchers {
    bot_words: AhoCorasick,
    libraries: AhoCorasick,
    platforms: AhoCorasick,
}

static MATCHERS: LazyLock<Matchers> = LazyLock::new(|| Matchers {
    bot_words: AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .kind(Some(AhoCorasickKind::DFA))
        .build(BOT_WORDS)
        .expect("fixed word list builds"),
    libraries: AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(LIBRARY_TOKENS)
        .expect("fixed word list builds"),
    platforms: AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(PLATFORM_MARKERS)
        .expect("fixed word list builds"),
});

/// The token (run of ASCII letters and digits) of `m` that contains byte `at`.
fn token_at(m: &str, at: usize) -> &str {
    let b = m.as_bytes();
    let start = b[..at]
        .iter()
        .rposition(|c| !c.is_ascii_alphanumeric())
        .map_or(0, |p| p + 1);
    let end = b[at..]
        .iter()
        .position(|c| !c.is_ascii_alphanumeric())
        .map_or(b.len(), |p| at + p);
    &m[start..end]
}

/// Byte offset of `part`, a subslice of `whole`.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// `m` without a leading "mozilla/<version>".
fn strip_mozilla(m: &str) -> &str {
    match m.strip_prefix("mozilla/") {
        Some(rest) => rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'),
        None => m,
    }
}

/// "google-<word>" or "<word>-google" ("google-amphtml",
/// "duplexweb-google/1.0"), named by the whole hyphenated word.
fn google_tool(m: &str) -> Option<String> {
    let b = m.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    m.match_indices("google").find_map(|(i, g)| {
        let end = i + g.len();
        let before = i >= 2 && b[i - 1] == b'-' && b[i - 2].is_ascii_alphanumeric();
        let after =
            b.get(end) == Some(&b'-') && b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
        if !(before || after) {
            return None;
        }
        let start = b[..i]
            .iter()
            .rposition(|c| !is_word(*c))
            .map_or(0, |p| p + 1);
        let stop = b[end..]
            .iter()
            .position(|c| !is_word(*c))
            .map_or(b.len(), |p| end + p);
        Some(slug(&m[start..stop]))
    })
}

/// "http://", "https://" or "www.example…".
pub(super) fn has_url(m: &str) -> bool {
    if m.contains("http://") || m.contains("https://") {
        return true;
    }
    m.match_indices("www.").any(|(i, _)| {
        let before_ok = i == 0 || !m.as_bytes()[i - 1].is_ascii_alphanumeric();
        let after = &m.as_bytes()[i + 4..];
        // "www.x" with a dot further on: a host name.
        let label = after
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        before_ok && label > 0 && after.get(label) == Some(&b'.')
    })
}

/// local@host.tld with a TLD of two letters or more ("android@126.0.6478"
/// from Ecosia is a version, not an address).
fn has_email(m: &str) -> bool {
    let b = m.as_bytes();
    m.match_indices('@').any(|(i, _)| {
        let local = b[..i]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(c))
            .count();
        if local == 0 {
            return false;
        }
        let host: &[u8] = {
            let rest = &b[i + 1..];
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'.' || **c == b'-')
                .count();
            &rest[..n]
        };
        let mut labels = host.split(|c| *c == b'.').filter(|l| !l.is_empty());
        let count = labels.clone().count();
        let tld_ok = labels
            .next_back()
            .is_some_and(|tld| tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic));
        count >= 2 && tld_ok
    })
}

/// The first product of the UA that is not a browser's or a platform's word:
/// `name` of the first `name/version`, else (with `bare`) the first word.
fn product_name(m: &str, bare: bool) -> Option<String> {
    let words = m
        .split(|c: char| {
            c.is_ascii_whitespace() || matches!(c, ';' | '(' | ')' | ',' | '+' | '[' | ']')
        })
        .filter(|w| !w.is_empty());
    let usable = |name: &str| {
        name.bytes().any(|b| b.is_ascii_alphabetic())
            && !NOT_NAMES.contains(&name)
            && !name.contains(':')
            && !name.contains('@')
            && !name.starts_with("www.")
    };
    let product = words
        .clone()
        .filter_map(|w| w.split_once('/').map(|(name, _)| name))
        .find(|name| usable(name));
    product
        .or_else(|| {
            words
                .clone()
                .find(|w| bare && !w.contains('/') && usable(w))
        })
        .map(slug)
}

/// `lc` with the device model of an Android UA blanked out: in the first
/// comment, the `;`-separated parts after the one naming Android that are a
/// model ("SM-S918B", "M bot 51", "Pixel 8 Build/AP3A.240617.008"): parts
/// without a `/`, or with `build/`. Parts such as "Storebot-Google/1.0"
/// stay. Borrowed when there is nothing to blank.
pub(super) fn mask_device_model(lc: &str) -> Cow<'_, str> {
    let Some(open) = lc.find('(') else {
        return Cow::Borrowed(lc);
    };
    let close = lc[open..].find(')').map_or(lc.len(), |i| open + i);
    let comment = &lc[open + 1..close];
    let Some(android) = comment.find("android") else {
        return Cow::Borrowed(lc);
    };
    let Some(first_semi) = comment[android..].find(';') else {
        return Cow::Borrowed(lc);
    };
    let mut out = lc.as_bytes().to_vec();
    let mut start = open + 1 + android + first_semi + 1;
    while start < close {
        let end = lc[start..close].find(';').map_or(close, |i| start + i);
        let part = &lc[start..end];
        if !part.contains('/') || part.contains("build/") {
            for b in &mut out[start..end] {
                // Only ASCII bytes are replaced, so the text stays UTF-8.
                if b.is_ascii() {
                    *b = b' ';
                }
            }
        }
        start = end + 1;
    }
    // Replacing ASCII bytes with a space keeps the string valid UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| lc.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_tokens_are_sorted_lowercase_words() {
        assert!(LIBRARY_TOKENS.windows(2).all(|w| w[0] < w[1]));
        for t in LIBRARY_TOKENS.iter().chain(BOT_WORDS).chain(BARE_NAMES) {
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{t}"
            );
        }
        for t in PLATFORM_MARKERS {
            assert_eq!(*t, t.to_ascii_lowercase());
        }
    }

    #[test]
    fn device_models_are_masked() {
        let m = mask_device_model(
            "mozilla/5.0 (linux; android 7.0; m bot 51 build/nrd90m) applewebkit/537.36",
        );
        assert!(!m.contains("bot") && m.contains("applewebkit"), "{m}");
        let m = mask_device_model(
            "mozilla/5.0 (linux; android 8.0; pixel 2 build/opd3.170816.012; storebot-google/1.0) applewebkit",
        );
        assert!(
            m.contains("storebot-google/1.0") && !m.contains("pixel"),
            "{m}"
        );
        assert!(matches!(
            mask_device_model("mozilla/5.0 (windows nt 10.0; win64; x64)"),
            Cow::Borrowed(_)
        ));
        // Non-ASCII model names stay valid text.
        let m = mask_device_model("mozilla/5.0 (linux; android 14; 小米 bot)");
        assert!(!m.contains("bot"));
        let _ = mask_device_model("(android;");
        let _ = mask_device_model("(android");
        let _ = mask_device_model("x) (android; a; b");
    }

    #[test]
    fn signs_and_names() {
        for (ua, want) in [
            ("mozilla/5.0 (compatible; examplebot/1.0)", Some("examplebot")),
            ("screaming frog seo spider/19.0", Some("spider")),
            ("mozilla/5.0 (compatible; foo/1.0; +http://foo.example/)", Some("foo")),
            ("mozilla/5.0 (compatible; +https://foo.example/about)", Some("url")),
            ("foo/2.0 (contact ops@foo-corp.example.com)", Some("foo")),
            ("mozilla/5.0 (x11; linux x86_64) see www.acme.io", Some("url")),
            ("feedly/1.0", Some("feedly")),
            ("aida64", Some("aida64")),
            ("python-requests/2.31", Some("python")),
            ("mozilla/5.0 (linux; android 10; k) applewebkit/537.36 (khtml, like gecko) chrome/126.0.0.0 mobile safari/537.36 (ecosia android@126.0.6478.122)", None),
            ("mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) chrome/126.0.0.0 safari/537.36", None),
            ("okhttp/4.12.0", None),
            ("dalvik/2.1.0 (linux; u; android 13)", None),
            ("cubot x30", Some("cubot")),
            ("iphone11", None),
            ("mozilla/5.0 (linux; android 6.0; cubot echo) applewebkit/537.36 (khtml, like gecko) chrome/70.0 mobile safari/537.36", None),
            ("mozilla/5.0 (compatible; crusader/1.0)", Some("crusader")),
            ("mozilla/5.0 keydrop", Some("keydrop")),
            ("chrome", Some("chrome")),
            ("{{.custom_user_agent}}", Some("template")),
            ("mozilla/5.0 (x11; linux x86_64) applewebkit/537.36 (khtml, like gecko; google search console) chrome/41.0 safari/537.36", Some("google-search-console")),
            ("mozilla/5.0 (linux; android 8.0; pixel 2; duplexweb-google/1.0) applewebkit/537.36 (khtml, like gecko) chrome/74.0 mobile safari/537.36", Some("duplexweb-google")),
            ("mozilla/5.0 (windows nt 10.0) applewebkit/537.36 (khtml, like gecko) chrome/126.0 safari/537.36 seznamemailproxy/2.0", Some("seznamemailproxy")),
        ] {
            assert_eq!(bot(ua).as_deref(), want, "{ua:?}");
        }
        assert!(!has_email("a@b"));
        assert!(!has_email("@x.com"));
        assert!(has_email("x a.b@c.de y"));
        assert!(!has_url("wwwx.com"));
        assert!(!has_url("www."));
        assert!(has_url("(www.example.com)"));
    }
}

//! The scan event: what the redirect captures ([`RawScan`]) and what is stored
//! ([`Scan`]) once the recorder has enriched it off the hot path.

use crate::ScanId;
use crate::Text;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Whether the scan came from a QR image, a tap on the link, or a tap on the
/// creator's bio page (`/@{owner}`). The rollups' and live counters' `link`
/// counts a bio tap too (a tap, not an image scanned); the `source` breakdown
/// and the live counters' `bio` tell it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Link,
    Qr,
    Bio,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Link => "link",
            Source::Qr => "qr",
            Source::Bio => "bio",
        }
    }
}

/// Bot verdicts the redirect can make by itself, before the user agent is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBot {
    /// A `HEAD` request: link checkers and preview fetchers, never a person.
    Head,
    /// `Purpose: prefetch` / `Sec-Purpose: prefetch`: the browser guessed, nobody tapped.
    Prefetch,
    /// Above the per-IP scan rate.
    Rate,
}

impl RequestBot {
    pub fn reason(self) -> &'static str {
        match self {
            RequestBot::Head => "head",
            RequestBot::Prefetch => "prefetch",
            RequestBot::Rate => "rate",
        }
    }
}

/// What a scan's request carried of the headers every real browser sends,
/// noted by the redirect (a few header lookups, no parsing beyond a byte
/// search) and judged by the recorder ([`crate::enrich`]). `Default` is a
/// request that carried none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderSigns {
    /// The browser saw a secure origin (the public URL is https, or the
    /// host is loopback): only then do browsers send `Sec-Fetch-*` and
    /// client hints, so only then is their absence a sign.
    pub secure: bool,
    pub accept: bool,
    pub accept_language: bool,
    /// `Sec-Fetch-Mode` (or `Sec-Fetch-Dest`) was sent.
    pub sec_fetch: bool,
    /// `Sec-CH-UA` was sent.
    pub client_hints: bool,
    /// The major version of the `"Chromium"` brand in `Sec-CH-UA`; 0 when
    /// absent.
    pub chromium_brand: u16,
    /// `Sec-CH-UA` names `HeadlessChrome` (older headless Chrome did).
    pub headless_brand: bool,
    /// The visitor id came from a `cl_vid` cookie this gateway signed (the
    /// same browser as before), not from a hash of address and user agent
    /// (which phones behind one carrier NAT can share).
    pub visitor_cookie: bool,
}

/// The number right after the first `prefix` in `text` (a major version:
/// `Chrome/131.0…` → 131), saturating; 0 when `prefix` is not there or no
/// digit follows it. Used on the UA by the recorder and on `Sec-CH-UA` by
/// the redirect, so that both read versions the same way.
pub fn version_after(text: &[u8], prefix: &[u8]) -> u16 {
    let Some(at) = text.windows(prefix.len()).position(|w| w == prefix) else {
        return 0;
    };
    let mut n: u16 = 0;
    for &b in text[at + prefix.len()..].iter().take(5) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(u16::from(b - b'0'));
    }
    n
}

impl HeaderSigns {
    /// What a browser's navigation to a secure origin carries (without
    /// client hints, as Safari and Firefox send it).
    pub const BROWSER: HeaderSigns = HeaderSigns {
        secure: true,
        accept: true,
        accept_language: true,
        sec_fetch: true,
        client_hints: false,
        chromium_brand: 0,
        headless_brand: false,
        visitor_cookie: true,
    };
}

/// What the redirect handler hands to the recorder: copied request facts, no parsing.
#[derive(Debug, Clone)]
pub struct RawScan {
    pub scan_id: ScanId,
    pub code: String,
    /// Empty when the bare code was scanned.
    pub channel: String,
    pub source: Source,
    pub ip: IpAddr,
    pub user_agent: String,
    pub referer: String,
    /// Two-letter country from the trusted CDN header, or empty.
    pub country: String,
    pub visitor_id: String,
    pub request_bot: Option<RequestBot>,
    pub signs: HeaderSigns,
    /// The channel asked for when the code has no such channel (the scan
    /// went to the code's own destination and `channel` is empty): a typo
    /// in a bio, an old link. At most [`MAX_UNKNOWN_CHANNEL`] bytes of slug.
    pub unknown_channel: String,
    /// Which follower-path step this request was (see [`Step`]).
    pub step: Step,
    /// The name of the code's routing rule that chose the destination;
    /// empty when no rule matched (or the code has none).
    pub route: String,
}

/// Longest unknown channel name kept.
pub const MAX_UNKNOWN_CHANNEL: usize = 32;

/// What a follower's request was, beyond the plain redirect: the steps of the
/// follower paths that the live stats count per code (`step:{name}`).
/// `Redirect`, `Gone` and `EscapeShown` are scans (stored and counted like
/// any); `Escaped` and `Continued` are a follower leaving the in-app escape
/// page, named by the token of the scan that showed it: they are counted,
/// never stored as scans, so a follower is one scan whichever way they went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The 302 to a destination.
    #[default]
    Redirect,
    /// The code is disabled or expired: its page (or its fallback URL).
    Gone,
    /// The in-app browser escape page was shown.
    EscapeShown,
    /// The follower opened the link in their own browser from the escape page.
    Escaped,
    /// The follower went on in the in-app browser from the escape page.
    Continued,
}

impl Step {
    /// The counter name; empty for the plain redirect.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Redirect => "",
            Step::Gone => "gone",
            Step::EscapeShown => "escape_shown",
            Step::Escaped => "escaped",
            Step::Continued => "continued",
        }
    }

    /// Whether the request is a scan (stored, counted in totals), not a
    /// follow-up of one.
    pub fn is_scan(self) -> bool {
        !matches!(self, Step::Escaped | Step::Continued)
    }
}

/// A follow-up of a scan that is counted but not stored as a scan
/// ([`Step::Escaped`], [`Step::Continued`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvent {
    pub code: String,
    pub step: Step,
    /// Unix ms of the follow-up.
    pub ts_ms: u64,
}

/// The three-way verdict on a scan, read from its reason: `""` is a human
/// scan; `repeat`, `datacenter` and `suspect:*` are suspect; every other
/// reason (`ua:*`, `automation:*`, `head`, `prefetch`, `rate`, …) is a bot.
/// Neither suspects nor bots count as human scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Human,
    Suspect,
    Bot,
}

impl Verdict {
    pub fn of_reason(reason: &str) -> Verdict {
        if reason.is_empty() {
            Verdict::Human
        } else if reason == "repeat" || reason == "datacenter" || reason.starts_with("suspect:") {
            Verdict::Suspect
        } else {
            Verdict::Bot
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Suspect => "suspect",
            Verdict::Bot => "bot",
        }
    }
}

/// One stored scan, the same in every backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The `cl_scan` value given to the destination (26 characters).
    pub scan_id: Text,
    /// Unix milliseconds.
    pub ts_ms: u64,
    pub code: Text,
    pub channel: Text,
    pub visitor_id: Text,
    /// IPv4 /24 or IPv6 /48 network address; the full IP is never stored.
    pub ip_prefix: Text,
    pub user_agent: Text,
    /// mobile, tablet, desktop, bot or other.
    pub device: Text,
    pub os: Text,
    pub browser: Text,
    /// instagram, tiktok, youtube, facebook, …; empty outside in-app browsers.
    pub in_app: Text,
    pub referrer_host: Text,
    pub country: Text,
    /// `qr` or `link`.
    pub source: Text,
    /// Empty for humans; else why not: see [`Verdict::of_reason`] and
    /// [`crate::enrich`] (`ua:<family>`, `automation:<name>`, `head`,
    /// `prefetch`, `rate`; `suspect:<what>`, `datacenter`, `repeat`).
    pub bot_reason: Text,
    /// First human scan of this code by this visitor in the (UTC) day.
    pub is_unique: bool,
    /// The unknown channel a scan of the code's own destination asked for
    /// (see [`RawScan::unknown_channel`]), or `(other)` past the first 20
    /// names of a code (per process). Counted in the live stats; not kept
    /// in scan rows.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub unknown_channel: Text,
    /// The follower-path step of the scan (`gone`, `escape_shown`; empty for
    /// the plain redirect): counted in the live stats, not kept in scan rows.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    pub step: Text,
    /// The code's routing rule that sent this scan (its name), or empty.
    #[serde(default)]
    pub route: Text,
}

impl Scan {
    /// Not a human scan (a bot or a suspect).
    pub fn is_bot(&self) -> bool {
        !self.bot_reason.is_empty()
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::of_reason(&self.bot_reason)
    }

    /// `YYYY-MM-DD` (UTC) of the scan.
    pub fn day(&self) -> String {
        day_of(self.ts_ms)
    }
}

/// What a conversion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversionKind {
    Signup,
    Purchase,
    Refund,
}

impl ConversionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversionKind::Signup => "signup",
            ConversionKind::Purchase => "purchase",
            ConversionKind::Refund => "refund",
        }
    }
}

/// Which attribution rule credited a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A valid, signed scan token named the scan.
    ScanId,
    /// A purchase or refund by a customer whose signup was attributed.
    Inherited,
    /// The latest human scan of the code by this visitor (or the visitor known
    /// for this customer) within the code's attribution window.
    Visitor,
    /// The code was typed, no scan found: credited to the code, no scan.
    CodeOnly,
    Unattributed,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ScanId => "scan_id",
            Rule::Inherited => "inherited",
            Rule::Visitor => "visitor",
            Rule::CodeOnly => "code_only",
            Rule::Unattributed => "unattributed",
        }
    }
}

/// One stored conversion with its attribution decision and earnings, the same
/// in every backend. Deduplicated by `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub event_id: String,
    pub kind: ConversionKind,
    /// When it happened (Unix ms; the time of receipt when the brand gave none).
    pub occurred_ms: u64,
    pub received_ms: u64,
    /// The credited code; empty when unattributed.
    pub code: String,
    /// The owner (creator handle) of `code` when the conversion arrived.
    pub owner: String,
    /// Channel of the attributed scan; empty without a scan.
    pub channel: String,
    /// The attributed scan (26 characters); empty without a scan.
    pub scan_id: String,
    /// Unix ms of the attributed scan; 0 without a scan.
    pub scan_ms: u64,
    pub visitor_id: String,
    pub customer_id: String,
    /// Minor units; refunds carry the refunded amount as a positive number.
    pub amount: i64,
    /// ISO-4217; empty for a signup without money.
    pub currency: String,
    pub rule: Rule,
    /// Commission in minor units of `earnings_currency`; negative for refunds.
    pub earnings: i64,
    pub earnings_currency: String,
    /// This row records an event id that was claimed before (a brand's retry):
    /// rollups count it only when the first recording is known to be missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
    /// Flagged by a fraud check at ingest (see `crate::fraud`): it earns
    /// nothing (`earnings` is 0) until a review approves it, which releases
    /// [`Flagged::held`]. The same in the claim, so a retry gets the same answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<Flagged>,
}

/// Why a conversion was flagged, and what it would have earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    /// Reason slugs, in rule order: `velocity_visitor`, `velocity_ip`,
    /// `scan_bot`, `scan_suspect`, `too_fast`, `multi_creator`,
    /// `signups_exceed_scans`.
    pub flags: Vec<String>,
    /// The earnings held back (minor units of `earnings_currency`).
    pub held: i64,
}

/// `YYYY-MM-DD` (UTC) of a Unix-millisecond time.
pub fn day_of(ts_ms: u64) -> String {
    let days = (ts_ms / 86_400_000) as i64;
    let date = time::Date::from_julian_day(2_440_588 + days as i32).unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorder holds one to two batches of up to 125,000 scans at full
    /// speed: a scan's width is most of its memory (its 17 texts, one pointer
    /// each, 136 bytes of the 152).
    #[test]
    fn a_scan_in_flight_stays_small() {
        assert!(
            std::mem::size_of::<Scan>() <= 160,
            "a Scan is {} bytes",
            std::mem::size_of::<Scan>()
        );
    }

    #[test]
    fn versions_after_a_prefix() {
        let ua = b"Mozilla/5.0 (X11) AppleWebKit/537.36 HeadlessChrome/156.0.0.0 Safari/537.36";
        assert_eq!(version_after(ua, b"Chrome/"), 156);
        let hints = br#""Not:A-Brand";v="8", "Chromium";v="131""#;
        assert_eq!(version_after(hints, br#""Chromium";v=""#), 131);
        assert_eq!(version_after(b"CriOS/120.0", b"Chrome/"), 0);
        assert_eq!(version_after(b"Chrome/x", b"Chrome/"), 0);
        assert_eq!(version_after(b"Chrome/99999999", b"Chrome/"), u16::MAX);
    }

    #[test]
    fn day_boundaries() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_700_000_000_000), "2023-11-14");
        assert_eq!(day_of(1_704_067_199_999), "2023-12-31");
        assert_eq!(day_of(1_704_067_200_000), "2024-01-01");
    }
}

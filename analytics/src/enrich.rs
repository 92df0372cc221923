//! Turning a [`RawScan`] into a stored [`Scan`]: user-agent classification,
//! the verdict (human, suspect or bot, with its reason), IP anonymisation,
//! referrer host, and the per-day unique flag. Runs in the recorder task,
//! never on the redirect path.
//!
//! # Reasons, first that holds
//! Bots ([`Verdict::Bot`]):
//! 1. `automation:<name>` — a headless browser or automation tool, named by
//!    the user agent (HeadlessChrome, Lighthouse, PhantomJS, Puppeteer,
//!    Playwright, Selenium, …) or by a `HeadlessChrome` brand in `Sec-CH-UA`;
//! 2. `ua:<family>` — the user agent is a crawler, fetcher or script
//!    ([`classify`]);
//! 3. `head`, `prefetch`, `rate` — what the redirect saw itself.
//!
//! Suspects ([`Verdict::Suspect`]), for a user agent that reads as a person:
//! 4. `suspect:client-hints` — `Sec-CH-UA` contradicts the user agent: its
//!    `Chromium` brand is another major version than the UA's `Chrome/`, or
//!    the UA is not Chromium at all. Headless Chromium with a made-up user
//!    agent does exactly this (calibrated on Debian's chromium 156:
//!    `gateway/tests/verdicts.rs`);
//! 5. `suspect:no-accept`, `suspect:no-accept-language` — every browser sends
//!    both on a navigation; HTTP libraries with a borrowed UA rarely do;
//! 6. `suspect:no-sec-fetch` — a Chromium 80+ UA (outside in-app browsers)
//!    without `Sec-Fetch-Mode`, on an origin browsers treat as secure (the
//!    only place they send it);
//! 7. `datacenter` — the address is in `--datacenter-ranges`;
//! 8. `repeat` — the same browser (its signed `cl_vid` cookie: a hash of
//!    address and user agent may be several phones behind one NAT), code
//!    and channel less than [`VerdictRules::repeat_window`] after the last
//!    human scan counted (per process: behind a load balancer, a repeat
//!    landing on another instance counts as human there).

use crate::classify;
use crate::config::VerdictRules;
use crate::event::{version_after, HeaderSigns, RawScan, Scan};
use crate::Text;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Longest user agent kept (bytes).
pub const MAX_UA: usize = 512;

/// Remembers which (code, visitor) pairs were seen today, to flag the first
/// human scan of the day. Per process: two instances behind a load balancer
/// may each flag a visitor once (the Redis HyperLogLog counts them once).
pub struct Enricher {
    day: u64,
    seen: HashSet<u64>,
    hasher: foldhash::fast::RandomState,
    /// User agents repeat a lot (a few app and browser versions dominate), and
    /// parsing one costs a microsecond or more: remember recent answers.
    clients: HashMap<Text, Judged>,
    /// The values scans repeat (codes, channels, devices, OSes, browsers,
    /// apps, countries, referrers' hosts, sources, reasons, steps, routes),
    /// each allocated once.
    shared: SharedTexts,
    rules: VerdictRules,
    /// Hash of (code, channel, visitor) → Unix ms of its last human scan
    /// counted, for `repeat`; entries older than the window are dropped now
    /// and then.
    last_human: HashMap<u64, u64>,
    last_prune_ms: u64,
    /// Per code, the unknown channel names counted so far.
    unknown: HashMap<String, HashSet<String>>,
}

/// Unknown channel names counted per code (per process); later ones are
/// counted as `(other)`.
const UNKNOWN_PER_CODE: usize = 20;

/// A user agent's classification and what the verdict needs of it, with
/// the texts its scans carry (shared by all of them).
#[derive(Clone)]
struct Judged {
    /// The UA names a headless browser or an automation tool.
    automation: bool,
    /// The major version of `Chrome/` in the UA (0: none).
    chrome_major: u16,
    /// The user agent as stored (at most [`MAX_UA`] bytes).
    user_agent: Text,
    device: Text,
    os: Text,
    browser: Text,
    in_app: Text,
    /// `automation:{name}` or `ua:{name}` when the UA names a bot.
    bot_reason: Text,
}

/// (code, visitor) pairs remembered per day, at most: about 19 MB (a
/// table of 2^21 slots of 9 bytes). Past it, a pair not remembered is
/// flagged unique at each of its scans that day (the flag of a scan row; the
/// unique-visitor counts come from the store, not from it), so that memory
/// does not grow with the visitors of a busy day.
const SEEN_MAX: usize = 1_800_000;

/// Entries kept in the user-agent cache before it starts over.
const CLIENT_CACHE: usize = 20_000;
/// Shared texts kept before the set starts over.
const SHARED_MAX: usize = 20_000;

/// Texts handed out shared: the first [`SharedTexts::share`] of a value
/// allocates it, later ones clone that allocation. At most [`SHARED_MAX`]
/// values are kept; past it the set starts over (texts handed out before
/// stay as they are).
#[derive(Default)]
pub(crate) struct SharedTexts(HashSet<Text>);

impl SharedTexts {
    /// `text` as a [`Text`] shared with the earlier ones of the same value.
    pub(crate) fn share(&mut self, text: &str) -> Text {
        if text.is_empty() {
            return Text::default();
        }
        if let Some(t) = self.0.get(text) {
            return t.clone();
        }
        if self.0.len() >= SHARED_MAX {
            self.0.clear();
        }
        let t = Text::from(text);
        self.0.insert(t.clone());
        t
    }
}

/// The first Chromium version that sends `Sec-Fetch-*` on navigations (76),
/// with a margin.
const SEC_FETCH_SINCE: u16 = 80;

impl Default for Enricher {
    fn default() -> Self {
        Self::new(VerdictRules::default())
    }
}

impl Enricher {
    pub fn new(rules: VerdictRules) -> Self {
        Self {
            day: 0,
            seen: HashSet::new(),
            hasher: Default::default(),
            clients: HashMap::new(),
            shared: SharedTexts::default(),
            rules,
            last_human: HashMap::new(),
            last_prune_ms: 0,
            unknown: HashMap::new(),
        }
    }

    pub fn enrich(&mut self, raw: RawScan) -> Scan {
        let ts_ms = raw.scan_id.unix_ms();
        let judged = self.classify(&raw.user_agent);
        let ua_bot = !judged.bot_reason.is_empty();
        let bot_reason = match (ua_bot, raw.request_bot) {
            (true, _) if judged.automation => judged.bot_reason.clone(),
            _ if raw.signs.headless_brand => self.shared.share("automation:headless-chrome"),
            (true, _) => judged.bot_reason.clone(),
            (false, Some(b)) => self.shared.share(b.reason()),
            (false, None) => match suspect(&raw.signs, judged.chrome_major, &judged.in_app) {
                Some(reason) => self.shared.share(reason),
                None if self.in_datacenter(raw.ip) => self.shared.share("datacenter"),
                None if self.is_repeat(ts_ms, &raw) => self.shared.share("repeat"),
                None => Text::default(),
            },
        };
        let is_unique =
            bot_reason.is_empty() && self.first_today(ts_ms, &raw.code, &raw.visitor_id);
        let unknown_channel = self.unknown_channel(&raw.code, raw.unknown_channel);
        Scan {
            scan_id: raw.scan_id.to_text(),
            ts_ms,
            code: self.shared.share(&raw.code),
            channel: self.shared.share(&raw.channel),
            visitor_id: Text::from(raw.visitor_id),
            ip_prefix: Text::from(anonymise(raw.ip)),
            user_agent: judged.user_agent,
            device: judged.device,
            os: judged.os,
            browser: judged.browser,
            in_app: judged.in_app,
            referrer_host: self.shared.share(&referrer_host(&raw.referer)),
            country: self.shared.share(&raw.country),
            source: self.shared.share(raw.source.as_str()),
            bot_reason,
            is_unique,
            unknown_channel: self.shared.share(&unknown_channel),
            step: self.shared.share(raw.step.as_str()),
            route: self.shared.share(&raw.route),
        }
    }

    /// An unknown channel's name as counted: the first [`UNKNOWN_PER_CODE`]
    /// names of a code are kept, later ones are `(other)`, so that made-up
    /// paths cannot grow a code's counters without bound.
    fn unknown_channel(&mut self, code: &str, name: String) -> String {
        if name.is_empty() {
            return name;
        }
        let names = self.unknown.entry(code.to_string()).or_default();
        if names.contains(&name) || names.len() < UNKNOWN_PER_CODE {
            names.insert(name.clone());
            name
        } else {
            "(other)".to_string()
        }
    }

    fn classify(&mut self, user_agent: &str) -> Judged {
        if let Some(c) = self.clients.get(user_agent) {
            return c.clone();
        }
        if self.clients.len() >= CLIENT_CACHE {
            self.clients.clear();
        }
        let client = classify::classify(user_agent);
        let bot_reason = match &client.bot {
            Some(name) if client.automation => self.shared.share(&format!("automation:{name}")),
            Some(name) => self.shared.share(&format!("ua:{name}")),
            None => Text::default(),
        };
        let key = Text::from(user_agent);
        let c = Judged {
            automation: client.automation,
            // (`CriOS/`, Chrome on iOS, is WebKit and sends no client hints: 0.)
            chrome_major: version_after(user_agent.as_bytes(), b"Chrome/"),
            // The gateway cuts user agents to this length already.
            user_agent: if user_agent.len() <= MAX_UA {
                key.clone()
            } else {
                Text::from(truncate(user_agent.to_owned(), MAX_UA))
            },
            device: self.shared.share(client.device),
            os: self.shared.share(&client.os),
            browser: self.shared.share(&client.browser),
            in_app: self.shared.share(client.in_app),
            bot_reason,
        };
        self.clients.insert(key, c.clone());
        c
    }

    fn in_datacenter(&self, ip: IpAddr) -> bool {
        self.rules
            .datacenter
            .as_ref()
            .is_some_and(|r| r.contains(ip))
    }

    /// Whether this otherwise human scan repeats the last one counted for its
    /// visitor, code and channel within the window; if not, it is now the
    /// last one counted.
    fn is_repeat(&mut self, ts_ms: u64, raw: &RawScan) -> bool {
        let window = self.rules.repeat_window.as_millis() as u64;
        if window == 0 {
            return false;
        }
        if ts_ms.saturating_sub(self.last_prune_ms) > window.max(1_000) {
            self.last_human
                .retain(|_, last| ts_ms.saturating_sub(*last) < window);
            self.last_prune_ms = ts_ms;
        }
        let key = self
            .hasher
            .hash_one((&raw.code, &raw.channel, &raw.visitor_id));
        // Without its cookie, a visitor is a hash of address and user agent,
        // which phones behind one carrier NAT share: not enough to call a
        // second scan the same person's (but it may be the first of a
        // browser that sends its new cookie back on a reload).
        match self.last_human.get(&key) {
            Some(&last) if raw.signs.visitor_cookie && ts_ms >= last && ts_ms - last < window => {
                true
            }
            _ => {
                self.last_human.insert(key, ts_ms);
                false
            }
        }
    }

    fn first_today(&mut self, ts_ms: u64, code: &str, visitor: &str) -> bool {
        let day = ts_ms / 86_400_000;
        if day != self.day {
            // Scans arrive in time order per instance; a new day starts a new set.
            if day < self.day {
                return false;
            }
            self.day = day;
            self.seen.clear();
        }
        let hash = self.hasher.hash_one((code, visitor));
        if self.seen.len() < SEEN_MAX {
            self.seen.insert(hash)
        } else {
            !self.seen.contains(&hash)
        }
    }
}

/// The suspect reason of a request whose user agent reads as a person, if
/// its headers are not what that browser sends.
fn suspect(signs: &HeaderSigns, chrome_major: u16, in_app: &str) -> Option<&'static str> {
    // Client hints from a UA that is not Chromium, or a `Chromium` brand of
    // another major version than the UA's: the UA was made up. (A brand
    // list without `Chromium` is left alone: old or unusual builds.)
    let contradicts =
        chrome_major == 0 || (signs.chromium_brand != 0 && signs.chromium_brand != chrome_major);
    if signs.client_hints && contradicts {
        return Some("suspect:client-hints");
    }
    if !signs.accept {
        return Some("suspect:no-accept");
    }
    if !signs.accept_language {
        return Some("suspect:no-accept-language");
    }
    if signs.secure && !signs.sec_fetch && chrome_major >= SEC_FETCH_SINCE && in_app.is_empty() {
        return Some("suspect:no-sec-fetch");
    }
    None
}

/// IPv4 → its /24 network, IPv6 → its /48 network, written as an address.
pub fn anonymise(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            // Written by hand: this runs once per scan, and `format!` is slow.
            let mut out = String::with_capacity(15);
            for octet in &v4.octets()[..3] {
                codelink_shared::text::push_decimal(&mut out, u32::from(*octet));
                out.push('.');
            }
            out.push('0');
            out
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => anonymise(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
            }
        },
    }
}

/// The host of a `Referer` header value, lowercase; empty when absent or not a URL.
pub fn referrer_host(referer: &str) -> String {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))
        .or_else(|| referer.strip_prefix("android-app://"));
    let Some(rest) = rest else {
        return String::new();
    };
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_port.rsplit('@').next().unwrap_or("");
    let host = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    };
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b))
    {
        return String::new();
    }
    host.to_ascii_lowercase()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values scans repeat are one allocation each, shared by every
    /// scan that carries them; what is each scan's own is not.
    #[test]
    fn repeated_values_are_shared_between_scans() {
        use crate::event::Source;
        use crate::ScanId;
        let raw = |n: u64, ua: &str| RawScan {
            scan_id: ScanId::from_parts(1_700_000_000_000 + n, 7, n),
            code: "spring".into(),
            channel: "yt".into(),
            source: Source::Qr,
            ip: format!("203.0.113.{n}").parse().unwrap(),
            user_agent: ua.into(),
            referer: "https://www.instagram.com/".into(),
            country: "DE".into(),
            visitor_id: format!("v{n}"),
            request_bot: None,
            signs: HeaderSigns::BROWSER,
            unknown_channel: String::new(),
            step: Default::default(),
            route: "1".into(),
        };
        let phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
        let other_phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        let bot = "curl/8.5.0";
        let mut e = Enricher::default();
        let a = e.enrich(raw(1, phone));
        let b = e.enrich(raw(2, phone));
        let c = e.enrich(raw(3, bot));
        let d = e.enrich(raw(4, bot));
        assert_eq!((a.device.as_str(), a.os.as_str()), ("mobile", "iOS"));
        assert_eq!(
            (a.referrer_host.as_str(), a.source.as_str()),
            ("www.instagram.com", "qr")
        );
        for (x, y) in [(&a, &b), (&c, &d)] {
            for (f, g) in [
                (&x.code, &y.code),
                (&x.channel, &y.channel),
                (&x.user_agent, &y.user_agent),
                (&x.device, &y.device),
                (&x.os, &y.os),
                (&x.browser, &y.browser),
                (&x.referrer_host, &y.referrer_host),
                (&x.country, &y.country),
                (&x.source, &y.source),
                (&x.bot_reason, &y.bot_reason),
                (&x.route, &y.route),
            ] {
                assert!(f.shares(g), "{f:?} is not shared");
            }
        }
        // Another phone's user agent, with the same device, OS and browser.
        let f = e.enrich(raw(5, other_phone));
        assert!(!f.user_agent.shares(&a.user_agent));
        assert_eq!(
            (f.device.as_str(), f.os.as_str(), f.browser.as_str()),
            ("mobile", "iOS", "Safari")
        );
        for (x, y) in [
            (&f.device, &a.device),
            (&f.os, &a.os),
            (&f.browser, &a.browser),
        ] {
            assert!(x.shares(y), "{x:?} is not shared between user agents");
        }
        assert_eq!(c.bot_reason, "ua:curl");
        assert!(a.code.shares(&c.code) && a.bot_reason.is_empty());
        assert_eq!(
            a.scan_id,
            ScanId::from_parts(1_700_000_000_001, 7, 1).to_string()
        );
    }

    #[test]
    fn the_visitors_remembered_in_a_day_are_bounded() {
        let mut e = Enricher::default();
        let t = 1_700_000_000_000;
        for i in 0..SEEN_MAX {
            assert!(e.first_today(t, "a", &i.to_string()));
        }
        let slots = e.seen.capacity();
        // Remembered ones are still known; past the bound a new pair is
        // flagged at each scan and nothing more is kept.
        assert!(!e.first_today(t, "a", "7"));
        assert!(e.first_today(t, "a", "new"));
        assert!(e.first_today(t, "a", "new"));
        assert_eq!((e.seen.len(), e.seen.capacity()), (SEEN_MAX, slots));
        assert!(slots < 2 * SEEN_MAX);
        // The next day starts over.
        assert!(e.first_today(t + 86_400_000, "a", "new"));
        assert!(!e.first_today(t + 86_400_000, "a", "new"));
    }

    #[test]
    fn unknown_channel_names_are_bounded_per_code() {
        let mut e = Enricher::default();
        for i in 0..UNKNOWN_PER_CODE {
            assert_eq!(e.unknown_channel("a", format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(
            e.unknown_channel("a", "t0".into()),
            "t0",
            "a name already kept"
        );
        assert_eq!(e.unknown_channel("a", "new".into()), "(other)");
        assert_eq!(e.unknown_channel("b", "new".into()), "new", "per code");
        assert_eq!(e.unknown_channel("a", String::new()), "");
    }

    #[test]
    fn ip_anonymisation() {
        assert_eq!(anonymise("203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(anonymise("0.9.10.255".parse().unwrap()), "0.9.10.0");
        assert_eq!(anonymise("100.255.99.1".parse().unwrap()), "100.255.99.0");
        assert_eq!(
            anonymise("2001:db8:abcd:12:1:2:3:4".parse().unwrap()),
            "2001:db8:abcd::"
        );
        assert_eq!(
            anonymise("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0"
        );
    }

    #[test]
    fn referrer_hosts() {
        assert_eq!(
            referrer_host("https://L.Instagram.com/?u=x"),
            "l.instagram.com"
        );
        assert_eq!(
            referrer_host("https://www.youtube.com:443/watch?v=1"),
            "www.youtube.com"
        );
        assert_eq!(
            referrer_host("android-app://com.google.android.youtube/"),
            "com.google.android.youtube"
        );
        assert_eq!(referrer_host(""), "");
        assert_eq!(referrer_host("javascript:alert(1)"), "");
    }
}

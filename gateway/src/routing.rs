//! A code's routing rules as the redirect evaluates them: compiled once when
//! the code is written ([`CompiledRoute::compile`]), with every value turned
//! into a bit or a byte pair and every destination into [`Target`]s (the
//! bare code and each of the code's channels, the channel's UTM appended), so
//! that matching is comparisons and picking a target is a lookup.
//!
//! The request facts a code's rules need ([`Needs`]) are gathered once per
//! redirect, and only those: the user agent's facts (from the
//! [`crate::client::Clients`] cache), the preferred `Accept-Language`
//! entry, the country. A code without rules needs nothing.

use crate::client::ClientFacts;
use crate::codes::Target;
use codelink_shared::route::{ANY_IN_APP, DEVICES, IN_APPS, OSES, WEEKDAYS};
use codelink_shared::RouteRule;
use std::collections::HashMap;
use url::Url;

/// Which request facts a code's rules look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Device, OS or in-app browser: the user agent's [`ClientFacts`].
    pub client: bool,
    pub country: bool,
    pub language: bool,
}

impl Needs {
    fn add(&mut self, other: Needs) {
        self.client |= other.client;
        self.country |= other.country;
        self.language |= other.language;
    }
}

/// What one request offers the rules.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// `Some` when a rule needs it.
    pub client: Option<ClientFacts>,
    /// Uppercase ISO 3166-1 alpha-2; `None` when unknown.
    pub country: Option<[u8; 2]>,
    /// The preferred `Accept-Language` tag (see [`preferred_language`]), or "".
    pub language: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// One compiled rule.
#[derive(Debug)]
pub struct CompiledRoute {
    pub name: Box<str>,
    /// Bits by index into `DEVICES` / `OSES` / `IN_APPS` / `WEEKDAYS`
    /// (Monday is bit 0); 0: any.
    devices: u8,
    oses: u8,
    in_apps: u32,
    any_in_app: bool,
    countries: Vec<[u8; 2]>,
    /// Lowercase tags.
    languages: Vec<Box<str>>,
    from: Option<i64>,
    until: Option<i64>,
    /// Bit h: the UTC hour h is in the window; 0: any.
    hours: u32,
    weekdays: u8,
    needs: Needs,
    pub default: Target,
    /// The rule's destination with each of the code's channels' UTM.
    pub channels: HashMap<String, Target>,
}

/// Bit i set for each value that is `names[i]` (validated values; lists
/// of at most 32 names).
fn bits(values: &[String], names: &[&str]) -> u32 {
    values
        .iter()
        .filter_map(|v| names.iter().position(|n| n == v))
        .fold(0, |b, i| b | 1 << i)
}

impl CompiledRoute {
    /// A rule that passed validation; `None` if its destination does not
    /// parse (then the rule is left out, not served).
    pub fn compile(
        rule: &RouteRule,
        channels: &[(&str, Vec<(&str, &str)>)],
        scan_param: &str,
    ) -> Option<Self> {
        let url = Url::parse(&rule.destination).ok()?;
        let hours = match rule.hours {
            None => 0,
            Some([start, end]) => {
                let (start, end) = (u32::from(start.min(24)), u32::from(end.min(24)));
                (0..24)
                    .filter(|h| {
                        if start < end {
                            (start..end).contains(h)
                        } else {
                            *h >= start || *h < end
                        }
                    })
                    .fold(0u32, |b, h| b | 1 << h)
            }
        };
        let needs = Needs {
            client: !(rule.device.is_empty() && rule.os.is_empty() && rule.in_app.is_empty()),
            country: !rule.country.is_empty(),
            language: !rule.language.is_empty(),
        };
        Some(Self {
            name: rule.name.as_str().into(),
            devices: bits(&rule.device, DEVICES) as u8,
            oses: bits(&rule.os, OSES) as u8,
            in_apps: bits(&rule.in_app, IN_APPS),
            any_in_app: rule.in_app.iter().any(|a| a == ANY_IN_APP),
            countries: rule
                .country
                .iter()
                .filter_map(|c| <[u8; 2]>::try_from(c.as_bytes()).ok())
                .collect(),
            languages: rule
                .language
                .iter()
                .map(|l| l.to_ascii_lowercase().into_boxed_str())
                .collect(),
            from: rule.from_secs(),
            until: rule.until_secs(),
            hours,
            weekdays: bits(&rule.weekdays, WEEKDAYS) as u8,
            needs,
            default: Target::build(&url, &[], scan_param),
            channels: channels
                .iter()
                .map(|(name, utm)| (name.to_string(), Target::build(&url, utm, scan_param)))
                .collect(),
        })
    }

    /// Whether every condition the rule gives holds for `f`.
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        if self.from.is_some_and(|t| f.now < t) || self.until.is_some_and(|t| f.now >= t) {
            return false;
        }
        if self.hours != 0 {
            let hour = f.now.rem_euclid(86_400) / 3600;
            if self.hours & (1 << hour) == 0 {
                return false;
            }
        }
        if self.weekdays != 0 {
            // 1970-01-01 was a Thursday (index 3 from Monday).
            let weekday = (f.now.div_euclid(86_400) + 3).rem_euclid(7);
            if self.weekdays & (1 << weekday) == 0 {
                return false;
            }
        }
        if self.needs.client {
            let Some(c) = f.client else {
                return false;
            };
            if !allows(self.devices, c.device.index()) || !allows(self.oses, c.os.index()) {
                return false;
            }
            if self.in_apps != 0 || self.any_in_app {
                let named = IN_APPS
                    .iter()
                    .position(|a| *a == c.in_app)
                    .is_some_and(|i| self.in_apps & (1 << i) != 0);
                if !(named || (self.any_in_app && !c.in_app.is_empty())) {
                    return false;
                }
            }
        }
        if !self.countries.is_empty() && !f.country.is_some_and(|c| self.countries.contains(&c)) {
            return false;
        }
        if !self.languages.is_empty()
            && !self
                .languages
                .iter()
                .any(|l| language_matches(f.language, l))
        {
            return false;
        }
        true
    }

    /// The target for a scan of `channel` ("" for the bare code).
    pub fn target(&self, channel: &str) -> &Target {
        if channel.is_empty() {
            return &self.default;
        }
        self.channels.get(channel).unwrap_or(&self.default)
    }
}

/// Whether a mask of allowed indexes (0: any) allows `index` (`None`: a
/// value no rule can name).
fn allows(mask: u8, index: Option<usize>) -> bool {
    mask == 0 || index.is_some_and(|i| mask & (1 << i) != 0)
}

/// A code's rules, in order, and what they need.
#[derive(Debug, Default)]
pub struct Routes {
    pub rules: Vec<CompiledRoute>,
    pub needs: Needs,
}

impl Routes {
    pub fn compile(
        rules: &[RouteRule],
        channels: &[(&str, Vec<(&str, &str)>)],
        scan_param: &str,
    ) -> Self {
        let mut needs = Needs::default();
        let rules: Vec<CompiledRoute> = rules
            .iter()
            .filter_map(|r| CompiledRoute::compile(r, channels, scan_param))
            .inspect(|r| needs.add(r.needs))
            .collect();
        Self { rules, needs }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that matches.
    pub fn first_match(&self, f: &Facts<'_>) -> Option<&CompiledRoute> {
        self.rules.iter().find(|r| r.matches(f))
    }
}

/// Whether the request's language `tag` is `wanted` (lowercase) or one of
/// its subtags: `de` matches `de` and `de-AT`, not `den`.
pub fn language_matches(tag: &str, wanted: &str) -> bool {
    let (t, w) = (tag.as_bytes(), wanted.as_bytes());
    t.len() >= w.len()
        && t[..w.len()].eq_ignore_ascii_case(w)
        && (t.len() == w.len() || t[w.len()] == b'-')
}

/// The preferred entry of an `Accept-Language` value: the highest `q` (1 when
/// not given), the first among equals; `*` and entries with `q=0` are not
/// preferences. "" when there is none. No allocation.
pub fn preferred_language(header: &[u8]) -> &str {
    let Ok(header) = std::str::from_utf8(header) else {
        return "";
    };
    let mut best = ("", 0u32);
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        if tag.is_empty() || tag == "*" {
            continue;
        }
        let mut q = 1000;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = parse_q(v.trim());
            }
        }
        if q > best.1 {
            best = (tag, q);
        }
    }
    best.0
}

/// A quality value in thousandths (`0.8` → 800); malformed → 0.
fn parse_q(v: &str) -> u32 {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let int = match int {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let mut n = 0;
    for (i, b) in frac.bytes().enumerate() {
        n += u32::from(b - b'0') * [100, 10, 1][i];
    }
    (int + n).min(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Device, Os};

    #[test]
    fn preferred_language_is_the_highest_q() {
        assert_eq!(preferred_language(b"de-AT,de;q=0.9,en;q=0.8"), "de-AT");
        assert_eq!(preferred_language(b"en;q=0.5, pt-BR;q=0.9, *"), "pt-BR");
        assert_eq!(preferred_language(b"*, fr;q=0.1"), "fr");
        assert_eq!(preferred_language(b"fr;q=0, it;q=0.001"), "it");
        assert_eq!(preferred_language(b"en-US, de"), "en-US");
        assert_eq!(preferred_language(b""), "");
        assert_eq!(preferred_language(b"en;q=2"), "");
        assert!(language_matches("de-AT", "de"));
        assert!(language_matches("PT-br", "pt-br"));
        assert!(!language_matches("pt-PT", "pt-br"));
        assert!(!language_matches("den", "de"));
        assert!(!language_matches("", "de"));
    }

    fn facts(now: i64) -> Facts<'static> {
        Facts {
            client: Some(ClientFacts {
                device: Device::Ios,
                os: Os::Ios,
                in_app: "tiktok",
                bot: false,
            }),
            country: Some(*b"DE"),
            language: "de-DE",
            now,
        }
    }

    fn route(rule: RouteRule) -> CompiledRoute {
        let mut rules = vec![RouteRule {
            destination: "https://shop.example/x".into(),
            ..rule
        }];
        codelink_shared::route::validate_routes(&mut rules).unwrap();
        CompiledRoute::compile(&rules[0], &[], "cl_scan").unwrap()
    }

    #[test]
    fn time_windows() {
        // 2027-01-04T10:30:00Z, a Monday.
        let monday = 1_799_058_600;
        let r = route(RouteRule {
            hours: Some([9, 17]),
            weekdays: vec!["mon".into(), "fri".into()],
            ..RouteRule::default()
        });
        assert!(r.matches(&facts(monday)));
        assert!(!r.matches(&facts(monday + 7 * 3600)), "17:30");
        assert!(!r.matches(&facts(monday + 86_400)), "Tuesday");
        assert!(r.matches(&facts(monday + 4 * 86_400)), "Friday");
        let night = route(RouteRule {
            hours: Some([22, 6]),
            ..RouteRule::default()
        });
        assert!(!night.matches(&facts(monday)));
        assert!(night.matches(&facts(monday + 12 * 3600)), "22:30");
        assert!(night.matches(&facts(monday + 18 * 3600)), "04:30");
        let window = route(RouteRule {
            from: Some("2027-01-04T10:00:00Z".into()),
            until: Some("2027-01-04T11:00:00Z".into()),
            ..RouteRule::default()
        });
        assert!(window.matches(&facts(monday)));
        assert!(!window.matches(&facts(monday - 1800 - 1)));
        assert!(!window.matches(&facts(monday + 1800)));
    }

    #[test]
    fn every_condition_must_hold_any_value_of_a_list() {
        let r = route(RouteRule {
            device: vec!["android".into(), "ios".into()],
            in_app: vec!["any".into()],
            country: vec!["AT".into(), "DE".into()],
            language: vec!["de".into()],
            ..RouteRule::default()
        });
        assert!(r.matches(&facts(0)));
        let mut f = facts(0);
        f.country = Some(*b"FR");
        assert!(!r.matches(&f));
        let mut f = facts(0);
        f.country = None;
        assert!(!r.matches(&f));
        let mut f = facts(0);
        f.language = "en-DE";
        assert!(!r.matches(&f));
        let mut f = facts(0);
        f.client = Some(ClientFacts {
            in_app: "",
            ..f.client.unwrap()
        });
        assert!(!r.matches(&f), "not in an app");
        let named = route(RouteRule {
            in_app: vec!["instagram".into()],
            os: vec!["ios".into()],
            ..RouteRule::default()
        });
        assert!(!named.matches(&facts(0)), "tiktok is not instagram");
    }

    const BENCH_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";

    fn bench_routes() -> Routes {
        let mut rules: Vec<RouteRule> =
            serde_json::from_str(include_str!("../../load-tests/routes-10.json")).unwrap();
        codelink_shared::route::validate_routes(&mut rules).unwrap();
        let routes = Routes::compile(
            &rules,
            &[("yt", vec![("utm_source", "youtube")])],
            "cl_scan",
        );
        assert_eq!(routes.rules.len(), 10);
        routes
    }

    /// `load-tests/routes-10.json` (what `ROUTES=… bench.sh` sets) is valid,
    /// and no rule matches the bench's request: all 10 are evaluated.
    #[test]
    fn the_bench_rules_all_miss_the_bench_request() {
        let routes = bench_routes();
        assert_eq!(
            routes.needs,
            Needs {
                client: true,
                country: true,
                language: true
            }
        );
        let clients = crate::client::Clients::new(10);
        let now = 1_800_000_000;
        let f = Facts {
            client: Some(clients.facts(BENCH_UA.as_bytes())),
            country: None,
            language: preferred_language(b"en-US,en;q=0.9"),
            now,
        };
        assert!(routes.first_match(&f).is_none());
        // Each rule can match: with the right facts the last one does.
        let f = Facts {
            language: "fr-CA",
            ..f
        };
        assert_eq!(
            routes.first_match(&f).map(|r| &*r.name),
            Some("ios-eu-langs")
        );
    }

    /// What the redirect adds for a code with the 10 bench rules, none
    /// matching (`cargo test --release -p gateway --lib routing::tests::cost
    /// -- --ignored --nocapture`), and a GeoIP lookup.
    #[test]
    #[ignore]
    fn cost() {
        use std::time::Instant;
        let routes = bench_routes();
        let clients = crate::client::Clients::default();
        let n = 1_000_000;
        let start = Instant::now();
        let mut hits = 0;
        for i in 0..n {
            let f = Facts {
                client: Some(clients.facts(BENCH_UA.as_bytes())),
                country: None,
                language: preferred_language(b"en-US,en;q=0.9"),
                now: 1_800_000_000 + i,
            };
            hits += usize::from(std::hint::black_box(routes.first_match(&f)).is_some());
        }
        let per = start.elapsed().as_nanos() / u128::from(n as u64);
        assert_eq!(hits, 0);
        println!("10 rules, none matching, facts from the UA cache: {per} ns per redirect");
        let f = Facts {
            client: Some(clients.facts(BENCH_UA.as_bytes())),
            country: None,
            language: preferred_language(b"en-US,en;q=0.9"),
            now: 1_800_000_000,
        };
        let start = Instant::now();
        for i in 0..n {
            let f = Facts {
                now: f.now + i,
                ..std::hint::black_box(f)
            };
            hits += usize::from(std::hint::black_box(routes.first_match(&f)).is_some());
        }
        let per = start.elapsed().as_nanos() / u128::from(n as u64);
        assert_eq!(hits, 0);
        println!("of which matching the 10 rules: {per} ns");
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(clients.facts(std::hint::black_box(BENCH_UA).as_bytes()));
        }
        let per = start.elapsed().as_nanos() / u128::from(n as u64);
        println!("of which the UA cache: {per} ns");
        let geo = crate::geoip::GeoIp::from_bytes(codelink_testkit::mmdb::country_db(&[
            ("203.0.113.0".parse().unwrap(), 24, "NZ"),
            ("198.51.100.0".parse().unwrap(), 24, "DE"),
            ("2001:db8::".parse().unwrap(), 32, "JP"),
        ]))
        .unwrap();
        let ip: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let start = Instant::now();
        for _ in 0..n {
            assert!(std::hint::black_box(geo.country(std::hint::black_box(ip))).is_some());
        }
        let per = start.elapsed().as_nanos() / u128::from(n as u64);
        println!("GeoIP lookup (IPv4 /24 in an IPv6 tree): {per} ns");
        // A database of a realistic size (GeoLite2-Country holds some
        // hundreds of thousands of networks), looked up at random.
        let mut x: u32 = 0x9E37_79B9;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let networks: Vec<(std::net::IpAddr, u8, &str)> = (0..300_000)
            .map(|_| (std::net::Ipv4Addr::from(next() & !0xff).into(), 24, "DE"))
            .collect();
        let db = codelink_testkit::mmdb::country_db(&networks);
        let size = db.len();
        let geo = crate::geoip::GeoIp::from_bytes(db).unwrap();
        let ips: Vec<std::net::IpAddr> = (0..n)
            .map(|i| networks[(next() as usize + i as usize) % networks.len()].0)
            .collect();
        let start = Instant::now();
        for ip in &ips {
            assert!(std::hint::black_box(geo.country(*ip)).is_some());
        }
        let per = start.elapsed().as_nanos() / u128::from(n as u64);
        println!(
            "GeoIP lookup, 300 000 networks ({} MB), random addresses: {per} ns",
            size >> 20
        );
        // A user agent not seen before: classified, then cached.
        let uas: Vec<String> = (0..20_000)
            .map(|i| BENCH_UA.replace("17_1_2", &format!("17_{}_{}", i / 100, i % 100)))
            .collect();
        let start = Instant::now();
        for ua in &uas {
            std::hint::black_box(clients.facts(ua.as_bytes()));
        }
        let per = start.elapsed().as_nanos() / uas.len() as u128;
        println!("a new user agent (classified and cached): {per} ns");
    }
}

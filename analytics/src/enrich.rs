//! Turning a [`RawScan`] into a stored [`Scan`]: user-agent classification, IP
//! anonymisation, referrer host, and the per-day unique flag. Runs in the
//! recorder task, never on the redirect path.

use crate::classify;
use crate::event::{RawScan, Scan};
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
    clients: HashMap<String, classify::Client>,
}

/// Entries kept in the user-agent cache before it starts over.
const CLIENT_CACHE: usize = 20_000;

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    pub fn new() -> Self {
        Self {
            day: 0,
            seen: HashSet::new(),
            hasher: Default::default(),
            clients: HashMap::new(),
        }
    }

    pub fn enrich(&mut self, raw: RawScan) -> Scan {
        let ts_ms = raw.scan_id.unix_ms();
        let client = self.classify(&raw.user_agent);
        let bot_reason = match (&client.bot, raw.request_bot) {
            (Some(name), _) => format!("ua:{name}"),
            (None, Some(b)) => b.reason().to_string(),
            (None, None) => String::new(),
        };
        let is_unique =
            bot_reason.is_empty() && self.first_today(ts_ms, &raw.code, &raw.visitor_id);
        Scan {
            scan_id: raw.scan_id.to_string(),
            ts_ms,
            code: raw.code,
            channel: raw.channel,
            visitor_id: raw.visitor_id,
            ip_prefix: anonymise(raw.ip),
            user_agent: truncate(raw.user_agent, MAX_UA),
            device: client.device.to_string(),
            os: client.os,
            browser: client.browser,
            in_app: client.in_app.to_string(),
            referrer_host: referrer_host(&raw.referer),
            country: raw.country,
            source: raw.source.as_str().to_string(),
            bot_reason,
            is_unique,
        }
    }

    fn classify(&mut self, user_agent: &str) -> classify::Client {
        if let Some(c) = self.clients.get(user_agent) {
            return c.clone();
        }
        if self.clients.len() >= CLIENT_CACHE {
            self.clients.clear();
        }
        let c = classify::classify(user_agent);
        self.clients.insert(user_agent.to_string(), c.clone());
        c
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
        self.seen.insert(self.hasher.hash_one((code, visitor)))
    }
}

/// IPv4 → its /24 network, IPv6 → its /48 network, written as an address.
pub fn anonymise(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            // Written by hand: this runs once per scan, and `format!` is slow.
            let mut out = String::with_capacity(15);
            for octet in &v4.octets()[..3] {
                push_decimal(&mut out, *octet);
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

fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push((b'0' + n / 100) as char);
    }
    if n >= 10 {
        out.push((b'0' + n / 10 % 10) as char);
    }
    out.push((b'0' + n % 10) as char);
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

//! What the hot path may need to know about the browser behind a request:
//! device, OS and in-app browser, from its user agent.
//!
//! Classifying a user agent (`codelink_analytics::classify::classify`) takes
//! microseconds; the answers are kept in a bounded cache keyed by the UA, so
//! a redirect that needs them (a code with device, OS or in-app routing
//! rules) pays a hash and a shard read for every UA seen before. Nothing
//! here runs for a code that does not need it.

use codelink_analytics::classify;
use quick_cache::sync::Cache;

/// UAs remembered (each key at most [`MAX_UA`] bytes: about 5 MiB at most).
pub const CAPACITY: usize = 10_000;
/// Only this many bytes of a UA are looked at (as the scan keeps).
pub const MAX_UA: usize = 512;

/// The device kinds routing rules name (`codelink_shared::route::DEVICES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// iPhone, iPad, iPod (iOS and iPadOS).
    Ios,
    Android,
    /// A desktop-class browser (Windows, macOS, Linux, ChromeOS).
    Desktop,
    /// Anything else: bots, TVs, consoles, other phones, unknown.
    Other,
}

impl Device {
    /// The index of its name in `codelink_shared::route::DEVICES` (`None`: Other).
    pub fn index(self) -> Option<usize> {
        match self {
            Device::Ios => Some(0),
            Device::Android => Some(1),
            Device::Desktop => Some(2),
            Device::Other => None,
        }
    }
}

/// The operating systems routing rules name (`codelink_shared::route::OSES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Ios,
    Android,
    Windows,
    Macos,
    Linux,
    Chromeos,
    Other,
}

impl Os {
    fn of(name: &str) -> Os {
        match name {
            "iOS" => Os::Ios,
            "Android" => Os::Android,
            "Windows" => Os::Windows,
            "Mac OSX" => Os::Macos,
            "Linux" => Os::Linux,
            "ChromeOS" => Os::Chromeos,
            _ => Os::Other,
        }
    }

    /// The index of its name in `codelink_shared::route::OSES` (`None`: Other).
    pub fn index(self) -> Option<usize> {
        match self {
            Os::Ios => Some(0),
            Os::Android => Some(1),
            Os::Windows => Some(2),
            Os::Macos => Some(3),
            Os::Linux => Some(4),
            Os::Chromeos => Some(5),
            Os::Other => None,
        }
    }
}

/// What a user agent says, as routing (and the in-app interstitial) needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFacts {
    pub device: Device,
    pub os: Os,
    /// `""`, or one of `codelink_analytics::classify::IN_APPS`.
    pub in_app: &'static str,
    /// The classifier calls the UA a bot (then device and OS are `Other`).
    pub bot: bool,
}

impl ClientFacts {
    pub fn of(user_agent: &str) -> Self {
        let c = classify::classify(user_agent);
        if c.bot.is_some() {
            return Self {
                device: Device::Other,
                os: Os::Other,
                in_app: "",
                bot: true,
            };
        }
        let os = Os::of(&c.os);
        let device = match (os, c.device) {
            (Os::Ios, _) => Device::Ios,
            (Os::Android, _) => Device::Android,
            (_, "desktop") => Device::Desktop,
            _ => Device::Other,
        };
        Self {
            device,
            os,
            in_app: c.in_app,
            bot: false,
        }
    }
}

/// The cache of [`ClientFacts`] by user agent.
pub struct Clients {
    cache: Cache<Box<str>, ClientFacts>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl Clients {
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: Cache::new(capacity.max(1)),
        }
    }

    /// The facts of a user agent (its first [`MAX_UA`] bytes): from the
    /// cache, else classified once and kept.
    pub fn facts(&self, user_agent: &[u8]) -> ClientFacts {
        let ua = &user_agent[..user_agent.len().min(MAX_UA)];
        let ua = match std::str::from_utf8(ua) {
            Ok(ua) => ua,
            // Cut inside a character, or not UTF-8 at all: the valid prefix.
            Err(e) => std::str::from_utf8(&ua[..e.valid_up_to()]).unwrap_or(""),
        };
        if let Some(facts) = self.cache.get(ua) {
            return facts;
        }
        let facts = ClientFacts::of(ua);
        self.cache.insert(Box::from(ua), facts);
        facts
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const INSTAGRAM_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240305.019; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.105 Mobile Safari/537.36 Instagram 321.0.0.32.111 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 8; shiba; shiba; en_US; 574326112)";
    const MAC_FIREFOX: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0";

    #[test]
    fn facts_of_real_user_agents() {
        let clients = Clients::new(100);
        let f = clients.facts(IPHONE.as_bytes());
        assert_eq!(
            (f.device, f.os, f.in_app, f.bot),
            (Device::Ios, Os::Ios, "", false)
        );
        let f = clients.facts(INSTAGRAM_ANDROID.as_bytes());
        assert_eq!(
            (f.device, f.os, f.in_app),
            (Device::Android, Os::Android, "instagram")
        );
        let f = clients.facts(MAC_FIREFOX.as_bytes());
        assert_eq!((f.device, f.os, f.in_app), (Device::Desktop, Os::Macos, ""));
        let f = clients.facts(b"curl/8.5.0");
        assert!(f.bot);
        assert_eq!(f.device, Device::Other);
        assert_eq!(clients.len(), 4);
        // Asked again: from the cache, the same answer.
        assert_eq!(clients.facts(IPHONE.as_bytes()).device, Device::Ios);
        assert_eq!(clients.len(), 4);
        // Not UTF-8: the valid prefix is classified, no panic.
        let mut bytes = IPHONE.as_bytes().to_vec();
        bytes.push(0xff);
        assert_eq!(clients.facts(&bytes).device, Device::Ios);
    }

    #[test]
    fn indexes_follow_the_rule_vocabulary() {
        use codelink_shared::route::{DEVICES, OSES};
        let devices = [Device::Ios, Device::Android, Device::Desktop];
        for (i, d) in devices.iter().enumerate() {
            assert_eq!(d.index(), Some(i), "{}", DEVICES[i]);
        }
        let oses = [
            Os::Ios,
            Os::Android,
            Os::Windows,
            Os::Macos,
            Os::Linux,
            Os::Chromeos,
        ];
        assert_eq!(oses.len(), OSES.len());
        for (i, o) in oses.iter().enumerate() {
            assert_eq!(o.index(), Some(i));
        }
    }
}

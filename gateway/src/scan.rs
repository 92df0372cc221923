//! Capturing a scan on the redirect path: copy the request facts the recorder
//! needs, decide what only the request can tell (HEAD, prefetch, per-IP rate),
//! and find or mint the visitor id. No parsing beyond that, no awaiting.

use crate::config::Config;
use crate::geoip::GeoIp;
use crate::request::Request;
use codelink_analytics::event::{
    version_after, HeaderSigns, RawScan, RequestBot, Source, Step, MAX_UNKNOWN_CHANNEL,
};
use codelink_analytics::ScanId;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

pub const VISITOR_COOKIE: &str = "cl_vid";
const MAX_UA: usize = 512;
/// One year: the visitor cookie is first-party and long-lived.
const VISITOR_MAX_AGE: u32 = 365 * 24 * 3600;
const MAX_REFERER: usize = 1024;

/// What the redirect decided about a scan beyond its code and channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routed<'a> {
    /// The name of the routing rule that chose the destination, or "".
    pub route: &'a str,
    /// The country, when the redirect already found it ([`ScanCapture::country`]);
    /// `None`: capture finds it.
    pub country: Option<Option<[u8; 2]>>,
}

pub struct ScanCapture {
    secret: Vec<u8>,
    client_ip_header: Option<HeaderName>,
    country_header: HeaderName,
    geoip: Option<GeoIp>,
    secure_cookie: bool,
    /// What follows `cl_vid={id}.{tag}` in every `Set-Cookie` (built once:
    /// `format!` per new visitor was the largest cost of a capture).
    cookie_attributes: String,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// A per-IP limiter from a rate and burst that `Config::validate` checked (> 0).
pub fn keyed_limiter(per_second: u32, burst: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

impl ScanCapture {
    pub fn new(config: &Config, secret: String, public_base: &str) -> anyhow::Result<Self> {
        let header = |name: &str| {
            HeaderName::try_from(name.to_ascii_lowercase())
                .map_err(|_| anyhow::anyhow!("{name:?} is not a header name"))
        };
        Ok(Self {
            secret: secret.into_bytes(),
            client_ip_header: config.client_ip_header.as_deref().map(header).transpose()?,
            country_header: header(&config.country_header)?,
            geoip: config.geoip_db.as_deref().map(GeoIp::open).transpose()?,
            secure_cookie: public_base.starts_with("https://"),
            cookie_attributes: cookie_attributes(public_base.starts_with("https://")),
            limiter: keyed_limiter(config.scan_rate_per_ip, config.scan_burst_per_ip),
        })
    }

    /// The client's address: the trusted header when configured, else the peer.
    pub fn client_ip(&self, req: &Request, peer: SocketAddr) -> IpAddr {
        client_ip(req, self.client_ip_header.as_ref()).unwrap_or(peer.ip())
    }

    pub fn limiter(&self) -> &DefaultKeyedRateLimiter<IpAddr> {
        &self.limiter
    }

    /// The visitor's country: the trusted CDN header, else (with
    /// `--geoip-db`) the database's answer for the client address.
    pub fn country(&self, req: &Request, peer: SocketAddr) -> Option<[u8; 2]> {
        if let Some(c) = country(req.headers().get(&self.country_header)) {
            return Some(c);
        }
        let geoip = self.geoip.as_ref()?;
        geoip.country(self.client_ip(req, peer))
    }

    /// The scan of this request, and the `Set-Cookie` for a visitor seen for the first time.
    pub fn capture(
        &self,
        req: &Request,
        peer: SocketAddr,
        scan_id: ScanId,
        code: &str,
        channel: &str,
        unknown_channel: &str,
    ) -> (RawScan, Option<HeaderValue>) {
        self.capture_routed(
            req,
            peer,
            scan_id,
            (code, channel, unknown_channel),
            Routed::default(),
        )
    }

    /// [`Self::capture`] with what the redirect's routing decided; the
    /// names are the code, the channel and the unknown channel asked for.
    pub fn capture_routed(
        &self,
        req: &Request,
        peer: SocketAddr,
        scan_id: ScanId,
        (code, channel, unknown_channel): (&str, &str, &str),
        routed: Routed<'_>,
    ) -> (RawScan, Option<HeaderValue>) {
        let headers = req.headers();
        let text = |name: &HeaderName, max: usize| -> String {
            let v = headers.get(name).map(HeaderValue::as_bytes).unwrap_or(b"");
            let v = &v[..v.len().min(max)];
            match std::str::from_utf8(v) {
                Ok(v) => v.to_owned(),
                Err(_) => String::from_utf8_lossy(v).into_owned(),
            }
        };
        let ip = self.client_ip(req, peer);
        let user_agent = text(&header::USER_AGENT, MAX_UA);
        let request_bot = if req.method() == Method::HEAD {
            Some(RequestBot::Head)
        } else if is_prefetch(req) {
            Some(RequestBot::Prefetch)
        } else if self.limiter.check_key(&ip).is_err() {
            Some(RequestBot::Rate)
        } else {
            None
        };
        // Only a cookie this gateway signed names the visitor: a made-up one
        // gets a new id (and cookie), so a client cannot pose as a visitor
        // (say, one whose scan would be credited at checkout).
        let cookie_id = visitor_cookie(req).and_then(|v| self.verified(v));
        let (visitor_id, set_cookie) = match cookie_id {
            Some(id) => (id.to_string(), None),
            None => {
                let id = self.visitor_hash(scan_id.unix_ms() / 86_400_000, ip, &user_agent);
                let cookie = self.cookie(&id);
                (id, cookie)
            }
        };
        let raw = RawScan {
            scan_id,
            code: code.to_string(),
            channel: channel.to_string(),
            source: source(req),
            ip,
            user_agent,
            referer: text(&header::REFERER, MAX_REFERER),
            country: match routed.country.unwrap_or_else(|| self.country(req, peer)) {
                Some([a, b]) => String::from_iter([char::from(a), char::from(b)]),
                None => String::new(),
            },
            visitor_id,
            request_bot,
            signs: HeaderSigns {
                visitor_cookie: cookie_id.is_some(),
                ..self.signs(req)
            },
            unknown_channel: unknown_channel_name(unknown_channel),
            step: Step::Redirect,
            route: routed.route.to_string(),
        };
        (raw, set_cookie)
    }

    /// A follow-up of a scan (a follower leaving the escape page): counted
    /// per code by the recorder, never stored as a scan, so it carries no
    /// request facts.
    pub fn follow_up(scan_id: ScanId, code: &str, step: Step) -> RawScan {
        RawScan {
            scan_id,
            code: code.to_string(),
            channel: String::new(),
            source: Source::Link,
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            user_agent: String::new(),
            referer: String::new(),
            country: String::new(),
            visitor_id: String::new(),
            request_bot: None,
            signs: HeaderSigns::default(),
            unknown_channel: String::new(),
            step,
            route: String::new(),
        }
    }

    /// The opt-in visitor token a code appends to its destination:
    /// `{visitor id}.{tag}`, the tag 64 bits of SHA-256 over the secret, a
    /// label of its own (so it is not the `cl_vid` cookie's value) and the id.
    /// A brand sends it back as a conversion's `visitor_id`.
    pub fn visitor_token(&self, visitor_id: &str) -> String {
        let tag = self.tag_for(b"\0cl_vt\0", visitor_id);
        format!("{visitor_id}.{}", std::str::from_utf8(&tag).unwrap_or(""))
    }

    /// The visitor id of a conversion's `visitor_id`: a visitor token this
    /// gateway made is read back to the id it names; a value shaped like a
    /// token whose tag does not hold is refused (`Err`); anything else is
    /// the brand's own id, kept as given.
    pub fn visitor_of(&self, value: &str) -> Result<String, ()> {
        match value.split_once('.') {
            Some((id, tag))
                if id.len() == 32
                    && tag.len() == 16
                    && id.bytes().all(|b| b.is_ascii_hexdigit())
                    && tag.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                if crate::keys::matches(tag.as_bytes(), &self.tag_for(b"\0cl_vt\0", id)) {
                    Ok(id.to_string())
                } else {
                    Err(())
                }
            }
            _ => Ok(value.to_string()),
        }
    }

    /// Which of the headers every real browser sends this request carried
    /// (judged off the hot path, by the recorder).
    fn signs(&self, req: &Request) -> HeaderSigns {
        const SEC_CH_UA: HeaderName = HeaderName::from_static("sec-ch-ua");
        const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
        const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
        let headers = req.headers();
        let ch = headers.get(SEC_CH_UA).map(HeaderValue::as_bytes);
        HeaderSigns {
            secure: self.secure_cookie || is_loopback_host(req),
            accept: headers.contains_key(header::ACCEPT),
            accept_language: headers.contains_key(header::ACCEPT_LANGUAGE),
            sec_fetch: headers.contains_key(SEC_FETCH_MODE) || headers.contains_key(SEC_FETCH_DEST),
            client_hints: ch.is_some(),
            chromium_brand: ch.map_or(0, |v| version_after(v, b"\"Chromium\";v=\"")),
            headless_brand: ch.is_some_and(|v| find(v, b"HeadlessChrome").is_some()),
            visitor_cookie: false,
        }
    }

    /// A visitor without a cookie: a hash of IP and user agent with a secret
    /// that changes daily, so it cannot be reversed or followed across days.
    /// The same value goes into the cookie, so the visitor keeps it afterwards.
    fn visitor_hash(&self, day: u64, ip: IpAddr, user_agent: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(day.to_le_bytes());
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        h.update([0]);
        h.update(user_agent.as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = h.finalize();
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }

    fn cookie(&self, id: &str) -> Option<HeaderValue> {
        let tag = self.tag(id);
        let mut value = Vec::with_capacity(
            VISITOR_COOKIE.len() + id.len() + tag.len() + 2 + self.cookie_attributes.len(),
        );
        value.extend_from_slice(VISITOR_COOKIE.as_bytes());
        value.push(b'=');
        value.extend_from_slice(id.as_bytes());
        value.push(b'.');
        value.extend_from_slice(&tag);
        value.extend_from_slice(self.cookie_attributes.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
    }

    /// The cookie's signature of a visitor id: 64 bits of SHA-256 over the
    /// server secret and the id (the id has a fixed length, so no other
    /// message shares the prefix).
    fn tag(&self, id: &str) -> [u8; 16] {
        self.tag_for(b"\0cl_vid\0", id)
    }

    /// 64 bits of SHA-256 over the secret, a label and `id`, in hex.
    fn tag_for(&self, label: &[u8], id: &str) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(label);
        h.update(id.as_bytes());
        let digest = h.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, b) in digest[..8].iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out
    }

    /// The visitor id of a cookie value `{id}.{tag}` whose tag this gateway
    /// made; `None` for anything else.
    fn verified<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (id, tag) = value.split_once('.')?;
        let ok = id.len() == 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && tag.len() == 16
            && crate::keys::matches(tag.as_bytes(), &self.tag(id));
        ok.then_some(id)
    }
}

/// The visitor cookie's attributes after its value.
fn cookie_attributes(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("; Max-Age={VISITOR_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// The `cl_vid` cookie value, if not absurdly long (it is verified by
/// [`ScanCapture::verified`]).
fn visitor_cookie(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VISITOR_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() <= 64)
}

fn client_ip(req: &Request, header: Option<&HeaderName>) -> Option<IpAddr> {
    let value = req.headers().get(header?)?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

fn is_prefetch(req: &Request) -> bool {
    // Names made once, not parsed from text on every scan.
    const NAMES: [HeaderName; 4] = [
        HeaderName::from_static("purpose"),
        HeaderName::from_static("sec-purpose"),
        HeaderName::from_static("x-purpose"),
        HeaderName::from_static("x-moz"),
    ];
    NAMES.iter().any(|h| {
        req.headers().get(h).is_some_and(|v| {
            v.as_bytes().starts_with(b"prefetch") || v.as_bytes().starts_with(b"preview")
        })
    })
}

/// The name of a channel the code does not have, as counted: lowercase,
/// slug characters only, at most `MAX_UNKNOWN_CHANNEL` bytes; `(invalid)`
/// when nothing is left; empty when there was none.
fn unknown_channel_name(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let name: String = raw
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .take(MAX_UNKNOWN_CHANNEL)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect();
    if name.is_empty() {
        "(invalid)".to_string()
    } else {
        name
    }
}

/// Browsers treat loopback hosts as secure origins (they send `Sec-Fetch-*`
/// and client hints to them over plain http).
fn is_loopback_host(req: &Request) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .map(HeaderValue::as_bytes)
        .unwrap_or(b"");
    host.starts_with(b"127.") || host.starts_with(b"localhost") || host.starts_with(b"[::1]")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// QR images encode `?qr=1`: a scan of the image, not a tap on the link.
/// The creator's bio page links with `?src=bio`: a tap on that page.
fn source(req: &Request) -> Source {
    let Some(query) = req.uri().query() else {
        return Source::Link;
    };
    for p in query.split('&') {
        match p {
            "qr=1" => return Source::Qr,
            crate::bio::MARKER => return Source::Bio,
            _ => {}
        }
    }
    Source::Link
}

/// The country header's value, uppercase, if it is two letters (or a letter
/// and a digit: Cloudflare's `T1` for Tor).
fn country(value: Option<&HeaderValue>) -> Option<[u8; 2]> {
    match value.map(HeaderValue::as_bytes) {
        Some([a, b]) if a.is_ascii_alphabetic() && b.is_ascii_alphanumeric() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

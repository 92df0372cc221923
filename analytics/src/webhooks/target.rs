//! Which URLs may be webhook endpoints, and which addresses an attempt may
//! connect to. Without `allow_private`, loopback, private, link-local,
//! shared (CGNAT), unspecified and multicast addresses are refused, both
//! when the endpoint is created (a literal address, `localhost`) and when an
//! attempt resolves its host (so a name that points inside later is refused
//! too): a webhook URL must not reach into the gateway's own network.

use std::net::IpAddr;

/// The longest endpoint URL.
pub const MAX_URL: usize = 2048;

/// The URL as it will be used, or what is wrong with it.
pub fn check_url(raw: &str, allow_private: bool) -> Result<String, String> {
    if raw.len() > MAX_URL {
        return Err(format!("at most {MAX_URL} bytes"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http:// or https://".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials; the signature authenticates codelink".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let host = match url.host() {
        Some(h) => h,
        None => return Err("must name a host".into()),
    };
    if !allow_private {
        let refused = match host {
            url::Host::Ipv4(a) => !public(IpAddr::V4(a)),
            url::Host::Ipv6(a) => !public(IpAddr::V6(a)),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
        };
        if refused {
            return Err(
                "a loopback, private or link-local address is not allowed (the gateway's --webhook-allow-private allows it)"
                    .into(),
            );
        }
    }
    Ok(url.to_string())
}

/// Whether `ip` is a public unicast address.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let s = a.segments();
            // IPv4 written inside IPv6: IPv4-compatible (::a.b.c.d), NAT64
            // (64:ff9b::/96) and 6to4 (2002:aabb:ccdd::/48) reach that IPv4
            // address through a translator or relay: judged as it.
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                std::net::Ipv4Addr::new(a, b, c, d)
            };
            if s[..6] == [0; 6] && !a.is_loopback() && !a.is_unspecified() {
                return public(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return public(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[0] == 0x2002 {
                return public(IpAddr::V4(embedded(s[1], s[2])));
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_refused() {
        for bad in [
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::127.0.0.1]/",
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[64:ff9b:1::a00:1]/",
            "http://[2002:7f00:1::1]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://[fec0::1]/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
            assert!(check_url(bad, true).is_ok(), "{bad}");
        }
        for bad in [
            "ftp://example.com/",
            "example.com/x",
            "https://u:p@example.com/",
            "https://example.com/#x",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(check_url(&long, true).is_err());
        assert_eq!(
            check_url("https://Example.com/hook?a=1", false).unwrap(),
            "https://example.com/hook?a=1"
        );
        assert!(check_url("http://93.184.216.34/", false).is_ok());
        assert!(check_url("http://[64:ff9b::5db8:d822]/", false).is_ok());
        assert!(check_url("http://[2002:5db8:d822::1]/", false).is_ok());
        assert!(check_url("http://[2606:4700::1111]/", false).is_ok());
    }
}

//! Sets of IP networks (CIDR blocks), for telling datacenter traffic apart:
//! `--datacenter-ranges FILE` loads the ranges cloud providers publish, and a
//! scan from one of them is `datacenter` (a suspect, see
//! [`crate::event::Verdict`]). Matched against the full address, before it is
//! cut to its /24 (/48).
//!
//! The file is text: one network per line (`203.0.113.0/24`,
//! `2600:1f00::/40`, or a bare address), `#` starts a comment, blank lines are
//! skipped, and only the first whitespace-separated field of a line is read
//! (so `cidr  provider  region` lists work as they are).

use std::net::IpAddr;

/// Networks as sorted, merged, inclusive ranges of addresses (IPv4 apart
/// from IPv6); a lookup is a binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// A line of a ranges file that is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line}: {text:?} is not an IP network (expected e.g. 203.0.113.0/24 or 2600:1f00::/40)"
)]
pub struct ParseError {
    pub line: usize,
    pub text: String,
}

impl IpRanges {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let Some(field) = line.split_whitespace().next() else {
                continue;
            };
            let bad = || ParseError {
                line: i + 1,
                text: field.chars().take(100).collect(),
            };
            let (addr, len) = match field.split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
                None => (field, None),
            };
            match addr.parse::<IpAddr>().map_err(|_| bad())? {
                IpAddr::V4(a) => {
                    let len = u32::from(len.unwrap_or(32));
                    if len > 32 {
                        return Err(bad());
                    }
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let start = u32::from(a) & mask;
                    v4.push((start, start | !mask));
                }
                IpAddr::V6(a) => {
                    let len = u32::from(len.unwrap_or(128));
                    if len > 128 {
                        return Err(bad());
                    }
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    let start = u128::from(a) & mask;
                    v6.push((start, start | !mask));
                }
            }
        }
        Ok(Self {
            v4: merged(v4),
            v6: merged(v6),
        })
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address
    /// is looked up as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => within(&self.v4, u32::from(v4)),
                None => within(&self.v6, u128::from(a)),
            },
        }
    }

    /// How many merged ranges are held (IPv4, IPv6).
    pub fn len(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn merged<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.succ() => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn within<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // The last range starting at or before x.
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && x <= ranges[i - 1].1
}

mod num_like {
    /// The next value, saturating (for merging adjacent ranges).
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_edges() {
        let r = IpRanges::parse(
            "# cloud ranges\n\
             3.5.140.0/22   aws eu-west-1\n\
             \n\
             34.64.0.0/10 # gcp\n\
             198.51.100.7\n\
             2600:1f00::/40\n\
             0.0.0.0/0x\n",
        );
        assert_eq!(
            r,
            Err(ParseError {
                line: 7,
                text: "0.0.0.0/0x".into()
            })
        );
        let r = IpRanges::parse(
            "3.5.140.0/22 aws\n34.64.0.0/10\n198.51.100.7\n2600:1f00::/40\n3.5.142.0/23\n",
        )
        .unwrap();
        assert_eq!(r.len(), (3, 1), "3.5.142.0/23 lies inside 3.5.140.0/22");
        assert!(r.contains(ip("3.5.140.0")));
        assert!(r.contains(ip("3.5.143.255")));
        assert!(!r.contains(ip("3.5.144.0")));
        assert!(!r.contains(ip("3.5.139.255")));
        assert!(r.contains(ip("34.127.255.1")));
        assert!(!r.contains(ip("34.128.0.0")));
        assert!(r.contains(ip("198.51.100.7")));
        assert!(!r.contains(ip("198.51.100.8")));
        assert!(r.contains(ip("::ffff:198.51.100.7")));
        assert!(r.contains(ip("2600:1f00:ff::1")));
        assert!(!r.contains(ip("2600:1f01::1")));
        assert!(!r.contains(ip("203.0.113.9")));
    }

    #[test]
    fn adjacent_and_whole_space() {
        let r = IpRanges::parse("10.0.0.0/9\n10.128.0.0/9\n").unwrap();
        assert_eq!(r.len(), (1, 0));
        let all = IpRanges::parse("0.0.0.0/0\n::/0\n").unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(all.contains(ip("::1")));
        assert!(IpRanges::parse("1.2.3.4/33").is_err());
        assert!(IpRanges::parse("::/129").is_err());
        assert!(IpRanges::parse("").unwrap().is_empty());
    }
}

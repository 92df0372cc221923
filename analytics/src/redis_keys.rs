//! Redis key names in both modes, and the hash slot of a key.
//!
//! Single server (`--redis-url`): every key is `{prefix}:…` exactly as
//! before clusters existed, so existing data keeps working.
//!
//! Redis Cluster (`--redis-cluster`): a script or a `MULTI` may only touch
//! keys of one hash slot, so keys carry hash tags (the part between the
//! first `{` and the next `}` is what Redis hashes):
//! - a code's scan state, written by every batch, is spread over the masters
//!   by code: `p:stats:{code}`, `p:uv:{code}:{day}`, `p:lv:{code}:{visitor}`,
//!   and a batch's once-marker per slot part `p:batch:{code}:{batch id}`
//!   (the part's first code, so it lands in that part's slot);
//! - everything else (claims, customers, purchases, refunds, reviews, fraud
//!   counts, the webhook outbox, codes and their version token, keys,
//!   owners, logos, integrations, console sessions) is under one tag,
//!   `{p}:…`: one slot, one master. Those are touched together by scripts
//!   and are rare next to scans.

/// The names of the keys the live store and the code store use.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: String,
    global: String,
    cluster: bool,
}

impl KeyLayout {
    pub fn new(prefix: &str, cluster: bool) -> Self {
        Self {
            prefix: prefix.to_string(),
            global: global_prefix(prefix, cluster),
            cluster,
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The prefix of every key that is not a code's scan state: `p`, or
    /// `{p}` on a cluster (one slot).
    pub fn global(&self) -> &str {
        &self.global
    }

    /// A code's counters (hash).
    pub fn stats(&self, code: &str) -> String {
        self.per_code("stats", code)
    }

    /// A code's human visitors of one day (HyperLogLog).
    pub fn uv(&self, code: &str, day: impl std::fmt::Display) -> String {
        format!("{}:{day}", self.per_code("uv", code))
    }

    /// A visitor's latest human scan of a code.
    pub fn lv(&self, code: &str, visitor: &str) -> String {
        format!("{}:{visitor}", self.per_code("lv", code))
    }

    /// The once-marker of a batch (single server), or of the part of a
    /// batch in the slot of `code` (cluster).
    pub fn batch(&self, id: &str, code: &str) -> String {
        if self.cluster {
            format!("{}:batch:{{{code}}}:{id}", self.prefix)
        } else {
            format!("{}:batch:{id}", self.prefix)
        }
    }

    fn per_code(&self, what: &str, code: &str) -> String {
        if self.cluster {
            format!("{}:{what}:{{{code}}}", self.prefix)
        } else {
            format!("{}:{what}:{code}", self.prefix)
        }
    }
}

/// `prefix`, or `{prefix}` on a cluster: the prefix of keys that must share
/// one slot (the gateway's code store uses it too).
pub fn global_prefix(prefix: &str, cluster: bool) -> String {
    if cluster {
        format!("{{{prefix}}}")
    } else {
        prefix.to_string()
    }
}

/// The hash slot Redis Cluster puts `key` in: CRC16 (XMODEM) of its hash tag
/// (the bytes between the first `{` and the next `}`, when not empty), else
/// of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(hashed) % 16384
}

fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values of `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        // And what the client routes by.
        for k in [
            "a",
            "codelink:stats:{x}",
            "{codelink}:conv:e1",
            "x{}y",
            "{{a}}",
        ] {
            assert_eq!(
                redis::cluster_routing::Slot::new(key_slot(k.as_bytes())),
                Some(redis::cluster_routing::Slot::for_key(k)),
                "{k}"
            );
        }
    }

    #[test]
    fn single_server_names_are_unchanged() {
        let k = KeyLayout::new("codelink", false);
        assert_eq!(k.stats("spring"), "codelink:stats:spring");
        assert_eq!(k.uv("spring", 20_000), "codelink:uv:spring:20000");
        assert_eq!(k.lv("spring", "v1"), "codelink:lv:spring:v1");
        assert_eq!(k.batch("b1", "spring"), "codelink:batch:b1");
        assert_eq!(k.global(), "codelink");
        let c = KeyLayout::new("codelink", true);
        assert_eq!(c.stats("spring"), "codelink:stats:{spring}");
        assert_eq!(c.lv("spring", "v1"), "codelink:lv:{spring}:v1");
        assert_eq!(c.batch("b1", "spring"), "codelink:batch:{spring}:b1");
        assert_eq!(c.global(), "{codelink}");
        assert_eq!(key_slot(c.stats("spring").as_bytes()), key_slot(b"spring"));
    }
}

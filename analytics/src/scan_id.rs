//! Scan ids: unique per scan and time-ordered.
//!
//! 128 bits: 48 bits of Unix milliseconds, 32 bits chosen at random when the
//! process starts (so two gateway instances never collide), 48 bits of a
//! per-process counter. Written as 26 characters of Crockford base32 (like a
//! ULID), so the text form sorts in the same order as the number.

use crate::Text;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const TEXT_LEN: usize = 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanId(pub u128);

impl ScanId {
    pub fn from_parts(unix_ms: u64, node: u32, counter: u64) -> Self {
        let ms = (unix_ms & 0xFFFF_FFFF_FFFF) as u128;
        let counter = (counter & 0xFFFF_FFFF_FFFF) as u128;
        Self((ms << 80) | ((node as u128) << 48) | counter)
    }

    /// Milliseconds since the Unix epoch at which the scan happened.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The 26-character text form, without allocating.
    pub fn encode(self) -> [u8; TEXT_LEN] {
        let mut out = [0u8; TEXT_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        out
    }

    /// The id's text as a [`Text`] (one allocation, no formatting machinery).
    pub fn to_text(self) -> Text {
        let text = self.encode();
        // The alphabet is ASCII, so this cannot fail.
        Text::from(std::str::from_utf8(&text).unwrap_or_default())
    }

    /// Parses the text form (case-insensitive; `O`→0, `I`/`L`→1 as Crockford allows).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != TEXT_LEN {
            return None;
        }
        // 26 × 5 = 130 bits: the first character may carry only 3.
        if decode_char(bytes[0])? > 7 {
            return None;
        }
        let mut v: u128 = 0;
        for &b in bytes {
            v = (v << 5) | decode_char(b)? as u128;
        }
        Some(Self(v))
    }
}

fn decode_char(b: u8) -> Option<u8> {
    let b = b.to_ascii_uppercase();
    let b = match b {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u8)
}

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.encode();
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// Hands out scan ids; one per process, shared by all request handlers.
#[derive(Debug)]
pub struct ScanIdGenerator {
    node: u32,
    counter: AtomicU64,
}

impl ScanIdGenerator {
    pub fn new() -> Self {
        Self {
            node: rand::random(),
            counter: AtomicU64::new(rand::random::<u64>() & 0xFFFF_FFFF),
        }
    }

    /// The next id for a scan seen at `unix_ms`.
    pub fn next(&self, unix_ms: u64) -> ScanId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        ScanId::from_parts(unix_ms, self.node, n)
    }
}

impl Default for ScanIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let g = ScanIdGenerator::new();
        let a = g.next(1_700_000_000_000);
        let b = g.next(1_700_000_000_000);
        let c = g.next(1_700_000_000_001);
        assert_ne!(a, b);
        assert!(a.to_string() < c.to_string());
        assert!(b.to_string() < c.to_string());
        for id in [a, b, c] {
            let text = id.to_string();
            assert_eq!(text.len(), TEXT_LEN);
            assert_eq!(ScanId::parse(&text), Some(id));
            assert_eq!(ScanId::parse(&text.to_ascii_lowercase()), Some(id));
        }
        assert_eq!(a.unix_ms(), 1_700_000_000_000);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(ScanId::parse("short"), None);
        assert_eq!(ScanId::parse(&"U".repeat(26)), None);
        assert_eq!(ScanId::parse(&"Z".repeat(26)), None); // overflows 128 bits
    }
}

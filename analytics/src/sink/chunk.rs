//! How the embedded sink stores scan rows: in chunks, one redb entry per chunk
//! instead of one per scan, in a compact binary form.
//!
//! A chunk holds up to [`CHUNK_MAX`] consecutive scans of one batch (in the
//! order they arrived, which is nearly time order) spanning less than
//! [`CHUNK_SPAN_MS`]; its key is its smallest scan id. Scan ids start with the
//! time, so the scans with `from <= ts < to` are all in the chunks whose key
//! lies in `[from - CHUNK_SPAN_MS, to)`; a reader filters those by time and
//! sorts them.
//!
//! Encoding (little-endian): `version: u8 = 2`, `count: u32`, then per scan
//! `ts_ms: u64`, `is_unique: u8` and the 15 text fields of [`Scan`] in
//! declaration order (`route` last), each as `len: u16` + UTF-8 bytes.
//! Version 1 (before routing rules) has 14 text fields, no `route` (read as
//! empty); it is still read.

use crate::event::Scan;
use std::borrow::Borrow;

/// Scans per chunk, at most.
pub const CHUNK_MAX: usize = 1024;
/// A chunk's last scan is less than this many ms after its first.
pub const CHUNK_SPAN_MS: u64 = 1000;
const VERSION: u8 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("a scan field is {0} bytes, more than a chunk can hold")]
    FieldTooLong(usize),
    #[error("chunk format version {0} is unknown")]
    Version(u8),
    #[error("chunk is truncated or malformed")]
    Malformed,
}

/// Consecutive scans of a batch stored as one entry, and its key.
#[derive(Debug)]
pub struct Chunk<'a, S> {
    pub scans: &'a [S],
    /// The smallest scan id in `scans`.
    pub key: &'a str,
}

/// Splits `scans` into runs of at most [`CHUNK_MAX`] that span less than
/// [`CHUNK_SPAN_MS`]. No sorting: arrival order is close enough to time order
/// that the spans stay short.
pub fn chunks<S: Borrow<Scan>>(scans: &[S]) -> Vec<Chunk<'_, S>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < scans.len() {
        let first = scans[start].borrow();
        let (mut lo, mut hi, mut key) = (first.ts_ms, first.ts_ms, first.scan_id.as_str());
        let mut end = start + 1;
        while end < scans.len() && end - start < CHUNK_MAX {
            let s = scans[end].borrow();
            let (l, h) = (lo.min(s.ts_ms), hi.max(s.ts_ms));
            if h - l >= CHUNK_SPAN_MS {
                break;
            }
            (lo, hi) = (l, h);
            if s.scan_id.as_str() < key {
                key = &s.scan_id;
            }
            end += 1;
        }
        out.push(Chunk {
            scans: &scans[start..end],
            key,
        });
        start = end;
    }
    out
}

fn text_fields(s: &Scan) -> [&str; 15] {
    [
        &s.scan_id,
        &s.code,
        &s.channel,
        &s.visitor_id,
        &s.ip_prefix,
        &s.user_agent,
        &s.device,
        &s.os,
        &s.browser,
        &s.in_app,
        &s.referrer_host,
        &s.country,
        &s.source,
        &s.bot_reason,
        &s.route,
    ]
}

/// Appends the encoded chunk to `out`.
pub fn encode<S: Borrow<Scan>>(chunk: &[S], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    out.push(VERSION);
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    for scan in chunk {
        let scan = scan.borrow();
        out.extend_from_slice(&scan.ts_ms.to_le_bytes());
        out.push(u8::from(scan.is_unique));
        for field in text_fields(scan) {
            let len =
                u16::try_from(field.len()).map_err(|_| ChunkError::FieldTooLong(field.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(field.as_bytes());
        }
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        if self.0.len() < n {
            return Err(ChunkError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ChunkError> {
        self.take(N)?.try_into().map_err(|_| ChunkError::Malformed)
    }

    fn text(&mut self) -> Result<String, ChunkError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| ChunkError::Malformed)
    }
}

/// The scans of an encoded chunk, in the order they were stored.
pub fn decode(bytes: &[u8]) -> Result<Vec<Scan>, ChunkError> {
    let mut r = Reader(bytes);
    let [version] = r.array()?;
    if version != VERSION && version != 1 {
        return Err(ChunkError::Version(version));
    }
    let count = u32::from_le_bytes(r.array()?) as usize;
    // Each scan takes at least 9 + 14 × 2 bytes: a count beyond that is corrupt.
    if count > bytes.len() / 37 {
        return Err(ChunkError::Malformed);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let ts_ms = u64::from_le_bytes(r.array()?);
        let [unique] = r.array()?;
        out.push(Scan {
            ts_ms,
            is_unique: unique != 0,
            unknown_channel: String::new(),
            step: String::new(),
            scan_id: r.text()?,
            code: r.text()?,
            channel: r.text()?,
            visitor_id: r.text()?,
            ip_prefix: r.text()?,
            user_agent: r.text()?,
            device: r.text()?,
            os: r.text()?,
            browser: r.text()?,
            in_app: r.text()?,
            referrer_host: r.text()?,
            country: r.text()?,
            source: r.text()?,
            bot_reason: r.text()?,
            route: if version == 1 {
                String::new()
            } else {
                r.text()?
            },
        });
    }
    if !r.0.is_empty() {
        return Err(ChunkError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScanId;

    fn scan(ms: u64, n: u64) -> Scan {
        Scan {
            scan_id: ScanId::from_parts(ms, 7, n).to_string(),
            ts_ms: ms,
            code: "spring".into(),
            channel: if n.is_multiple_of(2) {
                "yt".into()
            } else {
                String::new()
            },
            visitor_id: format!("visitor{n:08}"),
            ip_prefix: "203.0.113.0".into(),
            user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Instagram 300.0"
                .into(),
            device: "mobile".into(),
            os: "iOS".into(),
            browser: "WebKit".into(),
            in_app: "instagram".into(),
            referrer_host: "l.instagram.com".into(),
            country: "DE".into(),
            source: "qr".into(),
            bot_reason: if n.is_multiple_of(3) {
                "rate".into()
            } else {
                String::new()
            },
            is_unique: n.is_multiple_of(5),
            unknown_channel: String::new(),
            step: String::new(),
            route: if n.is_multiple_of(4) {
                "ios-de".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn version_1_chunks_still_read_with_no_route() {
        // A version-1 chunk is a version-2 one without the last text field.
        let mut s = scan(1_700_000_000_000, 1);
        s.route = String::new();
        let mut bytes = Vec::new();
        encode(std::slice::from_ref(&s), &mut bytes).unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(&bytes[bytes.len() - 2..], &[0, 0]);
        bytes[0] = 1;
        bytes.truncate(bytes.len() - 2);
        assert_eq!(decode(&bytes).unwrap(), vec![s]);
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let scans: Vec<Scan> = (0..50).map(|n| scan(1_700_000_000_000 + n, n)).collect();
        assert!(scans.iter().any(|s| s.route == "ios-de"));
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), scans);
    }

    #[test]
    fn chunks_are_bounded_in_size_and_span_and_keyed_by_their_smallest_id() {
        let t = 1_700_000_000_000;
        // Slightly out of order (as two request threads hand scans over),
        // 2500 within 250 ms, then one a second later, then an early one.
        let mut scans: Vec<Scan> = (0..2500).map(|n| scan(t + n / 10, n)).collect();
        scans.swap(1, 2);
        scans.swap(1500, 1501);
        scans.push(scan(t + 1300, 9000));
        scans.push(scan(t + 200, 9001));
        let chunks = chunks(&scans);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.scans.len()).collect();
        // The late scan cannot join the third chunk (it would span 1096 ms), and
        // the early one after it cannot join the late one.
        assert_eq!(sizes, vec![1024, 1024, 452, 1, 1]);
        assert_eq!(
            chunks.iter().map(|c| c.scans.len()).sum::<usize>(),
            scans.len()
        );
        for c in &chunks {
            let min = c.scans.iter().map(|s| s.ts_ms).min().unwrap();
            let max = c.scans.iter().map(|s| s.ts_ms).max().unwrap();
            assert!(max - min < CHUNK_SPAN_MS);
            let smallest = c.scans.iter().map(|s| s.scan_id.as_str()).min().unwrap();
            assert_eq!(c.key, smallest);
        }
        // The first chunk starts with two swapped scans: its key is the smaller.
        assert_eq!(chunks[0].key, scans[0].scan_id);
        assert_eq!(chunks[4].key, scans[2501].scan_id);
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        let scans = [scan(1_700_000_000_000, 1)];
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(ChunkError::Malformed));
        let mut other = bytes.clone();
        other[0] = 9;
        assert_eq!(decode(&other), Err(ChunkError::Version(9)));
        let mut huge = bytes;
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Err(ChunkError::Malformed));
    }

    #[test]
    fn overlong_field_is_refused() {
        let mut s = scan(1_700_000_000_000, 1);
        s.user_agent = "x".repeat(70_000);
        let mut bytes = Vec::new();
        assert_eq!(
            encode(std::slice::from_ref(&s), &mut bytes),
            Err(ChunkError::FieldTooLong(70_000))
        );
    }
}

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
//! Encoding, version 3 (what this version writes): `version: u8 = 3`,
//! `count: varint`, `body_len: varint`, then the body compressed with raw
//! DEFLATE (RFC 1951). Varints are LEB128 (7 bits a byte, low first); signed
//! values are zigzagged first. The body is column by column:
//!
//! 1. the dictionary: `n: varint`, then `n` × (`len: varint` + UTF-8 bytes):
//!    every distinct value of the 14 text fields other than `scan_id`, each
//!    once, in the order first met;
//! 2. times: the first `ts_ms` as a varint, then each next one as the zigzag
//!    of its difference from the one before;
//! 3. `is_unique`: one byte (0 or 1) per scan;
//! 4. scan ids: `mode: u8`. Mode 1 (every id is the canonical 26-character
//!    text of a [`ScanId`]): per scan the zigzag of (id's ms − `ts_ms`), then
//!    the zigzag of the difference of the id's low 80 bits (node and
//!    counter) from the previous scan's (0 before the first). Mode 0
//!    (anything else): per scan `len: varint` + UTF-8 bytes;
//! 5. per text field, in declaration order (`code`, `channel`, `visitor_id`,
//!    `ip_prefix`, `user_agent`, `device`, `os`, `browser`, `in_app`,
//!    `referrer_host`, `country`, `source`, `bot_reason`, `route`), one
//!    dictionary index (varint) per scan.
//!
//! The low-cardinality fields cost a byte or less per scan after compression
//! (a column of repeated indexes deflates to almost nothing); a user agent
//! is stored once per chunk rather than once per scan.
//!
//! Versions 1 and 2 (still read; rewritten as version 3 only when a chunk is
//! rewritten, by erasure): `version: u8`, `count: u32`, then per scan
//! `ts_ms: u64`, `is_unique: u8` and the text fields in declaration order
//! with `scan_id` first, each as `len: u16` + UTF-8 bytes (little-endian).
//! Version 2 has 15 text fields (`route` last); version 1 (before routing
//! rules) 14, no `route` (read as empty).

use crate::event::Scan;
use crate::{ScanId, Text};
use foldhash::{HashMap, HashMapExt};
use std::borrow::Borrow;
use std::io::Write;

/// An encoded chunk is kept under this size where it can be: redb stores a
/// value larger than a page (4 KiB) in a run of pages rounded up to a power
/// of two, so a value of 34 KiB would take 64 KiB of the file. See
/// [`encode_fitted`].
pub const VALUE_FIT: usize = 32 * 1024 - 512;

/// Scans per chunk, at most.
pub const CHUNK_MAX: usize = 1024;
/// A chunk's last scan is less than this many ms after its first.
pub const CHUNK_SPAN_MS: u64 = 1000;
const VERSION: u8 = 3;
/// The uncompressed layout versions 1 and 2 use (still read).
const PLAIN_V2: u8 = 2;
const PLAIN_V1: u8 = 1;
/// Scan ids stored as text / as numbers relative to the time (see the module docs).
const IDS_TEXT: u8 = 0;
const IDS_PACKED: u8 = 1;
/// The low 80 bits of a scan id: its node and counter.
const LOW_80: u128 = (1 << 80) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("a scan field is {0} bytes, more than a chunk can hold")]
    FieldTooLong(usize),
    #[error("chunk format version {0} is unknown")]
    Version(u8),
    #[error("chunk is truncated or malformed")]
    Malformed,
}

impl From<ChunkError> for super::SinkError {
    fn from(e: ChunkError) -> Self {
        Self::Embedded(e.to_string())
    }
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

/// The text fields other than `scan_id`, in the order their columns are stored.
fn text_fields(s: &Scan) -> [&str; 14] {
    [
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

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u128);
    out.extend_from_slice(text.as_bytes());
}

/// The id as a number when its text is exactly the canonical form of one.
fn packed_id(text: &str) -> Option<ScanId> {
    ScanId::parse(text).filter(|id| id.encode() == text.as_bytes())
}

/// Appends the encoded chunk to `out` (version 3).
pub fn encode<S: Borrow<Scan>>(chunk: &[S], out: &mut Vec<u8>) -> Result<(), ChunkError> {
    let mut dict: HashMap<&str, u32> = HashMap::with_capacity(64);
    let mut words: Vec<&str> = Vec::new();
    let mut columns = vec![0u32; chunk.len() * 14];
    for (i, scan) in chunk.iter().enumerate() {
        let scan = scan.borrow();
        if scan.scan_id.len() > usize::from(u16::MAX) {
            return Err(ChunkError::FieldTooLong(scan.scan_id.len()));
        }
        for (f, field) in text_fields(scan).into_iter().enumerate() {
            if field.len() > usize::from(u16::MAX) {
                return Err(ChunkError::FieldTooLong(field.len()));
            }
            // Most fields repeat the previous scan's (one link, one app):
            // a comparison instead of a hash and a comparison.
            let at = f * chunk.len() + i;
            if i > 0 && words[columns[at - 1] as usize] == field {
                columns[at] = columns[at - 1];
                continue;
            }
            let next = words.len() as u32;
            let index = *dict.entry(field).or_insert_with(|| {
                words.push(field);
                next
            });
            columns[at] = index;
        }
    }
    let mut body = Vec::with_capacity(chunk.len() * 24 + 512);
    put_varint(&mut body, words.len() as u128);
    for word in &words {
        put_text(&mut body, word);
    }
    let mut prev_ts = 0u64;
    for (i, scan) in chunk.iter().enumerate() {
        let ts = scan.borrow().ts_ms;
        if i == 0 {
            put_varint(&mut body, u128::from(ts));
        } else {
            put_varint(&mut body, zigzag(i128::from(ts) - i128::from(prev_ts)));
        }
        prev_ts = ts;
    }
    body.extend(chunk.iter().map(|s| u8::from(s.borrow().is_unique)));
    let ids: Option<Vec<ScanId>> = chunk
        .iter()
        .map(|s| packed_id(&s.borrow().scan_id))
        .collect();
    match ids {
        Some(ids) => {
            body.push(IDS_PACKED);
            let mut prev_low = 0u128;
            for (id, scan) in ids.iter().zip(chunk) {
                let ms = i128::from(id.unix_ms()) - i128::from(scan.borrow().ts_ms);
                put_varint(&mut body, zigzag(ms));
                let low = id.0 & LOW_80;
                put_varint(&mut body, zigzag(low as i128 - prev_low as i128));
                prev_low = low;
            }
        }
        None => {
            body.push(IDS_TEXT);
            for scan in chunk {
                put_text(&mut body, &scan.borrow().scan_id);
            }
        }
    }
    for index in columns {
        put_varint(&mut body, u128::from(index));
    }
    out.push(VERSION);
    put_varint(out, chunk.len() as u128);
    put_varint(out, body.len() as u128);
    let mut deflate = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    deflate
        .write_all(&body)
        .map_err(|_| ChunkError::Malformed)?;
    deflate.finish().map_err(|_| ChunkError::Malformed)?;
    Ok(())
}

/// How many bytes a scan took in the last full piece: the next chunk's first
/// encoding starts at about the length that fits, instead of encoding the
/// whole chunk to learn it does not (that second encoding was half of the
/// embedded sink's chunk cost).
#[derive(Debug, Default)]
pub struct FitHint {
    /// 0: nothing learned yet.
    bytes_per_scan: usize,
}

/// Encodes `chunk` as consecutive pieces of at most [`VALUE_FIT`] bytes (a
/// piece of one scan may be larger), calling `emit(piece's scans, bytes,
/// piece's smallest scan id)` for each in order. A piece is as long as fits:
/// its length is first taken from `hint` (or the whole chunk), then
/// estimated from the size of an encoding too long and shortened until it
/// fits.
pub fn encode_fitted<S: Borrow<Scan>, E: From<ChunkError>>(
    chunk: &[S],
    hint: &mut FitHint,
    mut emit: impl FnMut(&[S], &[u8], &str) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = chunk;
    let mut bytes = Vec::new();
    while !rest.is_empty() {
        let mut n = rest.len();
        if let Some(fits) = (VALUE_FIT * 97 / 100).checked_div(hint.bytes_per_scan) {
            n = n.min(fits.max(1));
        }
        loop {
            bytes.clear();
            encode(&rest[..n], &mut bytes)?;
            if bytes.len() <= VALUE_FIT || n == 1 {
                break;
            }
            n = (n * VALUE_FIT / bytes.len() * 97 / 100).clamp(1, n - 1);
        }
        // A short piece (a chunk's tail) says little of a full one's size.
        if bytes.len() >= VALUE_FIT / 2 {
            hint.bytes_per_scan = bytes.len().div_ceil(n);
        }
        let (piece, after) = rest.split_at(n);
        let key = piece
            .iter()
            .map(|s| s.borrow().scan_id.as_str())
            .min()
            .unwrap_or_default();
        emit(piece, &bytes, key)?;
        rest = after;
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

    fn varint(&mut self) -> Result<u128, ChunkError> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let [b] = self.array()?;
            v |= u128::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or(ChunkError::Malformed)?;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError::Malformed)
    }

    /// A varint that must fit in `usize` (a length, a count, an index).
    fn size(&mut self) -> Result<usize, ChunkError> {
        usize::try_from(self.varint()?).map_err(|_| ChunkError::Malformed)
    }

    /// A length-prefixed text of version 3.
    fn varint_text(&mut self) -> Result<&'a str, ChunkError> {
        let len = self.size()?;
        std::str::from_utf8(self.take(len)?).map_err(|_| ChunkError::Malformed)
    }

    fn text(&mut self) -> Result<Text, ChunkError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Text::from)
            .map_err(|_| ChunkError::Malformed)
    }
}

/// The scans of an encoded chunk (any version), in the order they were stored.
pub fn decode(bytes: &[u8]) -> Result<Vec<Scan>, ChunkError> {
    match bytes.first() {
        Some(&VERSION) => decode_v3(&bytes[1..]),
        Some(&(PLAIN_V1 | PLAIN_V2)) => decode_plain(bytes),
        Some(&other) => Err(ChunkError::Version(other)),
        None => Err(ChunkError::Malformed),
    }
}

/// A version-3 chunk after its version byte.
fn decode_v3(bytes: &[u8]) -> Result<Vec<Scan>, ChunkError> {
    let mut head = Reader(bytes);
    let count = head.size()?;
    let body_len = head.size()?;
    // Each scan takes at least 17 bytes of the body (a time, a flag, an id,
    // 14 indexes); deflate expands at most about 1032 times: larger claims
    // are corrupt.
    if count.saturating_mul(17) > body_len || body_len > head.0.len().saturating_mul(1100) + 64 {
        return Err(ChunkError::Malformed);
    }
    let body = inflate(head.0, body_len)?;
    let mut r = Reader(&body);
    let words = r.size()?;
    if words > body_len {
        return Err(ChunkError::Malformed);
    }
    // Every scan with a value gets the same allocation of it.
    let dict = (0..words)
        .map(|_| r.varint_text().map(Text::from))
        .collect::<Result<Vec<Text>, _>>()?;
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let v = r.varint()?;
        let ts = if i == 0 {
            u64::try_from(v)
        } else {
            u64::try_from(i128::from(times[i - 1]) + unzigzag(v))
        };
        times.push(ts.map_err(|_| ChunkError::Malformed)?);
    }
    let unique = r.take(count)?;
    let [mode] = r.array()?;
    let mut ids = Vec::with_capacity(count);
    match mode {
        IDS_PACKED => {
            let mut prev_low = 0i128;
            for &ts in &times {
                let ms = u64::try_from(i128::from(ts) + unzigzag(r.varint()?))
                    .ok()
                    .filter(|ms| *ms < 1 << 48)
                    .ok_or(ChunkError::Malformed)?;
                let low = prev_low
                    .checked_add(unzigzag(r.varint()?))
                    .filter(|low| (0..=LOW_80 as i128).contains(low))
                    .ok_or(ChunkError::Malformed)?;
                prev_low = low;
                ids.push(ScanId((u128::from(ms) << 80) | low as u128).to_text());
            }
        }
        IDS_TEXT => {
            for _ in 0..count {
                ids.push(Text::from(r.varint_text()?));
            }
        }
        _ => return Err(ChunkError::Malformed),
    }
    let mut columns = Vec::with_capacity(count * 14);
    for _ in 0..count * 14 {
        let index = r.size()?;
        if index >= dict.len() {
            return Err(ChunkError::Malformed);
        }
        columns.push(index);
    }
    if !r.0.is_empty() {
        return Err(ChunkError::Malformed);
    }
    let field = |f: usize, i: usize| dict[columns[f * count + i]].clone();
    let mut out = Vec::with_capacity(count);
    for (i, scan_id) in ids.into_iter().enumerate() {
        out.push(Scan {
            scan_id,
            ts_ms: times[i],
            code: field(0, i),
            channel: field(1, i),
            visitor_id: field(2, i),
            ip_prefix: field(3, i),
            user_agent: field(4, i),
            device: field(5, i),
            os: field(6, i),
            browser: field(7, i),
            in_app: field(8, i),
            referrer_host: field(9, i),
            country: field(10, i),
            source: field(11, i),
            bot_reason: field(12, i),
            is_unique: unique[i] != 0,
            unknown_channel: Text::default(),
            step: Text::default(),
            route: field(13, i),
        });
    }
    Ok(out)
}

/// Exactly `len` bytes inflated from all of `input` (one raw DEFLATE stream).
fn inflate(input: &[u8], len: usize) -> Result<Vec<u8>, ChunkError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut inflater = Decompress::new(false);
    // One byte more than expected: a longer stream shows as a full buffer.
    let mut out = Vec::with_capacity(len + 1);
    loop {
        let before = (inflater.total_in(), inflater.total_out());
        let rest = input
            .get(before.0 as usize..)
            .ok_or(ChunkError::Malformed)?;
        let status = inflater
            .decompress_vec(rest, &mut out, FlushDecompress::Finish)
            .map_err(|_| ChunkError::Malformed)?;
        if status == Status::StreamEnd {
            break;
        }
        if (inflater.total_in(), inflater.total_out()) == before {
            return Err(ChunkError::Malformed);
        }
    }
    if out.len() != len || inflater.total_in() as usize != input.len() {
        return Err(ChunkError::Malformed);
    }
    Ok(out)
}

/// A chunk of version 1 or 2 (uncompressed, a row after another).
fn decode_plain(bytes: &[u8]) -> Result<Vec<Scan>, ChunkError> {
    let mut r = Reader(bytes);
    let [version] = r.array()?;
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
            unknown_channel: Text::default(),
            step: Text::default(),
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
                Text::default()
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
            scan_id: ScanId::from_parts(ms, 7, n).to_string().into(),
            ts_ms: ms,
            code: "spring".into(),
            channel: if n.is_multiple_of(2) {
                "yt".into()
            } else {
                Default::default()
            },
            visitor_id: format!("visitor{n:08}").into(),
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
                Default::default()
            },
            is_unique: n.is_multiple_of(5),
            unknown_channel: Text::default(),
            step: Text::default(),
            route: if n.is_multiple_of(4) {
                "ios-de".into()
            } else {
                Default::default()
            },
        }
    }

    /// The layout of versions 1 and 2, as those versions wrote it.
    fn encode_plain(version: u8, chunk: &[Scan]) -> Vec<u8> {
        let mut out = vec![version];
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for s in chunk {
            out.extend_from_slice(&s.ts_ms.to_le_bytes());
            out.push(u8::from(s.is_unique));
            let mut fields = vec![s.scan_id.as_str()];
            fields.extend(text_fields(s));
            if version == 1 {
                fields.pop();
            }
            for f in fields {
                out.extend_from_slice(&(f.len() as u16).to_le_bytes());
                out.extend_from_slice(f.as_bytes());
            }
        }
        out
    }

    #[test]
    fn version_2_bytes_written_by_the_old_encoder_still_read() {
        // One scan, byte for byte as version 2 wrote it.
        let mut bytes = vec![2, 1, 0, 0, 0];
        bytes.extend_from_slice(&1_700_000_000_123u64.to_le_bytes());
        bytes.push(1);
        let id = ScanId::from_parts(1_700_000_000_123, 7, 42).to_string();
        for f in [
            id.as_str(),
            "spring",
            "yt",
            "v1",
            "203.0.113.0",
            "Mozilla/5.0",
            "mobile",
            "iOS",
            "Safari",
            "",
            "t.co",
            "DE",
            "qr",
            "",
            "ios-de",
        ] {
            bytes.extend_from_slice(&(f.len() as u16).to_le_bytes());
            bytes.extend_from_slice(f.as_bytes());
        }
        let scans = decode(&bytes).unwrap();
        assert_eq!(scans.len(), 1);
        let s = &scans[0];
        assert_eq!(
            (s.scan_id.as_str(), s.ts_ms, s.is_unique),
            (id.as_str(), 1_700_000_000_123, true)
        );
        assert_eq!(
            (s.code.as_str(), s.channel.as_str(), s.visitor_id.as_str()),
            ("spring", "yt", "v1")
        );
        assert_eq!(
            (s.user_agent.as_str(), s.referrer_host.as_str()),
            ("Mozilla/5.0", "t.co")
        );
        assert_eq!(
            (s.country.as_str(), s.route.as_str(), s.bot_reason.as_str()),
            ("DE", "ios-de", "")
        );
        assert_eq!(bytes, encode_plain(2, &scans));
        // Written again, it is version 3 and reads the same.
        let mut again = Vec::new();
        encode(&scans, &mut again).unwrap();
        assert_eq!(again[0], 3);
        assert_eq!(decode(&again).unwrap(), scans);
    }

    #[test]
    fn versions_1_and_2_still_read() {
        let scans: Vec<Scan> = (0..40).map(|n| scan(1_700_000_000_000 + n, n)).collect();
        assert_eq!(decode(&encode_plain(2, &scans)).unwrap(), scans);
        // Version 1 has no route: read as empty.
        let no_route: Vec<Scan> = scans
            .iter()
            .cloned()
            .map(|mut s| {
                s.route = Text::default();
                s
            })
            .collect();
        assert_eq!(decode(&encode_plain(1, &scans)).unwrap(), no_route);
    }

    #[test]
    fn ids_that_are_not_canonical_are_kept_as_text() {
        let mut scans: Vec<Scan> = (0..10).map(|n| scan(1_700_000_000_000 + n, n)).collect();
        // Lower case parses to the same id but must come back as written.
        scans[3].scan_id = scans[3].scan_id.to_ascii_lowercase().into();
        scans[5].scan_id = "not-an-id".into();
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), scans);
    }

    #[test]
    fn repeated_strings_are_stored_once() {
        // 1024 scans from 300 visitors, one user agent: a few bytes per scan,
        // where version 2 took over 200.
        let scans: Vec<Scan> = (0..1024)
            .map(|n| {
                let mut s = scan(1_700_000_000_000 + n / 2, n);
                s.visitor_id =
                    format!("{:032x}", (n % 300).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into();
                s
            })
            .collect();
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), scans);
        let per_scan = bytes.len() as f64 / scans.len() as f64;
        let plain = encode_plain(2, &scans).len() as f64 / scans.len() as f64;
        assert!(per_scan < 20.0, "{per_scan} bytes per scan");
        assert!(plain > 200.0, "{plain}");
    }

    #[test]
    fn large_chunks_are_cut_into_pieces_that_fit_a_page_run() {
        let scans: Vec<Scan> = (0..1024u64)
            .map(|n| {
                let mut s = scan(1_700_000_000_000 + n / 2, n);
                s.visitor_id = format!(
                    "{:032x}",
                    n.wrapping_mul(0x9e37_79b9_7f4a_7c15) as u128 * 977
                )
                .into();
                s.ip_prefix = format!("10.{}.{}.0", n % 256, n / 256).into();
                s.user_agent = format!(
                    "Mozilla/5.0 build {:016x}",
                    n.wrapping_mul(0xff51_afd7_ed55_8ccd)
                )
                .into();
                s
            })
            .collect();
        let mut whole = Vec::new();
        encode(&scans, &mut whole).unwrap();
        assert!(whole.len() > VALUE_FIT, "{}", whole.len());
        // Fresh, then with what the first chunk taught the hint: both cut
        // the chunk into pieces that fit and hold every scan in order.
        let mut hint = FitHint::default();
        for round in 0..2 {
            let mut pieces: Vec<(usize, Vec<u8>, String)> = Vec::new();
            encode_fitted(&scans, &mut hint, |piece, bytes, key| {
                pieces.push((piece.len(), bytes.to_vec(), key.to_string()));
                Ok::<_, ChunkError>(())
            })
            .unwrap();
            assert!(hint.bytes_per_scan > 0, "round {round}");
            check_pieces(&scans, &pieces);
        }
        // A chunk that fits is one piece, as `encode` writes it.
        let mut one = Vec::new();
        encode_fitted(&scans[..10], &mut hint, |_, bytes, _| {
            one.push(bytes.to_vec());
            Ok::<_, ChunkError>(())
        })
        .unwrap();
        let mut direct = Vec::new();
        encode(&scans[..10], &mut direct).unwrap();
        assert_eq!(one, vec![direct]);
    }

    fn check_pieces(scans: &[Scan], pieces: &[(usize, Vec<u8>, String)]) {
        assert!(pieces.len() >= 2);
        let mut read = Vec::new();
        let mut at = 0;
        for (n, bytes, key) in pieces {
            assert!(bytes.len() <= VALUE_FIT);
            let got = decode(bytes).unwrap();
            assert_eq!(got.len(), *n);
            let smallest = got.iter().map(|s| s.scan_id.as_str()).min().unwrap();
            assert_eq!(key, smallest);
            assert_eq!(got, scans[at..at + n]);
            at += n;
            read.extend(got);
        }
        assert_eq!(read, scans);
        // The first piece is as full as it can be: most of a page run.
        assert!(
            pieces[0].1.len() > VALUE_FIT * 8 / 10,
            "{}",
            pieces[0].1.len()
        );
    }

    #[test]
    fn a_chunk_of_distinct_visitors_stays_small() {
        // Every scan from another visitor (32 hex digits) and network: those
        // two are what remains per scan, about 28 bytes.
        let scans: Vec<Scan> = (0..1024u64)
            .map(|n| {
                let mut s = scan(1_700_000_000_000 + n / 2, n);
                s.visitor_id = format!(
                    "{:016x}{:016x}",
                    n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
                )
                .into();
                s.ip_prefix = format!("10.{}.{}.0", n % 256, n / 256).into();
                s
            })
            .collect();
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), scans);
        let per_scan = bytes.len() as f64 / scans.len() as f64;
        assert!(per_scan < 40.0, "{per_scan} bytes per scan");
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let scans: Vec<Scan> = (0..50).map(|n| scan(1_700_000_000_000 + n, n)).collect();
        assert!(scans.iter().any(|s| s.route == "ios-de"));
        let mut bytes = Vec::new();
        encode(&scans, &mut bytes).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, scans);
        // A value the chunk's dictionary holds once is one allocation for
        // every scan read back with it.
        let (a, b) = (&decoded[0], &decoded[49]);
        assert!(a.user_agent.shares(&b.user_agent) && a.code.shares(&b.code));
        assert!(a.country.shares(&b.country) && !a.visitor_id.is_empty());
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
        for old in [encode_plain(1, &scans), encode_plain(2, &scans)] {
            for cut in 0..old.len() {
                assert!(decode(&old[..cut]).is_err(), "cut at {cut}");
            }
        }
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
        s.user_agent = "x".repeat(70_000).into();
        let mut bytes = Vec::new();
        assert_eq!(
            encode(std::slice::from_ref(&s), &mut bytes),
            Err(ChunkError::FieldTooLong(70_000))
        );
    }
}

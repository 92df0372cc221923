//! PNG encoding of two-colour images made of bands of identical rows (a
//! plain QR code), without a pixel buffer and without a general compressor.
//!
//! The image is written as a 1-bit indexed PNG. Its scanlines are filtered
//! so that they are mostly runs of one byte value: a row equal to the one
//! above is filtered "Up" (its filter byte then all zeros), an all-background
//! row is left unfiltered (all zeros, so it runs on from the row before), and
//! any other row is stored unfiltered. Runs are then written as deflate
//! matches at distance 1 (or, for repeated rows, copies one scanline back),
//! a band's first row as runs, copies from earlier first rows and literals,
//! all in one dynamic Huffman block whose codes are built from this image's
//! own symbol counts. Rows are never materialised: a band of `n` equal rows
//! costs one pass over its first row, and the zlib checksum of a run is
//! computed in closed form. Small images are also given to flate2 and the
//! smaller stream kept, so they are never larger than a general compressor
//! makes them.

/// One band: a packed row (1 bit per pixel, most significant bit first, bit
/// set = palette entry 1) and how many times it repeats.
pub(crate) type Band<'a> = (&'a [u8], usize);

/// Encodes a `width`×`height` image whose rows are `bands`, top to bottom
/// (their counts add up to `height`; each row is `width.div_ceil(8)` bytes).
/// Pixels with bit 0 take `palette[0]`, bit 1 `palette[1]`.
pub(crate) fn encode(width: u32, height: u32, palette: [[u8; 3]; 2], bands: &[Band]) -> Vec<u8> {
    let mut idat = idat(bands);
    // Small images are cheap for a general compressor, which finds copies
    // within and across rows that the runs above miss: keep the smaller.
    let stride = (width as usize).div_ceil(8);
    if height as usize * (stride + 1) <= SMALL_IMAGE_BYTES {
        if let Some(general) = zlib_unfiltered(bands, stride, height as usize) {
            if general.len() < idat.len() {
                idat = general;
            }
        }
    }

    let mut out = Vec::with_capacity(idat.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = [0u8; 13];
    ihdr[0..4].copy_from_slice(&width.to_be_bytes());
    ihdr[4..8].copy_from_slice(&height.to_be_bytes());
    // Bit depth 1, colour type 3 (indexed), deflate, adaptive filters, no interlace.
    ihdr[8..13].copy_from_slice(&[1, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &palette.concat());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Scanline bytes up to which an image is also compressed with a general
/// deflate (about 1 ms of CPU at this size; 1448 px square).
const SMALL_IMAGE_BYTES: usize = 256 * 1024;

/// The unfiltered scanlines through flate2's default compression.
fn zlib_unfiltered(bands: &[Band], stride: usize, height: usize) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut raw = Vec::with_capacity(height * (stride + 1));
    for &(row, count) in bands {
        for _ in 0..count {
            raw.push(0);
            raw.extend_from_slice(row);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec does not fail; if it did, the run encoding stands.
    z.write_all(&raw).ok()?;
    z.finish().ok()
}

/// The zlib stream of the filtered scanlines.
fn idat(bands: &[Band]) -> Vec<u8> {
    let mut data = Stream::default();
    let mut above: Option<&[u8]> = None;
    let mut up_line = Vec::new();
    for &(row, count) in bands {
        if count == 0 {
            continue;
        }
        if row.iter().all(|&b| b == 0) {
            // Unfiltered zeros: filter byte and pixels are one run with the
            // rows around them.
            data.run(0, count * (row.len() + 1));
            above = Some(row);
            continue;
        }
        let mut left = count;
        if above != Some(row) {
            // The first row unfiltered, so that it can copy runs of bytes
            // from the first rows of the bands above.
            data.byte(0);
            data.line(row);
            left -= 1;
        }
        // The rest repeat the row above: filtered Up, a 2 and then zeros.
        if left > 0 {
            data.byte(2);
            data.run(0, row.len());
            up_line.clear();
            up_line.push(2);
            up_line.resize(row.len() + 1, 0);
            data.repeat(&up_line, left - 1);
        }
        above = Some(row);
    }
    data.flush();

    let mut out = vec![0x78, 0x01]; // zlib: deflate, 32 KiB window, no dictionary.
    deflate_block(&data.tokens, &mut out);
    out.extend_from_slice(&data.adler().to_be_bytes());
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(&out[start..]);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

const ADLER_MOD: u64 = 65_521;
/// Tokens with this bit are matches, `len << 16 | distance`; others are
/// literal bytes.
const MATCH: u32 = 1 << 31;
const MAX_MATCH: usize = 258;
const MIN_MATCH: usize = 3;

fn match_token(len: usize, dist: usize) -> u32 {
    MATCH | (len as u32) << 16 | dist as u32
}

/// The filtered scanlines as deflate tokens (literals and matches), with the
/// zlib checksum of the bytes they stand for.
struct Stream {
    tokens: Vec<u32>,
    /// The last byte written, which a run repeats.
    last: Option<u8>,
    /// Repeats of `last` not yet turned into tokens.
    pending: usize,
    adler_a: u64,
    adler_b: u64,
    /// Bytes written so far.
    pos: usize,
    /// The last few rows written by [`Stream::line`], with their positions.
    lines: Vec<(usize, Vec<u8>)>,
    /// Positions in those rows by a hash of the 4 bytes there.
    buckets: Vec<Vec<usize>>,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            tokens: Vec::new(),
            last: None,
            pending: 0,
            adler_a: 1,
            adler_b: 0,
            pos: 0,
            lines: Vec::new(),
            buckets: Vec::new(),
        }
    }
}

/// Deflate's window: how far back a match may reach.
const WINDOW: usize = 32 * 1024;
/// How many earlier rows a row looks for copies in.
const LINES_KEPT: usize = 16;
/// Hash buckets of 4-byte sequences, and how many of a bucket's most
/// recent positions are tried.
const BUCKETS: usize = 4096;
const CANDIDATES: usize = 32;

fn bucket(four: &[u8]) -> usize {
    let v = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
    (v.wrapping_mul(0x9e37_79b1) >> 20) as usize
}

impl Stream {
    fn byte(&mut self, b: u8) {
        self.run(b, 1);
    }

    /// A row's pixel bytes: runs, and where longer, copies of the same
    /// bytes in an earlier row (the modules above are often the same).
    fn line(&mut self, row: &[u8]) {
        let start = self.pos;
        self.lines
            .retain(|(at, _)| start - at + row.len() <= WINDOW);
        if self.lines.len() == LINES_KEPT {
            self.lines.remove(0);
        }
        self.lines.push((start, row.to_vec()));
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); BUCKETS];
        }
        let mut i = 0;
        while i < row.len() {
            let b = row[i];
            let run = if self.last == Some(b) {
                row[i..].iter().take_while(|&&x| x == b).count()
            } else {
                0
            };
            let best = self.longest_copy(row, start, i);
            let from = i;
            // A far copy costs extra bits for its distance: it must save
            // more than a run or a few literals would cost.
            let worth = 4 + DIST_EXTRA[dist_index(best.1.max(1))] as usize / 3;
            if best.0 >= worth && best.0 > run + worth / 2 {
                self.copy(&row[i..i + best.0], best.1);
                i += best.0;
            } else if run > 0 {
                self.run(b, run);
                i += run;
            } else {
                self.byte(b);
                i += 1;
            }
            // Index the 4-byte sequences now written, for later copies.
            for k in from..i.min(row.len().saturating_sub(3)) {
                self.buckets[bucket(&row[k..k + 4])].push(start + k);
            }
        }
    }

    /// The longest earlier copy of `row[i..]` (length, distance): where its
    /// first 4 bytes were seen in the rows kept, this row included.
    fn longest_copy(&self, row: &[u8], start: usize, i: usize) -> (usize, usize) {
        let mut best = (0, 0);
        if i + 4 > row.len() {
            return best;
        }
        let here = start + i;
        for &pos in self.buckets[bucket(&row[i..i + 4])]
            .iter()
            .rev()
            .take(CANDIDATES)
        {
            // Copies from this row itself are left out: they would spread
            // the distance code, which the repeated rows need short.
            if pos >= start {
                continue;
            }
            let dist = here - pos;
            if dist > WINDOW {
                break;
            }
            let Some((at, bytes)) = self
                .lines
                .iter()
                .find(|(at, bytes)| *at <= pos && pos < at + bytes.len())
            else {
                continue;
            };
            let len = row[i..]
                .iter()
                .zip(&bytes[pos - at..])
                .take(MAX_MATCH)
                .take_while(|(x, y)| x == y)
                .count();
            if len > best.0 {
                best = (len, dist);
            }
        }
        best
    }

    /// `bytes`, as a copy of those `dist` bytes back (at most one match).
    fn copy(&mut self, bytes: &[u8], dist: usize) {
        self.flush();
        for &b in bytes {
            self.adler_a = (self.adler_a + u64::from(b)) % ADLER_MOD;
            self.adler_b = (self.adler_b + self.adler_a) % ADLER_MOD;
        }
        self.pos += bytes.len();
        self.tokens.push(match_token(bytes.len(), dist));
        self.last = bytes.last().copied();
    }

    /// `n` copies of `b`.
    fn run(&mut self, b: u8, n: usize) {
        if n == 0 {
            return;
        }
        self.pos += n;
        // Adler-32 of n copies of b in closed form: a grows by n·b, and b by
        // n·a plus b·(1 + 2 + … + n).
        let (count, value) = (n as u64, u64::from(b));
        self.adler_b =
            (self.adler_b + count * self.adler_a + value * (count * (count + 1) / 2)) % ADLER_MOD;
        self.adler_a = (self.adler_a + count * value) % ADLER_MOD;

        let mut n = n;
        if self.last != Some(b) {
            self.flush();
            self.tokens.push(u32::from(b));
            self.last = Some(b);
            n -= 1;
        }
        self.pending += n;
    }

    /// `times` more copies of `line`, which was just written.
    fn repeat(&mut self, line: &[u8], times: usize) {
        if times == 0 {
            return;
        }
        self.flush();
        self.pos += times * line.len();
        // Adler-32 over one more copy: a grows by the byte sum, b by
        // len·a plus each byte weighted by how many sums it is part of.
        let len = line.len() as u64;
        let sum: u64 = line.iter().map(|&b| u64::from(b)).sum::<u64>() % ADLER_MOD;
        let weighted: u64 = line
            .iter()
            .enumerate()
            .map(|(i, &b)| (len - i as u64) * u64::from(b))
            .sum::<u64>()
            % ADLER_MOD;
        for _ in 0..times {
            self.adler_b = (self.adler_b + len % ADLER_MOD * self.adler_a + weighted) % ADLER_MOD;
            self.adler_a = (self.adler_a + sum) % ADLER_MOD;
        }
        // Matches at a distance of one scanline copy any part of it; where
        // at least a full match of zeros lies ahead, a run at distance 1
        // is cheaper (no extra bits for the distance).
        let period = line.len();
        let zero_from = line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let total = times * period;
        let mut done = 0;
        while done < total {
            let left = total - done;
            let mut len = left.min(MAX_MATCH);
            if left > len && left - len < MIN_MATCH {
                len = left - MIN_MATCH;
            }
            let at = done % period;
            let dist = if at > zero_from && period - at >= len {
                1
            } else {
                period
            };
            self.tokens.push(match_token(len, dist));
            done += len;
        }
        self.last = line.last().copied();
    }

    /// Turns the pending repeats into matches (and at most two literals).
    fn flush(&mut self) {
        let Some(last) = self.last else { return };
        let left = std::mem::take(&mut self.pending);
        let tail = push_matches(&mut self.tokens, left, 1);
        for _ in 0..tail {
            self.tokens.push(u32::from(last));
        }
    }

    fn adler(&self) -> u32 {
        ((self.adler_b << 16) | self.adler_a) as u32
    }
}

/// Pushes matches at `dist` covering `len` bytes, never leaving a tail too
/// short for a match after a full one; returns the bytes left over (0 to 2,
/// and only when `len` is that short).
fn push_matches(tokens: &mut Vec<u32>, len: usize, dist: usize) -> usize {
    let mut left = len;
    while left >= MIN_MATCH {
        let n = if left > MAX_MATCH && left - MAX_MATCH < MIN_MATCH {
            left - MIN_MATCH
        } else {
            left.min(MAX_MATCH)
        };
        tokens.push(match_token(n, dist));
        left -= n;
    }
    left
}

/// First length of each deflate length symbol (257 + index) and its extra bits.
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const END_OF_BLOCK: usize = 256;
/// The order in which code length code lengths are stored (RFC 1951, 3.2.7).
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Length symbol index (0..29) of a match length.
fn length_index(len: usize) -> usize {
    if len == MAX_MATCH {
        return 28;
    }
    LENGTH_BASE[..28].partition_point(|&base| usize::from(base) <= len) - 1
}

/// First distance of each deflate distance symbol and its extra bits.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn dist_index(dist: usize) -> usize {
    DIST_BASE.partition_point(|&base| usize::from(base) <= dist) - 1
}

/// A match token's length and distance.
fn unpack(token: u32) -> Option<(usize, usize)> {
    (token & MATCH != 0).then_some((((token >> 16) & 0x1ff) as usize, (token & 0xffff) as usize))
}

/// Writes `tokens` as one final dynamic-Huffman deflate block.
fn deflate_block(tokens: &[u32], out: &mut Vec<u8>) {
    let mut lit_freq = [0u32; 286];
    let mut dist_freq = [0u32; 30];
    for &t in tokens {
        match unpack(t) {
            Some((len, dist)) => {
                lit_freq[257 + length_index(len)] += 1;
                dist_freq[dist_index(dist)] += 1;
            }
            None => lit_freq[t as usize] += 1,
        }
    }
    lit_freq[END_OF_BLOCK] = 1;
    // At least two distance codes, so the code is a complete tree (a lone
    // code of one bit is allowed but not read by every decoder).
    for i in 0..2 {
        if dist_freq.iter().filter(|&&f| f > 0).count() < 2 && dist_freq[i] == 0 {
            dist_freq[i] = 1;
        }
    }
    let lit_len = code_lengths(&lit_freq, 15);
    let lit_code = canonical_codes(&lit_len);
    let dist_len = code_lengths(&dist_freq, 15);
    let dist_code = canonical_codes(&dist_len);

    let hlit = 257.max(lit_len.iter().rposition(|&l| l > 0).map_or(0, |i| i + 1));
    let hdist = 1.max(dist_len.iter().rposition(|&l| l > 0).map_or(0, |i| i + 1));
    let mut all_lens = lit_len[..hlit].to_vec();
    all_lens.extend_from_slice(&dist_len[..hdist]);
    let cl_tokens = run_length_code_lengths(&all_lens);
    let mut cl_freq = [0u32; 19];
    for &(sym, _) in &cl_tokens {
        cl_freq[usize::from(sym)] += 1;
    }
    let cl_len = code_lengths(&cl_freq, 7);
    let cl_code = canonical_codes(&cl_len);
    let hclen = 4.max(
        CODE_LENGTH_ORDER
            .iter()
            .rposition(|&s| cl_len[s] > 0)
            .map_or(0, |i| i + 1),
    );

    let mut w = BitWriter {
        out,
        acc: 0,
        bits: 0,
    };
    w.put(1, 1); // final block
    w.put(2, 2); // dynamic Huffman codes
    w.put((hlit - 257) as u32, 5);
    w.put((hdist - 1) as u32, 5);
    w.put((hclen - 4) as u32, 4);
    for &s in &CODE_LENGTH_ORDER[..hclen] {
        w.put(u32::from(cl_len[s]), 3);
    }
    for &(sym, extra) in &cl_tokens {
        let s = usize::from(sym);
        w.put(cl_code[s], cl_len[s]);
        match sym {
            16 => w.put(u32::from(extra), 2),
            17 => w.put(u32::from(extra), 3),
            18 => w.put(u32::from(extra), 7),
            _ => {}
        }
    }
    for &t in tokens {
        match unpack(t) {
            Some((len, dist)) => {
                let i = length_index(len);
                w.put(lit_code[257 + i], lit_len[257 + i]);
                w.put((len - usize::from(LENGTH_BASE[i])) as u32, LENGTH_EXTRA[i]);
                let d = dist_index(dist);
                w.put(dist_code[d], dist_len[d]);
                w.put((dist - usize::from(DIST_BASE[d])) as u32, DIST_EXTRA[d]);
            }
            None => {
                let s = t as usize;
                w.put(lit_code[s], lit_len[s]);
            }
        }
    }
    w.put(lit_code[END_OF_BLOCK], lit_len[END_OF_BLOCK]);
    w.finish();
}

/// Code lengths as (symbol, extra bits value): 0..=15 literally, 16 repeats
/// the previous length 3..=6 times, 17 and 18 give 3..=10 and 11..=138 zeros.
fn run_length_code_lengths(lens: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let l = lens[i];
        let run = lens[i..].iter().take_while(|&&x| x == l).count();
        if l == 0 && run >= 3 {
            let n = run.min(138);
            out.push(if n >= 11 {
                (18, (n - 11) as u8)
            } else {
                (17, (n - 3) as u8)
            });
            i += n;
        } else if l != 0 && run >= 4 {
            out.push((l, 0));
            let n = (run - 1).min(6);
            out.push((16, (n - 3) as u8));
            i += 1 + n;
        } else {
            out.push((l, 0));
            i += 1;
        }
    }
    out
}

/// Huffman code lengths for `freq` (0 for unused symbols), none above
/// `limit`. A lone used symbol gets length 1. Counts are halved until the
/// tree fits the limit, which keeps the code valid at a small cost in size.
fn code_lengths(freq: &[u32], limit: u8) -> Vec<u8> {
    let mut freq = freq.to_vec();
    loop {
        let lens = huffman_lengths(&freq);
        if lens.iter().all(|&l| l <= limit) {
            return lens;
        }
        for f in freq.iter_mut().filter(|f| **f > 0) {
            *f = (*f / 2).max(1);
        }
    }
}

fn huffman_lengths(freq: &[u32]) -> Vec<u8> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut lens = vec![0u8; freq.len()];
    let used: Vec<usize> = (0..freq.len()).filter(|&s| freq[s] > 0).collect();
    if used.len() == 1 {
        lens[used[0]] = 1;
    }
    if used.len() <= 1 {
        return lens;
    }
    // Nodes: the used symbols, then the merged ones; parent links give depths.
    let mut parent = vec![usize::MAX; used.len()];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(node, &s)| Reverse((u64::from(freq[s]), node)))
        .collect();
    while heap.len() > 1 {
        let Some(Reverse((fa, a))) = heap.pop() else {
            break;
        };
        let Some(Reverse((fb, b))) = heap.pop() else {
            break;
        };
        let node = parent.len();
        parent.push(usize::MAX);
        parent[a] = node;
        parent[b] = node;
        heap.push(Reverse((fa + fb, node)));
    }
    // Merged nodes come after their children, so depths fill in from the root.
    let mut depth = vec![0u8; parent.len()];
    for node in (0..parent.len()).rev() {
        if parent[node] != usize::MAX {
            depth[node] = depth[parent[node]].saturating_add(1);
        }
    }
    for (node, &s) in used.iter().enumerate() {
        lens[s] = depth[node];
    }
    lens
}

/// Canonical Huffman codes for `lens`, bit-reversed for LSB-first output.
fn canonical_codes(lens: &[u8]) -> Vec<u32> {
    let mut count = [0u32; 16];
    for &l in lens {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 16];
    let mut code = 0;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            c.reverse_bits() >> (32 - u32::from(l))
        })
        .collect()
}

struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter<'_> {
    fn put(&mut self, value: u32, bits: u8) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += u32::from(bits);
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    fn finish(mut self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.bits = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image's pixels, one byte per pixel (0 or 1), and its colour type,
    /// bit depth and palette, read by the png crate.
    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>, png::ColorType, png::BitDepth, Vec<u8>) {
        let mut decoder = png::Decoder::new(png);
        decoder.set_transformations(png::Transformations::IDENTITY);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let info = reader.info();
        let (w, h) = (info.width, info.height);
        let stride = frame.line_size;
        let mut pixels = Vec::with_capacity((w * h) as usize);
        for y in 0..h as usize {
            for x in 0..w as usize {
                pixels.push((buf[y * stride + x / 8] >> (7 - x % 8)) & 1);
            }
        }
        let palette = info.palette.as_deref().unwrap_or_default().to_vec();
        (w, h, pixels, info.color_type, info.bit_depth, palette)
    }

    /// The zlib data of the IDAT chunks, decompressed by flate2 (which checks
    /// the Adler-32), so a wrong checksum fails here even if a lenient
    /// decoder would pass it.
    fn inflate(png: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut at = 8;
        let mut zlib = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            if &png[at + 4..at + 8] == b"IDAT" {
                zlib.extend_from_slice(&png[at + 8..at + 8 + len]);
            }
            at += 12 + len;
        }
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&zlib[..])
            .read_to_end(&mut out)
            .expect("a valid zlib stream with the right checksum");
        out
    }

    /// A pseudo-random row (an LCG), so tests need no randomness crate.
    fn row(stride: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..stride)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Mostly runs of 0x00 / 0xff with some mixed bytes, as a QR row.
                match (x >> 16) % 4 {
                    0 => 0x00,
                    1 => 0xff,
                    _ => (x >> 8) as u8,
                }
            })
            .collect()
    }

    fn check(width: u32, bands: &[Band]) -> Vec<u8> {
        let height: usize = bands.iter().map(|b| b.1).sum();
        let palette = [[0xff, 0xf8, 0xe1], [0x1a, 0x23, 0x7e]];
        let png = encode(width, height as u32, palette, bands);
        let (w, h, pixels, colour, depth, pal) = decode(&png);
        assert_eq!((w, h as usize), (width, height));
        assert_eq!(
            (colour, depth),
            (png::ColorType::Indexed, png::BitDepth::One)
        );
        assert_eq!(pal, palette.concat());
        let stride = (width as usize).div_ceil(8);
        assert_eq!(inflate(&png).len(), height * (stride + 1));
        let mut y = 0;
        for &(r, count) in bands {
            for _ in 0..count {
                for x in 0..width as usize {
                    let want = (r[x / 8] >> (7 - x % 8)) & 1;
                    assert_eq!(pixels[y * width as usize + x], want, "pixel {x},{y}");
                }
                y += 1;
            }
        }
        png
    }

    #[test]
    fn bands_of_rows_decode_to_the_same_pixels() {
        // Widths with and without a partial last byte; small and large images
        // (the large ones take the run encoder, the small ones may not).
        for width in [64u32, 97, 512, 1500, 4096] {
            let stride = (width as usize).div_ceil(8);
            let blank = vec![0u8; stride];
            let rows: Vec<Vec<u8>> = (0..12).map(|i| row(stride, i)).collect();
            let tall = (width as usize / 8).max(1);
            let bands: Vec<Band> = [
                (&blank[..], tall),
                (&rows[0][..], 1),
                (&rows[1][..], tall),
                (&rows[1][..], 3), // continues the band above
                (&blank[..], 0),   // empty bands are allowed
                (&rows[2][..], 2),
                (&blank[..], 1),
                (&rows[3][..], tall),
            ]
            .into_iter()
            .chain(rows[4..].iter().map(|r| (&r[..], tall)))
            .chain([(&blank[..], tall)])
            .collect();
            check(width, &bands);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Random images past the size that also tries flate2 (so the run
        /// encoder's stream is the one kept), any width with a partial last
        /// byte or none, rows repeating earlier rows in and out of the
        /// window: every pixel decodes as drawn and the checksum holds.
        #[test]
        fn random_large_images_decode_to_the_same_pixels(
            width in 2000u32..=4096,
            picks in proptest::collection::vec((0usize..24, 0usize..90), 8..40),
            seed in 0u32..1_000_000,
        ) {
            let stride = (width as usize).div_ceil(8);
            let mut rows: Vec<Vec<u8>> = (0..23u32).map(|i| row(stride, seed.wrapping_add(i))).collect();
            rows.push(vec![0u8; stride]);
            let mut bands: Vec<Band> = picks.iter().map(|&(r, n)| (&rows[r][..], n)).collect();
            // Enough rows that the scanlines pass `SMALL_IMAGE_BYTES`.
            let height: usize = bands.iter().map(|b| b.1).sum();
            let need = SMALL_IMAGE_BYTES / (stride + 1) + 1;
            bands.push((&rows[(seed % 24) as usize][..], need.saturating_sub(height)));
            check(width, &bands);
        }
    }

    #[test]
    fn edge_images_decode() {
        // All background, all foreground, one row each way, a single band.
        let full = vec![0xffu8; 512];
        let blank = vec![0u8; 512];
        check(4096, &[(&blank, 4096)]);
        check(4096, &[(&full, 4096)]);
        check(4096, &[(&full, 1), (&blank, 4095)]);
        check(4096, &[(&blank, 4095), (&full, 1)]);
        check(64, &[(&[0xaa; 8], 64)]);
    }

    #[test]
    fn long_repeats_cost_a_few_bits_per_row() {
        // 4096 rows of 512 bytes (2 MB of scanlines) in a few KiB: the
        // repeats are runs and copies, not re-compressed bytes.
        let stride = 512;
        let rows: Vec<Vec<u8>> = (0..37).map(|i| row(stride, i)).collect();
        let mut bands: Vec<Band> = vec![];
        for r in &rows {
            bands.push((r, 110));
        }
        bands.push((&rows[0], 4096 - 37 * 110));
        let png = check(4096, &bands);
        // 37 rows of pseudo-random bytes are at most ~19 KB raw; each
        // repeat row may cost about 2 bytes.
        assert!(png.len() < 37 * 513 + 4096 * 2, "{} bytes", png.len());
    }

    #[test]
    fn huffman_lengths_respect_the_limit() {
        // Fibonacci counts make the deepest unlimited tree.
        let mut freq = vec![0u32; 30];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut() {
            *f = a;
            (a, b) = (b, a.saturating_add(b));
        }
        let lens = code_lengths(&freq, 15);
        assert!(lens.iter().all(|&l| (1..=15).contains(&l)), "{lens:?}");
        // A complete prefix code: the Kraft sum is exactly 1.
        let kraft: f64 = lens.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!((kraft - 1.0).abs() < 1e-12, "{kraft}");
        assert_eq!(code_lengths(&[0, 5, 0], 7), vec![0, 1, 0]);
    }
}

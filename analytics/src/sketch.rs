//! `VisitorSketch`: a mergeable distinct counter of visitor ids.
//!
//! Used for "unique scanners" per rollup cell (code × time bucket × dimension
//! value); cells are merged at query time. A sketch is exact while it has seen
//! at most [`EXACT_MAX`] distinct hashes, and a HyperLogLog with precision
//! [`P`] = 12 (4096 one-byte registers) after that.
//!
//! # Invariant
//!
//! Which mode a sketch is in, and its contents, depend only on the *set* of
//! hashes ever inserted into it or into any sketch merged into it, never on the
//! order of inserts and merges: exact mode holds exactly that set (sorted,
//! deduplicated) when it has at most 100 elements; otherwise the sketch is the
//! HyperLogLog of that set (converting exact → HLL inserts every kept hash).
//!
//! # Hash
//!
//! [`visitor_hash`] is FNV-1a 64 over the UTF-8 bytes of the id followed by the
//! murmur3 `fmix64` finalizer. It is persisted (inside encoded sketches), so it
//! must never change.
//!
//! # HyperLogLog
//!
//! Register index = the top 12 bits of the hash; register value = 1 + the
//! number of leading zeros of the remaining 52 bits (1..=53). The estimate is
//! Otmar Ertl's "improved raw estimator" (arXiv:1702.01284), with q = 52.
//!
//! # Encoding (version 1)
//!
//! The first byte is a tag that also carries the format version:
//!
//! | tag    | mode        | rest                                                                  |
//! |--------|-------------|-----------------------------------------------------------------------|
//! | `0x01` | exact       | `n: u8` (0..=100), then `n` hashes as `u64` little-endian, strictly increasing |
//! | `0x02` | sparse HLL  | `k: u16` LE (1..=4096), then `k` × (`index: u16` LE, `value: u8`), indices strictly increasing and < 4096, values 1..=53; all other registers are 0 |
//! | `0x03` | dense HLL   | 4096 register bytes, each 0..=53                                      |
//!
//! [`VisitorSketch::encode`] writes the sparse form when it is smaller than
//! the dense one (at most 1364 non-zero registers), the dense form otherwise.
//! Hashes in exact mode are stored fixed-width: they are uniform over 64 bits,
//! so with at most 100 of them delta varints would not be smaller.
//! [`VisitorSketch::decode`] rejects unknown tags, truncated input, trailing
//! bytes and any value outside the ranges above.

/// Precision of the HyperLogLog mode (number of index bits).
pub const P: u32 = 12;
/// Number of HyperLogLog registers (2^P).
pub const REGISTERS: usize = 1 << P;
/// Number of hash bits left after the register index (64 − P).
const Q: u32 = 64 - P;
/// Largest register value (q + 1).
const MAX_REGISTER: u8 = (Q + 1) as u8;

/// Largest number of distinct hashes a sketch keeps exactly.
pub const EXACT_MAX: usize = 100;

const TAG_EXACT: u8 = 0x01;
const TAG_SPARSE: u8 = 0x02;
const TAG_DENSE: u8 = 0x03;

/// The stable 64-bit hash of a visitor id: FNV-1a 64 then murmur3 `fmix64`.
///
/// The values are persisted; this function must never change.
pub fn visitor_hash(visitor_id: &str) -> u64 {
    fmix64(fnv1a64(visitor_id.as_bytes()))
}

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The murmur3 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A cardinality estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub count: u64,
    /// `true` while the sketch is in exact mode (then `count` is exact).
    pub exact: bool,
}

/// Why [`VisitorSketch::decode`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    #[error("visitor sketch: input is truncated")]
    Truncated,
    #[error("visitor sketch: unknown tag byte {0:#04x}")]
    UnknownTag(u8),
    #[error("visitor sketch: {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("visitor sketch: invalid contents: {0}")]
    Invalid(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// Sorted, deduplicated, at most `EXACT_MAX` hashes.
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Hll(Box<[u8; REGISTERS]>),
}

/// A mergeable distinct counter: exact up to [`EXACT_MAX`] distinct visitors,
/// a HyperLogLog (p = 12) beyond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitorSketch {
    repr: Repr,
}

impl Default for VisitorSketch {
    fn default() -> Self {
        Self::new()
    }
}

fn zeroed_registers() -> Box<[u8; REGISTERS]> {
    Box::new([0u8; REGISTERS])
}

#[inline]
fn hll_insert(regs: &mut [u8; REGISTERS], h: u64) {
    let idx = (h >> Q) as usize;
    // The remaining Q bits moved to the top, with a sentinel bit just below
    // them so the count of leading zeros is at most Q.
    let w = (h << P) | (1u64 << (P - 1));
    let value = (w.leading_zeros() + 1) as u8;
    let r = &mut regs[idx];
    if value > *r {
        *r = value;
    }
}

fn registers_from(hashes: &[u64]) -> Box<[u8; REGISTERS]> {
    let mut regs = zeroed_registers();
    for &h in hashes {
        hll_insert(&mut regs, h);
    }
    regs
}

impl VisitorSketch {
    /// An empty sketch (exact mode).
    pub fn new() -> Self {
        Self {
            repr: Repr::Exact(Vec::new()),
        }
    }

    /// `true` when nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Exact(v) => v.is_empty(),
            // An HLL sketch holds more than EXACT_MAX hashes.
            Repr::Hll(_) => false,
        }
    }

    /// Inserts a visitor id (hashed with [`visitor_hash`]).
    pub fn insert(&mut self, visitor_id: &str) {
        self.insert_hash(visitor_hash(visitor_id));
    }

    /// Inserts an already computed [`visitor_hash`].
    pub fn insert_hash(&mut self, h: u64) {
        match &mut self.repr {
            Repr::Exact(v) => {
                if let Err(pos) = v.binary_search(&h) {
                    if v.len() < EXACT_MAX {
                        v.insert(pos, h);
                    } else {
                        let mut regs = registers_from(v);
                        hll_insert(&mut regs, h);
                        self.repr = Repr::Hll(regs);
                    }
                }
            }
            Repr::Hll(regs) => hll_insert(regs, h),
        }
    }

    /// Merges `other` into `self`: afterwards `self` is the sketch of the union.
    pub fn merge(&mut self, other: &VisitorSketch) {
        match (&mut self.repr, &other.repr) {
            (Repr::Hll(a), Repr::Hll(b)) => {
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = (*x).max(*y);
                }
            }
            (Repr::Hll(a), Repr::Exact(b)) => {
                for &h in b {
                    hll_insert(a, h);
                }
            }
            (Repr::Exact(a), Repr::Hll(b)) => {
                let mut regs = b.clone();
                for &h in a.iter() {
                    hll_insert(&mut regs, h);
                }
                self.repr = Repr::Hll(regs);
            }
            (Repr::Exact(a), Repr::Exact(b)) => {
                if b.is_empty() {
                    return;
                }
                let merged = sorted_union(a, b);
                if merged.len() <= EXACT_MAX {
                    *a = merged;
                } else {
                    self.repr = Repr::Hll(registers_from(&merged));
                }
            }
        }
    }

    /// The number of distinct visitors: exact in exact mode, else Ertl's
    /// improved raw HyperLogLog estimate rounded to the nearest integer.
    pub fn estimate(&self) -> Estimate {
        match &self.repr {
            Repr::Exact(v) => Estimate {
                count: v.len() as u64,
                exact: true,
            },
            Repr::Hll(regs) => Estimate {
                count: ertl_improved_estimate(regs),
                exact: false,
            },
        }
    }

    /// Appends the binary form (see the module documentation) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.repr {
            Repr::Exact(v) => {
                out.reserve(2 + 8 * v.len());
                out.push(TAG_EXACT);
                out.push(v.len() as u8);
                for h in v {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            Repr::Hll(regs) => {
                let nonzero = regs.iter().filter(|&&r| r != 0).count();
                if 3 + 3 * nonzero < 1 + REGISTERS {
                    out.reserve(3 + 3 * nonzero);
                    out.push(TAG_SPARSE);
                    out.extend_from_slice(&(nonzero as u16).to_le_bytes());
                    for (i, &r) in regs.iter().enumerate() {
                        if r != 0 {
                            out.extend_from_slice(&(i as u16).to_le_bytes());
                            out.push(r);
                        }
                    }
                } else {
                    out.reserve(1 + REGISTERS);
                    out.push(TAG_DENSE);
                    out.extend_from_slice(&regs[..]);
                }
            }
        }
    }

    /// Parses the output of [`encode`](Self::encode). The whole input must be
    /// one sketch.
    pub fn decode(bytes: &[u8]) -> Result<VisitorSketch, SketchError> {
        let (&tag, rest) = bytes.split_first().ok_or(SketchError::Truncated)?;
        let (repr, rest) = match tag {
            TAG_EXACT => {
                let (&n, rest) = rest.split_first().ok_or(SketchError::Truncated)?;
                let n = usize::from(n);
                if n > EXACT_MAX {
                    return Err(SketchError::Invalid("too many exact hashes"));
                }
                let body = rest.get(..8 * n).ok_or(SketchError::Truncated)?;
                let mut hashes = Vec::with_capacity(n);
                for chunk in body.chunks_exact(8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    let h = u64::from_le_bytes(b);
                    if hashes.last().is_some_and(|&last| last >= h) {
                        return Err(SketchError::Invalid("exact hashes not strictly increasing"));
                    }
                    hashes.push(h);
                }
                (Repr::Exact(hashes), &rest[8 * n..])
            }
            TAG_SPARSE => {
                let k = rest.get(..2).ok_or(SketchError::Truncated)?;
                let k = usize::from(u16::from_le_bytes([k[0], k[1]]));
                if k == 0 || k > REGISTERS {
                    return Err(SketchError::Invalid("bad sparse register count"));
                }
                let rest = &rest[2..];
                let body = rest.get(..3 * k).ok_or(SketchError::Truncated)?;
                let mut regs = zeroed_registers();
                let mut next_min = 0usize;
                for entry in body.chunks_exact(3) {
                    let idx = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
                    let value = entry[2];
                    if idx < next_min || idx >= REGISTERS {
                        return Err(SketchError::Invalid("bad sparse register index"));
                    }
                    if value == 0 || value > MAX_REGISTER {
                        return Err(SketchError::Invalid("register value out of range"));
                    }
                    regs[idx] = value;
                    next_min = idx + 1;
                }
                (Repr::Hll(regs), &rest[3 * k..])
            }
            TAG_DENSE => {
                let body = rest.get(..REGISTERS).ok_or(SketchError::Truncated)?;
                if body.iter().any(|&r| r > MAX_REGISTER) {
                    return Err(SketchError::Invalid("register value out of range"));
                }
                let mut regs = zeroed_registers();
                regs.copy_from_slice(body);
                (Repr::Hll(regs), &rest[REGISTERS..])
            }
            other => return Err(SketchError::UnknownTag(other)),
        };
        if !rest.is_empty() {
            return Err(SketchError::TrailingBytes(rest.len()));
        }
        Ok(VisitorSketch { repr })
    }
}

/// Sorted union (deduplicated) of two sorted, deduplicated slices.
fn sorted_union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k−1), for 0 ≤ x ≤ 1 (∞ at x = 1).
fn sigma(x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let mut x = x;
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if z == prev {
            return z;
        }
    }
}

/// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² · 2^−k) / 3, for 0 ≤ x ≤ 1.
fn tau(x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let mut x = x;
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z == prev {
            return z / 3.0;
        }
    }
}

/// Ertl's improved raw estimator:
/// `α∞ · m² / (m·σ(C₀/m) + Σ_{k=1}^{q} C_k·2^−k + m·τ(1 − C_{q+1}/m)·2^−q)`
/// with α∞ = 1 / (2 ln 2), evaluated Horner-style from k = q down to 1.
fn ertl_improved_estimate(regs: &[u8; REGISTERS]) -> u64 {
    // The register histogram, counted into four tables so that consecutive
    // increments do not wait on each other (it is most of an estimate's cost).
    let mut parts = [[0u32; 64]; 4];
    for quad in regs.chunks_exact(4) {
        parts[0][usize::from(quad[0] & 63)] += 1;
        parts[1][usize::from(quad[1] & 63)] += 1;
        parts[2][usize::from(quad[2] & 63)] += 1;
        parts[3][usize::from(quad[3] & 63)] += 1;
    }
    let mut counts = [0u32; MAX_REGISTER as usize + 1];
    for (k, c) in counts.iter_mut().enumerate() {
        *c = parts[0][k] + parts[1][k] + parts[2][k] + parts[3][k];
    }
    let m = REGISTERS as f64;
    let q = Q as usize;
    let mut z = m * tau(1.0 - f64::from(counts[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(counts[k]));
    }
    z += m * sigma(f64::from(counts[0]) / m);
    let alpha_inf = 0.5 / std::f64::consts::LN_2;
    let estimate = alpha_inf * m * m / z;
    if estimate.is_finite() {
        estimate.round() as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// The sketch of the ids `format!("{prefix}-{i}")` for `i` in `range`
    /// (formatted by hand: `format!` is slow in debug builds).
    fn sketch_of(prefix: &str, range: std::ops::Range<u64>) -> VisitorSketch {
        let mut s = VisitorSketch::new();
        let mut id = Vec::with_capacity(prefix.len() + 21);
        for i in range {
            id.clear();
            id.extend_from_slice(prefix.as_bytes());
            id.push(b'-');
            let start = id.len();
            let mut v = i;
            loop {
                id.push(b'0' + (v % 10) as u8);
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            id[start..].reverse();
            s.insert_hash(fmix64(fnv1a64(&id)));
        }
        s
    }

    fn registers(s: &VisitorSketch) -> &[u8; REGISTERS] {
        match &s.repr {
            Repr::Hll(r) => r,
            Repr::Exact(_) => panic!("expected HLL mode"),
        }
    }

    fn encoded(s: &VisitorSketch) -> Vec<u8> {
        let mut out = Vec::new();
        s.encode(&mut out);
        out
    }

    #[test]
    fn hash_is_pinned() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // The persisted values (computed independently of this code).
        assert_eq!(visitor_hash(""), 0xefd0_1f60_ba99_2926);
        assert_eq!(visitor_hash("a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(visitor_hash("visitor-1"), 0xfc1f_761e_d37d_2af6);
        assert_eq!(
            visitor_hash("0f8fad5b-d9cb-469f-a165-70867728950e"),
            0x564e_1752_fb45_2f46
        );
        assert_eq!(visitor_hash("é"), 0x9d55_ccb9_ba86_763b);
    }

    #[test]
    fn register_value_rule() {
        let mut regs = zeroed_registers();
        // Index = top 12 bits; remaining 52 bits all zero → 53.
        hll_insert(&mut regs, 0xABC0_0000_0000_0000);
        assert_eq!(regs[0xABC], 53);
        // Top remaining bit set → 1.
        hll_insert(&mut regs, 0x0018_0000_0000_0000);
        assert_eq!(regs[0x001], 1);
        // Only the lowest bit set → 51 leading zeros → 52.
        hll_insert(&mut regs, 0x0020_0000_0000_0001);
        assert_eq!(regs[0x002], 52);
        // Registers only grow.
        hll_insert(&mut regs, 0xABC8_0000_0000_0000);
        assert_eq!(regs[0xABC], 53);
    }

    #[test]
    fn exact_up_to_100_with_repeats() {
        let mut s = VisitorSketch::new();
        assert!(s.is_empty());
        assert_eq!(
            s.estimate(),
            Estimate {
                count: 0,
                exact: true
            }
        );
        for n in 1..=EXACT_MAX as u64 {
            s.insert(&format!("v{n}"));
            // Repeats of earlier ids change nothing.
            s.insert(&format!("v{}", n / 2 + 1));
            s.insert(&format!("v{n}"));
            assert_eq!(
                s.estimate(),
                Estimate {
                    count: n,
                    exact: true
                }
            );
            assert!(!s.is_empty());
        }
        s.insert("v101");
        let e = s.estimate();
        assert!(!e.exact);
        assert!(e.count.abs_diff(101) <= 3, "{e:?}");
        // Equal to the HLL of everything inserted.
        let mut direct = zeroed_registers();
        for n in 1..=101 {
            hll_insert(&mut direct, visitor_hash(&format!("v{n}")));
        }
        assert_eq!(registers(&s), &*direct);
    }

    #[test]
    fn merge_to_101_switches_to_hll() {
        let a = sketch_of("m", 0..60);
        let b = sketch_of("m", 40..100);
        let mut ab = a.clone();
        ab.merge(&b);
        assert_eq!(ab, sketch_of("m", 0..100));
        assert!(ab.estimate().exact);
        let c = sketch_of("m", 99..101);
        ab.merge(&c);
        assert!(!ab.estimate().exact);
        assert_eq!(ab, sketch_of("m", 0..101));
    }

    #[test]
    fn merge_equals_sketch_of_union() {
        let cases: &[(std::ops::Range<u64>, std::ops::Range<u64>)] = &[
            (0..0, 0..0),
            (0..10, 10..20),  // disjoint, exact
            (0..50, 25..75),  // overlapping, exact
            (0..80, 50..130), // overlapping, exact + HLL
            (0..500, 0..30),  // HLL + exact subset
            (0..30, 0..500),  // exact + HLL superset
            (0..600, 600..5000),
            (0..3000, 1000..9000),
            (0..100, 100..200), // disjoint, exact + exact → HLL
        ];
        for (ra, rb) in cases {
            let a = sketch_of("u", ra.clone());
            let b = sketch_of("u", rb.clone());
            let union = sketch_of("u", ra.start.min(rb.start)..ra.end.max(rb.end));
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            assert_eq!(ab, union, "{ra:?} ∪ {rb:?}");
            assert_eq!(ba, union, "{rb:?} ∪ {ra:?}");
            // Idempotent.
            let mut aa = a.clone();
            aa.merge(&a);
            assert_eq!(aa, a);
        }
    }

    #[test]
    fn merge_order_does_not_matter() {
        // Pieces of varied sizes, overlapping, mixing exact and HLL sketches.
        let pieces: Vec<VisitorSketch> = [
            (0u64, 40u64),
            (30, 95),
            (90, 160),
            (150, 170),
            (1000, 1050),
            (2000, 4000),
            (5, 7),
        ]
        .iter()
        .map(|&(a, b)| sketch_of("o", a..b))
        .collect();
        // Reference: every id of the union inserted one by one (this also
        // checks `sketch_of` against `format!` + `insert`).
        let mut all = VisitorSketch::new();
        for &(a, b) in &[(0u64, 170u64), (1000, 1050), (2000, 4000)] {
            let mut id = String::new();
            for i in a..b {
                id.clear();
                write!(id, "o-{i}").unwrap();
                all.insert(&id);
            }
        }
        // Left fold.
        let mut left = VisitorSketch::new();
        for p in &pieces {
            left.merge(p);
        }
        // Right fold.
        let mut right = VisitorSketch::new();
        for p in pieces.iter().rev() {
            right.merge(p);
        }
        // Tree: ((0 1) (2 3)) ((4 5) 6).
        let pair = |x: &VisitorSketch, y: &VisitorSketch| {
            let mut s = x.clone();
            s.merge(y);
            s
        };
        let t = pair(
            &pair(&pair(&pieces[0], &pieces[1]), &pair(&pieces[2], &pieces[3])),
            &pair(&pair(&pieces[4], &pieces[5]), &pieces[6]),
        );
        assert_eq!(registers(&left), registers(&all));
        assert_eq!(registers(&right), registers(&all));
        assert_eq!(registers(&t), registers(&all));
        assert_eq!(left, right);
        assert_eq!(left, t);
    }

    #[test]
    fn round_trip_every_mode() {
        let empty = VisitorSketch::new();
        let exact = sketch_of("r", 0..77);
        let full_exact = sketch_of("r", 0..100);
        let sparse = sketch_of("r", 0..500);
        let dense = sketch_of("r", 0..20_000);
        let bytes = encoded(&empty);
        assert_eq!(bytes, [TAG_EXACT, 0]);
        assert_eq!(encoded(&exact).len(), 2 + 8 * 77);
        assert_eq!(encoded(&full_exact).len(), 2 + 8 * 100);
        let sb = encoded(&sparse);
        assert_eq!(sb[0], TAG_SPARSE);
        assert!(sb.len() < 1 + REGISTERS);
        let db = encoded(&dense);
        assert_eq!(db[0], TAG_DENSE);
        assert_eq!(db.len(), 1 + REGISTERS);
        for s in [&empty, &exact, &full_exact, &sparse, &dense] {
            let bytes = encoded(s);
            let back = VisitorSketch::decode(&bytes).unwrap();
            assert_eq!(&back, s);
            assert_eq!(back.estimate(), s.estimate());
            // encode appends.
            let mut out = vec![0xEE];
            s.encode(&mut out);
            assert_eq!(&out[1..], &bytes[..]);
        }
    }

    #[test]
    fn sparse_dense_threshold() {
        // Find sketches just below and above 1364 non-zero registers.
        let mut s = VisitorSketch::new();
        let mut i = 0u64;
        let mut saw_sparse_max = false;
        let mut saw_dense = false;
        while !saw_dense {
            s.insert_hash(fmix64(i));
            i += 1;
            if let Repr::Hll(regs) = &s.repr {
                let nz = regs.iter().filter(|&&r| r != 0).count();
                let b = encoded(&s);
                if nz <= 1364 {
                    assert_eq!(b[0], TAG_SPARSE);
                    assert_eq!(b.len(), 3 + 3 * nz);
                    saw_sparse_max |= nz == 1364;
                } else {
                    assert_eq!(b[0], TAG_DENSE);
                    saw_dense = true;
                }
                assert_eq!(VisitorSketch::decode(&b).unwrap(), s);
            }
        }
        assert!(saw_sparse_max);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for s in [
            VisitorSketch::new(),
            sketch_of("t", 0..40),
            sketch_of("t", 0..300),
            sketch_of("t", 0..20_000),
        ] {
            let bytes = encoded(&s);
            for len in 0..bytes.len() {
                assert!(
                    VisitorSketch::decode(&bytes[..len]).is_err(),
                    "prefix of {len} of {} bytes decoded",
                    bytes.len()
                );
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(
                VisitorSketch::decode(&long),
                Err(SketchError::TrailingBytes(1))
            );
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        use SketchError::*;
        assert_eq!(VisitorSketch::decode(&[]), Err(Truncated));
        assert_eq!(VisitorSketch::decode(&[0x00]), Err(UnknownTag(0)));
        assert_eq!(VisitorSketch::decode(&[0x04, 0]), Err(UnknownTag(4)));
        // Exact: too many hashes.
        assert!(matches!(
            VisitorSketch::decode(&[TAG_EXACT, 101]),
            Err(Invalid(_))
        ));
        // Exact: not sorted / duplicates.
        let mut b = vec![TAG_EXACT, 2];
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&5u64.to_le_bytes());
        assert!(matches!(VisitorSketch::decode(&b), Err(Invalid(_))));
        let mut b = vec![TAG_EXACT, 2];
        b.extend_from_slice(&6u64.to_le_bytes());
        b.extend_from_slice(&5u64.to_le_bytes());
        assert!(matches!(VisitorSketch::decode(&b), Err(Invalid(_))));
        // Sparse: zero count, bad index, bad value, unordered.
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 0, 0]),
            Err(Invalid(_))
        ));
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 0x01, 0x10]),
            Err(Invalid(_))
        ));
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 1, 0, 0x00, 0x10, 5]),
            Err(Invalid(_))
        ));
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 1, 0, 7, 0, 0]),
            Err(Invalid(_))
        ));
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 1, 0, 7, 0, 54]),
            Err(Invalid(_))
        ));
        assert!(matches!(
            VisitorSketch::decode(&[TAG_SPARSE, 2, 0, 7, 0, 1, 7, 0, 2]),
            Err(Invalid(_))
        ));
        assert!(VisitorSketch::decode(&[TAG_SPARSE, 2, 0, 7, 0, 1, 8, 0, 53]).is_ok());
        // Dense: value out of range.
        let mut b = vec![TAG_DENSE];
        b.extend_from_slice(&[1u8; REGISTERS]);
        assert!(VisitorSketch::decode(&b).is_ok());
        b[100] = 54;
        assert!(matches!(VisitorSketch::decode(&b), Err(Invalid(_))));
        // Arbitrary garbage never panics.
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..300 {
            let mut g = Vec::with_capacity(len);
            for _ in 0..len {
                x = fmix64(x.wrapping_add(0x9e37_79b9_7f4a_7c15));
                g.push(x as u8);
            }
            if let Some(first) = g.first_mut() {
                *first = (*first % 4) + 1;
            }
            let _ = VisitorSketch::decode(&g);
        }
    }

    #[test]
    fn sigma_tau_edges() {
        assert_eq!(sigma(0.0), 0.0);
        assert!(sigma(1.0).is_infinite());
        assert_eq!(tau(0.0), 0.0);
        assert_eq!(tau(1.0), 0.0);
        // σ(x) ≈ x + x² for small x.
        assert!((sigma(0.01) - (0.01 + 0.0001 + 2.0 * 1e-8)).abs() < 1e-12);
    }

    /// Relative error statistics over 8 seeds per cardinality. Run with
    /// `--nocapture` to see the table.
    #[test]
    fn error_statistics() {
        let ns: [u64; 9] = [
            101, 150, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 1_000_000,
        ];
        let mut jobs = Vec::new();
        for &n in &ns {
            for seed in 0..8 {
                jobs.push((n, seed));
            }
        }
        // Spread the work over a few threads.
        let threads = std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
            .min(8);
        let errors: Vec<(u64, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let jobs = &jobs;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for &(n, seed) in jobs.iter().skip(t).step_by(threads) {
                            let s = sketch_of(&seed.to_string(), 0..n);
                            let e = s.estimate();
                            assert!(!e.exact);
                            out.push((n, (e.count as f64 - n as f64).abs() / n as f64));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        println!("{:>10} {:>6} {:>9} {:>9}", "n", "seeds", "mean", "max");
        for &n in &ns {
            let errs: Vec<f64> = errors.iter().filter(|e| e.0 == n).map(|e| e.1).collect();
            let mean = errs.iter().sum::<f64>() / errs.len() as f64;
            let max = errs.iter().cloned().fold(0.0, f64::max);
            println!(
                "{n:>10} {:>6} {:>8.3}% {:>8.3}%",
                errs.len(),
                mean * 100.0,
                max * 100.0
            );
            assert!(mean < 0.02, "n={n}: mean relative error {mean}");
            assert!(max < 0.06, "n={n}: max relative error {max}");
        }
    }
}

//! `DelayHistogram`: a mergeable histogram of delays in whole seconds, used
//! for the median time from scan to signup over many rollup cells.
//!
//! # Bins
//!
//! Log-linear (HDR style), integer math only. A delay `v` (seconds, `u64`)
//! falls in bin `v` when `v < 64`. Otherwise, with `e = floor(log2 v)` (≥ 6)
//! and `m` the 6 bits of `v` just below its top bit,
//! `m = (v >> (e - 6)) & 63`, the bin is `64 + (e - 6) * 64 + m`. Each octave
//! `[2^e, 2^(e+1))` is split into 64 equal bins of width `2^(e-6)`, so the
//! largest bin id is [`MAX_BIN`] = 3775 and every id fits in a `u16` (one of
//! the backends stores histograms in ClickHouse as
//! `sumMap(Array(UInt16), Array(UInt64))`).
//!
//! [`bin_value`] is the exact value for bins of one second (below 128) and
//! the middle of the bin's whole seconds otherwise, which is within 1/128
//! (relative) of every value in the bin.
//!
//! # Encoding (version 1)
//!
//! ```text
//! 0x01                      version
//! varint  k                 number of non-empty bins (0..=3776)
//! k × (varint gap, varint count)
//! ```
//!
//! Bins are written in increasing order; `gap` is the bin id minus the
//! previous bin id minus one (for the first bin: the bin id itself), and
//! `count` is at least 1. Varints are unsigned LEB128 (7 bits a byte, low
//! bits first, at most 10 bytes, minimal length). [`DelayHistogram::decode`]
//! rejects an unknown version, truncated input, trailing bytes, non-minimal or
//! overflowing varints, bin ids above [`MAX_BIN`] and zero counts.

use std::collections::BTreeMap;

/// The largest bin id [`bin_of`] returns (the bin of `u64::MAX`).
pub const MAX_BIN: u16 = 64 + (63 - 6) * 64 + 63;

/// Bins below this hold exactly one value each.
const LINEAR_BINS: u64 = 64;

const VERSION: u8 = 0x01;

/// The bin of a delay of `secs` seconds.
pub fn bin_of(secs: u64) -> u16 {
    if secs < LINEAR_BINS {
        return secs as u16;
    }
    let e = 63 - secs.leading_zeros();
    let m = (secs >> (e - 6)) & 63;
    (64 + (u64::from(e) - 6) * 64 + m) as u16
}

/// The values of a bin: inclusive low, exclusive high.
///
/// For [`MAX_BIN`], whose true exclusive bound is 2^64, the high end is
/// `u64::MAX`. Ids above [`MAX_BIN`] (never produced by [`bin_of`]) are
/// treated as [`MAX_BIN`].
pub fn bin_range(bin: u16) -> (u64, u64) {
    let bin = bin.min(MAX_BIN);
    if u64::from(bin) < LINEAR_BINS {
        let v = u64::from(bin);
        return (v, v + 1);
    }
    let k = u64::from(bin) - 64;
    let shift = k / 64;
    let m = k % 64;
    let low = (64 + m) << shift;
    let high = u64::try_from(u128::from(65 + m) << shift).unwrap_or(u64::MAX);
    (low, high)
}

/// The representative value of a bin: exact below 64, else the midpoint of
/// [`bin_range`] (`low + width / 2`).
pub fn bin_value(bin: u16) -> f64 {
    let bin = bin.min(MAX_BIN);
    if u64::from(bin) < LINEAR_BINS {
        return f64::from(bin);
    }
    let (low, _) = bin_range(bin);
    let shift = (u64::from(bin) - 64) / 64;
    // The middle of the whole seconds low..=high-1, so one-second bins are
    // exact. Both terms are exact in f64 (low has at most 7 significant bits).
    low as f64 + ((1u64 << shift) - 1) as f64 / 2.0
}

/// Why [`DelayHistogram::decode`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    #[error("delay histogram: input is truncated")]
    Truncated,
    #[error("delay histogram: unknown version {0:#04x}")]
    UnknownVersion(u8),
    #[error("delay histogram: {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("delay histogram: invalid contents: {0}")]
    Invalid(&'static str),
}

/// Counts of delays per bin.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct DelayHistogram {
    /// Bin id → count; never holds a zero count.
    bins: BTreeMap<u16, u64>,
}

impl DelayHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one delay of `secs` seconds.
    pub fn add_secs(&mut self, secs: u64) {
        self.add_bin(bin_of(secs), 1);
    }

    /// Adds `count` delays in `bin` (as read back from storage). Ids above
    /// [`MAX_BIN`] are counted in [`MAX_BIN`]; counts saturate.
    pub fn add_bin(&mut self, bin: u16, count: u64) {
        if count == 0 {
            return;
        }
        let c = self.bins.entry(bin.min(MAX_BIN)).or_insert(0);
        *c = c.saturating_add(count);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &DelayHistogram) {
        for (&bin, &count) in &other.bins {
            self.add_bin(bin, count);
        }
    }

    /// The number of delays (saturating).
    pub fn count(&self) -> u64 {
        self.bins.values().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// `true` when no delay has been added.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The non-empty bins and their counts, in bin order.
    pub fn bins(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.bins.iter().map(|(&b, &c)| (b, c))
    }

    /// The median delay in seconds: with the `n` delays sorted, the middle one
    /// (`n` odd) or the mean of the two middle ones (`n` even), each taken as
    /// the [`bin_value`] of its bin. `None` when empty.
    pub fn median_secs(&self) -> Option<f64> {
        let n: u128 = self.bins.values().map(|&c| u128::from(c)).sum();
        if n == 0 {
            return None;
        }
        if n % 2 == 1 {
            Some(self.value_at_rank((n - 1) / 2))
        } else {
            let lo = self.value_at_rank(n / 2 - 1);
            let hi = self.value_at_rank(n / 2);
            Some((lo + hi) / 2.0)
        }
    }

    /// `bin_value` of the bin holding the delay of 0-based rank `rank`
    /// (`rank` < total count).
    fn value_at_rank(&self, rank: u128) -> f64 {
        let mut seen: u128 = 0;
        for (&bin, &count) in &self.bins {
            seen += u128::from(count);
            if rank < seen {
                return bin_value(bin);
            }
        }
        // Unreachable for rank < total; fall back to the last bin.
        self.bins.keys().next_back().map_or(0.0, |&b| bin_value(b))
    }

    /// Appends the binary form (see the module documentation) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_varint(out, self.bins.len() as u64);
        let mut next: u64 = 0;
        for (&bin, &count) in &self.bins {
            put_varint(out, u64::from(bin) - next);
            put_varint(out, count);
            next = u64::from(bin) + 1;
        }
    }

    /// Parses the output of [`encode`](Self::encode). The whole input must be
    /// one histogram.
    pub fn decode(bytes: &[u8]) -> Result<DelayHistogram, HistogramError> {
        let (&version, mut rest) = bytes.split_first().ok_or(HistogramError::Truncated)?;
        if version != VERSION {
            return Err(HistogramError::UnknownVersion(version));
        }
        let k = get_varint(&mut rest)?;
        if k > u64::from(MAX_BIN) + 1 {
            return Err(HistogramError::Invalid("too many bins"));
        }
        let mut bins = BTreeMap::new();
        let mut next: u64 = 0;
        for _ in 0..k {
            let gap = get_varint(&mut rest)?;
            let count = get_varint(&mut rest)?;
            let bin = next
                .checked_add(gap)
                .filter(|&b| b <= u64::from(MAX_BIN))
                .ok_or(HistogramError::Invalid("bin id out of range"))?;
            if count == 0 {
                return Err(HistogramError::Invalid("zero count"));
            }
            bins.insert(bin as u16, count);
            next = bin + 1;
        }
        if !rest.is_empty() {
            return Err(HistogramError::TrailingBytes(rest.len()));
        }
        Ok(DelayHistogram { bins })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal unsigned LEB128 `u64` from the front of `input`.
fn get_varint(input: &mut &[u8]) -> Result<u64, HistogramError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or(HistogramError::Truncated)?;
        *input = rest;
        let payload = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err(HistogramError::Invalid("varint overflows u64"));
        }
        v |= payload << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(HistogramError::Invalid("non-minimal varint"));
            }
            return Ok(v);
        }
    }
    Err(HistogramError::Invalid("varint overflows u64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, for reproducible test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Log-uniform-ish values: a random number of bits, then random bits.
        fn wide(&mut self) -> u64 {
            let bits = self.next() % 65;
            if bits == 0 {
                0
            } else {
                self.next() >> (64 - bits)
            }
        }
    }

    fn hist_of(values: &[u64]) -> DelayHistogram {
        let mut h = DelayHistogram::new();
        for &v in values {
            h.add_secs(v);
        }
        h
    }

    fn encoded(h: &DelayHistogram) -> Vec<u8> {
        let mut out = Vec::new();
        h.encode(&mut out);
        out
    }

    fn rel_err(approx: f64, exact: f64) -> f64 {
        if exact == 0.0 {
            approx.abs()
        } else {
            (approx - exact).abs() / exact
        }
    }

    #[test]
    fn bin_boundaries() {
        for v in 0..64 {
            assert_eq!(bin_of(v), v as u16);
            assert_eq!(bin_range(v as u16), (v, v + 1));
            assert_eq!(bin_value(v as u16), v as f64);
        }
        assert_eq!(bin_of(64), 64);
        assert_eq!(bin_of(127), 127);
        assert_eq!(bin_of(128), 128);
        assert_eq!(bin_of(129), 128);
        assert_eq!(bin_of(130), 129);
        assert_eq!(bin_of(255), 191);
        assert_eq!(bin_of(256), 192);
        assert_eq!(bin_of(u64::MAX), MAX_BIN);
        assert_eq!(MAX_BIN, 3775);
        assert_eq!(bin_range(64), (64, 65));
        assert_eq!(bin_value(64), 64.0);
        assert_eq!(bin_range(128), (128, 130));
        assert_eq!(bin_value(128), 128.5);
        assert_eq!(bin_range(MAX_BIN), (127 << 57, u64::MAX));
        assert_eq!(bin_range(u16::MAX), bin_range(MAX_BIN));
    }

    #[test]
    fn bins_tile_the_u64_range() {
        let mut expected_low = 0u64;
        for bin in 0..=MAX_BIN {
            let (low, high) = bin_range(bin);
            assert_eq!(low, expected_low, "bin {bin}");
            assert!(high > low);
            assert_eq!(bin_of(low), bin);
            assert_eq!(bin_of(high - 1), bin);
            if bin < MAX_BIN {
                assert_eq!(bin_of(high), bin + 1);
            }
            expected_low = high;
        }
        assert_eq!(expected_low, u64::MAX);
        // Random values land in a bin containing them.
        let mut rng = Rng(7);
        for _ in 0..100_000 {
            let v = rng.wide();
            let (low, high) = bin_range(bin_of(v));
            assert!(low <= v && (v < high || v == u64::MAX), "{v}");
        }
    }

    #[test]
    fn bin_value_relative_error_at_most_1_128() {
        let bound = 1.0 / 128.0;
        let mut worst = 0.0f64;
        for bin in 0..=MAX_BIN {
            let (low, high) = bin_range(bin);
            let mid = bin_value(bin);
            assert!(low as f64 <= mid && mid <= high as f64);
            for v in [low, low + (high - low) / 2, high - 1] {
                let e = rel_err(mid, v as f64);
                worst = worst.max(e);
                assert!(e <= bound, "bin {bin} v {v}: {e}");
            }
        }
        assert_eq!(worst, bound); // reached at v = 64
        let mut rng = Rng(11);
        for _ in 0..100_000 {
            let v = rng.wide();
            assert!(rel_err(bin_value(bin_of(v)), v as f64) <= bound, "{v}");
        }
    }

    #[test]
    fn exact_medians_for_small_delays() {
        let cases: &[(&[u64], f64)] = &[
            (&[5], 5.0),
            (&[0], 0.0),
            (&[1, 2], 1.5),
            (&[3, 1, 2], 2.0),
            (&[40, 10, 30, 20], 25.0),
            (&[7, 7, 7, 8], 7.0),
            (&[7, 7, 8, 8], 7.5),
            (&[0, 0, 63, 63, 63], 63.0),
            (&[63, 0, 0, 1], 0.5),
        ];
        for (values, median) in cases {
            assert_eq!(hist_of(values).median_secs(), Some(*median), "{values:?}");
        }
        assert_eq!(DelayHistogram::new().median_secs(), None);
        // add_bin with counts behaves like repeated add_secs.
        let mut h = DelayHistogram::new();
        h.add_bin(10, 3);
        h.add_bin(20, 3);
        h.add_bin(30, 0);
        assert_eq!(h.count(), 6);
        assert_eq!(h.median_secs(), Some(15.0));
        h.add_bin(20, 1);
        assert_eq!(h.median_secs(), Some(20.0));
    }

    #[test]
    fn medians_of_large_values_within_1_128() {
        let mut rng = Rng(42);
        for trial in 0..200 {
            let n = 1 + (rng.next() % 500) as usize;
            let scale = 1 + rng.next() % 1_000_000;
            let mut values: Vec<u64> = (0..n)
                .map(|_| {
                    if trial % 4 == 0 {
                        rng.wide()
                    } else {
                        64 + rng.next() % scale
                    }
                })
                .collect();
            let h = hist_of(&values);
            values.sort_unstable();
            let truth = if n % 2 == 1 {
                values[n / 2] as f64
            } else {
                (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0
            };
            let got = h.median_secs().unwrap();
            assert!(
                rel_err(got, truth) <= 1.0 / 128.0 + 1e-12,
                "trial {trial}: n {n} got {got} truth {truth}"
            );
        }
    }

    #[test]
    fn merge_is_histogram_of_union() {
        let mut rng = Rng(3);
        for _ in 0..50 {
            let a: Vec<u64> = (0..rng.next() % 200).map(|_| rng.wide() >> 20).collect();
            let b: Vec<u64> = (0..rng.next() % 200).map(|_| rng.wide() >> 20).collect();
            let mut ha = hist_of(&a);
            let hb = hist_of(&b);
            let union: Vec<u64> = a.iter().chain(&b).copied().collect();
            let mut hba = hb.clone();
            hba.merge(&ha);
            ha.merge(&hb);
            assert_eq!(ha, hist_of(&union));
            assert_eq!(hba, ha);
            assert_eq!(ha.count(), union.len() as u64);
        }
        let bins: Vec<(u16, u64)> = hist_of(&[500, 3, 3, 70]).bins().collect();
        assert_eq!(bins, vec![(3, 2), (70, 1), (bin_of(500), 1)]);
    }

    #[test]
    fn round_trip() {
        let mut rng = Rng(5);
        let mut cases = vec![
            DelayHistogram::new(),
            hist_of(&[0]),
            hist_of(&[0, 1, 2, 63, 64, 1000, u64::MAX]),
            hist_of(&(0..10_000).map(|_| rng.wide()).collect::<Vec<_>>()),
        ];
        let mut big = DelayHistogram::new();
        big.add_bin(0, u64::MAX);
        big.add_bin(MAX_BIN, 1);
        cases.push(big);
        let mut every = DelayHistogram::new();
        for bin in 0..=MAX_BIN {
            every.add_bin(bin, u64::from(bin) + 1);
        }
        cases.push(every);
        for h in &cases {
            let bytes = encoded(h);
            assert_eq!(DelayHistogram::decode(&bytes).as_ref(), Ok(h));
            let mut out = vec![9];
            h.encode(&mut out);
            assert_eq!(&out[1..], &bytes[..]);
        }
        assert_eq!(encoded(&DelayHistogram::new()), [VERSION, 0]);
        assert_eq!(encoded(&hist_of(&[5, 5, 7])), [VERSION, 2, 5, 2, 1, 1]);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        use HistogramError::*;
        let valid = encoded(&hist_of(&[0, 5, 5, 300, 70_000, u64::MAX]));
        for len in 0..valid.len() {
            assert!(
                DelayHistogram::decode(&valid[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut long = valid.clone();
        long.push(0);
        assert_eq!(DelayHistogram::decode(&long), Err(TrailingBytes(1)));
        assert_eq!(DelayHistogram::decode(&[]), Err(Truncated));
        assert_eq!(DelayHistogram::decode(&[2, 0]), Err(UnknownVersion(2)));
        // Bin id above MAX_BIN (3776 = 0xC0 0x1D).
        assert!(matches!(
            DelayHistogram::decode(&[VERSION, 1, 0xC0, 0x1D, 1]),
            Err(Invalid(_))
        ));
        // The last valid bin id is accepted.
        assert!(DelayHistogram::decode(&[VERSION, 1, 0xBF, 0x1D, 1]).is_ok());
        // Gap pushes the second bin past MAX_BIN.
        assert!(matches!(
            DelayHistogram::decode(&[VERSION, 2, 0xBF, 0x1D, 1, 0, 1]),
            Err(Invalid(_))
        ));
        // Zero count.
        assert!(matches!(
            DelayHistogram::decode(&[VERSION, 1, 3, 0]),
            Err(Invalid(_))
        ));
        // Non-minimal varint.
        assert!(matches!(
            DelayHistogram::decode(&[VERSION, 1, 0x83, 0x00, 1]),
            Err(Invalid(_))
        ));
        // Varint longer than 10 bytes / overflowing u64.
        let mut b = vec![VERSION, 1, 0];
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x02);
        assert!(matches!(DelayHistogram::decode(&b), Err(Invalid(_))));
        let mut b = vec![VERSION, 1, 0];
        b.extend_from_slice(&[0xff; 10]);
        b.push(0x01);
        assert!(matches!(DelayHistogram::decode(&b), Err(Invalid(_))));
        // u64::MAX count is fine.
        let mut b = vec![VERSION, 1, 0];
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x01);
        assert_eq!(DelayHistogram::decode(&b).unwrap().count(), u64::MAX);
        // Too many bins.
        assert!(matches!(
            DelayHistogram::decode(&[VERSION, 0xC1, 0x1D]),
            Err(Invalid(_))
        ));
        // Garbage never panics.
        let mut rng = Rng(99);
        for len in 0..400 {
            let mut g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = g.first_mut() {
                *first = VERSION;
            }
            let _ = DelayHistogram::decode(&g);
        }
    }
}

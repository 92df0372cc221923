//! How the embedded store keeps rollup cells: one value per (scope, grain,
//! bucket) holding every cell of that bucket (a *block*), so that a quiet code
//! costs one entry per bucket and a busy one rewrites one entry per batch.
//!
//! Scan block (version 3): `3u8`, then for each [`Dim`] in order a section,
//! `len: varint` + bytes: `count: varint`, then per value (sorted) the value
//! (`str`), `human`, `bot`, `suspect`, `qr`, `link` (varints) and the visitor
//! sketch (`bytes`, [`VisitorSketch::encode`]). A reader that wants one
//! dimension skips the other sections by their length. Version 2 (written
//! before the `route` dimension) has 10 sections, not 11: no route cells. Version 1 (written
//! before suspects were told apart) has no `suspect`, read as 0.
//!
//! Conversion block (version 2): `2u8`, `count: varint`, then per cell (sorted
//! by key) `dim: u8`, value, owner, kind (`u8`), currency, earnings currency
//! (`str`s), `n: varint`, amount and earnings (`i128`), delays (`bytes`,
//! [`DelayHistogram::encode`]), then flagged and held (`i128`, signed sums of
//! review adjustments). Version 1 (written before reviews) is the same
//! without the last two, read as zeros.
//!
//! Totals (version 1): `1u8`, `human: varint`, `count: varint`, then per
//! (owner, kind, earnings currency): owner, kind (`u8`), earnings currency,
//! `n: varint`, earnings (`i128`).

use super::{ConversionDelta, Dim, ScanDelta, TotalsDelta};
use crate::codec::{put_bytes, put_i128, put_str, put_varint, Malformed, Reader};
use crate::event::ConversionKind;
use crate::histogram::DelayHistogram;
use crate::sketch::VisitorSketch;
use std::collections::BTreeMap;

const VERSION: u8 = 1;
/// The scan block's own version (see the module docs).
const SCAN_VERSION: u8 = 3;
/// Conversion blocks: 2 since reviews (flagged, held); 1 is still read.
const CONVERSION_VERSION: u8 = 2;

/// One stored scan cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanCell {
    pub human: u64,
    /// Every scan not human (bots and suspects).
    pub bot: u64,
    /// The suspects among `bot`.
    pub suspect: u64,
    pub qr: u64,
    pub link: u64,
    pub visitors: VisitorSketch,
}

impl ScanCell {
    pub fn add(&mut self, d: &ScanDelta) {
        self.human += d.human;
        self.bot += d.bot;
        self.suspect += d.suspect;
        self.qr += d.qr;
        self.link += d.link;
        for &h in &d.visitors {
            self.visitors.insert_hash(h);
        }
    }

    pub fn merge(&mut self, other: &ScanCell) {
        self.human += other.human;
        self.bot += other.bot;
        self.suspect += other.suspect;
        self.qr += other.qr;
        self.link += other.link;
        self.visitors.merge(&other.visitors);
    }
}

/// Every scan cell of one (scope, grain, bucket), by dimension and value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanBlock {
    pub dims: [BTreeMap<String, ScanCell>; 11],
}

impl ScanBlock {
    pub fn add(&mut self, dim: Dim, value: &str, d: &ScanDelta) {
        let cells = &mut self.dims[dim as usize];
        match cells.get_mut(value) {
            Some(c) => c.add(d),
            None => {
                let mut c = ScanCell::default();
                c.add(d);
                cells.insert(value.to_string(), c);
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SCAN_VERSION];
        let mut section = Vec::new();
        let mut sketch = Vec::new();
        for cells in &self.dims {
            section.clear();
            put_varint(&mut section, cells.len() as u64);
            for (value, c) in cells {
                put_str(&mut section, value);
                for n in [c.human, c.bot, c.suspect, c.qr, c.link] {
                    put_varint(&mut section, n);
                }
                sketch.clear();
                c.visitors.encode(&mut sketch);
                put_bytes(&mut section, &sketch);
            }
            put_bytes(&mut out, &section);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let mut block = ScanBlock::default();
        for dim in Dim::ALL {
            for item in cells_of(bytes, dim)? {
                let (value, cell) = item?;
                block.dims[dim as usize].insert(value.to_string(), cell);
            }
        }
        Ok(block)
    }
}

/// The cells of one dimension in an encoded scan block, without decoding the
/// others.
pub fn cells_of(
    bytes: &[u8],
    dim: Dim,
) -> Result<impl Iterator<Item = Result<(&str, ScanCell), Malformed>>, Malformed> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if !(1..=SCAN_VERSION).contains(&version) {
        return Err(Malformed("unknown scan block version"));
    }
    for _ in 0..dim as u8 {
        r.bytes()?;
    }
    // Blocks of versions 1 and 2 were written before the `route` dimension
    // existed and end before its section: no cells.
    let mut section = if version < 3 && dim == Dim::Route {
        Reader(&[])
    } else {
        Reader(r.bytes()?)
    };
    let count = if version < 3 && dim == Dim::Route {
        0
    } else {
        section.varint()?
    };
    Ok((0..count).map(move |_| {
        let value = section.str()?;
        let mut n = [0u64; 5];
        for (i, slot) in n.iter_mut().enumerate() {
            // Version 1 has no `suspect` (index 2).
            if version == 1 && i == 2 {
                continue;
            }
            *slot = section.varint()?;
        }
        let visitors =
            VisitorSketch::decode(section.bytes()?).map_err(|_| Malformed("visitor sketch"))?;
        let [human, bot, suspect, qr, link] = n;
        Ok((
            value,
            ScanCell {
                human,
                bot,
                suspect,
                qr,
                link,
                visitors,
            },
        ))
    }))
}

/// One stored conversion cell's key within its block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversionCellKey {
    pub dim: Dim,
    pub value: String,
    pub owner: String,
    pub kind: ConversionKind,
    pub currency: String,
    pub earnings_currency: String,
}

/// One stored conversion cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionCell {
    pub n: u64,
    pub amount: i128,
    pub earnings: i128,
    pub delays: DelayHistogram,
    /// See [`ConversionDelta::flagged`].
    pub flagged: i64,
    /// See [`ConversionDelta::held`].
    pub held: i128,
}

impl ConversionCell {
    pub fn add(&mut self, d: &ConversionDelta) {
        self.n += d.n;
        self.amount += d.amount;
        self.earnings += d.earnings;
        self.flagged += d.flagged;
        self.held += d.held;
        self.delays.merge(&d.delays);
    }
}

/// Every conversion cell of one (scope, grain, bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionBlock {
    pub cells: BTreeMap<ConversionCellKey, ConversionCell>,
}

fn kind_byte(k: ConversionKind) -> u8 {
    match k {
        ConversionKind::Signup => 0,
        ConversionKind::Purchase => 1,
        ConversionKind::Refund => 2,
    }
}

fn kind_of(b: u8) -> Result<ConversionKind, Malformed> {
    match b {
        0 => Ok(ConversionKind::Signup),
        1 => Ok(ConversionKind::Purchase),
        2 => Ok(ConversionKind::Refund),
        _ => Err(Malformed("conversion kind")),
    }
}

impl ConversionBlock {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONVERSION_VERSION];
        put_varint(&mut out, self.cells.len() as u64);
        let mut delays = Vec::new();
        for (k, c) in &self.cells {
            out.push(k.dim as u8);
            put_str(&mut out, &k.value);
            put_str(&mut out, &k.owner);
            out.push(kind_byte(k.kind));
            put_str(&mut out, &k.currency);
            put_str(&mut out, &k.earnings_currency);
            put_varint(&mut out, c.n);
            put_i128(&mut out, c.amount);
            put_i128(&mut out, c.earnings);
            delays.clear();
            c.delays.encode(&mut delays);
            put_bytes(&mut out, &delays);
            put_i128(&mut out, i128::from(c.flagged));
            put_i128(&mut out, c.held);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let mut cells = BTreeMap::new();
        for item in conversion_cells_of(bytes, None)? {
            let (k, cell) = item?;
            cells.insert(k.to_owned(), cell);
        }
        Ok(Self { cells })
    }
}

/// A conversion cell's key borrowed from an encoded block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversionCellRef<'a> {
    pub dim: Dim,
    pub value: &'a str,
    pub owner: &'a str,
    pub kind: ConversionKind,
    pub currency: &'a str,
    pub earnings_currency: &'a str,
}

impl ConversionCellRef<'_> {
    pub fn to_owned(self) -> ConversionCellKey {
        ConversionCellKey {
            dim: self.dim,
            value: self.value.to_string(),
            owner: self.owner.to_string(),
            kind: self.kind,
            currency: self.currency.to_string(),
            earnings_currency: self.earnings_currency.to_string(),
        }
    }
}

/// The cells of an encoded conversion block, of dimension `dim` only (all
/// when `None`), with keys borrowed from `bytes`: the cells of other
/// dimensions are skipped without decoding their counts or delays. The last
/// item is an error when the block has trailing bytes.
pub fn conversion_cells_of(
    bytes: &[u8],
    dim: Option<Dim>,
) -> Result<
    impl Iterator<Item = Result<(ConversionCellRef<'_>, ConversionCell), Malformed>>,
    Malformed,
> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != 1 && version != CONVERSION_VERSION {
        return Err(Malformed("unknown conversion block version"));
    }
    let count = r.varint()?;
    Ok(entries(r, count, move |r| {
        next_conversion_cell(r, dim, version)
    }))
}

/// `count` entries read by `next` from `r` (those it maps to `None` are
/// skipped), then an error if bytes are left over; nothing after an error.
fn entries<'a, T, F>(
    mut r: Reader<'a>,
    mut count: u64,
    mut next: F,
) -> impl Iterator<Item = Result<T, Malformed>> + use<'a, T, F>
where
    F: FnMut(&mut Reader<'a>) -> Result<Option<T>, Malformed>,
{
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        if count == 0 {
            done = true;
            return (!r.is_empty()).then_some(Err(Malformed("trailing bytes")));
        }
        count -= 1;
        match next(&mut r) {
            Ok(Some(item)) => return Some(Ok(item)),
            Ok(None) => continue,
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        }
    })
}

/// Reads one cell; `None` when it is of another dimension than `want`.
fn next_conversion_cell<'a>(
    r: &mut Reader<'a>,
    want: Option<Dim>,
    version: u8,
) -> Result<Option<(ConversionCellRef<'a>, ConversionCell)>, Malformed> {
    let dim = Dim::from_u8(r.u8()?).ok_or(Malformed("dimension"))?;
    let value = r.str()?;
    let owner = r.str()?;
    let kind = kind_of(r.u8()?)?;
    let currency = r.str()?;
    let earnings_currency = r.str()?;
    let n = r.varint()?;
    let amount = r.i128()?;
    let earnings = r.i128()?;
    let delays = r.bytes()?;
    let (flagged, held) = if version >= 2 {
        let flagged = i64::try_from(r.i128()?).map_err(|_| Malformed("flagged"))?;
        (flagged, r.i128()?)
    } else {
        (0, 0)
    };
    if want.is_some_and(|w| w != dim) {
        return Ok(None);
    }
    let key = ConversionCellRef {
        dim,
        value,
        owner,
        kind,
        currency,
        earnings_currency,
    };
    let cell = ConversionCell {
        n,
        amount,
        earnings,
        delays: DelayHistogram::decode(delays).map_err(|_| Malformed("delays"))?,
        flagged,
        held,
    };
    Ok(Some((key, cell)))
}

/// A code's stored totals in one bucket (see [`super::TotalsKey`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub human: u64,
    pub conversions: BTreeMap<(String, ConversionKind, String), (u64, i128)>,
}

impl Totals {
    pub fn add(&mut self, d: &TotalsDelta) {
        self.human += d.human;
        for (k, (n, e)) in &d.conversions {
            let slot = self.conversions.entry(k.clone()).or_default();
            slot.0 += n;
            slot.1 += e;
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put_varint(&mut out, self.human);
        put_varint(&mut out, self.conversions.len() as u64);
        for ((owner, kind, currency), (n, earnings)) in &self.conversions {
            put_str(&mut out, owner);
            out.push(kind_byte(*kind));
            put_str(&mut out, currency);
            put_varint(&mut out, *n);
            put_i128(&mut out, *earnings);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let t = totals_of(bytes)?;
        let human = t.human;
        let mut conversions = BTreeMap::new();
        for item in t.conversions() {
            let (owner, kind, earnings_currency, n, earnings) = item?;
            conversions.insert(
                (owner.to_string(), kind, earnings_currency.to_string()),
                (n, earnings),
            );
        }
        Ok(Self { human, conversions })
    }
}

/// An encoded [`Totals`] read in place: the human scans at once, the
/// conversions on demand with borrowed keys.
pub struct TotalsRef<'a> {
    pub human: u64,
    count: u64,
    rest: Reader<'a>,
}

/// Reads the header of an encoded [`Totals`].
pub fn totals_of(bytes: &[u8]) -> Result<TotalsRef<'_>, Malformed> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return Err(Malformed("unknown totals version"));
    }
    let human = r.varint()?;
    let count = r.varint()?;
    Ok(TotalsRef {
        human,
        count,
        rest: r,
    })
}

/// One conversion total: owner, kind, earnings currency, count, earnings.
pub type TotalsItem<'a> = (&'a str, ConversionKind, &'a str, u64, i128);

impl<'a> TotalsRef<'a> {
    /// The conversion totals; the last item is an error when the entry has
    /// trailing bytes.
    pub fn conversions(self) -> impl Iterator<Item = Result<TotalsItem<'a>, Malformed>> {
        entries(self.rest, self.count, |r| {
            Ok(Some((
                r.str()?,
                kind_of(r.u8()?)?,
                r.str()?,
                r.varint()?,
                r.i128()?,
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_read_one_dimension() {
        let mut block = ScanBlock::default();
        let delta = |human, visitors: Vec<u64>| ScanDelta {
            human,
            bot: 2,
            suspect: 1,
            qr: human,
            link: 0,
            visitors,
        };
        block.add(Dim::Total, "", &delta(3, vec![1, 2, 3]));
        block.add(Dim::Country, "DE", &delta(2, vec![1, 2]));
        block.add(Dim::Country, "FR", &delta(1, vec![3]));
        let many = (0..500).map(|i| crate::sketch::visitor_hash(&format!("v{i}")));
        block.add(Dim::Country, "DE", &delta(1, many.collect()));
        let bytes = block.encode();
        assert_eq!(ScanBlock::decode(&bytes).unwrap(), block);
        let countries: Vec<(String, u64, u64)> = cells_of(&bytes, Dim::Country)
            .unwrap()
            .map(|c| {
                let (v, c) = c.unwrap();
                (v.to_string(), c.human, c.visitors.estimate().count)
            })
            .collect();
        assert_eq!(countries[1], ("FR".to_string(), 1, 1));
        assert_eq!(countries[0].1, 3);
        assert!(countries[0].2.abs_diff(500) < 25, "{countries:?}");
        assert_eq!(cells_of(&bytes, Dim::Os).unwrap().count(), 0);
        for cut in 0..bytes.len() {
            assert!(ScanBlock::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }

        // A version 1 block (before suspects were counted) reads with no suspects.
        let mut v1 = vec![1u8];
        for dim in &Dim::ALL[..10] {
            let dim = *dim;
            let mut section = Vec::new();
            if dim == Dim::Total {
                put_varint(&mut section, 1);
                put_str(&mut section, "");
                for n in [3, 2, 1, 0] {
                    put_varint(&mut section, n);
                }
                let mut sketch = Vec::new();
                VisitorSketch::default().encode(&mut sketch);
                put_bytes(&mut section, &sketch);
            } else {
                put_varint(&mut section, 0);
            }
            put_bytes(&mut v1, &section);
        }
        let old = ScanBlock::decode(&v1).unwrap();
        let total = &old.dims[Dim::Total as usize][""];
        assert_eq!(
            (total.human, total.bot, total.suspect, total.qr, total.link),
            (3, 2, 0, 1, 0)
        );
        // Versions 1 and 2 end before the `route` section: no route cells.
        assert!(old.dims[Dim::Route as usize].is_empty());
        v1[0] = 2;
        assert_eq!(cells_of(&v1, Dim::Route).unwrap().count(), 0);
        block.add(Dim::Route, "ios-de", &delta(2, vec![1]));
        let bytes = block.encode();
        assert_eq!(bytes[0], 3);
        assert_eq!(cells_of(&bytes, Dim::Route).unwrap().count(), 1);

        let mut conv = ConversionBlock::default();
        let key = ConversionCellKey {
            dim: Dim::Channel,
            value: "yt".into(),
            owner: "alice".into(),
            kind: ConversionKind::Refund,
            currency: "EUR".into(),
            earnings_currency: "EUR".into(),
        };
        let mut delays = DelayHistogram::default();
        delays.add_secs(90);
        conv.cells.insert(
            key.clone(),
            ConversionCell {
                n: 2,
                amount: 2_000_000_000_000_000_000_000,
                earnings: -7,
                delays,
                flagged: -1,
                held: 350,
            },
        );
        for (dim, value) in [(Dim::Country, "DE"), (Dim::Total, "")] {
            let other = ConversionCellKey {
                dim,
                value: value.into(),
                ..key.clone()
            };
            conv.cells.insert(other, ConversionCell::default());
        }
        let bytes = conv.encode();
        assert_eq!(ConversionBlock::decode(&bytes).unwrap(), conv);
        for cut in 0..bytes.len() {
            assert!(ConversionBlock::decode(&bytes[..cut]).is_err());
        }
        // One dimension's cells, borrowed; the others skipped.
        let channel: Vec<(ConversionCellKey, u64)> =
            conversion_cells_of(&bytes, Some(Dim::Channel))
                .unwrap()
                .map(|c| c.map(|(k, c)| (k.to_owned(), c.n)))
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(channel, vec![(key, 2)]);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(ConversionBlock::decode(&trailing).is_err());
        let last = conversion_cells_of(&trailing, Some(Dim::Os))
            .unwrap()
            .last();
        assert!(matches!(last, Some(Err(_))), "trailing bytes are reported");

        let mut totals = Totals {
            human: 9,
            ..Totals::default()
        };
        totals.conversions.insert(
            ("bob".into(), ConversionKind::Signup, "USD".into()),
            (3, 600),
        );
        let bytes = totals.encode();
        assert_eq!(Totals::decode(&bytes).unwrap(), totals);
        for cut in 0..bytes.len() {
            assert!(Totals::decode(&bytes[..cut]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Totals::decode(&trailing).is_err());
        assert_eq!(totals_of(&bytes).unwrap().human, 9);
    }

    /// Blocks written before reviews (version 1) read with zero flagged and
    /// held; a block rewritten from them is version 2.
    #[test]
    fn conversion_blocks_of_version_1_are_read() {
        let mut v1 = vec![1u8];
        put_varint(&mut v1, 1);
        v1.push(Dim::Total as u8);
        put_str(&mut v1, "");
        put_str(&mut v1, "alice");
        v1.push(0);
        put_str(&mut v1, "");
        put_str(&mut v1, "EUR");
        put_varint(&mut v1, 3);
        put_i128(&mut v1, 0);
        put_i128(&mut v1, 600);
        let mut delays = Vec::new();
        DelayHistogram::default().encode(&mut delays);
        put_bytes(&mut v1, &delays);
        let block = ConversionBlock::decode(&v1).unwrap();
        let cell = block.cells.values().next().unwrap();
        assert_eq!(
            (cell.n, cell.earnings, cell.flagged, cell.held),
            (3, 600, 0, 0)
        );
        let again = block.encode();
        assert_eq!(again[0], 2);
        assert_eq!(ConversionBlock::decode(&again).unwrap(), block);
    }
}

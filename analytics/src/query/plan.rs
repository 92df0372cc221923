//! Which rollup cells answer a query.
//!
//! Cells come in UTC quarter-hours, hours and days. A query's range is first
//! widened to whole quarter-hours (whole hours for breakdowns, whose cells
//! have no quarter-hours), then covered by the coarsest cells that fit: whole
//! UTC days inside it, whole hours around those, quarter-hours at the edges.
//! A timeseries covers each of its buckets separately, so no cell straddles a
//! bucket boundary: a day in Europe/Berlin is 22 or 23 hour cells, a day in
//! Asia/Kolkata 23 hour cells and four quarter-hours. Conversion ranges are
//! also split where earnings become confirmed (an hour boundary), so that
//! each cell is wholly confirmed or wholly estimated.

use crate::rollup::Grain;

/// Cells of one grain with `from <= bucket < to` (Unix seconds, aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub grain: Grain,
    pub from: u32,
    pub to: u32,
}

/// `secs` rounded down / up to a multiple of `step`.
pub(crate) fn floor(secs: u64, step: u64) -> u64 {
    secs - secs % step
}

pub(crate) fn ceil(secs: u64, step: u64) -> u64 {
    floor(secs.saturating_add(step - 1), step)
}

/// `[from, to)` (aligned to the finest of `grains`) as the fewest cells of
/// `grains`, coarsest first; adjacent ranges of one grain are merged.
pub(crate) fn cover(from: u64, to: u64, grains: &[Grain]) -> Vec<Range> {
    let mut out = Vec::new();
    cover_into(from, to, grains, &mut out);
    out
}

fn cover_into(from: u64, to: u64, grains: &[Grain], out: &mut Vec<Range>) {
    let Some((&grain, finer)) = grains.split_first() else {
        return;
    };
    if from >= to {
        return;
    }
    let (lo, hi) = if finer.is_empty() {
        (from, to)
    } else {
        (ceil(from, grain.secs()), floor(to, grain.secs()))
    };
    if lo >= hi {
        return cover_into(from, to, finer, out);
    }
    cover_into(from, lo, finer, out);
    push(out, grain, lo, hi);
    cover_into(hi, to, finer, out);
}

/// Appends a range, merged into the last one when they touch.
pub(crate) fn push(out: &mut Vec<Range>, grain: Grain, from: u64, to: u64) {
    let (from, to) = (clamp(from), clamp(to));
    match out.last_mut() {
        Some(last) if last.grain == grain && last.to == from => last.to = to,
        _ => out.push(Range { grain, from, to }),
    }
}

fn clamp(secs: u64) -> u32 {
    secs.min(u64::from(u32::MAX)) as u32
}

/// Sorts ranges by grain and start and merges those that touch.
pub(crate) fn normalize(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_by_key(|r| (r.grain, r.from));
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        push(&mut out, r.grain, u64::from(r.from), u64::from(r.to));
    }
    out
}

/// Splits `[from, to)` at `at` (when inside) into the part before and after.
pub(crate) fn split(from: u64, to: u64, at: u64) -> [(u64, u64); 2] {
    let at = at.clamp(from, to);
    [(from, at), (at, to)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Grain::*;

    const ALL: [Grain; 3] = [Day, Hour, Quarter];

    fn r(grain: Grain, from: u64, to: u64) -> Range {
        Range {
            grain,
            from: from as u32,
            to: to as u32,
        }
    }

    #[test]
    fn covers_with_the_coarsest_cells_that_fit() {
        let d = 1_700_006_400; // a UTC midnight
                               // Two whole days plus edges of 1 h 15 min and 30 min.
        let from = d - 4500;
        let to = d + 2 * 86_400 + 1800;
        assert_eq!(
            cover(from, to, &ALL),
            vec![
                r(Quarter, d - 4500, d - 3600),
                r(Hour, d - 3600, d),
                r(Day, d, d + 2 * 86_400),
                r(Quarter, d + 2 * 86_400, d + 2 * 86_400 + 1800),
            ]
        );
        // Within one hour: quarter-hours only.
        assert_eq!(
            cover(d + 900, d + 2700, &ALL),
            vec![r(Quarter, d + 900, d + 2700)]
        );
        // Hours only (breakdowns): hour-aligned input.
        assert_eq!(
            cover(d - 7200, d + 86_400 + 3600, &[Day, Hour]),
            vec![
                r(Hour, d - 7200, d),
                r(Day, d, d + 86_400),
                r(Hour, d + 86_400, d + 86_400 + 3600)
            ]
        );
        assert!(cover(d, d, &ALL).is_empty());
        // The pieces tile the range exactly.
        for (from, to) in [(d - 900, d + 900), (d + 5400, d + 3 * 86_400 - 900)] {
            let pieces = cover(from, to, &ALL);
            let total: u64 = pieces.iter().map(|p| u64::from(p.to - p.from)).sum();
            assert_eq!(total, to - from);
            for p in &pieces {
                assert_eq!(u64::from(p.from) % p.grain.secs(), 0);
                assert_eq!(u64::from(p.to) % p.grain.secs(), 0);
            }
        }
    }

    #[test]
    fn normalize_merges_touching_ranges_of_a_grain() {
        let rs = vec![
            r(Hour, 7200, 10_800),
            r(Quarter, 900, 1800),
            r(Hour, 3600, 7200),
            r(Quarter, 0, 900),
        ];
        assert_eq!(
            normalize(rs),
            vec![r(Quarter, 0, 1800), r(Hour, 3600, 10_800)]
        );
        assert_eq!(split(10, 20, 15), [(10, 15), (15, 20)]);
        assert_eq!(split(10, 20, 5), [(10, 10), (10, 20)]);
        assert_eq!(split(10, 20, 25), [(10, 20), (20, 20)]);
    }
}

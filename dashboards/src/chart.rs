//! Charts as inline SVG drawn here: no JavaScript and no chart library. The
//! bars stretch with the page (`preserveAspectRatio="none"`); the axis labels
//! are HTML around them, so text stays crisp at phone and desktop width.

use crate::html::{esc, num};
use std::fmt::Write;

/// One bar of a stacked chart: a label and the human and bot counts.
pub struct Bar {
    pub label: String,
    pub human: u64,
    pub bot: u64,
}

/// A round axis maximum at or above `n` (1, 2, 5 × 10^k).
fn nice_max(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n {
                return step.saturating_mul(m).max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Human (bottom) and bot (top) scans per bucket, with its data as a table
/// for screen readers and for reading exact numbers.
pub fn stacked(title: &str, bars: &[Bar]) -> String {
    let top = nice_max(bars.iter().map(|b| b.human + b.bot).max().unwrap_or(0));
    let n = bars.len().max(1);
    let width = n * 10;
    let total_h: u64 = bars.iter().map(|b| b.human).sum();
    let total_b: u64 = bars.iter().map(|b| b.bot).sum();
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart\"><div class=\"plot\"><div class=\"yaxis\" aria-hidden=\"true\">\
         <span>{}</span><span>{}</span><span>0</span></div>\
         <svg viewBox=\"0 0 {width} 100\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{}: {} human scans and {} bot or suspect hits over {} buckets\">",
        num(top),
        num(top / 2),
        esc(title),
        num(total_h),
        num(total_b),
        bars.len()
    );
    for y in [0, 50] {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"0\" x2=\"{width}\" y1=\"{y}\" y2=\"{y}\" vector-effect=\"non-scaling-stroke\"/>"
        );
    }
    let scale = |v: u64| v as f64 * 100.0 / top as f64;
    for (i, b) in bars.iter().enumerate() {
        let x = i * 10 + 1;
        let hh = scale(b.human);
        let bh = scale(b.bot);
        let _ = write!(
            out,
            "<g><title>{}: {} human, {} bot or suspect</title>",
            esc(&b.label),
            num(b.human),
            num(b.bot)
        );
        if b.human > 0 {
            let _ = write!(
                out,
                "<rect class=\"h\" x=\"{x}\" width=\"8\" y=\"{:.2}\" height=\"{hh:.2}\"/>",
                100.0 - hh
            );
        }
        if b.bot > 0 {
            let _ = write!(
                out,
                "<rect class=\"b\" x=\"{x}\" width=\"8\" y=\"{:.2}\" height=\"{bh:.2}\"/>",
                100.0 - hh - bh
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg></div><div class=\"xaxis\" aria-hidden=\"true\">");
    if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
        let mid = &bars[bars.len() / 2];
        let _ = write!(
            out,
            "<span>{}</span><span>{}</span><span>{}</span>",
            esc(&first.label),
            if bars.len() > 2 {
                esc(&mid.label)
            } else {
                String::new()
            },
            if bars.len() > 1 {
                esc(&last.label)
            } else {
                String::new()
            }
        );
    }
    let _ = write!(
        out,
        "</div><figcaption><span class=\"key h\"></span>Human {} <span class=\"key b\"></span>Bot or suspect {}</figcaption>\
         <details><summary>Show as table</summary><table><thead><tr><th scope=\"col\">Time</th>\
         <th scope=\"col\" class=\"n\">Human</th><th scope=\"col\" class=\"n\">Bot or suspect</th></tr></thead><tbody>",
        num(total_h),
        num(total_b)
    );
    for b in bars.iter().filter(|b| b.human + b.bot > 0) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&b.label),
            num(b.human),
            num(b.bot)
        );
    }
    out.push_str("</tbody></table></details></figure>");
    out
}

/// A thin horizontal bar for a table cell: `part` of `whole`.
pub fn meter(part: u64, whole: u64, class: &str) -> String {
    let w = if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    };
    format!(
        "<svg class=\"meter\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <rect class=\"track\" width=\"100\" height=\"6\"/><rect class=\"{class}\" width=\"{w:.2}\" height=\"6\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maximum_is_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(101), 200);
        assert_eq!(nice_max(5000), 5000);
    }

    #[test]
    fn bars_are_scaled_to_the_axis() {
        let svg = stacked(
            "Scans",
            &[
                Bar {
                    label: "a".into(),
                    human: 3,
                    bot: 1,
                },
                Bar {
                    label: "b<".into(),
                    human: 0,
                    bot: 0,
                },
            ],
        );
        // Axis maximum 5: 3 human → 60 units tall, 1 bot → 20 above it.
        assert!(
            svg.contains("<rect class=\"h\" x=\"1\" width=\"8\" y=\"40.00\" height=\"60.00\"/>"),
            "{svg}"
        );
        assert!(
            svg.contains("<rect class=\"b\" x=\"1\" width=\"8\" y=\"20.00\" height=\"20.00\"/>")
        );
        assert!(svg.contains("b&lt;: 0 human"));
        assert!(svg.contains("3 human scans and 1 bot or suspect hits"));
    }
}

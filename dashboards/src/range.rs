//! The date range and time zone a page shows: a preset (today, 7, 30 or 90
//! days: whole local days up to now) or custom dates, in an IANA zone.

use crate::html::{esc, qv};
use codelink_analytics::query::Interval;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Today,
    Days(u32),
    Custom,
}

const PRESETS: [(&str, Preset, &str); 4] = [
    ("today", Preset::Today, "Today"),
    ("7d", Preset::Days(7), "7 days"),
    ("30d", Preset::Days(30), "30 days"),
    ("90d", Preset::Days(90), "90 days"),
];

/// Zones offered in the picker (any IANA name is accepted in the URL).
const ZONES: &[&str] = &[
    "UTC",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Toronto",
    "America/Mexico_City",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Europe/London",
    "Europe/Lisbon",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Rome",
    "Europe/Warsaw",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Singapore",
    "Asia/Manila",
    "Asia/Shanghai",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
];

const MAX_DAYS: i64 = 400;

#[derive(Debug, Clone)]
pub struct View {
    pub preset: Preset,
    /// First and last local day shown (inclusive).
    pub first: Date,
    pub last: Date,
    pub tz_name: String,
    pub tz: TimeZone,
    pub from_ms: u64,
    pub to_ms: u64,
    /// The range reaches the present (the page refreshes itself).
    pub live: bool,
}

impl View {
    /// From the query pairs `range`, `from`, `to` (YYYY-MM-DD) and `tz`;
    /// `default_preset` when no range is given. Errors name the field.
    pub fn parse(
        pairs: &[(String, String)],
        now_ms: u64,
        default_tz: Option<&str>,
        default_preset: Preset,
    ) -> Result<View, String> {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let tz_raw = get("tz")
            .filter(|t| !t.is_empty())
            .or(default_tz)
            .unwrap_or("UTC");
        let tz = TimeZone::get(tz_raw).map_err(|_| {
            format!("time zone '{tz_raw}' is not an IANA name such as Europe/Berlin")
        })?;
        let tz_name = tz.iana_name().unwrap_or("UTC").to_string();
        let now = jiff::Timestamp::from_millisecond(now_ms as i64).map_err(|e| e.to_string())?;
        let today = now.to_zoned(tz.clone()).date();
        let preset = match get("range") {
            None | Some("") => default_preset,
            Some("custom") => Preset::Custom,
            Some(r) => PRESETS
                .iter()
                .find(|(k, _, _)| *k == r)
                .map(|(_, p, _)| *p)
                .ok_or_else(|| format!("range '{r}' is not one of today, 7d, 30d, 90d, custom"))?,
        };
        let (first, last) = match preset {
            Preset::Today => (today, today),
            Preset::Days(n) => (
                today
                    .checked_sub(jiff::Span::new().days(i64::from(n) - 1))
                    .map_err(|e| e.to_string())?,
                today,
            ),
            Preset::Custom => {
                let date = |k: &str| -> Result<Date, String> {
                    let raw = get(k).unwrap_or("");
                    raw.parse::<Date>()
                        .map_err(|_| format!("{k}: '{raw}' is not a date such as 2026-11-01"))
                };
                let (first, last) = (date("from")?, date("to")?);
                for (k, d) in [("from", first), ("to", last)] {
                    if !(1970..=2199).contains(&d.year()) {
                        return Err(format!(
                            "{k}: {d} is out of range: dates go from 1970-01-01 to 2199-12-31"
                        ));
                    }
                }
                if last < first {
                    return Err("to: must not be before from".into());
                }
                if (last - first).get_days() as i64 + 1 > MAX_DAYS {
                    return Err(format!("a range is at most {MAX_DAYS} days"));
                }
                (first, last)
            }
        };
        let start = |d: Date| -> Result<u64, String> {
            let ts = d
                .to_zoned(tz.clone())
                .map_err(|e| e.to_string())?
                .timestamp()
                .as_millisecond();
            Ok(ts.max(0) as u64)
        };
        let from_ms = start(first)?;
        let end_ms = start(last.tomorrow().map_err(|e| e.to_string())?)?;
        let live = end_ms > now_ms;
        Ok(View {
            preset,
            first,
            last,
            tz_name,
            tz,
            from_ms,
            // Up to now: the future has nothing yet.
            to_ms: end_ms.min(now_ms + 1).max(from_ms + 1),
            live,
        })
    }

    /// This view as query parameters (for links that keep it).
    pub fn query(&self) -> String {
        let range = match self.preset {
            Preset::Custom => format!("range=custom&from={}&to={}", self.first, self.last),
            p => format!(
                "range={}",
                PRESETS
                    .iter()
                    .find(|(_, q, _)| *q == p)
                    .map_or("30d", |(k, _, _)| *k)
            ),
        };
        format!("{range}&tz={}", qv(&self.tz_name))
    }

    /// Hours for up to three days, else days.
    pub fn interval(&self) -> Interval {
        if self.to_ms - self.from_ms <= 3 * 86_400_000 {
            Interval::Hour
        } else {
            Interval::Day
        }
    }

    pub fn label(&self) -> String {
        match self.preset {
            Preset::Today => "Today".into(),
            Preset::Days(n) => format!("Last {n} days"),
            Preset::Custom if self.first == self.last => {
                self.first.strftime("%-d %b %Y").to_string()
            }
            Preset::Custom => format!(
                "{} – {}",
                self.first.strftime("%-d %b %Y"),
                self.last.strftime("%-d %b %Y")
            ),
        }
    }

    /// The range picker: preset links, custom dates and the zone, as a GET
    /// form to `action` keeping `keep` (other query pairs of the page).
    pub fn picker(&self, action: &str, keep: &[(&str, &str)]) -> String {
        let mut kept = String::new();
        for (k, v) in keep {
            let _ = write!(kept, "&{}={}", qv(k), qv(v));
        }
        let mut out = String::from(
            "<section class=\"picker\" aria-label=\"Date range\"><ul class=\"presets\">",
        );
        for (key, p, label) in PRESETS {
            let current = if p == self.preset {
                " aria-current=\"true\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<li><a href=\"{action}?range={key}&tz={}{}\"{current}>{label}</a></li>",
                qv(&self.tz_name),
                esc(&kept)
            );
        }
        out.push_str("</ul>");
        let _ = write!(
            out,
            "<form method=\"get\" action=\"{action}\" class=\"custom\">\
             <input type=\"hidden\" name=\"range\" value=\"custom\">"
        );
        for (k, v) in keep {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            );
        }
        let _ = write!(
            out,
            "<label>From <input type=\"date\" name=\"from\" value=\"{}\" required></label>\
             <label>To <input type=\"date\" name=\"to\" value=\"{}\" required></label>\
             <label>Time zone <select name=\"tz\" data-tz>",
            self.first, self.last
        );
        out.push_str(&zone_options(&self.tz_name));
        out.push_str("</select></label><button type=\"submit\">Apply</button></form></section>");
        out
    }
}

/// The `<option>`s of the zone picker, `current` selected.
pub fn zone_options(current: &str) -> String {
    let mut zones: Vec<&str> = ZONES.to_vec();
    if !zones.contains(&current) {
        zones.insert(0, current);
    }
    let mut out = String::new();
    for z in zones {
        let sel = if z == current { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", esc(z));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    // 2026-11-28T14:30:00Z
    const NOW: u64 = 1_795_876_200_000;

    #[test]
    fn presets_are_whole_local_days_up_to_now() {
        let v = View::parse(
            &pairs(&[("range", "7d"), ("tz", "Europe/Berlin")]),
            NOW,
            None,
            Preset::Days(30),
        )
        .unwrap();
        assert_eq!(v.first.to_string(), "2026-11-22");
        assert_eq!(v.last.to_string(), "2026-11-28");
        // Midnight in Berlin (UTC+1) is 23:00 UTC the day before.
        assert_eq!(v.from_ms, 1_795_302_000_000);
        assert_eq!(v.to_ms, NOW + 1);
        assert!(v.live);
        assert_eq!(v.query(), "range=7d&tz=Europe%2FBerlin");
        let today = View::parse(&[], NOW, Some("UTC"), Preset::Today).unwrap();
        assert_eq!(today.from_ms, 1_795_824_000_000);
        assert_eq!(today.interval(), Interval::Hour);
    }

    #[test]
    fn custom_ranges_are_checked() {
        let v = View::parse(
            &pairs(&[
                ("range", "custom"),
                ("from", "2026-11-01"),
                ("to", "2026-11-02"),
            ]),
            NOW,
            None,
            Preset::Days(30),
        )
        .unwrap();
        assert_eq!(v.to_ms - v.from_ms, 2 * 86_400_000);
        assert!(!v.live);
        assert!(View::parse(
            &pairs(&[("range", "custom"), ("from", "x"), ("to", "2026-11-02")]),
            NOW,
            None,
            Preset::Today
        )
        .is_err());
        assert!(View::parse(
            &pairs(&[
                ("range", "custom"),
                ("from", "2026-11-03"),
                ("to", "2026-11-02")
            ]),
            NOW,
            None,
            Preset::Today
        )
        .is_err());
        assert!(View::parse(&pairs(&[("tz", "Mars/Base")]), NOW, None, Preset::Today).is_err());
        assert!(View::parse(&pairs(&[("range", "week")]), NOW, None, Preset::Today).is_err());
        for (from, to) in [
            ("9999-12-30", "9999-12-31"),
            ("0001-01-01", "0001-01-02"),
            ("2025-01-01", "2026-02-05"),
        ] {
            let e = View::parse(
                &pairs(&[("range", "custom"), ("from", from), ("to", to)]),
                NOW,
                None,
                Preset::Today,
            );
            assert!(e.is_err(), "{from}..{to}");
        }
        // 400 days exactly is allowed.
        assert!(View::parse(
            &pairs(&[
                ("range", "custom"),
                ("from", "2025-01-01"),
                ("to", "2026-02-04")
            ]),
            NOW,
            None,
            Preset::Today
        )
        .is_ok());
    }
}

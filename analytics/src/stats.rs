//! Live per-code numbers, as `GET /api/v1/codes/{code}/stats` returns them,
//! built from the counter fields both counter stores keep (see [`crate::batch`]).

use serde::Serialize;
use std::collections::BTreeMap;

/// Scans by verdict: `total = human + suspect + bot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub total: u64,
    pub human: u64,
    pub suspect: u64,
    pub bot: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    pub total: u64,
    pub human: u64,
    pub suspect: u64,
    pub bot: u64,
    /// Distinct human visitors that day (HyperLogLog estimate in Redis, exact embedded).
    pub unique_visitors: u64,
}

/// The follower-path steps of a code's scans (see `crate::event::Step`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// Scans of the code while it was disabled or expired (its page, or its
    /// fallback URL).
    pub gone: u64,
    /// Scans that were shown the in-app browser escape page.
    pub escape_shown: u64,
    /// Of those, followers who opened the link in their own browser.
    pub escaped: u64,
    /// Of those, followers who went on in the in-app browser.
    pub continued: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CodeStats {
    pub code: String,
    /// Every scan: `human + suspect + bot`.
    pub total: u64,
    pub human: u64,
    /// Not counted as human: missing browser headers, repeats, datacenter
    /// addresses (see `crate::event::Verdict`).
    pub suspect: u64,
    pub bot: u64,
    /// `(suspect + bot) / total`: how much raw counts would overstate people.
    pub bot_inflation: f64,
    pub qr: u64,
    /// Taps on a link, the bio page's included.
    pub link: u64,
    /// Of `link`, the taps on the creator's bio page (`/@{owner}`).
    pub bio: u64,
    pub days: BTreeMap<String, DayCounts>,
    pub channels: BTreeMap<String, ClassCounts>,
    pub bot_reasons: BTreeMap<String, u64>,
    /// Channels asked for that the code does not have (typos in a bio, old
    /// links), by name: those scans went to the code's own destination.
    pub unknown_channels: BTreeMap<String, u64>,
    pub steps: StepCounts,
}

impl CodeStats {
    /// Builds the view from counter fields and per-day unique counts.
    pub fn from_fields(
        code: &str,
        fields: impl IntoIterator<Item = (String, u64)>,
        uniques: &BTreeMap<String, u64>,
    ) -> Self {
        let mut s = CodeStats {
            code: code.to_string(),
            ..Default::default()
        };
        for (field, n) in fields {
            let parts: Vec<&str> = field.splitn(3, ':').collect();
            match parts.as_slice() {
                ["total"] => s.total = n,
                ["human"] => s.human = n,
                ["bot"] => s.bot = n,
                ["suspect"] => s.suspect = n,
                ["qr"] => s.qr = n,
                ["link"] => s.link = n,
                ["bio"] => s.bio = n,
                ["day", day, class] => {
                    let d = s.days.entry(day.to_string()).or_default();
                    set_class(
                        &mut d.total,
                        &mut d.human,
                        &mut d.suspect,
                        &mut d.bot,
                        class,
                        n,
                    );
                }
                ["ch", channel, class] => {
                    let c = s.channels.entry(channel.to_string()).or_default();
                    set_class(
                        &mut c.total,
                        &mut c.human,
                        &mut c.suspect,
                        &mut c.bot,
                        class,
                        n,
                    );
                }
                _ => {
                    if let Some(reason) = field.strip_prefix("reason:") {
                        s.bot_reasons.insert(reason.to_string(), n);
                    } else if let Some(name) = field.strip_prefix("typo:") {
                        s.unknown_channels.insert(name.to_string(), n);
                    } else if let Some(step) = field.strip_prefix("step:") {
                        match step {
                            "gone" => s.steps.gone = n,
                            "escape_shown" => s.steps.escape_shown = n,
                            "escaped" => s.steps.escaped = n,
                            "continued" => s.steps.continued = n,
                            _ => {}
                        }
                    }
                }
            }
        }
        // The counters' `bot` is every scan not human (as before suspects
        // were told apart); suspects are counted on their own as well.
        s.bot = s.bot.saturating_sub(s.suspect);
        for (day, d) in s.days.iter_mut() {
            d.unique_visitors = uniques.get(day).copied().unwrap_or(0);
            d.bot = d.bot.saturating_sub(d.suspect);
        }
        for c in s.channels.values_mut() {
            c.bot = c.bot.saturating_sub(c.suspect);
        }
        if s.total > 0 {
            s.bot_inflation = (s.suspect + s.bot) as f64 / s.total as f64;
        }
        s
    }

    /// Days that have counters, for looking up their unique counts.
    pub fn days_in(fields: &[(String, u64)]) -> Vec<String> {
        let mut days: Vec<String> = fields
            .iter()
            .filter_map(|(f, _)| f.strip_prefix("day:"))
            .filter_map(|rest| rest.split(':').next())
            .map(str::to_string)
            .collect();
        days.sort();
        days.dedup();
        days
    }
}

fn set_class(
    total: &mut u64,
    human: &mut u64,
    suspect: &mut u64,
    bot: &mut u64,
    class: &str,
    n: u64,
) {
    match class {
        "total" => *total = n,
        "human" => *human = n,
        "suspect" => *suspect = n,
        "bot" => *bot = n,
        _ => {}
    }
}

//! Live per-code numbers, as `GET /api/v1/codes/{code}/stats` returns them,
//! built from the counter fields both counter stores keep (see [`crate::batch`]).

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub total: u64,
    pub human: u64,
    pub bot: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    pub total: u64,
    pub human: u64,
    pub bot: u64,
    /// Distinct human visitors that day (HyperLogLog estimate in Redis, exact embedded).
    pub unique_visitors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CodeStats {
    pub code: String,
    pub total: u64,
    pub human: u64,
    pub bot: u64,
    pub qr: u64,
    pub link: u64,
    pub days: BTreeMap<String, DayCounts>,
    pub channels: BTreeMap<String, ClassCounts>,
    pub bot_reasons: BTreeMap<String, u64>,
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
                ["qr"] => s.qr = n,
                ["link"] => s.link = n,
                ["day", day, class] => {
                    let d = s.days.entry(day.to_string()).or_default();
                    set_class(&mut d.total, &mut d.human, &mut d.bot, class, n);
                }
                ["ch", channel, class] => {
                    let c = s.channels.entry(channel.to_string()).or_default();
                    set_class(&mut c.total, &mut c.human, &mut c.bot, class, n);
                }
                _ => {
                    if let Some(reason) = field.strip_prefix("reason:") {
                        s.bot_reasons.insert(reason.to_string(), n);
                    }
                }
            }
        }
        for (day, d) in s.days.iter_mut() {
            d.unique_visitors = uniques.get(day).copied().unwrap_or(0);
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

fn set_class(total: &mut u64, human: &mut u64, bot: &mut u64, class: &str, n: u64) {
    match class {
        "total" => *total = n,
        "human" => *human = n,
        "bot" => *bot = n,
        _ => {}
    }
}

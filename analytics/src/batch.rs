//! A batch of scans as the recorder flushes it, and the counter deltas it adds.
//!
//! A batch keeps its id for life (in the spool too), so a sink that applied it
//! once recognises a replay and skips it.

use crate::event::{Conversion, Scan, StepEvent};
use crate::review::Adjustment;
use foldhash::{HashMap, HashMapExt, HashSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A UTC day in ms.
pub const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Random, 32 hex characters.
    pub id: String,
    /// Unix ms when the batch was cut (0 for batches spooled by versions
    /// before it was kept). Part of what names the batch in ClickHouse.
    #[serde(default)]
    pub created_ms: u64,
    pub scans: Vec<Scan>,
    /// Conversions travel with scans through the same sinks and spool. Their
    /// rows are keyed by event id, so writing one twice changes nothing.
    #[serde(default)]
    pub conversions: Vec<Conversion>,
    /// Review decisions' changes to conversion cells (see `crate::review`):
    /// each is made once, so it counts once per sink like the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<Adjustment>,
    /// Follow-ups of scans that only the live counters count (a follower
    /// leaving the in-app escape page): `step:{name}` fields, once per batch
    /// like every counter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepEvent>,
}

impl Batch {
    pub fn new(scans: Vec<Scan>, conversions: Vec<Conversion>) -> Self {
        Self {
            id: format!("{:032x}", rand::random::<u128>()),
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            scans,
            conversions,
            adjustments: Vec::new(),
            steps: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.scans.is_empty()
            && self.conversions.is_empty()
            && self.adjustments.is_empty()
            && self.steps.is_empty()
    }
}

/// Channel name used in counter fields for scans of the bare code.
pub const NO_CHANNEL: &str = "-";

/// Counter increments of one batch, per code: field → delta. Field names:
/// `total`, `human`, `bot`, `qr`, `link`, `day:{YYYY-MM-DD}:{total|human|bot}`,
/// `ch:{channel}:{total|human|bot}`, `reason:{bot reason}`, `typo:{unknown
/// channel asked for}`, `step:{follower-path step}` (the steps of scans, and
/// the follow-ups in `steps`). `bot` counts every
/// scan that is not human; suspects are also counted in `suspect`,
/// `day:{day}:suspect` and `ch:{channel}:suspect`.
pub fn counter_deltas<'a>(
    scans: &'a [Scan],
    steps: &'a [StepEvent],
) -> BTreeMap<&'a str, BTreeMap<String, u64>> {
    // Count distinct combinations first (a batch has few), then spell out the
    // fields once per combination instead of once per scan.
    type Group<'a> = (&'a str, u64, &'a str, &'a str, &'a str, &'a str, &'a str);
    let mut groups: HashMap<Group<'_>, u64> = HashMap::new();
    // Consecutive scans mostly share their group (a burst on one link):
    // count a run, and hash its key once when it ends.
    let mut run: Option<(Group<'_>, u64)> = None;
    for scan in scans {
        let channel = if scan.channel.is_empty() {
            NO_CHANNEL
        } else {
            scan.channel.as_str()
        };
        let key = (
            scan.code.as_str(),
            scan.ts_ms / DAY_MS,
            channel,
            scan.source.as_str(),
            scan.bot_reason.as_str(),
            scan.unknown_channel.as_str(),
            scan.step.as_str(),
        );
        match &mut run {
            Some((k, n)) if *k == key => *n += 1,
            _ => {
                if let Some((k, n)) = run.replace((key, 1)) {
                    *groups.entry(k).or_default() += n;
                }
            }
        }
    }
    if let Some((k, n)) = run {
        *groups.entry(k).or_default() += n;
    }
    let mut out: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for event in steps {
        let name = event.step.as_str();
        if !name.is_empty() {
            *out.entry(event.code.as_str())
                .or_default()
                .entry(format!("step:{name}"))
                .or_default() += 1;
        }
    }
    for ((code, day, channel, source, reason, unknown, step), n) in groups {
        let fields = out.entry(code).or_default();
        let class = if reason.is_empty() { "human" } else { "bot" };
        let day = crate::event::day_of(day * DAY_MS);
        let keys = [
            "total".to_string(),
            class.to_string(),
            source.to_string(),
            format!("day:{day}:total"),
            format!("day:{day}:{class}"),
            format!("ch:{channel}:total"),
            format!("ch:{channel}:{class}"),
        ];
        for key in keys {
            *fields.entry(key).or_default() += n;
        }
        if !reason.is_empty() {
            *fields.entry(format!("reason:{reason}")).or_default() += n;
        }
        // A tap on the bio page is a link tap (`qr + link = total` holds);
        // its own `bio` field says how many of those came through the page.
        if source == "bio" {
            *fields.entry("link".to_string()).or_default() += n;
        }
        if !unknown.is_empty() {
            *fields.entry(format!("typo:{unknown}")).or_default() += n;
        }
        if !step.is_empty() {
            *fields.entry(format!("step:{step}")).or_default() += n;
        }
        if crate::event::Verdict::of_reason(reason) == crate::event::Verdict::Suspect {
            for key in [
                "suspect".to_string(),
                format!("day:{day}:suspect"),
                format!("ch:{channel}:suspect"),
            ] {
                *fields.entry(key).or_default() += n;
            }
        }
    }
    out
}

/// The distinct visitors of the human scans per (code, UTC day `YYYY-MM-DD`):
/// what unique-visitor counts are built from. A batch repeats visitors a lot;
/// each is written once. Groups come sorted by code and day.
pub fn human_visitors(scans: &[Scan]) -> Vec<(&str, String, Vec<&str>)> {
    let mut groups: HashMap<(&str, u64), HashSet<&str>> = HashMap::new();
    for s in scans.iter().filter(|s| !s.is_bot()) {
        groups
            .entry((s.code.as_str(), s.ts_ms / DAY_MS))
            .or_default()
            .insert(s.visitor_id.as_str());
    }
    let mut out: Vec<_> = groups.into_iter().collect();
    out.sort_unstable_by_key(|((code, day), _)| (*code, *day));
    out.into_iter()
        .map(|((code, day), visitors)| {
            (
                code,
                crate::event::day_of(day * DAY_MS),
                visitors.into_iter().collect(),
            )
        })
        .collect()
}

/// Human scans per code in a written batch: what `scan.milestone` webhooks
/// need of it (they read the live counters back for these codes).
pub type HumanScans = BTreeMap<String, u64>;

/// The human scans of each code among `scans`.
pub fn human_scans(scans: &[Scan]) -> HumanScans {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for s in scans.iter().filter(|s| s.bot_reason.is_empty()) {
        *counts.entry(&s.code).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect()
}

/// The human scans of one (code, visitor) in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanVisits<'a> {
    /// The latest of them.
    pub latest: &'a Scan,
    /// The UTC days (since the epoch) they fall on: distinct, ascending.
    pub days: Vec<u64>,
}

/// The human scans of each (code, visitor) in the batch, sorted by code and
/// visitor: what the stores write last visits from (and the embedded store
/// its unique visitors per day).
pub fn human_visits(scans: &[Scan]) -> Vec<((&str, &str), HumanVisits<'_>)> {
    let mut by: HashMap<(&str, &str), HumanVisits> = HashMap::new();
    for s in scans.iter().filter(|s| !s.is_bot()) {
        let day = s.ts_ms / DAY_MS;
        let v = by
            .entry((s.code.as_str(), s.visitor_id.as_str()))
            .or_insert_with(|| HumanVisits {
                latest: s,
                days: Vec::new(),
            });
        if s.ts_ms >= v.latest.ts_ms {
            v.latest = s;
        }
        if !v.days.contains(&day) {
            v.days.push(day);
        }
    }
    let mut out: Vec<_> = by.into_iter().collect();
    out.sort_unstable_by_key(|(pair, _)| *pair);
    for (_, v) in &mut out {
        v.days.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(code: &str, ts_ms: u64, visitor: &str, bot: &str) -> Scan {
        Scan {
            scan_id: format!("{ts_ms:026}").into(),
            ts_ms,
            code: code.into(),
            visitor_id: visitor.into(),
            source: "link".into(),
            bot_reason: bot.into(),
            ..Scan::default()
        }
    }

    #[test]
    fn human_scans_are_counted_per_code_across_runs() {
        let scans = [
            scan("a", 1, "v1", ""),
            scan("a", 2, "v2", ""),
            scan("b", 3, "v1", ""),
            scan("a", 4, "v3", "ua:curl"),
            scan("a", 5, "v3", ""),
            scan("c", 6, "v4", "rate"),
        ];
        let counted = human_scans(&scans);
        assert_eq!(
            counted.into_iter().collect::<Vec<_>>(),
            vec![("a".to_string(), 3), ("b".to_string(), 1)]
        );
        assert!(human_scans(&[]).is_empty());
    }

    #[test]
    fn steps_are_counted_from_scans_and_follow_ups() {
        use crate::event::Step;
        let mut shown = scan("a", 10, "v1", "");
        shown.step = "escape_shown".into();
        let mut gone = scan("b", 11, "v2", "ua:bot");
        gone.step = "gone".into();
        let scans = [shown, gone, scan("a", 12, "v3", "")];
        let follow = |code: &str, step| StepEvent {
            code: code.into(),
            step,
            ts_ms: 13,
        };
        let steps = [
            follow("a", Step::Escaped),
            follow("a", Step::Escaped),
            follow("a", Step::Continued),
        ];
        let deltas = counter_deltas(&scans, &steps);
        let a = &deltas["a"];
        assert_eq!(a["step:escape_shown"], 1);
        assert_eq!(a["step:escaped"], 2);
        assert_eq!(a["step:continued"], 1);
        assert_eq!(a["total"], 2, "follow-ups are not scans");
        assert_eq!(deltas["b"]["step:gone"], 1);
        assert_eq!(deltas["b"]["total"], 1);
    }

    #[test]
    fn a_bio_tap_counts_as_a_link_tap_and_as_bio() {
        let mut bio = scan("a", 10, "v1", "");
        bio.source = "bio".into();
        let mut qr = scan("a", 11, "v2", "");
        qr.source = "qr".into();
        let scans = [bio, qr, scan("a", 12, "v3", "")];
        let fields = &counter_deltas(&scans, &[])["a"];
        let get = |k: &str| fields.get(k).copied().unwrap_or(0);
        assert_eq!(
            (get("total"), get("qr"), get("link"), get("bio")),
            (3, 1, 2, 1)
        );
    }

    #[test]
    fn visitors_are_grouped_by_code_and_day_without_bots() {
        let day2 = DAY_MS + 5;
        let scans = [
            scan("b", 10, "v1", ""),
            scan("a", 11, "v1", ""),
            scan("a", 12, "v1", ""),
            scan("a", 13, "v2", ""),
            scan("a", 14, "v3", "ua:bot"),
            scan("a", day2, "v1", ""),
        ];
        let mut groups = human_visitors(&scans);
        for (_, _, v) in &mut groups {
            v.sort_unstable();
        }
        assert_eq!(
            groups,
            vec![
                ("a", "1970-01-01".to_string(), vec!["v1", "v2"]),
                ("a", "1970-01-02".to_string(), vec!["v1"]),
                ("b", "1970-01-01".to_string(), vec!["v1"]),
            ]
        );
    }

    #[test]
    fn human_visits_per_code_and_visitor() {
        let scans = [
            scan("a", DAY_MS + 30, "v1", ""),
            scan("a", 10, "v1", ""),
            scan("a", DAY_MS + 40, "v1", "rate"),
            scan("a", DAY_MS + 5, "v1", ""),
            scan("b", 20, "v1", ""),
            scan("b", 25, "v2", "head"),
        ];
        let visits = human_visits(&scans);
        let got: Vec<_> = visits
            .iter()
            .map(|(pair, v)| (*pair, v.latest.ts_ms, v.days.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (("a", "v1"), DAY_MS + 30, vec![0, 1]),
                (("b", "v1"), 20, vec![0]),
            ]
        );
    }
}

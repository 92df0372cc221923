//! A batch of scans as the recorder flushes it, and the counter deltas it adds.
//!
//! A batch keeps its id for life (in the spool too), so a sink that applied it
//! once recognises a replay and skips it.

use crate::event::{Conversion, Scan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Random, 32 hex characters.
    pub id: String,
    pub scans: Vec<Scan>,
    /// Conversions travel with scans through the same sinks and spool. Their
    /// rows are keyed by event id, so writing one twice changes nothing.
    #[serde(default)]
    pub conversions: Vec<Conversion>,
}

impl Batch {
    pub fn new(scans: Vec<Scan>, conversions: Vec<Conversion>) -> Self {
        Self {
            id: format!("{:032x}", rand::random::<u128>()),
            scans,
            conversions,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.scans.is_empty() && self.conversions.is_empty()
    }
}

/// Channel name used in counter fields for scans of the bare code.
pub const NO_CHANNEL: &str = "-";

/// Counter increments of one batch, per code: field → delta. Field names:
/// `total`, `human`, `bot`, `qr`, `link`, `day:{YYYY-MM-DD}:{total|human|bot}`,
/// `ch:{channel}:{total|human|bot}`, `reason:{bot reason}`.
pub fn counter_deltas(scans: &[Scan]) -> BTreeMap<&str, BTreeMap<String, u64>> {
    // Count distinct combinations first (a batch has few), then spell out the
    // fields once per combination instead of once per scan.
    type Group<'a> = (&'a str, u64, &'a str, &'a str, &'a str);
    let mut groups: std::collections::HashMap<Group<'_>, u64> = std::collections::HashMap::new();
    for scan in scans {
        let channel = if scan.channel.is_empty() {
            NO_CHANNEL
        } else {
            scan.channel.as_str()
        };
        let key = (
            scan.code.as_str(),
            scan.ts_ms / 86_400_000,
            channel,
            scan.source.as_str(),
            scan.bot_reason.as_str(),
        );
        *groups.entry(key).or_default() += 1;
    }
    let mut out: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for ((code, day, channel, source, reason), n) in groups {
        let fields = out.entry(code).or_default();
        let class = if reason.is_empty() { "human" } else { "bot" };
        let day = crate::event::day_of(day * 86_400_000);
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
    }
    out
}

/// Distinct (code, day, visitor) of the human scans: what unique-visitor counts
/// are built from. A batch repeats visitors a lot; each is written once.
pub fn human_visits(scans: &[Scan]) -> std::collections::BTreeSet<(&str, String, &str)> {
    scans
        .iter()
        .filter(|s| !s.is_bot())
        .map(|s| (s.code.as_str(), s.day(), s.visitor_id.as_str()))
        .collect()
}

/// The latest human scan of each (code, visitor) in the batch.
pub fn latest_human_scans(scans: &[Scan]) -> BTreeMap<(&str, &str), &Scan> {
    let mut latest: BTreeMap<(&str, &str), &Scan> = BTreeMap::new();
    for scan in scans.iter().filter(|s| !s.is_bot()) {
        let slot = latest
            .entry((scan.code.as_str(), scan.visitor_id.as_str()))
            .or_insert(scan);
        if scan.ts_ms >= slot.ts_ms {
            *slot = scan;
        }
    }
    latest
}

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
    let mut out: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for scan in scans {
        let fields = out.entry(scan.code.as_str()).or_default();
        let class = if scan.is_bot() { "bot" } else { "human" };
        let day = scan.day();
        let channel = if scan.channel.is_empty() {
            NO_CHANNEL
        } else {
            scan.channel.as_str()
        };
        let keys = [
            "total".to_string(),
            class.to_string(),
            scan.source.clone(),
            format!("day:{day}:total"),
            format!("day:{day}:{class}"),
            format!("ch:{channel}:total"),
            format!("ch:{channel}:{class}"),
        ];
        for key in keys {
            *fields.entry(key).or_default() += 1;
        }
        if scan.is_bot() {
            *fields
                .entry(format!("reason:{}", scan.bot_reason))
                .or_default() += 1;
        }
    }
    out
}

/// (code, day, visitor) of each human scan: what unique-visitor counts are built from.
pub fn human_visits(scans: &[Scan]) -> impl Iterator<Item = (&str, String, &str)> {
    scans
        .iter()
        .filter(|s| !s.is_bot())
        .map(|s| (s.code.as_str(), s.day(), s.visitor_id.as_str()))
}

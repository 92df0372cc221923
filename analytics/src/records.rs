//! What the live store keeps besides counters: each visitor's latest human
//! scan of a code, each customer's first attribution, and the answer given for
//! each conversion event id. Shared by the stores that keep them (`sink`) and by
//! attribution (`ledger`), so neither needs the other's internals.

use crate::event::{Conversion, Scan};
use serde::{Deserialize, Serialize};

/// The latest human scan of a code by a visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastVisit {
    pub scan_id: String,
    pub channel: String,
    pub scan_ms: u64,
}

impl LastVisit {
    /// `{scan_ms}|{scan_id}|{channel}` of the scan that is the visit (what
    /// [`LastVisit::decode`] reads): ids and channels never contain `|`.
    pub fn encode(scan: &Scan) -> String {
        format!("{}|{}|{}", scan.ts_ms, scan.scan_id, scan.channel)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '|');
        Some(Self {
            scan_ms: parts.next()?.parse().ok()?,
            scan_id: parts.next()?.to_string(),
            channel: parts.next()?.to_string(),
        })
    }
}

/// What a customer's first attributed conversion was credited to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLink {
    pub code: String,
    pub channel: String,
    pub scan_id: String,
    pub scan_ms: u64,
    pub visitor_id: String,
}

/// The outcome of claiming an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: the given conversion is now the answer for this event id.
    New,
    /// Seen before: this was the answer then, and stays the answer.
    Existing(Box<Conversion>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_visit_codec() {
        let scan = Scan {
            scan_id: "01ABC".into(),
            channel: "yt-video42".into(),
            ts_ms: 17,
            ..Scan::default()
        };
        let v = LastVisit {
            scan_id: "01ABC".into(),
            channel: "yt-video42".into(),
            scan_ms: 17,
        };
        assert_eq!(LastVisit::encode(&scan), "17|01ABC|yt-video42");
        assert_eq!(
            LastVisit::decode(LastVisit::encode(&scan).as_bytes()),
            Some(v)
        );
        assert_eq!(LastVisit::decode(b"x|y"), None);
    }
}

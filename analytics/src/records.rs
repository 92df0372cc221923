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

/// What the live store keeps per claimed event id: the decision, what the
/// brand sent (as a fingerprint), and for a refund the purchase it refunds.
/// Claims stored before these were kept read as a bare [`Conversion`]
/// (`fingerprint` and `purchase_event_id` empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    #[serde(flatten)]
    pub conversion: Conversion,
    /// [`crate::ledger::Reported::fingerprint`] of the event as first sent;
    /// empty in claims made before it was kept (any body matches those).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// For a refund: the event id of the purchase it refunds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub purchase_event_id: String,
}

impl ClaimRecord {
    /// A record without fingerprint or purchase (as older versions stored).
    pub fn of(conversion: Conversion) -> Self {
        Self {
            conversion,
            fingerprint: String::new(),
            purchase_event_id: String::new(),
        }
    }
}

/// How much of a purchase has been refunded: the amount (minor units of the
/// purchase's currency) and the earnings clawed back (a positive number, in
/// the purchase's earnings currency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refunded {
    pub amount: i64,
    pub earnings: i64,
}

/// A refund's change to its purchase's [`Refunded`], stored atomically with
/// the refund's claim: the claim is made only if the purchase's refunded
/// totals are still `before` (else [`Claim::Stale`]), and then become `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOf {
    pub purchase_event_id: String,
    pub before: Refunded,
    pub after: Refunded,
}

/// The outcome of claiming an event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: the given conversion is now the answer for this event id.
    New,
    /// Seen before: this was the answer then, and stays the answer.
    Existing(Box<ClaimRecord>),
    /// A refund whose purchase was refunded further since it was decided
    /// (another refund got in first): nothing was claimed; decide again.
    Stale,
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

    /// Claims stored before fingerprints read as records that match any body,
    /// and a record reads back as written.
    #[test]
    fn claim_records_read_older_claims() {
        let c = Conversion {
            event_id: "e1".into(),
            kind: crate::event::ConversionKind::Purchase,
            occurred_ms: 1_700_000_000_000,
            received_ms: 1_700_000_000_001,
            code: "spring".into(),
            owner: "alice".into(),
            channel: "yt".into(),
            scan_id: String::new(),
            scan_ms: 0,
            visitor_id: String::new(),
            customer_id: "cust-1".into(),
            amount: 1_000_000_000_000,
            currency: "EUR".into(),
            rule: crate::event::Rule::CodeOnly,
            earnings: 5_000,
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        };
        let older = serde_json::to_vec(&c).unwrap();
        let read: ClaimRecord = serde_json::from_slice(&older).unwrap();
        assert_eq!(read, ClaimRecord::of(c.clone()));
        let record = ClaimRecord {
            conversion: c,
            fingerprint: "00ff".into(),
            purchase_event_id: "p1".into(),
        };
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(
            serde_json::from_slice::<ClaimRecord>(&json).unwrap(),
            record
        );
    }
}

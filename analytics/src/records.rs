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

/// [`LastVisit::encode_packed`]'s first byte: the id as its 128 bits, and
/// the scan's time is the id's.
const PACKED_ID: u8 = 1;
/// [`LastVisit::encode_packed`]'s first byte: the time and the id as written.
const PACKED_TEXT: u8 = 2;

impl LastVisit {
    /// `{scan_ms}|{scan_id}|{channel}` of the scan that is the visit (what
    /// [`LastVisit::decode`] reads): ids and channels never contain `|`.
    /// What Redis keeps (its script compares the leading time).
    pub fn encode(scan: &Scan) -> String {
        format!("{}|{}|{}", scan.ts_ms, scan.scan_id, scan.channel)
    }

    /// The embedded store's smaller form, also read by [`LastVisit::decode`]
    /// (the text form starts with a digit, this with 1 or 2):
    /// - `1`, the id's 128 bits (big-endian), the channel: a scan id in its
    ///   canonical text whose time is the scan's (every scan the gateway
    ///   records), 17 bytes and the channel where the text took 43;
    /// - `2`, the time (u64 little-endian), the id's length (one byte) and
    ///   text, the channel: any other;
    /// - the text form, for an id longer than 255 bytes.
    pub fn encode_packed(scan: &Scan) -> Vec<u8> {
        let id = crate::ScanId::parse(&scan.scan_id)
            .filter(|id| id.encode() == scan.scan_id.as_bytes() && id.unix_ms() == scan.ts_ms);
        let mut out = Vec::with_capacity(27 + scan.channel.len());
        match (id, u8::try_from(scan.scan_id.len())) {
            (Some(id), _) => {
                out.push(PACKED_ID);
                out.extend_from_slice(&id.0.to_be_bytes());
            }
            (None, Ok(len)) => {
                out.push(PACKED_TEXT);
                out.extend_from_slice(&scan.ts_ms.to_le_bytes());
                out.push(len);
                out.extend_from_slice(scan.scan_id.as_bytes());
            }
            (None, Err(_)) => return Self::encode(scan).into_bytes(),
        }
        out.extend_from_slice(scan.channel.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        match *bytes.first()? {
            PACKED_ID => {
                let id = crate::ScanId(u128::from_be_bytes(bytes.get(1..17)?.try_into().ok()?));
                return Some(Self {
                    scan_ms: id.unix_ms(),
                    scan_id: id.to_string(),
                    channel: text(&bytes[17..])?,
                });
            }
            PACKED_TEXT => {
                let scan_ms = u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?);
                let end = 10 + usize::from(*bytes.get(9)?);
                return Some(Self {
                    scan_ms,
                    scan_id: text(bytes.get(10..end)?)?,
                    channel: text(&bytes[end..])?,
                });
            }
            _ => {}
        }
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

    /// The embedded store's packed form reads back as written, for the ids
    /// the gateway makes (17 bytes and the channel) and for any other; the
    /// text form stored by earlier versions still reads.
    #[test]
    fn packed_last_visits_read_back_and_old_ones_still_read() {
        let id = crate::ScanId::from_parts(1_700_000_000_123, 7, 42);
        let scan = |scan_id: String, ts_ms: u64, channel: &str| Scan {
            scan_id: scan_id.into(),
            ts_ms,
            channel: channel.into(),
            ..Scan::default()
        };
        let cases = [
            (scan(id.to_string(), id.unix_ms(), "yt"), Some(19)),
            (scan(id.to_string(), id.unix_ms(), ""), Some(17)),
            // The time is not the id's, or the id is not in canonical text.
            (scan(id.to_string(), id.unix_ms() + 1, "yt"), None),
            (
                scan(id.to_string().to_lowercase(), id.unix_ms(), "yt"),
                None,
            ),
            (scan("not-an-id".into(), 5, "bio"), None),
            (scan(String::new(), 0, ""), None),
            (scan("x".repeat(300), 9, "ig"), None),
        ];
        for (scan, len) in cases {
            let packed = LastVisit::encode_packed(&scan);
            if let Some(len) = len {
                assert_eq!(packed.len(), len, "{scan:?}");
            }
            let expected = LastVisit {
                scan_id: scan.scan_id.to_string(),
                channel: scan.channel.to_string(),
                scan_ms: scan.ts_ms,
            };
            assert_eq!(LastVisit::decode(&packed), Some(expected.clone()));
            let text = LastVisit::encode(&scan);
            assert_eq!(LastVisit::decode(text.as_bytes()), Some(expected));
        }
        assert_eq!(LastVisit::decode(&[1, 2, 3]), None);
        assert_eq!(
            LastVisit::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 9, b'a']),
            None
        );
        assert_eq!(LastVisit::decode(&[]), None);
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

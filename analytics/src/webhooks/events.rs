//! The events sent to endpoints. Every event id is derived from its cause
//! (`evt_` + 128 bits of SHA-256 over the type and the cause: a
//! conversion's event id, a code and the time of its change, a code and a
//! scan count), so the same cause enqueued twice — a brand's retry, a
//! replayed batch, two instances — is one event, and receivers dedup on it.
//!
//! The body: `{"id","type","timestamp","data"}`, `timestamp` being when the
//! event occurred (RFC 3339, UTC), the same on every attempt.

use crate::event::{Conversion, ConversionKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One event to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    /// One of [`super::EVENT_TYPES`].
    pub kind: &'static str,
    /// When it occurred (Unix ms).
    pub timestamp_ms: u64,
    /// Not delivered before this (`commission.confirmed`: the end of the hold).
    pub due_ms: u64,
    /// The owner of the code it is about (empty: none); endpoints scoped to
    /// an owner get only that owner's events.
    pub owner: String,
    /// For `scan.milestone`: the human scan count reached.
    pub milestone: Option<u64>,
    pub data: Value,
}

/// What a code event says about the code (the caller's record, in plain terms).
#[derive(Debug, Clone)]
pub struct CodeFacts {
    pub code: String,
    pub owner: String,
    pub destination: String,
    pub enabled: bool,
    /// When the code was created, and when this change was made (Unix ms).
    pub created_ms: u64,
    pub changed_ms: u64,
}

/// `evt_` + 32 hex digits of SHA-256 over the type and the cause.
pub fn event_id(kind: &str, cause: &str) -> String {
    let digest = Sha256::digest(format!("{kind}\0{cause}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// RFC 3339 in UTC, milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn opt(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

/// A conversion as events carry it.
fn conversion_data(c: &Conversion) -> Value {
    json!({
        "event_id": c.event_id,
        "kind": c.kind.as_str(),
        "occurred_at": rfc3339(c.occurred_ms),
        "received_at": rfc3339(c.received_ms),
        "code": opt(&c.code),
        "owner": opt(&c.owner),
        "channel": opt(&c.channel),
        "rule": c.rule.as_str(),
        "scan_id": opt(&c.scan_id),
        "customer_id": opt(&c.customer_id),
        "amount": c.amount,
        "currency": opt(&c.currency),
        "earnings": {"amount": c.earnings, "currency": opt(&c.earnings_currency)},
        "flagged": c.flagged.as_ref().map(|f| json!({"flags": f.flags, "held": f.held})),
    })
}

impl Event {
    /// The body posted to endpoints (the bytes signed).
    pub fn body(&self) -> String {
        json!({
            "id": self.id,
            "type": self.kind,
            "timestamp": rfc3339(self.timestamp_ms),
            "data": self.data,
        })
        .to_string()
    }

    /// `conversion.created` (a signup or purchase, with its attribution and
    /// earnings; a flagged one earns 0 and says what is held) or, for a
    /// refund, `conversion.refunded` with the clawback.
    pub fn conversion(c: &Conversion, purchase_event_id: Option<&str>, confirms_ms: u64) -> Self {
        let mut data = conversion_data(c);
        let kind = if c.kind == ConversionKind::Refund {
            data["purchase_event_id"] = json!(purchase_event_id);
            data["clawback"] =
                json!({"amount": -c.earnings, "currency": opt(&c.earnings_currency)});
            "conversion.refunded"
        } else {
            data["confirms_at"] = json!(rfc3339(confirms_ms));
            "conversion.created"
        };
        Self {
            id: event_id(kind, &c.event_id),
            kind,
            timestamp_ms: c.received_ms,
            due_ms: 0,
            owner: c.owner.clone(),
            milestone: None,
            data,
        }
    }

    /// `commission.confirmed`: due when the hold has passed (`confirms_ms`);
    /// carries the commission as credited (refunds meanwhile come as their
    /// own `conversion.refunded` events). `None` for what earns nothing.
    pub fn commission_confirmed(c: &Conversion, earnings: i64, confirms_ms: u64) -> Option<Self> {
        if c.kind == ConversionKind::Refund || earnings <= 0 {
            return None;
        }
        let mut data = conversion_data(c);
        data["earnings"] = json!({"amount": earnings, "currency": opt(&c.earnings_currency)});
        data["confirmed_at"] = json!(rfc3339(confirms_ms));
        let kind = "commission.confirmed";
        Some(Self {
            id: event_id(kind, &c.event_id),
            kind,
            timestamp_ms: confirms_ms,
            due_ms: confirms_ms,
            owner: c.owner.clone(),
            milestone: None,
            data,
        })
    }

    fn code(kind: &'static str, code: &CodeFacts, at_ms: u64) -> Self {
        Self {
            id: event_id(kind, &format!("{}\0{at_ms}", code.code)),
            kind,
            timestamp_ms: at_ms,
            due_ms: 0,
            owner: code.owner.clone(),
            milestone: None,
            data: json!({
                "code": code.code,
                "owner": code.owner,
                "destination": code.destination,
                "enabled": code.enabled,
                "created_at": rfc3339(code.created_ms),
            }),
        }
    }

    pub fn code_created(code: &CodeFacts) -> Self {
        Self::code("code.created", code, code.created_ms)
    }

    pub fn code_disabled(code: &CodeFacts) -> Self {
        Self::code("code.disabled", code, code.changed_ms)
    }

    /// `scan.milestone`: `code` reached `n` human scans.
    pub fn milestone(code: &str, owner: &str, n: u64, at_ms: u64) -> Self {
        let kind = "scan.milestone";
        Self {
            id: event_id(kind, &format!("{code}\0{n}")),
            kind,
            timestamp_ms: at_ms,
            due_ms: 0,
            owner: owner.to_string(),
            milestone: Some(n),
            data: json!({"code": code, "owner": opt(owner), "human_scans": n}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Rule;

    fn purchase(id: &str) -> Conversion {
        Conversion {
            event_id: id.into(),
            kind: ConversionKind::Purchase,
            occurred_ms: 1_700_000_000_000,
            received_ms: 1_700_000_001_000,
            code: "alice10".into(),
            owner: "alice".into(),
            channel: "yt".into(),
            scan_id: String::new(),
            scan_ms: 0,
            visitor_id: String::new(),
            customer_id: "c1".into(),
            amount: 5000,
            currency: "EUR".into(),
            rule: Rule::CodeOnly,
            earnings: 500,
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        }
    }

    #[test]
    fn ids_are_derived_from_the_cause() {
        let a = Event::conversion(&purchase("o-1"), None, 0);
        let again = Event::conversion(&purchase("o-1"), None, 0);
        assert_eq!(a.id, again.id);
        assert!(a.id.starts_with("evt_") && a.id.len() == 36, "{}", a.id);
        assert_ne!(a.id, Event::conversion(&purchase("o-2"), None, 0).id);
        let confirmed = Event::commission_confirmed(&purchase("o-1"), 500, 9).unwrap();
        assert_ne!(a.id, confirmed.id, "another type of the same cause");
        assert_eq!(confirmed.due_ms, 9);
        assert_eq!(
            Event::milestone("alice10", "alice", 1000, 1).id,
            Event::milestone("alice10", "alice", 1000, 2).id
        );
        assert_ne!(
            Event::milestone("alice10", "alice", 1000, 1).id,
            Event::milestone("alice10", "alice", 2000, 1).id
        );
        // Nothing earned, nothing to confirm.
        assert!(Event::commission_confirmed(&purchase("o-1"), 0, 9).is_none());
    }

    #[test]
    fn bodies_name_the_event() {
        let e = Event::conversion(&purchase("o-1"), None, 1_700_000_000_000);
        let body: Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["type"], "conversion.created");
        assert_eq!(body["id"], e.id.as_str());
        assert_eq!(body["timestamp"], "2023-11-14T22:13:21.000Z");
        assert_eq!(body["data"]["earnings"]["amount"], 500);
        assert_eq!(body["data"]["confirms_at"], "2023-11-14T22:13:20.000Z");
    }
}

//! Conversions in: attribution and earnings.
//!
//! Attribution, in order (the first rule that holds wins):
//! 1. `scan_id` — a scan token whose signature holds, of a scan no later than
//!    the conversion and within the code's attribution window → that scan;
//! 2. `inherited` — a purchase or refund by a `customer_id` whose earlier
//!    conversion was attributed → the same code, channel and scan;
//! 3. `visitor` — `code` plus `visitor_id` (or the visitor known for
//!    `customer_id`) → the latest human scan of that code by that visitor within
//!    the window;
//! 4. `code_only` — a known `code` alone;
//! 5. `unattributed`.
//!
//! A refund is not attributed on its own: it follows the purchase it refunds
//! (named by `purchase_event_id`, else the customer's latest purchase not yet
//! fully refunded), may refund at most what is left of that purchase, and
//! claws back the refunded share of that purchase's earnings, never more than
//! what remains credited.
//!
//! The live store (Redis when configured, else embedded) answers the lookups
//! with one key read each; no scan is searched for.

use crate::event::{Conversion, ConversionKind, Rule};
use crate::records::{ClaimRecord, CustomerLink, RefundOf, Refunded};
use crate::sink::{LiveStore, SinkError};
use crate::token::Signer;
use codelink_shared::CommissionPlan;

/// A conversion as the brand reported it, validated.
#[derive(Debug, Clone)]
pub struct Reported {
    pub event_id: String,
    pub kind: ConversionKind,
    pub occurred_ms: u64,
    /// Whether the brand gave `occurred_at` (else `occurred_ms` is the time
    /// of receipt, which a retry does not repeat).
    pub occurred_given: bool,
    pub received_ms: u64,
    pub scan_token: Option<String>,
    /// Canonical code name, if given.
    pub code: Option<String>,
    pub visitor_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
    /// ISO-4217; empty for a signup without money, or a refund in its
    /// purchase's currency.
    pub currency: String,
    /// For a refund: the event id of the purchase it refunds.
    pub purchase_event_id: Option<String>,
    /// The customer's IP /24 (IPv6 /48) as the brand saw it at signup
    /// (`enrich::anonymise`d: the full address is never kept).
    pub ip_prefix: Option<String>,
}

impl Reported {
    /// What the brand sent, hashed (SHA-256, 128 bits in hex): a repeat of
    /// the event id with another fingerprint is a different event.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut canonical = serde_json::json!([
            1,
            self.kind.as_str(),
            self.occurred_given.then_some(self.occurred_ms),
            self.scan_token,
            self.code,
            self.visitor_id,
            self.customer_id,
            self.amount,
            self.currency,
            self.purchase_event_id,
        ]);
        // Appended only when given, so that events sent before it existed
        // keep their fingerprints.
        if let (Some(ip), Some(list)) = (&self.ip_prefix, canonical.as_array_mut()) {
            list.push(serde_json::json!(ip));
        }
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a reported conversion cannot be taken, or could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The event contradicts what is stored (a refund of an unknown purchase,
    /// or of more than is left of it): `field` is the one to fix.
    #[error("{field}: {message}")]
    Rejected {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] SinkError),
}

fn rejected(field: &'static str, message: impl Into<String>) -> DecideError {
    DecideError::Rejected {
        field,
        message: message.into(),
    }
}

/// What attribution needs to know about a code.
#[derive(Debug, Clone)]
pub struct CodeTerms {
    pub owner: String,
    pub window_ms: u64,
    pub plan: Option<CommissionPlan>,
}

/// The decision for one reported conversion, before it is claimed.
pub struct Decision {
    pub conversion: Conversion,
    /// Why a given `scan_id` was not used (bad signature, outside the window…).
    pub notes: Vec<String>,
    /// The customer link to store with the claim.
    pub customer_link: Option<CustomerLink>,
    /// For a refund: its purchase's refunded totals before and after it.
    pub refund: Option<RefundOf>,
}

impl Decision {
    /// What to claim: the decision, the fingerprint of `reported` and the
    /// purchase a refund refunds.
    pub fn record(&self, fingerprint: String) -> ClaimRecord {
        ClaimRecord {
            conversion: self.conversion.clone(),
            fingerprint,
            purchase_event_id: self
                .refund
                .as_ref()
                .map(|r| r.purchase_event_id.clone())
                .unwrap_or_default(),
        }
    }
}

/// Decides attribution and earnings. `terms` looks a code up (None: unknown code).
pub async fn decide(
    reported: Reported,
    signer: &Signer,
    live: &LiveStore,
    terms: impl Fn(&str) -> Option<CodeTerms>,
) -> Result<Decision, DecideError> {
    if reported.kind == ConversionKind::Refund {
        return decide_refund(reported, live).await;
    }
    let mut notes = Vec::new();
    let at = reported.occurred_ms;
    let within = |scan_ms: u64, window_ms: u64| {
        scan_ms <= at + CLOCK_SKEW_MS && at.saturating_sub(scan_ms) <= window_ms
    };

    // (code, channel, scan_id, scan_ms, rule)
    let mut found: Option<(String, String, String, u64, Rule)> = None;

    if let Some(token) = &reported.scan_token {
        match signer.verify(token) {
            None => notes.push("scan_id is not a valid scan token; ignored".to_string()),
            Some(t) => match terms(&t.code) {
                None => notes.push(format!(
                    "scan_id names code '{}', which does not exist",
                    t.code
                )),
                Some(code_terms) if !within(t.scan_id.unix_ms(), code_terms.window_ms) => notes
                    .push("scan_id is outside the code's attribution window; ignored".to_string()),
                Some(_) => {
                    let ms = t.scan_id.unix_ms();
                    found = Some((t.code, t.channel, t.scan_id.to_string(), ms, Rule::ScanId));
                }
            },
        }
    }

    let link = match &reported.customer_id {
        Some(c) => live.customer(c).await?,
        None => None,
    };
    if found.is_none() && reported.kind != ConversionKind::Signup {
        if let Some(l) = &link {
            found = Some((
                l.code.clone(),
                l.channel.clone(),
                l.scan_id.clone(),
                l.scan_ms,
                Rule::Inherited,
            ));
        }
    }

    if found.is_none() {
        if let Some(code) = &reported.code {
            if let Some(code_terms) = terms(code) {
                let visitor = reported.visitor_id.clone().or_else(|| {
                    link.as_ref()
                        .map(|l| l.visitor_id.clone())
                        .filter(|v| !v.is_empty())
                });
                if let Some(visitor) = visitor {
                    if let Some(v) = live.last_visit(code, &visitor).await? {
                        if within(v.scan_ms, code_terms.window_ms) {
                            found = Some((
                                code.clone(),
                                v.channel,
                                v.scan_id,
                                v.scan_ms,
                                Rule::Visitor,
                            ));
                        }
                    }
                }
                if found.is_none() {
                    found = Some((
                        code.clone(),
                        String::new(),
                        String::new(),
                        0,
                        Rule::CodeOnly,
                    ));
                }
            } else {
                notes.push(format!("code '{code}' does not exist"));
            }
        }
    }

    let (code, channel, scan_id, scan_ms, rule) = found.unwrap_or_else(|| {
        (
            String::new(),
            String::new(),
            String::new(),
            0,
            Rule::Unattributed,
        )
    });
    let code_terms = if code.is_empty() { None } else { terms(&code) };
    let (earnings, earnings_currency) = match code_terms.as_ref().and_then(|t| t.plan.as_ref()) {
        Some(plan) => earnings(
            plan,
            reported.kind,
            reported.amount,
            &reported.currency,
            &mut notes,
        ),
        None => (0, String::new()),
    };
    let customer_link = match (&reported.customer_id, rule) {
        (Some(_), r) if r != Rule::Unattributed && link.is_none() => Some(CustomerLink {
            code: code.clone(),
            channel: channel.clone(),
            scan_id: scan_id.clone(),
            scan_ms,
            visitor_id: reported.visitor_id.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    let conversion = Conversion {
        event_id: reported.event_id,
        kind: reported.kind,
        occurred_ms: reported.occurred_ms,
        received_ms: reported.received_ms,
        owner: code_terms.map(|t| t.owner).unwrap_or_default(),
        code,
        channel,
        scan_id,
        scan_ms,
        visitor_id: reported.visitor_id.unwrap_or_default(),
        customer_id: reported.customer_id.unwrap_or_default(),
        amount: reported.amount,
        currency: reported.currency,
        rule,
        earnings,
        earnings_currency,
        repeat: false,
        flagged: None,
    };
    Ok(Decision {
        conversion,
        notes,
        customer_link,
        refund: None,
    })
}

/// A refund: the purchase it refunds (see the module docs) and the share of
/// that purchase's earnings it claws back.
async fn decide_refund(reported: Reported, live: &LiveStore) -> Result<Decision, DecideError> {
    let (purchase, before) = match (&reported.purchase_event_id, &reported.customer_id) {
        (Some(id), _) => {
            let Some(purchase) = live.claimed(id).await? else {
                return Err(rejected(
                    "purchase_event_id",
                    format!("no purchase with event_id '{id}' was reported"),
                ));
            };
            let p = &purchase.conversion;
            if p.kind != ConversionKind::Purchase {
                return Err(rejected(
                    "purchase_event_id",
                    format!("event '{id}' is a {}, not a purchase", p.kind.as_str()),
                ));
            }
            if let Some(customer) = &reported.customer_id {
                if !p.customer_id.is_empty() && p.customer_id != *customer {
                    return Err(rejected(
                        "customer_id",
                        format!("purchase '{id}' was made by another customer"),
                    ));
                }
            }
            let before = live.refunded(id).await?;
            (purchase, before)
        }
        (None, Some(customer)) => match live.latest_refundable_purchase(customer).await? {
            Some(found) => found,
            None => {
                return Err(rejected(
                    "customer_id",
                    "no purchase to refund for this customer (none was reported, or all are fully refunded)",
                ))
            }
        },
        (None, None) => {
            return Err(rejected(
                "purchase_event_id",
                "a refund names its purchase: send purchase_event_id (the purchase's event_id), \
                 or customer_id to refund that customer's latest purchase not yet fully refunded",
            ))
        }
    };
    let p = &purchase.conversion;
    if !reported.currency.is_empty() && reported.currency != p.currency {
        return Err(rejected(
            "currency",
            format!(
                "is {}, but purchase '{}' was in {}",
                reported.currency, p.event_id, p.currency
            ),
        ));
    }
    let left = p.amount - before.amount;
    if reported.amount > left {
        return Err(rejected(
            "amount",
            format!(
                "{} is more than is left to refund of purchase '{}': {left} of {} {}",
                reported.amount, p.event_id, p.amount, p.currency
            ),
        ));
    }
    let after_amount = before.amount + reported.amount;
    // A flagged purchase earned nothing unless a review approved it (then
    // what it held was released).
    let credited = match &p.flagged {
        None => p.earnings,
        Some(f) => match live.review(&p.event_id).await? {
            Some(r) if r.status == crate::review::ReviewStatus::Approved => f.held,
            _ => 0,
        },
    };
    let clawback = clawback(credited, p.amount, before, after_amount);
    let mut notes = Vec::new();
    if reported.scan_token.is_some() || reported.code.is_some() {
        notes.push(format!(
            "a refund follows its purchase's attribution ('{}'): scan_id and code are not used",
            p.event_id
        ));
    }
    let refund = RefundOf {
        purchase_event_id: p.event_id.clone(),
        before,
        after: Refunded {
            amount: after_amount,
            earnings: before.earnings + clawback,
        },
    };
    let conversion = Conversion {
        event_id: reported.event_id,
        kind: ConversionKind::Refund,
        occurred_ms: reported.occurred_ms,
        received_ms: reported.received_ms,
        code: p.code.clone(),
        owner: p.owner.clone(),
        channel: p.channel.clone(),
        scan_id: p.scan_id.clone(),
        scan_ms: p.scan_ms,
        visitor_id: reported.visitor_id.unwrap_or_else(|| p.visitor_id.clone()),
        customer_id: reported
            .customer_id
            .unwrap_or_else(|| p.customer_id.clone()),
        amount: reported.amount,
        currency: p.currency.clone(),
        rule: p.rule,
        earnings: -clawback,
        earnings_currency: p.earnings_currency.clone(),
        repeat: false,
        flagged: None,
    };
    Ok(Decision {
        conversion,
        notes,
        customer_link: None,
        refund: Some(refund),
    })
}

/// What a refund bringing a purchase's refunded amount from `before.amount`
/// to `after_amount` claws back (a positive number): the refunded share of
/// the purchase's `earnings`, rounded half up on the running total so that
/// a purchase refunded in parts gives back exactly what it earned, and never
/// more than what remains credited.
pub fn clawback(earnings: i64, amount: i64, before: Refunded, after_amount: i64) -> i64 {
    let credited = earnings.max(0);
    if amount <= 0 || credited == 0 {
        return 0;
    }
    let (e, a, r) = (credited as i128, amount as i128, after_amount as i128);
    let total = ((2 * e * r + a) / (2 * a)).min(e) as i64;
    (total - before.earnings).clamp(0, (credited - before.earnings).max(0))
}

/// Whether the earnings of a conversion that occurred at `occurred_ms` are
/// confirmed at `now_ms`: once `hold_ms` has passed since the end of the UTC
/// hour it occurred in. (Per hour rather than per millisecond so that rollups,
/// which keep conversions per hour, tell confirmed from estimated exactly.)
pub fn is_confirmed(occurred_ms: u64, hold_ms: u64, now_ms: u64) -> bool {
    confirms_at(occurred_ms, hold_ms) <= now_ms
}

/// When the earnings of a conversion that occurred at `occurred_ms` become
/// confirmed (see [`is_confirmed`]).
pub fn confirms_at(occurred_ms: u64, hold_ms: u64) -> u64 {
    const HOUR: u64 = 3_600_000;
    let hour_end = (occurred_ms / HOUR + 1) * HOUR;
    hour_end.saturating_add(hold_ms)
}

/// A scan may be stamped a little after the conversion by another machine's clock.
const CLOCK_SKEW_MS: u64 = 5_000;

/// Commission of one conversion under `plan`, in the plan's currency: a flat
/// amount per signup; a share of a purchase; the same share taken back on a
/// refund. Each capped by `plan.cap`. Money in another currency earns nothing
/// (with a note): codelink does not convert currencies.
pub fn earnings(
    plan: &CommissionPlan,
    kind: ConversionKind,
    amount: i64,
    currency: &str,
    notes: &mut Vec<String>,
) -> (i64, String) {
    let cap = |v: i64| match plan.cap {
        Some(c) => v.min(c.min(i64::MAX as u64) as i64),
        None => v,
    };
    let share = |amount: i64| -> i64 {
        // Round half up, in i128 so that large amounts cannot overflow.
        ((amount as i128 * plan.purchase_bps as i128 + 5_000) / 10_000) as i64
    };
    let value = match kind {
        ConversionKind::Signup => cap(plan.signup_flat.min(i64::MAX as u64) as i64),
        ConversionKind::Purchase | ConversionKind::Refund => {
            if currency != plan.currency {
                notes.push(format!(
                    "amount is in {currency}, the commission plan in {}: no earnings",
                    plan.currency
                ));
                return (0, plan.currency.clone());
            }
            let v = cap(share(amount));
            if kind == ConversionKind::Refund {
                -v
            } else {
                v
            }
        }
    };
    (value, plan.currency.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CommissionPlan {
        CommissionPlan {
            currency: "EUR".into(),
            signup_flat: 200,
            purchase_bps: 1000,
            cap: Some(5000),
        }
    }

    #[test]
    fn clawbacks_share_the_purchase_earnings_and_never_exceed_them() {
        let none = Refunded::default();
        // A third of 100.00 that earned 50.00 (capped).
        assert_eq!(clawback(5_000, 100_000, none, 33_333), 1_667);
        // Parts add up to exactly the earnings.
        let mut before = none;
        let mut total = 0;
        for part in [33_333, 33_333, 33_334] {
            let c = clawback(5_000, 100_000, before, before.amount + part);
            total += c;
            before = Refunded {
                amount: before.amount + part,
                earnings: before.earnings + c,
            };
        }
        assert_eq!(total, 5_000);
        // Never more than what remains credited, never negative.
        let most = Refunded {
            amount: 10,
            earnings: 4_999,
        };
        assert_eq!(clawback(5_000, 100_000, most, 100_000), 1);
        assert_eq!(clawback(5_000, 100_000, most, 200_000), 1);
        assert_eq!(clawback(0, 100_000, none, 100_000), 0);
        assert_eq!(clawback(5_000, 0, none, 0), 0);
        assert_eq!(clawback(-5, 100, none, 100), 0);
    }

    #[test]
    fn fingerprints_are_what_was_sent() {
        let r = Reported {
            event_id: "e1".into(),
            kind: ConversionKind::Refund,
            occurred_ms: 1_000,
            occurred_given: false,
            received_ms: 1_000,
            scan_token: None,
            code: None,
            visitor_id: None,
            customer_id: Some("c".into()),
            amount: 5,
            currency: String::new(),
            purchase_event_id: None,
            ip_prefix: None,
        };
        let mut later = r.clone();
        (later.occurred_ms, later.received_ms) = (9_000, 9_000);
        assert_eq!(
            r.fingerprint(),
            later.fingerprint(),
            "receipt time is not sent"
        );
        assert_eq!(r.fingerprint().len(), 32);
        let mut other = r.clone();
        other.purchase_event_id = Some("p".into());
        assert_ne!(r.fingerprint(), other.fingerprint());
        let mut given = r.clone();
        given.occurred_given = true;
        assert_ne!(r.fingerprint(), given.fingerprint());
    }

    #[test]
    fn earnings_rules() {
        let mut notes = vec![];
        assert_eq!(
            earnings(&plan(), ConversionKind::Signup, 0, "", &mut notes),
            (200, "EUR".into())
        );
        assert_eq!(
            earnings(&plan(), ConversionKind::Purchase, 12_345, "EUR", &mut notes).0,
            1235
        );
        assert_eq!(
            earnings(
                &plan(),
                ConversionKind::Purchase,
                1_000_000,
                "EUR",
                &mut notes
            )
            .0,
            5000
        );
        assert_eq!(
            earnings(&plan(), ConversionKind::Refund, 12_345, "EUR", &mut notes).0,
            -1235
        );
        assert!(notes.is_empty());
        assert_eq!(
            earnings(&plan(), ConversionKind::Purchase, 100, "USD", &mut notes).0,
            0
        );
        assert_eq!(notes.len(), 1);
    }
}

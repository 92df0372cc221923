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
//! The live store (Redis when configured, else embedded) answers the lookups
//! with one key read each; no scan is searched for.

use crate::event::{Conversion, ConversionKind, Rule};
use crate::records::CustomerLink;
use crate::sink::{LiveStore, SinkError};
use crate::token::Signer;
use codelink_shared::CommissionPlan;

/// A conversion as the brand reported it, validated.
#[derive(Debug, Clone)]
pub struct Reported {
    pub event_id: String,
    pub kind: ConversionKind,
    pub occurred_ms: u64,
    pub received_ms: u64,
    pub scan_token: Option<String>,
    /// Canonical code name, if given.
    pub code: Option<String>,
    pub visitor_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
    pub currency: String,
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
}

/// Decides attribution and earnings. `terms` looks a code up (None: unknown code).
pub async fn decide(
    reported: Reported,
    signer: &Signer,
    live: &LiveStore,
    terms: impl Fn(&str) -> Option<CodeTerms>,
) -> Result<Decision, SinkError> {
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
    };
    Ok(Decision {
        conversion,
        notes,
        customer_link,
    })
}

/// Whether the earnings of a conversion that occurred at `occurred_ms` are
/// confirmed at `now_ms`: once `hold_ms` has passed since the end of the UTC
/// hour it occurred in. (Per hour rather than per millisecond so that rollups,
/// which keep conversions per hour, tell confirmed from estimated exactly.)
pub fn is_confirmed(occurred_ms: u64, hold_ms: u64, now_ms: u64) -> bool {
    const HOUR: u64 = 3_600_000;
    let hour_end = (occurred_ms / HOUR + 1) * HOUR;
    hour_end.saturating_add(hold_ms) <= now_ms
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

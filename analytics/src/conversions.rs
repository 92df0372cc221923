//! Conversions in, as one sequence: decide (attribution and earnings) → fraud
//! checks (`crate::fraud`: a flagged conversion earns 0 and holds its
//! earnings) → claim the event id in the live store → a flagged one into the
//! review queue (`crate::review`) → record the rows → the outcome per event.
//!
//! Idempotent by event id: the first decision is claimed atomically (Redis Lua,
//! or one redb transaction) before its row is recorded, and every later report
//! of the same id gets that decision back, on any instance, after any restart.
//! A repeat records the row again (rows are keyed by event id, so a write lost
//! in a crash heals) but marked as a repeat, so rollups count it only when its
//! first recording is known to be missing (see `sink`).
//!
//! When the rows cannot be stored by every sink, the event ids claimed by this
//! call are released again and [`Error::NotStored`] is returned: the brand's
//! retry is then decided afresh instead of being answered "duplicate" for a
//! conversion that was never stored.

use crate::error::Error;
use crate::event::{Conversion, Flagged};
use crate::fraud;
use crate::ledger::{self, CodeTerms, DecideError, Reported};
use crate::records::{Claim, ClaimRecord, RefundOf};
use crate::review::{Review, ReviewStatus};
use crate::service::Analytics;
use crate::webhooks::Event as WebhookEvent;

/// How often a refund is decided again when another refund of the same
/// purchase got in between its decision and its claim.
const STALE_RETRIES: usize = 8;

/// What became of one reported event.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The decision: the new one, or for a duplicate the first one given.
    pub conversion: Conversion,
    /// For a refund: the event id of the purchase it refunds.
    pub purchase_event_id: Option<String>,
    /// The event id had been reported before.
    pub duplicate: bool,
    /// Why a given scan token or code was not used (empty for duplicates).
    pub notes: Vec<String>,
    /// Whether its earnings are past the hold (see [`ledger::is_confirmed`]).
    pub confirmed: bool,
}

impl Analytics {
    /// Decides, claims and records `events` (validated by the caller), in
    /// order; `terms` looks up a code (`None`: no such code). Answers once
    /// every sink has written or spooled the rows.
    ///
    /// An event id claimed before is answered with its first decision, as a
    /// duplicate, if it was sent with the same body ([`Reported::fingerprint`];
    /// claims older than fingerprints match any body); with another body the
    /// whole report is refused ([`Error::IdempotencyConflict`]). So is a
    /// report with a refund that cannot be tied to its purchase
    /// ([`Error::Rejected`]). A refused report keeps nothing.
    pub async fn report_conversions(
        &self,
        events: Vec<Reported>,
        now_ms: u64,
        terms: impl Fn(&str) -> Option<CodeTerms>,
    ) -> Result<Vec<Outcome>, Error> {
        let mut claimed: Vec<(ClaimRecord, Option<RefundOf>)> = Vec::new();
        let result = self
            .report_claiming(events, now_ms, &terms, &mut claimed)
            .await;
        if result.is_err() {
            release(self, &claimed).await;
        }
        let outcomes = result?;
        // The webhook events, before the answer (a duplicate enqueues them
        // again, which stores nothing twice: a crash between recording and
        // enqueueing is repaired by the brand's retry). The claims stay when
        // this fails: the conversions are recorded, and the retry is a
        // duplicate that enqueues again.
        let hold_ms = self.config().hold.as_millis() as u64;
        let mut events = Vec::new();
        for o in &outcomes {
            let c = &o.conversion;
            let confirms = ledger::confirms_at(c.occurred_ms, hold_ms);
            events.push(WebhookEvent::conversion(
                c,
                o.purchase_event_id.as_deref(),
                confirms,
            ));
            // A flagged conversion's commission is confirmed only after an
            // approval (`review.rs`).
            if c.flagged.is_none() {
                events.extend(WebhookEvent::commission_confirmed(c, c.earnings, confirms));
            }
        }
        self.enqueue_webhooks(&events).await.map_err(|e| {
            Error::Unavailable(format!(
                "the conversions are recorded but their webhook events could not be queued ({e}); retry with the same event ids"
            ))
        })?;
        Ok(outcomes)
    }

    async fn report_claiming(
        &self,
        events: Vec<Reported>,
        now_ms: u64,
        terms: &impl Fn(&str) -> Option<CodeTerms>,
        // The claims this call made, to release should the report fail.
        claimed: &mut Vec<(ClaimRecord, Option<RefundOf>)>,
    ) -> Result<Vec<Outcome>, Error> {
        let live = self.live();
        let hold_ms = self.config().hold.as_millis() as u64;
        let mut outcomes = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let fingerprint = event.fingerprint();
            let repeat = |first: ClaimRecord| {
                if first.fingerprint.is_empty() || first.fingerprint == fingerprint {
                    Ok((first, true, Vec::new()))
                } else {
                    Err(Error::IdempotencyConflict {
                        index,
                        event_id: first.conversion.event_id.clone(),
                    })
                }
            };
            let mut attempts = 0;
            let (record, duplicate, notes) = loop {
                // A repeat gets the first answer without being decided again
                // (a refund's purchase may be fully refunded by now: by it).
                if let Some(first) = live.claimed(&event.event_id).await? {
                    break repeat(first)?;
                }
                let mut decision =
                    match ledger::decide(event.clone(), self.signer(), live, terms).await {
                        Ok(d) => d,
                        Err(DecideError::Rejected { field, message }) => {
                            return Err(Error::Rejected {
                                index,
                                field,
                                message,
                            })
                        }
                        Err(DecideError::Store(e)) => return Err(e.into()),
                    };
                let flags = fraud::check(
                    &self.config().fraud,
                    &decision.conversion,
                    event.ip_prefix.as_deref(),
                    live,
                    self.queries(),
                    terms,
                )
                .await?;
                if !flags.is_empty() {
                    let c = &mut decision.conversion;
                    c.flagged = Some(Flagged {
                        flags,
                        held: c.earnings,
                    });
                    c.earnings = 0;
                }
                let record = decision.record(fingerprint.clone());
                let claim = live
                    .claim(
                        &record,
                        decision.customer_link.as_ref(),
                        decision.refund.as_ref(),
                    )
                    .await?;
                match claim {
                    Claim::New => {
                        if let Some(f) = &record.conversion.flagged {
                            self.fraud_metrics().flagged(&f.flags);
                        }
                        claimed.push((record.clone(), decision.refund));
                        break (record, false, decision.notes);
                    }
                    Claim::Existing(first) => break repeat(*first)?,
                    Claim::Stale if attempts < STALE_RETRIES => attempts += 1,
                    Claim::Stale => {
                        return Err(Error::Unavailable(format!(
                            "the purchase refunded by '{}' kept changing while it was decided",
                            event.event_id
                        )))
                    }
                }
            };
            if record.conversion.flagged.is_some() {
                // Into the review queue before the row is recorded (only if
                // absent: a repeat finds it there, or puts it back).
                live.open_review(&Review {
                    conversion: record.conversion.clone(),
                    status: ReviewStatus::Pending,
                    decisions: Vec::new(),
                })
                .await?;
            }
            let ClaimRecord {
                conversion,
                purchase_event_id,
                ..
            } = record;
            let mut row = conversion.clone();
            row.repeat = duplicate;
            rows.push(row);
            outcomes.push(Outcome {
                confirmed: ledger::is_confirmed(conversion.occurred_ms, hold_ms, now_ms),
                conversion,
                purchase_event_id: (!purchase_event_id.is_empty()).then_some(purchase_event_id),
                duplicate,
                notes,
            });
        }
        if !self.recorder().record_conversions(rows).await {
            return Err(Error::NotStored);
        }
        Ok(outcomes)
    }
}

/// Undoes this call's claims (each only if it still holds this call's
/// answer), the latest first.
async fn release(analytics: &Analytics, claimed: &[(ClaimRecord, Option<RefundOf>)]) {
    for (record, refund) in claimed.iter().rev() {
        if record.conversion.flagged.is_some() {
            if let Err(e) = analytics
                .live()
                .drop_review(&record.conversion.event_id)
                .await
            {
                tracing::error!(event_id = %record.conversion.event_id, error = %e, "could not take a released conversion out of the review queue");
            }
        }
        if let Err(e) = analytics.live().release(record, refund.as_ref()).await {
            tracing::error!(event_id = %record.conversion.event_id, error = %e, "could not release a conversion claim; a retry will be answered as a duplicate");
        }
    }
}

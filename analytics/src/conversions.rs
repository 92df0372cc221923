//! Conversions in, as one sequence: decide (attribution and earnings) → claim
//! the event id in the live store → record the rows → the outcome per event.
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
use crate::event::Conversion;
use crate::ledger::{self, CodeTerms, Reported};
use crate::records::Claim;
use crate::service::Analytics;

/// What became of one reported event.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The decision: the new one, or for a duplicate the first one given.
    pub conversion: Conversion,
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
    pub async fn report_conversions(
        &self,
        events: Vec<Reported>,
        now_ms: u64,
        terms: impl Fn(&str) -> Option<CodeTerms>,
    ) -> Result<Vec<Outcome>, Error> {
        let live = self.live();
        let hold_ms = self.config().hold.as_millis() as u64;
        let mut outcomes = Vec::with_capacity(events.len());
        let mut rows = Vec::with_capacity(events.len());
        // The claims this call made, to release should the rows not be stored.
        let mut claimed: Vec<Conversion> = Vec::new();
        for event in events {
            let decided = ledger::decide(event, self.signer(), live, &terms).await;
            let decision = match decided {
                Ok(d) => d,
                Err(e) => {
                    release(self, &claimed).await;
                    return Err(e.into());
                }
            };
            let claim = live
                .claim(&decision.conversion, decision.customer_link.as_ref())
                .await;
            let (conversion, duplicate, notes) = match claim {
                Ok(Claim::New) => {
                    claimed.push(decision.conversion.clone());
                    (decision.conversion, false, decision.notes)
                }
                Ok(Claim::Existing(first)) => (*first, true, Vec::new()),
                Err(e) => {
                    release(self, &claimed).await;
                    return Err(e.into());
                }
            };
            let mut row = conversion.clone();
            row.repeat = duplicate;
            rows.push(row);
            outcomes.push(Outcome {
                confirmed: ledger::is_confirmed(conversion.occurred_ms, hold_ms, now_ms),
                conversion,
                duplicate,
                notes,
            });
        }
        if !self.recorder().record_conversions(rows).await {
            release(self, &claimed).await;
            return Err(Error::NotStored);
        }
        Ok(outcomes)
    }
}

/// Undoes this call's claims (each only if it still holds this call's answer).
async fn release(analytics: &Analytics, claimed: &[Conversion]) {
    for c in claimed {
        if let Err(e) = analytics.live().release(c).await {
            tracing::error!(event_id = %c.event_id, error = %e, "could not release a conversion claim; a retry will be answered as a duplicate");
        }
    }
}

//! The review of flagged conversions: the queue kept in the live store
//! (Redis when configured, else embedded, so every instance sees it after any
//! restart), the decisions taken on it, and what a decision changes.
//!
//! A flagged conversion is stored earning nothing, with what it would have
//! earned held ([`crate::event::Flagged`]); its rollup cells count it as
//! flagged (+1) and its earnings as held. A decision is an [`Adjustment`] of
//! the conversion's own rollup cells (its bucket, code, owner, kind,
//! currencies and dimensions), so sums over any range stay exact: approval
//! adds the held earnings to `earnings`, takes them off `held` and the
//! conversion off `flagged`; rejection only takes them off `held` (it earned
//! nothing already, and stays counted as flagged). Adjustments are carried
//! through the recorder like conversions, so every sink applies each exactly
//! once (a batch keeps its id through the spool). The state change (pending → approved/rejected)
//! is a compare-and-set in the live store, so of two decisions racing on any
//! instances one wins and the other is told it came too late (409).

use crate::error::Error;
use crate::event::{Conversion, ConversionKind};
use crate::records::Refunded;
use crate::service::Analytics;
use serde::{Deserialize, Serialize};

/// Where a flagged conversion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    Pending,
    Approved,
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ReviewStatus::Pending),
            "approved" => Some(ReviewStatus::Approved),
            "rejected" => Some(ReviewStatus::Rejected),
            _ => None,
        }
    }
}

/// One decision on a flagged conversion, with who took it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDecision {
    /// `approve` or `reject`.
    pub decision: String,
    pub note: String,
    /// The principal that decided (e.g. `admin`, or a key id).
    pub by: String,
    /// Unix ms.
    pub at_ms: u64,
}

/// A flagged conversion in the review queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The conversion as claimed (flagged, with its reasons and held earnings).
    pub conversion: Conversion,
    pub status: ReviewStatus,
    /// Every decision taken, oldest first.
    pub decisions: Vec<ReviewDecision>,
}

impl Review {
    /// `{received ms, 20 digits}|{event id}`: the queue's order (newest last)
    /// and its page cursor.
    pub fn position(&self) -> String {
        format!(
            "{:020}|{}",
            self.conversion.received_ms, self.conversion.event_id
        )
    }

    pub fn held(&self) -> i64 {
        self.conversion.flagged.as_ref().map_or(0, |f| f.held)
    }
}

/// A page of the review queue, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPage {
    pub reviews: Vec<Review>,
    /// Pass as `before` for the next (older) page; `None` on the last.
    pub next: Option<String>,
}

/// What a review decision changes in its conversion's own rollup cells,
/// applied by every sink exactly once (it rides in a batch): an approval
/// releases the held earnings (`earnings` +held, `held` −held, `flagged`
/// −1); a rejection only stops holding them (`held` −held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The conversion as stored (its cells are found from it).
    pub conversion: Conversion,
    pub earnings: i64,
    pub held: i64,
    pub flagged: i64,
}

impl Adjustment {
    /// The change `status` (a decision) makes to a pending `conversion`;
    /// `None` when it changes no number.
    pub fn of(conversion: &Conversion, status: ReviewStatus) -> Option<Self> {
        let held = conversion.flagged.as_ref().map_or(0, |f| f.held);
        let (earnings, flagged) = match status {
            ReviewStatus::Approved => (held, -1),
            ReviewStatus::Rejected if held != 0 => (0, 0),
            _ => return None,
        };
        Some(Self {
            conversion: conversion.clone(),
            earnings,
            held: -held,
            flagged,
        })
    }
}

/// Why a review decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no flagged conversion with event_id '{0}'")]
    NotFound(String),
    #[error("conversion '{event_id}' was already {status}")]
    AlreadyDecided {
        event_id: String,
        status: &'static str,
    },
    #[error(transparent)]
    Analytics(#[from] Error),
}

impl From<crate::sink::SinkError> for ReviewError {
    fn from(e: crate::sink::SinkError) -> Self {
        ReviewError::Analytics(e.into())
    }
}

/// Most reviews in one page.
pub const MAX_PAGE: usize = 200;

impl Analytics {
    /// A page of the review queue of `status`, newest first, of one code or
    /// all; `before` is the previous page's `next`.
    pub async fn reviews(
        &self,
        status: ReviewStatus,
        code: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<ReviewPage, Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut reviews = self.live().reviews(status, code, before, limit + 1).await?;
        let more = reviews.len() > limit;
        reviews.truncate(limit);
        let next = more.then(|| reviews.last().map(Review::position)).flatten();
        Ok(ReviewPage { reviews, next })
    }

    /// One flagged conversion with its decisions.
    pub async fn review(&self, event_id: &str) -> Result<Option<Review>, Error> {
        Ok(self.live().review(event_id).await?)
    }

    /// Approves (`approve`) or rejects a pending flagged conversion; `by`
    /// names who decided. Approval releases its held earnings to every sink
    /// (see the module docs); if the recorder cannot take them the decision is
    /// undone and [`Error::NotStored`] returned.
    pub async fn decide_review(
        &self,
        event_id: &str,
        approve: bool,
        note: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<Review, ReviewError> {
        let decided = self
            .take_decision(event_id, approve, note, by, now_ms)
            .await?;
        self.record_decisions(std::slice::from_ref(&decided))
            .await?;
        let after = &decided.1;
        if after.status == ReviewStatus::Approved {
            // Its commission is confirmed once the hold has passed, as for
            // a conversion never flagged (at once if it has).
            let c = &after.conversion;
            let hold_ms = self.config().hold.as_millis() as u64;
            let confirms = crate::ledger::confirms_at(c.occurred_ms, hold_ms).max(now_ms);
            let held = c.flagged.as_ref().map_or(0, |f| f.held);
            if let Some(event) = crate::webhooks::Event::commission_confirmed(c, held, confirms) {
                if let Err(e) = self.enqueue_webhooks(std::slice::from_ref(&event)).await {
                    tracing::error!(event_id = %c.event_id, error = %e, "commission.confirmed of an approved conversion could not be queued");
                }
            }
        }
        Ok(decided.1)
    }

    /// The compare-and-set of one decision: (the review before, after).
    async fn take_decision(
        &self,
        event_id: &str,
        approve: bool,
        note: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<(Review, Review), ReviewError> {
        let live = self.live();
        let Some(before) = live.review(event_id).await? else {
            return Err(ReviewError::NotFound(event_id.to_string()));
        };
        if before.status != ReviewStatus::Pending {
            return Err(ReviewError::AlreadyDecided {
                event_id: event_id.to_string(),
                status: before.status.as_str(),
            });
        }
        let mut after = before.clone();
        after.status = if approve {
            ReviewStatus::Approved
        } else {
            ReviewStatus::Rejected
        };
        after.decisions.push(ReviewDecision {
            decision: if approve { "approve" } else { "reject" }.to_string(),
            note: note.to_string(),
            by: by.to_string(),
            at_ms: now_ms,
        });
        if !live.swap_review(&before, &after).await? {
            // Another decision got in first (on this or another instance),
            // or the review went with its released claim.
            return Err(match live.review(event_id).await? {
                Some(r) => ReviewError::AlreadyDecided {
                    event_id: event_id.to_string(),
                    status: r.status.as_str(),
                },
                None => ReviewError::NotFound(event_id.to_string()),
            });
        }
        Ok((before, after))
    }

    /// Hands the adjustments of decisions just taken to the recorder, in one
    /// batch (one flush for a whole page of a ban); if it cannot take them,
    /// the decisions are undone and [`Error::NotStored`] returned.
    async fn record_decisions(&self, decided: &[(Review, Review)]) -> Result<(), Error> {
        let mut adjustments = Vec::with_capacity(decided.len());
        // Refunded totals moved for approved purchases: (purchase, before, after).
        let mut settled: Vec<(String, Refunded, Refunded)> = Vec::new();
        for (_, after) in decided {
            let Some(mut a) = Adjustment::of(&after.conversion, after.status) else {
                continue;
            };
            if after.status == ReviewStatus::Approved {
                let found = match self.settle_refunds(&after.conversion).await {
                    Ok(found) => found,
                    Err(e) => {
                        self.undo_decisions(decided, &settled).await;
                        return Err(e);
                    }
                };
                if let Some((before_totals, after_totals, share)) = found {
                    a.earnings -= share;
                    settled.push((
                        after.conversion.event_id.clone(),
                        before_totals,
                        after_totals,
                    ));
                }
            }
            adjustments.push(a);
        }
        if !adjustments.is_empty() && !self.recorder().record_adjustments(adjustments).await {
            self.undo_decisions(decided, &settled).await;
            return Err(Error::NotStored);
        }
        for (_, after) in decided {
            self.fraud_metrics()
                .decided(after.status == ReviewStatus::Approved);
        }
        Ok(())
    }

    /// Puts back what [`Analytics::record_decisions`] changed before it
    /// failed: refunded totals, then the reviews (latest first).
    async fn undo_decisions(
        &self,
        decided: &[(Review, Review)],
        settled: &[(String, Refunded, Refunded)],
    ) {
        for (id, before, after) in settled.iter().rev() {
            if let Err(e) = self.live().swap_refunded(id, *after, *before).await {
                tracing::error!(event_id = %id, error = %e, "an approved purchase's refunded totals could not be put back");
            }
        }
        for (before, after) in decided.iter().rev() {
            if let Err(e) = self.live().swap_review(after, before).await {
                tracing::error!(event_id = %after.conversion.event_id, error = %e, "a review decision could not be stored nor undone; it says decided but its adjustment was not recorded");
            }
        }
    }

    /// For an approved purchase refunded while it was pending (those refunds
    /// clawed back nothing: it had earned nothing): the share of its held
    /// earnings those refunds took, now counted as clawed back in its
    /// refunded totals (a compare-and-set; a refund getting in between is
    /// seen and the share computed again), so that the approval releases only
    /// the rest and later refunds claw back as for any purchase. Returns the
    /// totals before and after and the share; `None` when nothing was refunded.
    async fn settle_refunds(
        &self,
        purchase: &Conversion,
    ) -> Result<Option<(Refunded, Refunded, i64)>, Error> {
        if purchase.kind != ConversionKind::Purchase {
            return Ok(None);
        }
        let held = purchase.flagged.as_ref().map_or(0, |f| f.held);
        let live = self.live();
        for _ in 0..8 {
            let before = live.refunded(&purchase.event_id).await?;
            if before.amount == 0 {
                return Ok(None);
            }
            // What a purchase credited `held` has clawed back at this refunded
            // amount; refunds after the approval took their part themselves.
            let target =
                crate::ledger::clawback(held, purchase.amount, Refunded::default(), before.amount);
            let share = (target - before.earnings).max(0);
            let after = Refunded {
                amount: before.amount,
                earnings: before.earnings + share,
            };
            if share == 0
                || live
                    .swap_refunded(&purchase.event_id, before, after)
                    .await?
            {
                return Ok(Some((before, after, share)));
            }
        }
        Err(Error::Unavailable(format!(
            "the refunds of purchase '{}' kept changing while it was approved",
            purchase.event_id
        )))
    }

    /// Rejects every pending flagged conversion of `code` (the code was
    /// banned: `reason` is kept as each decision's note); returns how many.
    /// A page of the queue at a time, its adjustments in one batch.
    pub async fn reject_code_reviews(
        &self,
        code: &str,
        reason: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<u64, Error> {
        let mut rejected = 0;
        loop {
            let page = self
                .live()
                .reviews(ReviewStatus::Pending, Some(code), None, MAX_PAGE)
                .await?;
            let mut decided = Vec::with_capacity(page.len());
            for r in &page {
                match self
                    .take_decision(&r.conversion.event_id, false, reason, by, now_ms)
                    .await
                {
                    Ok(d) => decided.push(d),
                    // Decided meanwhile by someone else: not pending any more.
                    Err(ReviewError::AlreadyDecided { .. }) | Err(ReviewError::NotFound(_)) => {}
                    Err(ReviewError::Analytics(e)) => {
                        // Those taken already still need their adjustments.
                        self.record_decisions(&decided).await?;
                        return Err(e);
                    }
                }
            }
            if decided.is_empty() {
                // Nothing (left) to reject.
                return Ok(rejected);
            }
            self.record_decisions(&decided).await?;
            rejected += decided.len() as u64;
        }
    }
}

//! The embedded live store's part of fraud checks and reviews: fixed-window
//! counts (`fraud_counts`), the flagged conversions (`reviews`) and their
//! queue by status and code (`review_queue`). Each change is one redb
//! transaction, so a decision's compare-and-set is atomic.

use super::{err, read_refunded, EmbeddedSink, COUNTERS, REFUNDS};
use crate::records::Refunded;
use crate::review::{Review, ReviewStatus};
use crate::sink::SinkError;
use redb::{ReadableTable, TableDefinition};

/// key → (window index: u64 BE, count: u64 BE).
pub(super) const FRAUD_COUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("fraud_counts");
/// event id → [`Review`] as JSON.
pub(super) const REVIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("reviews");
/// `{status}\0{scope}\0{position}` → (): the queue of each status, over every
/// code (scope `*`) and per code, in [`Review::position`] order.
pub(super) const REVIEW_QUEUE: TableDefinition<&str, ()> = TableDefinition::new("review_queue");

/// The queue entries of `review`: all codes, and its code.
fn queue_keys(review: &Review) -> [String; 2] {
    let (status, position) = (review.status.as_str(), review.position());
    [
        format!("{status}\0*\0{position}"),
        format!("{status}\0{}\0{position}", review.conversion.code),
    ]
}

fn json(review: &Review) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(review).map_err(err)
}

impl EmbeddedSink {
    pub async fn bump(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, SinkError> {
        let key = key.to_string();
        let window = now_ms.checked_div(window_ms).unwrap_or(0);
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let n = {
                let mut table = tx.open_table(FRAUD_COUNTS).map_err(err)?;
                let count = match table.get(key.as_str()).map_err(err)? {
                    Some(v) if v.value().len() == 16 => {
                        let (w, n) = v.value().split_at(8);
                        let w = u64::from_be_bytes(w.try_into().map_err(err)?);
                        let n = u64::from_be_bytes(n.try_into().map_err(err)?);
                        if w == window {
                            n
                        } else {
                            0
                        }
                    }
                    _ => 0,
                } + 1;
                let mut value = window.to_be_bytes().to_vec();
                value.extend_from_slice(&count.to_be_bytes());
                table.insert(key.as_str(), value.as_slice()).map_err(err)?;
                count
            };
            tx.commit().map_err(err)?;
            Ok(n)
        })
        .await
    }

    pub async fn human_scans(&self, code: &str) -> Result<u64, SinkError> {
        let key = format!("{code}\0human");
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(COUNTERS).map_err(err)?;
            Ok(table
                .get(key.as_str())
                .map_err(err)?
                .map_or(0, |v| v.value()))
        })
        .await
    }

    pub async fn open_review(&self, review: &Review) -> Result<(), SinkError> {
        let review = review.clone();
        let value = json(&review)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut reviews = tx.open_table(REVIEWS).map_err(err)?;
                let id = review.conversion.event_id.as_str();
                if reviews.get(id).map_err(err)?.is_none() {
                    reviews.insert(id, value.as_slice()).map_err(err)?;
                    let mut queue = tx.open_table(REVIEW_QUEUE).map_err(err)?;
                    for k in queue_keys(&review) {
                        queue.insert(k.as_str(), ()).map_err(err)?;
                    }
                }
            }
            tx.commit().map_err(err)
        })
        .await
    }

    pub async fn drop_review(&self, event_id: &str) -> Result<(), SinkError> {
        let id = event_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut reviews = tx.open_table(REVIEWS).map_err(err)?;
                let found: Option<Review> = match reviews.get(id.as_str()).map_err(err)? {
                    Some(v) => Some(serde_json::from_slice(v.value()).map_err(err)?),
                    None => None,
                };
                if let Some(r) = found {
                    if r.status == ReviewStatus::Pending && r.decisions.is_empty() {
                        reviews.remove(id.as_str()).map_err(err)?;
                        let mut queue = tx.open_table(REVIEW_QUEUE).map_err(err)?;
                        for k in queue_keys(&r) {
                            queue.remove(k.as_str()).map_err(err)?;
                        }
                    }
                }
            }
            tx.commit().map_err(err)
        })
        .await
    }

    pub async fn review(&self, event_id: &str) -> Result<Option<Review>, SinkError> {
        let id = event_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let reviews = tx.open_table(REVIEWS).map_err(err)?;
            match reviews.get(id.as_str()).map_err(err)? {
                Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(err)?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn reviews(
        &self,
        status: ReviewStatus,
        code: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Review>, SinkError> {
        let scope = format!("{}\0{}\0", status.as_str(), code.unwrap_or("*"));
        let hi = match before {
            Some(b) => format!("{scope}{b}"),
            None => format!("{}\u{1}", &scope[..scope.len() - 1]),
        };
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(err)?;
            let queue = tx.open_table(REVIEW_QUEUE).map_err(err)?;
            let reviews = tx.open_table(REVIEWS).map_err(err)?;
            let mut out = Vec::new();
            for item in queue.range(scope.as_str()..hi.as_str()).map_err(err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = item.map_err(err)?;
                let position = &k.value()[scope.len()..];
                let Some((_, id)) = position.split_once('|') else {
                    continue;
                };
                if let Some(v) = reviews.get(id).map_err(err)? {
                    out.push(serde_json::from_slice(v.value()).map_err(err)?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn swap_review(&self, before: &Review, after: &Review) -> Result<bool, SinkError> {
        let (old, new) = (json(before)?, json(after)?);
        let (before, after) = (before.clone(), after.clone());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let swapped = {
                let mut reviews = tx.open_table(REVIEWS).map_err(err)?;
                let id = before.conversion.event_id.as_str();
                let same = reviews
                    .get(id)
                    .map_err(err)?
                    .is_some_and(|v| v.value() == old.as_slice());
                if same {
                    reviews.insert(id, new.as_slice()).map_err(err)?;
                    let mut queue = tx.open_table(REVIEW_QUEUE).map_err(err)?;
                    for k in queue_keys(&before) {
                        queue.remove(k.as_str()).map_err(err)?;
                    }
                    for k in queue_keys(&after) {
                        queue.insert(k.as_str(), ()).map_err(err)?;
                    }
                }
                same
            };
            tx.commit().map_err(err)?;
            Ok(swapped)
        })
        .await
    }

    pub async fn swap_refunded(
        &self,
        purchase_event_id: &str,
        before: Refunded,
        after: Refunded,
    ) -> Result<bool, SinkError> {
        let id = purchase_event_id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(err)?;
            let swapped = {
                let mut refunds = tx.open_table(REFUNDS).map_err(err)?;
                let same = read_refunded(&refunds, &id)? == before;
                if same {
                    let value = serde_json::to_vec(&after).map_err(err)?;
                    refunds.insert(id.as_str(), value.as_slice()).map_err(err)?;
                }
                same
            };
            tx.commit().map_err(err)?;
            Ok(swapped)
        })
        .await
    }
}

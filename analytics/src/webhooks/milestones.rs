//! `scan.milestone`: after the live store's sink has written a batch, the
//! codes it added human scans to have their counters read back; each
//! multiple of an endpoint's `milestone_every` crossed between the counter
//! before the batch (read − the batch's human scans) and after is an event
//! with the id `code + n`, so a batch written again (a spool replay) or a
//! count crossed on two instances makes the same event once.
//!
//! Known limit: with several instances, two batches of one code landing
//! between one instance's write and its read-back can hide a multiple
//! crossed by the earlier one from both instances' windows.

use super::{Event, Hub};
use crate::batch::Batch;
use crate::sink::LiveStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most milestone events one batch of one code makes (a bulk replay of
/// millions of scans does not flood receivers).
const MAX_PER_CODE: u64 = 10;

pub(super) async fn run(hub: Arc<Hub>, live: LiveStore, mut rx: mpsc::Receiver<Arc<Batch>>) {
    while let Some(batch) = rx.recv().await {
        let mut human: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &batch.scans {
            if s.bot_reason.is_empty() {
                *human.entry(s.code.as_str()).or_default() += 1;
            }
        }
        if human.is_empty() {
            continue;
        }
        let everys: Vec<u64> = match hub.outbox.endpoints().await {
            Ok(list) => list
                .iter()
                .filter(|e| e.events.iter().any(|t| t == "scan.milestone"))
                .map(|e| e.milestone_every)
                .filter(|m| *m > 0)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "webhook milestones skipped for a batch: the outbox is unavailable");
                continue;
            }
        };
        if everys.is_empty() {
            continue;
        }
        let now = super::now_ms();
        let mut events = Vec::new();
        for (code, added) in human {
            let after = match live.human_scans(code).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(code, error = %e, "webhook milestones skipped: the live counters are unavailable");
                    continue;
                }
            };
            let before = after.saturating_sub(added);
            let owner = hub.owner_of(code);
            let mut reached: Vec<u64> = Vec::new();
            for every in &everys {
                let mut k = before / every + 1;
                let mut made = 0;
                while k.saturating_mul(*every) <= after && made < MAX_PER_CODE {
                    reached.push(k * every);
                    k += 1;
                    made += 1;
                }
            }
            reached.sort_unstable();
            reached.dedup();
            for n in reached {
                events.push(Event::milestone(code, &owner, n, now));
            }
        }
        if let Err(e) = hub.enqueue(&events).await {
            tracing::warn!(error = %e, "webhook milestone events could not be queued");
        }
    }
}

//! `scan.milestone`: after the live store's sink has written a batch, the
//! codes it added human scans to have their counters read back; each
//! multiple of an endpoint's `milestone_every` crossed between the counter
//! before the batch (read − the batch's human scans) and after is an event
//! with the id `code + n`, so a batch written again (a spool replay) or a
//! count crossed on two instances makes the same event once.
//!
//! The read-back may come after later batches of the code were written
//! (this task lags the writer, or another instance wrote meanwhile): the
//! window then starts no later than where this task's last window for the
//! code ended, so the multiples in between are not skipped (those already
//! made come again with the same id, and the outbox drops them). The one
//! window that can still miss is a code's first in a process, when a later
//! batch landed before its read-back.

use super::{Event, Hub};
use crate::batch::HumanScans;
use crate::sink::LiveStore;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most milestone events one batch of one code makes (a bulk replay of
/// millions of scans does not flood receivers).
const MAX_PER_CODE: u64 = 10;

/// Codes whose last window end this task remembers (beyond it, the map
/// starts afresh: a first window again for each code).
const MAX_REMEMBERED: usize = 100_000;

pub(super) async fn run(hub: Arc<Hub>, live: LiveStore, mut rx: mpsc::Receiver<HumanScans>) {
    // Where each code's last window ended.
    let mut checked: HashMap<String, u64> = HashMap::new();
    while let Some(human) = rx.recv().await {
        if human.is_empty() {
            continue;
        }
        // (owner scope, every): a creator's endpoint makes milestones of its
        // own codes only, not of every code (its events would go nowhere
        // but still be written to the outbox).
        let everys: Vec<(Option<String>, u64)> = match hub.outbox.endpoints().await {
            Ok(list) => list
                .into_iter()
                .filter(|e| e.events.iter().any(|t| t == "scan.milestone"))
                .map(|e| (e.owner, e.milestone_every))
                .filter(|(_, m)| *m > 0)
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
        for (code, &added) in &human {
            let code = code.as_str();
            let after = match live.human_scans(code).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(code, error = %e, "webhook milestones skipped: the live counters are unavailable");
                    continue;
                }
            };
            let before = window_start(checked.get(code).copied(), after, added);
            if checked.len() >= MAX_REMEMBERED && !checked.contains_key(code) {
                checked.clear();
            }
            checked.insert(code.to_string(), after);
            let owner = hub.owner_of(code);
            for n in reached(before, after, &everys, &owner) {
                events.push(Event::milestone(code, &owner, n, now));
            }
        }
        if let Err(e) = hub.enqueue(&events).await {
            tracing::warn!(error = %e, "webhook milestone events could not be queued");
        }
    }
}

/// Where a code's window starts: `added` below the counter read back
/// (`after`), or where the last window ended if that is lower (later
/// batches were counted before this read-back). A counter that went back
/// (Redis restarted empty) starts afresh.
fn window_start(last_end: Option<u64>, after: u64, added: u64) -> u64 {
    let own = after.saturating_sub(added);
    match last_end {
        Some(end) if end < own => end,
        _ => own,
    }
}

/// The multiples crossed from `before` to `after` human scans of a code of
/// `owner`, for the endpoints' `(owner scope, every)`: only endpoints that
/// would receive them (scoped to every owner, or to this one) count.
fn reached(before: u64, after: u64, everys: &[(Option<String>, u64)], owner: &str) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    let scoped = everys
        .iter()
        .filter(|(o, _)| o.as_deref().is_none_or(|o| o == owner))
        .map(|(_, every)| *every);
    for every in scoped {
        let mut k = before / every + 1;
        let mut made = 0;
        while k.saturating_mul(every) <= after && made < MAX_PER_CODE {
            out.push(k * every);
            k += 1;
            made += 1;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_read_late_starts_where_the_last_one_ended() {
        let every = [(None, 1000)];
        // Batches of 5, 5 (1000 reached by the first) read back after both
        // were written: alone, the first's window would be (1004, 1009].
        assert_eq!(window_start(Some(995), 1009, 5), 995);
        assert_eq!(reached(995, 1009, &every, "a"), [1000]);
        // In step: its own window.
        assert_eq!(window_start(Some(1004), 1009, 5), 1004);
        assert_eq!(window_start(None, 1009, 5), 1004);
        // The counter went back (Redis restarted empty): afresh.
        assert_eq!(window_start(Some(5000), 12, 3), 9);
    }

    #[test]
    fn milestones_only_for_endpoints_that_get_them() {
        let everys = [(Some("bob".to_string()), 1), (None, 5)];
        // Bob's every-scan endpoint makes nothing for alice's codes.
        assert_eq!(reached(3, 11, &everys, "alice"), vec![5, 10]);
        assert_eq!(reached(3, 6, &everys, "bob"), vec![4, 5, 6]);
        assert!(reached(0, 4, &everys[..1], "alice").is_empty());
        assert!(reached(0, 4, &everys[..1], "").is_empty());
    }
}

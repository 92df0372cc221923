//! Fraud checks on conversions (fake accounts): a signup or purchase credited
//! to a code is flagged for review, with its reasons, when
//! - `velocity_visitor` / `velocity_ip`: more signups than allowed came
//!   through the same visitor id, or the same IP /24 (IPv6 /48), within the
//!   current fixed window (counted in the live store, so across instances);
//! - `scan_bot` / `scan_suspect`: its attributed scan (named by a scan token)
//!   is stored with a bot reason (a scan not stored yet, or pruned, flags
//!   nothing, nor does a row store that does not answer within 2 s; the
//!   visitor rule only ever credits human scans);
//! - `too_fast`: it came implausibly soon after its scan;
//! - `multi_creator`: its customer's first attribution went to another owner;
//! - `signups_exceed_scans`: the code's signups (counted here, every rule)
//!   are many and far more than its human scans (live counters).
//!
//! A flagged conversion earns nothing until a review approves it (see
//! `crate::review`). Refunds are never flagged (they follow their purchase).
//!
//! Counting happens when an event is decided, before its claim: an event
//! decided but then refused (409, 422) or lost to a concurrent claim has
//! counted toward velocity and its code's signups. A code's signups are
//! counted from the first start of this version on.

use crate::event::{Conversion, ConversionKind, Rule, Verdict};
use crate::ledger::CodeTerms;
use crate::query::Backend;
use crate::sink::{LiveStore, SinkError};
use std::time::Duration;

/// Thresholds of the fraud checks. A zero turns its check off.
#[derive(Debug, Clone)]
pub struct FraudConfig {
    /// More signups than this by one visitor id within [`Self::window`] are
    /// flagged `velocity_visitor`. Default 3: a person signs up once; a few
    /// more allow a shared device.
    pub visitor_signups: u64,
    /// More signups than this from one IP /24 (IPv6 /48) within
    /// [`Self::window`] are flagged `velocity_ip`. Default 20: a /24 is an
    /// office, a campus or a carrier's NAT, many people at once.
    pub ip_signups: u64,
    /// The fixed window velocity is counted in. Default one hour.
    pub window: Duration,
    /// A signup sooner than this after its scan is `too_fast`. Default 5 s:
    /// filling in a sign-up form takes longer, even with autofill.
    pub too_fast_signup: Duration,
    /// A purchase sooner than this after its scan is `too_fast`. Default
    /// 10 s: a checkout with a stored card still takes longer.
    pub too_fast_purchase: Duration,
    /// `signups_exceed_scans` needs at least this many signups of the code.
    /// Default 100.
    pub min_signups: u64,
    /// …and more than this many signups per human scan of the code. Default
    /// 10: followers who type the code without scanning make code-only
    /// signups, but a creator whose link and QR are seen has far more human
    /// scans than signups (scan-to-signup rates are a few percent), so even
    /// mostly typed use stays well under ten signups per scan. A code that is
    /// only ever typed (read out on a podcast) has no scans: raise this for
    /// it, or set 0 to turn the check off.
    pub signups_per_human_scan: u64,
    /// Flag a conversion whose attributed scan is a bot or suspect.
    pub scan_verdicts: bool,
    /// Flag a customer credited to a creator other than their first one.
    pub multi_creator: bool,
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            visitor_signups: 3,
            ip_signups: 20,
            window: Duration::from_secs(3600),
            too_fast_signup: Duration::from_secs(5),
            too_fast_purchase: Duration::from_secs(10),
            min_signups: 100,
            signups_per_human_scan: 10,
            scan_verdicts: true,
            multi_creator: true,
        }
    }
}

impl FraudConfig {
    /// Every check off.
    pub fn off() -> Self {
        Self {
            visitor_signups: 0,
            ip_signups: 0,
            window: Duration::from_secs(3600),
            too_fast_signup: Duration::ZERO,
            too_fast_purchase: Duration::ZERO,
            min_signups: 0,
            signups_per_human_scan: 0,
            scan_verdicts: false,
            multi_creator: false,
        }
    }
}

/// Every reason a check gives, in rule order (the fixed label set of the
/// flagged-conversions metric).
pub const REASONS: [&str; 7] = [
    "velocity_visitor",
    "velocity_ip",
    "scan_bot",
    "scan_suspect",
    "too_fast",
    "multi_creator",
    "signups_exceed_scans",
];

/// Counters for `/metrics`: conversions flagged (by reason; one conversion
/// may count under several) and review decisions taken, by this process.
#[derive(Debug, Default)]
pub(crate) struct FraudMetrics {
    flagged: [std::sync::atomic::AtomicU64; REASONS.len()],
    approved: std::sync::atomic::AtomicU64,
    rejected: std::sync::atomic::AtomicU64,
}

impl FraudMetrics {
    pub fn flagged(&self, flags: &[String]) {
        use std::sync::atomic::Ordering::Relaxed;
        for f in flags {
            if let Some(i) = REASONS.iter().position(|r| r == f) {
                self.flagged[i].fetch_add(1, Relaxed);
            }
        }
    }

    pub fn decided(&self, approved: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = if approved {
            &self.approved
        } else {
            &self.rejected
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        out.push_str("# HELP codelink_conversions_flagged_total Conversions flagged by a fraud check, by reason.\n# TYPE codelink_conversions_flagged_total counter\n");
        for (reason, n) in REASONS.iter().zip(&self.flagged) {
            let _ = writeln!(
                out,
                "codelink_conversions_flagged_total{{reason=\"{reason}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP codelink_reviews_decided_total Review decisions on flagged conversions.\n# TYPE codelink_reviews_decided_total counter\n");
        let _ = writeln!(
            out,
            "codelink_reviews_decided_total{{decision=\"approve\"}} {}\ncodelink_reviews_decided_total{{decision=\"reject\"}} {}",
            self.approved.load(Relaxed),
            self.rejected.load(Relaxed)
        );
    }
}

/// How long the scan-verdict check waits for the row store.
const SCAN_LOOKUP: Duration = Duration::from_secs(2);

/// The reasons to flag `c` (decided, not claimed yet), counting it toward
/// velocity and the code's signups. `ip_prefix` is the customer's IP /24 or
/// /48 as the brand gave it.
pub(crate) async fn check(
    config: &FraudConfig,
    c: &Conversion,
    ip_prefix: Option<&str>,
    live: &LiveStore,
    rows: &Backend,
    terms: &impl Fn(&str) -> Option<CodeTerms>,
) -> Result<Vec<String>, SinkError> {
    let mut flags = Vec::new();
    if c.kind == ConversionKind::Refund || c.code.is_empty() {
        return Ok(flags);
    }
    let window_ms = config.window.as_millis().max(1) as u64;
    let at = c.received_ms;
    if c.kind == ConversionKind::Signup {
        if config.visitor_signups > 0 && !c.visitor_id.is_empty() {
            let n = live
                .bump(&format!("v:{}", c.visitor_id), window_ms, at)
                .await?;
            if n > config.visitor_signups {
                flags.push("velocity_visitor".to_string());
            }
        }
        if let (true, Some(ip)) = (config.ip_signups > 0, ip_prefix) {
            let n = live.bump(&format!("ip:{ip}"), window_ms, at).await?;
            if n > config.ip_signups {
                flags.push("velocity_ip".to_string());
            }
        }
    }
    if config.scan_verdicts && c.rule == Rule::ScanId && !c.scan_id.is_empty() {
        // Conversions are taken while the row store is away (their rows wait
        // in its spool): then this rule cannot look and flags nothing.
        let found = tokio::time::timeout(SCAN_LOOKUP, rows.find_scan(&c.code, &c.scan_id)).await;
        match found {
            Ok(Ok(Some(scan))) => match Verdict::of_reason(&scan.bot_reason) {
                Verdict::Human => {}
                Verdict::Suspect => flags.push("scan_suspect".to_string()),
                Verdict::Bot => flags.push("scan_bot".to_string()),
            },
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(event_id = %c.event_id, error = %e, "scan lookup failed: the scan-verdict check was skipped")
            }
            Err(_) => {
                tracing::warn!(event_id = %c.event_id, "scan lookup timed out: the scan-verdict check was skipped")
            }
        }
    }
    if matches!(c.rule, Rule::ScanId | Rule::Visitor) && c.scan_ms > 0 {
        let least = match c.kind {
            ConversionKind::Signup => config.too_fast_signup,
            _ => config.too_fast_purchase,
        };
        let took = c.occurred_ms.saturating_sub(c.scan_ms);
        if !least.is_zero() && took < least.as_millis() as u64 {
            flags.push("too_fast".to_string());
        }
    }
    if config.multi_creator && !c.customer_id.is_empty() {
        if let Some(link) = live.customer(&c.customer_id).await? {
            let first_owner = terms(&link.code).map(|t| t.owner);
            if link.code != c.code && first_owner.as_deref().is_some_and(|o| o != c.owner) {
                flags.push("multi_creator".to_string());
            }
        }
    }
    if c.kind == ConversionKind::Signup && config.signups_per_human_scan > 0 {
        let signups = live.bump(&format!("s:{}", c.code), 0, at).await?;
        if signups >= config.min_signups {
            let human = live.human_scans(&c.code).await?;
            if signups > human.saturating_mul(config.signups_per_human_scan) {
                flags.push("signups_exceed_scans".to_string());
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::event::Scan;
    use crate::sink::EmbeddedSink;
    use crate::ScanId;
    use std::sync::Arc;

    const T0: u64 = 1_700_000_000_000;

    fn conversion(kind: ConversionKind, rule: Rule, scan: Option<&Scan>, at: u64) -> Conversion {
        Conversion {
            event_id: format!("e{at}"),
            kind,
            occurred_ms: at,
            received_ms: at,
            code: "spring".into(),
            owner: "alice".into(),
            channel: String::new(),
            scan_id: scan.map(|s| s.scan_id.to_string()).unwrap_or_default(),
            scan_ms: scan.map_or(0, |s| s.ts_ms),
            visitor_id: "v1".into(),
            customer_id: String::new(),
            amount: 0,
            currency: String::new(),
            rule,
            earnings: 200,
            earnings_currency: "EUR".into(),
            repeat: false,
            flagged: None,
        }
    }

    fn terms(code: &str) -> Option<CodeTerms> {
        (code == "spring").then(|| CodeTerms {
            owner: "alice".into(),
            window_ms: 30 * 86_400_000,
            plan: None,
        })
    }

    /// Each scan verdict through the embedded row store: a bot's scan flags
    /// `scan_bot`, a suspect's `scan_suspect`, a human's nothing, an unknown
    /// scan nothing; and the time rule per kind.
    #[tokio::test]
    async fn scan_verdicts_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let scan = |n: u64, reason: &str| Scan {
            scan_id: ScanId::from_parts(T0 + n, 1, n).to_string().into(),
            ts_ms: T0 + n,
            code: "spring".into(),
            visitor_id: format!("v{n}").into(),
            source: "link".into(),
            bot_reason: reason.into(),
            ..Scan::default()
        };
        let scans = [
            scan(1, ""),
            scan(2, "ua:Slackbot"),
            scan(3, "datacenter"),
            scan(4, "suspect:burst"),
        ];
        sink.write(&Arc::new(Batch::new(scans.to_vec(), Vec::new())))
            .await
            .unwrap();
        let live = LiveStore::Embedded(sink.clone());
        let rows = Backend::Embedded(sink);
        let config = FraudConfig {
            visitor_signups: 0,
            signups_per_human_scan: 0,
            ..FraudConfig::default()
        };
        let later = T0 + 60_000;
        let check_one = |c: Conversion| {
            let (config, live, rows) = (&config, &live, &rows);
            async move { check(config, &c, None, live, rows, &terms).await.unwrap() }
        };
        let p = ConversionKind::Purchase;
        assert!(
            check_one(conversion(p, Rule::ScanId, Some(&scans[0]), later))
                .await
                .is_empty()
        );
        assert_eq!(
            check_one(conversion(p, Rule::ScanId, Some(&scans[1]), later)).await,
            ["scan_bot"]
        );
        assert_eq!(
            check_one(conversion(p, Rule::ScanId, Some(&scans[2]), later)).await,
            ["scan_suspect"]
        );
        assert_eq!(
            check_one(conversion(p, Rule::ScanId, Some(&scans[3]), later)).await,
            ["scan_suspect"]
        );
        let unknown = scan(9, "ua:Slackbot");
        assert!(
            check_one(conversion(p, Rule::ScanId, Some(&unknown), later))
                .await
                .is_empty()
        );
        // Too fast: a purchase within 10 s, a signup within 5 s of its scan.
        let s = &scans[0];
        assert_eq!(
            check_one(conversion(p, Rule::ScanId, Some(s), s.ts_ms + 9_999)).await,
            ["too_fast"]
        );
        assert!(
            check_one(conversion(p, Rule::ScanId, Some(s), s.ts_ms + 10_000))
                .await
                .is_empty()
        );
        let signup = ConversionKind::Signup;
        assert!(
            check_one(conversion(signup, Rule::Visitor, Some(s), s.ts_ms + 5_000))
                .await
                .is_empty()
        );
        assert_eq!(
            check_one(conversion(signup, Rule::Visitor, Some(s), s.ts_ms + 4_999)).await,
            ["too_fast"]
        );
        // Refunds are never flagged.
        let refund = conversion(
            ConversionKind::Refund,
            Rule::ScanId,
            Some(&scans[1]),
            s.ts_ms,
        );
        assert!(check_one(refund).await.is_empty());
    }

    #[test]
    fn verdicts_follow_the_vocabulary() {
        let verdict = Verdict::of_reason;
        assert_eq!(verdict(""), Verdict::Human);
        assert_eq!(verdict("repeat"), Verdict::Suspect);
        assert_eq!(verdict("datacenter"), Verdict::Suspect);
        assert_eq!(verdict("suspect:burst"), Verdict::Suspect);
        assert_eq!(verdict("ua:Slackbot"), Verdict::Bot);
        assert_eq!(verdict("head"), Verdict::Bot);
        assert_eq!(verdict("rate"), Verdict::Bot);
        assert_eq!(verdict("suspect"), Verdict::Bot);
    }
}

//! Erasure (GDPR art. 17) in the embedded store: a visitor's or a customer's
//! identifiers are removed from every row that holds them. Scans and
//! conversions stay as rows (with the id, IP prefix, user agent and referrer
//! blanked), so counts, rollups and earnings stay right; the rollups' visitor
//! sketches hold only irreversible hashes.

use super::review::{FRAUD_COUNTS, REVIEWS};
use super::{
    err, push_visitor, EmbeddedSink, CLAIMS, CODE_CHUNKS, CONVERSIONS, CUSTOMERS,
    CUSTOMER_PURCHASES, LAST_VISITS, LAST_VISITS_PACKED, VISITS,
};
use crate::event::{Conversion, Scan};
use crate::records::ClaimRecord;
use crate::review::Review;
use crate::sink::{chunk, SinkError};
use crate::Text;
use redb::ReadableTable;

/// Whose data to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A visitor id (`cl_vid`, or the hash the gateway made).
    Visitor(String),
    /// A brand's customer id, as sent with conversions.
    Customer(String),
}

/// What an erasure changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// Raw scans whose visitor id, IP prefix, user agent and referrer were blanked.
    pub scans: u64,
    /// Per-day visitor marks and latest visits deleted.
    pub visit_marks: u64,
    pub last_visits: u64,
    /// Conversion rows and recorded answers whose ids were blanked.
    pub conversions: u64,
    /// Recorded answers, and the reviews of flagged ones (copies of them).
    pub claims: u64,
    /// A customer's attribution link and purchase index entries deleted.
    pub customer_entries: u64,
}

fn scrub_scan(s: &mut Scan) {
    s.visitor_id = Text::default();
    s.ip_prefix = Text::default();
    s.user_agent = Text::default();
    s.referrer_host = Text::default();
}

/// Blanks the subject's ids in a conversion; whether it held any.
fn scrub_conversion(c: &mut Conversion, who: &Subject) -> bool {
    match who {
        Subject::Visitor(v) if c.visitor_id == *v => {
            c.visitor_id.clear();
            true
        }
        Subject::Customer(id) if c.customer_id == *id => {
            c.customer_id.clear();
            c.visitor_id.clear();
            true
        }
        _ => false,
    }
}

impl EmbeddedSink {
    /// Erases `who` from the stored rows and live data (one pass over the
    /// scan chunks for a visitor: an admin's rare, slow operation).
    pub async fn erase(&self, who: Subject) -> Result<Erased, SinkError> {
        self.blocking(move |db| {
            let mut out = Erased::default();
            let tx = db.begin_write().map_err(err)?;
            {
                if let Subject::Visitor(v) = &who {
                    let mut chunks = tx.open_table(CODE_CHUNKS).map_err(err)?;
                    let mut rewrites: Vec<(String, Vec<u8>)> = Vec::new();
                    for item in chunks.iter().map_err(err)? {
                        let (k, val) = item.map_err(err)?;
                        let Ok(mut scans) = chunk::decode(val.value()) else {
                            continue;
                        };
                        let mut hit = 0;
                        for s in scans.iter_mut().filter(|s| s.visitor_id == *v) {
                            scrub_scan(s);
                            hit += 1;
                        }
                        if hit > 0 {
                            let mut bytes = Vec::new();
                            chunk::encode(&scans, &mut bytes).map_err(err)?;
                            rewrites.push((k.value().to_string(), bytes));
                            out.scans += hit;
                        }
                    }
                    for (k, bytes) in &rewrites {
                        chunks.insert(k.as_str(), bytes.as_slice()).map_err(err)?;
                    }
                    let mut visits = tx.open_table(VISITS).map_err(err)?;
                    out.visit_marks = visits
                        .extract_if(|k, _| k.rsplit('\0').next() == Some(v.as_str()))
                        .map_err(err)?
                        .count() as u64;
                    let mut last = tx.open_table(LAST_VISITS).map_err(err)?;
                    out.last_visits = last
                        .extract_if(|k, _| k.split_once('\0').is_some_and(|(_, vis)| vis == v))
                        .map_err(err)?
                        .count() as u64;
                    let mut packed_visitor = Vec::new();
                    push_visitor(v, &mut packed_visitor);
                    let mut last = tx.open_table(LAST_VISITS_PACKED).map_err(err)?;
                    out.last_visits += last
                        .extract_if(|k, _| {
                            k.iter()
                                .position(|&b| b == 0)
                                .is_some_and(|at| k[at + 1..] == packed_visitor[..])
                        })
                        .map_err(err)?
                        .count() as u64;
                }
                if let Subject::Customer(c) = &who {
                    let mut customers = tx.open_table(CUSTOMERS).map_err(err)?;
                    out.customer_entries +=
                        u64::from(customers.remove(c.as_str()).map_err(err)?.is_some());
                    let mut index = tx.open_table(CUSTOMER_PURCHASES).map_err(err)?;
                    let (lo, hi) = (format!("{c}\0"), format!("{c}\u{1}"));
                    out.customer_entries += index
                        .extract_from_if(lo.as_str()..hi.as_str(), |_, _| true)
                        .map_err(err)?
                        .count() as u64;
                }
                let mut rows = tx.open_table(CONVERSIONS).map_err(err)?;
                let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
                for item in rows.iter().map_err(err)? {
                    let (k, val) = item.map_err(err)?;
                    let Ok(mut c) = serde_json::from_slice::<Conversion>(val.value()) else {
                        continue;
                    };
                    if scrub_conversion(&mut c, &who) {
                        changed.push((k.value().to_string(), serde_json::to_vec(&c).map_err(err)?));
                    }
                }
                out.conversions = changed.len() as u64;
                for (k, v) in &changed {
                    rows.insert(k.as_str(), v.as_slice()).map_err(err)?;
                }
                let mut claims = tx.open_table(CLAIMS).map_err(err)?;
                let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
                for item in claims.iter().map_err(err)? {
                    let (k, val) = item.map_err(err)?;
                    let Ok(mut r) = serde_json::from_slice::<ClaimRecord>(val.value()) else {
                        continue;
                    };
                    if scrub_conversion(&mut r.conversion, &who) {
                        changed.push((k.value().to_string(), serde_json::to_vec(&r).map_err(err)?));
                    }
                }
                out.claims = changed.len() as u64;
                for (k, v) in &changed {
                    claims.insert(k.as_str(), v.as_slice()).map_err(err)?;
                }
                // The review queue keeps a copy of each flagged conversion;
                // its entries name no person (positions are time and event id).
                let mut reviews = tx.open_table(REVIEWS).map_err(err)?;
                let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
                for item in reviews.iter().map_err(err)? {
                    let (k, val) = item.map_err(err)?;
                    let Ok(mut r) = serde_json::from_slice::<Review>(val.value()) else {
                        continue;
                    };
                    if scrub_conversion(&mut r.conversion, &who) {
                        changed.push((k.value().to_string(), serde_json::to_vec(&r).map_err(err)?));
                    }
                }
                out.claims += changed.len() as u64;
                for (k, v) in &changed {
                    reviews.insert(k.as_str(), v.as_slice()).map_err(err)?;
                }
                // A visitor's velocity count (the IP /24 ones name no one).
                if let Subject::Visitor(v) = &who {
                    let mut counts = tx.open_table(FRAUD_COUNTS).map_err(err)?;
                    counts.remove(format!("v:{v}").as_str()).map_err(err)?;
                }
            }
            tx.commit().map_err(err)?;
            Ok(out)
        })
        .await
    }
}

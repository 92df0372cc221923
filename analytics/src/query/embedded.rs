//! The embedded backend: reads the query's scans (a scan-id range read) and all
//! conversions from redb, filters them and builds the rollups in Rust.

use super::finish::{ConversionAgg, DelayAgg, ScanAgg};
use super::{Dimension, Group, Query};
use crate::event::{Conversion, ConversionKind, Scan};
use crate::sink::{EmbeddedSink, SinkError};
use crate::ScanId;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The query's scans and conversions, plus attributed scans looked up by id.
pub(super) struct Data {
    scans: Vec<Scan>,
    conversions: Vec<Conversion>,
    /// Every stored scan read so far, by id (the range read and the lookups).
    by_id: HashMap<String, Scan>,
    cutoff: Option<u64>,
}

/// Attributed scans less than this far apart in time are read in one range.
const MERGE_GAP_MS: u64 = 2_000;

impl Data {
    pub async fn load(sink: &EmbeddedSink, q: &Query) -> Result<Self, SinkError> {
        let codes: Option<HashSet<&str>> = q
            .codes
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect());
        let wanted = |code: &str| codes.as_ref().is_none_or(|c| c.contains(code));
        let read = sink.scans_between(q.from_ms, q.to_ms).await?;
        let by_id: HashMap<String, Scan> = read
            .iter()
            .map(|s| (s.scan_id.clone(), s.clone()))
            .collect();
        let scans = read
            .into_iter()
            .filter(|s| s.ts_ms >= q.from_ms && s.ts_ms < q.to_ms && wanted(&s.code))
            .collect();
        let conversions = sink
            .all_conversions()
            .await?
            .into_iter()
            .filter(|c| {
                c.occurred_ms >= q.from_ms
                    && c.occurred_ms < q.to_ms
                    && wanted(&c.code)
                    && q.owner.as_ref().is_none_or(|o| &c.owner == o)
            })
            .collect();
        Ok(Self {
            scans,
            conversions,
            by_id,
            cutoff: q.confirmed_cutoff(),
        })
    }

    /// Reads the attributed scans of the conversions that lie outside the query
    /// range. A scan id starts with its Unix ms, so the wanted scans are found
    /// by time: nearby times are read as one range (each read also decodes the
    /// chunks of the second before it), and only the wanted ids are kept.
    pub async fn load_attributed_scans(&mut self, sink: &EmbeddedSink) -> Result<(), SinkError> {
        let wanted: HashSet<&str> = self
            .conversions
            .iter()
            .filter(|c| !c.scan_id.is_empty() && !self.by_id.contains_key(&c.scan_id))
            .map(|c| c.scan_id.as_str())
            .collect();
        let mut times: Vec<u64> = wanted
            .iter()
            .filter_map(|id| ScanId::parse(id).map(ScanId::unix_ms))
            .collect();
        times.sort_unstable();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for ms in times {
            match ranges.last_mut() {
                Some((_, end)) if ms <= end.saturating_add(MERGE_GAP_MS) => *end = ms,
                _ => ranges.push((ms, ms)),
            }
        }
        let mut found = Vec::new();
        for (from, to) in ranges {
            for scan in sink.scans_between(from, to.saturating_add(1)).await? {
                if wanted.contains(scan.scan_id.as_str()) {
                    found.push(scan);
                }
            }
        }
        for scan in found {
            self.by_id.entry(scan.scan_id.clone()).or_insert(scan);
        }
        Ok(())
    }

    fn scan_key(group: &Group, scan: &Scan) -> String {
        match group {
            Group::All => String::new(),
            Group::Bucket(interval, zone) => zone
                .bucket_start(*interval, (scan.ts_ms / 1000) as i64)
                .to_string(),
            Group::Dimension(d) => d.of_scan(scan).to_string(),
            Group::Code => scan.code.clone(),
        }
    }

    fn conversion_key(&self, group: &Group, c: &Conversion) -> String {
        match group {
            Group::All => String::new(),
            Group::Bucket(interval, zone) => zone
                .bucket_start(*interval, (c.occurred_ms / 1000) as i64)
                .to_string(),
            Group::Dimension(Dimension::Channel) => c.channel.clone(),
            Group::Dimension(d) => self
                .by_id
                .get(&c.scan_id)
                .filter(|_| !c.scan_id.is_empty())
                .map(|s| d.of_scan(s).to_string())
                .unwrap_or_default(),
            Group::Code => c.code.clone(),
        }
    }

    pub fn scan_rollup(&self, group: &Group) -> Vec<ScanAgg> {
        let mut groups: BTreeMap<String, (ScanAgg, HashSet<&str>)> = BTreeMap::new();
        for scan in &self.scans {
            let (agg, visitors) = groups.entry(Self::scan_key(group, scan)).or_default();
            if scan.is_bot() {
                agg.bot += 1;
            } else {
                agg.human += 1;
                match scan.source.as_str() {
                    "qr" => agg.qr += 1,
                    "link" => agg.link += 1,
                    _ => {}
                }
                visitors.insert(&scan.visitor_id);
            }
        }
        groups
            .into_iter()
            .map(|(k, (agg, visitors))| ScanAgg {
                k,
                uniq: visitors.len() as u64,
                ..agg
            })
            .collect()
    }

    pub fn conversion_rollup(&self, group: &Group) -> Vec<ConversionAgg> {
        type Key = (String, &'static str, String, String, u8);
        let mut groups: BTreeMap<Key, (u64, i64, i64)> = BTreeMap::new();
        for c in &self.conversions {
            let confirmed = self.cutoff.is_some_and(|cut| c.occurred_ms <= cut);
            let key = (
                self.conversion_key(group, c),
                c.kind.as_str(),
                c.currency.clone(),
                c.earnings_currency.clone(),
                u8::from(confirmed),
            );
            let (n, amount, earnings) = groups.entry(key).or_default();
            *n += 1;
            *amount += c.amount;
            *earnings += c.earnings;
        }
        groups
            .into_iter()
            .map(
                |(
                    (k, kind, currency, earnings_currency, confirmed),
                    (n, amount_sum, earnings_sum),
                )| {
                    ConversionAgg {
                        k,
                        kind: kind.to_string(),
                        currency,
                        earnings_currency,
                        confirmed,
                        n,
                        amount_sum,
                        earnings_sum,
                    }
                },
            )
            .collect()
    }

    pub fn signup_delays(&self) -> DelayAgg {
        DelayAgg::of(
            self.conversions
                .iter()
                .filter(|c| c.kind == ConversionKind::Signup && c.scan_ms > 0)
                .map(|c| c.occurred_ms as i64 - c.scan_ms as i64)
                .collect(),
        )
    }
}

/// The owner of each code's latest stored conversion (by `occurred_ms`, then
/// `event_id`).
pub(super) async fn owners(
    sink: &EmbeddedSink,
    codes: &[String],
) -> Result<HashMap<String, String>, SinkError> {
    let wanted: HashSet<&str> = codes.iter().map(String::as_str).collect();
    let mut latest: HashMap<String, (u64, String, String)> = HashMap::new();
    for c in sink.all_conversions().await? {
        if !wanted.contains(c.code.as_str()) {
            continue;
        }
        let candidate = (c.occurred_ms, c.event_id, c.owner);
        match latest.get_mut(&c.code) {
            Some(best) if (best.0, &best.1) >= (candidate.0, &candidate.1) => {}
            Some(best) => *best = candidate,
            None => {
                latest.insert(c.code, candidate);
            }
        }
    }
    Ok(latest
        .into_iter()
        .map(|(code, (_, _, owner))| (code, owner))
        .collect())
}

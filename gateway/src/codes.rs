//! The in-memory code table that the redirect and QR paths read.
//!
//! A snapshot (`HashMap` of compiled codes) behind an `ArcSwap`: readers take a
//! lock-free reference; writers (admin API, Redis sync) build a new map and swap
//! it in. Writes are rare, reads are every request, so copying on write is the
//! right trade.

use crate::qr_logo::Logo;
use crate::qr_render::QrOptions;
use crate::routing::Routes;
use arc_swap::ArcSwap;
use codelink_shared::{CodeRecord, LogoRef};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use url::{form_urlencoded, Position, Url};

/// Where one variant (the bare code, or one channel) redirects to, precomputed so
/// that a redirect only appends the scan id.
#[derive(Debug, Clone)]
pub struct Target {
    /// The destination up to (not including) the fragment, its query as given
    /// with the channel's UTM parameters appended.
    pub base: String,
    /// Whether `base` already has a query (the scan id then follows `&`, else `?`).
    pub has_query: bool,
    /// `#fragment` of the destination, or empty.
    pub fragment: String,
}

impl Target {
    /// The destination's query is kept byte for byte (signed URLs stay valid):
    /// the channel's UTM parameters (form-urlencoded) are appended after it.
    /// Only whole `key=value` segments are removed: a destination's parameter
    /// named like one the channel sets (the channel's value wins) and a stale
    /// scan parameter (each scan brings its own), keys compared decoded.
    pub(crate) fn build(destination: &Url, utm: &[(&str, &str)], scan_param: &str) -> Self {
        let fragment = destination
            .fragment()
            .map(|f| format!("#{f}"))
            .unwrap_or_default();
        let mut base = destination[..Position::AfterPath].to_string();
        let mut query = String::new();
        if let Some(q) = destination.query() {
            let mut first = true;
            for segment in q.split('&') {
                let replaced = form_urlencoded::parse(segment.as_bytes())
                    .next()
                    .is_some_and(|(k, _)| k == scan_param || utm.iter().any(|(u, _)| k == *u));
                if !replaced {
                    if !first {
                        query.push('&');
                    }
                    query.push_str(segment);
                    first = false;
                }
            }
        }
        if !utm.is_empty() {
            let appended = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(utm)
                .finish();
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&appended);
        }
        let has_query = !query.is_empty();
        if has_query {
            base.push('?');
            base.push_str(&query);
        }
        Self {
            base,
            has_query,
            fragment,
        }
    }

    /// The `Location` for one scan, with one more parameter after the scan
    /// token (the opt-in visitor token).
    pub fn location_with(&self, scan_param: &str, scan_id: &str, key: &str, value: &str) -> String {
        let mut out = self.location_base(scan_param, scan_id, key.len() + value.len() + 2);
        out.push('&');
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push_str(&self.fragment);
        out
    }

    /// The `Location` for one scan.
    pub fn location(&self, scan_param: &str, scan_id: &str) -> String {
        let mut out = self.location_base(scan_param, scan_id, 0);
        out.push_str(&self.fragment);
        out
    }

    /// The destination with the scan token, without the fragment, with room
    /// for `more` bytes besides.
    fn location_base(&self, scan_param: &str, scan_id: &str, more: usize) -> String {
        let mut out = String::with_capacity(
            self.base.len() + scan_param.len() + scan_id.len() + self.fragment.len() + 2 + more,
        );
        out.push_str(&self.base);
        out.push(if self.has_query { '&' } else { '?' });
        out.push_str(scan_param);
        out.push('=');
        out.push_str(scan_id);
        out
    }
}

/// A code as the hot path needs it.
#[derive(Debug)]
pub struct CompiledCode {
    pub record: CodeRecord,
    pub default: Target,
    pub channels: HashMap<String, Target>,
    /// The QR options of the code's brand preset, and whether requests may
    /// pick other colours (`None`: the defaults, any colours).
    pub qr_preset: Option<(QrOptions, bool)>,
    /// The routing rules, compiled (empty for most codes).
    pub routes: Routes,
    /// The app deep links, parsed (`None` for most codes).
    pub apps: Option<Box<CompiledApps>>,
    /// The code's logo, decoded (`None` also when the record names a logo
    /// this instance could not load: its images are then drawn without it).
    pub qr_logo: Option<Arc<Logo>>,
}

/// A code's app links with their URLs parsed once.
#[derive(Debug)]
pub struct CompiledApps {
    pub ios: Option<Url>,
    pub android: Option<CompiledAndroid>,
}

#[derive(Debug)]
pub struct CompiledAndroid {
    /// The App Link: the record's, or the code's destination.
    pub url: Url,
    pub package: String,
    pub fallback: codelink_shared::AndroidFallback,
}

impl CompiledCode {
    /// Compiles a record that has passed validation. `None` if the stored
    /// destination no longer parses (a corrupt record is skipped, not served).
    /// The record's destination is held normalised, as it is followed: a record
    /// stored as typed before destinations were normalised shows what it serves.
    pub fn compile(mut record: CodeRecord, scan_param: &str) -> Option<Self> {
        let url = Url::parse(&record.destination).ok()?;
        if url.as_str() != record.destination {
            record.destination = url.as_str().to_string();
        }
        let default = Target::build(&url, &[], scan_param);
        let utms: Vec<(&str, Vec<(&str, &str)>)> = record
            .channels
            .iter()
            .map(|(name, utm)| (name.as_str(), utm.pairs().collect()))
            .collect();
        let channels = utms
            .iter()
            .map(|(name, pairs)| (name.to_string(), Target::build(&url, pairs, scan_param)))
            .collect();
        // Each rule × channel target precomputed (at most 32 × 256): a
        // matched rule costs a lookup, like a channel.
        let routes = Routes::compile(&record.routes, &utms, scan_param);
        // Checked when it was written; a preset that no longer parses is
        // served as no preset rather than refusing every image.
        let qr_preset = record.qr.as_ref().and_then(|style| {
            crate::qr_render::preset(style)
                .ok()
                .map(|options| (options, style.custom_colors))
        });
        let apps = record.app_links.as_ref().map(|links| {
            Box::new(CompiledApps {
                ios: links.ios.as_deref().and_then(|u| Url::parse(u).ok()),
                android: links.android.as_ref().map(|a| CompiledAndroid {
                    url: a
                        .url
                        .as_deref()
                        .and_then(|u| Url::parse(u).ok())
                        .unwrap_or_else(|| url.clone()),
                    package: a.package.clone(),
                    fallback: a.fallback,
                }),
            })
        });
        Some(Self {
            record,
            default,
            channels,
            qr_preset,
            apps,
            qr_logo: None,
            routes,
        })
    }

    /// `url` with the UTM parameters of `channel` (empty: none), as a target.
    /// Built per scan: only app links use it, and only on their platform.
    pub fn target_on(&self, url: &Url, channel: &str, scan_param: &str) -> Target {
        let pairs: Vec<(&str, &str)> = self
            .record
            .channels
            .get(channel)
            .map(|utm| utm.pairs().collect())
            .unwrap_or_default();
        Target::build(url, &pairs, scan_param)
    }

    /// Why this code does not redirect at `now` (Unix seconds), if it doesn't.
    pub fn gone(&self, now: i64) -> Option<Gone> {
        if !self.record.enabled {
            Some(Gone::Disabled)
        } else if self.record.expires_at.is_some_and(|t| t <= now) {
            Some(Gone::Expired)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Disabled,
    Expired,
}

/// Looked up on every redirect and QR image: a fast hash (randomly seeded
/// per process) instead of SipHash.
pub type Snapshot = HashMap<Box<str>, Arc<CompiledCode>, foldhash::fast::RandomState>;

pub struct CodeTable {
    current: ArcSwap<Snapshot>,
    scan_param: String,
    /// Decoded logos by SHA-256, filled from the store before the records
    /// naming them are compiled ([`Self::add_logo`]); a logo shared by many
    /// codes is decoded once. Locked only while compiling (admin writes and
    /// reloads), never by a request.
    logos: Mutex<HashMap<String, Arc<Logo>>>,
}

impl CodeTable {
    pub fn new(scan_param: &str) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            scan_param: scan_param.to_string(),
            logos: Mutex::new(HashMap::new()),
        }
    }

    /// Makes a logo available to the records that name its SHA-256.
    pub fn add_logo(&self, logo: Arc<Logo>) {
        let mut logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
        logos.insert(logo.sha256.clone(), logo);
    }

    /// Whether the logo with this SHA-256 is loaded.
    pub fn has_logo(&self, sha256: &str) -> bool {
        let logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
        logos.contains_key(sha256)
    }

    /// The loaded logo with this SHA-256 (for owner profiles, which keep
    /// theirs decoded in the profile table).
    pub fn logo(&self, sha256: &str) -> Option<Arc<Logo>> {
        let logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
        logos.get(sha256).cloned()
    }

    /// The loaded logos among `named` (the logos code records and owner
    /// profiles name), each once.
    pub fn logos_of<'a>(&self, named: impl IntoIterator<Item = &'a LogoRef>) -> Vec<Arc<Logo>> {
        let logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<Logo>> = Vec::new();
        for named in named {
            if let Some(logo) = logos.get(&named.sha256) {
                if !out.iter().any(|l| l.sha256 == logo.sha256) {
                    out.push(logo.clone());
                }
            }
        }
        out
    }

    /// Forgets the logos that neither a record in `records` nor `also_keep`
    /// (the owner profiles' logos) names (after a reload).
    fn keep_logos_of(&self, records: &[CodeRecord], also_keep: &HashSet<String>) {
        let named: HashSet<&str> = records
            .iter()
            .filter_map(|r| r.qr_logo.as_ref().map(|l| l.sha256.as_str()))
            .chain(also_keep.iter().map(String::as_str))
            .collect();
        let mut logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
        logos.retain(|sha, _| named.contains(sha.as_str()));
    }

    /// Looks up a canonical (lowercase) code name.
    pub fn get(&self, code: &str) -> Option<Arc<CompiledCode>> {
        self.current.load().get(code).cloned()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the whole table (start-up, Redis resync). `also_keep`: the
    /// SHA-256s of logos the owner profiles name, kept in the registry.
    pub fn replace_all(&self, records: Vec<CodeRecord>, also_keep: &HashSet<String>) {
        self.keep_logos_of(&records, also_keep);
        let map = records
            .into_iter()
            .filter_map(|r| self.compile(r))
            .map(|c| (Box::from(c.record.code.as_str()), Arc::new(c)))
            .collect();
        self.current.store(Arc::new(map));
    }

    /// Replaces the whole table with `records` only if it is still `seen`
    /// (no code was written here meanwhile); false when it was not replaced.
    pub fn replace_if_unchanged(
        &self,
        seen: &Arc<Snapshot>,
        records: Vec<CodeRecord>,
        also_keep: &HashSet<String>,
    ) -> bool {
        let map: Snapshot = records
            .into_iter()
            .filter_map(|r| self.compile(r))
            .map(|c| (Box::from(c.record.code.as_str()), Arc::new(c)))
            .collect();
        let previous = self.current.compare_and_swap(seen, Arc::new(map));
        let swapped = Arc::ptr_eq(&previous, seen);
        if swapped {
            let records: Vec<CodeRecord> =
                self.snapshot().values().map(|c| c.record.clone()).collect();
            self.keep_logos_of(&records, also_keep);
        }
        swapped
    }

    /// Inserts or replaces one code (after an admin write).
    pub fn upsert(&self, record: CodeRecord) {
        self.upsert_with_logo(record, None)
    }

    /// [`Self::upsert`] of a record whose logo was just stored: the logo is
    /// compiled in directly (a reload pruning the registry meanwhile cannot
    /// take it away) and kept for later compiles.
    pub fn upsert_with_logo(&self, record: CodeRecord, logo: Option<Arc<Logo>>) {
        if let Some(logo) = &logo {
            self.add_logo(logo.clone());
        }
        let Some(mut compiled) = self.compile(record) else {
            return;
        };
        if let Some(logo) = logo {
            if compiled.record.qr_logo.as_ref().map(|l| &l.sha256) == Some(&logo.sha256) {
                compiled.qr_logo = Some(logo);
            }
        }
        let compiled = Arc::new(compiled);
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            map.insert(Box::from(compiled.record.code.as_str()), compiled.clone());
            map
        });
    }

    /// Inserts or replaces many codes in one swap (after an import): the
    /// table is copied once, not once per code.
    pub fn upsert_many(&self, records: Vec<CodeRecord>) {
        let compiled: Vec<Arc<CompiledCode>> = records
            .into_iter()
            .filter_map(|r| self.compile(r))
            .map(Arc::new)
            .collect();
        if compiled.is_empty() {
            return;
        }
        self.current.rcu(|old| {
            let mut map = HashMap::clone(old);
            for c in &compiled {
                map.insert(Box::from(c.record.code.as_str()), c.clone());
            }
            map
        });
    }

    fn compile(&self, record: CodeRecord) -> Option<CompiledCode> {
        let code = record.code.clone();
        let mut compiled = CompiledCode::compile(record, &self.scan_param);
        match &mut compiled {
            None => tracing::error!(%code, "stored destination does not parse; code skipped"),
            Some(c) => {
                if let Some(named) = &c.record.qr_logo {
                    let logos = self.logos.lock().unwrap_or_else(|e| e.into_inner());
                    c.qr_logo = logos.get(&named.sha256).cloned();
                    if c.qr_logo.is_none() {
                        tracing::warn!(%code, sha256 = %named.sha256, "logo not loaded; QR images drawn without it");
                    }
                }
            }
        }
        compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codelink_shared::Utm;
    use std::collections::BTreeMap;

    fn record(dest: &str) -> CodeRecord {
        CodeRecord {
            code: "alice10".into(),
            destination: dest.into(),
            owner: "alice".into(),
            expires_at: None,
            enabled: true,
            channels: BTreeMap::from([(
                "yt".to_string(),
                Utm {
                    utm_source: Some("youtube".into()),
                    utm_medium: Some("video & more".into()),
                    ..Utm::default()
                },
            )]),
            commission: None,
            attribution_window_days: 30,
            qr: None,
            qr_logo: None,
            routes: Vec::new(),
            created_at: 0,
            updated_at: 0,
            ..CodeRecord::default()
        }
    }

    #[test]
    fn plain_destination_gets_scan_param() {
        let c = CompiledCode::compile(record("https://shop.example/signup"), "cl_scan").unwrap();
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://shop.example/signup?cl_scan=ID"
        );
    }

    #[test]
    fn utm_merged_query_kept_fragment_last() {
        let c = CompiledCode::compile(
            record("https://shop.example/p?ref=x&utm_source=old&cl_scan=stale#buy"),
            "cl_scan",
        )
        .unwrap();
        assert_eq!(
            c.channels["yt"].location("cl_scan", "ID"),
            "https://shop.example/p?ref=x&utm_source=youtube&utm_medium=video+%26+more&cl_scan=ID#buy"
        );
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://shop.example/p?ref=x&utm_source=old&cl_scan=ID#buy"
        );
    }

    #[test]
    fn query_bytes_kept_as_given_and_only_appended_to() {
        let c = CompiledCode::compile(
            record("https://shop.example/p?sig=a%20b&flag&x=1&e=&s=a+b#f"),
            "cl_scan",
        )
        .unwrap();
        assert_eq!(
            c.channels["yt"].location("cl_scan", "ID"),
            "https://shop.example/p?sig=a%20b&flag&x=1&e=&s=a+b\
             &utm_source=youtube&utm_medium=video+%26+more&cl_scan=ID#f"
        );
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://shop.example/p?sig=a%20b&flag&x=1&e=&s=a+b&cl_scan=ID#f"
        );
    }

    #[test]
    fn replaced_parameters_matched_decoded_other_segments_untouched() {
        let c = CompiledCode::compile(
            record("https://shop.example/p?cl_scan=stale&utm%5Fsource=old&a=%2B+&utm_source&b"),
            "cl_scan",
        )
        .unwrap();
        assert_eq!(
            c.channels["yt"].base,
            "https://shop.example/p?a=%2B+&b&utm_source=youtube&utm_medium=video+%26+more"
        );
        assert_eq!(
            c.default.base,
            "https://shop.example/p?utm%5Fsource=old&a=%2B+&utm_source&b"
        );
        // Only a stale scan parameter: nothing left of the query.
        let c =
            CompiledCode::compile(record("https://shop.example/p?cl_scan=x"), "cl_scan").unwrap();
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://shop.example/p?cl_scan=ID"
        );
        let c = CompiledCode::compile(record("https://shop.example/p?#top"), "cl_scan").unwrap();
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://shop.example/p?cl_scan=ID#top"
        );
    }

    #[test]
    fn stored_destination_held_as_followed() {
        let c = CompiledCode::compile(record(r"https://evil.example\@shop.example/"), "cl_scan")
            .unwrap();
        assert_eq!(c.record.destination, "https://evil.example/@shop.example/");
        assert_eq!(
            c.default.location("cl_scan", "ID"),
            "https://evil.example/@shop.example/?cl_scan=ID"
        );
    }

    #[test]
    fn gone_states() {
        let mut r = record("https://shop.example/");
        r.expires_at = Some(100);
        let c = CompiledCode::compile(r, "cl_scan").unwrap();
        assert_eq!(c.gone(99), None);
        assert_eq!(c.gone(100), Some(Gone::Expired));
    }
}

//! The embedded store reads scan chunks of every format: version-3 chunks
//! (dictionary and deflate, what this version writes) next to version-2
//! chunks left by an earlier version, through each reader: the drill-down
//! and the export (pages of recent scans), the fraud point read (one scan by
//! id), erasure (which rewrites a chunk), retention and the full read.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::Scan;
use codelink_analytics::sink::{EmbeddedSink, Subject};
use codelink_analytics::ScanId;
use redb::{ReadableTable, TableDefinition};
use std::sync::Arc;

const CODE_CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("code_chunks");
/// 2026-01-10T12:00:00Z and a day later.
const OLD_MS: u64 = 1_768_046_400_000;
const NEW_MS: u64 = OLD_MS + 86_400_000;

fn scan(i: u64, ts_ms: u64) -> Scan {
    Scan {
        scan_id: ScanId::from_parts(ts_ms, 9, i).to_string().into(),
        ts_ms,
        code: "abc".into(),
        channel: if i.is_multiple_of(2) {
            "yt".into()
        } else {
            "ig".into()
        },
        visitor_id: format!("{:032x}", i % 5).into(),
        ip_prefix: format!("198.51.{}.0", i % 3).into(),
        user_agent: format!("Mozilla/5.0 (iPhone) Instagram {}", i % 4).into(),
        device: "mobile".into(),
        os: "iOS".into(),
        browser: "Safari".into(),
        in_app: "instagram".into(),
        referrer_host: "l.instagram.com".into(),
        country: "DE".into(),
        source: "qr".into(),
        bot_reason: if i.is_multiple_of(7) {
            "repeat".into()
        } else {
            Default::default()
        },
        is_unique: i.is_multiple_of(3),
        route: if i.is_multiple_of(4) {
            "ios".into()
        } else {
            Default::default()
        },
        ..Scan::default()
    }
}

/// A chunk as version 2 wrote it: `2`, `count: u32`, then per scan
/// `ts_ms: u64`, `is_unique: u8` and 15 texts as `len: u16` + bytes.
fn version_2_chunk(scans: &[Scan]) -> Vec<u8> {
    let mut out = vec![2];
    out.extend_from_slice(&(scans.len() as u32).to_le_bytes());
    for s in scans {
        out.extend_from_slice(&s.ts_ms.to_le_bytes());
        out.push(u8::from(s.is_unique));
        for f in [
            &s.scan_id,
            &s.code,
            &s.channel,
            &s.visitor_id,
            &s.ip_prefix,
            &s.user_agent,
            &s.device,
            &s.os,
            &s.browser,
            &s.in_app,
            &s.referrer_host,
            &s.country,
            &s.source,
            &s.bot_reason,
            &s.route,
        ] {
            out.extend_from_slice(&(f.len() as u16).to_le_bytes());
            out.extend_from_slice(f.as_bytes());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_reads_old_and_new_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<Scan> = (0..30).map(|i| scan(i, OLD_MS + i * 10)).collect();
    let new: Vec<Scan> = (100..160).map(|i| scan(i, NEW_MS + i * 10)).collect();

    // This version writes the new scans (version 3)...
    let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
    sink.write(&Arc::new(Batch::new(new.clone(), Vec::new())))
        .await
        .unwrap();
    drop(sink);
    // ...next to a chunk an earlier version left.
    {
        let db = redb::Database::create(dir.path().join("scans.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(CODE_CHUNKS).unwrap();
            let mut versions = Vec::new();
            for item in table.iter().unwrap() {
                versions.push(item.unwrap().1.value()[0]);
            }
            assert_eq!(versions, vec![3], "this version writes version 3");
            let key = format!("abc\0{}", old[0].scan_id);
            table
                .insert(key.as_str(), version_2_chunk(&old).as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();

    // The full read: every field of both.
    let mut want: Vec<Scan> = old.iter().chain(&new).cloned().collect();
    want.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
    assert_eq!(sink.all_scans().await.unwrap(), want);

    // The drill-down and the export: pages of 25, newest first, across both.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = sink.recent_scans("abc", before, 25).await.unwrap();
        paged.extend(page.scans);
        match page.next {
            Some(next) => before = ScanId::parse(&next),
            None => break,
        }
    }
    paged.reverse();
    assert_eq!(paged, want);

    // The fraud point read, one of each.
    for s in [&old[17], &new[42]] {
        assert_eq!(
            sink.find_scan("abc", &s.scan_id).await.unwrap().as_ref(),
            Some(s)
        );
    }

    // Erasure rewrites the old chunk (as version 3) without the visitor.
    let gone = old[1].visitor_id.clone();
    let erased = sink
        .erase(Subject::Visitor(gone.to_string()))
        .await
        .unwrap();
    let expected = want.iter().filter(|s| s.visitor_id == gone).count() as u64;
    assert_eq!(erased.scans, expected);
    let after = sink.all_scans().await.unwrap();
    assert_eq!(after.len(), want.len());
    for (a, w) in after.iter().zip(&want) {
        if w.visitor_id == gone {
            assert_eq!(a.visitor_id, "");
            assert_eq!(a.ip_prefix, "");
        } else {
            assert_eq!(a, w);
        }
    }
    let found = sink
        .find_scan("abc", &old[1].scan_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.visitor_id.as_str(), found.country.as_str()),
        ("", "DE")
    );

    // Retention drops the day of old scans and keeps the new ones whole.
    let pruned = sink.prune_before(NEW_MS).await.unwrap();
    assert_eq!(pruned.scan_chunks, 1);
    let kept = sink.all_scans().await.unwrap();
    assert_eq!(kept.len(), new.len());
    assert!(kept.iter().all(|s| s.ts_ms >= NEW_MS));
}

//! `store-size DATA_DIR`: where the bytes of a stopped gateway's `scans.redb`
//! go. Prints, as markdown, per table of what grows with scans and visitors:
//! entries, key and value bytes stored, and redb's own accounting (leaf and
//! branch pages, of any size; stored, metadata and fragmented bytes, whose
//! sum is what the table's pages take); then the scans held
//! in the chunks (by format version) and the file's size. Used by
//! `load-tests/footprint.sh`; opens the file, so the gateway must be stopped.

use codelink_analytics::sink::chunk;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableStats};
use std::collections::BTreeMap;
use std::process::ExitCode;

struct Row {
    name: &'static str,
    entries: u64,
    key_bytes: u64,
    value_bytes: u64,
    stats: TableStats,
}

/// Entries, key and value bytes of a table (`key`, `value`: their lengths).
fn measure<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    name: &'static str,
    def: TableDefinition<K, V>,
    len: impl Fn(&K::SelfType<'_>, &V::SelfType<'_>) -> (u64, u64),
    mut each: impl FnMut(&V::SelfType<'_>),
) -> Result<Option<Row>, Box<dyn std::error::Error>> {
    // A table a store of another version never had is left out.
    let table = match tx.open_table(def) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (mut entries, mut key_bytes, mut value_bytes) = (0, 0, 0);
    for item in table.iter()? {
        let (k, v) = item?;
        let (kl, vl) = len(&k.value(), &v.value());
        entries += 1;
        key_bytes += kl;
        value_bytes += vl;
        each(&v.value());
    }
    Ok(Some(Row {
        name,
        entries,
        key_bytes,
        value_bytes,
        stats: table.stats()?,
    }))
}

fn run(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(dir).join("scans.redb");
    let file_bytes = std::fs::metadata(&path)?.len();
    let db = Database::open(&path)?;
    let tx = db.begin_read()?;
    let mut scans = 0u64;
    let mut versions: BTreeMap<u8, u64> = BTreeMap::new();
    let str_bytes = |k: &&str| k.len() as u64;
    let rows: Vec<Row> = [
        measure(
            &tx,
            "code_chunks",
            TableDefinition::<&str, &[u8]>::new("code_chunks"),
            |k, v| (str_bytes(k), v.len() as u64),
            |v| {
                *versions.entry(v.first().copied().unwrap_or(0)).or_default() += 1;
                scans += chunk::decode(v).map_or(0, |s| s.len() as u64);
            },
        )?,
        measure(
            &tx,
            "visits",
            TableDefinition::<&str, u8>::new("visits"),
            |k, _| (str_bytes(k), 1),
            |_| {},
        )?,
        measure(
            &tx,
            "last_visits",
            TableDefinition::<&str, &[u8]>::new("last_visits"),
            |k, v| (str_bytes(k), v.len() as u64),
            |_| {},
        )?,
        measure(
            &tx,
            "last_visits_packed",
            TableDefinition::<&[u8], &[u8]>::new("last_visits_packed"),
            |k, v| (k.len() as u64, v.len() as u64),
            |_| {},
        )?,
        measure(
            &tx,
            "scan_blocks",
            TableDefinition::<&[u8], &[u8]>::new("scan_blocks"),
            |k, v| (k.len() as u64, v.len() as u64),
            |_| {},
        )?,
        measure(
            &tx,
            "totals",
            TableDefinition::<&[u8], &[u8]>::new("totals"),
            |k, v| (k.len() as u64, v.len() as u64),
            |_| {},
        )?,
        measure(
            &tx,
            "counters",
            TableDefinition::<&str, u64>::new("counters"),
            |k, _| (str_bytes(k), 8),
            |_| {},
        )?,
        measure(
            &tx,
            "batches",
            TableDefinition::<&str, u64>::new("batches"),
            |k, _| (str_bytes(k), 8),
            |_| {},
        )?,
    ]
    .into_iter()
    .flatten()
    .collect();
    let per = |b: u64| {
        if scans == 0 {
            0.0
        } else {
            b as f64 / scans as f64
        }
    };
    println!("| table | entries | key bytes | value bytes | (key+value)/scan | leaf pages | branch pages | redb stored | metadata | fragmented | (stored+metadata+fragmented)/scan |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let s = &r.stats;
        let held = s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes();
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {:.1} |",
            r.name,
            r.entries,
            r.key_bytes,
            r.value_bytes,
            per(r.key_bytes + r.value_bytes),
            r.stats.leaf_pages(),
            r.stats.branch_pages(),
            r.stats.stored_bytes(),
            r.stats.metadata_bytes(),
            r.stats.fragmented_bytes(),
            per(held),
        );
    }
    let versions: Vec<String> = versions
        .iter()
        .map(|(v, n)| format!("version {v}: {n}"))
        .collect();
    println!();
    println!(
        "scans in chunks: {scans} ({}); file: {file_bytes} bytes, {:.1} bytes/scan",
        versions.join(", "),
        per(file_bytes)
    );
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store-size DATA_DIR (of a stopped gateway)");
        return ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-size: {dir}/scans.redb: {e}");
            ExitCode::from(1)
        }
    }
}

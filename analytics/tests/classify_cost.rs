//! What user-agent classification costs, run by hand in release mode:
//!
//! `cargo test -p codelink-analytics --release --test classify_cost -- --ignored --nocapture`
//!
//! Prints the one-time cost of compiling the bot-pattern matcher (time and
//! resident memory), then ns per UA for an uncached `classify` and for a
//! cached answer (what `Enricher` does for a UA it has seen: a hash lookup
//! and a clone), over the corpus' example bots and the browser sample, as
//! the median of several runs. Alone in its binary so the matcher is built
//! by this test and nothing before it.

use codelink_analytics::classify::{classify, prepare_matcher, Client};
use foldhash::{HashMap, HashMapExt};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const RUNS: usize = 7;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Resident memory of this process (Linux), in bytes.
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over [`RUNS`] runs of the ns per UA that `f` takes over `uas`
/// (each run goes over the list enough times to last ~50 ms or more).
fn ns_per_ua(uas: &[String], mut f: impl FnMut(&str) -> usize) -> f64 {
    let rounds = (200_000 / uas.len()).max(1);
    let per_run = |f: &mut dyn FnMut(&str) -> usize| {
        let start = Instant::now();
        let mut n = 0usize;
        for _ in 0..rounds {
            for ua in uas {
                n += black_box(f(black_box(ua)));
            }
        }
        black_box(n);
        start.elapsed().as_nanos() as f64 / (rounds * uas.len()) as f64
    };
    median((0..RUNS).map(|_| per_run(&mut f)).collect())
}

#[test]
#[ignore]
fn classification_cost() {
    // The corpus and browsers are read before the matcher is built, so the
    // memory measured is the matcher's (and the JSON parse's leftovers).
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        instances: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(&data("crawler-user-agents.json")).unwrap();
    let bots: Vec<String> = entries.into_iter().flat_map(|e| e.instances).collect();
    let browsers: Vec<String> = data("browsers.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();

    let before = rss();
    let start = Instant::now();
    let stats = prepare_matcher();
    let compile = start.elapsed();
    let after = rss();
    println!(
        "matcher: {} literals + {} expressions ({} refused), compiled in {:.2} ms; \
         resident memory +{:.1} MiB (automaton heap {:.1} KiB)",
        stats.literals,
        stats.expressions,
        stats.refused,
        compile.as_secs_f64() * 1e3,
        after
            .zip(before)
            .map_or(f64::NAN, |(a, b)| a.saturating_sub(b) as f64 / 1048576.0),
        stats.literal_heap_bytes as f64 / 1024.0,
    );

    for (name, uas) in [("corpus bots", &bots), ("browsers", &browsers)] {
        let uncached = ns_per_ua(uas, |ua| usize::from(classify(ua).bot.is_some()));
        // The enricher's cache: a map from the UA to its answer, a lookup
        // and a clone per scan.
        let cache: HashMap<String, Client> =
            uas.iter().map(|ua| (ua.clone(), classify(ua))).collect();
        let cached = ns_per_ua(uas, |ua| {
            let c = cache.get(ua).cloned().unwrap();
            usize::from(c.bot.is_some())
        });
        println!(
            "{name} ({} UAs): uncached classify {:.0} ns/UA, cached {:.0} ns/UA (median of {RUNS})",
            uas.len(),
            uncached,
            cached
        );
    }
    let warm = rss();
    println!(
        "resident memory after the runs: +{:.1} MiB over before the matcher (lazy DFA caches, the test's own maps)",
        warm.zip(before)
            .map_or(f64::NAN, |(a, b)| a.saturating_sub(b) as f64 / 1048576.0)
    );
    let _ = HashMap::<String, Client>::new();
}

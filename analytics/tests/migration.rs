//! Data written by the previous version (no rollups) gets its rollups: the
//! embedded store migrates itself at start-up, ClickHouse is backfilled by
//! `migration::run` (what `codelink migrate` calls). Either way the answers
//! then equal those of a store written by this version from the same data;
//! the migration can stop half way and resume, and running it again changes
//! nothing.

use codelink_analytics::batch::Batch;
use codelink_analytics::config::Config;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::migration::{self, Progress};
use codelink_analytics::query::{Backend, Dimension, Interval, Query, TopMetric};
use codelink_analytics::sink::{chunk, ClickHouseConfig, ClickHouseEvents, EmbeddedSink};
use codelink_analytics::{Analytics, Error, ScanId};
use codelink_testkit::ClickHouseServer;
use redb::TableDefinition;
use std::sync::Arc;
use std::time::Duration;

const HOUR: u64 = 3_600_000;
/// 2025-06-01T00:00:00Z.
const T0: u64 = 1_748_736_000_000;

fn data() -> (Vec<Scan>, Vec<Conversion>) {
    let codes = ["alpha", "beta", "gamma"];
    let scans: Vec<Scan> = (0..600u64)
        .map(|i| {
            let ts = T0 + i * 7 * 60_000 + i % 13;
            Scan {
                scan_id: ScanId::from_parts(ts, 4, i).to_string().into(),
                ts_ms: ts,
                code: codes[(i % 3) as usize].into(),
                channel: ["yt", "ig", ""][(i % 5 % 3) as usize].into(),
                visitor_id: format!("v{}", i % 70).into(),
                device: ["mobile", "desktop"][(i % 2) as usize].into(),
                country: ["DE", "FR", "US", ""][(i % 4) as usize].into(),
                source: if i % 4 == 0 { "qr" } else { "link" }.into(),
                bot_reason: if i % 9 == 0 { "head" } else { "" }.into(),
                ..Scan::default()
            }
        })
        .collect();
    let conversions = (0..60u64)
        .map(|i| {
            let s = &scans[(i * 9 + 1) as usize];
            let kind = [
                ConversionKind::Signup,
                ConversionKind::Purchase,
                ConversionKind::Refund,
            ][(i % 3) as usize];
            Conversion {
                event_id: format!("e{i:03}"),
                kind,
                occurred_ms: s.ts_ms + 20 * 60_000,
                received_ms: s.ts_ms + 20 * 60_000,
                code: s.code.to_string(),
                owner: "owner".into(),
                channel: s.channel.to_string(),
                scan_id: s.scan_id.to_string(),
                scan_ms: s.ts_ms,
                visitor_id: s.visitor_id.to_string(),
                customer_id: String::new(),
                amount: if kind == ConversionKind::Signup {
                    0
                } else {
                    1500
                },
                currency: if kind == ConversionKind::Signup {
                    ""
                } else {
                    "EUR"
                }
                .into(),
                rule: Rule::ScanId,
                earnings: match kind {
                    ConversionKind::Signup => 200,
                    ConversionKind::Purchase => 150,
                    ConversionKind::Refund => -150,
                },
                earnings_currency: "EUR".into(),
                repeat: false,
                flagged: None,
            }
        })
        .collect();
    (scans, conversions)
}

/// Everything this version can be asked, for comparing two backends.
async fn answers(b: &Backend) -> Vec<String> {
    let mut out = Vec::new();
    for codes in [None, Some(vec!["beta".to_string()])] {
        let q = Query {
            from_ms: T0 - HOUR,
            to_ms: T0 + 80 * HOUR,
            tz: "Asia/Kolkata".into(),
            codes,
            owner: None,
            now_ms: T0 + 60 * 24 * HOUR,
            hold_ms: 30 * 24 * HOUR,
        };
        out.push(format!("{:?}", b.summary(&q).await.unwrap()));
        out.push(format!(
            "{:?}",
            b.timeseries(&q, Interval::Hour).await.unwrap()
        ));
        out.push(format!(
            "{:?}",
            b.timeseries(&q, Interval::Day).await.unwrap()
        ));
        for d in Dimension::ALL {
            out.push(format!("{:?}", b.breakdown(&q, d).await.unwrap()));
        }
        for m in [
            TopMetric::Scans,
            TopMetric::Earnings,
            TopMetric::Conversions,
        ] {
            out.push(format!("{:?}", b.top(&q, m, 10).await.unwrap()));
        }
    }
    out
}

const OLD_CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_chunks");
const OLD_ROWS: TableDefinition<&str, &[u8]> = TableDefinition::new("scans");
const OLD_CONVERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversions");

/// A data dir as the previous version left it: scans in chunks of every code
/// keyed by time (and the first scans as JSON rows, the layout before that),
/// conversions as JSON rows, no rollups.
fn write_old_data_dir(dir: &std::path::Path, scans: &[Scan], conversions: &[Conversion]) {
    let db = redb::Database::create(dir.join("scans.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let (rows, chunked) = scans.split_at(50);
        let mut table = tx.open_table(OLD_ROWS).unwrap();
        for s in rows {
            table
                .insert(
                    s.scan_id.as_str(),
                    serde_json::to_vec(s).unwrap().as_slice(),
                )
                .unwrap();
        }
        let mut table = tx.open_table(OLD_CHUNKS).unwrap();
        for c in chunk::chunks(chunked) {
            let mut bytes = Vec::new();
            chunk::encode(c.scans, &mut bytes).unwrap();
            table.insert(c.key, bytes.as_slice()).unwrap();
        }
        let mut table = tx.open_table(OLD_CONVERSIONS).unwrap();
        for c in conversions {
            table
                .insert(
                    c.event_id.as_str(),
                    serde_json::to_vec(c).unwrap().as_slice(),
                )
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A store written by this version from the same data (the reference).
async fn fresh_embedded(
    scans: &[Scan],
    conversions: &[Conversion],
) -> (tempfile::TempDir, Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
    sink.write(&Arc::new(Batch::new(scans.to_vec(), Vec::new())))
        .await
        .unwrap();
    sink.write(&Arc::new(Batch::new(Vec::new(), conversions.to_vec())))
        .await
        .unwrap();
    (dir, Backend::Embedded(sink))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_embedded_data_dir_migrates_itself_at_start_up() {
    let (scans, conversions) = data();
    let (_fresh_dir, fresh) = fresh_embedded(&scans, &conversions).await;
    let want = answers(&fresh).await;

    let dir = tempfile::tempdir().unwrap();
    write_old_data_dir(dir.path(), &scans, &conversions);
    let (analytics, tasks) = Analytics::open(Config::embedded(dir.path(), b"s"))
        .await
        .unwrap();
    let q = Query {
        from_ms: T0,
        to_ms: T0 + 100 * HOUR,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: T0,
        hold_ms: 0,
    };
    // Until the migration is done, queries say so (503); then they answer.
    let done = codelink_testkit::wait_until(Duration::from_secs(20), || {
        let a = analytics.clone();
        let q = q.clone();
        async move {
            match a.summary(&q).await {
                Ok(s) => s.scans == 600,
                Err(Error::Migrating { remaining }) => {
                    assert!(remaining > 0);
                    false
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(done);
    tasks.stop(&analytics, Duration::from_secs(5)).await;
    drop(analytics);
    let migrated = Backend::Embedded(EmbeddedSink::open(dir.path(), true, true).unwrap());
    assert_eq!(answers(&migrated).await, want);
    assert_eq!(
        match &migrated {
            Backend::Embedded(s) => s.all_scans().await.unwrap().len(),
            _ => 0,
        },
        600,
        "every scan kept, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_migration_resumes_and_runs_again_harmlessly() {
    let (scans, conversions) = data();
    let (_fresh_dir, fresh) = fresh_embedded(&scans, &conversions).await;
    let dir = tempfile::tempdir().unwrap();
    write_old_data_dir(dir.path(), &scans, &conversions);
    // Interrupted after one small step.
    {
        let sink = EmbeddedSink::open(dir.path(), true, true).unwrap();
        let left = sink.migrate_step(1).await.unwrap();
        assert!(left.remaining > 0);
    }
    let config = Config::embedded(dir.path(), b"s");
    let mut seen = Vec::new();
    migration::run(&config, |p| seen.push(p)).await.unwrap();
    let Some(Progress::Embedded { done, total }) = seen.last().cloned() else {
        panic!("{seen:?}")
    };
    assert!(total > 0 && done == total, "{seen:?}");
    // Nothing left: a second run has nothing to do.
    let mut again = Vec::new();
    migration::run(&config, |p| again.push(p)).await.unwrap();
    assert_eq!(again, [Progress::Embedded { done: 0, total: 0 }]);
    let migrated = Backend::Embedded(EmbeddedSink::open(dir.path(), true, true).unwrap());
    assert_eq!(answers(&migrated).await, answers(&fresh).await);
}

/// The previous version's ClickHouse tables (no `rolled` column, no rollups).
const OLD_SCHEMA: [&str; 2] = [
    "CREATE TABLE {db}.scans (scan_id String, ts DateTime, ts_ms UInt64, code String, \
     channel String, visitor_id String, ip_prefix String, user_agent String, device String, \
     os String, browser String, in_app String, referrer_host String, country String, \
     source String, is_bot UInt8, bot_reason String, is_unique UInt8) \
     ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (code, ts, scan_id)",
    "CREATE TABLE {db}.conversions (event_id String, kind String, occurred DateTime, \
     occurred_ms UInt64, received_ms UInt64, code String, owner String, channel String, \
     scan_id String, scan_ms UInt64, visitor_id String, customer_id String, amount Int64, \
     currency String, rule String, earnings Int64, earnings_currency String) \
     ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(occurred) ORDER BY (code, occurred, event_id)",
];

fn old_rows(server: &ClickHouseServer, db: &str, scans: &[Scan], conversions: &[Conversion]) {
    server.query(&format!("CREATE DATABASE {db}"));
    for sql in OLD_SCHEMA {
        server.query(&sql.replace("{db}", db));
    }
    let mut body = format!("INSERT INTO {db}.scans FORMAT JSONEachRow\n");
    // The first scan twice: a replay the old version wrote.
    for s in scans.iter().chain(&scans[..1]) {
        let row = serde_json::json!({
            "scan_id": s.scan_id, "ts": s.ts_ms / 1000, "ts_ms": s.ts_ms, "code": s.code,
            "channel": s.channel, "visitor_id": s.visitor_id, "ip_prefix": "", "user_agent": "",
            "device": s.device, "os": s.os, "browser": s.browser, "in_app": s.in_app,
            "referrer_host": s.referrer_host, "country": s.country, "source": s.source,
            "is_bot": u8::from(s.is_bot()), "bot_reason": s.bot_reason, "is_unique": 0,
        });
        body.push_str(&format!("{row}\n"));
    }
    server.query(&body);
    let mut body = format!("INSERT INTO {db}.conversions FORMAT JSONEachRow\n");
    for c in conversions {
        let row = serde_json::json!({
            "event_id": c.event_id, "kind": c.kind.as_str(), "occurred": c.occurred_ms / 1000,
            "occurred_ms": c.occurred_ms, "received_ms": c.received_ms, "code": c.code,
            "owner": c.owner, "channel": c.channel, "scan_id": c.scan_id, "scan_ms": c.scan_ms,
            "visitor_id": c.visitor_id, "customer_id": c.customer_id, "amount": c.amount,
            "currency": c.currency, "rule": c.rule.as_str(), "earnings": c.earnings,
            "earnings_currency": c.earnings_currency,
        });
        body.push_str(&format!("{row}\n"));
    }
    server.query(&body);
}

fn clickhouse(server: &ClickHouseServer, db: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        url: server.url(),
        database: db.into(),
        user: None,
        password: None,
        cluster: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_clickhouse_rows_are_backfilled_once() {
    let (scans, conversions) = data();
    let server = ClickHouseServer::start();
    // The reference: the same data written by this version.
    let fresh = ClickHouseEvents::new(&clickhouse(&server, "fresh"));
    fresh.migrate().await.unwrap();
    fresh
        .write(&Batch::new(scans.clone(), Vec::new()))
        .await
        .unwrap();
    fresh
        .write(&Batch::new(Vec::new(), conversions.clone()))
        .await
        .unwrap();
    let fresh = Backend::from(fresh);
    let want = answers(&fresh).await;

    old_rows(&server, "old", &scans, &conversions);
    // A gateway of this version on the old database: its analytics say what
    // to do until the backfill is done.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path(), b"s");
    config.clickhouse = Some(clickhouse(&server, "old"));
    let (analytics, tasks) = Analytics::open(config.clone()).await.unwrap();
    let q = Query {
        from_ms: T0,
        to_ms: T0 + 100 * HOUR,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: T0,
        hold_ms: 0,
    };
    let refused = codelink_testkit::wait_until(Duration::from_secs(10), || {
        let a = analytics.clone();
        let q = q.clone();
        async move { matches!(a.summary(&q).await, Err(Error::MigrationRequired)) }
    })
    .await;
    assert!(refused, "queries must refuse while old rows lack rollups");

    // Interrupted after one day, then run to the end, then once more.
    let old = ClickHouseEvents::new(&clickhouse(&server, "old"));
    let todo = old.backfill_todo().await.unwrap();
    assert_eq!(todo.days.len(), 3, "{todo:?}");
    old.backfill_day(todo.days[0]).await.unwrap();
    let mut seen = Vec::new();
    migration::run(&config, |p| seen.push(p)).await.unwrap();
    assert_eq!(
        seen.last(),
        Some(&Progress::ClickHouse { done: 3, total: 3 }),
        "{seen:?}"
    );
    let mut again = Vec::new();
    migration::run(&config, |p| again.push(p)).await.unwrap();
    assert_eq!(again, [Progress::ClickHouse { done: 0, total: 0 }]);

    let migrated = Backend::from(ClickHouseEvents::new(&clickhouse(&server, "old")));
    assert_eq!(answers(&migrated).await, want);
    // The gateway notices (it looks again every few seconds) and answers.
    let answers_now = codelink_testkit::wait_until(Duration::from_secs(15), || {
        let a = analytics.clone();
        let q = q.clone();
        async move { a.summary(&q).await.is_ok_and(|s| s.scans == 600) }
    })
    .await;
    assert!(answers_now);
    // New rows written since are counted once, next to the backfilled ones.
    let late = Scan {
        scan_id: ScanId::from_parts(T0 + 5 * HOUR + 1, 9, 1)
            .to_string()
            .into(),
        ts_ms: T0 + 5 * HOUR + 1,
        code: "beta".into(),
        visitor_id: "late".into(),
        source: "link".into(),
        ..Scan::default()
    };
    let batch = Batch::new(vec![late], Vec::new());
    ClickHouseEvents::new(&clickhouse(&server, "old"))
        .write(&batch)
        .await
        .unwrap();
    let Backend::ClickHouse(f) = &fresh else {
        unreachable!()
    };
    f.write(&batch).await.unwrap();
    assert_eq!(answers(&migrated).await, answers(&fresh).await);
    tasks.stop(&analytics, Duration::from_secs(5)).await;
}

/// The scan rollup as versions before suspects were told apart made it: no
/// `suspect` column, and an input table and view without `n_suspect`.
const PRE_SUSPECT: [&str; 5] = [
    "ALTER TABLE {db}.scan_rollup DROP COLUMN suspect",
    "DROP TABLE {db}.scan_rollup_mv",
    "DROP TABLE {db}.scan_rollup_input",
    "CREATE TABLE {db}.scan_rollup_input (scope String, grain UInt8, dim UInt8, \
     bucket DateTime, value String, n_human UInt64, n_bot UInt64, n_qr UInt64, \
     n_link UInt64, visitor_hashes Array(UInt64)) ENGINE = Null",
    "CREATE MATERIALIZED VIEW {db}.scan_rollup_mv TO {db}.scan_rollup AS \
     SELECT scope, grain, dim, bucket, value, sumState(n_human) AS human, \
     sumState(n_bot) AS bot, sumState(n_qr) AS qr, sumState(n_link) AS link, \
     uniqUpToArrayState(100)(visitor_hashes) AS visitors_small, \
     uniqHLL12ArrayState(visitor_hashes) AS visitors \
     FROM {db}.scan_rollup_input GROUP BY scope, grain, dim, bucket, value",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_rollup_without_suspects_is_brought_up_to_date() {
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&clickhouse(&server, "pre"));
    events.migrate().await.unwrap();
    let scan = |n: u64, reason: &str| Scan {
        scan_id: ScanId::from_parts(T0 + n, 9, n).to_string().into(),
        ts_ms: T0 + n,
        code: "alpha".into(),
        visitor_id: format!("v{n}").into(),
        source: "link".into(),
        bot_reason: reason.into(),
        ..Scan::default()
    };
    // Written by the old version: a human and a bot.
    events
        .write(&Batch::new(
            vec![scan(1, ""), scan(2, "ua:curl")],
            Vec::new(),
        ))
        .await
        .unwrap();
    for sql in PRE_SUSPECT {
        server.query(&sql.replace("{db}", "pre"));
    }
    // This version starts on it: the column is added, the input table and
    // view made anew (twice: it is safe to run again).
    events.migrate().await.unwrap();
    events.migrate().await.unwrap();
    events
        .write(&Batch::new(
            vec![
                scan(3, "repeat"),
                scan(4, "suspect:no-accept"),
                scan(5, "head"),
            ],
            Vec::new(),
        ))
        .await
        .unwrap();
    let q = Query {
        from_ms: T0,
        to_ms: T0 + HOUR,
        tz: "UTC".into(),
        codes: None,
        owner: None,
        now_ms: T0,
        hold_ms: 0,
    };
    let s = Backend::from(events).summary(&q).await.unwrap();
    assert_eq!(
        (s.scans, s.human_scans, s.suspect_scans, s.bot_scans),
        (5, 1, 2, 2),
        "{s:?}"
    );
}

/// The conversion rollup input and view as the version before reviews
/// created them (no flagged / held).
const PRE_REVIEW_INPUT: [&str; 2] = [
    "CREATE TABLE {db}.conversion_rollup_input (scope String, grain UInt8, dim UInt8, \
     bucket DateTime, value String, owner String, kind String, currency String, \
     earnings_currency String, n_conversions UInt64, amount_sum Decimal(38, 0), \
     earnings_sum Decimal(38, 0), delay_bins Array(UInt16), delay_counts Array(UInt64)) \
     ENGINE = Null",
    "CREATE MATERIALIZED VIEW {db}.conversion_rollup_mv TO {db}.conversion_rollup AS \
     SELECT scope, grain, dim, bucket, value, owner, kind, currency, earnings_currency, \
     sumState(n_conversions) AS n, sumState(amount_sum) AS amount, \
     sumState(earnings_sum) AS earnings, sumMapState(delay_bins, delay_counts) AS delays \
     FROM {db}.conversion_rollup_input \
     GROUP BY scope, grain, dim, bucket, value, owner, kind, currency, earnings_currency",
];

/// Tables of the version before reviews get the new columns (only where
/// `system.columns` lacks them) and a recreated input table and view; cells
/// written before read as not flagged, holding nothing, and new ones count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_tables_from_before_reviews_are_upgraded() {
    let server = ClickHouseServer::start();
    let db = "prereview";
    let events = ClickHouseEvents::new(&clickhouse(&server, db));
    events.migrate().await.unwrap();
    // Back to the previous version's tables.
    for sql in [
        "DROP TABLE {db}.conversion_rollup_mv",
        "DROP TABLE {db}.conversion_rollup_input",
        "ALTER TABLE {db}.conversion_rollup DROP COLUMN flagged",
        "ALTER TABLE {db}.conversion_rollup DROP COLUMN held",
        "ALTER TABLE {db}.conversions DROP COLUMN held",
        "ALTER TABLE {db}.conversions DROP COLUMN flags",
    ]
    .into_iter()
    .chain(PRE_REVIEW_INPUT)
    {
        server.query(&sql.replace("{db}", db));
    }
    // A cell the previous version wrote: one signup earning 200.
    server.query(&format!(
        "INSERT INTO {db}.conversion_rollup_input (scope, grain, dim, bucket, value, owner, \
         kind, currency, earnings_currency, n_conversions, amount_sum, earnings_sum, \
         delay_bins, delay_counts) VALUES ('beta', 2, 0, toDateTime({}), '', 'bob', 'signup', \
         '', 'EUR', 1, 0, 200, [], [])",
        T0 / 1000
    ));
    // This version's start-up, twice (the second finds everything in place).
    let events = ClickHouseEvents::new(&clickhouse(&server, db));
    events.migrate().await.unwrap();
    events.migrate().await.unwrap();
    let columns = server.query(&format!(
        "SELECT table, name FROM system.columns WHERE database = '{db}' \
         AND name IN ('flagged', 'held', 'flags', 'flagged_sum', 'held_sum') ORDER BY table, name"
    ));
    assert_eq!(
        columns.split_whitespace().collect::<Vec<_>>(),
        [
            "conversion_rollup",
            "flagged",
            "conversion_rollup",
            "held",
            "conversion_rollup_input",
            "flagged_sum",
            "conversion_rollup_input",
            "held_sum",
            // The view was recreated with them.
            "conversion_rollup_mv",
            "flagged",
            "conversion_rollup_mv",
            "held",
            "conversions",
            "flags",
            "conversions",
            "held",
        ]
    );
    // A flagged signup written now (it holds 200 and earns nothing).
    let flagged = Conversion {
        event_id: "f1".into(),
        kind: ConversionKind::Signup,
        occurred_ms: T0 + HOUR,
        received_ms: T0 + HOUR,
        code: "beta".into(),
        owner: "bob".into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: String::new(),
        customer_id: "c1".into(),
        amount: 0,
        currency: String::new(),
        rule: Rule::CodeOnly,
        earnings: 0,
        earnings_currency: "EUR".into(),
        repeat: false,
        flagged: Some(codelink_analytics::event::Flagged {
            flags: vec!["velocity_ip".into()],
            held: 200,
        }),
    };
    events
        .write(&Batch::new(Vec::new(), vec![flagged.clone()]))
        .await
        .unwrap();
    let backend = Backend::from(events);
    let q = Query {
        from_ms: T0 - 24 * HOUR,
        to_ms: T0 + 48 * HOUR,
        tz: "UTC".into(),
        codes: Some(vec!["beta".into()]),
        owner: None,
        now_ms: T0 + 2 * HOUR,
        hold_ms: 30 * 24 * HOUR,
    };
    let s = backend.summary(&q).await.unwrap();
    assert_eq!((s.signups, s.flagged_signups), (2, 1), "{s:?}");
    assert_eq!(s.earnings_estimated[0].amount, 200, "{s:?}");
    assert_eq!(s.earnings_held[0].amount, 200, "{s:?}");
    // The row keeps its reasons.
    let rows = backend.recent_conversions("beta", None, 10).await.unwrap();
    assert_eq!(rows, vec![flagged]);
}

/// A `scans` table from before routing rules gets the `route` column (where
/// `system.columns` lacks it, as 18.16 has no `ADD COLUMN IF NOT EXISTS`):
/// rows written before read an empty route, new rows keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scans_table_from_before_routes_gets_the_column() {
    let server = ClickHouseServer::start();
    let db = "preroutes";
    let events = ClickHouseEvents::new(&clickhouse(&server, db));
    events.migrate().await.unwrap();
    server.query(&format!("ALTER TABLE {db}.scans DROP COLUMN route"));
    let scan = |n: u64, route: &str| Scan {
        scan_id: ScanId::from_parts(T0 + n, 1, n).to_string().into(),
        ts_ms: T0 + n,
        code: "routed".into(),
        source: "link".into(),
        route: route.into(),
        ..Scan::default()
    };
    // A row the previous version wrote.
    let old = scan(1, "");
    server.query(&format!(
        "INSERT INTO {db}.scans (scan_id, ts, ts_ms, code, channel, visitor_id, ip_prefix, \
         user_agent, device, os, browser, in_app, referrer_host, country, source, is_bot, \
         bot_reason, is_unique, rolled) VALUES ('{}', toDateTime({}), {}, 'routed', '', '', '', \
         '', '', '', '', '', '', '', 'link', 0, '', 0, 1)",
        old.scan_id,
        old.ts_ms / 1000,
        old.ts_ms
    ));
    let events = ClickHouseEvents::new(&clickhouse(&server, db));
    events.migrate().await.unwrap();
    events.migrate().await.unwrap();
    let columns = server.query(&format!(
        "SELECT name, type, default_expression FROM system.columns \
         WHERE database = '{db}' AND table = 'scans' AND name = 'route'"
    ));
    assert_eq!(
        columns.split_whitespace().collect::<Vec<_>>(),
        ["route", "String", "\\'\\'"],
        "{columns}"
    );
    let new = scan(2, "ios-de");
    events
        .write(&Batch::new(vec![new.clone()], Vec::new()))
        .await
        .unwrap();
    let page = events.recent_scans("routed", None, 10).await.unwrap();
    let routes: Vec<(&str, &str)> = page
        .scans
        .iter()
        .map(|s| (s.scan_id.as_str(), s.route.as_str()))
        .collect();
    assert_eq!(
        routes,
        [(new.scan_id.as_str(), "ios-de"), (old.scan_id.as_str(), "")]
    );
}

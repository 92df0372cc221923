//! The analyst queries in `dashboards/clickhouse/*.sql`, run against a real
//! clickhouse-server 18.16 over tables the sink created and filled, with their
//! answers checked against the data written.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::{day_of, Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents};
use codelink_analytics::ScanId;
use codelink_testkit::ClickHouseServer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

const DB: &str = "dash";
const DAY_MS: u64 = 86_400_000;

fn sql_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards/clickhouse")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct ScanSpec {
    code: &'static str,
    channel: &'static str,
    visitor: &'static str,
    device: &'static str,
    in_app: &'static str,
    qr: bool,
    bot: &'static str,
}

const SCANS: &[ScanSpec] = &[
    ScanSpec {
        code: "alice10",
        channel: "ig",
        visitor: "v1",
        device: "mobile",
        in_app: "instagram",
        qr: true,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "ig",
        visitor: "v1",
        device: "mobile",
        in_app: "instagram",
        qr: true,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "ig",
        visitor: "v2",
        device: "mobile",
        in_app: "instagram",
        qr: false,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "ig",
        visitor: "v3",
        device: "mobile",
        in_app: "instagram",
        qr: false,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "bio",
        visitor: "v4",
        device: "desktop",
        in_app: "",
        qr: false,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "bio",
        visitor: "v5",
        device: "desktop",
        in_app: "",
        qr: false,
        bot: "",
    },
    ScanSpec {
        code: "alice10",
        channel: "ig",
        visitor: "b1",
        device: "bot",
        in_app: "",
        qr: false,
        bot: "ua:twitterbot",
    },
    ScanSpec {
        code: "alice10",
        channel: "",
        visitor: "b2",
        device: "bot",
        in_app: "",
        qr: false,
        bot: "head",
    },
    ScanSpec {
        code: "bob20",
        channel: "",
        visitor: "v6",
        device: "mobile",
        in_app: "",
        qr: false,
        bot: "",
    },
    ScanSpec {
        code: "bob20",
        channel: "",
        visitor: "v7",
        device: "mobile",
        in_app: "",
        qr: true,
        bot: "",
    },
    ScanSpec {
        code: "bob20",
        channel: "",
        visitor: "v7",
        device: "mobile",
        in_app: "",
        qr: false,
        bot: "",
    },
];

fn scans(now: u64) -> Vec<Scan> {
    SCANS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ts_ms = now - 60_000 + i as u64 * 1000;
            Scan {
                scan_id: ScanId::from_parts(ts_ms, 5, i as u64).to_string().into(),
                ts_ms,
                code: s.code.into(),
                channel: s.channel.into(),
                visitor_id: s.visitor.into(),
                device: s.device.into(),
                in_app: s.in_app.into(),
                source: if s.qr { "qr" } else { "link" }.into(),
                bot_reason: s.bot.into(),
                ..Scan::default()
            }
        })
        .collect()
}

fn conversion(
    event_id: &str,
    kind: ConversionKind,
    occurred_ms: u64,
    (code, owner): (&str, &str),
    scan: Option<&Scan>,
    (earnings, currency): (i64, &str),
) -> Conversion {
    Conversion {
        event_id: event_id.into(),
        kind,
        occurred_ms,
        received_ms: occurred_ms,
        code: code.into(),
        owner: owner.into(),
        channel: scan
            .map(|s| s.channel.clone())
            .unwrap_or_default()
            .to_string(),
        scan_id: scan
            .map(|s| s.scan_id.clone())
            .unwrap_or_default()
            .to_string(),
        scan_ms: scan.map_or(0, |s| s.ts_ms),
        visitor_id: scan
            .map(|s| s.visitor_id.clone())
            .unwrap_or_default()
            .to_string(),
        customer_id: format!("c-{event_id}"),
        amount: if kind == ConversionKind::Signup {
            0
        } else {
            5000
        },
        currency: if kind == ConversionKind::Signup {
            ""
        } else {
            currency
        }
        .into(),
        rule: if scan.is_some() {
            Rule::ScanId
        } else {
            Rule::CodeOnly
        },
        earnings,
        earnings_currency: currency.into(),
        repeat: false,
        flagged: None,
    }
}

/// Human scans, bot scans, QR scans and the visitors of one (day, code, channel).
type DayRow<'a> = (u64, u64, u64, std::collections::BTreeSet<&'a str>);

fn rows(server: &ClickHouseServer, file: &str) -> Vec<Value> {
    let sql = std::fs::read_to_string(sql_dir().join(file)).unwrap();
    server
        .query_in(DB, &format!("{}\nFORMAT JSONEachRow", sql.trim_end()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A number from JSONEachRow (18.16 quotes 64-bit integers).
fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

fn find<'a>(rows: &'a [Value], key: &[(&str, &str)]) -> &'a Value {
    rows.iter()
        .find(|r| key.iter().all(|(k, v)| r[*k] == *v))
        .unwrap_or_else(|| panic!("no row {key:?} in {rows:?}"))
}

#[tokio::test]
async fn dashboard_queries_run_on_clickhouse_18_and_add_up() {
    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: DB.to_string(),
        user: None,
        password: None,
        cluster: None,
    });
    events.migrate().await.unwrap();
    let now = now_ms();
    let scans = scans(now);
    let long_ago = now - 40 * DAY_MS;
    // A scan from before the 30-day window, attributed by a signup inside it.
    let old_scan = Scan {
        scan_id: ScanId::from_parts(now - 45 * DAY_MS, 5, 99)
            .to_string()
            .into(),
        ts_ms: now - 45 * DAY_MS,
        ..scans[0].clone()
    };
    use ConversionKind::{Purchase, Refund, Signup};
    let conversions = vec![
        conversion(
            "s1",
            Signup,
            now,
            ("alice10", "alice"),
            Some(&scans[0]),
            (200, "EUR"),
        ),
        // Another signup through the same scan (two people on one device).
        conversion(
            "s4",
            Signup,
            now,
            ("alice10", "alice"),
            Some(&scans[0]),
            (200, "EUR"),
        ),
        conversion(
            "s5",
            Signup,
            now,
            ("alice10", "alice"),
            Some(&old_scan),
            (200, "EUR"),
        ),
        conversion(
            "s2",
            Signup,
            now,
            ("alice10", "alice"),
            Some(&scans[4]),
            (200, "EUR"),
        ),
        conversion(
            "p1",
            Purchase,
            now,
            ("alice10", "alice"),
            None,
            (1000, "EUR"),
        ),
        conversion("r1", Refund, now, ("alice10", "alice"), None, (-100, "EUR")),
        conversion(
            "p0",
            Purchase,
            long_ago,
            ("alice10", "alice"),
            None,
            (500, "EUR"),
        ),
        conversion(
            "s3",
            Signup,
            now,
            ("bob20", "bob"),
            Some(&scans[8]),
            (150, "USD"),
        ),
        conversion("u1", Signup, now, ("", ""), None, (0, "")),
    ];
    let mut stored = scans.clone();
    stored.push(old_scan.clone());
    let batch = Arc::new(Batch::new(stored, conversions));
    events.write(&batch).await.unwrap();
    // The same batch again, as a spool replay would: FINAL must collapse it.
    events.write(&batch).await.unwrap();

    let mut files: Vec<String> = std::fs::read_dir(sql_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "bot_scans_daily.sql",
            "earnings_by_creator.sql",
            "scan_to_use_by_code.sql",
            "scan_to_use_by_device.sql",
            "scans_daily.sql"
        ],
        "every query file is checked here"
    );

    // scans_daily: per (day, code, channel), computed here from the scans.
    let mut want: BTreeMap<(String, &str, &str), DayRow> = BTreeMap::new();
    for s in &scans {
        let e: &mut DayRow = want
            .entry((day_of(s.ts_ms), s.code.as_str(), s.channel.as_str()))
            .or_default();
        if s.bot_reason.is_empty() {
            e.0 += 1;
            e.2 += u64::from(s.source == "qr");
            e.3.insert(&s.visitor_id);
        } else {
            e.1 += 1;
        }
    }
    let daily = rows(&server, "scans_daily.sql");
    assert_eq!(daily.len(), want.len(), "{daily:?}");
    for ((day, code, channel), (human, bot, qr, visitors)) in &want {
        let r = find(
            &daily,
            &[("day", day), ("code", code), ("channel", channel)],
        );
        assert_eq!(num(&r["human_scans"]), *human as f64, "{r}");
        assert_eq!(num(&r["bot_scans"]), *bot as f64, "{r}");
        assert_eq!(num(&r["qr_scans"]), *qr as f64, "{r}");
        assert_eq!(num(&r["unique_visitors"]), visitors.len() as f64, "{r}");
    }

    let by_code = rows(&server, "scan_to_use_by_code.sql");
    assert_eq!(by_code.len(), 2, "{by_code:?}");
    let alice = find(&by_code, &[("code", "alice10")]);
    assert_eq!(
        [
            &alice["human_scans"],
            &alice["signups"],
            &alice["purchases"]
        ]
        .map(num),
        [6.0, 4.0, 1.0],
        "{alice}"
    );
    assert_eq!(num(&alice["signups_per_scan"]), 0.6667, "{alice}");
    let bob = find(&by_code, &[("code", "bob20")]);
    assert_eq!(
        [&bob["human_scans"], &bob["signups"], &bob["purchases"]].map(num),
        [3.0, 1.0, 0.0],
        "{bob}"
    );

    let by_device = rows(&server, "scan_to_use_by_device.sql");
    for (device, in_app, human, signups) in [
        // s1 and s4 through one scan, s5 through a scan 45 days old.
        ("mobile", "instagram", 4.0, 3.0),
        ("desktop", "", 2.0, 1.0),
        ("mobile", "", 3.0, 1.0),
    ] {
        let r = find(&by_device, &[("device", device), ("in_app", in_app)]);
        assert_eq!(
            [&r["human_scans"], &r["signups"]].map(num),
            [human, signups],
            "{r}"
        );
    }

    let earnings = rows(&server, "earnings_by_creator.sql");
    assert_eq!(earnings.len(), 2, "{earnings:?}");
    let alice = find(&earnings, &[("owner", "alice"), ("currency", "EUR")]);
    assert_eq!(
        [
            &alice["signups"],
            &alice["purchases"],
            &alice["refunds"],
            &alice["estimated"],
            &alice["confirmed"]
        ]
        .map(num),
        [4.0, 2.0, 1.0, 1700.0, 500.0],
        "{alice}"
    );
    let bob = find(&earnings, &[("owner", "bob"), ("currency", "USD")]);
    assert_eq!(
        [&bob["estimated"], &bob["confirmed"]].map(num),
        [150.0, 0.0],
        "{bob}"
    );

    let bots = rows(&server, "bot_scans_daily.sql");
    let total = |reason: &str| -> f64 {
        bots.iter()
            .filter(|r| r["bot_reason"] == reason)
            .map(|r| num(&r["scans"]))
            .sum()
    };
    assert_eq!(
        (total("ua:twitterbot"), total("head")),
        (1.0, 1.0),
        "{bots:?}"
    );
    assert_eq!(
        bots.iter().map(|r| num(&r["scans"])).sum::<f64>(),
        2.0,
        "{bots:?}"
    );
}

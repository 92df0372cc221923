//! The Grafana dashboard `dashboards/grafana/dashboards/codelink.json`: every
//! panel's SQL and the `code` variable's query, taken from the JSON, run on a
//! real clickhouse-server 18.16 over tables the sink created and filled (each
//! batch written twice, as a spool replay would), and checked against what the
//! data written implies.
//!
//! # Substitution
//! Grafana and the grafana-clickhouse-datasource plugin rewrite a query before
//! it reaches ClickHouse; [`substitute`] does the same with concrete values:
//!
//! | in the dashboard | sent to ClickHouse |
//! |---|---|
//! | `$__fromTime` | `toDateTime(<from, unix seconds>)` (the plugin's expansion) |
//! | `$__toTime` | `toDateTime(<to, unix seconds>)` |
//! | `$__interval_s` | the panel interval in whole seconds, e.g. `3600` |
//! | `${code:singlequote}` with codes selected | `'alice10','bob20'` (each value single-quoted) |
//! | `${code:singlequote}` with All | `'*'`: the variable's custom all value, which Grafana inserts unformatted |
//!
//! Any other `$…` in a query (another macro such as `$__timeFilter(ts)` or
//! `$__toTime_ms`, another variable) fails the test: give it a substitution
//! here first. Every panel needs a check in [`check_panel`], and every check
//! its panel, so a panel cannot be added or renamed without a test.
//!
//! # Time semantics checked
//! - Range panels (funnel, earnings, bots by reason, top codes) count events in
//!   the range rounded out to whole UTC hours: from the hour holding `from` to
//!   the end of the hour holding `to` (day cells for the whole days, hour cells
//!   around them). The fixture has events just outside `from`/`to` but inside
//!   those hours (counted) and just outside those hours (not counted).
//! - Time series use cells of the grain their interval allows (quarter-hour
//!   below an hour, hour below a day, day above), buckets of a whole multiple
//!   of that grain, and show their first bucket whole: a cell counts when its
//!   start is at or after the start of the bucket holding `from`, and at or
//!   before `to`.

use codelink_analytics::batch::Batch;
use codelink_analytics::event::{Conversion, ConversionKind, Rule, Scan};
use codelink_analytics::sink::{ClickHouseConfig, ClickHouseEvents};
use codelink_analytics::ScanId;
use codelink_testkit::ClickHouseServer;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

const DB: &str = "grafana";
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
/// The earnings panel's hold: estimated while younger, confirmed after.
const HOLD: u64 = 30 * DAY;

/// The panels of the dashboard, each checked by [`check_panel`].
const PANELS: [&str; 7] = [
    "Scans over time",
    "Conversions over time",
    "Scan to use",
    "Earnings by currency",
    "Bot share over time",
    "Bot scans by reason",
    "Top codes",
];

/// Intervals (seconds) the time series are run with: quarter-hour cells (two
/// interval sizes), hour cells (two), day cells (two).
const INTERVALS: [u64; 6] = [60, 1_200, HOUR, 2 * HOUR, DAY, 7 * DAY];

fn dashboard_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards/grafana/dashboards/codelink.json")
}

/// One scan of the fixture: code, unix seconds, visitor, bot reason, QR.
struct S(&'static str, u64, &'static str, &'static str, bool);

/// One conversion: event id, kind, unix seconds, code, owner, earnings, currency.
struct C(
    &'static str,
    ConversionKind,
    u64,
    &'static str,
    &'static str,
    i64,
    &'static str,
);

/// Points in time of the fixture, around `h`, the start of the current hour.
struct Points {
    h: u64,
}

impl Points {
    /// The long view's range: from 20 minutes into the hour 45 days ago, to
    /// 20 minutes before `h`.
    fn from(&self) -> u64 {
        self.h - 45 * DAY + 1_200
    }
    fn to(&self) -> u64 {
        self.h - 1_200
    }
    /// Before `from`, in the same hour: counted by range panels.
    fn e1(&self) -> u64 {
        self.h - 45 * DAY + 600
    }
    /// After `to`, in the same hour: counted by range panels.
    fn e2(&self) -> u64 {
        self.h - 600
    }
    /// The hour before `from`'s, and the hour after `to`'s: not counted.
    fn x1(&self) -> u64 {
        self.h - 45 * DAY - 600
    }
    fn x3(&self) -> u64 {
        self.h + 600
    }
    /// Long before the range.
    fn x2(&self) -> u64 {
        self.h - 60 * DAY
    }
    /// Older than the hold (confirmed earnings), and recent ones.
    fn a(&self) -> u64 {
        self.h - 35 * DAY + 1_234
    }
    fn b(&self) -> u64 {
        self.h - 3 * DAY + 1_800
    }
    fn c(&self) -> u64 {
        self.h - 5 * HOUR + 60
    }
    fn d(&self) -> u64 {
        self.h - 2 * HOUR + 300
    }
}

fn fixture(p: &Points) -> (Vec<S>, Vec<C>) {
    let scans = vec![
        S("alice10", p.b(), "v1", "", true),
        S("alice10", p.b() + 5, "v1", "", false),
        S("alice10", p.b() + 9, "v2", "", false),
        S("alice10", p.c(), "v3", "", false),
        S("alice10", p.d(), "v1", "", true),
        S("alice10", p.d() + 1, "b1", "ua:twitterbot", false),
        S("alice10", p.d() + 2, "b2", "head", false),
        S("alice10", p.e1(), "v4", "", false),
        S("alice10", p.a(), "v5", "", false),
        S("alice10", p.e2(), "v12", "", false),
        S("alice10", p.x1(), "v6", "", false),
        S("alice10", p.x1() + 1, "bx", "head", false),
        S("alice10", p.x2(), "v7", "", false),
        S("alice10", p.x3(), "v13", "", false),
        // v1 scans two codes: one visitor across them.
        S("bob20", p.d() + 3, "v1", "", false),
        S("bob20", p.d() + 4, "v8", "", true),
        S("bob20", p.c() + 7, "b3", "rate", false),
        S("bob20", p.a() + 3, "v9", "", false),
        S("bob20", p.e2() + 1, "b4", "rate", false),
        S("carol", p.b() + 20, "v10", "", false),
        S("carol", p.b() + 21, "b5", "prefetch", false),
        // Bot scans only: no per-code totals, so not offered by the variable.
        S("zed", p.d() + 5, "b6", "ua:googlebot", false),
        // Only before the range: not offered by the variable.
        S("olda", p.x2() + 1, "v11", "", false),
    ];
    use ConversionKind::{Purchase, Refund, Signup};
    let conversions = vec![
        C("s1", Signup, p.b() + 60, "alice10", "alice", 200, "EUR"),
        C("s2", Signup, p.d() + 60, "alice10", "alice", 200, "EUR"),
        C("p1", Purchase, p.c() + 60, "alice10", "alice", 1000, "EUR"),
        C("r1", Refund, p.d() + 90, "alice10", "alice", -100, "EUR"),
        C("p2", Purchase, p.a() + 60, "alice10", "alice", 500, "EUR"),
        C("s6", Signup, p.e2() + 30, "alice10", "alice", 200, "EUR"),
        C("s3", Signup, p.x1() + 60, "alice10", "alice", 200, "EUR"),
        C("p3", Purchase, p.x2() + 60, "alice10", "alice", 700, "EUR"),
        C("s4", Signup, p.d() + 120, "bob20", "bob", 150, "USD"),
        C("p4", Purchase, p.e1() + 60, "bob20", "bob", 300, "USD"),
        C("s5", Signup, p.b() + 90, "carol", "carol", 200, "EUR"),
        // Credited to no code: only in the cells over every code (All).
        C("u1", Signup, p.c() + 120, "", "", 0, ""),
    ];
    (scans, conversions)
}

fn to_scan(i: usize, s: &S) -> Scan {
    let ts_ms = s.1 * 1000 + 123;
    Scan {
        scan_id: ScanId::from_parts(ts_ms, 7, i as u64).to_string().into(),
        ts_ms,
        code: s.0.into(),
        visitor_id: s.2.into(),
        device: if s.3.is_empty() { "mobile" } else { "bot" }.into(),
        source: if s.4 { "qr" } else { "link" }.into(),
        bot_reason: s.3.into(),
        ..Scan::default()
    }
}

fn to_conversion(c: &C) -> Conversion {
    let signup = c.1 == ConversionKind::Signup;
    Conversion {
        event_id: c.0.into(),
        kind: c.1,
        occurred_ms: c.2 * 1000 + 456,
        received_ms: c.2 * 1000 + 456,
        code: c.3.into(),
        owner: c.4.into(),
        channel: String::new(),
        scan_id: String::new(),
        scan_ms: 0,
        visitor_id: String::new(),
        customer_id: format!("c-{}", c.0),
        amount: if signup { 0 } else { 5000 },
        currency: if signup { "" } else { c.6 }.into(),
        rule: if c.3.is_empty() {
            Rule::Unattributed
        } else {
            Rule::CodeOnly
        },
        earnings: c.5,
        earnings_currency: c.6.into(),
        repeat: false,
        flagged: None,
    }
}

/// What Grafana asks for: a time range, an interval and the selected codes
/// (`None`: All).
struct View {
    name: &'static str,
    from: u64,
    to: u64,
    interval: u64,
    codes: Option<Vec<&'static str>>,
}

impl View {
    fn selects(&self, code: &str) -> bool {
        self.codes.as_ref().is_none_or(|c| c.contains(&code))
    }

    /// Range panels: whole UTC hours from the one holding `from` to the one
    /// holding `to`.
    fn in_range(&self, at: u64) -> bool {
        at >= self.from - self.from % HOUR && at < self.to - self.to % HOUR + HOUR
    }

    /// Time series: the bucket an event at `at` is shown in, if any.
    fn bucket(&self, at: u64) -> Option<u64> {
        let grain = match self.interval {
            i if i >= DAY => DAY,
            i if i >= HOUR => HOUR,
            _ => 900,
        };
        let step = (self.interval / grain).max(1) * grain;
        let cell = at - at % grain;
        (cell >= self.from - self.from % step && cell <= self.to).then_some(at - at % step)
    }
}

/// The plugin's macros and Grafana's variable, replaced as documented in the
/// module docs. Panics on any `$` it has no substitution for.
fn substitute(sql: &str, view: &View) -> String {
    let codes = match &view.codes {
        None => "'*'".to_string(),
        Some(codes) => codes
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(","),
    };
    let tokens = [
        ("$__fromTime", format!("toDateTime({})", view.from)),
        ("$__toTime", format!("toDateTime({})", view.to)),
        ("$__interval_s", view.interval.to_string()),
        ("${code:singlequote}", codes),
    ];
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (token, value) = tokens
            .iter()
            .find(|(t, _)| {
                tail.starts_with(t)
                    && !tail[t.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
            .unwrap_or_else(|| {
                panic!(
                    "no substitution in the test for `{}…` (add one to `substitute`):\n{sql}",
                    &tail[..tail.len().min(24)]
                )
            });
        out.push_str(value);
        rest = &tail[token.len()..];
    }
    out.push_str(rest);
    out
}

/// A number from JSONEachRow (18.16 quotes 64-bit integers).
fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other
            .as_f64()
            .unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The panels' and the variables' SQL, by panel title or `variable <name>`.
fn queries(dash: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    fn walk(panels: &[Value], out: &mut BTreeMap<String, String>) {
        for p in panels {
            if let Some(nested) = p["panels"].as_array() {
                walk(nested, out);
            }
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().expect("panel title");
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{title}: data source by variable"
            );
            let targets = p["targets"].as_array().expect("panel targets");
            assert_eq!(targets.len(), 1, "{title}: one query per panel");
            let t = &targets[0];
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert_eq!(
                t["datasource"]["type"], "grafana-clickhouse-datasource",
                "{title}"
            );
            assert_eq!(t["editorType"], "sql", "{title}");
            let sql = t["rawSql"].as_str().expect("rawSql");
            assert!(
                sql.contains("${code:singlequote}"),
                "{title}: filtered by the code variable"
            );
            let series = p["type"] == "timeseries";
            assert_eq!(t["format"], if series { 0 } else { 1 }, "{title}: format");
            let prev = out.insert(title.to_string(), sql.to_string());
            assert!(prev.is_none(), "two panels titled {title}");
        }
    }
    let mut panels = BTreeMap::new();
    walk(dash["panels"].as_array().expect("panels"), &mut panels);
    let mut variables = BTreeMap::new();
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if v["type"] == "query" {
            let sql = v["query"]["rawSql"]
                .as_str()
                .or(v["query"].as_str())
                .expect("variable query");
            variables.insert(
                format!("variable {}", v["name"].as_str().unwrap()),
                sql.into(),
            );
        }
    }
    (panels, variables)
}

struct Db<'a> {
    server: &'a ClickHouseServer,
    tz: jiff::tz::TimeZone,
}

impl Db<'_> {
    fn rows(&self, sql: &str) -> Vec<Value> {
        self.server
            .query_in(DB, &format!("{}\nFORMAT JSONEachRow", sql.trim_end()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A DateTime as JSONEachRow writes it (in the server's time zone).
    fn secs(&self, v: &Value) -> u64 {
        let civil: jiff::civil::DateTime = v.as_str().expect("a DateTime").parse().unwrap();
        civil
            .to_zoned(self.tz.clone())
            .unwrap()
            .timestamp()
            .as_second() as u64
    }

    /// A time series: time → its numeric columns.
    fn series(&self, rows: &[Value], columns: &[&str]) -> BTreeMap<u64, Vec<f64>> {
        let mut out = BTreeMap::new();
        let mut last = None;
        for r in rows {
            let t = self.secs(&r["time"]);
            assert!(last < Some(t), "time ascending and unique: {rows:?}");
            last = Some(t);
            out.insert(t, columns.iter().map(|c| num(&r[*c])).collect());
        }
        out
    }
}

struct Data {
    scans: Vec<S>,
    conversions: Vec<C>,
    now: u64,
}

fn check_panel(db: &Db<'_>, data: &Data, title: &str, view: &View, sql: &str) {
    let rows = db.rows(sql);
    let ctx = format!("{title} ({}, interval {})", view.name, view.interval);
    let humans = || {
        data.scans
            .iter()
            .filter(|s| view.selects(s.0) && s.3.is_empty())
    };
    let conversions = || data.conversions.iter().filter(|c| view.selects(c.3));
    match title {
        "Scans over time" | "Bot share over time" => {
            let mut want: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            for s in data.scans.iter().filter(|s| view.selects(s.0)) {
                if let Some(t) = view.bucket(s.1) {
                    let e = want.entry(t).or_default();
                    if s.3.is_empty() {
                        e.0 += 1;
                    } else {
                        e.1 += 1;
                    }
                }
            }
            if title == "Scans over time" {
                let got = db.series(&rows, &["human_scans", "bot_scans"]);
                let want: BTreeMap<u64, Vec<f64>> = want
                    .into_iter()
                    .map(|(t, (h, b))| (t, vec![h as f64, b as f64]))
                    .collect();
                assert_eq!(got, want, "{ctx}");
            } else {
                let got = db.series(&rows, &["bot_share"]);
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    want.keys().collect::<Vec<_>>(),
                    "{ctx}"
                );
                for (t, (h, b)) in &want {
                    let share = round4(*b as f64 / (h + b) as f64);
                    assert!((got[t][0] - share).abs() < 1e-9, "{ctx} at {t}: {got:?}");
                }
            }
        }
        "Conversions over time" => {
            let mut want: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for c in conversions() {
                if let Some(t) = view.bucket(c.2) {
                    let e = want.entry(t).or_insert_with(|| vec![0.0; 3]);
                    e[c.1 as usize] += 1.0;
                }
            }
            let got = db.series(&rows, &["signups", "purchases", "refunds"]);
            assert_eq!(got, want, "{ctx}");
        }
        "Scan to use" => {
            let scans: Vec<&S> = humans().filter(|s| view.in_range(s.1)).collect();
            let visitors: BTreeSet<&str> = scans.iter().map(|s| s.2).collect();
            let count = |kind: ConversionKind| {
                conversions()
                    .filter(|c| c.1 == kind && view.in_range(c.2))
                    .count() as f64
            };
            let want = [
                scans.len() as f64,
                visitors.len() as f64,
                count(ConversionKind::Signup),
                count(ConversionKind::Purchase),
            ];
            assert_eq!(rows.len(), 1, "{ctx}: {rows:?}");
            let r = &rows[0];
            let got =
                ["human_scans", "unique_scanners", "signups", "purchases"].map(|c| num(&r[c]));
            assert_eq!(got, want, "{ctx}: {r}");
        }
        "Earnings by currency" => {
            // signups, purchases, refunds, estimated, confirmed, net
            let mut want: BTreeMap<&str, [f64; 6]> = BTreeMap::new();
            for c in conversions().filter(|c| view.in_range(c.2) && !c.6.is_empty()) {
                let e = want.entry(c.6).or_default();
                e[c.1 as usize] += 1.0;
                let confirmed = c.2 + HOLD <= data.now;
                e[if confirmed { 4 } else { 3 }] += c.5 as f64;
                e[5] += c.5 as f64;
            }
            let got: BTreeMap<&str, [f64; 6]> = rows
                .iter()
                .map(|r| {
                    let cols = [
                        "signups",
                        "purchases",
                        "refunds",
                        "estimated",
                        "confirmed",
                        "net",
                    ];
                    (
                        r["earnings_currency"].as_str().unwrap(),
                        cols.map(|c| num(&r[c])),
                    )
                })
                .collect();
            assert_eq!(got, want, "{ctx}");
            let order: Vec<&str> = rows
                .iter()
                .map(|r| r["earnings_currency"].as_str().unwrap())
                .collect();
            assert!(order.is_sorted(), "{ctx}: {order:?}");
        }
        "Bot scans by reason" => {
            let mut want: BTreeMap<&str, f64> = BTreeMap::new();
            for s in data
                .scans
                .iter()
                .filter(|s| view.selects(s.0) && !s.3.is_empty() && view.in_range(s.1))
            {
                *want.entry(s.3).or_default() += 1.0;
            }
            let mut want: Vec<(&str, f64)> = want.into_iter().collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            let got: Vec<(&str, f64)> = rows
                .iter()
                .map(|r| (r["reason"].as_str().unwrap(), num(&r["bot_scans"])))
                .collect();
            assert_eq!(got, want, "{ctx}");
        }
        "Top codes" => {
            // human scans, signups, purchases, refunds per code with any.
            let mut want: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
            for s in humans().filter(|s| view.in_range(s.1)) {
                want.entry(s.0).or_default()[0] += 1.0;
            }
            for c in conversions().filter(|c| !c.3.is_empty() && view.in_range(c.2)) {
                want.entry(c.3).or_default()[1 + c.1 as usize] += 1.0;
            }
            let mut want: Vec<(&str, [f64; 4], f64)> = want
                .into_iter()
                .map(|(code, v)| {
                    let per_scan = if v[0] == 0.0 {
                        0.0
                    } else {
                        round4(v[1] / v[0])
                    };
                    (code, v, per_scan)
                })
                .collect();
            want.sort_by(|a, b| {
                b.1[0]
                    .total_cmp(&a.1[0])
                    .then(b.1[1].total_cmp(&a.1[1]))
                    .then(a.0.cmp(b.0))
            });
            let got: Vec<(&str, [f64; 4], f64)> = rows
                .iter()
                .map(|r| {
                    (
                        r["code"].as_str().unwrap(),
                        ["human_scans", "signups", "purchases", "refunds"].map(|c| num(&r[c])),
                        num(&r["signups_per_scan"]),
                    )
                })
                .collect();
            assert_eq!(got, want, "{ctx}");
        }
        other => panic!("no check for the panel {other:?}: add one to check_panel"),
    }
}

#[tokio::test]
async fn grafana_panels_run_on_clickhouse_18_and_add_up() {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap()).unwrap();
    assert_eq!(dash["uid"], "codelink");
    assert_eq!(dash["title"], "codelink");
    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "grafana-clickhouse-datasource");
    let code = var("code");
    assert_eq!(
        (&code["multi"], &code["includeAll"], &code["allValue"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::from("'*'")),
        "the code variable: multi-value, All read as scope '*'"
    );
    let (panels, variables) = queries(&dash);
    assert_eq!(
        panels.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        PANELS.into_iter().collect::<BTreeSet<_>>(),
        "every panel has a check here, and every check its panel"
    );
    assert_eq!(
        variables.keys().collect::<Vec<_>>(),
        ["variable code"],
        "every query variable has a check here"
    );

    let server = ClickHouseServer::start();
    let events = ClickHouseEvents::new(&ClickHouseConfig {
        url: server.url(),
        database: DB.to_string(),
        user: None,
        password: None,
        cluster: None,
    });
    events.migrate().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let p = Points {
        h: now - now % HOUR,
    };
    let (scans, conversions) = fixture(&p);
    let rows: Vec<Scan> = scans
        .iter()
        .enumerate()
        .map(|(i, s)| to_scan(i, s))
        .collect();
    let convs: Vec<Conversion> = conversions.iter().map(to_conversion).collect();
    // Two batches (their cells merge), each written twice (a spool replay:
    // the rollups skip it by its markers, the raw rows collapse under FINAL).
    let (s1, s2) = rows.split_at(rows.len() / 2);
    let (c1, c2) = convs.split_at(convs.len() / 2);
    for batch in [
        Batch::new(s1.to_vec(), c1.to_vec()),
        Batch::new(s2.to_vec(), c2.to_vec()),
    ] {
        let batch = Arc::new(batch);
        events.write(&batch).await.unwrap();
        events.write(&batch).await.unwrap();
    }
    let tz_name = server.query("SELECT timezone()");
    let db = Db {
        server: &server,
        tz: jiff::tz::TimeZone::get(tz_name.trim()).unwrap(),
    };
    let data = Data {
        scans,
        conversions,
        now,
    };

    let views = [
        View {
            name: "All, 45 days",
            from: p.from(),
            to: p.to(),
            interval: HOUR,
            codes: None,
        },
        View {
            name: "alice10 and bob20, 45 days",
            from: p.from(),
            to: p.to(),
            interval: HOUR,
            codes: Some(vec!["alice10", "bob20"]),
        },
        View {
            name: "alice10, 6 hours",
            from: p.h - 6 * HOUR + 1_200,
            to: p.to(),
            interval: HOUR,
            codes: Some(vec!["alice10"]),
        },
    ];

    // The fixture as intended, counted by hand (All, 45 days): the checks
    // below compute the same from the events.
    let all = &views[0];
    let human_in = data
        .scans
        .iter()
        .filter(|s| s.3.is_empty() && all.in_range(s.1))
        .count();
    assert_eq!(human_in, 12);
    let funnel = db.rows(&substitute(&panels["Scan to use"], all));
    assert_eq!(
        ["human_scans", "unique_scanners", "signups", "purchases"].map(|c| num(&funnel[0][c])),
        [12.0, 9.0, 6.0, 3.0],
        "{funnel:?}"
    );
    let earnings = db.rows(&substitute(&panels["Earnings by currency"], all));
    assert_eq!(
        earnings
            .iter()
            .map(|r| (
                r["earnings_currency"].as_str().unwrap(),
                [
                    "signups",
                    "purchases",
                    "refunds",
                    "estimated",
                    "confirmed",
                    "net"
                ]
                .map(|c| num(&r[c]))
            ))
            .collect::<Vec<_>>(),
        [
            ("EUR", [4.0, 2.0, 1.0, 1700.0, 500.0, 2200.0]),
            ("USD", [1.0, 1.0, 0.0, 150.0, 300.0, 450.0])
        ]
    );
    let narrow = db.rows(&substitute(&panels["Scan to use"], &views[2]));
    assert_eq!(
        ["human_scans", "unique_scanners", "signups", "purchases"].map(|c| num(&narrow[0][c])),
        [3.0, 3.0, 2.0, 1.0],
        "{narrow:?}"
    );

    let mut runs = 0;
    for base in &views {
        for (title, sql) in &panels {
            let intervals: &[u64] = if sql.contains("$__interval_s") {
                &INTERVALS
            } else {
                &[HOUR]
            };
            for &interval in intervals {
                let view = View {
                    interval,
                    codes: base.codes.clone(),
                    ..*base
                };
                check_panel(&db, &data, title, &view, &substitute(sql, &view));
                runs += 1;
            }
        }
        // The code variable: codes with human scans or conversions on the
        // range's days (bot-only codes and codes only seen before are left out).
        let got: Vec<String> = db
            .rows(&substitute(&variables["variable code"], base))
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_string())
            .collect();
        let want: &[&str] = if base.from < p.h - DAY {
            &["alice10", "bob20", "carol"]
        } else {
            &["alice10", "bob20"]
        };
        assert_eq!(got, want, "variable code ({})", base.name);
    }
    assert!(runs >= PANELS.len() * views.len());
}

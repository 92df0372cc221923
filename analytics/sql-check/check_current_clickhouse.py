#!/usr/bin/env python3
"""Check that analytics' ClickHouse DDL, the analysts' queries in
dashboards/clickhouse/ and the Grafana dashboard's panels in
dashboards/grafana/dashboards/ parse and run on a current ClickHouse.

The tests run the migrations on Debian's ClickHouse 18.16; this script runs the
same SQL on the ClickHouse engine embedded in chDB (`pip install chdb-core`),
with no server. It reads `MIGRATIONS` straight out of the Rust source, so it
checks whatever the sink really runs.

Exit status 0 when every statement passes, 1 otherwise.
"""

import json
import pathlib
import re
import sys
import tempfile
import time

RUST_FILE = (
    pathlib.Path(__file__).resolve().parent.parent / "src" / "sink" / "clickhouse" / "mod.rs"
)
# The cluster's SQL (`--clickhouse-cluster`): Distributed and replicated DDL.
CLUSTER_FILE = RUST_FILE.parent / "cluster.rs"
# The analysts' queries: they name tables without a database.
DASHBOARDS = pathlib.Path(__file__).resolve().parents[2] / "dashboards" / "clickhouse"
DB = "`codelink`"  # what quote_ident("codelink") gives

# One token at a time: a line comment, a block comment, a raw string r#"..."#,
# a plain string "...", or the `]` that closes the array. Comments are matched
# (and dropped) so that quotes or brackets inside them cannot confuse the scan.
TOKEN = re.compile(
    r'//[^\n]*'
    r'|/\*.*?\*/'
    r'|r(?P<hashes>#*)"(?P<raw>.*?)"(?P=hashes)'
    r'|"(?P<str>(?:[^"\\]|\\.)*)"'
    r'|(?P<end>\])',
    re.S,
)
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def unescape(s):
    """Rust string escapes: \\n \\t \\\\ \\" ..., \\u{..}, and `\\` + newline."""

    def one(m):
        e = m.group(1)
        if e[0] == "\n":  # line continuation: drop the newline and the indent
            return ""
        if e[0] == "u":
            return chr(int(e[2:-1], 16))
        if e[0] == "x":
            return chr(int(e[1:], 16))
        return ESCAPES[e]

    return re.sub(r"\\(\n\s*|u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)", one, s, flags=re.S)


def migrations(path=RUST_FILE):
    src = path.read_text()
    start = re.search(r"pub\s+const\s+MIGRATIONS\s*:\s*&\[&str\]\s*=\s*&\[", src)
    if not start:
        sys.exit(f"no `pub const MIGRATIONS: &[&str] = &[` in {path}")
    out = []
    for m in TOKEN.finditer(src, start.end()):
        if m.group("end"):
            break
        if m.group("raw") is not None:
            out.append(m.group("raw"))
        elif m.group("str") is not None:
            out.append(unescape(m.group("str")))
    else:
        sys.exit(f"MIGRATIONS in {path} has no closing `]`")
    if not out:
        sys.exit(f"MIGRATIONS in {path} is empty")
    return out


def rust_str(src, name):
    """The string literal of `pub const {name}: &str = ...;`."""
    start = re.search(r"pub\s+const\s+" + name + r"\s*:\s*&str\s*=\s*", src)
    if not start:
        sys.exit(f"no `pub const {name}: &str` in {CLUSTER_FILE}")
    m = TOKEN.match(src, start.end())
    if not m or m.group("str") is None:
        sys.exit(f"{name} in {CLUSTER_FILE} is not a plain string literal")
    return unescape(m.group("str"))


def cluster_sql(ddl, path=CLUSTER_FILE):
    """(label, statement) of the cluster's DDL, made as cluster.rs makes it:
    each migration with a Replicated engine, and each Distributed table."""
    src = path.read_text()
    block = re.search(r"pub\s+const\s+DISTRIBUTED\s*:[^=]*=\s*&\[(.*?)\];", src, re.S)
    if not block:
        sys.exit(f"no `pub const DISTRIBUTED` in {path}")
    tables = re.findall(r'\(\s*"(\w+)"\s*,\s*"(\w+)"\s*,?\s*\)', block.group(1))
    if not tables:
        sys.exit(f"DISTRIBUTED in {path} is empty")
    distributed = rust_str(src, "DISTRIBUTED_DDL")
    replicated = rust_str(src, "REPLICATED_ENGINE")
    out = []
    for i, sql in enumerate(ddl, 1):
        sql = sql.replace("{db}", DB)
        for engine in ("ReplacingMergeTree", "AggregatingMergeTree"):
            plain = f"ENGINE = {engine}"
            if plain in sql:
                table = sql.split(f"{DB}.", 1)[1].split("(", 1)[0].split()[0].strip("`")
                eng = (
                    replicated.replace("{engine}", engine)
                    .replace("{dbname}", "codelink")
                    .replace("{table}", table)
                )
                out.append((f"replicated migration {i}: {table}", sql.replace(plain, eng, 1)))
    for table, key in tables:
        sql = (
            distributed.replace("{cdb}", "`codelink_cluster`")
            .replace("{table_ident}", f"`{table}`")
            .replace("{db}", DB)
            .replace("{cluster}", "'codelink_test'")
            .replace("{dbname}", "'codelink'")
            .replace("{table}", f"'{table}'")
            .replace("{key}", key)
        )
        out.append((f"distributed {table}", sql))
    return out


def on_cluster_sql(ddl, path=CLUSTER_FILE):
    """(label, statement) of the DDL the seed runs `ON CLUSTER` (a cluster
    with ZooKeeper), made as cluster.rs's `on_cluster_sql` makes it: `ON_CLUSTER`
    after the object each statement names first."""
    src = path.read_text()
    on = rust_str(src, "ON_CLUSTER").replace("{cluster}", "`codelink_test`")

    def insert(sql, ident):
        end = sql.index(ident) + len(ident)
        if sql[end : end + 1] == ".":
            rest = sql[end + 1 :]
            n = rest.index("`", 1) + 1 if rest.startswith("`") else re.match(r"\w*", rest).end()
            end += 1 + n
        return sql[:end] + on + sql[end:]

    replicated = dict(cluster_sql(ddl, path))
    out = []
    for i, sql in enumerate(ddl, 1):
        sql = sql.replace("{db}", DB)
        table = next((v for k, v in replicated.items() if k.startswith(f"replicated migration {i}:")), sql)
        out.append((f"on cluster: migration {i}", insert(table, DB)))
    for label, sql in replicated.items():
        if label.startswith("distributed"):
            out.append((f"on cluster: {label}", insert(sql, "`codelink_cluster`")))
    cdb = "`codelink_cluster`"
    out.append(("on cluster: the cluster database", insert(f"CREATE DATABASE IF NOT EXISTS {cdb}", cdb)))
    out.append(("on cluster: a drop", insert(f"DROP TABLE IF EXISTS {cdb}.`scans`", cdb)))
    out.append(("on cluster: a view's drop", insert(f"DROP TABLE IF EXISTS {DB}.`scan_rollup_mv`", DB)))
    return out


COLUMNS = (
    "scan_id, ts, ts_ms, code, channel, visitor_id, ip_prefix, user_agent, device, os, "
    "browser, in_app, referrer_host, country, source, is_bot, bot_reason, is_unique, rolled"
)
# The same scan twice (as when the spool replays it): same (code, ts, scan_id).
ROW = (
    "('s-1', 1714564800, 1714564800123, 'abc', 'yt', 'v-1', '203.0.113.0', 'Mozilla/5.0', "
    "'mobile', 'iOS', 'Safari', 'instagram', 'l.instagram.com', 'DE', 'qr', 0, '', 1, 1)"
)

# Rollup inputs as the writer sends them: two cells of one code and hour (as
# two batches would), and a batch marker; then what the queries ask of them.
SCAN_CELLS = (
    "INSERT INTO codelink.scan_rollup_input (scope, grain, dim, bucket, value, n_human, "
    "n_bot, n_qr, n_link, visitor_hashes) VALUES "
    "('abc', 1, 8, 1714564800, 'DE', 3, 1, 1, 2, [11, 12, 13]), "
    "('#20240501/b1/s0', 0, 0, 0, '', 0, 0, 0, 0, [])"
)
SCAN_CELLS_2 = (
    "INSERT INTO codelink.scan_rollup_input (scope, grain, dim, bucket, value, n_human, "
    "n_bot, n_qr, n_link, visitor_hashes) VALUES "
    "('abc', 1, 8, 1714564800, 'DE', 1, 0, 0, 1, [13, 14]), "
    "('abc', 1, 4, 1714564800, 'mobile', 2, 0, 0, 2, [13, 15])"
)
CONVERSION_CELLS = (
    "INSERT INTO codelink.conversion_rollup_input (scope, grain, dim, bucket, value, owner, "
    "kind, currency, earnings_currency, n_conversions, amount_sum, earnings_sum, delay_bins, "
    "delay_counts) VALUES "
    "('abc', 1, 0, 1714564800, '', 'alice', 'purchase', 'EUR', 'EUR', 2, "
    "2000000000000, 20000000000, [], []), "
    "('abc', 1, 0, 1714564800, '', 'alice', 'signup', '', 'EUR', 1, 0, 200, [70], [1])"
)
TOTALS = (
    "INSERT INTO codelink.code_totals_input (grain, bucket, scope, owner, kind, "
    "earnings_currency, n_human, n_conversions, earnings_sum) VALUES "
    "(1, 1714564800, 'abc', '', '', '', 4, 0, 0), "
    "(1, 1714564800, 'abc', 'alice', 'purchase', 'EUR', 0, 2, 20000000000)"
)

CONVERSION_COLUMNS = (
    "event_id, kind, occurred, occurred_ms, received_ms, code, owner, channel, scan_id, "
    "scan_ms, visitor_id, customer_id, amount, currency, rule, earnings, earnings_currency, rolled"
)
CONVERSION_E1 = (
    "('e1', 'signup', 1714564800, 1714564800000, 1714564800500, 'abc', 'alice', 'yt', '', 0, "
    "'v-1', 'c-1', 0, '', 'code_only', 200, 'EUR', 1)"
)
CONVERSION_E2 = (
    "('e2', 'purchase', 1714564800, 1714564800000, 1714564800500, 'abc', 'alice', '', '', 0, "
    "'v-2', 'c-2', 1000, 'EUR', 'code_only', 100, 'EUR', 1)"
)
CONVERSION_E3 = (
    "('e3', 'purchase', 1714568400, 1714568400000, 1714568400500, 'abc', 'bob', '', '', 0, "
    "'v-3', 'c-3', 1000, 'EUR', 'code_only', 100, 'EUR', 1)"
)
# What Analytics::recent_conversions sends (sink/clickhouse/read.rs), binds filled in.
RECENT_CONVERSIONS = (
    "SELECT event_id, kind, occurred_ms, received_ms, code, owner, channel, scan_id, scan_ms, "
    "visitor_id, customer_id, amount, currency, rule, earnings, earnings_currency "
    "FROM codelink.conversions WHERE code = 'abc'{owner} "
    "ORDER BY occurred_ms DESC, event_id DESC LIMIT 1 BY event_id LIMIT {limit} FORMAT TSV"
)

# (label, sql, expected output or None to just print it)
CHECKS = [
    # Two INSERTs, as two batches: within one INSERT a current ClickHouse already
    # collapses the duplicate on write (optimize_on_insert), which would hide FINAL.
    ("insert a scan", f"INSERT INTO codelink.scans ({COLUMNS}) VALUES {ROW}", None),
    ("insert the same scan again", f"INSERT INTO codelink.scans ({COLUMNS}) VALUES {ROW}", None),
    ("raw rows (2 until a merge)", "SELECT count() FROM codelink.scans FORMAT TSV", None),
    ("FINAL collapses the replay", "SELECT count() FROM codelink.scans FINAL FORMAT TSV", "1"),
    (
        "test query: totals",
        "SELECT count(), uniqExact(scan_id) FROM codelink.scans FINAL FORMAT TSV",
        "1\t1",
    ),
    (
        "test query: per code",
        "SELECT code, count(), uniqExact(scan_id), sum(is_bot), countIf(source='qr') "
        "FROM codelink.scans FINAL GROUP BY code FORMAT TSV",
        "abc\t1\t1\t0\t1",
    ),
    (
        "test query: rows as JSON",
        "SELECT * FROM codelink.scans FINAL WHERE code = 'abc' ORDER BY scan_id FORMAT JSONEachRow",
        None,
    ),
    ("scan cells (batch 1, with its marker)", SCAN_CELLS, None),
    ("scan cells (batch 2)", SCAN_CELLS_2, None),
    (
        "a batch marker is found by its scope",
        "SELECT scope FROM codelink.scan_rollup WHERE scope IN ('#20240501/b1/s0', '#x') "
        "UNION ALL SELECT scope FROM codelink.conversion_rollup WHERE scope IN ('#x') "
        "UNION ALL SELECT scope FROM codelink.code_totals WHERE kind = '' AND grain = 0 "
        "AND bucket = toDateTime(0) AND scope IN ('#x') FORMAT TSV",
        "#20240501/b1/s0",
    ),
    (
        "breakdown query: cells merged, uniques exact below 101",
        "SELECT value AS k, sumMerge(human) AS human, sumMerge(bot) AS bot, sumMerge(qr) AS qr, "
        "sumMerge(link) AS link, uniqUpToArrayMerge(100)(visitors_small) AS small, "
        "uniqHLL12ArrayMerge(visitors) AS hll FROM codelink.scan_rollup "
        "WHERE scope IN ('abc') AND dim IN (8) AND ((grain = 1 AND bucket >= toDateTime(1714521600) "
        "AND bucket < toDateTime(1714608000))) GROUP BY k FORMAT TSV",
        "DE\t4\t1\t1\t3\t4\t4",
    ),
    (
        "several breakdowns at once: keys dim|value",
        "SELECT concat(toString(dim), '|', value) AS k, sumMerge(human) AS human, "
        "uniqUpToArrayMerge(100)(visitors_small) AS small FROM codelink.scan_rollup "
        "WHERE scope IN ('abc') AND dim IN (4, 8) AND ((grain = 1 AND bucket >= toDateTime(1714521600) "
        "AND bucket < toDateTime(1714608000))) GROUP BY k ORDER BY k FORMAT TSV",
        "4|mobile\t2\t2\n8|DE\t4\t4",
    ),
    (
        "timeseries key: local hours of Asia/Kathmandu",
        "SELECT toString(toUInt32(toStartOfHour(bucket, 'Asia/Kathmandu'))) AS k, "
        "sumMerge(human) FROM codelink.scan_rollup WHERE scope IN ('abc') AND dim = 8 "
        "GROUP BY k FORMAT TSV",
        "1714562100\t4",
    ),
    ("conversion cells", CONVERSION_CELLS, None),
    (
        "conversion query: 128-bit sums",
        "SELECT kind, sumMerge(n), sumMerge(amount), sumMerge(earnings) "
        "FROM codelink.conversion_rollup WHERE scope IN ('abc') AND dim = 0 "
        "AND owner = 'alice' GROUP BY kind ORDER BY kind FORMAT TSV",
        "purchase\t2\t2000000000000\t20000000000\nsignup\t1\t0\t200",
    ),
    (
        "delays query: the histogram",
        "SELECT sumMapMerge(delays) AS delays FROM codelink.conversion_rollup "
        "WHERE scope IN ('abc') AND dim = 0 AND kind = 'signup' FORMAT TSV",
        "([70],[1])",
    ),
    ("code totals", TOTALS, None),
    (
        "totals query: every code of a time range",
        "SELECT scope AS k, kind, earnings_currency, sumMerge(n) AS n, "
        "sumMerge(earnings) AS earnings_sum FROM codelink.code_totals WHERE "
        "kind IN ('signup', 'purchase', 'refund') AND "
        "((grain = 1 AND bucket >= toDateTime(1714521600) AND bucket < toDateTime(1714608000))) "
        "GROUP BY k, kind, earnings_currency FORMAT TSV",
        "abc\tpurchase\tEUR\t2\t20000000000",
    ),
    (
        "code rows query: every code's totals, confirmed split, one owner's conversions",
        "SELECT scope AS k, kind, earnings_currency, toUInt8(bucket < toDateTime(1714568400)) "
        "AS confirmed, sumMerge(human) AS human, sumMerge(n) AS n, "
        "sumMerge(earnings) AS earnings_sum FROM codelink.code_totals "
        "WHERE kind IN ('', 'signup', 'purchase', 'refund') AND "
        "((grain = 1 AND bucket >= toDateTime(1714521600) AND bucket < toDateTime(1714608000))) "
        "AND (kind = '' OR owner = 'alice') "
        "GROUP BY k, kind, earnings_currency, confirmed ORDER BY k, kind FORMAT TSV",
        "abc\t\t\t1\t4\t0\t0\nabc\tpurchase\tEUR\t1\t0\t2\t20000000000",
    ),
    (
        "conversions (batch 1)",
        f"INSERT INTO codelink.conversions ({CONVERSION_COLUMNS}) VALUES "
        f"{CONVERSION_E1}, {CONVERSION_E2}",
        None,
    ),
    (
        "conversions (batch 1 replayed, with batch 2)",
        f"INSERT INTO codelink.conversions ({CONVERSION_COLUMNS}) VALUES "
        f"{CONVERSION_E1}, {CONVERSION_E2}, {CONVERSION_E3}",
        None,
    ),
    (
        "recent conversions: newest first, each event once",
        "SELECT event_id FROM ("
        + RECENT_CONVERSIONS.format(owner="", limit=10).replace(" FORMAT TSV", "")
        + ") FORMAT TSV",
        "e3\ne2\ne1",
    ),
    (
        "recent conversions of one owner, limited",
        RECENT_CONVERSIONS.format(owner=" AND owner = 'alice'", limit=1),
        "e2\tpurchase\t1714564800000\t1714564800500\tabc\talice\t\t\t0\tv-2\tc-2\t1000"
        "\tEUR\tcode_only\t100\tEUR",
    ),
]


# The Grafana dashboard (dashboards/grafana/dashboards/codelink.json): every
# panel's SQL and the `code` variable's query, with the plugin's macros and the
# variable replaced as analytics/tests/grafana.rs does (which runs them on 18.16
# over rows the sink wrote): $__fromTime / $__toTime -> toDateTime(<unix s>),
# $__interval_s -> seconds, ${code:singlequote} -> 'a','b' or, for All, the
# custom all value '*'. Run in their own database over cells written the way
# the writer writes them (through the `_input` tables), raw conversions twice.
GRAFANA = pathlib.Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "dashboards"
GRAFANA_DB = "grafana"
G_T = 1714564800  # 2024-05-01 12:00:00 UTC
G_DAY = 86400
# (code, unix seconds, visitor hash, bot reason)
G_SCANS = [
    ("abc", G_T - 2 * G_DAY + 600, 6, ""),  # before `from`, in its hour: counted
    ("abc", G_T - G_DAY - 3000, 7, ""),  # a whole day inside the range
    ("abc", G_T + 600, 1, ""),
    ("abc", G_T + 700, 2, ""),
    ("abc", G_T + 800, 3, "head"),
    ("xyz", G_T + 900, 1, ""),  # visitor 1 again, on another code
    ("xyz", G_T + 1000, 4, "rate"),
    ("abc", G_T - 3 * G_DAY, 5, ""),  # before the range
    ("abc", G_T + 7260, 8, ""),  # after the hour holding `to`
]
# (event id, kind, unix seconds, code, owner, earnings, earnings currency)
G_CONVERSIONS = [
    ("g1", "signup", G_T + 660, "abc", "alice", 200, "EUR"),
    ("g2", "purchase", G_T + 1200, "abc", "alice", 1000, "EUR"),
    ("g3", "refund", G_T + 1300, "abc", "alice", -100, "EUR"),
    ("g4", "signup", G_T + 1400, "xyz", "bob", 150, "USD"),
    ("g5", "signup", G_T + 1500, "", "", 0, ""),  # credited to no code
]
G_FROM = G_T - 2 * G_DAY + 1200  # 2024-04-29 12:20
G_TO = G_T + 4800  # 2024-05-01 13:20


def grafana_inserts():
    """The rollup inputs and raw rows of G_SCANS and G_CONVERSIONS."""
    grains = ((0, 900), (1, 3600), (2, G_DAY))
    scan_cells, conversion_cells, totals = [], [], []
    for code, ts, visitor, bot in G_SCANS:
        human = int(bot == "")
        for scope in (code, "*"):
            for grain, secs in grains:
                for dim, value in ((0, ""), (3, bot)) if grain else ((0, ""),):
                    scan_cells.append(
                        f"('{scope}', {grain}, {dim}, {ts - ts % secs}, '{value}', {human}, "
                        f"{1 - human}, 0, {human}, [{visitor if human else ''}])"
                    )
        for grain, secs in grains:
            if human:
                totals.append(f"({grain}, {ts - ts % secs}, '{code}', '', '', '', 1, 0, 0)")
    for _, kind, ts, code, owner, earnings, cur in G_CONVERSIONS:
        scopes = [("*", "")] + ([(code, owner)] if code else [])
        for scope, who in scopes:
            for grain, secs in grains:
                conversion_cells.append(
                    f"('{scope}', {grain}, 0, {ts - ts % secs}, '', '{who}', '{kind}', '', "
                    f"'{cur}', 1, 0, {earnings}, [], [])"
                )
        if code:
            for grain, secs in grains:
                totals.append(
                    f"({grain}, {ts - ts % secs}, '{code}', '{owner}', '{kind}', '{cur}', 0, 1, "
                    f"{earnings})"
                )
    db = f"`{GRAFANA_DB}`"
    raw = ", ".join(
        f"('{e}', '{kind}', {ts}, {ts * 1000}, {ts * 1000}, '{code}', '{owner}', '', '', 0, '', "
        f"'c-{e}', 0, '', 'code_only', {earnings}, '{cur}', 1)"
        for e, kind, ts, code, owner, earnings, cur in G_CONVERSIONS
    )
    raw = (
        f"INSERT INTO {db}.conversions (event_id, kind, occurred, occurred_ms, received_ms, code, "
        "owner, channel, scan_id, scan_ms, visitor_id, customer_id, amount, currency, rule, "
        f"earnings, earnings_currency, rolled) VALUES {raw}"
    )
    return [
        f"INSERT INTO {db}.scan_rollup_input (scope, grain, dim, bucket, value, n_human, n_bot, "
        f"n_qr, n_link, visitor_hashes) VALUES {', '.join(scan_cells)}",
        f"INSERT INTO {db}.conversion_rollup_input (scope, grain, dim, bucket, value, owner, kind, "
        "currency, earnings_currency, n_conversions, amount_sum, earnings_sum, delay_bins, "
        f"delay_counts) VALUES {', '.join(conversion_cells)}",
        f"INSERT INTO {db}.code_totals_input (grain, bucket, scope, owner, kind, "
        "earnings_currency, n_human, n_conversions, earnings_sum) VALUES "
        f"{', '.join(totals)}",
        raw,
        raw,  # a replay: FINAL counts each conversion once
    ]


def grafana_substitute(sql, frm, to, interval, codes):
    """The macros and the variable; any other `$` is an error."""
    values = {
        "$__fromTime": f"toDateTime({frm})",
        "$__toTime": f"toDateTime({to})",
        "$__interval_s": str(interval),
        "${code:singlequote}": "'*'" if codes is None else ",".join(f"'{c}'" for c in codes),
    }
    pattern = "|".join(re.escape(k) + r"(?![A-Za-z0-9_])" for k in values)
    out = re.sub(pattern, lambda m: values[m.group(0)], sql)
    if "$" in out:
        raise ValueError(f"no substitution for {out[out.index('$'):][:24]!r}")
    return out


def local(ts):
    """A DateTime as TSV prints it (chDB's time zone is the process's)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def grafana_expected():
    """Per view (codes, interval): the TSV each panel and the variable answer."""
    h = 3600
    ranged = {
        "Scan to use": "5\t4\t3\t1",
        "Earnings by currency": "EUR\t1\t1\t1\t0\t1100\t1100\nUSD\t1\t0\t0\t0\t150\t150",
        "Bot scans by reason": "head\t1\nrate\t1",
        "Top codes": "abc\t4\t1\t1\t1\t0.25\nxyz\t1\t1\t0\t0\t1",
        "variable code": "abc\nxyz",
    }
    return {
        ("All", 3600): {
            **ranged,
            "Scans over time": f"{local(G_T - 2 * G_DAY)}\t1\t0\n{local(G_T - G_DAY - h)}\t1\t0\n"
            f"{local(G_T)}\t3\t2",
            "Conversions over time": f"{local(G_T)}\t3\t1\t1",
            "Bot share over time": f"{local(G_T - 2 * G_DAY)}\t0\n{local(G_T - G_DAY - h)}\t0\n"
            f"{local(G_T)}\t0.4",
        },
        # Quarter-hour cells: the first bucket starts at 12:15, after the
        # 12:10 scan's cell.
        ("All", 900): {
            **ranged,
            "Scans over time": f"{local(G_T - G_DAY - h)}\t1\t0\n{local(G_T)}\t2\t1\n"
            f"{local(G_T + 900)}\t1\t1",
            "Conversions over time": f"{local(G_T)}\t1\t0\t0\n{local(G_T + 900)}\t2\t1\t1",
            "Bot share over time": f"{local(G_T - G_DAY - h)}\t0\n{local(G_T)}\t0.3333\n"
            f"{local(G_T + 900)}\t0.5",
        },
        (("xyz",), G_DAY): {
            "Scan to use": "1\t1\t1\t0",
            "Earnings by currency": "USD\t1\t0\t0\t0\t150\t150",
            "Bot scans by reason": "rate\t1",
            "Top codes": "xyz\t1\t1\t0\t0\t1",
            "variable code": "abc\nxyz",
            "Scans over time": f"{local(G_T - h * 12)}\t1\t1",
            "Conversions over time": f"{local(G_T - h * 12)}\t1\t0\t0",
            "Bot share over time": f"{local(G_T - h * 12)}\t0.5",
        },
    }


def grafana_queries():
    """(name, SQL) of every panel and query variable of every dashboard."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        dash = json.loads(path.read_text())
        stack = list(dash.get("panels", []))
        while stack:
            p = stack.pop(0)
            stack.extend(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["rawSql"]))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]
                out.append((f"variable {v['name']}", q["rawSql"] if isinstance(q, dict) else q))
    return out


def check_grafana(s, run, ddl):
    """Runs the dashboard's queries in GRAFANA_DB; returns the failures `run` does not count."""
    db = f"`{GRAFANA_DB}`"
    for i, sql in enumerate(ddl, 1):
        run(s, f"grafana: migration {i}", sql.replace("{db}", db))
    for i, sql in enumerate(grafana_inserts(), 1):
        run(s, f"grafana: fixture insert {i}", sql)
    run(s, f"USE {GRAFANA_DB}", f"USE {GRAFANA_DB}")
    queries = grafana_queries()
    names = {name for name, _ in queries}
    failures = 0
    for (codes, interval), expected in grafana_expected().items():
        if names != set(expected):
            failures += 1
            print(
                f"FAIL  grafana ({codes}, {interval} s): panels without a check "
                f"{sorted(names - set(expected))}, checks without a panel "
                f"{sorted(set(expected) - names)}"
            )
        for name, sql in queries:
            try:
                sql = grafana_substitute(sql, G_FROM, G_TO, interval, None if codes == "All" else codes)
            except ValueError as e:
                failures += 1
                print(f"FAIL  grafana: {name}: {e}")
                continue
            run(s, f"grafana: {name} ({codes}, {interval} s)", sql + "\nFORMAT TSV", expected.get(name))
    return failures


def main():
    try:
        import chdb
        from chdb import session
    except ImportError as e:
        sys.exit(f"cannot import chdb ({e}): pip install chdb-core")

    failures = 0

    def run(s, label, sql, expected=None):
        nonlocal failures
        try:
            out = str(s.query(sql)).strip()
        except Exception as e:  # chdb raises ChdbError with the server's message
            failures += 1
            print(f"FAIL  {label}\n      {sql}\n      {e}")
            return
        if expected is not None and out != expected:
            failures += 1
            print(f"FAIL  {label}: got {out!r}, want {expected!r}\n      {sql}")
            return
        print(f"PASS  {label}" + (f": {out!r}" if out else ""))

    ddl = migrations()
    with tempfile.TemporaryDirectory(prefix="chdb-") as tmp:
        s = session.Session(tmp)  # on disk, so the database lives across statements
        try:
            version = str(s.query("SELECT version()")).strip().strip('"')
            print(f"chdb {chdb.__version__}, ClickHouse {version}")
            print(f"{len(ddl)} migrations from {RUST_FILE.name}")
            # Twice: the sink runs them at start-up and again after an outage.
            for rnd in (1, 2):
                for i, sql in enumerate(ddl, 1):
                    first = sql.strip().splitlines()[0]
                    run(s, f"migration {i} (run {rnd}): {first}", sql.replace("{db}", DB))
            for label, sql, expected in CHECKS:
                run(s, label, sql, expected)
            run(s, "USE codelink", "USE codelink")
            for path in sorted(DASHBOARDS.glob("*.sql")):
                run(s, f"dashboards/clickhouse/{path.name}", path.read_text())
            failures += check_grafana(s, run, ddl)
            # The cluster's DDL: chDB has no cluster and no ZooKeeper, so each
            # statement is parsed (EXPLAIN AST), and each Distributed table is
            # created too, where the only error allowed is the unknown cluster.
            run(s, "CREATE DATABASE codelink_cluster", "CREATE DATABASE IF NOT EXISTS codelink_cluster")
            for label, sql in cluster_sql(ddl):
                try:
                    ast = str(s.query(f"EXPLAIN AST {sql}"))
                    assert "Storage definition" in ast, ast
                    print(f"PASS  parses: {label}")
                except Exception as e:
                    failures += 1
                    print(f"FAIL  parses: {label}\n      {sql}\n      {e}")
                if label.startswith("distributed"):
                    try:
                        s.query(sql)
                        print(f"PASS  {label} (created)")
                    except Exception as e:
                        if "CLUSTER_DOESNT_EXIST" in str(e):
                            print(f"PASS  {label}: all but the cluster accepted")
                        else:
                            failures += 1
                            print(f"FAIL  {label}\n      {sql}\n      {e}")
            # ON CLUSTER (with ZooKeeper): parsed only, chDB has no cluster.
            for label, sql in on_cluster_sql(ddl):
                try:
                    s.query(f"EXPLAIN AST {sql}")
                    assert "ON CLUSTER `codelink_test`" in sql, sql
                    print(f"PASS  parses: {label}")
                except Exception as e:
                    failures += 1
                    print(f"FAIL  parses: {label}\n      {sql}\n      {e}")
            run(
                s,
                "each node's schema, read before ON CLUSTER DDL",
                "SELECT database, table, name FROM system.columns "
                "WHERE database IN ('codelink', 'codelink_cluster')",
            )
            run(
                s,
                "the cluster's discovery queries",
                "SELECT shard_num, shard_weight, host_name FROM system.clusters "
                "WHERE cluster = 'codelink_test' ORDER BY shard_num, replica_num",
            )
            run(
                s,
                "ZooKeeper detection",
                "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'zookeeper'",
            )
            # The value cluster.rs's unit test holds the gateway's shard hash to.
            run(s, "sipHash64 of a code", "SELECT sipHash64('alice10')", "6450758586718566183")
        finally:
            s.close()

    print("all passed" if not failures else f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check that analytics' ClickHouse DDL, and the analysts' queries in
dashboards/clickhouse/, parse and run on a current ClickHouse.

The tests run the migrations on Debian's ClickHouse 18.16; this script runs the
same SQL on the ClickHouse engine embedded in chDB (`pip install chdb-core`),
with no server. It reads `MIGRATIONS` straight out of the Rust source, so it
checks whatever the sink really runs.

Exit status 0 when every statement passes, 1 otherwise.
"""

import pathlib
import re
import sys
import tempfile

RUST_FILE = (
    pathlib.Path(__file__).resolve().parent.parent / "src" / "sink" / "clickhouse" / "mod.rs"
)
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
    "('abc', 1, 8, 1714564800, 'DE', 1, 0, 0, 1, [13, 14])"
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
        "WHERE scope IN ('abc') AND dim = 8 AND ((grain = 1 AND bucket >= toDateTime(1714521600) "
        "AND bucket < toDateTime(1714608000))) GROUP BY k FORMAT TSV",
        "DE\t4\t1\t1\t3\t4\t4",
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
]


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
        finally:
            s.close()

    print("all passed" if not failures else f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

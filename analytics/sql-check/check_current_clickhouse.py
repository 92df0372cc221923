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

RUST_FILE = pathlib.Path(__file__).resolve().parent.parent / "src" / "sink" / "clickhouse.rs"
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
    "browser, in_app, referrer_host, country, source, is_bot, bot_reason, is_unique"
)
# The same scan twice (as when the spool replays it): same (code, ts, scan_id).
ROW = (
    "('s-1', 1714564800, 1714564800123, 'abc', 'yt', 'v-1', '203.0.113.0', 'Mozilla/5.0', "
    "'mobile', 'iOS', 'Safari', 'instagram', 'l.instagram.com', 'DE', 'qr', 0, '', 1)"
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

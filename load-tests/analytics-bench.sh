#!/usr/bin/env bash
# Analytics queries at scale: loads 10 million scans and 200 thousand
# conversions into a private ClickHouse 18.16 and measures every analytics
# query (summary, timeseries, breakdowns, funnel, top) for the hot code, a
# median code and all codes, right after the load and after OPTIMIZE FINAL.
# A benchmark, not a test. 127.0.0.1 only, bounded. See load-tests/README.md.
#
# Arguments go to `analytics-bench`, e.g. for a smaller run:
#   load-tests/analytics-bench.sh --scans 1000000 --conversions 20000
# Writes the report to load-tests/results/analytics-bench.md and prints it.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'analytics-bench.sh: %s\n' "$*" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# The bench skips what is left after --max-seconds (default 780) and gives up
# 60 s later; `timeout` is the last resort on top of that.
MAX_SECONDS=780
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ "${args[$i]}" == --max-seconds && $((i + 1)) -lt ${#args[@]} ]]; then
        MAX_SECONDS="${args[$((i + 1))]}"
    fi
done
[[ "$MAX_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "--max-seconds must be a positive integer"

# --- tools -------------------------------------------------------------------
clickhouse_bin() {
    local p
    for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [[ -x "$p" ]] && { echo "$p"; return 0; }
    done
    command -v clickhouse-server 2>/dev/null
}

if ! clickhouse_bin >/dev/null; then
    log "installing clickhouse-server with apt-get"
    if [[ "$(id -u)" -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "clickhouse-server missing and neither root nor sudo is available to install it"
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq clickhouse-server >/dev/null
fi
clickhouse_bin >/dev/null || die "clickhouse-server not found after installing it"
for tool in cargo timeout pgrep; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

log "building (release): load-tests"
cargo build --release --locked -p load-tests
BENCH_BIN="$TARGET_DIR/release/analytics-bench"
[[ -x "$BENCH_BIN" ]] || die "$BENCH_BIN not found"

# --- run ---------------------------------------------------------------------
mkdir -p "$ROOT/load-tests/results"
OUT="$ROOT/load-tests/results/analytics-bench.md"
TMP_OUT="$(mktemp -t codelink-analytics-bench.XXXXXX)"
RUN_PID=""

alive() {
    local stat
    stat="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "${stat%% *}" != Z ]]
}

# The bench kills its clickhouse-server on SIGTERM/SIGINT and on every error.
# Should it have to be killed, its clickhouse-server (a child) is killed by pid.
cleanup() {
    local rc=$? i bench kids=""
    trap - EXIT INT TERM
    if [[ -n "$RUN_PID" ]] && alive "$RUN_PID"; then
        bench="$(pgrep -P "$RUN_PID" 2>/dev/null | head -n1 || true)"
        [[ -n "$bench" ]] && kids="$(pgrep -P "$bench" 2>/dev/null | tr '\n' ' ' || true)"
        kill -TERM "$RUN_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$RUN_PID" || break
            sleep 0.1
        done
        if alive "$RUN_PID"; then
            log "analytics-bench ignored SIGTERM for 10s: killing it"
            [[ -n "$bench" ]] && kill -KILL "$bench" 2>/dev/null || true
            kill -KILL "$RUN_PID" 2>/dev/null || true
        fi
        for k in $kids; do
            if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
        done
        wait "$RUN_PID" 2>/dev/null || true
    fi
    rm -f "$TMP_OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "running analytics-bench ${*:-(defaults: 10M scans, 200k conversions)}"
timeout -s TERM -k 20 $((MAX_SECONDS + 90)) \
    "$BENCH_BIN" --out "$TMP_OUT" "$@" &
RUN_PID=$!
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=""
((rc == 0)) || die "analytics-bench failed (exit $rc)"
[[ -s "$TMP_OUT" ]] || die "analytics-bench wrote no report"
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
{
    cat "$TMP_OUT"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); run by \`load-tests/analytics-bench.sh${*:+ $*}\`"
} >"$OUT"
log "report written to load-tests/results/analytics-bench.md"

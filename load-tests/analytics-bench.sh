#!/usr/bin/env bash
# Analytics answers at scale, from the rollups: loads a quarter of scans and
# conversions through the project's own writers and measures every analytics
# endpoint for the hot code, a median code and all codes, over the last 30
# days and the whole 90, right after the load.
#
#   --backend clickhouse (default): 100M scans, 1M conversions, 10k codes into
#       a private ClickHouse 18.16, queried in process through the query layer;
#   --backend embedded: 10M scans, 100k conversions, 1000 codes into a redb
#       data dir, then the real gateway (`codelink serve`) on it, queried over
#       HTTP, plus the gateway's RSS under 8 concurrent analytics queries.
#
# A benchmark, not a test. 127.0.0.1 only, bounded. See load-tests/README.md.
# Arguments go to `analytics-bench`, e.g. for a smaller run:
#   load-tests/analytics-bench.sh --backend embedded --scans 1000000 --conversions 10000
# Writes the report to load-tests/results/analytics-bench-{clickhouse,embedded}.md
# and prints it.
set -euo pipefail
# No load balancer polls /readyz here: the gateway stops at once on SIGTERM.
export CODELINK_DRAIN_SECS=0

# Read whole before running (a long run must not see edits to this file).
{

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'analytics-bench.sh: %s\n' "$*" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# The bench skips what is left after --max-seconds (default 3600 for
# ClickHouse, 1800 embedded) and gives up 60 s (+ --linger-secs) later;
# `timeout` is the last resort on top of that.
BACKEND=clickhouse
MAX_SECONDS=""
LINGER=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    next="${args[$((i + 1))]:-}"
    case "${args[$i]}" in
        --backend) BACKEND="$next" ;;
        --max-seconds) MAX_SECONDS="$next" ;;
        --linger-secs) LINGER="$next" ;;
    esac
done
case "$BACKEND" in
    clickhouse) : "${MAX_SECONDS:=3600}" ;;
    embedded) : "${MAX_SECONDS:=1800}" ;;
    *) die "--backend must be clickhouse or embedded" ;;
esac
[[ "$MAX_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "--max-seconds must be a positive integer"
[[ "$LINGER" =~ ^[0-9]+$ ]] || die "--linger-secs must be a non-negative integer"

# --- tools -------------------------------------------------------------------
clickhouse_bin() {
    local p
    for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [[ -x "$p" ]] && { echo "$p"; return 0; }
    done
    command -v clickhouse-server 2>/dev/null
}

if [[ "$BACKEND" == clickhouse ]] && ! clickhouse_bin >/dev/null; then
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
if [[ "$BACKEND" == clickhouse ]]; then
    clickhouse_bin >/dev/null || die "clickhouse-server not found after installing it"
fi
for tool in cargo timeout pgrep df; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

# The bench writes the gateway with the same `codelink-analytics` it links:
# both come from one build.
log "building (release): gateway, load-tests"
cargo build --release --locked -p gateway -p load-tests
# What was built: HEAD and whether the working tree differed from it then.
BUILT_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
BUILT_FROM="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || BUILT_FROM+=" with uncommitted changes"
BENCH_BIN="$TARGET_DIR/release/analytics-bench"
GATEWAY_BIN="$TARGET_DIR/release/codelink"
[[ -x "$BENCH_BIN" ]] || die "$BENCH_BIN not found"
[[ -x "$GATEWAY_BIN" ]] || die "$GATEWAY_BIN not found"

log "disk before the run: $(df -Ph "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $4 " free on " $6 }')"

# --- run ---------------------------------------------------------------------
mkdir -p "$ROOT/load-tests/results"
OUT="$ROOT/load-tests/results/analytics-bench-$BACKEND.md"
TMP_OUT="$(mktemp -t codelink-analytics-bench.XXXXXX)"
RUN_PID=""

alive() {
    local stat
    stat="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "${stat%% *}" != Z ]]
}

# Every process below `$1`, children first in the list's order of discovery.
descendants() {
    local kid
    for kid in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$kid"
        descendants "$kid"
    done
}

# The bench stops its clickhouse-server and its gateway on SIGTERM/SIGINT and
# on every error. Should it have to be killed, what it started (clickhouse-
# server; `timeout` and the gateway under it) is killed by pid.
cleanup() {
    local rc=$? i k kids=""
    trap - EXIT INT TERM
    if [[ -n "$RUN_PID" ]] && alive "$RUN_PID"; then
        kids="$(descendants "$RUN_PID" | tr '\n' ' ')"
        kill -TERM "$RUN_PID" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            alive "$RUN_PID" || break
            sleep 0.1
        done
        if alive "$RUN_PID"; then
            log "analytics-bench ignored SIGTERM for 15s: killing it"
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

log "running analytics-bench ${*:-(defaults: --backend clickhouse)}"
timeout -s TERM -k 20 $((MAX_SECONDS + LINGER + 90)) \
    "$BENCH_BIN" --gateway-bin "$GATEWAY_BIN" --out "$TMP_OUT" "$@" &
RUN_PID=$!
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=""
# 1 with a report: some answer did not match what was written (still reported).
if { ((rc != 0)) && ((rc != 1)); } || [[ ! -s "$TMP_OUT" ]]; then
    die "analytics-bench failed (exit $rc)"
fi
{
    cat "$TMP_OUT"
    echo "- built $BUILT_AT from $BUILT_FROM; report $(date -u +%Y-%m-%dT%H:%M:%SZ); run by \`load-tests/analytics-bench.sh${*:+ $*}\`"
} >"$OUT"
log "report written to ${OUT#"$ROOT"/}"
((rc == 0)) || die "some answers did not match what was written (see the report)"
exit
}

#!/usr/bin/env bash
# Scan recording under load: N scans (5 codes, 4 channels, QR and link, human
# and bot user agents) at full speed against the gateway with Redis and
# ClickHouse, then a check that the Redis counters and the ClickHouse rows both
# hold exactly what got a 302, by code and class; plus req/s and p99 against the
# bare hyper 302 baseline, measured with the same generator in the same run.
# 127.0.0.1 only, every process bounded. See load-tests/README.md.
#
# Knobs (environment): REQUESTS (200000), CONNECTIONS (64), THREADS (1, the
# generator's runtime threads), MAX_SECONDS (120, per generator run),
# SETTLE_SECONDS (30, wait for the counters after the gateway run).
# Writes the report to load-tests/results/scan-load.md and prints it. Exits 1
# when the accounting does not match (the req/s ratio is reported, not enforced).
set -euo pipefail
# No load balancer polls /readyz here: the gateway stops at once on SIGTERM.
export CODELINK_DRAIN_SECS=0

REQUESTS="${REQUESTS:-200000}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
MAX_SECONDS="${MAX_SECONDS:-120}"
SETTLE_SECONDS="${SETTLE_SECONDS:-30}"

TARGET_RATIO=0.7
ADMIN_KEY="load-admin-key-0123456789"
CH_DB="loadtest"
CODES=(load1 load2 load3 load4 load5)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scan-load.sh: %s\n' "$*" >&2; exit 2; }

for knob in REQUESTS CONNECTIONS THREADS MAX_SECONDS SETTLE_SECONDS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
done

# Every server started here also stops by itself (under `timeout`, the baseline
# with --max-seconds), even if this script is killed with SIGKILL.
SERVER_MAX_S=$((2 * MAX_SECONDS + SETTLE_SECONDS + 300))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WALL_START=$SECONDS

# --- tools -------------------------------------------------------------------
clickhouse_bin() {
    local p
    for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [[ -x "$p" ]] && { echo "$p"; return 0; }
    done
    command -v clickhouse-server 2>/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
clickhouse_bin >/dev/null || missing+=(clickhouse-server)
if ((${#missing[@]})); then
    log "installing with apt-get: ${missing[*]}"
    if [[ "$(id -u)" -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "${missing[*]} missing and neither root nor sudo is available to install them"
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
CLICKHOUSE_BIN="$(clickhouse_bin)" || die "clickhouse-server not found after installing it"
for tool in curl python3 timeout pgrep cargo redis-server; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

log "building (release): gateway, load-tests"
BUILD_START=$SECONDS
cargo build --release --locked -p gateway -p load-tests
BUILD_S=$((SECONDS - BUILD_START))
GATEWAY_BIN="$TARGET_DIR/release/codelink"
BASELINE_BIN="$TARGET_DIR/release/baseline"
LOAD_BIN="$TARGET_DIR/release/scan-load"
for b in "$GATEWAY_BIN" "$BASELINE_BIN" "$LOAD_BIN"; do
    [[ -x "$b" ]] || die "$b not found"
done

# --- process bookkeeping -----------------------------------------------------
TMP="$(mktemp -d -t codelink-scan-load.XXXXXX)"
RUN_NAME=scan-load
PIN=()
# Bookkeeping, redis-server, clickhouse-server and `ch`: see the file.
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"

# --- gateway -----------------------------------------------------------------
GW_PORT="$(free_port)"
GW="http://127.0.0.1:$GW_PORT"
log "starting the gateway on $GW (redis :$REDIS_PORT, clickhouse :$CH_HTTP_PORT, db $CH_DB)"
CODELINK_LOG=warn timeout -s TERM "$SERVER_MAX_S" "$GATEWAY_BIN" serve \
    --listen "127.0.0.1:$GW_PORT" --data-dir "$TMP/data" --admin-key "$ADMIN_KEY" \
    --redis-url "redis://127.0.0.1:$REDIS_PORT/" \
    --clickhouse-url "$CH" --clickhouse-database "$CH_DB" \
    --client-ip-header x-forwarded-for \
    --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 \
    --repeat-window-secs 0 \
    >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_for gateway "$GW_PID" "$GW/healthz" "$TMP/gateway.log"
expect_status 200 "$GW/readyz"

AUTH=(-H "Authorization: Bearer $ADMIN_KEY")
for code in "${CODES[@]}"; do
    expect_status 201 "$GW/api/v1/codes" -X POST "${AUTH[@]}" -H 'Content-Type: application/json' \
        --data "{\"code\":\"$code\",\"destination\":\"https://shop.example/p\",\"owner\":\"loader\",\"channels\":{\"yt\":{\"utm_source\":\"youtube\"},\"ig\":{\"utm_source\":\"instagram\"},\"bio\":{\"utm_source\":\"bio\"}}}"
done
log "created ${CODES[*]} (channels yt, ig, bio)"
# No request to a load code before the run: every one would be a scan. Check
# instead that the counters start at zero and the scans table exists.
for code in "${CODES[@]}"; do
    expect_status 200 "$GW/api/v1/codes/$code/stats" "${AUTH[@]}"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s.get("total")==0 else 1)' "$TMP/body" ||
        die "$code does not start at zero: $(cat "$TMP/body")"
done
[[ "$(ch "EXISTS TABLE $CH_DB.scans")" == 1 ]] || die "the gateway did not create $CH_DB.scans$(show_log "$TMP/gateway.log")"

LOAD=("$LOAD_BIN" --requests "$REQUESTS" --connections "$CONNECTIONS" --threads "$THREADS" --max-seconds "$MAX_SECONDS")

# run_load KEY URL: the generator against URL, JSON to $TMP/KEY.json.
run_load() {
    local key="$1" url="$2" rc=0
    log "$key: $REQUESTS requests over $CONNECTIONS connections against $url"
    timeout -s TERM $((MAX_SECONDS + 30)) "${LOAD[@]}" --target "$url" >"$TMP/$key.json" 2>"$TMP/$key.err" || rc=$?
    cat "$TMP/$key.err" >&2
    [[ -s "$TMP/$key.json" ]] || die "$key: scan-load produced no report (exit $rc)"
    ((rc == 0)) || log "$key: not every request was answered (exit $rc); see its status counts"
}

# --- baseline ----------------------------------------------------------------
BL_PORT="$(free_port)"
BL="http://127.0.0.1:$BL_PORT"
log "starting the baseline (redirect) on $BL"
"$BASELINE_BIN" --listen "127.0.0.1:$BL_PORT" --mode redirect \
    --max-seconds $((MAX_SECONDS + 60)) >"$TMP/baseline.log" 2>&1 &
BL_PID=$!
PIDS+=("$BL_PID")
wait_for baseline "$BL_PID" "$BL/" "$TMP/baseline.log"

run_load baseline "$BL"
stop_pid "$BL_PID"
run_load gateway "$GW"
alive "$GW_PID" || die "the gateway exited during the run$(show_log "$TMP/gateway.log")"

# --- settle and compare ------------------------------------------------------
CHECK=(python3 "$ROOT/load-tests/lib/accounting.py")

# snapshot: the gateway's counters and ClickHouse's rows, as accounting.py reads them.
snapshot() {
    local code
    for code in "${CODES[@]}"; do
        curl -s --max-time 5 "${AUTH[@]}" -o "$TMP/stats-$code.json" "$GW/api/v1/codes/$code/stats" || true
    done
    ch "SELECT code, count(), uniqExact(scan_id), sum(is_bot), countIf(source='qr') FROM $CH_DB.scans FINAL GROUP BY code ORDER BY code FORMAT TSV" \
        >"$TMP/ch-by-code.tsv" || true
    ch "SELECT code, channel, is_bot, count() FROM $CH_DB.scans FINAL GROUP BY code, channel, is_bot ORDER BY code, channel, is_bot FORMAT TSV" \
        >"$TMP/ch-by-channel.tsv" || true
}

log "waiting (up to ${SETTLE_SECONDS}s) for Redis and ClickHouse to hold every scan"
SETTLE_START=$SECONDS
SETTLE_END=$((SECONDS + SETTLE_SECONDS))
SETTLED=no
while :; do
    snapshot
    if "${CHECK[@]}" "$TMP" quiet; then
        SETTLED=yes
        break
    fi
    ((SECONDS < SETTLE_END)) || break
    sleep 0.5
done
SETTLE_S=$((SECONDS - SETTLE_START))
if [[ "$SETTLED" == yes ]]; then
    log "settled after ~${SETTLE_S}s"
else
    log "still different after ${SETTLE_SECONDS}s: comparing what is there"
fi
curl -s --max-time 5 -o "$TMP/metrics.txt" "$GW/metrics" || true
ACCOUNTING_RC=0
"${CHECK[@]}" "$TMP" report >/dev/null || ACCOUNTING_RC=$?
ch "SELECT count() FROM $CH_DB.scans" >"$TMP/ch-raw-rows.txt" 2>/dev/null || echo "n/a" >"$TMP/ch-raw-rows.txt"
ch "SELECT bot_reason, count() FROM $CH_DB.scans FINAL WHERE is_bot = 1 GROUP BY bot_reason ORDER BY bot_reason FORMAT TSV" \
    >"$TMP/ch-reasons.tsv" 2>/dev/null || true

# --- report ------------------------------------------------------------------
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/$1.json" "$2"; }
BL_RPS="$(jget baseline rps)"
GW_RPS="$(jget gateway rps)"
RATIO="$(awk -v g="$GW_RPS" -v b="$BL_RPS" 'BEGIN { if (b > 0) printf "%.2f", g / b; else print "n/a" }')"
RATIO_MET="$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r + 0 >= t) ? "met" : "NOT met" }')"
us_ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
METRIC_LINES="$(grep -E '^codelink_scans_(queued|dropped|lost|written)_total' "$TMP/metrics.txt" 2>/dev/null || echo '(no /metrics)')"
WALL_S=$((SECONDS - WALL_START))
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
if ((ACCOUNTING_RC == 0)); then VERDICT="PASS"; else VERDICT="FAIL"; fi
{
    echo "# codelink scan recording under load"
    echo
    echo "$REQUESTS scans at full speed (5 codes × none/yt/ig/bio, every 4th \`?qr=1\`, 20 % bot user agents),"
    echo "gateway with Redis counters and ClickHouse rows on, against the bare hyper 302 baseline, same generator, same run."
    echo
    echo "| server | req/s | p50 | p99 | p99.9 | seconds | statuses |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for key in baseline gateway; do
        echo "| $key | $(jget "$key" rps) | $(us_ms "$(jget "$key" p50_us)") | $(us_ms "$(jget "$key" p99_us)") | $(us_ms "$(jget "$key" p999_us)") | $(jget "$key" seconds) | \`$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["status_counts"]))' "$TMP/$key.json")\` |"
    done
    echo
    echo "**Ratio gateway / baseline: $RATIO** (target ≥ $TARGET_RATIO with full recording on: $RATIO_MET)."
    echo
    echo "## Accounting: $VERDICT"
    echo
    if [[ "$SETTLED" == yes ]]; then
        echo "Redis and ClickHouse matched ~${SETTLE_S}s after the last response."
    else
        echo "Not matching after waiting ${SETTLE_SECONDS}s; the figures below are what was there then."
    fi
    echo
    echo '```'
    cat "$TMP/checks.txt"
    echo '```'
    echo
    cat "$TMP/accounting.md"
    echo
    echo "ClickHouse rows before FINAL: $(cat "$TMP/ch-raw-rows.txt"); bot reasons (ClickHouse): $(awk -F'\t' 'NF == 2 {printf "%s`%s` %s", (n++ ? ", " : ""), $1, $2}' "$TMP/ch-reasons.tsv" 2>/dev/null)"
    echo
    echo "Gateway /metrics after settling:"
    echo
    echo '```'
    echo "$METRIC_LINES"
    echo '```'
    echo
    echo "## Set-up"
    echo
    echo "- generator: \`scan-load --requests $REQUESTS --connections $CONNECTIONS --threads $THREADS\` (closed loop, HTTP/1.1 keep-alive, hyper), baseline first, then the gateway"
    echo "- gateway: \`codelink serve --redis-url … --clickhouse-url … --clickhouse-database $CH_DB --client-ip-header x-forwarded-for --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 --repeat-window-secs 0\` (one simulated visitor's requests come milliseconds apart; the accounting counts each), \`CODELINK_LOG=warn\`, default flush (1000 ms)"
    echo "- redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (persistence off), clickhouse-server $CH_VERSION, all on 127.0.0.1"
    echo "- nproc: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown CPU)); generator, gateway, Redis and ClickHouse share these cores"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); wall time ${WALL_S}s (build ${BUILD_S}s)"
} >"$TMP/report.md"

mkdir -p "$ROOT/load-tests/results"
cp "$TMP/report.md" "$ROOT/load-tests/results/scan-load.md"

echo >&2
cat "$TMP/checks.txt"
echo
echo "baseline: $BL_RPS req/s, p99 $(us_ms "$(jget baseline p99_us)")"
echo "gateway:  $GW_RPS req/s, p99 $(us_ms "$(jget gateway p99_us)")"
echo "ratio:    $RATIO (target >= $TARGET_RATIO: $RATIO_MET)"
echo "$METRIC_LINES"
echo "accounting: $VERDICT; wall time ${WALL_S}s"
log "report written to load-tests/results/scan-load.md"
exit "$((ACCOUNTING_RC == 0 ? 0 : 1))"

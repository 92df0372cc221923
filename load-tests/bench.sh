#!/usr/bin/env bash
# Redirect and QR benchmark: the gateway against a bare hyper server (the
# `baseline` bin of this crate), measured with the same wrk settings in the same
# run, on 127.0.0.1 only. See load-tests/README.md.
#
# Each scenario is measured RUNS times, gateway and baseline taking turns (the
# order flips every run, so a drift of the machine's speed favours neither);
# the report gives every run and the min / median / max of each figure. After
# a gateway run the script waits until the recorder has written every scan it
# queued, so the recording of one run never competes with the next: the CPU
# a request cost (all of the process's threads, from /proc/PID/stat, until
# the drain) includes its recording.
#
# Knobs (environment): THREADS (1), CONNECTIONS (64), DURATION (10s), WARMUP (2s),
# RUNS (5), ROUTES (a JSON file of routing rules set on the benchmarked code;
# none), GATEWAY_BIN (a gateway binary to measure instead of this tree's build),
# BACKENDS (embedded: the default store; redis+clickhouse: a private
# redis-server and clickhouse-server, started here, record the scans).
# Writes the report to load-tests/results/latest.md and prints it.
set -euo pipefail
# No load balancer polls /readyz here: the gateway stops at once on SIGTERM.
export CODELINK_DRAIN_SECS=0

THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
RUNS="${RUNS:-5}"
BACKENDS="${BACKENDS:-embedded}"
ROUTES="${ROUTES:-}"

ADMIN_KEY="bench-admin-key-0123456789"
QR_PATH="/qr/bench1.png?size=512"
REDIRECT_PATH="/bench1/yt"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

# "10s", "2m", "1h" or "30" (seconds) -> seconds.
to_seconds() {
    local v="$1"
    [[ "$v" =~ ^([0-9]+)([smh]?)$ ]] || die "not a duration: '$v' (use e.g. 10s, 2m)"
    local n="${BASH_REMATCH[1]}"
    case "${BASH_REMATCH[2]}" in
        m) echo $((n * 60)) ;;
        h) echo $((n * 3600)) ;;
        *) echo "$n" ;;
    esac
}

[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ "$BACKENDS" == embedded || "$BACKENDS" == redis+clickhouse ]] || die "BACKENDS must be embedded or redis+clickhouse"
((CONNECTIONS >= THREADS)) || die "CONNECTIONS must be >= THREADS"
DURATION_S="$(to_seconds "$DURATION")"
WARMUP_S="$(to_seconds "$WARMUP")"
((DURATION_S > 0)) || die "DURATION must be > 0"
RUN_S=$(((WARMUP_S + DURATION_S) * RUNS + 30 * RUNS)) # one server, one scenario (with drains)
# Every server started here also stops by itself (baseline: --max-seconds,
# gateway: timeout), even if this script is killed with SIGKILL and its trap
# never runs.
BASELINE_MAX_S=$((2 * RUN_S + 60))
GATEWAY_MAX_S=$((4 * RUN_S + 120))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -z "$ROUTES" || -f "$ROUTES" ]] || die "ROUTES: no file '$ROUTES'"
[[ -z "$ROUTES" ]] || ROUTES="$(cd "$(dirname "$ROUTES")" && pwd)/$(basename "$ROUTES")"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk not found: installing it with apt-get"
    if [[ "$(id -u)" -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "wrk is missing and neither root nor sudo is available to install it"
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3 timeout cargo pgrep getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

log "building (release): gateway, load-tests"
cargo build --release --locked -p gateway -p load-tests
# GATEWAY_BIN: another gateway binary to measure (an A/B against an older build).
GATEWAY_BIN="${GATEWAY_BIN:-$TARGET_DIR/release/codelink}"
BASELINE_BIN="$TARGET_DIR/release/baseline"
[[ -x "$GATEWAY_BIN" && -x "$BASELINE_BIN" ]] || die "binaries not found in $TARGET_DIR/release"

# --- process bookkeeping -----------------------------------------------------
TMP="$(mktemp -d -t codelink-bench.XXXXXX)"
RUN_NAME=bench
SERVER_MAX_S="$GATEWAY_MAX_S"
PIN=()
SERVERS_AUTOSTART=0
# Bookkeeping (PIDS, stop_pid, the EXIT trap), free_port, wait_for,
# expect_status, redis-server and clickhouse-server: see the file.
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"

BACKEND_FLAGS=()
if [[ "$BACKENDS" == redis+clickhouse ]]; then
    REDIS_PORT="$(free_port)"
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (persistence off)"
    start_redis_server "$REDIS_PORT" "$TMP/redis"
    CH_HTTP_PORT="$(free_port)"
    CH_TCP_PORT="$(free_port)"
    while [[ "$CH_TCP_PORT" == "$CH_HTTP_PORT" ]]; do CH_TCP_PORT="$(free_port)"; done
    start_clickhouse_server "$TMP/clickhouse" "codelink-bench-$$" 127.0.0.1 "$CH_HTTP_PORT" "$CH_TCP_PORT"
    BACKEND_FLAGS=(--redis-url "redis://127.0.0.1:$REDIS_PORT/" --clickhouse-url "http://127.0.0.1:$CH_HTTP_PORT")
fi

# --- wrk ---------------------------------------------------------------------
declare -A RPS P99 ERRS

# cpu_seconds, drained, stats: see the file.
# shellcheck source=lib/measure.sh
source "$ROOT/load-tests/lib/measure.sh"

# bench KEY URL PID: warm-up (discarded), then the measured run; KEY's
# figures are appended to RPS, P99 and CPU_US (space-separated, one per run).
declare -A CPU_US
bench() {
    local key="$1" url="$2" pid="$3" out="$TMP/wrk-$1.txt" cpu0 cpu1
    # Every server gets what a phone's browser sends on a navigation.
    local wrk=(wrk "-t$THREADS" "-c$CONNECTIONS" "${BROWSER_HEADERS[@]}")
    log "$key: warm-up $WARMUP, then $DURATION against $url"
    if ((WARMUP_S > 0)); then
        timeout $((WARMUP_S + 30)) "${wrk[@]}" "-d$WARMUP" "$url" >/dev/null
    fi
    # Warm-up scans are recorded too: let the recorder finish them first.
    [[ "$key" != gateway-* ]] || drained "$GW"
    local cpu_pid="$pid"
    [[ "$key" != gateway-* ]] || cpu_pid="$GW_CPU_PID"
    cpu0="$(cpu_seconds "$cpu_pid")"
    timeout $((DURATION_S + 30)) "${wrk[@]}" "-d$DURATION" --latency "$url" >"$out"
    alive "$pid" || die "$key: the server exited during the run"
    [[ "$key" != gateway-* ]] || drained "$GW"
    cpu1="$(cpu_seconds "$cpu_pid")"
    cat "$out" >&2
    local rps p99 reqs
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p99="$(awk '$1 == "99%" {print $2; exit}' "$out")"
    reqs="$(awk '/requests in/ {print $1; exit}' "$out")"
    [[ -n "$rps" && -n "$p99" && -n "$reqs" ]] || die "$key: could not parse wrk output ($out)"
    RPS[$key]+="$rps "
    P99[$key]+="$(to_ms "$p99") "
    CPU_US[$key]+="$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }') "
    local errs
    errs="$(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' - || true)"
    [[ -z "$errs" ]] || ERRS[$key]+="run: $errs; "
}

# wrk's latency ("850.00us", "1.50ms", "2.01s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# pair GW_KEY BL_KEY GW_URL BL_URL BL_PID: RUNS measured runs of each, taking turns.
pair() {
    local g="$1" b="$2" gurl="$3" burl="$4" bpid="$5" i
    for ((i = 1; i <= RUNS; i++)); do
        log "run $i of $RUNS"
        if ((i % 2)); then
            bench "$g" "$gurl" "$GW_PID"
            bench "$b" "$burl" "$bpid"
        else
            bench "$b" "$burl" "$bpid"
            bench "$g" "$gurl" "$GW_PID"
        fi
    done
}

# ratios "g1 g2 ..." "b1 b2 ...": run-by-run g/b.
ratios() {
    paste -d' ' <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{ printf "%.3f ", ($2 > 0) ? $1 / $2 : 0 }'
}

# row LABEL GW_KEY BL_KEY: the report's lines for one scenario.
row() {
    local label="$1" g="$2" b="$3"
    echo "| $label: req/s ratio | $(stats "$(ratios "${RPS[$g]}" "${RPS[$b]}")") | $(ratios "${RPS[$g]}" "${RPS[$b]}") |"
    echo "| $label: gateway req/s | $(stats "${RPS[$g]}") | ${RPS[$g]} |"
    echo "| $label: baseline req/s | $(stats "${RPS[$b]}") | ${RPS[$b]} |"
    echo "| $label: p99 ratio | $(stats "$(ratios "${P99[$g]}" "${P99[$b]}")") | $(ratios "${P99[$g]}" "${P99[$b]}") |"
    echo "| $label: gateway p99 ms | $(stats "${P99[$g]}") | ${P99[$g]} |"
    echo "| $label: baseline p99 ms | $(stats "${P99[$b]}") | ${P99[$b]} |"
    echo "| $label: gateway CPU µs/request | $(stats "${CPU_US[$g]}") | ${CPU_US[$g]} |"
    echo "| $label: baseline CPU µs/request | $(stats "${CPU_US[$b]}") | ${CPU_US[$b]} |"
}


# --- gateway -----------------------------------------------------------------
GW_PORT="$(free_port)"
GW="http://127.0.0.1:$GW_PORT"
log "starting the gateway on $GW ($BACKENDS; stops by itself after ${GATEWAY_MAX_S}s)"
CODELINK_LOG=warn timeout -s TERM "$GATEWAY_MAX_S" "$GATEWAY_BIN" serve \
    --listen "127.0.0.1:$GW_PORT" --data-dir "$TMP/data" --admin-key "$ADMIN_KEY" \
    "${BACKEND_FLAGS[@]+"${BACKEND_FLAGS[@]}"}" >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_for gateway "$GW_PID" "$GW/healthz" "$TMP/gateway.log"
expect_status 200 "$GW/readyz"
# $GW_PID is `timeout`'s; the CPU counted is the gateway's own.
GW_CPU_PID="$(pgrep -P "$GW_PID" | head -n1)"
[[ -n "$GW_CPU_PID" ]] || die "the gateway's process was not found under timeout (pid $GW_PID)"
expect_status 200 "$GW/healthz"

CODE_JSON='{"code":"bench1","destination":"https://shop.example/signup","owner":"bench","channels":{"yt":{"utm_source":"youtube","utm_medium":"video"}}}'
ROUTE_COUNT=0
if [[ -n "$ROUTES" ]]; then
    CODE_JSON="$(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); c["routes"]=json.load(open(sys.argv[2])); print(json.dumps(c))' "$CODE_JSON" "$ROUTES")" ||
        die "ROUTES: $ROUTES is not a JSON list of rules"
    ROUTE_COUNT="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$ROUTES")"
fi
log "creating code bench1 ($ROUTE_COUNT routing rules)"
expect_status 201 "$GW/api/v1/codes" -X POST \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
    --data "$CODE_JSON"
code="$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$GW$REDIRECT_PATH" || true)"
[[ "$code" == 302 ]] || die "GET $REDIRECT_PATH on the gateway answered '$code', expected 302"
curl -s --max-time 5 -o /dev/null -D "$TMP/headers-gateway-redirect.txt" "$GW$REDIRECT_PATH"

# --- scenario 1: redirect ----------------------------------------------------
BL_PORT="$(free_port)"
BL="http://127.0.0.1:$BL_PORT"
log "starting the baseline (redirect) on $BL"
"$BASELINE_BIN" --listen "127.0.0.1:$BL_PORT" --mode redirect \
    --max-seconds "$BASELINE_MAX_S" >"$TMP/baseline.log" 2>&1 &
BL_PID=$!
PIDS+=("$BL_PID")
wait_for baseline "$BL_PID" "$BL/" "$TMP/baseline.log"
expect_status 302 "$BL$REDIRECT_PATH"
curl -s --max-time 5 -o /dev/null -D "$TMP/headers-baseline-redirect.txt" "$BL$REDIRECT_PATH"

pair gateway-redirect baseline-redirect "$GW$REDIRECT_PATH" "$BL$REDIRECT_PATH" "$BL_PID"
stop_pid "$BL_PID"

# --- scenario 2: cached QR PNG -----------------------------------------------
log "fetching $QR_PATH once (this also fills the gateway's QR cache)"
expect_status 200 "$GW$QR_PATH" -D "$TMP/headers-gateway-qr.txt"
mv "$TMP/body" "$TMP/qr.png"
[[ "$(head -c 8 "$TMP/qr.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] ||
    die "$QR_PATH is not a PNG (first bytes: $(head -c 16 "$TMP/qr.png" | od -An -c))"
QR_BYTES="$(wc -c <"$TMP/qr.png" | tr -d ' ')"
grep -qi '^etag:' "$TMP/headers-gateway-qr.txt" || log "warning: the gateway sent no ETag for $QR_PATH"

BL_PORT="$(free_port)"
BL="http://127.0.0.1:$BL_PORT"
log "starting the baseline (file, $QR_BYTES bytes) on $BL"
"$BASELINE_BIN" --listen "127.0.0.1:$BL_PORT" --mode file \
    --file "$TMP/qr.png" --content-type image/png \
    --max-seconds "$BASELINE_MAX_S" >"$TMP/baseline.log" 2>&1 &
BL_PID=$!
PIDS+=("$BL_PID")
wait_for baseline "$BL_PID" "$BL/" "$TMP/baseline.log"
expect_status 200 "$BL$QR_PATH" -D "$TMP/headers-baseline-qr.txt"
cmp -s "$TMP/body" "$TMP/qr.png" || die "the baseline does not serve the same bytes as the gateway"

pair gateway-qr baseline-qr "$GW$QR_PATH" "$BL$QR_PATH" "$BL_PID"
stop_pid "$BL_PID"

# --- report ------------------------------------------------------------------
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
headers() { tr -d '\r' <"$1" | grep -v -i -e '^date:' -e '^$'; }
{
    echo "# codelink benchmark: gateway vs bare hyper"
    echo
    echo "Scans recorded by: $BACKENDS. $RUNS runs of each server per scenario, taking turns. Ratios are gateway / baseline, run by run."
    echo
    echo "| figure | min / median / max | every run |"
    echo "|---|---|---|"
    row "redirect \`GET $REDIRECT_PATH\`" gateway-redirect baseline-redirect
    row "cached QR PNG \`GET $QR_PATH\` ($QR_BYTES B)" gateway-qr baseline-qr
    echo
    echo "Targets (issue 15): redirect req/s ratio >= 0.9 with p99 ratio <= 1.5, cached QR PNG req/s ratio >= 0.9."
    echo "The gateway's CPU per request counts every thread until its recorder has written the run's scans (recording included)."
    echo
    if ((ROUTE_COUNT > 0)); then
        echo "- bench1 has $ROUTE_COUNT routing rules (\`ROUTES=${ROUTES#"$ROOT/"}\`); the benchmarked request goes to: \`$(tr -d '\r' <"$TMP/headers-gateway-redirect.txt" | awk 'tolower($1) == "location:" {print $2}' | sed 's/cl_scan=.*/cl_scan=…/')\`"
    fi
    echo "- wrk: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` with an iPhone Safari's navigation headers (User-Agent, Accept, Accept-Language, Sec-Fetch-*), after a discarded $WARMUP warm-up per server; $(wrk -v 2>&1 | head -n1 || true)"
    echo "- nproc: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown CPU)); wrk and the server under test share these cores"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty; date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for key in gateway-redirect baseline-redirect gateway-qr baseline-qr; do
        [[ -z "${ERRS[$key]:-}" ]] || echo "- wrk errors, $key: ${ERRS[$key]}"
    done
    echo
    echo "<details><summary>Responses compared (one GET each, Date omitted)</summary>"
    echo
    for f in gateway-redirect baseline-redirect gateway-qr baseline-qr; do
        echo "$f:"
        echo '```'
        headers "$TMP/headers-$f.txt"
        echo '```'
    done
    echo "</details>"
} >"$TMP/report.md"

mkdir -p "$ROOT/load-tests/results"
cp "$TMP/report.md" "$ROOT/load-tests/results/latest.md"
echo >&2
cat "$TMP/report.md"
log "written to load-tests/results/latest.md"

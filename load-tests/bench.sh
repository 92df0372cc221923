#!/usr/bin/env bash
# Redirect and QR benchmark: the gateway against a bare hyper server (the
# `baseline` bin of this crate), measured with the same wrk settings in the same
# run, on 127.0.0.1 only. See load-tests/README.md.
#
# Knobs (environment): THREADS (1), CONNECTIONS (64), DURATION (10s), WARMUP (2s),
# ROUTES (a JSON file of routing rules set on the benchmarked code; none),
# GATEWAY_BIN (a gateway binary to measure instead of this tree's build).
# Writes the report to load-tests/results/latest.md and prints it.
set -euo pipefail
# No load balancer polls /readyz here: the gateway stops at once on SIGTERM.
export CODELINK_DRAIN_SECS=0

THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
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
((CONNECTIONS >= THREADS)) || die "CONNECTIONS must be >= THREADS"
DURATION_S="$(to_seconds "$DURATION")"
WARMUP_S="$(to_seconds "$WARMUP")"
((DURATION_S > 0)) || die "DURATION must be > 0"
RUN_S=$((WARMUP_S + DURATION_S)) # one server, one scenario
# Every server started here also stops by itself (baseline: --max-seconds,
# gateway: timeout), even if this script is killed with SIGKILL and its trap
# never runs.
BASELINE_MAX_S=$((RUN_S + 60))
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
for tool in curl python3 timeout cargo; do
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
PIDS=()

alive() {
    # A zombie still answers `kill -0`, so look at the state in /proc.
    local stat
    stat="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "${stat%% *}" != Z ]]
}

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid ignored SIGTERM for 5s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local rest=()
    for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || rest+=("$p"); done
    PIDS=("${rest[@]+"${rest[@]}"}")
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# wait_for NAME PID URL: until URL answers at all (any HTTP status), at most 10s.
wait_for() {
    local name="$1" pid="$2" url="$3" i code
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || die "$name exited during startup (log: below)$(printf '\n'; cat "$TMP/$name.log" 2>/dev/null)"
        code="$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$url" || true)"
        [[ "$code" != 000 && -n "$code" ]] && return 0
        sleep 0.1
    done
    die "$name did not answer $url within 10s"
}

# expect_status WANT URL [curl args...]: fails with the response body if the status differs.
expect_status() {
    local want="$1" url="$2"
    shift 2
    local got
    got="$(curl -s --max-time 5 -o "$TMP/body" -w '%{http_code}' "$@" "$url" || true)"
    [[ "$got" == "$want" ]] || die "expected $want from $url, got '${got}': $(head -c 500 "$TMP/body" 2>/dev/null)"
}

# --- wrk ---------------------------------------------------------------------
declare -A RPS P99 ERRS

# bench KEY URL PID: warm-up (discarded), then the measured run.
bench() {
    local key="$1" url="$2" pid="$3" out="$TMP/wrk-$1.txt"
    # Every server gets what a phone's browser sends on a navigation, so the
    # gateway records human scans (without these headers a scan is a suspect).
    local wrk=(wrk "-t$THREADS" "-c$CONNECTIONS"
        -H "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
        -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        -H "Accept-Language: en-US,en;q=0.9"
        -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Site: none")
    log "$key: warm-up $WARMUP, then $DURATION against $url"
    if ((WARMUP_S > 0)); then
        timeout $((WARMUP_S + 30)) "${wrk[@]}" "-d$WARMUP" "$url" >/dev/null
    fi
    timeout $((DURATION_S + 30)) "${wrk[@]}" "-d$DURATION" --latency "$url" >"$out"
    alive "$pid" || die "$key: the server exited during the run"
    cat "$out" >&2
    RPS[$key]="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    P99[$key]="$(awk '$1 == "99%" {print $2; exit}' "$out")"
    ERRS[$key]="$(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' - || true)"
    [[ -n "${RPS[$key]}" && -n "${P99[$key]}" ]] || die "$key: could not parse wrk output ($out)"
}

ratio() { awk -v g="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", g / b; else print "n/a" }'; }

# --- gateway -----------------------------------------------------------------
GW_PORT="$(free_port)"
GW="http://127.0.0.1:$GW_PORT"
log "starting the gateway on $GW (stops by itself after ${GATEWAY_MAX_S}s)"
CODELINK_LOG=warn timeout -s TERM "$GATEWAY_MAX_S" "$GATEWAY_BIN" serve \
    --listen "127.0.0.1:$GW_PORT" --data-dir "$TMP/data" --admin-key "$ADMIN_KEY" \
    >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_for gateway "$GW_PID" "$GW/healthz"
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
wait_for baseline "$BL_PID" "$BL/"
expect_status 302 "$BL$REDIRECT_PATH"
curl -s --max-time 5 -o /dev/null -D "$TMP/headers-baseline-redirect.txt" "$BL$REDIRECT_PATH"

bench gateway-redirect "$GW$REDIRECT_PATH" "$GW_PID"
bench baseline-redirect "$BL$REDIRECT_PATH" "$BL_PID"
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
wait_for baseline "$BL_PID" "$BL/"
expect_status 200 "$BL$QR_PATH" -D "$TMP/headers-baseline-qr.txt"
cmp -s "$TMP/body" "$TMP/qr.png" || die "the baseline does not serve the same bytes as the gateway"

bench gateway-qr "$GW$QR_PATH" "$GW_PID"
bench baseline-qr "$BL$QR_PATH" "$BL_PID"
stop_pid "$BL_PID"

# --- report ------------------------------------------------------------------
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
headers() { tr -d '\r' <"$1" | grep -v -i -e '^date:' -e '^$'; }
{
    echo "# codelink benchmark: gateway vs bare hyper"
    echo
    echo "| scenario | gateway req/s | baseline req/s | ratio | gateway p99 | baseline p99 |"
    echo "|---|---:|---:|---:|---:|---:|"
    echo "| redirect \`GET $REDIRECT_PATH\` | ${RPS[gateway-redirect]} | ${RPS[baseline-redirect]} | $(ratio "${RPS[gateway-redirect]}" "${RPS[baseline-redirect]}") | ${P99[gateway-redirect]} | ${P99[baseline-redirect]} |"
    echo "| cached QR PNG \`GET $QR_PATH\` ($QR_BYTES B) | ${RPS[gateway-qr]} | ${RPS[baseline-qr]} | $(ratio "${RPS[gateway-qr]}" "${RPS[baseline-qr]}") | ${P99[gateway-qr]} | ${P99[baseline-qr]} |"
    echo
    echo "Targets: redirect ratio >= 0.8, cached QR PNG ratio >= 0.6 (ratio = gateway req/s / baseline req/s)."
    echo
    if ((ROUTE_COUNT > 0)); then
        echo "- bench1 has $ROUTE_COUNT routing rules (\`ROUTES=${ROUTES#"$ROOT/"}\`); the benchmarked request goes to: \`$(tr -d '\r' <"$TMP/headers-gateway-redirect.txt" | awk 'tolower($1) == "location:" {print $2}' | sed 's/cl_scan=.*/cl_scan=…/')\`"
    fi
    echo "- wrk: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` with an iPhone Safari's navigation headers (User-Agent, Accept, Accept-Language, Sec-Fetch-*), after a discarded $WARMUP warm-up per server; $(wrk -v 2>&1 | head -n1 || true)"
    echo "- nproc: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown CPU)); wrk and the server under test share these cores"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty; date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for key in gateway-redirect baseline-redirect gateway-qr baseline-qr; do
        [[ -z "${ERRS[$key]}" ]] || echo "- wrk errors, $key: ${ERRS[$key]}"
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

#!/usr/bin/env bash
# A/B of two gateway builds on the redirect (or another path): both serve the
# same code on the embedded default, then take turns under the same wrk as
# bench.sh (A, B, B, A, A, B, …), RUNS times each. Per run: req/s, p99, and
# the CPU a request cost (all of the gateway's threads, from
# /proc/PID/stat, measured until its recorder has written the run's scans,
# so recording is counted). Prints each run and min / median / max.
#
#   load-tests/ab.sh OLD_BIN NEW_BIN
#
# Knobs (environment): RUNS (5), DURATION (5s), WARMUP (1s), CONNECTIONS (64),
# URL_PATH (/bench1/yt), FLAGS_A / FLAGS_B (more `serve` flags for A / B,
# space-separated: the same binary twice with other settings). 127.0.0.1 only; every gateway stops by itself.
set -euo pipefail
export LC_ALL=C CODELINK_DRAIN_SECS=0 CODELINK_LOG=warn

[[ $# -eq 2 && -x "$1" && -x "$2" ]] || { echo "usage: load-tests/ab.sh OLD_BIN NEW_BIN (two gateway binaries)" >&2; exit 2; }
BINS=("$1" "$2")
RUNS="${RUNS:-5}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
URL_PATH="${URL_PATH:-/bench1/yt}"
read -r -a FLAGS_0 <<<"${FLAGS_A:-}"
read -r -a FLAGS_1 <<<"${FLAGS_B:-}"
ADMIN_KEY="ab-admin-key-0123456789abcdef"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ab.sh: %s\n' "$*" >&2; exit 1; }
for tool in wrk curl python3 timeout pgrep getconf; do
    command -v "$tool" >/dev/null || die "$tool is required (bench.sh installs wrk)"
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d -t codelink-ab.XXXXXX)"
RUN_NAME=ab
SERVER_MAX_S=3600
PIN=()
SERVERS_AUTOSTART=0
# Bookkeeping (PIDS, the EXIT trap), free_port, wait_for: see the file.
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"
# BROWSER_HEADERS, cpu_seconds, drained, stats: see the file.
# shellcheck source=lib/measure.sh
source "$ROOT/load-tests/lib/measure.sh"

URLS=()
CPU_PIDS=()
for i in 0 1; do
    if ((i == 0)); then extra=("${FLAGS_0[@]+"${FLAGS_0[@]}"}"); else extra=("${FLAGS_1[@]+"${FLAGS_1[@]}"}"); fi
    p="$(free_port)"
    timeout -s TERM "$SERVER_MAX_S" "${BINS[$i]}" serve --listen "127.0.0.1:$p" --data-dir "$TMP/data$i" \
        --admin-key "$ADMIN_KEY" "${extra[@]+"${extra[@]}"}" >"$TMP/gw$i.log" 2>&1 &
    gw_pid=$!
    PIDS+=("$gw_pid")
    wait_for "gateway $i" "$gw_pid" "http://127.0.0.1:$p/healthz" "$TMP/gw$i.log"
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$p/api/v1/codes" -H "Authorization: Bearer $ADMIN_KEY" \
        -H 'Content-Type: application/json' \
        --data '{"code":"bench1","destination":"https://shop.example/signup","owner":"bench","channels":{"yt":{"utm_source":"youtube","utm_medium":"video"}}}'
    URLS+=("http://127.0.0.1:$p")
    CPU_PIDS+=("$(pgrep -P "$gw_pid" | head -n1)")
done

WRK=(wrk -t1 "-c$CONNECTIONS" "${BROWSER_HEADERS[@]}")
declare -A RPS CPU P99
one() {
    local i="$1" url="${URLS[$1]}$URL_PATH" c0 c1 out="$TMP/wrk.txt"
    timeout 60 "${WRK[@]}" "-d$WARMUP" "$url" >/dev/null
    drained "${URLS[$i]}"
    c0="$(cpu_seconds "${CPU_PIDS[$i]}")"
    timeout 120 "${WRK[@]}" "-d$DURATION" --latency "$url" >"$out"
    drained "${URLS[$i]}"
    c1="$(cpu_seconds "${CPU_PIDS[$i]}")"
    local rps reqs p99
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    reqs="$(awk '/requests in/ {print $1; exit}' "$out")"
    p99="$(awk '$1 == "99%" {print $2; exit}' "$out")"
    RPS[$i]+="$rps "
    P99[$i]+="$p99 "
    local cpu
    cpu="$(awk -v a="$c0" -v b="$c1" -v n="$reqs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')"
    CPU[$i]+="$cpu "
    printf '%s run: %s req/s, p99 %s, %s µs CPU/request\n' "$([[ $i == 0 ]] && echo A || echo B)" "$rps" "$p99" "$cpu" >&2
}
for ((r = 0; r < RUNS; r++)); do
    if ((r % 2)); then one 1; one 0; else one 0; one 1; fi
done
echo "| build | req/s min / median / max | CPU µs/request min / median / max | every run (req/s; µs) |"
echo "|---|---|---|---|"
for i in 0 1; do
    echo "| $([[ $i == 0 ]] && echo "A \`$1 ${FLAGS_A:-}\`" || echo "B \`$2 ${FLAGS_B:-}\`") | $(stats "${RPS[$i]}") | $(stats "${CPU[$i]}") | ${RPS[$i]}; ${CPU[$i]} |"
done
echo
echo "wrk -t1 -c$CONNECTIONS -d$DURATION on $URL_PATH (bench.sh's headers), $RUNS runs each, taking turns; $(date -u +%Y-%m-%dT%H:%M:%SZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"

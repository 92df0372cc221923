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
for tool in wrk curl python3 timeout pgrep getconf; do
    command -v "$tool" >/dev/null || { echo "ab.sh: $tool is required (bench.sh installs wrk)" >&2; exit 2; }
done
TMP="$(mktemp -d -t codelink-ab.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"; }
metric() { curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'; }
drained() {
    local i q w
    for ((i = 0; i < 1200; i++)); do
        q="$(metric "$1" codelink_scans_queued_total)"
        w="$(metric "$1" 'codelink_scans_written_total{sink="embedded"}')"
        ((w >= q)) && return 0
        sleep 0.1
    done
    echo "ab.sh: the recorder of $1 did not catch up in 120 s" >&2
    exit 1
}

URLS=()
CPU_PIDS=()
for i in 0 1; do
    if ((i == 0)); then extra=("${FLAGS_0[@]+"${FLAGS_0[@]}"}"); else extra=("${FLAGS_1[@]+"${FLAGS_1[@]}"}"); fi
    p="$(port)"
    timeout -s TERM 3600 "${BINS[$i]}" serve --listen "127.0.0.1:$p" --data-dir "$TMP/data$i" \
        --admin-key "$ADMIN_KEY" "${extra[@]+"${extra[@]}"}" >"$TMP/gw$i.log" 2>&1 &
    PIDS+=("$!")
    for ((t = 0; t < 100; t++)); do curl -sf -o /dev/null "http://127.0.0.1:$p/healthz" && break; sleep 0.1; done
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$p/api/v1/codes" -H "Authorization: Bearer $ADMIN_KEY" \
        -H 'Content-Type: application/json' \
        --data '{"code":"bench1","destination":"https://shop.example/signup","owner":"bench","channels":{"yt":{"utm_source":"youtube","utm_medium":"video"}}}'
    URLS+=("http://127.0.0.1:$p")
    CPU_PIDS+=("$(pgrep -P "$!" | head -n1)")
done

WRK=(wrk -t1 "-c$CONNECTIONS"
    -H "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
    -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    -H "Accept-Language: en-US,en;q=0.9"
    -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Site: none")
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
stats() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s / %s / %s", v[1], m, v[NR] }'
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

#!/usr/bin/env bash
# Memory and disk of the embedded default under load (issue 15, "Memory and
# disk of the embedded default"): the release gateway with no Redis and no
# ClickHouse (scans.redb), one code, redirected by wrk for MINUTES with a mix
# of user agents and referrers like real traffic and client addresses from a
# pool (X-Forwarded-For, which the gateway trusts here). Every SAMPLE_S it
# prints the gateway's RSS (/proc/PID/status VmRSS), the scans queued and the
# size of scans.redb (its length, and the bytes it takes on disk: redb
# doubles the file with ftruncate, and the part not yet written is a hole):
# the curve. Then: the time from SIGTERM to exit, where
# the bytes of scans.redb went (`store-size`), the time from a restart on the
# same data dir to a healthy /healthz and /readyz, and a second shutdown.
# The gateway is pinned to GW_CPU, wrk to LOAD_CPU; 127.0.0.1 only.
#
# Knobs (environment): MINUTES (10), SAMPLE_S (5), CONNECTIONS (64),
# RATE (0: full speed; N: about N requests/s at most, each connection waiting
# CONNECTIONS*1000/RATE ms, whole, before each request: wrk's `delay()`; the
# rate reached is a little lower, by the time the answers take),
# VISITORS (100000: client addresses drawn at random from a pool of that
# many; 0: a new random address per request, every scan a new visitor),
# CACHE_MB (the gateway's --cache-mb; unset: its default), GATEWAY_BIN (a
# gateway binary to measure instead of building this tree's), GW_CPU (0),
# LOAD_CPU (1), BUILD (1; 0: measure GATEWAY_BIN without building this tree
# first, e.g. while the tree changes), DRAIN_S (60: after the load, how long to wait for the sink to
# have written every queued scan before the timed shutdown), OUT (load-tests/results/footprint.md), KEEP_DATA (0: the
# data dir is deleted at the end; 1: kept and its path printed).
set -euo pipefail
export LC_ALL=C
export CODELINK_DRAIN_SECS=0

MINUTES="${MINUTES:-10}"
SAMPLE_S="${SAMPLE_S:-5}"
CONNECTIONS="${CONNECTIONS:-64}"
VISITORS="${VISITORS:-100000}"
RATE="${RATE:-0}"
GW_CPU="${GW_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
KEEP_DATA="${KEEP_DATA:-0}"
DRAIN_S="${DRAIN_S:-60}"
ADMIN_KEY="footprint-admin-key-0123456789"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'footprint.sh: %s\n' "$*" >&2; exit 2; }
for knob in MINUTES SAMPLE_S CONNECTIONS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
done
[[ "$VISITORS" =~ ^[0-9]+$ ]] || die "VISITORS must be a number (got '$VISITORS')"
[[ "$RATE" =~ ^[0-9]+$ ]] || die "RATE must be a number (got '$RATE')"
DELAY_MS=0
if ((RATE > 0)); then
    DELAY_MS=$((CONNECTIONS * 1000 / RATE))
    ((DELAY_MS > 0)) || die "RATE $RATE is too high for $CONNECTIONS connections (at least 1 ms between a connection's requests)"
fi
[[ -z "${CACHE_MB:-}" || "$CACHE_MB" =~ ^[1-9][0-9]*$ ]] || die "CACHE_MB must be a positive integer"
SERVER_MAX_S=$((MINUTES * 60 + 900))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/load-tests/results/footprint.md}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
for tool in curl python3 timeout pgrep taskset wrk cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (load-tests/bench.sh installs wrk)"
done

if [[ "${BUILD:-1}" == 1 ]]; then
    log "building (release): gateway, load-tests"
    cargo build --release --locked -p gateway -p load-tests
fi
GATEWAY_BIN="${GATEWAY_BIN:-$TARGET_DIR/release/codelink}"
STORE_SIZE="$TARGET_DIR/release/store-size"
[[ -x "$GATEWAY_BIN" && -x "$STORE_SIZE" ]] || die "$GATEWAY_BIN or $STORE_SIZE not found"

TMP="$(mktemp -d -t codelink-footprint.XXXXXX)"
RUN_NAME=footprint
SERVERS_AUTOSTART=0
CLICKHOUSE_BIN=""
PIN=()
# Bookkeeping (PIDS, stop_pid, the EXIT trap), free_port, wait_for, expect_status.
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"
DATA="$TMP/data"
if [[ "$KEEP_DATA" == 1 ]]; then
    DATA="$(mktemp -d -t codelink-footprint-data.XXXXXX)"
fi

# --- wrk script: a traffic-like mix ------------------------------------------
# Twelve user agents weighted roughly as scans of a creator's QR codes and
# links arrive (phones first, in-app browsers, desktops, a few bots and
# previews), four referrers (none, Instagram, t.co, YouTube) and the client
# address from the pool.
cat >"$TMP/mix.lua" <<LUA
local uas = {
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 309.0.0.0 (iPhone15,2; iOS 17_0; en_US; en; scale=3.00; 1179x2556; 536988435)",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36 musical_ly_2023305020 BytedanceWebview/d8a21c6",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.33.110;FBBV/538465337;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
}
local refs = { "", "https://l.instagram.com/", "https://t.co/", "https://www.youtube.com/" }
local pool = $VISITORS
local i = 0
request = function()
  i = i + 1
  local n = pool > 0 and math.random(1, pool) or math.random(1, 2147483646)
  local ip = string.format("%d.%d.%d.%d", 1 + (n % 223), math.floor(n / 223) % 256, math.floor(n / 57088) % 256, 1 + math.floor(n / 14614528) % 254)
  local h = { ["User-Agent"] = uas[math.random(1, #uas)], ["X-Forwarded-For"] = ip,
              ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
              ["Accept-Language"] = "en-US,en;q=0.9", ["Sec-Fetch-Mode"] = "navigate", ["Sec-Fetch-Dest"] = "document" }
  local r = refs[(i % #refs) + 1]
  if r ~= "" then h["Referer"] = r end
  return wrk.format("GET", "/fp1/yt", h)
end
if $DELAY_MS > 0 then
  delay = function() return $DELAY_MS end
end
LUA

# --- helpers -----------------------------------------------------------------
metric() {
    curl -s --max-time 5 "$GW/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# The bytes the file takes on disk (its allocated blocks): redb grows the file
# by doubling it, with ftruncate, so the part not yet written is a hole.
dsize() { stat -c '%b %B' "$1" 2>/dev/null | awk '{ printf "%.0f\n", $1 * $2 }' || echo 0; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

CACHE_ARGS=()
[[ -z "${CACHE_MB:-}" ]] || CACHE_ARGS=(--cache-mb "$CACHE_MB")

# start_gateway: on DATA, pinned to GW_CPU; sets GW, GW_PID (the `timeout`
# wrapper), GW_REAL (the gateway) and START_MS (just before it was started).
start_gateway() {
    GW_PORT="$(free_port)"
    GW="http://127.0.0.1:$GW_PORT"
    START_MS="$(now_ms)"
    CODELINK_LOG=warn taskset -c "$GW_CPU" timeout -s TERM "$SERVER_MAX_S" "$GATEWAY_BIN" serve \
        --listen "127.0.0.1:$GW_PORT" --data-dir "$DATA" --admin-key "$ADMIN_KEY" \
        --client-ip-header x-forwarded-for \
        --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 \
        "${CACHE_ARGS[@]+"${CACHE_ARGS[@]}"}" >>"$TMP/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    GW_REAL=""
    local i
    for ((i = 0; i < 500; i++)); do
        GW_REAL="$(pgrep -P "$GW_PID" | head -n1 || true)"
        [[ -z "$GW_REAL" ]] || break
        sleep 0.01
    done
    [[ -n "$GW_REAL" ]] || die "no gateway process under $GW_PID$(show_log "$TMP/gateway.log")"
}

# ms_until_healthy: polls /healthz every 5 ms; prints ms since START_MS.
ms_until_healthy() {
    local i
    for ((i = 0; i < 6000; i++)); do
        alive "$GW_PID" || die "gateway exited during start-up$(show_log "$TMP/gateway.log")"
        if [[ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$GW/healthz" || true)" == 200 ]]; then
            echo $(($(now_ms) - START_MS))
            return 0
        fi
        sleep 0.005
    done
    die "gateway not healthy within 30 s$(show_log "$TMP/gateway.log")"
}

# stop_timed: SIGTERM to the gateway; sets STOP_MS, the ms until it had exited.
stop_timed() {
    local t0 i
    t0="$(now_ms)"
    kill -TERM "$GW_REAL"
    for ((i = 0; i < 30000; i++)); do
        alive "$GW_REAL" || break
        sleep 0.001
    done
    ! alive "$GW_REAL" || die "gateway still running 30 s after SIGTERM"
    STOP_MS=$(($(now_ms) - t0))
    stop_pid "$GW_PID"
}

# --- 1. load and the curve ---------------------------------------------------
start_gateway
FIRST_HEALTHY_MS="$(ms_until_healthy)"
expect_status 200 "$GW/readyz"
expect_status 201 "$GW/api/v1/codes" -X POST -H "Authorization: Bearer $ADMIN_KEY" \
    -H 'Content-Type: application/json' \
    --data '{"code":"fp1","destination":"https://shop.example/p","owner":"fp","channels":{"yt":{"utm_source":"youtube"}}}'
expect_status 302 "$GW/fp1/yt"
REDB="$DATA/scans.redb"
log "gateway $("$GATEWAY_BIN" --version 2>/dev/null || echo "$GATEWAY_BIN") on $GW (cpu $GW_CPU), pid $GW_REAL; wrk on cpu $LOAD_CPU for $MINUTES min, VISITORS=$VISITORS ${CACHE_MB:+CACHE_MB=$CACHE_MB}"
timeout -s TERM $((MINUTES * 60 + 60)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$((MINUTES * 60))s" \
    --latency -s "$TMP/mix.lua" "$GW" >"$TMP/wrk.txt" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
T0=$SECONDS
CURVE="$TMP/curve.md"
printf '| s | RSS MB | scans queued | scans written | spooled | replayed | dropped | lost | spool MB | scans.redb MB | file bytes/scan | on disk MB | on disk bytes/scan |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' >"$CURVE"
# sink_metric NAME: the embedded sink's series NAME from the last /metrics read.
sink_metric() { awk -v n="$1{sink=\"embedded\"}" '$1 == n { v = $2 } END { print v + 0 }' "$TMP/metrics.txt"; }
sample() {
    local q w f d
    curl -s --max-time 5 "$GW/metrics" >"$TMP/metrics.txt" || true
    q="$(awk '$1 == "codelink_scans_queued_total" { v = $2 } END { print v + 0 }' "$TMP/metrics.txt")"
    w="$(sink_metric codelink_scans_written_total)"
    f="$(fsize "$REDB")"
    d="$(dsize "$REDB")"
    printf '| %d | %.1f | %d | %d | %d | %d | %d | %d | %.1f | %.1f | %s | %.1f | %s |\n' $((SECONDS - T0)) "$(awk -v k="$(rss_kb "$GW_REAL")" 'BEGIN { print k / 1024 }')" \
        "$q" "$w" "$(sink_metric codelink_scans_spooled_total)" "$(sink_metric codelink_scans_replayed_total)" \
        "$(awk '$1 == "codelink_scans_dropped_total" { v = $2 } END { print v + 0 }' "$TMP/metrics.txt")" \
        "$(sink_metric codelink_scans_lost_total)" "$(awk -v b="$(sink_metric codelink_spool_bytes)" 'BEGIN { print b / 1048576 }')" \
        "$(awk -v f="$f" 'BEGIN { print f / 1048576 }')" \
        "$(awk -v f="$f" -v w="$w" 'BEGIN { if (w > 0) printf "%.1f", f / w; else print "-" }')" \
        "$(awk -v d="$d" 'BEGIN { print d / 1048576 }')" \
        "$(awk -v d="$d" -v w="$w" 'BEGIN { if (w > 0) printf "%.1f", d / w; else print "-" }')" >>"$CURVE"
    tail -n1 "$CURVE" >&2
    echo "$(rss_kb "$GW_REAL")" >>"$TMP/rss.txt"
}
while alive "$WRK_PID"; do
    sample
    for ((s = 0; s < SAMPLE_S * 10; s++)); do
        alive "$WRK_PID" || break
        sleep 0.1
    done
done
wait "$WRK_PID" 2>/dev/null || true
# Until the recorder has written every queued scan (at most DRAIN_S; the
# spool's replay is counted in written), sampling on.
DRAIN_T0=$SECONDS
DRAINED_IN=""
while ((SECONDS - DRAIN_T0 < DRAIN_S)); do
    q="$(metric codelink_scans_queued_total)"
    w="$(curl -s --max-time 5 "$GW/metrics" | awk '$1 == "codelink_scans_written_total{sink=\"embedded\"}" { v = $2 } END { print v + 0 }')"
    if [[ "$q" == "$w" ]]; then
        DRAINED_IN=$((SECONDS - DRAIN_T0))
        break
    fi
    sample
    sleep "$SAMPLE_S"
done
sample
AFTER_RSS="$(awk -v k="$(rss_kb "$GW_REAL")" 'BEGIN { printf "%.1f", k / 1024 }')"
SPOOLED="$(sink_metric codelink_scans_spooled_total)"
LOST="$(sink_metric codelink_scans_lost_total)"
BEHIND=$(($(metric codelink_scans_queued_total) - $(sink_metric codelink_scans_written_total)))
RSS_STATS="$(sort -n "$TMP/rss.txt" | awk '{ v[NR] = $1 } END { printf "min %.1f, median %.1f, max %.1f", v[1] / 1024, v[int((NR + 1) / 2)] / 1024, v[NR] / 1024 }')"
SCANS="$(metric codelink_scans_queued_total)"
DROPPED="$(metric codelink_scans_dropped_total)"
PEAK_MB="$(awk -v k="$(hwm_kb "$GW_REAL")" 'BEGIN { printf "%.1f", k / 1024 }')"
RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.txt")"
P99="$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.txt")"
BAD="$(awk '/Non-2xx or 3xx/ { print $NF } /Socket errors/ { print }' "$TMP/wrk.txt" | tr '\n' ' ')"

# --- 2. shutdown, where the bytes went, restart, shutdown ---------------------
stop_timed
STOP1_MS=$STOP_MS
FILE_BYTES="$(fsize "$REDB")"
DISK_BYTES="$(dsize "$REDB")"
log "stopped in $STOP1_MS ms; scans.redb $FILE_BYTES bytes, $DISK_BYTES on disk"
SPOOL_LEFT="$(find "$DATA/spool/embedded" \( -name '*.json' -o -name '*.jsonz' \) 2>/dev/null | wc -l)"
start_gateway
RESTART_MS="$(ms_until_healthy)"
expect_status 200 "$GW/readyz"
READY_MS=$(($(now_ms) - START_MS))
RESTART_RSS="$(awk -v k="$(rss_kb "$GW_REAL")" 'BEGIN { printf "%.1f", k / 1024 }')"
expect_status 302 "$GW/fp1/yt"
# What the first run left in the spool is replayed now (at most 30 min).
REPLAY_T0=$SECONDS
while ((SECONDS - REPLAY_T0 < 1800)); do
    curl -s --max-time 5 "$GW/metrics" >"$TMP/metrics.txt" || true
    [[ "$(sink_metric codelink_spool_bytes)" == 0 ]] && break
    sleep 1
done
REPLAY_S=$((SECONDS - REPLAY_T0))
stop_timed
STOP2_MS=$STOP_MS
"$STORE_SIZE" "$DATA" >"$TMP/store-size.md"
STORED="$(awk '/^scans in chunks:/ { print $4 }' "$TMP/store-size.md")"
# Every scan queued is stored once: the 302 of the check above included.
EXPECTED=$((SCANS + 1 - DROPPED - LOST))

# --- report ------------------------------------------------------------------
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
{
    echo "# codelink footprint, embedded default"
    echo
    echo "\`load-tests/footprint.sh\` (MINUTES=$MINUTES SAMPLE_S=$SAMPLE_S CONNECTIONS=$CONNECTIONS VISITORS=$VISITORS${CACHE_MB:+ CACHE_MB=$CACHE_MB}), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty, gateway \`$GATEWAY_BIN\`."
    echo "Gateway pinned to cpu $GW_CPU, \`wrk -t1 -c$CONNECTIONS\` on cpu $LOAD_CPU; \`GET /fp1/yt\` (one code), 12 user agents (phones, in-app browsers, desktops, 2 bots), 4 referrers, client addresses $(if ((VISITORS > 0)); then echo "from a pool of $VISITORS"; else echo "new at random per request"; fi); every request is a recorded scan."
    echo
    echo "wrk: $RPS req/s, p99 $P99${BAD:+, $BAD}; scans queued $SCANS, dropped $DROPPED, spooled $SPOOLED, lost $LOST; RSS over the samples $RSS_STATS MB; peak (VmHWM) $PEAK_MB MB; RSS after the drain $AFTER_RSS MB."
    echo
    echo "After the load: $(if [[ -n "$DRAINED_IN" ]]; then echo "every queued scan written ${DRAINED_IN} s after wrk ended"; else echo "$BEHIND scans not yet written after ${DRAIN_S} s"; fi); stopped with $SPOOL_LEFT spool files; after the restart, the spool replayed in ${REPLAY_S} s. Scans stored (store-size, after both runs): $STORED; queued + 1 (the restart's check) - dropped - lost: $EXPECTED ($(if [[ "$STORED" == "$EXPECTED" ]]; then echo "equal: each stored once"; else echo "DIFFERENT"; fi))."
    echo
    echo "## RSS and scans.redb during the run"
    echo
    cat "$CURVE"
    echo
    echo "## scans.redb after the restart ($FILE_BYTES bytes at the first stop, $(awk -v f="$FILE_BYTES" -v s="$SCANS" 'BEGIN { printf "%.1f", s ? f / s : 0 }') bytes/scan; on disk $DISK_BYTES bytes, $(awk -v f="$DISK_BYTES" -v s="$SCANS" 'BEGIN { printf "%.1f", s ? f / s : 0 }') bytes/scan)"
    echo
    cat "$TMP/store-size.md"
    echo
    echo "## Shutdown and restart ($SCANS scans stored)"
    echo
    echo "| step | ms |"
    echo "|---|---:|"
    echo "| first start to healthy (empty data dir) | $FIRST_HEALTHY_MS |"
    echo "| SIGTERM to exit after the load | $STOP1_MS |"
    echo "| restart to \`/healthz\` 200 | $RESTART_MS |"
    echo "| restart to \`/readyz\` 200 | $READY_MS |"
    echo "| SIGTERM to exit after the restart (spool replayed) | $STOP2_MS |"
    echo
    echo "RSS after the restart: $RESTART_RSS MB."
    echo
    echo "- $(wrk --version 2>&1 | head -n1 | cut -c1-60); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)"
} >"$TMP/report.md"
cat "$TMP/report.md"
mkdir -p "$(dirname "$OUT")"
cp "$TMP/report.md" "$OUT"
log "report written to $OUT"
if [[ "$KEEP_DATA" == 1 ]]; then
    log "data dir kept: $DATA"
fi

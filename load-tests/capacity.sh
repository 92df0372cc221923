#!/usr/bin/env bash
# Capacity figures of one node (issue 14, "Capacity model"): scans/s per
# gateway core and its CPU time per scan, bytes per scan in each store, Redis
# commands per scan and per batch, the ClickHouse sink's insert rate and what
# one ClickHouse server takes. The gateway runs pinned to one core (GW_CPU),
# wrk on the other (LOAD_CPU) with Redis and ClickHouse; redirect with
# recording on (embedded store; then Redis + ClickHouse). 127.0.0.1 only,
# every process bounded. See load-tests/README.md, "Capacity model".
#
# Knobs (environment): DURATION (10, seconds per wrk run), RUNS (3),
# CONNECTIONS (64), MIN_SCANS (200000, scans before the bytes per scan are
# read), CH_BATCH (100000 rows per INSERT), CH_INSERT_SECONDS (15),
# GW_CPU (0), LOAD_CPU (1), STORE_CPUS (LOAD_CPU).
# Prints a markdown report and writes it to load-tests/results/capacity.md.
set -euo pipefail
export LC_ALL=C
export CODELINK_DRAIN_SECS=0

DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
CONNECTIONS="${CONNECTIONS:-64}"
MIN_SCANS="${MIN_SCANS:-200000}"
CH_BATCH="${CH_BATCH:-100000}"
CH_INSERT_SECONDS="${CH_INSERT_SECONDS:-15}"
GW_CPU="${GW_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
STORE_CPUS="${STORE_CPUS:-$LOAD_CPU}"
ADMIN_KEY="capacity-admin-key-0123456789"
CH_DB="capacity"
UA='Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'capacity.sh: %s\n' "$*" >&2; exit 2; }
for knob in DURATION RUNS CONNECTIONS MIN_SCANS CH_BATCH CH_INSERT_SECONDS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
done
# Upper bound of the whole run: servers stop by themselves after it.
SERVER_MAX_S=$((4 * (RUNS + 8) * (DURATION + 30) + CH_INSERT_SECONDS + 600))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WALL_START=$SECONDS
for tool in curl python3 timeout pgrep taskset wrk redis-server redis-cli cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (load-tests/bench.sh and scan-load.sh install wrk, redis-server, clickhouse-server)"
done
CLICKHOUSE_BIN=""
for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do [[ -x "$p" ]] && CLICKHOUSE_BIN="$p"; done
[[ -n "$CLICKHOUSE_BIN" ]] || CLICKHOUSE_BIN="$(command -v clickhouse-server)" || die "clickhouse-server is required"

log "building (release): gateway, load-tests"
cargo build --release --locked -p gateway -p load-tests
GATEWAY_BIN="$TARGET_DIR/release/codelink"
[[ -x "$GATEWAY_BIN" ]] || die "$GATEWAY_BIN not found"
CLK_TCK="$(getconf CLK_TCK)"

# --- process bookkeeping -----------------------------------------------------
TMP="$(mktemp -d -t codelink-capacity.XXXXXX)"
PIDS=()

alive() {
    # A zombie still answers `kill -0`, so look at the state in /proc.
    local stat
    stat="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "${stat%% *}" != Z ]]
}

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL. PID is usually a `timeout`
# wrapper: should it need the SIGKILL, its child is killed by pid as well.
stop_pid() {
    local pid="$1" i kids
    kids="$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid ignored SIGTERM for 10s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do
        if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
    done
    wait "$pid" 2>/dev/null || true
    local rest=() p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do [[ "$p" == "$pid" ]] || rest+=("$p"); done
    PIDS=("${rest[@]+"${rest[@]}"}")
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    # Newest first: the gateway before the stores it writes to.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

show_log() { printf '\n--- %s ---\n' "$1"; tail -n 40 "$1" 2>/dev/null || true; }

# wait_for NAME PID URL LOG: until URL answers at all (any HTTP status), at most 30 s.
wait_for() {
    local name="$1" pid="$2" url="$3" logf="$4" i code
    for ((i = 0; i < 300; i++)); do
        alive "$pid" || die "$name exited during start-up$(show_log "$logf")"
        code="$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$url" || true)"
        [[ "$code" != 000 && -n "$code" ]] && return 0
        sleep 0.1
    done
    die "$name did not answer $url within 30s$(show_log "$logf")"
}

# expect_status WANT URL [curl args...]: fails with the response body if the status differs.
expect_status() {
    local want="$1" url="$2"
    shift 2
    local got
    got="$(curl -s --max-time 5 -o "$TMP/body" -w '%{http_code}' "$@" "$url" || true)"
    [[ "$got" == "$want" ]] || die "expected $want from $url, got '${got}': $(head -c 500 "$TMP/body" 2>/dev/null)"
}

# --- redis -------------------------------------------------------------------
REDIS_PORT="$(free_port)"
mkdir -p "$TMP/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT (persistence off, cpus $STORE_CPUS)"
taskset -c "$STORE_CPUS" timeout -s TERM "$SERVER_MAX_S" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for ((i = 0; ; i++)); do
    alive "$REDIS_PID" || die "redis-server exited during start-up$(show_log "$TMP/redis.log")"
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" == PONG ]] && break
    ((i < 100)) || die "redis-server did not answer PING within 10s$(show_log "$TMP/redis.log")"
    sleep 0.1
done

# --- clickhouse --------------------------------------------------------------
# The minimal config 18.16 accepts (as testkit/src/clickhouse.rs writes it):
# <logger>, <mark_cache_size> and a default profile, user and quota.
CH_HTTP_PORT="$(free_port)"
CH_TCP_PORT="$(free_port)"
while [[ "$CH_TCP_PORT" == "$CH_HTTP_PORT" ]]; do CH_TCP_PORT="$(free_port)"; done
CH_DIR="$TMP/clickhouse"
CH_NAME="codelink-capacity-$$"
mkdir -p "$CH_DIR/log" "$CH_DIR/data"
cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$CH_DIR/log/server.log</log>
    <errorlog>$CH_DIR/log/server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <display_name>$CH_NAME</display_name>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <path>$CH_DIR/data/</path>
  <tmp_path>$CH_DIR/data/tmp/</tmp_path>
  <user_files_path>$CH_DIR/data/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <profiles><default/></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default/></quotas>
</yandex>
EOF
CH="http://127.0.0.1:$CH_HTTP_PORT"
log "starting clickhouse-server ($CLICKHOUSE_BIN) on $CH"
(cd "$CH_DIR" && exec taskset -c "$STORE_CPUS" timeout -s TERM "$SERVER_MAX_S" "$CLICKHOUSE_BIN" \
    --config-file="$CH_DIR/config.xml" </dev/null >"$CH_DIR/log/stdout.log" 2>&1) &
CH_PID=$!
PIDS+=("$CH_PID")
for ((i = 0; ; i++)); do
    alive "$CH_PID" || die "clickhouse-server exited during start-up$(show_log "$CH_DIR/log/stdout.log")$(show_log "$CH_DIR/log/server.err.log")"
    # Ready when /ping answers and the server that answers is ours (its display name).
    if [[ "$(curl -s --max-time 1 "$CH/ping" || true)" == Ok. ]] &&
        curl -s --max-time 5 -D - -o /dev/null --data-binary 'SELECT 1' "$CH/" 2>/dev/null |
        tr -d '\r' | grep -qi "^x-clickhouse-server-display-name: $CH_NAME\$"; then
        break
    fi
    ((i < 300)) || die "clickhouse-server not ready within 30s$(show_log "$CH_DIR/log/server.err.log")"
    sleep 0.1
done

# ch SQL: one query over HTTP; the body on stdout, failure with ClickHouse's error text.
ch() {
    local out code
    out="$(curl -s --max-time 30 -w '\n%{http_code}' --data-binary "$1" "$CH/")" || return 1
    code="${out##*$'\n'}"
    out="${out%$'\n'*}" # the body, with its own final newline
    if [[ "$code" != 200 ]]; then
        printf 'clickhouse answered %s to: %s\n%s\n' "$code" "$1" "$out" >&2
        return 1
    fi
    printf '%s' "$out"
}
CH_VERSION="$(ch 'SELECT version()')" || die "clickhouse-server does not answer queries"
REDIS=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")

# --- helpers -----------------------------------------------------------------
# Lua scripts for wrk: one code (cc000) or 100 codes (cc000 … cc099), channel
# yt; five human user agents in turn and a random client address per request
# (X-Forwarded-For, which the gateway trusts here), so that the stored rows
# vary as real scans do (visitor id, IP prefix, device, browser).
for n in 1 100; do
    cat >"$TMP/codes$n.lua" <<LUA
local uas = {
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 309.0.0.0"
}
local i = 0
request = function()
  i = i + 1
  local ip = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", string.format("/cc%03d/yt", i % $n), { ["User-Agent"] = uas[i % 5 + 1], ["X-Forwarded-For"] = ip })
end
LUA
done

# start_gateway NAME ARGS...: the gateway on GW_CPU; sets GW, GW_PID (its
# `timeout` wrapper) and GW_REAL (the gateway itself, for /proc/PID/stat).
start_gateway() {
    local name="$1"
    shift
    GW_PORT="$(free_port)"
    GW="http://127.0.0.1:$GW_PORT"
    log "$name: gateway on $GW, cpu $GW_CPU"
    CODELINK_LOG=warn taskset -c "$GW_CPU" timeout -s TERM "$SERVER_MAX_S" "$GATEWAY_BIN" serve \
        --listen "127.0.0.1:$GW_PORT" --data-dir "$TMP/$name" --admin-key "$ADMIN_KEY" \
        --client-ip-header x-forwarded-for \
        --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 --repeat-window-secs 0 \
        "$@" >"$TMP/$name.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_for "gateway $name" "$GW_PID" "$GW/healthz" "$TMP/$name.log"
    expect_status 200 "$GW/readyz"
    GW_REAL="$(pgrep -P "$GW_PID" | head -n1)"
    [[ -n "$GW_REAL" ]] || die "no gateway process under $GW_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        expect_status 201 "$GW/api/v1/codes" -X POST -H "Authorization: Bearer $ADMIN_KEY" \
            -H 'Content-Type: application/json' \
            --data "$(printf '{"code":"cc%03d","destination":"https://shop.example/p","owner":"cap","channels":{"yt":{"utm_source":"youtube"}}}' "$i")"
    done
    expect_status 302 "$GW/cc000/yt" -H "User-Agent: $UA" # one scan, so that every store exists
}

ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# metric NAME [LABELS]: one value of the gateway's /metrics (0 when absent).
metric() {
    local n="$1"
    [[ -z "${2:-}" ]] || n+="{$2}"
    curl -s --max-time 5 "$GW/metrics" | awk -v n="$n" '$1 == n { v = $2 } END { print v + 0 }'
}

# settle SINK...: until each sink has written every queued scan (at most 60 s).
settle() {
    local i s q ok
    for ((i = 0; i < 600; i++)); do
        q="$(metric codelink_scans_queued_total)"
        ok=1
        for s in "$@"; do
            [[ "$(metric codelink_scans_written_total "sink=\"$s\"")" == "$q" ]] || ok=0
        done
        ((ok)) && return 0
        sleep 0.1
    done
    log "sinks $* still behind queued=$q after 60 s"
}

# run_wrk LUA: one wrk run of DURATION on LOAD_CPU; sets RPS, SCANS (the
# gateway's queued delta), CPU_US (gateway utime+stime per scan, µs), P99, BAD.
run_wrk() {
    local lua="$1" t0 t1 q0 q1 out
    q0="$(metric codelink_scans_queued_total)"
    t0="$(ticks "$GW_REAL")"
    out="$(timeout -s TERM $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -s "$lua" "$GW")"
    t1="$(ticks "$GW_REAL")"
    q1="$(metric codelink_scans_queued_total)"
    echo "$out" >>"$TMP/wrk.log"
    RPS="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    P99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    BAD="$(awk '/Non-2xx or 3xx/ { print $NF } /Socket errors/ { print }' <<<"$out" | tr '\n' ' ')"
    SCANS=$((q1 - q0))
    CPU_US="$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$SCANS" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')"
    log "  $(basename "$lua" .lua): $RPS req/s, $SCANS scans, ${CPU_US} µs cpu/scan, p99 $P99 ${BAD:+($BAD)}"
}

# median / spread of whitespace-separated numbers
median() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo " – " hi }'; }

# throughput LABEL: RUNS one-code runs; appends a row to $TMP/throughput.md.
throughput() {
    local label="$1" r rps_all="" cpu_all="" p99_all="" bad_all=""
    for ((r = 1; r <= RUNS; r++)); do
        run_wrk "$TMP/codes1.lua"
        rps_all+=" $RPS"
        cpu_all+=" $CPU_US"
        p99_all+=" $P99"
        bad_all+="$BAD"
    done
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$(median $rps_all)" "$(spread $rps_all)" \
        "$(median $cpu_all)" "$(spread $cpu_all)" "${p99_all# }${bad_all:+ (errors: $bad_all)}" >>"$TMP/throughput.md"
}

# top_up LUA N: more runs of LUA until N scans were queued since QUEUED0.
top_up() {
    local lua="$1" want="$2" i
    for ((i = 0; i < 20; i++)); do
        (($(metric codelink_scans_queued_total) - QUEUED0 >= want)) && return 0
        run_wrk "$lua"
    done
}

fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b ? a / b : 0 }'; }

printf '| store | gateway req/s (median) | spread | gateway CPU µs/scan (median) | spread | wrk p99 per run |\n|---|---:|---|---:|---|---|\n' >"$TMP/throughput.md"

# --- 1. embedded store -------------------------------------------------------
start_gateway embedded
REDB="$TMP/embedded/scans.redb"
[[ -f "$REDB" ]] || die "no $REDB after a scan: $(ls "$TMP/embedded")"
log "embedded: $RUNS × ${DURATION}s, one code"
settle embedded
QUEUED0="$(metric codelink_scans_queued_total)"
SIZE0="$(fsize "$REDB")"
throughput "embedded (scans.redb)"
top_up "$TMP/codes1.lua" "$MIN_SCANS"
settle embedded
E1_SCANS=$(($(metric codelink_scans_queued_total) - QUEUED0))
E1_BYTES=$(($(fsize "$REDB") - SIZE0))
stop_pid "$GW_PID"
# A fresh store for the 100 codes: redb grows its file in steps, so growth
# within one file says little; size / scans of a fresh file is what is compared.
start_gateway embedded100
REDB="$TMP/embedded100/scans.redb"
log "embedded, 100 codes (fresh store): at least $MIN_SCANS scans"
settle embedded
QUEUED0="$(metric codelink_scans_queued_total)"
SIZE0="$(fsize "$REDB")"
top_up "$TMP/codes100.lua" "$MIN_SCANS"
settle embedded
E100_SCANS=$(($(metric codelink_scans_queued_total) - QUEUED0))
E100_BYTES=$(($(fsize "$REDB") - SIZE0))
stop_pid "$GW_PID"

# --- 2. Redis + ClickHouse ---------------------------------------------------
redis_info() { "${REDIS[@]}" info "$1" | tr -d '\r'; }
used_memory() { redis_info memory | awk -F: '$1 == "used_memory" { print $2 }'; }
commandstats() { redis_info commandstats | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort; }
ch_events() { ch "SELECT event, value FROM system.events WHERE event IN ('InsertQuery', 'InsertedRows', 'InsertedBytes') ORDER BY event FORMAT TSV"; }

start_gateway stores --redis-url "redis://127.0.0.1:$REDIS_PORT/" --clickhouse-url "$CH" --clickhouse-database "$CH_DB"
settle redis clickhouse
log "redis + clickhouse: $RUNS × ${DURATION}s, one code"
QUEUED0="$(metric codelink_scans_queued_total)"
B0="$(metric codelink_scan_batches_total)"
M0="$(used_memory)"
commandstats >"$TMP/cmd0"
ch_events >"$TMP/ev0"
T0=$SECONDS
throughput "Redis + ClickHouse"
settle redis clickhouse
T1=$SECONDS
S_SCANS=$(($(metric codelink_scans_queued_total) - QUEUED0))
S_BATCHES=$(($(metric codelink_scan_batches_total) - B0))
M1="$(used_memory)"
commandstats >"$TMP/cmd1"
ch_events >"$TMP/ev1"
# Seconds of load (wrk runs), not of settling: the sink's rate under load.
LOAD_S=$((RUNS * DURATION))
log "redis + clickhouse, 100 codes: at least $MIN_SCANS scans"
QUEUED0="$(metric codelink_scans_queued_total)"
top_up "$TMP/codes100.lua" "$MIN_SCANS"
settle redis clickhouse
S100_SCANS=$(($(metric codelink_scans_queued_total) - QUEUED0))
M2="$(used_memory)"
commandstats >"$TMP/cmd2"
S100_BATCHES=$(($(metric codelink_scan_batches_total) - B0 - S_BATCHES))
S_TOTAL_SCANS="$(metric codelink_scans_queued_total)"
STORES_REDB="$(fsize "$TMP/stores/scans.redb")"
stop_pid "$GW_PID"

parts() {
    ch "SELECT table, sum(rows), sum(bytes_on_disk), count() FROM system.parts WHERE database = '$CH_DB' AND active GROUP BY table ORDER BY table FORMAT TSV"
}
parts >"$TMP/parts-before.tsv"
for t in $(ch "SELECT name FROM system.tables WHERE database = '$CH_DB' AND engine LIKE '%MergeTree' FORMAT TSV"); do
    ch "OPTIMIZE TABLE $CH_DB.$t FINAL" >/dev/null || log "OPTIMIZE $t failed"
done
parts >"$TMP/parts-after.tsv"

# --- 3. what one ClickHouse server takes -------------------------------------
# All cores for ClickHouse now (the gateway is stopped); the rows are the
# gateway's own scans rows, re-sent as TabSeparated over HTTP, one INSERT at a time.
CH_REAL="$(pgrep -P "$CH_PID" | head -n1)"
taskset -a -p -c "0-$(($(nproc) - 1))" "$CH_REAL" >/dev/null
ch "CREATE TABLE $CH_DB.scans_bench AS $CH_DB.scans" >/dev/null
ch "SELECT * FROM $CH_DB.scans LIMIT $CH_BATCH FORMAT TabSeparated" >"$TMP/batch.tsv"
BATCH_ROWS="$(wc -l <"$TMP/batch.tsv")"
log "clickhouse: INSERTs of $BATCH_ROWS rows ($(fsize "$TMP/batch.tsv") bytes TSV) for ${CH_INSERT_SECONDS}s"
INS=0
NS0="$(date +%s%N)"
END_NS=$((NS0 + CH_INSERT_SECONDS * 1000000000))
while (($(date +%s%N) < END_NS)); do
    code="$(curl -s --max-time 60 -o "$TMP/ins.out" -w '%{http_code}' --data-binary @"$TMP/batch.tsv" \
        "$CH/?query=INSERT%20INTO%20$CH_DB.scans_bench%20FORMAT%20TabSeparated")"
    [[ "$code" == 200 ]] || die "INSERT failed ($code): $(head -c 300 "$TMP/ins.out")"
    INS=$((INS + 1))
done
INS_S="$(awk -v a="$NS0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
BENCH_ROWS="$(ch "SELECT count() FROM $CH_DB.scans_bench")"

# --- 4. what one Redis master takes ------------------------------------------
# HINCRBY is the command the Redis sink sends most (11 per code and batch);
# redis-benchmark on GW_CPU (idle now), Redis still on its own cpu, pipelined 16.
REDIS_HINCRBY="$(timeout 120 taskset -c "$GW_CPU" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n 2000000 -P 16 -q \
    hincrby capacity:bench f 1 2>/dev/null | tr '\r' '\n' | awk '/requests per second/ { v = $0 } END { print v }')"

# --- report ------------------------------------------------------------------
ev() { awk -v e="$2" '$1 == e { print $2 + 0 }' "$TMP/$1"; }
EV_Q=$(($(ev ev1 InsertQuery) - $(ev ev0 InsertQuery)))
EV_R=$(($(ev ev1 InsertedRows) - $(ev ev0 InsertedRows)))
EV_B=$(($(ev ev1 InsertedBytes) - $(ev ev0 InsertedBytes)))
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
{
    echo "# codelink capacity, one node"
    echo
    echo "\`load-tests/capacity.sh\` (DURATION=$DURATION RUNS=$RUNS CONNECTIONS=$CONNECTIONS MIN_SCANS=$MIN_SCANS CH_BATCH=$CH_BATCH CH_INSERT_SECONDS=$CH_INSERT_SECONDS)."
    echo "Gateway pinned to cpu $GW_CPU; wrk (1 thread, $CONNECTIONS connections), redis-server and clickhouse-server pinned to cpu $LOAD_CPU."
    echo "Redirect \`GET /cc000/yt\` (one code; then cc000 … cc099 in turn) with five human user agents in turn and a random client address (X-Forwarded-For) per request; every request is a recorded scan."
    echo
    echo "## Scans/s per gateway core"
    echo
    cat "$TMP/throughput.md"
    echo
    echo "CPU µs/scan: the gateway's utime+stime (\`/proc/PID/stat\`, ${CLK_TCK} Hz) over a run / the scans it queued in that run."
    echo
    echo "## Bytes per scan"
    echo
    echo "| store | scans | growth (bytes) | bytes/scan |"
    echo "|---|---:|---:|---:|"
    echo "| embedded \`scans.redb\`, one code (fresh file) | $E1_SCANS | $E1_BYTES | $(per "$E1_BYTES" "$E1_SCANS") |"
    echo "| embedded \`scans.redb\`, 100 codes (fresh file) | $E100_SCANS | $E100_BYTES | $(per "$E100_BYTES" "$E100_SCANS") |"
    echo "| Redis \`used_memory\`, one code | $S_SCANS | $((M1 - M0)) | $(per $((M1 - M0)) "$S_SCANS") |"
    echo "| Redis \`used_memory\`, 100 codes (99 new) | $S100_SCANS | $((M2 - M1)) | $(per $((M2 - M1)) "$S100_SCANS") |"
    echo
    echo "Embedded: growth from the file's size after the codes and one scan; redb grows the file in steps, so read these as ± a step. Redis: used_memory $M0 → $M1 → $M2 bytes;"
    echo "per new code ≈ $(per $((M2 - M1)) 99) bytes (the 100-code run's growth / 99 codes that had no scan before). With Redis + ClickHouse the gateway's \`scans.redb\` is $STORES_REDB bytes."
    echo
    echo "ClickHouse \`system.parts\` (active parts), $S_TOTAL_SCANS scans written:"
    echo
    echo "| table | rows | bytes_on_disk | parts | bytes/scan | after OPTIMIZE FINAL: rows | bytes_on_disk | bytes/scan |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    join -t $'\t' "$TMP/parts-before.tsv" "$TMP/parts-after.tsv" | awk -F'\t' -v n="$S_TOTAL_SCANS" \
        '{ printf "| %s | %s | %s | %s | %.1f | %s | %s | %.1f |\n", $1, $2, $3, $4, $3 / n, $5, $6, $6 / n }'
    echo
    echo "## Redis commands per scan (one-code runs: $S_SCANS scans, $S_BATCHES batches)"
    echo
    echo "| command | calls | per scan | per batch |"
    echo "|---|---:|---:|---:|"
    join -a 2 -e 0 -o 0,1.2,2.2 "$TMP/cmd0" "$TMP/cmd1" | awk -v n="$S_SCANS" -v b="$S_BATCHES" \
        '$3 - $2 > 0 && $1 != "info" { d = $3 - $2; printf "| %s | %d | %.4f | %.1f |\n", $1, d, d / n, b ? d / b : 0 }'
    echo
    echo
    echo "100-code run: $S100_SCANS scans, $S100_BATCHES batches:"
    echo
    echo "| command | calls | per scan | per batch |"
    echo "|---|---:|---:|---:|"
    join -a 2 -e 0 -o 0,1.2,2.2 "$TMP/cmd1" "$TMP/cmd2" | awk -v n="$S100_SCANS" -v b="$S100_BATCHES" \
        '$3 - $2 > 0 && $1 != "info" { d = $3 - $2; printf "| %s | %d | %.4f | %.1f |\n", $1, d, d / n, b ? d / b : 0 }'
    echo
    echo "(\`info\` calls are this script's own.)"
    echo
    echo "One Redis master here (redis-server on 1 cpu, \`redis-benchmark -n 2000000 -P 16 hincrby capacity:bench f 1\` from the other): ${REDIS_HINCRBY:-n/a}"
    echo
    echo "## ClickHouse insert rate"
    echo
    echo "- the sink under the load above: $EV_Q INSERT queries, $EV_R rows, $EV_B bytes (\`system.events\` InsertQuery / InsertedRows / InsertedBytes deltas, rows include the materialized views' and the rollup input tables') over ${LOAD_S}s of load + $((T1 - T0 - LOAD_S))s of settling: $(per "$EV_Q" "$LOAD_S") inserts/s, $(per "$EV_R" "$LOAD_S") rows/s, for $S_SCANS scans in $S_BATCHES batches; $(per "$EV_B" "$EV_R") bytes/row uncompressed"
    echo "- one server here (clickhouse-server $CH_VERSION, $(nproc) cores, no gateway running): $INS INSERTs of $BATCH_ROWS scans rows (TabSeparated over HTTP, one at a time) in ${INS_S}s = $(per "$INS" "$INS_S") inserts/s, $(per $((INS * BATCH_ROWS)) "$INS_S") rows/s; $BENCH_ROWS rows in \`scans_bench\` (a copy of \`scans\`' shape, no materialized view)"
    echo
    echo "## Set-up"
    echo
    echo "- $(wrk --version 2>&1 | head -n1 | cut -c1-60); redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (persistence off); clickhouse-server $CH_VERSION"
    echo "- nproc $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')); loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- commit $(git rev-parse --short HEAD)$dirty; $(date -u +%Y-%m-%dT%H:%M:%SZ); wall time $((SECONDS - WALL_START))s"
} >"$TMP/report.md"
mkdir -p "$ROOT/load-tests/results"
cp "$TMP/report.md" "$ROOT/load-tests/results/capacity.md"
cat "$TMP/report.md"
log "report written to load-tests/results/capacity.md"

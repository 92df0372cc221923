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

log "building (release): gateway, load-tests"
cargo build --release --locked -p gateway -p load-tests
GATEWAY_BIN="$TARGET_DIR/release/codelink"
[[ -x "$GATEWAY_BIN" ]] || die "$GATEWAY_BIN not found"
CLK_TCK="$(getconf CLK_TCK)"

# --- process bookkeeping -----------------------------------------------------
TMP="$(mktemp -d -t codelink-capacity.XXXXXX)"
RUN_NAME=capacity
PIN=(taskset -c "$STORE_CPUS")
# Bookkeeping, redis-server, clickhouse-server and `ch`: see the file.
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"
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

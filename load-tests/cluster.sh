#!/usr/bin/env bash
# Scale-out scenario (issue 14): 3 gateways behind HAProxy, on a Redis Cluster
# (3 masters, each with a replica) and a ClickHouse cluster of 2 shards, all
# real servers on loopback addresses, no containers. It checks, in order:
#
#   1. sync:  a code created through one gateway is served (302) by the two
#             others; the delay from the creating answer to the first 302 on
#             each, over SYNC_PROBES codes (target: within 1 s);
#   2. load:  REQUESTS scans through HAProxy (round robin over the three);
#             then the Redis counters (stats API) and the ClickHouse rows (the
#             local table on each shard, FINAL) must equal what got a 302;
#   3. crash: the same load again, and gateway 2 is killed with SIGKILL after
#             KILL_AFTER seconds, then started again on its data directory
#             (it replays its spool). What got a 302 but is not stored is the
#             loss; it must not exceed what gateway 2 answered in its last
#             2 × --flush-ms (ARCHITECTURE.md, "Recording guarantee": a crash
#             loses the last flush interval plus the queue), read from
#             HAProxy's per-server counters sampled every 50 ms. No store
#             (Redis counters, ClickHouse rows, rollups) may hold more than
#             got a 302, per code and class.
#
# 127.0.0.1/127.0.0.2 only; every process is bounded (`timeout`) and stopped
# at exit. Knobs (environment): REQUESTS (300000 per load run), CONNECTIONS
# (64), MAX_SECONDS (120 per load run), SETTLE_SECONDS (60), SYNC_PROBES (10),
# KILL_AFTER (4 s into the crash run). Writes load-tests/results/cluster.md.
# Exit 0 when every check passes, 1 when one fails, 2 when the set-up fails.
set -euo pipefail
export LC_ALL=C

REQUESTS="${REQUESTS:-300000}"
CONNECTIONS="${CONNECTIONS:-64}"
MAX_SECONDS="${MAX_SECONDS:-120}"
SETTLE_SECONDS="${SETTLE_SECONDS:-60}"
SYNC_PROBES="${SYNC_PROBES:-10}"
KILL_AFTER="${KILL_AFTER:-4}"
FLUSH_MS=1000
ADMIN_KEY="cluster-admin-key-0123456789"
SECRET="cluster-load-secret-0123456789abcdef0123456789"
CH_DB="loadtest"
CH_CLUSTER="codelink"
CODES=(load1 load2 load3 load4 load5)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 2; }
for knob in REQUESTS CONNECTIONS MAX_SECONDS SETTLE_SECONDS SYNC_PROBES KILL_AFTER; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
done
SERVER_MAX_S=$((3 * MAX_SECONDS + 3 * SETTLE_SECONDS + 600))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WALL_START=$SECONDS

for tool in curl python3 timeout pgrep redis-server redis-cli haproxy cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (scripts/test installs redis-server, haproxy, clickhouse-server)"
done

log "building (release): gateway, load-tests"
BUILD_START=$SECONDS
cargo build --release --locked -p gateway -p load-tests
BUILD_S=$((SECONDS - BUILD_START))
GATEWAY_BIN="$TARGET_DIR/release/codelink"
LOAD_BIN="$TARGET_DIR/release/scan-load"
for b in "$GATEWAY_BIN" "$LOAD_BIN"; do [[ -x "$b" ]] || die "$b not found"; done

TMP="$(mktemp -d -t codelink-cluster.XXXXXX)"
RUN_NAME=cluster
PIN=()
SERVERS_AUTOSTART=0
# shellcheck source=lib/servers.sh
source "$ROOT/load-tests/lib/servers.sh"

# free_ports N HOSTS STEP...: a base port B such that B..B+N-1 (and, for each
# extra STEP, B+STEP..) are free on every host in HOSTS (comma-separated).
free_ports() {
    python3 - "$@" <<'PY'
import random, socket, sys
n, hosts, steps = int(sys.argv[1]), sys.argv[2].split(","), [0] + [int(s) for s in sys.argv[3:]]
for _ in range(200):
    base = random.randrange(20000, 45000)
    ok = True
    for port in (base + i + s for i in range(n) for s in steps):
        for h in hosts:
            s = socket.socket()
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
    if ok:
        print(base)
        sys.exit(0)
sys.exit("no free port range")
PY
}

# --- Redis Cluster: 3 masters, 3 replicas --------------------------------------
# The cluster bus listens on port + 10000, hence ports below 45000 + 10000.
R_BASE="$(free_ports 6 127.0.0.1 10000)" || die "no free ports for Redis Cluster"
REDIS_NODES=()
for i in 0 1 2 3 4 5; do
    port=$((R_BASE + i))
    start_redis_server "$port" "$TMP/redis-$port" --cluster-enabled yes \
        --cluster-config-file "$TMP/redis-$port/nodes.conf" --cluster-node-timeout 2000
    REDIS_NODES+=("127.0.0.1:$port")
done
log "creating the Redis Cluster (3 masters + 3 replicas) on ports $R_BASE-$((R_BASE + 5))"
redis-cli --cluster create "${REDIS_NODES[@]}" --cluster-replicas 1 --cluster-yes >"$TMP/redis-create.log" 2>&1 ||
    die "redis-cli --cluster create failed$(show_log "$TMP/redis-create.log")"
for ((i = 0; ; i++)); do
    ok=1
    for node in "${REDIS_NODES[@]}"; do
        redis-cli -h 127.0.0.1 -p "${node#*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    ((ok)) && break
    ((i < 200)) || die "the Redis Cluster did not reach cluster_state:ok within 20s"
    sleep 0.1
done
REDIS_SEEDS="redis://${REDIS_NODES[0]},redis://${REDIS_NODES[1]},redis://${REDIS_NODES[2]}"
# masters: the nodes holding slots, as the cluster says now.
redis_masters() {
    redis-cli -h 127.0.0.1 -p "$R_BASE" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {sub(/@.*/, "", $2); print $2}' | sort
}

# --- ClickHouse cluster: 2 shards, one node each, on 127.0.0.1 and 127.0.0.2 --
# Every node's HTTP interface listens on the same port (as real nodes do on
# their own hosts): the gateway reaches a shard's node at its host with the
# seed's port. The native (TCP) ports differ: 18.16 takes a <remote_servers>
# entry for itself when its address is local (all of 127/8 is) and its port
# is its own, so one shared TCP port would make each node read itself twice.
C_BASE="$(free_ports 3 127.0.0.1,127.0.0.2)" || die "no free ports for ClickHouse"
CH_HTTP_PORT=$C_BASE
CH_TCP_PORTS=($((C_BASE + 1)) $((C_BASE + 2)))
CH_HOSTS=(127.0.0.1 127.0.0.2)
REMOTE="<remote_servers><$CH_CLUSTER>"
for n in 0 1; do
    REMOTE+="<shard><replica><host>${CH_HOSTS[$n]}</host><port>${CH_TCP_PORTS[$n]}</port></replica></shard>"
done
REMOTE+="</$CH_CLUSTER></remote_servers>"
for n in 0 1; do
    start_clickhouse_server "$TMP/clickhouse-$n" "codelink-cluster-$$-shard$((n + 1))" "${CH_HOSTS[$n]}" \
        "$CH_HTTP_PORT" "${CH_TCP_PORTS[$n]}" "$REMOTE<macros><shard>$((n + 1))</shard><replica>${CH_HOSTS[$n]}</replica></macros>"
done
CH="http://127.0.0.1:$CH_HTTP_PORT"
CH_VERSION="$(ch 'SELECT version()')" || die "clickhouse-server does not answer queries"
[[ "$(ch "SELECT count() FROM system.clusters WHERE cluster = '$CH_CLUSTER'")" == 2 ]] ||
    die "ClickHouse does not list the 2-shard cluster $CH_CLUSTER"

# --- 3 gateways ------------------------------------------------------------------
GW_PORTS=()
GW_PIDS=()
for i in 0 1 2; do GW_PORTS+=("$(free_port)"); done
# start_gateway N: gateway N (1-based) on its port and data directory.
start_gateway() {
    local n="$1" port="${GW_PORTS[$(($1 - 1))]}"
    CODELINK_LOG=warn CODELINK_SECRET="$SECRET" CODELINK_DRAIN_SECS=0 \
        timeout -s TERM "$SERVER_MAX_S" "$GATEWAY_BIN" serve \
        --listen "127.0.0.1:$port" --data-dir "$TMP/gw$n" --admin-key "$ADMIN_KEY" \
        --redis-cluster "$REDIS_SEEDS" --redis-wait-replicas 1 \
        --clickhouse-url "$CH" --clickhouse-cluster "$CH_CLUSTER" --clickhouse-database "$CH_DB" \
        --flush-ms "$FLUSH_MS" --client-ip-header x-forwarded-for \
        --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 --repeat-window-secs 0 \
        >>"$TMP/gw$n.log" 2>&1 &
    GW_PIDS[n - 1]=$!
    PIDS+=("$!")
    wait_for "gateway $n" "$!" "http://127.0.0.1:$port/healthz" "$TMP/gw$n.log"
    expect_status 200 "http://127.0.0.1:$port/readyz"
}
for n in 1 2 3; do start_gateway "$n"; done
log "gateways on ${GW_PORTS[*]} (redis cluster $REDIS_SEEDS; clickhouse cluster $CH_CLUSTER via $CH)"

# --- HAProxy -----------------------------------------------------------------
# deploy/haproxy.cfg's balancing and /readyz check; unlike it, the load
# generator's X-Forwarded-For (one simulated visitor per address) is passed on
# as sent, so the gateways see as many visitors as the generator simulates.
HA_PORT="$(free_port)"
HA_STATS="$(free_port)"
cat >"$TMP/haproxy.cfg" <<CFG
defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    timeout check 2s
    retries 2
    option redispatch
frontend web
    bind 127.0.0.1:$HA_PORT
    default_backend gateways
backend gateways
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
    server gw1 127.0.0.1:${GW_PORTS[0]}
    server gw2 127.0.0.1:${GW_PORTS[1]}
    server gw3 127.0.0.1:${GW_PORTS[2]}
frontend stats
    bind 127.0.0.1:$HA_STATS
    stats enable
    stats uri /stats
CFG
haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy -c refused the generated config"
timeout -s TERM "$SERVER_MAX_S" haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
FRONT="http://127.0.0.1:$HA_PORT"
wait_for haproxy "$HA_PID" "$FRONT/healthz" "$TMP/haproxy.log"
# all three UP
for ((i = 0; ; i++)); do
    up="$(curl -s --max-time 2 "http://127.0.0.1:$HA_STATS/stats;csv" | grep -c '^gateways,gw[123],.*,UP,' || true)"
    [[ "$up" == 3 ]] && break
    ((i < 100)) || die "HAProxy does not see three gateways UP"
    sleep 0.1
done
log "HAProxy on $FRONT (stats :$HA_STATS), three gateways UP"

AUTH=(-H "Authorization: Bearer $ADMIN_KEY")
for code in "${CODES[@]}"; do
    expect_status 201 "$FRONT/api/v1/codes" -X POST "${AUTH[@]}" -H 'Content-Type: application/json' \
        --data "{\"code\":\"$code\",\"destination\":\"https://shop.example/p\",\"owner\":\"loader\",\"channels\":{\"yt\":{\"utm_source\":\"youtube\"},\"ig\":{\"utm_source\":\"instagram\"},\"bio\":{\"utm_source\":\"bio\"}}}"
done

# --- 1. sync ---------------------------------------------------------------------
log "sync: $SYNC_PROBES codes, each created through one gateway and polled on the two others"
python3 - "$(IFS=,; echo "${GW_PORTS[*]}")" "$ADMIN_KEY" "$SYNC_PROBES" >"$TMP/sync.json" <<'PY'
import http.client, json, sys, time
ports, key, n = [int(p) for p in sys.argv[1].split(",")], sys.argv[2], int(sys.argv[3])
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=5) for p in ports}
def call(p, method, path, body=None, headers={}):
    c = conns[p]
    c.request(method, path, body, headers)
    r = c.getresponse()
    r.read()
    return r.status
probes = []
for i in range(n):
    src = ports[i % len(ports)]
    code = f"sync{i + 1}"
    body = json.dumps({"code": code, "destination": "https://shop.example/sync", "owner": "loader"})
    status = call(src, "POST", "/api/v1/codes", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    if status != 201:
        sys.exit(f"creating {code} through :{src} answered {status}")
    t0 = time.monotonic()
    seen = {}
    while len(seen) < len(ports) - 1 and time.monotonic() - t0 < 5:
        for p in ports:
            if p != src and p not in seen and call(p, "GET", f"/{code}", None, {"User-Agent": UA}) == 302:
                seen[p] = round((time.monotonic() - t0) * 1000, 1)
        time.sleep(0.005)
    probes.append({"code": code, "created_on": src, "served_after_ms": seen})
json.dump(probes, sys.stdout)
PY
read -r SYNC_MAX SYNC_MED SYNC_OK < <(python3 - "$TMP/sync.json" <<'PY'
import json, statistics, sys
probes = json.load(open(sys.argv[1]))
lat = [ms for p in probes for ms in p["served_after_ms"].values()]
complete = all(len(p["served_after_ms"]) == 2 for p in probes)
print(max(lat) if lat else "n/a", round(statistics.median(lat), 1) if lat else "n/a",
      "yes" if complete and lat and max(lat) <= 1000 else "no")
PY
)
log "sync: slowest ${SYNC_MAX} ms, median ${SYNC_MED} ms (within 1 s on both others: $SYNC_OK)"

# --- snapshots -----------------------------------------------------------------
LOAD=("$LOAD_BIN" --connections "$CONNECTIONS" --threads 1 --max-seconds "$MAX_SECONDS" --target "$FRONT")
# snapshot: the shared Redis counters (through HAProxy) and the ClickHouse
# rows of every shard's local table (a code lives on one shard, so FINAL on
# each is exact), as accounting.py reads them.
snapshot() {
    local code h
    for code in "${CODES[@]}"; do
        curl -s --max-time 5 "${AUTH[@]}" -o "$TMP/stats-$code.json" "$FRONT/api/v1/codes/$code/stats" || true
    done
    : >"$TMP/ch-by-code.tsv"
    : >"$TMP/ch-by-channel.tsv"
    for h in "${CH_HOSTS[@]}"; do
        ch "SELECT code, count(), uniqExact(scan_id), sum(is_bot), countIf(source='qr') FROM $CH_DB.scans FINAL GROUP BY code ORDER BY code FORMAT TSV" \
            "http://$h:$CH_HTTP_PORT" >>"$TMP/ch-by-code.tsv" || true
        ch "SELECT code, channel, is_bot, count() FROM $CH_DB.scans FINAL GROUP BY code, channel, is_bot ORDER BY code, channel, is_bot FORMAT TSV" \
            "http://$h:$CH_HTTP_PORT" >>"$TMP/ch-by-channel.tsv" || true
    done
}
metrics() {
    local n files=()
    for n in 1 2 3; do
        curl -s --max-time 5 -o "$TMP/metrics-$1-gw$n.txt" "http://127.0.0.1:${GW_PORTS[$((n - 1))]}/metrics" || true
        files+=("$TMP/metrics-$1-gw$n.txt")
    done
    (IFS=,; echo "${files[*]}")
}
ACC=(python3 "$ROOT/load-tests/lib/accounting.py" "$TMP")

# --- 2. load -------------------------------------------------------------------
log "load: $REQUESTS requests over $CONNECTIONS connections through HAProxy"
timeout -s TERM $((MAX_SECONDS + 30)) "${LOAD[@]}" --requests "$REQUESTS" >"$TMP/load.json" 2>"$TMP/load.err" || true
cat "$TMP/load.err" >&2
[[ -s "$TMP/load.json" ]] || die "scan-load produced no report"
log "waiting (up to ${SETTLE_SECONDS}s) for Redis and ClickHouse to hold every scan"
SETTLE_END=$((SECONDS + SETTLE_SECONDS))
SETTLE_START=$SECONDS
while :; do
    snapshot
    "${ACC[@]}" quiet --runs "$TMP/load.json" --ignore-prefix sync && break
    ((SECONDS < SETTLE_END)) || break
    sleep 0.5
done
LOAD_SETTLE_S=$((SECONDS - SETTLE_START))
LOAD_RC=0
"${ACC[@]}" report --runs "$TMP/load.json" --metrics "$(metrics load)" --ignore-prefix sync >/dev/null || LOAD_RC=$?
# The rollups, through the analytics API: one code's summary is read on its
# shard, the all-codes one through the Distributed tables (it also holds the
# sync probes' 2 scans each).
rollups_match() {
    local code
    for code in "${CODES[@]}"; do
        curl -s --max-time 10 "${AUTH[@]}" -o "$TMP/summary-$code.json" "$FRONT/api/v1/analytics/summary?code=$code" || true
    done
    curl -s --max-time 10 "${AUTH[@]}" -o "$TMP/summary-all.json" "$FRONT/api/v1/analytics/summary" || true
    python3 - "$TMP" "$SYNC_PROBES" "${CODES[@]}" >"$TMP/rollup-check.txt" <<'PY'
import json, sys
d, probes, codes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sent = json.load(open(f"{d}/load.json"))["sent"]
lines, ok = [], True
def scans(name):
    try:
        return json.load(open(f"{d}/summary-{name}.json"))["summary"]["scans"]
    except (OSError, ValueError, KeyError):
        return None
for c in codes:
    got = scans(c)
    ok &= got == sent[c]["total"]
    lines.append(f"{c}: sent {sent[c]['total']}, rollup {got}")
want = sum(sent[c]["total"] for c in codes) + 2 * probes
got = scans("all")
ok &= got == want
lines.append(f"all codes: sent {want} (with the sync probes' {2 * probes}), rollup {got}")
print(("PASS" if ok else "FAIL") + "  rollups (analytics summary, per code on its shard and all codes through Distributed): " + "; ".join(lines))
sys.exit(0 if ok else 1)
PY
}
for ((i = 0; ; i++)); do
    rollups_match && break
    ((i < 20)) || { LOAD_RC=1; break; }
    sleep 0.5
done
cat "$TMP/rollup-check.txt" >>"$TMP/checks.txt"
cp "$TMP/checks.txt" "$TMP/load-checks.txt"
cp "$TMP/accounting.md" "$TMP/load-accounting.md"
# where the rows and keys went
for n in 0 1; do
    ch "SELECT code, count() FROM $CH_DB.scans FINAL WHERE code LIKE 'load%' GROUP BY code ORDER BY code FORMAT TSV" \
        "http://${CH_HOSTS[$n]}:$CH_HTTP_PORT" | awk -v s=$((n + 1)) '{printf "shard %s: %s %s rows\n", s, $1, $2}'
done >"$TMP/shards.txt"
SHARED_CODES="$(awk '{print $3}' "$TMP/shards.txt" | sort | uniq -d | tr '\n' ' ')"
for m in $(redis_masters); do
    echo "master $m: $(redis-cli -h 127.0.0.1 -p "${m#*:}" dbsize) keys"
done >"$TMP/masters.txt"
log "load accounting: $([[ $LOAD_RC == 0 ]] && echo PASS || echo FAIL)"

# --- 3. crash ------------------------------------------------------------------
log "crash: $REQUESTS more requests; gateway 2 gets SIGKILL after ${KILL_AFTER}s, then starts again"
python3 - "$HA_STATS" "$((MAX_SECONDS + 60))" "$TMP/stop-sampling" >"$TMP/samples.tsv" <<'PY' &
# HAProxy's count of 3xx answers from gw2, every 50 ms: "unix_ns count".
import sys, time, urllib.request
port, max_s, stop = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
import os
end = time.time() + max_s
col = None
while time.time() < end and not os.path.exists(stop):
    try:
        lines = urllib.request.urlopen(f"http://127.0.0.1:{port}/stats;csv", timeout=1).read().decode().splitlines()
        if col is None:
            col = lines[0].lstrip("# ").split(",").index("hrsp_3xx")
        row = next(l.split(",") for l in lines if l.startswith("gateways,gw2,"))
        print(time.time_ns(), row[col], flush=True)
    except Exception:
        pass
    time.sleep(0.05)
PY
SAMPLER=$!
PIDS+=("$SAMPLER")
timeout -s TERM $((MAX_SECONDS + 30)) "${LOAD[@]}" --requests "$REQUESTS" >"$TMP/crash.json" 2>"$TMP/crash.err" &
LOADER=$!
PIDS+=("$LOADER")
sleep "$KILL_AFTER"
GW2_REAL="$(pgrep -P "${GW_PIDS[1]}" | head -n1)"
[[ -n "$GW2_REAL" ]] || die "gateway 2's process not found"
KILL_NS="$(date +%s%N)"
kill -KILL "$GW2_REAL"
log "killed gateway 2 (pid $GW2_REAL)"
sleep 2
start_gateway 2
log "gateway 2 started again on its data directory"
wait "$LOADER" || true
touch "$TMP/stop-sampling"
wait "$SAMPLER" || true
cat "$TMP/crash.err" >&2
[[ -s "$TMP/crash.json" ]] || die "scan-load produced no report for the crash run"

# settle: until what is stored stops changing for 5 s
log "waiting (up to ${SETTLE_SECONDS}s) for the stores to stop changing"
SETTLE_END=$((SECONDS + SETTLE_SECONDS))
prev=""
stable=0
while ((SECONDS < SETTLE_END)); do
    snapshot
    cur="$("${ACC[@]}" loss --runs "$TMP/load.json,$TMP/crash.json" --ignore-prefix sync)"
    if [[ "$cur" == "$prev" ]]; then stable=$((stable + 1)); else stable=0; fi
    prev="$cur"
    ((stable >= 10)) && break
    sleep 0.5
done
echo "$prev" >"$TMP/loss.json"
CRASH_METRICS="$(metrics crash)"
# The rollups after the crash (files summary-*.json; their verdict is below),
# and the raw rows before FINAL collapses replayed ones.
rollups_match >/dev/null || true
for h in "${CH_HOSTS[@]}"; do
    ch "SELECT count() FROM $CH_DB.scans WHERE code LIKE 'load%'" "http://$h:$CH_HTTP_PORT" || echo 0
done | awk '{n += $1} END {print n}' >"$TMP/raw-rows.txt"

CRASH_RC=0
python3 - "$TMP" "$KILL_NS" "$FLUSH_MS" "$CRASH_METRICS" >"$TMP/crash-verdict.txt" <<'PY' || CRASH_RC=1
import json, re, sys
d, kill_ns, flush_ms, metric_files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
loss = json.load(open(f"{d}/loss.json"))
samples = [tuple(int(x) for x in l.split()) for l in open(f"{d}/samples.tsv") if len(l.split()) == 2]
def count_at(t_ns):
    """gw2's 3xx count in the last sample taken at or before t_ns."""
    before = [c for t, c in samples if t <= t_ns]
    return before[-1] if before else 0
# gw2's count when it died: the first sample at least 200 ms after the kill
# (before it was started again 2 s later).
after = [c for t, c in samples if kill_ns + 200_000_000 <= t <= kill_ns + 1_900_000_000]
at_kill = after[0] if after else None
lines, ok = [], at_kill is not None
if at_kill is None:
    lines.append("FAIL  bound: no HAProxy sample of gw2 between 0.2 and 1.9 s after the kill")
window = {w: (at_kill - count_at(kill_ns - w * 1_000_000)) if at_kill is not None else None
          for w in (flush_ms, 2 * flush_ms)}
bound = window[2 * flush_ms]
# The rollups (analytics summary per code) cannot collapse a replay as the
# raw rows' FINAL does: a batch counted twice would show there.
for c, v in loss.items():
    try:
        v["rollups"] = {"total": json.load(open(f"{d}/summary-{c}.json"))["summary"]["scans"]}
    except (OSError, ValueError, KeyError):
        v["rollups"] = {"total": None}
for sink in ("redis", "clickhouse", "rollups"):
    sent = sum(v["sent"]["total"] for v in loss.values())
    got = sum((v[sink]["total"] or 0) for v in loss.values())
    lost = sent - got
    # Per code and class, no store may hold more than got a 302.
    over = [f"{c}:{k}" for c, v in loss.items() for k in ("total", "human", "bot")
            if k in v[sink] and (v[sink][k] or 0) > v["sent"][k]]
    missing = [c for c, v in loss.items() if v[sink]["total"] is None]
    fine = bound is not None and 0 <= lost <= bound and not over and not missing
    ok &= fine
    lines.append(f"{'PASS' if fine else 'FAIL'}  {sink}: {sent} answered 302, {got} stored, lost {lost} "
                 f"(bound: gw2 answered {window[flush_ms]} in its last {flush_ms} ms, {bound} in its last {2 * flush_ms} ms)"
                 + (f"; more stored than sent for {over}" if over else "")
                 + (f"; unreadable for {missing}" if missing else ""))
raw = open(f"{d}/raw-rows.txt").read().strip()
lines.append(f"info  clickhouse raw rows before FINAL: {raw} (replayed rows collapse in FINAL)")
spooled = 0
for path in metric_files:
    try:
        for l in open(path):
            m = re.match(r"^codelink_scans_(?:dropped|lost)_total(\{[^}]*\})? (\d+)$", l.strip())
            if m:
                spooled += int(m.group(2))
    except OSError:
        pass
lines.append(f"info  dropped + lost counters of the three gateways after the crash run: {spooled}")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY

# --- report --------------------------------------------------------------------
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
statuses() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["status_counts"]))' "$1"; }
SYNC_RC=0
[[ "$SYNC_OK" == yes ]] || SYNC_RC=1
WALL_S=$((SECONDS - WALL_START))
dirty=""
[[ -z "$(git status --porcelain 2>/dev/null || true)" ]] || dirty=" (uncommitted changes)"
verdict() { (($1 == 0)) && echo PASS || echo FAIL; }
{
    echo "# codelink scale-out: 3 gateways, HAProxy, Redis Cluster, ClickHouse cluster"
    echo
    echo "\`load-tests/cluster.sh\` (REQUESTS=$REQUESTS CONNECTIONS=$CONNECTIONS KILL_AFTER=$KILL_AFTER), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty, $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo
    echo "## 1. A code created on one gateway is served by the others: $(verdict $SYNC_RC)"
    echo
    echo "$SYNC_PROBES codes, each created through one gateway (in turn); the two others polled every 5 ms until they answer 302."
    echo "Time from the creating answer to the first 302: median $SYNC_MED ms, slowest $SYNC_MAX ms (target ≤ 1000 ms)."
    echo
    echo "## 2. Under load, counts and rows equal what was sent: $(verdict $LOAD_RC)"
    echo
    echo "| run | req/s | p50 | p99 | statuses |"
    echo "|---|---:|---:|---:|---|"
    for k in load crash; do
        echo "| $k | $(jget "$TMP/$k.json" rps) | $(jget "$TMP/$k.json" p50_us) µs | $(jget "$TMP/$k.json" p99_us) µs | \`$(statuses "$TMP/$k.json")\` |"
    done
    echo
    echo "Settled ${LOAD_SETTLE_S}s after the last answer."
    echo
    echo '```'
    cat "$TMP/load-checks.txt"
    echo '```'
    echo
    cat "$TMP/load-accounting.md"
    echo
    echo "Where the data went (after the load run):"
    echo
    echo '```'
    cat "$TMP/shards.txt" "$TMP/masters.txt"
    echo '```'
    [[ -z "$SHARED_CODES" ]] || echo "**A code has rows on both shards: $SHARED_CODES**"
    echo
    echo "## 3. One gateway killed with SIGKILL mid-load: $(verdict $CRASH_RC)"
    echo
    echo "Gateway 2 was killed ${KILL_AFTER}s into the second run and started again 2 s later on its data directory; HAProxy's /readyz check took it out and back."
    echo "The two runs' answers against the stores (cumulative):"
    echo
    echo '```'
    cat "$TMP/crash-verdict.txt"
    echo '```'
    echo
    echo "## Set-up"
    echo
    echo "- Redis Cluster: 6 × redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (\`--cluster-enabled yes --cluster-node-timeout 2000\`, persistence off), \`redis-cli --cluster create … --cluster-replicas 1\`; the gateways get the three first as seeds"
    echo "- ClickHouse: 2 × clickhouse-server $CH_VERSION, one shard each, on 127.0.0.1 and 127.0.0.2 (one HTTP port, a TCP port each), \`<remote_servers><$CH_CLUSTER>\`; raw rows and rollups read back from each shard's local tables"
    echo "- gateways: \`codelink serve --redis-cluster … --redis-wait-replicas 1 --clickhouse-url … --clickhouse-cluster $CH_CLUSTER --flush-ms $FLUSH_MS --client-ip-header x-forwarded-for --scan-rate-per-ip 1000000 --scan-burst-per-ip 1000000 --repeat-window-secs 0\`, one shared \`CODELINK_SECRET\`"
    echo "- $(haproxy -v | head -n1 | cut -c1-40), round robin, \`/readyz\` checked every 1 s (fall 2, rise 2), retries 2 with redispatch"
    echo "- generator: \`scan-load --connections $CONNECTIONS --threads 1\` against HAProxy; everything shares $(nproc) cores; wall time ${WALL_S}s (build ${BUILD_S}s)"
} >"$TMP/report.md"
mkdir -p "$ROOT/load-tests/results"
cp "$TMP/report.md" "$ROOT/load-tests/results/cluster.md"
cat "$TMP/report.md"
exit $((SYNC_RC || LOAD_RC || CRASH_RC ? 1 : 0))

# Sourced by scan-load.sh and capacity.sh: process bookkeeping (every
# process started is in PIDS and stopped by the EXIT trap, newest first), a
# private redis-server and clickhouse-server on free 127.0.0.1 ports, and
# `ch`, one ClickHouse query over HTTP.
#
# The caller defines before sourcing: log, die, TMP (a temp dir), RUN_NAME,
# SERVER_MAX_S (how long the servers may live), CLICKHOUSE_BIN, and PIN (an
# array prefixed to the servers' command lines, e.g. (taskset -c 1); may be
# empty). Afterwards: REDIS_PORT, REDIS_PID, CH (the HTTP URL), CH_HTTP_PORT,
# CH_TCP_PORT, CH_DIR, CH_PID, CH_VERSION.
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
log "starting redis-server on 127.0.0.1:$REDIS_PORT (persistence off)"
"${PIN[@]+"${PIN[@]}"}" timeout -s TERM "$SERVER_MAX_S" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
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
CH_NAME="codelink-$RUN_NAME-$$"
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
(cd "$CH_DIR" && exec "${PIN[@]+"${PIN[@]}"}" timeout -s TERM "$SERVER_MAX_S" "$CLICKHOUSE_BIN" \
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

# Sourced by scan-load.sh, capacity.sh and cluster.sh: process bookkeeping
# (every process started is in PIDS and stopped by the EXIT trap, newest
# first), private redis-server and clickhouse-server processes on free
# loopback ports, and `ch`, one ClickHouse query over HTTP.
#
# The caller defines before sourcing: log, die, TMP (a temp dir), RUN_NAME,
# SERVER_MAX_S (how long the servers may live), and PIN (an
# array prefixed to the servers' command lines, e.g. (taskset -c 1); may be
# empty); CLICKHOUSE_BIN only if clickhouse-server is neither in Debian's
# place nor on PATH. Unless SERVERS_AUTOSTART=0, one redis-server and one
# clickhouse-server are started at once; afterwards: REDIS_PORT, REDIS_PID,
# CH (the HTTP URL), CH_HTTP_PORT, CH_TCP_PORT, CH_DIR, CH_PID, CH_VERSION.
# With SERVERS_AUTOSTART=0 the caller starts what it needs with
# start_redis_server and start_clickhouse_server.
PIDS=()
if [[ -z "${CLICKHOUSE_BIN:-}" ]]; then
    for _ch_path in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [[ -x "$_ch_path" ]] && { CLICKHOUSE_BIN="$_ch_path"; break; }
    done
    CLICKHOUSE_BIN="${CLICKHOUSE_BIN:-$(command -v clickhouse-server || true)}"
fi


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
# start_redis_server PORT DIR [extra redis-server args...]: persistence off,
# 127.0.0.1; sets STARTED_PID once it answers PING.
start_redis_server() {
    local port="$1" dir="$2" i
    shift 2
    mkdir -p "$dir"
    "${PIN[@]+"${PIN[@]}"}" timeout -s TERM "$SERVER_MAX_S" redis-server --port "$port" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$dir" "$@" >"$dir/redis.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for ((i = 0; ; i++)); do
        alive "$STARTED_PID" || die "redis-server :$port exited during start-up$(show_log "$dir/redis.log")"
        [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == PONG ]] && break
        ((i < 100)) || die "redis-server :$port did not answer PING within 10s$(show_log "$dir/redis.log")"
        sleep 0.1
    done
}

# --- clickhouse --------------------------------------------------------------
# start_clickhouse_server DIR NAME HOST HTTP_PORT TCP_PORT [XML]: the minimal
# config 18.16 accepts (as testkit/src/clickhouse.rs writes it: <logger>,
# <mark_cache_size> and a default profile, user and quota) listening on HOST
# (a loopback address), plus XML inside <yandex> (e.g. <remote_servers>,
# <macros>); sets STARTED_PID once /ping answers and the server answering is
# this one (its display name NAME).
start_clickhouse_server() {
    local dir="$1" name="$2" host="$3" http="$4" tcp="$5" extra="${6:-}" i
    [[ -n "$CLICKHOUSE_BIN" ]] || die "clickhouse-server not found (scripts/test installs it, or set CLICKHOUSE_BIN)"
    mkdir -p "$dir/log" "$dir/data"
    cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$dir/log/server.log</log>
    <errorlog>$dir/log/server.err.log</errorlog>
    <size>10M</size>
    <count>2</count>
  </logger>
  <display_name>$name</display_name>
  <listen_host>$host</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/data/tmp/</tmp_path>
  <user_files_path>$dir/data/user_files/</user_files_path>
  <format_schema_path>$dir/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <profiles><default/></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.0/8</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default/></quotas>
  $extra
</yandex>
XML
    local url="http://$host:$http"
    log "starting clickhouse-server ($CLICKHOUSE_BIN) on $url"
    (cd "$dir" && exec "${PIN[@]+"${PIN[@]}"}" timeout -s TERM "$SERVER_MAX_S" "$CLICKHOUSE_BIN" \
        --config-file="$dir/config.xml" </dev/null >"$dir/log/stdout.log" 2>&1) &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for ((i = 0; ; i++)); do
        alive "$STARTED_PID" || die "clickhouse-server $url exited during start-up$(show_log "$dir/log/stdout.log")$(show_log "$dir/log/server.err.log")"
        # Ready when /ping answers and the server that answers is ours (its display name).
        if [[ "$(curl -s --max-time 1 "$url/ping" || true)" == Ok. ]] &&
            curl -s --max-time 5 -D - -o /dev/null --data-binary 'SELECT 1' "$url/" 2>/dev/null |
            tr -d '\r' | grep -qi "^x-clickhouse-server-display-name: $name\$"; then
            break
        fi
        ((i < 300)) || die "clickhouse-server $url not ready within 30s$(show_log "$dir/log/server.err.log")"
        sleep 0.1
    done
}

# ch SQL [URL]: one query over HTTP (to $CH unless URL is given); the body on stdout, failure with ClickHouse's error text.
ch() {
    local out code
    out="$(curl -s --max-time 30 -w '\n%{http_code}' --data-binary "$1" "${2:-$CH}/")" || return 1
    code="${out##*$'\n'}"
    out="${out%$'\n'*}" # the body, with its own final newline
    if [[ "$code" != 200 ]]; then
        printf 'clickhouse answered %s to: %s\n%s\n' "$code" "$1" "$out" >&2
        return 1
    fi
    printf '%s' "$out"
}

# --- the default pair --------------------------------------------------------
if [[ "${SERVERS_AUTOSTART:-1}" == 1 ]]; then
    REDIS_PORT="$(free_port)"
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (persistence off)"
    start_redis_server "$REDIS_PORT" "$TMP/redis"
    REDIS_PID=$STARTED_PID

    CH_HTTP_PORT="$(free_port)"
    CH_TCP_PORT="$(free_port)"
    while [[ "$CH_TCP_PORT" == "$CH_HTTP_PORT" ]]; do CH_TCP_PORT="$(free_port)"; done
    CH_DIR="$TMP/clickhouse"
    start_clickhouse_server "$CH_DIR" "codelink-$RUN_NAME-$$" 127.0.0.1 "$CH_HTTP_PORT" "$CH_TCP_PORT"
    CH_PID=$STARTED_PID
    CH="http://127.0.0.1:$CH_HTTP_PORT"
    CH_VERSION="$(ch 'SELECT version()')" || die "clickhouse-server does not answer queries"
fi

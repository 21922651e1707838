#!/bin/bash
# A private ClickHouse server (Debian's clickhouse-server, 18.16) on loopback for the tests and
# benchmarks of the ClickHouse engine (docs/scale-out.md).
#
#   scripts/clickhouse-test-server.sh start DIR   starts it; writes DIR/env (shell variables)
#   scripts/clickhouse-test-server.sh stop DIR    stops the server started in DIR, removes DIR
#
# It installs nothing (scripts/install-deps.sh test does) and changes nothing outside DIR: a
# private config and users file, data, logs and the pid file live in DIR; it listens on
# 127.0.0.1 only, on two ports picked free at run time (HTTP and the native protocol, which
# ClickHouse always opens). A failed start stops what it started and removes DIR. Exit status
# 0 when /ping answers "Ok."; else 1 with the reason (and the server's error log) on stderr.
# For the Distributed-table tests the server declares a cluster, eastrace_two_shards: two
# shards on this server itself, whose tables live in the databases shard1 and shard2 (a
# Distributed table over database '' reaches each shard's default database).
#
# DIR/env defines:
#   CH_HTTP_PORT   the HTTP interface (what eastrace talks to)
#   CH_TCP_PORT    the native protocol (clickhouse-client --port)
#   CH_URL         clickhouse://127.0.0.1:CH_HTTP_PORT  (append /DB)
#   CH_PID         the server's process id
set -u

die() { echo "clickhouse-test-server: $*" >&2; exit 1; }

SERVER=${CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}

# pick_port VAR: a TCP port on 127.0.0.1 that nothing listens on and that this run has not
# handed out, below the ephemeral range (outgoing connections hold ephemeral ports a connect
# test cannot see but that make bind() fail). No subshell: $RANDOM and USED_PORTS persist.
USED_PORTS=" "
EPH_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "${EPH_LOW:-0}" -gt 12000 ] 2>/dev/null || EPH_LOW=32768
pick_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (EPH_LOW - 10000) ))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    return 1
}

ping_ok() { # port
    local out
    out=$(curl -s --max-time 1 "http://127.0.0.1:$1/ping" 2>/dev/null) && [ "$out" = "Ok." ]
}

stop_dir() {
    local dir=$1 pid i
    [ -d "$dir" ] || return 0
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # The data is temporary: a second for a clean shutdown, then no more waiting.
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 1 10); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}

write_config() { # dir http tcp
    local dir=$1
    cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$dir/log/server.log</log>
    <errorlog>$dir/log/error.log</errorlog>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$2</http_port>
  <tcp_port>$3</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>16</max_concurrent_queries>
  <remote_servers>
    <eastrace_two_shards>
      <shard><replica><host>127.0.0.1</host><port>$3</port><default_database>shard1</default_database></replica></shard>
      <shard><replica><host>127.0.0.1</host><port>$3</port><default_database>shard2</default_database></replica></shard>
    </eastrace_two_shards>
  </remote_servers>
</yandex>
EOF
    cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default><max_memory_usage>2000000000</max_memory_usage></default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
EOF
}

start() {
    local dir=$1 http tcp attempt pid i
    [ -x "$SERVER" ] || die "missing $SERVER (install the Debian package clickhouse-server: scripts/install-deps.sh test)"
    command -v curl >/dev/null || die "missing curl"
    [ -e "$dir" ] && die "$dir exists (stop it first)"
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd)
    # A port picked free can be taken by another test before the server binds it: retry.
    for attempt in 1 2 3; do
        pick_port http && pick_port tcp || { stop_dir "$dir"; die "no free port on 127.0.0.1"; }
        rm -rf "$dir/data" "$dir/tmp" "$dir/log" "$dir/pid"
        mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
        write_config "$dir" "$http" "$tcp"
        (cd "$dir" && "$SERVER" --config-file="$dir/config.xml" --pid-file="$dir/pid" --daemon \
            >"$dir/log/stdout.log" 2>&1)
        for i in $(seq 1 150); do # 15 s
            if ping_ok "$http"; then
                pid=$(cat "$dir/pid" 2>/dev/null || true)
                {
                    echo "CH_HTTP_PORT=$http"
                    echo "CH_TCP_PORT=$tcp"
                    echo "CH_URL=clickhouse://127.0.0.1:$http"
                    echo "CH_PID=$pid"
                } >"$dir/env"
                return 0
            fi
            # The daemon gone (a bind failure, a bad config): no point in waiting.
            if [ -s "$dir/pid" ] && ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
                break
            fi
            sleep 0.1
        done
        if grep -qs "Address already in use" "$dir/log/error.log" "$dir/log/stdout.log"; then
            pid=$(cat "$dir/pid" 2>/dev/null || true)
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
            continue
        fi
        break
    done
    echo "clickhouse-test-server: the server did not answer /ping on 127.0.0.1:$http; its log:" >&2
    tail -n 20 "$dir/log/error.log" "$dir/log/stdout.log" >&2 2>/dev/null
    stop_dir "$dir"
    exit 1
}

case "${1:-}" in
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop_dir "$2" ;;
    *) die "usage: $0 start DIR | stop DIR" ;;
esac

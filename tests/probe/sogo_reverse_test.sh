#!/bin/bash
# The real EAS server group (ctest label "sogo"), reverse mode: SOGo on loopback behind nginx
# TLS (scripts/sogo-test-server.sh) with `eastrace proxy --reverse` in front of it, as an
# organisation puts it in front of its Client Access server: its own certificate on the client
# side (here the test origin CA's localhost certificate), the server verified against the SOGo
# test CA. `eastrace probe` speaks to the reverse proxy as a phone would (it does not know a
# proxy is there), once directly and once recording only its user (--only-user); the
# capture's replay must show the FolderSync and Sync exchanges with their Status, marked
# reverse, with the client's address.
#
# Skips (exit 77, ctest SKIP_RETURN_CODE) when the server cannot be set up on this machine.
#
# usage: sogo_reverse_test.sh EASTRACE SOGO_TEST_SERVER_SH FIXTURES_DIR
set -u
ET=$1
SERVER=$2
FX=$3/proxy
W=$(mktemp -d /tmp/eastrace-reverse-sogo.XXXXXX)
chmod 755 "$W"
SDIR="$W/server"
RPID=""
fails=0
cleanup() {
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    "$SERVER" stop "$SDIR" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
say() { echo "== $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
has() { if grep -Eq -- "$2" "$1"; then ok "$3"; else bad "$3: /$2/ not in $(basename "$1")"; fi; }

say "starting SOGo on loopback"
if ! "$SERVER" start "$SDIR" >"$W/server.log" 2>&1; then
    cat "$W/server.log"
    echo "SKIP: the real EAS server could not be set up on this machine (see above)"
    exit 77
fi
# shellcheck disable=SC1091
. "$SDIR/env"
export EASTRACE_PASSWORD="$SOGO_PASSWORD"

cp "$FX/origin-localhost.pem" "$W/chain.pem"
install -m 600 "$FX/origin-localhost.key" "$W/key.pem"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_reverse NAME [extra proxy options]: the proxy in front of SOGo, a probe through it.
run_reverse() {
    local name=$1
    shift
    local rport
    rport=$(free_port)
    "$ET" proxy --reverse "https://localhost:$SOGO_HTTPS_PORT" --listen "127.0.0.1:$rport" \
        --cert "$W/chain.pem" --key "$W/key.pem" --upstream-ca "$SOGO_CA" \
        -w "$W/$name.cap" "$@" >"$W/$name.live" 2>"$W/$name.err" &
    RPID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break; sleep 0.05; done
    "$ET" probe "https://localhost:$rport/Microsoft-Server-ActiveSync" -u "$SOGO_USER" \
        --ca "$FX/origin-ca.pem" --sync --ping --ping-seconds 10 >"$W/$name.probe" 2>&1
    local rc=$?
    sleep 0.5
    kill -INT "$RPID" 2>/dev/null
    wait "$RPID" 2>/dev/null
    RPID=""
    cat "$W/$name.probe"
    [ $rc = 0 ] && ok "$name: probe through the reverse proxy exits 0" ||
        { cat "$W/$name.err"; bad "$name: probe exit $rc"; }
}

say "eastrace proxy --reverse in front of SOGo, eastrace probe through it"
run_reverse all
"$ET" replay --no-color --fail-on never "$W/all.cap" >"$W/all.replay" 2>&1
echo "---- eastrace replay of the reverse capture"
cat "$W/all.replay"
echo "----"
has "$W/all.replay" "FolderSync .*200 .*1=Success" "replay: FolderSync with its Status"
has "$W/all.replay" "Sync .*200 .*1=Success" "replay: Sync with its Status"
has "$W/all.replay" "Ping" "replay: the Ping held through the reverse proxy"
has "$W/all.replay" "Provision" "replay: Provision"
"$ET" replay --json --fail-on never "$W/all.cap" >"$W/all.json" 2>&1
has "$W/all.json" '"client":"127\.0\.0\.1:[0-9]+".*"reverse":true' "JSON: the client's address, marked reverse"
n=$(grep -c '"cmd"' "$W/all.json")
[ "$n" -ge 6 ] && ok "every exchange of the session recorded ($n)" || bad "recorded $n exchanges"
if grep -aq "$SOGO_PASSWORD" "$W/all.json"; then bad "the password shows in replay --json"; else ok "no password in replay --json"; fi
"$ET" show "$W/all.cap" 3 >"$W/all.show" 2>&1
has "$W/all.show" "recorded by +reverse proxy" "show: the exchange is marked reverse"
has "$W/all.show" "server TLS version" "show: the upstream TLS (SOGo's nginx) is recorded"

say "--only-user: this user recorded, another forwarded unrecorded"
run_reverse mine --only-user "$SOGO_USER"
run_reverse other --only-user "nobody-$SOGO_USER"
n=$("$ET" replay --json --fail-on never "$W/mine.cap" 2>/dev/null | grep -c '"cmd"')
[ "$n" -ge 5 ] && ok "--only-user $SOGO_USER: its session recorded ($n)" || bad "--only-user recorded $n"
n=$("$ET" replay --json --fail-on never "$W/other.cap" 2>/dev/null | grep -c '"cmd"')
[ "$n" = 0 ] && ok "--only-user someone else: nothing recorded, the probe still passed" || bad "--only-user other recorded $n"
has "$W/other.err" "[1-9][0-9]* forwarded unrecorded" "the summary counts the unrecorded exchanges"

echo "$fails failure(s)"
[ $fails = 0 ]

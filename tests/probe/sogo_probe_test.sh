#!/bin/bash
# The real EAS server group (ctest label "sogo"): starts SOGo on loopback once
# (scripts/sogo-test-server.sh) and runs `eastrace probe` against it:
#   direct                every step passes, the capture holds every exchange, no password in it
#   wrong password        step 4 fails with 401 explained, exit 1
#   wrong certificate     step 3 fails (name mismatch), exit 1; --insecure goes on
#   untrusted CA          step 3 fails without --ca
#   through eastrace proxy  the proxy's capture holds the same exchanges; replay of both
#                         shows no finding at all (--fail-on info), as for the direct one
# When the server cannot be set up (packages missing, sogod does not start) the test FAILS
# with the reason: it never passes without having run.
#
# usage: sogo_probe_test.sh EASTRACE SOGO_TEST_SERVER_SH
set -u
ET=$1
SERVER=$2
W=$(mktemp -d /tmp/eastrace-probe-sogo.XXXXXX)
# The daemons run as their own users (postgres, sogo): they must reach the directory.
chmod 755 "$W"
SDIR="$W/server"
PROXY_PID=""
fails=0

cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    "$SERVER" stop "$SDIR" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT

say() { echo "== $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# expect_step OUTPUT N RESULT: line "[N] <name> RESULT" is in OUTPUT.
expect_step() {
    if grep -Eq "^\[$2\] .* $3( |:|$)" "$1"; then ok "step $2 $3"; else bad "step $2 is not $3"; fi
}
expect_text() { # OUTPUT TEXT what
    if grep -Fq -- "$2" "$1"; then ok "$3"; else bad "$3: '$2' not in the output"; fi
}

say "starting SOGo on loopback"
if ! "$SERVER" start "$SDIR" >"$W/server.log" 2>&1; then
    cat "$W/server.log"
    echo "FAIL: the real EAS server could not be set up on this machine (see above);"
    echo "      the test command must install: sogo sogo-activesync postgresql memcached"
    echo "      dovecot-imapd nginx-light openssl"
    exit 1
fi
cat "$W/server.log"
# shellcheck disable=SC1091
. "$SDIR/env"
export EASTRACE_PASSWORD="$SOGO_PASSWORD"

# ---- direct ---------------------------------------------------------------------------------
say "probe directly: every step passes"
"$ET" probe "$SOGO_URL" -u "$SOGO_USER" --ca "$SOGO_CA" --sync --ping --ping-seconds 10 \
    -w "$W/direct.cap" >"$W/direct.out" 2>&1
rc=$?
cat "$W/direct.out"
[ $rc = 0 ] && ok "exit 0" || bad "exit status $rc, expected 0"
for n in 2 3 4 5 6 7 8; do expect_step "$W/direct.out" $n passed; done
expect_text "$W/direct.out" "version used: 14.1" "negotiated EAS 14.1 (SOGo's highest)"
expect_text "$W/direct.out" "Inbox:" "FolderSync found the Inbox"
# OPTIONS, Provision, FolderSync, Sync (SyncKey 0), Sync, Ping
expect_text "$W/direct.out" "6 exchanges (6 captured)" "6 exchanges made and captured"
# A healthy session of a real server is silent: not even a note (the 10 s heartbeat is one
# the server accepts, Status 1).
"$ET" replay --fail-on info --no-color "$W/direct.cap" >"$W/direct.replay" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "0 error(s), 0 warning(s), 0 note(s)" "$W/direct.replay"; then
    ok "replay --fail-on info of the healthy session: no finding"
else
    cat "$W/direct.replay"
    bad "replay of the healthy session has findings (exit $rc)"
fi
n=$("$ET" replay --json --no-findings "$W/direct.cap" 2>/dev/null | grep -c '"cmd"')
[ "$n" -ge 6 ] && ok "replay reads the probe's capture ($n lines)" || bad "replay of the probe's capture gave $n exchanges"
if grep -aq "$SOGO_PASSWORD" "$W/direct.cap" || grep -aq "dDE6dDFwYXNz" "$W/direct.cap"; then
    bad "the password is in the capture"
else
    ok "no password in the capture"
fi
"$ET" probe "$SOGO_URL" -u "$SOGO_USER" --ca "$SOGO_CA" --json >"$W/direct.json" 2>&1
rc=$?
[ $rc = 0 ] && grep -q '"result":"passed"' "$W/direct.json" && grep -q '"name":"FolderSync","result":"passed"' "$W/direct.json" \
    && ok "--json: passed" || { cat "$W/direct.json"; bad "--json output or exit ($rc)"; }

# ---- wrong password -------------------------------------------------------------------------
say "probe with a wrong password: 401 explained"
EASTRACE_PASSWORD=wrong-password "$ET" probe "$SOGO_URL" -u "$SOGO_USER" --ca "$SOGO_CA" \
    >"$W/badpw.out" 2>&1
rc=$?
cat "$W/badpw.out"
[ $rc = 1 ] && ok "exit 1" || bad "exit status $rc, expected 1"
if grep -Eq "^\[4\] .* failed" "$W/badpw.out" || grep -Eq "^\[5\] .* failed" "$W/badpw.out"; then
    ok "step 4 or 5 failed"
else
    bad "neither step 4 nor 5 failed"
fi
expect_text "$W/badpw.out" "HTTP 401 Unauthorized" "401 reported"
expect_text "$W/badpw.out" "offers Basic authentication" "WWW-Authenticate explained"
expect_text "$W/badpw.out" "next step: Sign in to OWA" "next step given"
if grep -q "wrong-password" "$W/badpw.out"; then bad "the password is in the output"; else ok "no password in the output"; fi

# ---- certificate for another name -----------------------------------------------------------
say "probe a server whose certificate is for another name"
"$ET" probe "$SOGO_WRONG_URL" -u "$SOGO_USER" --ca "$SOGO_CA" >"$W/wrongname.out" 2>&1
rc=$?
cat "$W/wrongname.out"
[ $rc = 1 ] && ok "exit 1" || bad "exit status $rc, expected 1"
expect_step "$W/wrongname.out" 3 failed
expect_text "$W/wrongname.out" "name mismatch" "name mismatch named"
expect_text "$W/wrongname.out" "wrong.example.test" "the certificate's name shown"
expect_step "$W/wrongname.out" 4 "skipped"
"$ET" probe "$SOGO_WRONG_URL" -u "$SOGO_USER" --ca "$SOGO_CA" --insecure >"$W/insecure.out" 2>&1
rc=$?
[ $rc = 1 ] && ok "--insecure: still exit 1" || bad "--insecure: exit $rc, expected 1"
expect_step "$W/insecure.out" 3 failed
expect_step "$W/insecure.out" 6 passed
expect_text "$W/insecure.out" "going on despite the failure (--insecure)" "--insecure marked"

say "probe without the test CA: the chain is not trusted"
"$ET" probe "$SOGO_URL" -u "$SOGO_USER" >"$W/untrusted.out" 2>&1
rc=$?
[ $rc = 1 ] && ok "exit 1" || bad "exit status $rc, expected 1"
expect_step "$W/untrusted.out" 3 failed
expect_text "$W/untrusted.out" "eastrace SOGo test CA" "the issuer named"

# ---- through eastrace proxy -----------------------------------------------------------------
say "probe through eastrace proxy"
"$ET" ca --dir "$W/ca" --export-pem "$W/proxy-ca.pem" >/dev/null 2>&1 || bad "eastrace ca failed"
PPORT=""
for i in $(seq 1 50); do
    p=$(( 10000 + (RANDOM * 32768 + RANDOM) % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PPORT=$p; break; fi
done
"$ET" proxy --listen "127.0.0.1:$PPORT" --allow-target 127.0.0.1 --allow-target localhost \
    --upstream-ca "$SOGO_CA" --ca-dir "$W/ca" -w "$W/proxy.cap" --quiet >"$W/proxy.log" 2>&1 &
PROXY_PID=$!
for i in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break; sleep 0.1; done
"$ET" probe "$SOGO_URL" -u "$SOGO_USER" --ca "$W/proxy-ca.pem" -x "127.0.0.1:$PPORT" --sync \
    -w "$W/via.cap" >"$W/via.out" 2>&1
rc=$?
cat "$W/via.out"
[ $rc = 0 ] && ok "exit 0 through the proxy" || { cat "$W/proxy.log"; bad "exit status $rc through the proxy"; }
for n in 2 3 4 5 6 7; do expect_step "$W/via.out" $n passed; done
sleep 0.5
kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; PROXY_PID=""
# The same exchanges on both sides: the sequence of (command, HTTP status).
seq_of() { "$ET" replay --no-findings --no-color "$1" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9][0-9]-[0-9][0-9]$/ {print $5, $6, $7}'; }
seq_of "$W/via.cap" >"$W/via.seq"
seq_of "$W/proxy.cap" >"$W/proxy.seq"
echo "probe's capture:"; cat "$W/via.seq"
echo "proxy's capture:"; cat "$W/proxy.seq"
if [ -s "$W/via.seq" ] && cmp -s "$W/via.seq" "$W/proxy.seq"; then
    ok "the proxy's capture holds the same exchanges ($(wc -l <"$W/via.seq"))"
else
    bad "the proxy's capture differs from the probe's"
fi
for cap in via proxy; do
    "$ET" replay --fail-on info --no-color "$W/$cap.cap" >"$W/$cap.replay" 2>&1
    rc=$?
    if [ $rc = 0 ]; then
        ok "replay of the $cap capture: no finding at all (--fail-on info)"
    else
        cat "$W/$cap.replay"
        bad "replay of the $cap capture: findings of severity warning or error (exit $rc)"
    fi
done

echo
if [ $fails = 0 ]; then
    echo "all SOGo probe checks passed"
    exit 0
fi
echo "$fails SOGo probe check(s) failed"
exit 1

#!/usr/bin/env bash
# `eastrace proxy` as a user runs it, on loopback only: a real TLS origin (openssl s_server),
# real curl through the proxy trusting the CA eastrace made, the CA's file modes, the install
# page, the live view, and a kill -9 after which `eastrace replay` recovers every completed
# exchange from the capture file.
. "$(dirname "$0")/../lib.sh"
F=$root/tests/fixtures/proxy

oport=$(free_port)
openssl s_server -accept "127.0.0.1:$oport" -cert "$F/origin-localhost.pem" \
  -key "$F/origin-localhost.key" -www -quiet >/dev/null 2>&1 &
pids+=($!)
wait_port "$oport" && ok "TLS origin up" || bad "TLS origin up"

pport=$(free_port)
export XDG_DATA_HOME=$tmp/data
"$E" proxy --listen "127.0.0.1:$pport" --allow-target 127.0.0.1 --allow-target localhost \
  --upstream-ca "$F/origin-ca.pem" -w "$tmp/cap.et" >"$tmp/live.txt" 2>"$tmp/err.txt" &
proxy=$!
pids+=($proxy)
wait_port "$pport" && ok "proxy listening" || { bad "proxy listening"; cat "$tmp/err.txt"; }

ca=$tmp/data/eastrace/ca.pem
[ -f "$ca" ] && ok "CA created on first use" || bad "CA created on first use"
[ "$(stat -c %a "$tmp/data/eastrace")" = 700 ] && ok "CA directory 0700" || bad "CA directory 0700"
[ "$(stat -c %a "$tmp/data/eastrace/ca.key")" = 600 ] && ok "CA key 0600" || bad "CA key 0600"
grep -q "eastrace.cert" "$tmp/err.txt" && ok "start-up says how to install the CA" || bad "start-up text"

n=0
for i in 1 2 3 4 5; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$pport" --cacert "$ca" \
    "https://localhost:$oport/Microsoft-Server-ActiveSync?Cmd=Ping&User=bob&DeviceId=KILL$i&DeviceType=iPhone")
  [ "$code" = 200 ] && n=$((n + 1))
done
[ $n -eq 5 ] && ok "5 intercepted requests answered 200" || bad "intercepted requests ($n of 5)"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$pport" "http://eastrace.cert/")
[ "$code" = 200 ] && ok "install page served" || bad "install page ($code)"
# Not an open proxy: a loopback address that --allow-target does not name is refused (403)
# before any connection is made. (Tests never send traffic beyond 127.0.0.0/8.)
code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$pport" \
  "http://127.0.0.2:$oport/" --connect-timeout 5)
[ "$code" = 403 ] && ok "loopback target not named by --allow-target refused (403)" || bad "unlisted target ($code)"

# Give the loop a moment to append the last record, then kill it the hard way.
sleep 0.5
kill -9 $proxy
wait $proxy 2>/dev/null
[ "$(stat -c %a "$tmp/cap.et")" = 600 ] && ok "capture file 0600" || bad "capture file mode"
grep -q "KILL5" "$tmp/live.txt" && ok "live view printed the exchanges" || bad "live view"

"$E" replay --json --fail-on never "$tmp/cap.et" >"$tmp/replay.json" 2>"$tmp/replay.err"
rc=$?
[ $rc -eq 0 ] && ok "replay after kill -9 reads the capture" || { bad "replay exit $rc"; cat "$tmp/replay.err"; }
got=$(grep -c '"cmd":"Ping"' "$tmp/replay.json")
[ "$got" -eq 5 ] && ok "every completed exchange recovered (5)" || bad "recovered $got of 5"
grep -q '"sni":\|"host":"localhost"' "$tmp/replay.json" && ok "host recorded" || bad "host recorded"

# A restarted proxy appends to the same capture.
"$E" proxy --listen "127.0.0.1:$pport" --allow-target 127.0.0.1 --allow-target localhost \
  --upstream-ca "$F/origin-ca.pem" -w "$tmp/cap.et" >/dev/null 2>&1 &
proxy=$!
pids+=($proxy)
wait_port "$pport"
curl -s -o /dev/null -x "http://127.0.0.1:$pport" --cacert "$ca" \
  "https://localhost:$oport/Microsoft-Server-ActiveSync?Cmd=Sync&User=bob&DeviceId=AFTER&DeviceType=iPhone"
sleep 0.3
kill -TERM $proxy
wait $proxy 2>/dev/null
got=$("$E" replay --json --fail-on never "$tmp/cap.et" | grep -c '"cmd":')
[ "$got" -eq 6 ] && ok "appended after restart (6 exchanges)" || bad "after restart: $got exchanges"

# The live capture exported to HAR is valid HAR 1.2 (serverIPAddress an address, not ip:port).
if "$E" export "$tmp/cap.et" --har "$tmp/cap.har" >/dev/null 2>&1 &&
   NODE_PATH=${NODE_PATH:-/usr/share/nodejs} node "$(dirname "$0")/har-validate.js" "$tmp/cap.har" >"$tmp/hv" 2>&1; then
  ok "HAR export of the proxy capture is valid HAR 1.2 (node-har-validator)"
else
  bad "HAR export of the proxy capture"; cat "$tmp/hv"
fi

t_done

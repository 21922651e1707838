#!/usr/bin/env bash
# `eastrace proxy` for a first-time user (issue 10 items 7 and 8) and its start-up contract
# (issue 9 item 2): --listen 0.0.0.0 prints the machine's real addresses with the install
# page URL for each, the admitted clients are printed, the proxy records by default to a
# capture file under the user's state directory (path printed; --no-record turns it off), and
# a refused target is a 403 with a log line. Loopback only. Runs alone or from run.sh.
. "$(dirname "$0")/lib.sh"
export XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state

# start NAME ARGS...: starts the proxy, waits for its "listening on" line, sets port.
start() {
  local name=$1; shift
  "$E" proxy "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pp=$!
  pids+=($pp)
  port=
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^eastrace proxy listening on .*:\([0-9][0-9]*\).*/\1/p' "$tmp/$name.err" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
}
stop() { kill -INT "$pp" 2>/dev/null; wait "$pp" 2>/dev/null; }

# A plain origin on loopback.
python3 -m http.server --bind 127.0.0.1 0 --directory "$tmp" >"$tmp/origin.out" 2>&1 &
pids+=($!)
oport=
for _ in $(seq 1 100); do
  oport=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$tmp/origin.out" | head -1)
  [ -n "$oport" ] && break
  sleep 0.05
done
echo hello >"$tmp/hello.txt"

# 1. --listen 0.0.0.0: every non-loopback IPv4 address of the machine, each with its install
#    page URL; never "0.0.0.0" as the phone's proxy server.
start any --listen 0.0.0.0:0 --allow 127.0.0.1/32 --no-record
stop
want=$(ip -4 -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | grep -v '^127\.')
n=0 m=0
for a in $want; do
  n=$((n + 1))
  grep -qF "http://$a:$port/" "$tmp/any.err" && m=$((m + 1))
done
if [ "$n" -gt 0 ] && [ "$m" -eq "$n" ] && ! grep -q "server 0\.0\.0\.0" "$tmp/any.err"; then
  ok "--listen 0.0.0.0 prints the real addresses" "$m of $n addresses with http://ADDR:$port/, no 0.0.0.0"
elif [ "$n" -eq 0 ]; then
  skip "--listen 0.0.0.0 prints the real addresses" "this machine has no non-loopback IPv4 address"
else
  bad "--listen 0.0.0.0 prints the real addresses" "$m of $n: $(head -c 600 "$tmp/any.err")"
fi
grep -q "clients admitted: loopback, 127.0.0.1/32" "$tmp/any.err" &&
  ok "admitted clients printed" "$(grep 'clients admitted' "$tmp/any.err")" ||
  bad "admitted clients printed" "$(head -c 600 "$tmp/any.err")"

# 2. Records by default under $XDG_STATE_HOME/eastrace/captures, path printed at start.
start rec --listen 127.0.0.1:0 --allow-target 127.0.0.1
code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$port" \
  "http://127.0.0.1:$oport/hello.txt?Cmd=Ping&User=u&DeviceId=REC1&DeviceType=iPhone")
code2=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$port" "http://10.1.2.3:25/")
sleep 0.2
stop
cap=$(sed -n 's/^  recording to \(.*\) (--no-record to turn off)$/\1/p' "$tmp/rec.err" | head -1)
case "$cap" in "$XDG_STATE_HOME"/eastrace/captures/*) in_state=1 ;; *) in_state=0 ;; esac
if [ "$code" = 200 ] && [ -n "$cap" ] && [ -s "$cap" ] && [ $in_state = 1 ] &&
   { "$E" replay "$cap" >"$tmp/replay.txt" 2>&1; grep -q "^2 exchange(s)" "$tmp/replay.txt"; }; then
  ok "records by default" "$cap holds both exchanges; pass: file under the state dir, replayable"
else
  bad "records by default" "code $code, cap '$cap': $(tail -5 "$tmp/replay.txt")"
fi
[ "$code2" = 403 ] && grep -q "refused.*10.1.2.3" "$tmp/rec.err" &&
  ok "refused target: 403 and a log line" "$(grep 'refused.*10.1.2.3' "$tmp/rec.err" | head -1)" ||
  bad "refused target: 403 and a log line" "code $code2: $(tail -5 "$tmp/rec.err")"
grep -q "capture .*: [1-9][0-9]* records" "$tmp/rec.err" &&
  ok "exit summary names the capture" "$(grep 'capture .*records' "$tmp/rec.err")" ||
  bad "exit summary names the capture" "$(tail -3 "$tmp/rec.err")"

# 3. --no-record: says so, writes nothing.
rm -rf "$XDG_STATE_HOME"
start norec --listen 127.0.0.1:0 --allow-target 127.0.0.1 --no-record
curl -s -o /dev/null -x "http://127.0.0.1:$port" "http://127.0.0.1:$oport/hello.txt"
stop
files=$(find "$XDG_STATE_HOME" -type f 2>/dev/null | wc -l)
grep -q "not recording" "$tmp/norec.err" && [ "$files" -eq 0 ] &&
  ok "--no-record" "says 'not recording', $files files written" ||
  bad "--no-record" "$files files: $(head -c 400 "$tmp/norec.err")"

# 4. -w FILE still chooses the file.
start w --listen 127.0.0.1:0 --allow-target 127.0.0.1 -w "$tmp/chosen.cap"
curl -s -o /dev/null -x "http://127.0.0.1:$port" "http://127.0.0.1:$oport/hello.txt"
stop
[ -s "$tmp/chosen.cap" ] && grep -qF "recording to $tmp/chosen.cap" "$tmp/w.err" &&
  ok "-w FILE" "recorded to the chosen file" || bad "-w FILE" "$(head -c 400 "$tmp/w.err")"

# 5. A rejected upstream certificate (CN only, no subjectAltName: RFC 6125 allows no CN
#    fallback) is explained by `show`: SHA-256, subject, issuer, OpenSSL verify code.
F=$root/tests/fixtures
chmod 600 "$F/security/origin-cn-only.key" 2>/dev/null
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl s_server -accept "127.0.0.1:$sport" -cert "$F/security/origin-cn-only.pem" \
  -key "$F/security/origin-cn-only.key" -www -quiet >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break; sleep 0.05; done
start cert --listen 127.0.0.1:0 --allow-target localhost --upstream-ca "$F/proxy/origin-ca.pem" \
  -w "$tmp/cert.cap"
code=$(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$port" \
  --cacert "$XDG_DATA_HOME/eastrace/ca.pem" -H 'Authorization: Basic dTpw' "https://localhost:$sport/")
stop
want=$(openssl x509 -in "$F/security/origin-cn-only.pem" -noout -fingerprint -sha256 |
  sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
"$E" show "$tmp/cert.cap" 1 >"$tmp/show.txt" 2>&1
if [ "$code" = 502 ] && grep -q "$want" "$tmp/show.txt" && grep -q "verify code 62" "$tmp/show.txt" &&
   grep -q "CN=localhost" "$tmp/show.txt" && grep -q "eastrace test origin CA" "$tmp/show.txt"; then
  ok "show explains a rejected certificate" "502; show has its SHA-256, subject, issuer, verify code 62"
else
  bad "show explains a rejected certificate" "code $code: $(grep -i "cert\|sha256\|verify\|FAILED" "$tmp/show.txt" | head -8)"
fi

# 6. Help lists the new options.
"$E" proxy --help >"$tmp/help.txt" 2>&1
miss=
for opt in --no-record --pin-time --max-conns --max-conns-per-client --header-timeout; do
  grep -q -- "$opt" "$tmp/help.txt" || miss="$miss $opt"
done
[ -z "$miss" ] && ok "help lists the options" "all 5" || bad "help lists the options" "missing:$miss"
sec_done

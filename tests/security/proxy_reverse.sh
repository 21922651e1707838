#!/usr/bin/env bash
# Reverse mode (eastrace proxy --reverse) in the security battery, on loopback: a recording TLS
# origin (tests/cli/reverse_origin.py: the exact bytes of every request it gets) and a second
# one that must never be contacted, an exact-bytes client (tests/cli/reverse_client.py). Cases:
# never a forward proxy (CONNECT, absolute-form, any Host goes to the one upstream), PROXY
# headers believed only from --trusted-proxy and only on a PROXY listener, malformed PROXY
# headers closed, a spoofed X-Forwarded-For kept but never the recorded client, smuggling
# refused as in forward mode, the --key file mode rule.
. "$(dirname "$0")/lib.sh"
cli=$root/tests/cli
PF=$FX/proxy
C() { python3 "$cli/reverse_client.py" "$@"; }
count() { ls "$1" | wc -l; }
t() { eval "$1"; } # verdict NAME FIGURE t 'CONDITION && CONDITION'

mkdir -p "$tmp/o1" "$tmp/o2"
for k in 1 2; do
  python3 "$cli/reverse_origin.py" "$tmp/port$k" "$tmp/o$k" "$PF/origin-localhost.pem" \
    "$PF/origin-localhost.key" 2>/dev/null &
  pids+=($!)
  wait_file "$tmp/port$k" || { bad "setup" "origin $k did not start"; sec_done; exit 1; }
done
o1=$(cat "$tmp/port1") o2=$(cat "$tmp/port2")
cp "$PF/origin-localhost.pem" "$tmp/chain.pem"
install -m 600 "$PF/origin-localhost.key" "$tmp/key.pem"

# --key file modes: group or other bits refused before anything listens.
refused=0 accepted=0
for m in 640 604 644 660 606; do
  install -m "$m" "$PF/origin-localhost.key" "$tmp/k$m.pem"
  "$E" proxy --reverse "https://localhost:$o1" --listen "127.0.0.1:$(free_port)" --cert "$tmp/chain.pem" \
    --key "$tmp/k$m.pem" --no-record --quiet >/dev/null 2>"$tmp/k.err" </dev/null &
  p=$!
  sleep 0.3
  if kill -0 $p 2>/dev/null; then kill $p; wait $p 2>/dev/null; else
    wait $p 2>/dev/null
    grep -q "must not be readable by group or others" "$tmp/k.err" && refused=$((refused + 1))
  fi
done
for m in 600 400; do
  install -m "$m" "$PF/origin-localhost.key" "$tmp/k$m.pem"
  port=$(free_port)
  "$E" proxy --reverse "https://localhost:$o1" --listen "127.0.0.1:$port" --cert "$tmp/chain.pem" \
    --key "$tmp/k$m.pem" --no-record --quiet >/dev/null 2>&1 </dev/null &
  p=$!
  wait_port "$port" && accepted=$((accepted + 1))
  kill $p 2>/dev/null; wait $p 2>/dev/null
done
verdict "reverse --key readable by group/others refused" "$refused of 5 modes refused, $accepted of 2 (0600, 0400) accepted" \
  t '[ "$refused" = 5 ] && [ "$accepted" = 2 ]'

# A: TLS listener; B: PROXY protocol from 127.0.0.2 only.
pa=$(free_port) pb=$(free_port)
"$E" proxy --reverse "https://localhost:$o1" --listen "127.0.0.1:$pa" --cert "$tmp/chain.pem" \
  --key "$tmp/key.pem" --upstream-ca "$PF/origin-ca.pem" --header-timeout 1 -w "$tmp/a.cap" \
  --quiet >/dev/null 2>"$tmp/a.err" &
pids+=($!)
"$E" proxy --reverse "https://localhost:$o1" --listen "127.0.0.1:$pb" --upstream-ca "$PF/origin-ca.pem" \
  --accept-proxy-protocol --trusted-proxy 127.0.0.2 --header-timeout 1 -w "$tmp/b.cap" \
  --quiet >/dev/null 2>"$tmp/b.err" &
pids+=($!)
wait_port "$pa" && wait_port "$pb" || { bad "setup" "reverse proxies did not start"; cat "$tmp/a.err" "$tmp/b.err"; sec_done; exit 1; }

# Never a forward proxy: nothing reaches the second origin, whatever the request names.
n1=$(count "$tmp/o1")
i=0 answered=0
for req in "CONNECT 127.0.0.1:$o2 HTTP/1.1\r\nHost: 127.0.0.1:$o2\r\n\r\n" \
  "CONNECT localhost:$o2 HTTP/1.1\r\n\r\n" \
  "GET https://127.0.0.1:$o2/ HTTP/1.1\r\nHost: 127.0.0.1:$o2\r\n\r\n" \
  "GET http://localhost:$o2/ HTTP/1.1\r\nHost: localhost\r\n\r\n" \
  "GET //127.0.0.1:$o2/ HTTP/1.1\r\nHost: 127.0.0.1:$o2\r\n\r\n" \
  "GET * HTTP/1.1\r\nHost: x\r\n\r\n" \
  "GET 127.0.0.1:$o2 HTTP/1.1\r\nHost: x\r\n\r\n"; do
  i=$((i + 1))
  printf "$req" >"$tmp/f$i"
  C "$pa" "$tmp/f$i" --tls "$PF/origin-ca.pem" >"$tmp/f$i.out"
  head -1 "$tmp/f$i.out" | grep -q "^HTTP/1.1 [45]0[05] " && answered=$((answered + 1))
done
fwd_refused=$answered
# A Host naming the other origin still goes to the one upstream.
printf "GET /owa/ HTTP/1.1\r\nHost: 127.0.0.1:$o2\r\n\r\n" >"$tmp/h1"
C "$pa" "$tmp/h1" --tls "$PF/origin-ca.pem" >/dev/null
verdict "reverse: CONNECT/absolute-form/asterisk refused, other Hosts go to the one upstream" \
  "$fwd_refused of 6 refused with 400/405, second origin got $(count "$tmp/o2") requests, upstream $(( $(count "$tmp/o1") - n1 ))" \
  t '[ "$fwd_refused" -ge 6 ] && [ "$(count "$tmp/o2")" = 0 ] && [ $(( $(count "$tmp/o1") - n1 )) -le 2 ]'

# Smuggling is refused in reverse mode as in forward mode, 0 bytes upstream.
n1=$(count "$tmp/o1")
bad400=0
for req in "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" \
  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde" \
  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nabcde\r\n0\r\n\r\n" \
  "GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n" \
  "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"; do
  printf "$req" >"$tmp/s"
  C "$pa" "$tmp/s" --tls "$PF/origin-ca.pem" >"$tmp/s.out"
  head -1 "$tmp/s.out" | grep -q "^HTTP/1.1 400 " && bad400=$((bad400 + 1))
done
verdict "reverse: smuggling payloads refused with 400, 0 bytes upstream" \
  "$bad400 of 5 refused, $(( $(count "$tmp/o1") - n1 )) reached the server" \
  t '[ "$bad400" = 5 ] && [ "$(count "$tmp/o1")" = "$n1" ]'

# Spoofed X-Forwarded-For: kept for the server, never the recorded client.
printf 'GET /Microsoft-Server-ActiveSync?Cmd=Sync&User=spoof&DeviceId=SPOOF&DeviceType=x HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.66\r\nX-Real-IP: 203.0.113.67\r\nForwarded: for=203.0.113.68\r\n\r\n' >"$tmp/x1"
C "$pa" "$tmp/x1" --tls "$PF/origin-ca.pem" >/dev/null
last=$(ls "$tmp/o1" | sort -n | tail -1)
sleep 0.3
"$E" replay --json --fail-on never "$tmp/a.cap" 2>/dev/null | grep SPOOF >"$tmp/x1.json"
verdict "reverse: spoofed X-Forwarded-For kept upstream, recorded client is the peer" \
  "upstream: $(grep -a '^X-Forwarded-For' "$tmp/o1/$last" | tr -d '\r'); recorded: $(grep -o '"client":"[^"]*"' "$tmp/x1.json")" \
  grep -q '"client":"127.0.0.1:' "$tmp/x1.json"
verdict "reverse: X-Forwarded-For keeps the client's value and appends the peer" "$(grep -a '^X-Forwarded-For' "$tmp/o1/$last" | tr -d '\r')" \
  grep -aq "^X-Forwarded-For: 203.0.113.66, 127.0.0.1" "$tmp/o1/$last"

# A PROXY line sent to a listener without --accept-proxy-protocol is not believed.
printf 'GET /Microsoft-Server-ActiveSync?Cmd=Sync&User=pp&DeviceId=PPLINE&DeviceType=x HTTP/1.1\r\nHost: localhost\r\n\r\n' >"$tmp/p1"
C "$pa" "$tmp/p1" --pp-text 'PROXY TCP4 198.51.100.9 192.0.2.1 1 443\r\n' >"$tmp/p1.out"
verdict "reverse: a PROXY header on a TLS listener without --accept-proxy-protocol is refused" \
  "the origin never saw the PROXY line's address" t '! grep -aq 198.51.100.9 "$tmp"/o1/*'

# B: untrusted peers, malformed headers, a silent balancer.
n1=$(count "$tmp/o1")
printf 'GET /Microsoft-Server-ActiveSync?Cmd=Sync&User=lb&DeviceId=LB&DeviceType=x HTTP/1.1\r\nHost: localhost\r\n\r\n' >"$tmp/q"
C "$pb" "$tmp/q" --pp-text 'PROXY TCP4 198.51.100.1 192.0.2.1 1 443\r\n' >"$tmp/u1.out"
C "$pb" "$tmp/q" --src 127.0.0.3 --pp-text 'PROXY TCP4 198.51.100.1 192.0.2.1 1 443\r\n' >"$tmp/u2.out"
C "$pb" "$tmp/q" --src 127.0.0.1 >"$tmp/u3.out"
verdict "reverse: PROXY headers from untrusted peers refused (127.0.0.1, 127.0.0.3, no header)" \
  "answers $(cat "$tmp/u1.out" "$tmp/u2.out" "$tmp/u3.out" | wc -c) bytes, upstream $(( $(count "$tmp/o1") - n1 ))" \
  t '[ ! -s "$tmp/u1.out" ] && [ ! -s "$tmp/u2.out" ] && [ ! -s "$tmp/u3.out" ] && [ "$(count "$tmp/o1")" = "$n1" ]'
closed=0 total=0
for f in v1-leading-zero.bin v1-bare-lf.bin v2-oversized.bin v2-bad-command.bin; do
  total=$((total + 1))
  C "$pb" "$tmp/q" --src 127.0.0.2 --pp "$(od -An -v -tx1 "$FX/proxyproto/$f" | tr -d ' \n')" >"$tmp/m.out"
  [ ! -s "$tmp/m.out" ] && closed=$((closed + 1))
done
for line in 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n' 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n' 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n' \
  'PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n' 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'; do
  total=$((total + 1))
  C "$pb" "$tmp/q" --src 127.0.0.2 --pp-text "$line" >"$tmp/m.out"
  [ ! -s "$tmp/m.out" ] && closed=$((closed + 1))
done
long=$(printf 'PROXY UNKNOWN %0120d\\r\\n' 0)
total=$((total + 1))
C "$pb" "$tmp/q" --src 127.0.0.2 --pp-text "$long" >"$tmp/m.out"
[ ! -s "$tmp/m.out" ] && closed=$((closed + 1))
logged=$(grep -c "PROXY header:" "$tmp/b.err")
verdict "reverse: malformed and oversized PROXY headers from the trusted peer closed, logged" \
  "$closed of $total closed, $logged logged, upstream $(( $(count "$tmp/o1") - n1 ))" \
  t '[ "$closed" = "$total" ] && [ "$logged" -ge "$total" ] && [ "$(count "$tmp/o1")" = "$n1" ]'
t0=$(date +%s%N)
C "$pb" - --src 127.0.0.2 --pp-text 'PROXY TCP4 1.2.3.4' >"$tmp/slow.out"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
verdict "reverse: a PROXY header that never completes is closed at the header deadline (1 s)" \
  "closed after $ms ms" t '[ ! -s "$tmp/slow.out" ] && [ "$ms" -lt 5000 ] && grep -q "no complete PROXY header" "$tmp/b.err"'
sleep 0.3
nrec=$("$E" replay --json --fail-on never "$tmp/b.cap" 2>/dev/null | grep -c '"n":')
verdict "reverse: refused connections and bad headers are not recorded" "$nrec exchanges in the capture" [ "$nrec" = 0 ]

sec_done

#!/usr/bin/env bash
# `eastrace proxy --reverse` as the README runs it, on loopback only: a recording TLS origin
# (reverse_origin.py writes the exact bytes of every request it gets), clients that send exact
# bytes (reverse_client.py, with PROXY v1/v2 headers and chosen source addresses in 127/8) and
# curl. Checks: the --key 0600 rule, byte-exact forwarding with X-Forwarded-For appended,
# CONNECT / absolute-form / install page refused, a long poll held past the header deadline,
# PROXY v1 and v2 (TCP4, TCP6, LOCAL) from a trusted peer, refused from others, malformed and
# slow headers closed, --only-user / --only-device, and the capture as replay/show read it.
. "$(dirname "$0")/../lib.sh"
F=$root/tests/fixtures/proxy
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

nreq() { ls "$tmp/origin" | wc -l; }
C() { python3 "$here/reverse_client.py" "$@"; }

mkdir -p "$tmp/origin"
python3 "$here/reverse_origin.py" "$tmp/oport" "$tmp/origin" "$F/origin-localhost.pem" \
  "$F/origin-localhost.key" 2>"$tmp/origin.err" &
pids+=($!)
wait_file "$tmp/oport" && ok "recording TLS origin up" || bad "origin up"
oport=$(cat "$tmp/oport")

# The proxy's own certificate and key (the organisation's in real use).
cp "$F/origin-localhost.pem" "$tmp/chain.pem"
cp "$F/origin-localhost.key" "$tmp/key.pem"
chmod 644 "$tmp/key.pem"
pport=$(free_port)
"$E" proxy --reverse "https://localhost:$oport" --listen "127.0.0.1:$pport" \
  --cert "$tmp/chain.pem" --key "$tmp/key.pem" --upstream-ca "$F/origin-ca.pem" \
  --no-record >"$tmp/o.txt" 2>"$tmp/perm.err"
rc=$?
check "a --key readable by others is refused (exit $rc)" '[ $rc -ne 0 ] && grep -q "chmod 600" "$tmp/perm.err"'
chmod 600 "$tmp/key.pem"
"$E" proxy --reverse "https://localhost:$oport" --listen "127.0.0.1:$pport" --no-record \
  --intercept '*' >/dev/null 2>"$tmp/fwdopt.err"
check "forward-proxy options are refused with --reverse" 'grep -q "belongs to the forward proxy" "$tmp/fwdopt.err"'

# A: TLS listener with the operator's certificate, short header deadline.
"$E" proxy --reverse "https://localhost:$oport" --listen "127.0.0.1:$pport" \
  --cert "$tmp/chain.pem" --key "$tmp/key.pem" --upstream-ca "$F/origin-ca.pem" \
  --header-timeout 1 -w "$tmp/a.cap" >"$tmp/a.live" 2>"$tmp/a.err" &
pids+=($!)
wait_port "$pport" && ok "reverse proxy listening (TLS)" || { bad "reverse proxy listening"; cat "$tmp/a.err"; }
grep -q "forwarding to https://localhost" "$tmp/a.err" && ok "start-up names the server" || bad "start-up text"

# Byte-exact: odd spacing, an existing X-Forwarded-For, hop-by-hop fields (dropped).
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=DEVA&DeviceType=iPhone HTTP/1.1\r\nHost: localhost:%s\r\nX-Forwarded-For: 6.6.6.6\r\nUser-Agent:Apple-iPhone/1.0  \r\nConnection: keep-alive, X-Hop\r\nX-Hop: drop me\r\nContent-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: 5\r\n\r\nabcde' \
  "$pport" >"$tmp/r1"
C "$pport" "$tmp/r1" --tls "$F/origin-ca.pem" >"$tmp/r1.out"
check "answered 200 through the reverse proxy" 'head -1 "$tmp/r1.out" | grep -q "200"'
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=DEVA&DeviceType=iPhone HTTP/1.1\r\nHost: localhost:%s\r\nX-Forwarded-For: 6.6.6.6, 127.0.0.1\r\nUser-Agent:Apple-iPhone/1.0  \r\nContent-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: 5\r\nX-Forwarded-Proto: https\r\n\r\nabcde' \
  "$pport" >"$tmp/r1.want"
check "the origin got the request byte for byte (X-Forwarded-For appended, hop-by-hop dropped, Host kept)" \
  'cmp -s "$tmp/origin/1.req" "$tmp/r1.want"'
cmp -s "$tmp/origin/1.req" "$tmp/r1.want" || { od -c "$tmp/origin/1.req" | head -20; }

# curl, keep-alive, three requests on one connection.
code=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' --cacert "$F/origin-ca.pem" \
  "https://localhost:$pport/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=DEVA&DeviceType=iPhone" \
  "https://localhost:$pport/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=DEVA&DeviceType=iPhone" \
  "https://localhost:$pport/Microsoft-Server-ActiveSync?Cmd=Ping&User=alice&DeviceId=DEVA&DeviceType=iPhone" | tr '\n' ' ')
check "curl: three requests answered over the reverse proxy ($code)" '[ "$(echo $code | grep -o 200 | wc -l)" = 3 ]'
check "X-Forwarded-For added when the client sent none" 'grep -q "^X-Forwarded-For: 127.0.0.1" "$tmp/origin/2.req"'

# Not a forward proxy: CONNECT, absolute-form, the install page.
before=$(nreq)
printf 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n' >"$tmp/r2"
C "$pport" "$tmp/r2" --tls "$F/origin-ca.pem" >"$tmp/r2.out"
check "CONNECT refused (405)" 'head -1 "$tmp/r2.out" | grep -q " 405 "'
printf 'GET http://127.0.0.1:%s/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$oport" >"$tmp/r3"
C "$pport" "$tmp/r3" --tls "$F/origin-ca.pem" >"$tmp/r3.out"
check "absolute-form refused (400)" 'head -1 "$tmp/r3.out" | grep -q " 400 "'
printf 'GET http://eastrace.cert/ HTTP/1.1\r\nHost: eastrace.cert\r\n\r\n' >"$tmp/r4"
C "$pport" "$tmp/r4" --tls "$F/origin-ca.pem" >"$tmp/r4.out"
check "the install page is not served (400)" 'head -1 "$tmp/r4.out" | grep -q " 400 " && ! grep -q "BEGIN CERTIFICATE" "$tmp/r4.out"'
check "nothing refused reached the origin" '[ "$(nreq)" = "$before" ]'
grep -q "refused CONNECT from" "$tmp/a.err" && ok "refusals logged" || bad "refusals logged"

# A long poll held past the 1 s header deadline (and the scaled nothing: real seconds).
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=alice&DeviceId=DEVA&DeviceType=iPhone HTTP/1.1\r\nHost: localhost\r\nX-Test-Delay: 2.5\r\nContent-Length: 0\r\n\r\n' >"$tmp/r5"
t0=$(date +%s%N)
C "$pport" "$tmp/r5" --tls "$F/origin-ca.pem" >"$tmp/r5.out"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "a long poll held ${ms} ms past the 1 s header deadline is answered" 'head -1 "$tmp/r5.out" | grep -q 200 && [ $ms -ge 2400 ]'

# B: TLS listener behind a load balancer: PROXY headers from 127.0.0.2 only.
bport=$(free_port)
"$E" proxy --reverse "https://localhost:$oport" --listen "127.0.0.1:$bport" \
  --cert "$tmp/chain.pem" --key "$tmp/key.pem" --upstream-ca "$F/origin-ca.pem" \
  --accept-proxy-protocol --trusted-proxy 127.0.0.2/32 --header-timeout 1 \
  -w "$tmp/b.cap" >"$tmp/b.live" 2>"$tmp/b.err" &
pids+=($!)
wait_port "$bport" && ok "reverse proxy listening (PROXY protocol)" || { bad "listening B"; cat "$tmp/b.err"; }
printf 'GET /Microsoft-Server-ActiveSync?Cmd=Sync&User=carol&DeviceId=DEVV1&DeviceType=Android HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n' >"$tmp/q1"
n0=$(nreq)
C "$bport" "$tmp/q1" --tls "$F/origin-ca.pem" --src 127.0.0.2 \
  --pp-text 'PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n' >"$tmp/q1.out"
check "PROXY v1 TCP4 from the trusted peer: answered" 'head -1 "$tmp/q1.out" | grep -q 200'
last=$(ls "$tmp/origin" | sort -n | tail -1)
check "X-Forwarded-For carries the PROXY header's client, the spoofed value kept" \
  'grep -q "^X-Forwarded-For: 10.9.9.9, 203.0.113.7" "$tmp/origin/$last"'
# v2 TCP6: 2001:db8::5 port 40000 -> 2001:db8::1 port 443.
v2sig=0d0a0d0a000d0a515549540a
v2=${v2sig}2121002420010db800000000000000000000000520010db80000000000000000000000019c4001bb
sed 's/carol/dave/; s/DEVV1/DEVV2/' "$tmp/q1" >"$tmp/q2"
C "$bport" "$tmp/q2" --tls "$F/origin-ca.pem" --src 127.0.0.2 --pp "$v2" >"$tmp/q2.out"
check "PROXY v2 TCP6 from the trusted peer: answered" 'head -1 "$tmp/q2.out" | grep -q 200'
# v2 LOCAL (a health check): the peer itself is the client.
sed 's/carol/erin/; s/DEVV1/DEVV3/' "$tmp/q1" >"$tmp/q3"
C "$bport" "$tmp/q3" --tls "$F/origin-ca.pem" --src 127.0.0.2 --pp "${v2sig}20000000" >"$tmp/q3.out"
check "PROXY v2 LOCAL: answered" 'head -1 "$tmp/q3.out" | grep -q 200'
n1=$(nreq)
check "three requests through the load balancer reached the origin" '[ $((n1 - n0)) = 3 ]'
# Refused: an untrusted peer (127.0.0.1) with a header, malformed headers, a slow one.
C "$bport" "$tmp/q1" --tls "$F/origin-ca.pem" --pp-text 'PROXY TCP4 198.51.100.1 192.0.2.1 1 443\r\n' >"$tmp/q4.out"
check "a PROXY header from an untrusted peer is refused (closed)" '[ ! -s "$tmp/q4.out" ]'
C "$bport" "$tmp/q1" --tls "$F/origin-ca.pem" --src 127.0.0.2 --pp-text 'PROXY TCP4 203.0.113.07 192.0.2.1 1 443\r\n' >"$tmp/q5.out"
check "a malformed v1 header (leading zero) is refused" '[ ! -s "$tmp/q5.out" ]'
C "$bport" - --src 127.0.0.2 --pp "${v2sig}2111000c" >"$tmp/q6.out"
check "a truncated v2 header times out, closed" '[ ! -s "$tmp/q6.out" ]'
C "$bport" "$tmp/q1" --tls "$F/origin-ca.pem" --src 127.0.0.2 >"$tmp/q7.out"
check "a trusted peer without a header (a TLS ClientHello) is refused" '[ ! -s "$tmp/q7.out" ]'
check "no refused connection reached the origin" '[ "$(nreq)" = "$n1" ]'
check "each refusal logged with its reason" \
  'grep -q "not a --trusted-proxy" "$tmp/b.err" && grep -q "leading zeros\|canonical dotted quad" "$tmp/b.err" && grep -q "no complete PROXY header" "$tmp/b.err" && grep -q "does not begin with a PROXY" "$tmp/b.err"'

# C: plain listener (behind a TLS-terminating balancer), recording a subset.
cport=$(free_port)
"$E" proxy --reverse "https://127.0.0.1:$oport" --listen "127.0.0.1:$cport" \
  --upstream-ca "$F/origin-ca.pem" --only-user alice --only-device DEVB64 \
  -w "$tmp/c.cap" >"$tmp/c.live" 2>"$tmp/c.err" &
pids+=($!)
wait_port "$cport" && ok "reverse proxy listening (plain, --only-user/--only-device)" || { bad "listening C"; cat "$tmp/c.err"; }
n0=$(nreq)
auth=$(printf 'CONTOSO\\alice:secret' | base64)
curl -s -o /dev/null -H "Authorization: Basic $auth" \
  "http://127.0.0.1:$cport/Microsoft-Server-ActiveSync?Cmd=Sync&User=CONTOSO%5Calice&DeviceId=DEVC1&DeviceType=iPhone"
curl -s -o /dev/null "http://127.0.0.1:$cport/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice@contoso.com&DeviceId=DEVC2&DeviceType=iPhone"
curl -s -o /dev/null "http://127.0.0.1:$cport/Microsoft-Server-ActiveSync?Cmd=Sync&User=bob&DeviceId=DEVC3&DeviceType=iPhone"
curl -s -o /dev/null "http://127.0.0.1:$cport/Microsoft-Server-ActiveSync?Cmd=Sync&User=FABRIKAM%5Calice2&DeviceId=DEVC4&DeviceType=iPhone"
# Base64 query ([MS-ASHTTP] 2.2.1.1.1.1): v14.1, Sync, en-US, DeviceId DEVB64, type iPhone, User=zed.
b64=$(python3 -c 'import base64,sys; q=bytes([141,0,0x09,0x04,6])+b"DEVB64"+bytes([0,6])+b"iPhone"+bytes([8,3])+b"zed"; print(base64.b64encode(q).decode())')
curl -s -o /dev/null -H 'MS-ASProtocolVersion: 14.1' "http://127.0.0.1:$cport/Microsoft-Server-ActiveSync?$b64"
curl -s -o /dev/null "http://127.0.0.1:$cport/owa/"
# Autodiscover names the account only by its Basic user: alice's is recorded, bob's is not.
curl -s -o /dev/null -H "Authorization: Basic $(printf 'alice@contoso.com:pw' | base64)" \
  -d '<Autodiscover/>' "http://127.0.0.1:$cport/autodiscover/autodiscover.xml"
curl -s -o /dev/null -H "Authorization: Basic $(printf 'bob:pw' | base64)" \
  -d '<Autodiscover/>' "http://127.0.0.1:$cport/autodiscover/autodiscover.xml?who=bob"
check "every request reached the origin (8)" '[ $(($(nreq) - n0)) = 8 ]'

# D: the session browser live (--web) and --allow behind the balancer.
dport=$(free_port)
"$E" proxy --reverse "https://localhost:$oport" --listen "127.0.0.1:$dport" \
  --upstream-ca "$F/origin-ca.pem" --accept-proxy-protocol --trusted-proxy 127.0.0.2 \
  --allow 203.0.113.0/24 --web 127.0.0.1:0 --no-record >"$tmp/d.live" 2>"$tmp/d.err" &
pids+=($!)
wait_port "$dport" && ok "reverse proxy listening (--web, --allow)" || { bad "listening D"; cat "$tmp/d.err"; }
C "$dport" "$tmp/q1" --src 127.0.0.2 --pp-text 'PROXY TCP4 203.0.113.9 192.0.2.1 1000 80\r\n' >"$tmp/d1.out"
C "$dport" "$tmp/q1" --src 127.0.0.2 --pp-text 'PROXY TCP4 198.51.100.9 192.0.2.1 1000 80\r\n' >"$tmp/d2.out"
check "--allow: the PROXY header's client 203.0.113.9 admitted, 198.51.100.9 refused" \
  'head -1 "$tmp/d1.out" | grep -q 200 && [ ! -s "$tmp/d2.out" ] && grep -q "refused client 198.51.100.9 through 127.0.0.2" "$tmp/d.err"'
url=$(head -1 "$tmp/d.live")
tok=${url##*token=}
base=${url%%/\?*}
sleep 0.3
curl -s "$base/api/rows?token=$tok" >"$tmp/d.rows"
curl -s "$base/api/exchange/1?token=$tok" >"$tmp/d.x1"
check "--web: the live session browser lists the reverse exchange" 'grep -q "carol" "$tmp/d.rows"'
check "--web: the exchange carries the client, the balancer and the mode" \
  'grep -q "203.0.113.9" "$tmp/d.x1" && grep -q "\"via\":\"127.0.0.2:" "$tmp/d.x1" && grep -q "\"reverse\":true" "$tmp/d.x1"'

sleep 0.5
for p in "${pids[@]:1}"; do kill -INT "$p" 2>/dev/null; done
sleep 1

"$E" replay --json --fail-on never "$tmp/a.cap" >"$tmp/a.json" 2>"$tmp/a.rerr"
check "replay reads the reverse capture" '[ -s "$tmp/a.json" ]'
check "recorded exchanges are marked reverse" 'grep -q "\"reverse\":true" "$tmp/a.json"'
check "the recorded client is the peer, not the spoofed X-Forwarded-For" \
  'head -1 "$tmp/a.json" | grep -q "\"client\":\"127.0.0.1:" && ! grep -q "6.6.6.6" "$tmp/a.json"'
check "refused CONNECT and absolute-form are recorded as refusals" '[ "$(grep -c "refused: this is a reverse proxy" "$tmp/a.json")" -ge 2 ]'
"$E" replay --fail-on never "$tmp/a.cap" >"$tmp/a.txt" 2>&1
check "replay shows Ping held as a long poll" 'grep -q "Ping" "$tmp/a.txt"'
"$E" replay --json --fail-on never "$tmp/b.cap" >"$tmp/b.json" 2>&1
check "PROXY v1: recorded client is the header's, via the balancer" \
  'grep "carol" "$tmp/b.json" | grep -q "\"client\":\"203.0.113.7:50123\",\"via\":\"127.0.0.2:"'
check "PROXY v2 TCP6: recorded client is the header's" 'grep "dave" "$tmp/b.json" | grep -q "\"client\":\"\[2001:db8::5\]:40000\""'
check "PROXY v2 LOCAL: recorded client is the peer, no via" 'grep "erin" "$tmp/b.json" | grep -q "\"client\":\"127.0.0.2:" && ! grep "erin" "$tmp/b.json" | grep -q "\"via\""'
check "the refused connections are not recorded" '[ "$(grep -c "\"n\":" "$tmp/b.json")" = 3 ]'
"$E" show "$tmp/b.cap" 1 >"$tmp/b.show" 2>&1
check "show prints the client, the balancer and the mode" \
  'grep -q "203.0.113.7" "$tmp/b.show" && grep -q "via .*127.0.0.2" "$tmp/b.show" && grep -q "reverse proxy" "$tmp/b.show"'
# The reverse proxy's facts survive an export: HAR (_viaAddress, _eastraceReverse, still valid
# HAR 1.2) and .saz (SessionFlags) read back give replay --json the same client, via and
# reverse as the capture.
facts() { python3 -c '
import json, sys
for o in map(json.loads, sys.stdin):
    if "n" in o: print(o.get("client"), o.get("via"), o.get("reverse", False))'; }
facts <"$tmp/b.json" >"$tmp/b.facts"
check "the capture holds via and reverse facts to carry" 'grep -q "127.0.0.2:.* True" "$tmp/b.facts" && grep -q " None True" "$tmp/b.facts"'
for fmt in har saz; do
  "$E" export "$tmp/b.cap" --$fmt "$tmp/b.$fmt" 2>/dev/null
  "$E" replay --json --fail-on never "$tmp/b.$fmt" 2>/dev/null | facts >"$tmp/b.$fmt.facts"
  check "export --$fmt then replay --json: the same client, via and reverse as the capture" \
    'diff "$tmp/b.facts" "$tmp/b.$fmt.facts" >/dev/null'
  "$E" show "$tmp/b.$fmt" 1 >"$tmp/b.$fmt.show" 2>&1
  check "show of the .$fmt export prints the balancer and the mode" \
    'grep -q "via .*127.0.0.2" "$tmp/b.$fmt.show" && grep -q "reverse proxy" "$tmp/b.$fmt.show" && ! grep -q "x-eastrace" "$tmp/b.$fmt.show"'
done
if NODE_PATH=${NODE_PATH:-/usr/share/nodejs} node "$here/har-validate.js" "$tmp/b.har" >"$tmp/hv" 2>&1; then
  ok "the HAR export with _viaAddress and _eastraceReverse is valid HAR 1.2 (node-har-validator)"
else
  bad "HAR validation: $(cat "$tmp/hv")"
fi
"$E" replay --json --fail-on never "$tmp/c.cap" >"$tmp/c.json" 2>&1
check "--only-user alice: CONTOSO\\alice (Basic and User=) and alice@contoso.com recorded" \
  'grep -q DEVC1 "$tmp/c.json" && grep -q DEVC2 "$tmp/c.json"'
check "--only-user: bob and FABRIKAM\\alice2 forwarded unrecorded" '! grep -q "DEVC3\|DEVC4" "$tmp/c.json"'
check "--only-device DEVB64 (base64 query) recorded" 'grep -q DEVB64 "$tmp/c.json"'
check "a request naming nobody (/owa/) is not recorded" '! grep -q "/owa" "$tmp/c.json" && [ "$(grep -c "\"n\":" "$tmp/c.json")" = 4 ]'
check "--only-user alice: her Autodiscover (Basic alice@contoso.com) recorded, bob's not" \
  'grep -q "\"path\":\"/autodiscover/autodiscover.xml\"" "$tmp/c.json" && ! grep -q "who=bob" "$tmp/c.json"'
check "the summary counts the unrecorded ones" 'grep -q "4 forwarded unrecorded" "$tmp/c.err"'
check "replay --user ALICE of that capture: the same 3 of alice (Sync twice, Autodiscover)" \
  '[ "$("$E" replay --json --user ALICE "$tmp/c.cap" 2>/dev/null | grep -c "\"n\":")" = 3 ]'

t_done

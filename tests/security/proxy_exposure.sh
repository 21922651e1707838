#!/usr/bin/env bash
# Exposure of `eastrace proxy` to other hosts (issue 9 item 2), from a real second host: a
# guest network namespace on a veth pair, the proxy listening on the host side's address, and
# an "Internet" origin in a second namespace (TEST-NET-3 address, ports 25, 80 and 443). Needs
# root and `ip netns`; every case is skipped with the reason otherwise. Traffic stays inside
# the two namespaces and the veth links. Runs alone or from tests/security/run.sh.
. "$(dirname "$0")/lib.sh"
g=et-proxysec-guest-$$
o=et-proxysec-origin-$$
hv=etpsg$$ gv=etpsgp$$ ov=etpso$$ opv=etpsop$$
t_on_exit() {
  ip link del "$hv" 2>/dev/null
  ip link del "$ov" 2>/dev/null
  ip netns del "$g" 2>/dev/null
  ip netns del "$o" 2>/dev/null
}

if [ "$(id -u)" -ne 0 ] || ! ip netns add "$g" 2>/dev/null; then
  skip "proxy exposure from a guest namespace" "needs root and 'ip netns' (not permitted here)"
  sec_done
  exit 0
fi
ip netns add "$o"
# Addresses picked per run so parallel runs do not collide: guest link 10.X.Y.0/30, origin
# link 203.0.113.4k/30 (TEST-NET-3: public-looking, routed nowhere).
x=$((200 + RANDOM % 50)) y=$((RANDOM % 250)) k=$((RANDOM % 60))
H=10.$x.$y.1 G=10.$x.$y.2
OH=203.0.113.$((4 * k + 1)) O=203.0.113.$((4 * k + 2))
ip link add "$hv" type veth peer name "$gv"
ip link set "$gv" netns "$g"
ip addr add "$H/30" dev "$hv" && ip link set "$hv" up
ip -n "$g" addr add "$G/30" dev "$gv" && ip -n "$g" link set "$gv" up && ip -n "$g" link set lo up
ip link add "$ov" type veth peer name "$opv"
ip link set "$opv" netns "$o"
ip addr add "$OH/30" dev "$ov" && ip link set "$ov" up
ip -n "$o" addr add "$O/30" dev "$opv" && ip -n "$o" link set "$opv" up && ip -n "$o" link set lo up

# The origin: answers every connection on 25, 80 and 443 and logs "PORT" per connection.
cat >"$tmp/origin.py" <<'PY'
import socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept(); log.write("%d\n" % port)
        try:
            c.settimeout(2); c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nServer: gws\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
        except OSError:
            pass
        c.close()
for p in (25, 80, 443):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
PY
: >"$tmp/origin.log"
ip netns exec "$o" python3 "$tmp/origin.py" "$tmp/origin.log" >"$tmp/origin.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q ready "$tmp/origin.out" 2>/dev/null && break; sleep 0.05; done

# guest_req PORT BYTES: sends BYTES from the guest to the proxy, prints the first line back.
cat >"$tmp/req.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(sys.argv[3].encode().decode("unicode_escape").encode("latin-1"))
try:
    d = s.recv(4096)
except OSError:
    d = b""
print(d.split(b"\r\n")[0].decode("latin-1") if d else "(closed)")
PY
guest_req() { ip netns exec "$g" python3 "$tmp/req.py" "$H" "$1" "$2" 2>/dev/null || echo "(refused)"; }

# start_proxy NAME ARGS...: starts the proxy on the host side's address, sets port.
start_proxy() {
  local name=$1; shift
  : >"$tmp/$name.err"
  XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state "$E" proxy --listen "$H:0" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  ppid_=$!
  pids+=($ppid_)
  port=
  for _ in $(seq 1 100); do
    port=$(sed -n "s/^eastrace proxy \(.reverse. \)\{0,1\}listening on $H:\([0-9]*\).*/\2/p" "$tmp/$name.err")
    [ -n "$port" ] && break
    sleep 0.05
  done
}
stop_proxy() { kill -INT "$ppid_" 2>/dev/null; wait "$ppid_" 2>/dev/null; }

# 1. Listening on a LAN address without saying which clients: refused at start.
XDG_DATA_HOME=$tmp/data XDG_STATE_HOME=$tmp/state timeout 5 "$E" proxy --listen "$H:0" \
  >"$tmp/noallow.out" 2>"$tmp/noallow.err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--allow" "$tmp/noallow.err"; then
  ok "--listen LAN without --allow" "exit $rc, names --allow; pass: exit 2, no listener"
else
  bad "--listen LAN without --allow" "exit $rc: $(head -c 300 "$tmp/noallow.err")"
fi

# 2. The guest admitted (the README's command: --allow, --intercept the Exchange host).
start_proxy admitted --allow "$G/32" --intercept mail.example.com -w "$tmp/admitted.cap"
if [ -z "$port" ]; then
  bad "proxy on $H" "did not start: $(head -c 300 "$tmp/admitted.err")"
  sec_done
  exit 1
fi
grep -q "$G/32" "$tmp/admitted.err" && ok "admitted clients printed at start" "$(grep -i 'clients' "$tmp/admitted.err" | head -1)" ||
  bad "admitted clients printed at start" "$(head -c 300 "$tmp/admitted.err")"
line=$(guest_req "$port" "CONNECT $O:443 HTTP/1.1\r\nHost: $O:443\r\n\r\n")
sleep 0.3
n443=$(grep -c '^443$' "$tmp/origin.log")
[ "${line:0:12}" = "HTTP/1.1 200" ] && [ "$n443" -ge 1 ] &&
  ok "CONNECT to a public host's 443 passes" "$line, origin saw $n443 connection(s) on 443" ||
  bad "CONNECT to a public host's 443 passes" "'$line', origin 443 connections $n443"
line=$(guest_req "$port" "GET http://$O/ HTTP/1.1\r\nHost: $O\r\nConnection: close\r\n\r\n")
[ "${line:0:12}" = "HTTP/1.1 200" ] && ok "GET a public host's port 80 passes" "$line" ||
  bad "GET a public host's port 80 passes" "'$line'"
refused=0 total=0
for t in "CONNECT $O:25" "GET http://$O:25/" "CONNECT $H:25" "CONNECT $H:443" "CONNECT 127.0.0.1:25" \
         "CONNECT 127.0.0.2:25" "CONNECT 192.168.77.1:443" "CONNECT 10.9.9.9:443" \
         "CONNECT 172.20.0.1:80" "CONNECT 169.254.169.254:80" \
         "CONNECT [::1]:443" "CONNECT $O:8443"; do
  total=$((total + 1))
  tgt=${t#* }
  auth=${tgt#http://}; auth=${auth%%/*}
  line=$(guest_req "$port" "$t HTTP/1.1\r\nHost: $auth\r\n\r\n")
  if [ "${line:0:12}" = "HTTP/1.1 403" ]; then refused=$((refused + 1)); else echo "  $t -> $line"; fi
done
sleep 0.3
n25=$(grep -c '^25$' "$tmp/origin.log")
[ "$refused" -eq "$total" ] && [ "$n25" -eq 0 ] &&
  ok "targets refused from an admitted guest" "$refused of $total (port 25, own address, loopback, private, link-local, port 8443) 403, origin port 25 connections $n25; pass: all, 0" ||
  bad "targets refused from an admitted guest" "$refused of $total refused, origin port 25 connections $n25"
nlog=$(grep -c "refused" "$tmp/admitted.err")
[ "$nlog" -ge "$total" ] && ok "each refusal logged" "$nlog log lines on stderr; pass: >= $total" ||
  bad "each refusal logged" "$nlog lines: $(head -c 400 "$tmp/admitted.err")"

if command -v nmap >/dev/null; then
  # The script tries GET and HEAD of the URL and a CONNECT to its host's port 80.
  found=0
  for url in "http://127.0.0.1:25/" "http://$H:25/" "http://10.9.9.9/" "http://$O:25/"; do
    ip netns exec "$g" nmap -n -Pn -p "$port" --script +http-open-proxy \
      --script-args "proxy.url=$url" "$H" >"$tmp/nmap.txt" 2>&1
    if [ "$url" = "http://$O:25/" ]; then
      # CONNECT $O:80 is an allowed target (a public host's port 80): only GET/HEAD of :25
      # would be a relay to a mail port.
      grep -A3 -i "open proxy" "$tmp/nmap.txt" | grep -q "GET\|HEAD" && found=$((found + 1)) &&
        echo "  nmap relayed GET/HEAD to $url"
    else
      grep -qi "open proxy" "$tmp/nmap.txt" && found=$((found + 1)) && echo "  nmap found $url"
    fi
  done
  [ $found -eq 0 ] && ok "nmap http-open-proxy from the admitted guest, refused targets" "0 of 4 relayed (loopback:25, own:25, private, public:25 by GET/HEAD); pass: 0" ||
    bad "nmap http-open-proxy from the admitted guest, refused targets" "$found of 4 relayed"
  # Control: the script does find a proxy that relays (port 80 to the public origin is allowed
  # for an admitted phone), so its silence above means something.
  ip netns exec "$g" nmap -n -Pn -p "$port" --script +http-open-proxy \
    --script-args "proxy.url=http://$O/,proxy.pattern=origin" "$H" >"$tmp/nmap.txt" 2>&1
  grep -qi "open proxy" "$tmp/nmap.txt" && ok "nmap control: an allowed relay is detected" "found" ||
    bad "nmap control: an allowed relay is detected" "$(grep -i proxy "$tmp/nmap.txt" | head -3)"
else
  skip "nmap http-open-proxy" "nmap not installed"
fi
stop_proxy

# 3. The guest not admitted (--allow names another network): refused at once, counted, not
#    recorded; nmap finds nothing even for a target an admitted client could reach.
start_proxy stranger --allow 192.0.2.0/24 --intercept mail.example.com -w "$tmp/stranger.cap"
c0=$(wc -l <"$tmp/origin.log")
codes=
for i in 1 2 3 4 5; do
  line=$(guest_req "$port" "CONNECT $O:443 HTTP/1.1\r\nHost: $O\r\n\r\n")
  codes="$codes ${line:9:3}"
done
sleep 0.3
c1=$(wc -l <"$tmp/origin.log")
case "$codes" in *200*) r=bad ;; *) r=ok ;; esac
[ "$c1" -eq "$c0" ] || r=bad
$r "guest not in --allow refused" "answers:$codes, origin connections $((c1 - c0)); pass: no 200, 0"
if command -v nmap >/dev/null; then
  ip netns exec "$g" nmap -n -Pn -p "$port" --script +http-open-proxy \
    --script-args "proxy.url=http://$O/,proxy.pattern=origin" "$H" >"$tmp/nmap.txt" 2>&1
  grep -qi "open proxy" "$tmp/nmap.txt" && bad "nmap http-open-proxy from a guest not admitted" "found open" ||
    ok "nmap http-open-proxy from a guest not admitted" "nothing found; pass: nothing"
fi
stop_proxy
recs=$("$E" replay "$tmp/stranger.cap" 2>/dev/null | grep -c "CONNECT")
grep -q "refused" "$tmp/stranger.err" && [ "$recs" -eq 0 ] &&
  ok "refused clients counted, not recorded" "0 records, $(grep -o "[0-9]* connections refused at accept" "$tmp/stranger.err" | tail -1); pass: 0 records, a count" ||
  bad "refused clients counted, not recorded" "$recs records: $(tail -3 "$tmp/stranger.err")"

# 4. Reverse mode on the LAN address, no --allow (everyone may reach the one server): the guest
#    is served by that server only; CONNECT and absolute-form to anything are refused.
start_proxy reverse --reverse "http://$O:80" -w "$tmp/reverse.cap"
c0=$(grep -c '^80$' "$tmp/origin.log")
line=$(guest_req "$port" "GET /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: mail.example.com\r\nConnection: close\r\n\r\n")
sleep 0.3
c1=$(grep -c '^80$' "$tmp/origin.log")
[ "${line:0:12}" = "HTTP/1.1 200" ] && [ $((c1 - c0)) -eq 1 ] &&
  ok "reverse on a LAN address without --allow serves the guest" "$line, the server saw $((c1 - c0)) connection" ||
  bad "reverse on a LAN address without --allow serves the guest" "'$line', server connections $((c1 - c0)): $(head -c 300 "$tmp/reverse.err")"
refused=0 total=0
n25=$(grep -c '^25$' "$tmp/origin.log")
for t in "CONNECT $O:25" "CONNECT $O:443" "GET http://$O:25/" "GET http://127.0.0.1:25/" \
         "CONNECT 127.0.0.1:22" "GET http://$H:25/"; do
  total=$((total + 1))
  tgt=${t#* }
  auth=${tgt#http://}; auth=${auth%%/*}
  line=$(guest_req "$port" "$t HTTP/1.1\r\nHost: $auth\r\n\r\n")
  case "${line:0:12}" in "HTTP/1.1 400" | "HTTP/1.1 405") refused=$((refused + 1)) ;; *) echo "  $t -> $line" ;; esac
done
sleep 0.3
n25b=$(grep -c '^25$' "$tmp/origin.log")
n443=$(grep -c '^443$' "$tmp/origin.log")
[ "$refused" -eq "$total" ] && [ "$n25b" -eq "$n25" ] &&
  ok "reverse: the guest's CONNECT and absolute-form refused" "$refused of $total 400/405, new origin port 25 connections $((n25b - n25)); pass: all, 0" ||
  bad "reverse: the guest's CONNECT and absolute-form refused" "$refused of $total, port 25 connections $((n25b - n25))"
if command -v nmap >/dev/null; then
  found=0
  for url in "http://127.0.0.1:25/" "http://$H:25/" "http://$O:25/" "http://$O/"; do
    ip netns exec "$g" nmap -n -Pn -p "$port" --script +http-open-proxy \
      --script-args "proxy.url=$url,proxy.pattern=origin" "$H" >"$tmp/nmap.txt" 2>&1
    grep -qi "open proxy" "$tmp/nmap.txt" && found=$((found + 1)) && echo "  nmap found $url"
  done
  [ $found -eq 0 ] && ok "reverse: nmap http-open-proxy from the guest" "0 of 4 relayed (even the server's own http://$O/ is not reachable as a proxy); pass: 0" ||
    bad "reverse: nmap http-open-proxy from the guest" "$found of 4 relayed"
fi
stop_proxy
sec_done

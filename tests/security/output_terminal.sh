#!/usr/bin/env bash
# Terminal and HTML injection canaries (issue 9 item 3): a DeviceId, User-Agent, IIS field or mailbox
# log line carrying OSC/CSI escapes, BEL, DEL and C1 (U+009B as UTF-8 and as a raw byte)
# goes through every command that prints to a terminal. Pass figure: 0 raw control bytes
# (ctl_count: C0 but TAB/LF, DEL, C1 raw or as UTF-8) in stdout and stderr together.
. "$(dirname "$0")/lib.sh"
G="python3 $sec_here/gen.py"
F=$root/tests/fixtures
OSC=$'\x1b]0;PWNED\x07'
CSI=$'\x1b[2J'
C1=$'\xc2\x9b'31m     # U+009B CSI as UTF-8
RAW=$'\x9b'2J         # CSI as a raw 8-bit byte

# canary NAME COMMAND...: runs it and counts raw control bytes in everything it printed.
canary() {
  local name=$1; shift
  "$@" >"$tmp/o" 2>"$tmp/e"
  local rc=$? n
  n=$(ctl_count "$tmp/o" "$tmp/e")
  local out=$(( $(stat -c %s "$tmp/o") + $(stat -c %s "$tmp/e") ))
  local f="exit $rc, $out bytes printed, $n raw control bytes; pass: 0 raw control bytes, no crash"
  if [ "$n" -eq 0 ] && [ "$rc" -lt 128 ] && [ "$out" -gt 0 ]; then ok "$name" "$f"; else bad "$name" "$f"; fi
}

# ---- a .saz and a HAR whose request and response carry the canaries ----
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u%s&DeviceId=%s&DeviceType=t%s HTTP/1.1\r\nHost: mail.example.com\r\nUser-Agent: %s\r\nX-Canary: %s%s\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n\r\n' \
  "$RAW" '%1B%5D0%3BPWNED%07%1B%5B2J%C2%9B' "$C1" "$OSC" "$CSI" "$RAW" >"$tmp/c.txt"
printf 'HTTP/1.1 500 %s\r\nContent-Type: text/plain\r\nServer: %s\r\nContent-Length: 20\r\n\r\nbody %s%s.\n' \
  "$OSC" "$C1" "$OSC" "$CSI" >"$tmp/s.txt"
$G saz "$tmp/can.saz" "raw/01_c.txt=$tmp/c.txt" "raw/01_s.txt=$tmp/s.txt"
$G har "$tmp/can.har" "$tmp/c.txt" "$tmp/s.txt"
for f in can.saz can.har; do
  canary "$f: replay (timeline, findings, device summary)" "$E" replay "$tmp/$f"
  canary "$f: replay --json" "$E" replay --json "$tmp/$f"
  canary "$f: show" "$E" show "$tmp/$f" 1
  canary "$f: show --json" "$E" show --json "$tmp/$f" 1
  canary "$f: export --har (messages)" "$E" export "$tmp/$f" --har "$tmp/x.har"
done
canary "decode of the raw request (headers, EAS request line)" "$E" decode "$tmp/c.txt"
canary "decode of the raw response (start line, headers, text body)" "$E" decode "$tmp/s.txt"
canary "decode --json of the raw request" "$E" decode --json "$tmp/c.txt"
canary "decode: a file name with escapes (error message)" "$E" decode "$tmp/nope$OSC"
# WBXML text with the canaries: <Sync><SyncKey>TEXT</SyncKey></Sync> (page 0: Sync 0x05,
# SyncKey 0x0B), the text as an inline string.
printf '\x03\x01\x6a\x00\x45\x4b\x03%s\x00\x01\x01' "x$OSC$C1$RAW" >"$tmp/w.wbxml"
canary "decode of WBXML text" "$E" decode "$tmp/w.wbxml"
canary "decode --json of WBXML text" "$E" decode --json "$tmp/w.wbxml"

# ---- IIS log: User-Agent and DeviceId with escapes (the report's tables) ----
src=$F/logs/iis-ex2010-sync-ping-errors.log
if [ -f "$src" ]; then
  sed -e "s|Apple-iPhone4C1/902.206|Apple$OSC$C1$RAW|; s|DeviceId=ApplDNPX1|DeviceId=Appl$CSI|" "$src" >"$tmp/iis.log"
  canary "iis table (hits per device)" "$E" iis "$tmp/iis.log"
  canary "iis --json" "$E" iis --json "$tmp/iis.log"
  canary "replay of the IIS log" "$E" replay "$tmp/iis.log"
fi

# ---- HTML: the same fields as markup; nothing may come out as a live tag or attribute ----
if [ -f "$F/logs/iis-ex2010-sync-ping-errors.log" ]; then
  sed -e 's|Apple-iPhone4C1/902.206|<script>alert(1)</script>"onmouseover=alert(2)|' \
      -e 's|DeviceId=ApplDNPX1|DeviceId=<img/src=x>|' \
      "$F/logs/iis-ex2010-sync-ping-errors.log" >"$tmp/html.log"
  "$E" iis --html "$tmp/html.log" >"$tmp/o.html" 2>"$tmp/e"
  n=$(grep -aoc '<script>alert\|<img/src\|"onmouseover' "$tmp/o.html")
  esc=$(grep -aoc '&lt;script&gt;' "$tmp/o.html")
  verdict "iis --html: markup from the log escaped" \
    "$n live tags or attributes, $esc escaped; pass: 0 live, >= 1 escaped" \
    [ "$n" -eq 0 -a "$esc" -ge 1 ]
  if "$E" export --help 2>&1 | grep -q -- '--html'; then
    printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=%%3Cimg%%2Fsrc%%3Dx%%3E&DeviceType=t HTTP/1.1\r\nHost: h\r\nUser-Agent: <script>alert(1)</script>\r\nContent-Length: 0\r\n\r\n' >"$tmp/hc.txt"
    $G saz "$tmp/h.saz" "raw/01_c.txt=$tmp/hc.txt" "raw/01_s.txt=$tmp/s.txt"
    "$E" export "$tmp/h.saz" --html "$tmp/x.html" >/dev/null 2>&1
    n=$(grep -aoc '<script>alert\|<img/src' "$tmp/x.html" 2>/dev/null); n=${n:-0}
    verdict "export --html: markup from traffic escaped" "$n live tags; pass: 0, file written" \
      [ -s "$tmp/x.html" -a "$n" -eq 0 ]
  else
    skip "export --html: markup from traffic escaped" "this build has no export --html"
  fi
fi

# ---- mailbox log ----
src=$F/logs/mailboxlog-sync-ping-sendmail.txt
if [ -f "$src" ]; then
  sed -e "s|User-Agent: Apple-iPhone5C2/1002.329|User-Agent: Apple$OSC$C1$RAW|; s|DeviceId=ApplC39GQ0AB|DeviceId=Appl$CSI|; s|ServerName : |ServerName $OSC: |" "$src" >"$tmp/mbx.txt"
  canary "mailboxlog entries" "$E" mailboxlog "$tmp/mbx.txt"
  canary "mailboxlog --ping" "$E" mailboxlog --ping "$tmp/mbx.txt"
  canary "show of a mailbox log entry" "$E" show "$tmp/mbx.txt" 1
fi

# ---- probe: a URL with escapes is echoed in its steps and errors ----
canary "probe of a URL with escapes" env EASTRACE_PASSWORD=x "$E" probe \
  "http://127.0.0.1:9/Microsoft-Server-ActiveSync$OSC" -u "u$C1"

# ---- the proxy: the live view and the exit summary with the DeviceId of the issue ----
PF=$F/proxy
if command -v openssl >/dev/null && command -v curl >/dev/null && [ -f "$PF/origin-localhost.pem" ]; then
  oport=$(free_port)
  openssl s_server -accept "127.0.0.1:$oport" -cert "$PF/origin-localhost.pem" \
    -key "$PF/origin-localhost.key" -www -quiet >/dev/null 2>&1 &
  spid=$!
  pport=$(free_port)
  export XDG_DATA_HOME=$tmp/data
  "$E" proxy --listen "127.0.0.1:$pport" --allow-target 127.0.0.1 --allow-target localhost \
    --upstream-ca "$PF/origin-ca.pem" -w "$tmp/cap.et" >"$tmp/live.txt" 2>"$tmp/live.err" &
  ppid=$!
  if wait_port "$oport" && wait_port "$pport"; then
    curl -s -o /dev/null -x "http://127.0.0.1:$pport" --cacert "$tmp/data/eastrace/ca.pem" \
      "https://localhost:$oport/Microsoft-Server-ActiveSync?Cmd=Ping&User=u%C2%9B&DeviceId=%1B%5D0%3BPWNED%07%1B%5B2J&DeviceType=t%9B"
    sleep 0.5
    kill -INT $ppid
    wait $ppid
    # (A control byte in a header is refused by the proxy as malformed: the query carries them.)
    n=$(ctl_count "$tmp/live.txt" "$tmp/live.err")
    grep -q "PWNED" "$tmp/live.txt" "$tmp/live.err" && seen=1 || seen=0
    verdict "proxy live view and exit summary" \
      "$n raw control bytes, device seen in the output: $seen; pass: 0 and 1" \
      [ "$n" -eq 0 -a "$seen" -eq 1 ]
    canary "replay of the proxy's capture" "$E" replay "$tmp/cap.et"
    canary "show of the proxy's capture" "$E" show "$tmp/cap.et" 1
  else
    skip "proxy live view and exit summary" "origin or proxy did not start"
    kill $ppid 2>/dev/null
  fi
  kill $spid 2>/dev/null
  wait $spid 2>/dev/null
else
  skip "proxy live view and exit summary" "openssl, curl or the proxy fixtures missing"
fi

sec_done

#!/usr/bin/env bash
# eastrace on real data (issue 10 items 2, 3, 4, 9, 10): HAR bodies already decoded by their
# writer, .saz exports that an HTTP parser reads, HAR exports valid against the HAR 1.2 schema
# (Debian's node-har-validator), the analyzer's former false alarms, and a healthy session of a
# real server (SOGo) staying silent. Fixtures in tests/fixtures/analyzer (make-fixtures.py) and
# tests/fixtures/saz; the shared corpus (../shared/corpus) when present.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
E=${ET_EASTRACE:-$root/build-test/cli/eastrace}
FX=$root/tests/fixtures
AF=$FX/analyzer
CORPUS=${ET_CORPUS_DIR:-$root/../shared/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check NAME EXPECTED_EXIT COMMAND...: output in $tmp/out, $tmp/err
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok "$name"; else
    bad "$name (exit $got, wanted $want)"; head -30 "$tmp/err" "$tmp/out"; fi
}
contains() { if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: '$3' not in $2"; head -40 "$2"; fi; }
lacks() { if grep -qF -- "$3" "$2"; then bad "$1: '$3' found in $2"; grep -F -- "$3" "$2" | head -5; else ok "$1"; fi; }
# har_valid NAME FILE: the HAR 1.2 schema of node-har-validator accepts FILE.
har_valid() {
  if NODE_PATH=${NODE_PATH:-/usr/share/nodejs} node "$here/har-validate.js" "$2" >"$tmp/hv" 2>&1; then
    ok "$1: valid HAR 1.2 (har-validator)"
  else
    bad "$1: not valid HAR 1.2"; cat "$tmp/hv"
  fi
}
# read_http NAME FILE: Python's http.client reads FILE as one HTTP message whose body is all
# that follows its headers; prints the status and the body length.
read_http() {
  python3 - "$2" "$3" >"$tmp/py" 2>&1 <<'PY'
import http.client, io, sys
data = open(sys.argv[1], "rb").read()
kind = sys.argv[2]
if not data:
    print("empty"); sys.exit(0)
class Keep(io.BytesIO):
    def close(self): pass  # http.client closes its file once the body is read
class Sock:
    def __init__(self, b): self.f = Keep(b)
    def makefile(self, *a, **k): return self.f
if kind == "response":
    # The method of the request (raw/NN_c.txt beside it): a HEAD answer has no body.
    try:
        method = open(sys.argv[1][:-6] + "_c.txt", "rb").read().split(b" ", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        method = "GET"
    sock = Sock(data)
    r = http.client.HTTPResponse(sock, method=method)
    r.begin()
    body = r.read()
    rest = sock.f.read()
    if rest:
        sys.exit("%d bytes after the body the headers announce" % len(rest))
    print(r.status, len(body))
else:
    head, _, body = data.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    if b"transfer-encoding" in hdrs and b"chunked" in hdrs[b"transfer-encoding"].lower():
        sys.exit("request still says chunked")
    n = int(hdrs.get(b"content-length", b"0"))
    if n != len(body):
        sys.exit("Content-Length %d, body %d" % (n, len(body)))
    print("request", n)
PY
}

[ -x "$E" ] || { echo "FAIL - no eastrace binary at $E"; echo "0 passed, 1 failed"; exit 1; }
command -v node >/dev/null || bad "node (nodejs) is missing: scripts/install-deps.sh test"

# ---- item 10: a healthy session of a real server is silent -----------------------------------
# Recorded from the SOGo server of tests/probe (scripts/sogo-test-server.sh): eastrace probe
# (OPTIONS, Provision, FolderSync, Sync 0, Sync, Ping with a 10 s heartbeat the server
# accepts) and the same through eastrace proxy plus a SendMail answered 200 with no body.
for f in "$AF/sogo-healthy-probe-session.etcap" "$AF/sogo-healthy-session-via-proxy.har"; do
  check "healthy SOGo session $(basename "$f"): replay --fail-on info exits 0" 0 \
    "$E" replay --fail-on info --no-color "$f"
  contains "healthy SOGo session $(basename "$f"): no finding" "$tmp/out" "0 error(s), 0 warning(s), 0 note(s)"
done
contains "the healthy session includes SendMail" "$tmp/out" "SendMail"

# ---- item 2: HAR content is decoded already ---------------------------------------------------
check "HAR with Content-Encoding gzip and decoded content" 0 "$E" replay --json --fail-on never "$AF/har-gzip-header-decoded-content.har"
contains "its Sync Status is read" "$tmp/out" '"status":[3]'
contains "its FolderSync Status is read" "$tmp/out" '"cmd":"FolderSync"'
lacks "no gzip error" "$tmp/err" "gzip"
check "show of the decoded HAR body" 0 "$E" show "$AF/har-gzip-header-decoded-content.har" 2
contains "show prints the response XML" "$tmp/out" "<Status>3</Status>"
lacks "show reports no body error" "$tmp/err" "corrupt"
# Export then read back: the HAR holds decoded content; the .saz drops Content-Encoding.
check "export the decoded HAR to HAR" 0 "$E" export "$AF/har-gzip-header-decoded-content.har" --har "$tmp/gz.har"
har_valid "re-exported decoded HAR" "$tmp/gz.har"
check "re-read it" 0 "$E" replay --json --fail-on never "$tmp/gz.har"
contains "status still read" "$tmp/out" '"status":[3]'
check "export the decoded HAR to .saz" 0 "$E" export "$AF/har-gzip-header-decoded-content.har" --saz "$tmp/gz.saz"
mkdir -p "$tmp/gz" && (cd "$tmp/gz" && unzip -q "$tmp/gz.saz")
lacks ".saz of a decoded body has no Content-Encoding" "$tmp/gz/raw/2_s.txt" "Content-Encoding"
check "re-read that .saz" 0 "$E" replay --json --fail-on never "$tmp/gz.saz"
contains ".saz status read" "$tmp/out" '"status":[3]'

# The syncgw traces (real Nine and Windows Mail sessions): responses were sent with
# Content-Encoding: gzip; a HAR of them holds the decoded bodies as HAR writers do. Every EAS
# Status must read the same as from the same HAR without the header.
sg=$CORPUS/syncgw-traces/extracted
if [ -d "$sg" ]; then
  python3 - "$sg" "$tmp" <<'PY'
import base64, glob, json, os, sys, datetime
src, out = sys.argv[1], sys.argv[2]
def har(keep_ce):
    ents = []
    for j in sorted(glob.glob(os.path.join(src, "*", "*.json"))):
        d = json.load(open(j))
        if "response" not in d or "ActiveSync" not in d["request"]["uri"]:
            continue
        base = j[:-5]
        def body(suffix):
            for ext in (".wbxml", ".xml"):
                p = base + suffix + ext
                if os.path.exists(p):
                    return open(p, "rb").read()
            return b""
        rq, rs = body("-req"), body("-resp")
        rh = [{"name": k, "value": v} for k, v in d["response"]["headers"].items()
              if keep_ce or k.lower() != "content-encoding"]
        qh = [{"name": k[5:].replace("_", "-").title() if k.startswith("HTTP_") else k.replace("_", "-").title(),
               "value": v} for k, v in d["request"]["headers"].items()]
        st = int(d["response"]["status_line"].split()[1])
        t = datetime.datetime.fromtimestamp(d["request"]["time"], datetime.timezone.utc)
        e = {"startedDateTime": t.isoformat(), "time": 1,
             "request": {"method": d["request"]["method"],
                         "url": "https://dev.fd" + d["request"]["uri"], "httpVersion": "HTTP/1.1",
                         "cookies": [], "headers": qh, "queryString": [], "headersSize": -1,
                         "bodySize": len(rq)},
             "response": {"status": st, "statusText": "", "httpVersion": "HTTP/1.1",
                          "cookies": [], "headers": rh,
                          "content": {"size": len(rs), "mimeType": d["response"]["headers"].get("Content-Type", "")},
                          "redirectURL": "", "headersSize": -1, "bodySize": -1},
             "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
        if rs:
            e["response"]["content"].update(text=base64.b64encode(rs).decode(), encoding="base64")
        if rq:
            e["request"]["postData"] = {"mimeType": "application/vnd.ms-sync.wbxml",
                                        "text": base64.b64encode(rq).decode(), "encoding": "base64"}
        ents.append(e)
    return {"log": {"version": "1.2", "creator": {"name": "test_realdata", "version": "1"}, "entries": ents}}
json.dump(har(True), open(os.path.join(out, "syncgw-gzip.har"), "w"))
json.dump(har(False), open(os.path.join(out, "syncgw-plain.har"), "w"))
PY
  "$E" replay --json --fail-on never "$tmp/syncgw-gzip.har" >"$tmp/sg-gz.json" 2>"$tmp/sg-gz.err"
  "$E" replay --json --fail-on never "$tmp/syncgw-plain.har" >"$tmp/sg-plain.json" 2>/dev/null
  ngz=$(grep -c '"status":\[[0-9]' "$tmp/sg-gz.json")
  nplain=$(grep -c '"status":\[[0-9]' "$tmp/sg-plain.json")
  ngzip=$(grep -o '"Content-Encoding", "value": "gzip"' "$tmp/syncgw-gzip.har" | wc -l)
  echo "syncgw: $ngz responses with a Status read (gzip headers), $nplain without the header; $ngzip gzip responses"
  if [ "$ngz" -ge 100 ] && [ "$ngz" -eq "$nplain" ]; then ok "syncgw traces: every Status read through Content-Encoding gzip ($ngz)"; else bad "syncgw traces: $ngz Status read with gzip headers, $nplain without"; fi
  if grep -o '"status":\[[0-9,]*\]' "$tmp/sg-gz.json" | cmp -s - <(grep -o '"status":\[[0-9,]*\]' "$tmp/sg-plain.json"); then
    ok "syncgw traces: the same Status values with and without the header"
  else
    bad "syncgw traces: Status values differ"
  fi
  lacks "syncgw traces: no gzip error" "$tmp/sg-gz.err" "gzip"
else
  echo "skip - syncgw corpus absent ($sg)"
fi

# ---- item 3: .saz exports are valid HTTP --------------------------------------------------------
saz_roundtrip() { # NAME SAZ
  local d="$tmp/saz-$1"
  check "export $1 to .saz" 0 "$E" export "$2" --saz "$d.saz"
  mkdir -p "$d" && (cd "$d" && unzip -q "$d.saz")
  local n=0 bad_n=0
  for s in "$d"/raw/*_s.txt; do
    n=$((n + 1))
    if ! read_http "$1" "$s" response; then bad_n=$((bad_n + 1)); echo "$s: $(cat "$tmp/py")"; fi
    c=${s%_s.txt}_c.txt
    if ! read_http "$1" "$c" request; then bad_n=$((bad_n + 1)); echo "$c: $(cat "$tmp/py")"; fi
  done
  if [ "$n" -gt 0 ] && [ "$bad_n" -eq 0 ]; then ok "$1: http.client reads all $n exported sessions"; else bad "$1: $bad_n of $n messages are not valid HTTP"; fi
  lacks "$1: no chunked framing left" <(cat "$d"/raw/*_s.txt | tr -d '\r') "Transfer-Encoding: chunked"
  check "$1: the export reads back" 0 "$E" replay --fail-on never "$d.saz"
}
saz_roundtrip chunked-fixture "$FX/saz/chunked-response-and-bodiless-answers.saz"
contains "chunked fixture: the WBXML body survives" <("$E" show "$tmp/saz-chunked-fixture.saz" 1) "<Status>3</Status>"
read_http chunked "$tmp/saz-chunked-fixture/raw/4_s.txt" response; contains "chunked text body de-chunked to 30 bytes" "$tmp/py" "200 30"
contains "HEAD answer keeps its Content-Length" "$tmp/saz-chunked-fixture/raw/2_s.txt" "Content-Length: 1234"
if [ -f "$CORPUS/saz/httpbin-test.saz" ]; then
  saz_roundtrip httpbin "$CORPUS/saz/httpbin-test.saz"
else
  echo "skip - corpus saz absent"
fi

# ---- item 4: every exported HAR is valid HAR 1.2 -------------------------------------------------
cap=$FX/capture/capfile-v1-sync-and-cert-error.etcap
check "export a proxy capture to HAR" 0 "$E" export "$cap" --har "$tmp/cap.har"
har_valid "proxy capture export" "$tmp/cap.har"
lacks "serverIPAddress holds no port" "$tmp/cap.har" '"serverIPAddress":"[2001'
check "the port survives a round trip" 0 "$E" export "$tmp/cap.har" --har "$tmp/cap2.har"
contains "the port survives in _serverAddress" "$tmp/cap2.har" '"_serverAddress":"[2001:db8::1]:443"'
har_valid "twice exported capture" "$tmp/cap2.har"
for f in "$FX/saz/chunked-response-and-bodiless-answers.saz" "$AF/sogo-healthy-probe-session.etcap" \
         "$AF/iis-sendmail-smartreply-smartforward-status1.log" "$AF/har-error-connection-failed.har"; do
  check "export $(basename "$f") to HAR" 0 "$E" export "$f" --har "$tmp/x.har"
  har_valid "export of $(basename "$f")" "$tmp/x.har"
done
for f in "$AF"/*.har; do har_valid "fixture $(basename "$f")" "$f"; done

# ---- item 9: false alarms ----------------------------------------------------------------------
for f in iis-sendmail-smartreply-smartforward-status1.log mailboxlog-sendmail-smartreply-smartforward-status1.txt; do
  check "Status 1 of SendMail/SmartReply/SmartForward is success ($f)" 0 "$E" replay --fail-on info --no-color "$AF/$f"
  lacks "$f: no sendmail-status" "$tmp/out" "sendmail-status"
  contains "$f: shown as Success" "$tmp/out" "1=Success"
done
check "SyncKey 0 retries answered 449/401/404/503 are no reset loop" 1 "$E" replay --no-color "$AF/synckey0-retries-before-any-key.har"
lacks "no synckey-reset-loop" "$tmp/out" "synckey-reset-loop"
check "a device that obeys Ping Status 5 is healthy" 0 "$E" replay --fail-on warning --no-color "$AF/ping-status5-device-complies.har"
lacks "no heartbeat-range for a heartbeat the server accepted" "$tmp/out" "[heartbeat-range]"
contains "Status 5 itself is a note" "$tmp/out" "info [ping-status] Ping Status 5"
check "a device that ignores Status 5 is warned" 1 "$E" replay --fail-on warning --no-color "$AF/ping-status5-device-ignores.har"
contains "heartbeat-range names the server's limit" "$tmp/out" "gave its limit of 3540 s"
check "HAR _error entries are failed connections" 1 "$E" replay --no-color "$AF/har-error-connection-failed.har"
lacks "not called an incomplete recording" "$tmp/out" "recorded exchange is incomplete"
contains "DNS failure named" "$tmp/out" "dns failed: net::ERR_NAME_NOT_RESOLVED"
contains "connect failure named" "$tmp/out" "upstream-connect failed"
contains "TLS failure named" "$tmp/out" "upstream-tls failed"
contains "DNS/TCP next step" "$tmp/out" "resolves and port 443 is reachable"
check "Search Status 6" 1 "$E" replay --no-color "$AF/search-status-errors.har"
contains "its next step names Search" "$tmp/out" "MS-ASCMD Search"
lacks "not Sync" "$tmp/out" "MS-ASCMD Sync"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

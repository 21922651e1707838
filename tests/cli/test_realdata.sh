#!/usr/bin/env bash
# eastrace on real data (issue 10 items 2, 3, 4, 9, 10): HAR bodies already decoded by their
# writer, .saz exports that an HTTP parser reads, HAR exports valid against the HAR 1.2 schema
# (Debian's node-har-validator), the analyzer's former false alarms, and a healthy session of a
# real server (SOGo) staying silent. Fixtures in tests/fixtures/analyzer (make-fixtures.py) and
# tests/fixtures/saz; the shared corpus (../shared/corpus) when present.
. "$(dirname "$0")/../lib.sh"
FX=$root/tests/fixtures
AF=$FX/analyzer
CORPUS=${ET_CORPUS_DIR:-$root/../shared/corpus}

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
har_valid "re-exported decoded HAR: valid HAR 1.2 (har-validator)" "$tmp/gz.har"
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
har_valid "proxy capture export: valid HAR 1.2 (har-validator)" "$tmp/cap.har"
lacks "serverIPAddress holds no port" "$tmp/cap.har" '"serverIPAddress":"[2001'
check "the port survives a round trip" 0 "$E" export "$tmp/cap.har" --har "$tmp/cap2.har"
contains "the port survives in _serverAddress" "$tmp/cap2.har" '"_serverAddress":"[2001:db8::1]:443"'
har_valid "twice exported capture: valid HAR 1.2 (har-validator)" "$tmp/cap2.har"
for f in "$FX/saz/chunked-response-and-bodiless-answers.saz" "$AF/sogo-healthy-probe-session.etcap" \
         "$AF/iis-sendmail-smartreply-smartforward-status1.log" "$AF/har-error-connection-failed.har"; do
  check "export $(basename "$f") to HAR" 0 "$E" export "$f" --har "$tmp/x.har"
  har_valid "export of $(basename "$f"): valid HAR 1.2 (har-validator)" "$tmp/x.har"
done
for f in "$AF"/*.har; do har_valid "fixture $(basename "$f"): valid HAR 1.2 (har-validator)" "$f"; done

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
# ... while a message another tool stored cut is still an incomplete recording, not a failure.
python3 - "$tmp/cut.saz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("raw/1_c.txt", b"GET https://mail.example.com/owa/ HTTP/1.1\r\nHost: mail.example.com\r\n\r\n")
    z.writestr("raw/1_s.txt", b"HTTP/1.1 200 OK\r\nContent-Length: 45\r\n\r\n" + b"x" * 38)
    z.writestr("raw/1_m.xml", b'<Session SID="1"><SessionTimers ClientBeginRequest="2024-05-01T10:00:00.0000000+00:00" /></Session>')
PY
check "a .saz body cut by its recorder" 0 "$E" replay --no-color "$tmp/cut.saz"
contains "is an incomplete recording" "$tmp/out" "recorded exchange is incomplete: body ends early: 38 of 45 bytes"
check "Search Status 6" 1 "$E" replay --no-color "$AF/search-status-errors.har"
contains "its next step names Search" "$tmp/out" "MS-ASCMD Search"
lacks "not Sync" "$tmp/out" "MS-ASCMD Sync"

# ---- issue 13: Exchange's explanations -----------------------------------------------------------
X=$AF/exchange-diagnostics-cas-errors.har
check "cas-error fixture" 1 "$E" replay --no-color "$X"
contains "cas-error names the code and status" "$tmp/out" "X-CasErrorCode MailboxGuidWithDomainNotFound (HTTP 404)"
contains "cas-error: the front end failed" "$tmp/out" "the front end CAS01 could not hand the request to a mailbox server; it chose mbx01.contoso.com"
contains "cas-error: X-FailureContext decoded" "$tmp/out" "X-FailureContext: MailboxGuidWithDomain:3f1e1c7a"
contains "cas-error: mailbox not found next step" "$tmp/out" "moved to Exchange Online"
contains "cas-error: the back end failed" "$tmp/out" "the back end MBX07 failed the request the front end CAS02 passed on"
contains "HTTP 456 explained" "$tmp/out" "HTTP 456 Blocked"
contains "HTTP 457 explained" "$tmp/out" "HTTP 457 Expired Password"
check "cas-error in JSON" 1 "$E" replay --json "$X"
contains "JSON exchange_diagnostics" "$tmp/out" '"exchange_diagnostics":{"cas_error":"MailboxGuidWithDomainNotFound","failure_context":"MailboxGuidWithDomain:3f1e1c7a'
contains "JSON servers" "$tmp/out" '"fe_server":"CAS02","be_server":"MBX07"'
contains "JSON request-id" "$tmp/out" '"request_id":"5d2f3c1a-7e4b-4c55-9a8e-0b1c2d3e4f50"'
contains "JSON X-MS-Diagnostics" "$tmp/out" '"ms_diagnostics":"2000006;reason=\"mailbox database offline\""'
check "show of a cas-error" 0 "$E" show "$X" 1
contains "show: Exchange diagnostics section" "$tmp/out" "Exchange diagnostics"
contains "show: X-FailureContext decoded" "$tmp/out" "not found in AD (moved to Exchange Online?)"
contains "show: X-CalculatedBETarget" "$tmp/out" "mbx01.contoso.com"
check "healthy answer with server names" 0 "$E" replay --fail-on info --no-color "$AF/exchange-diagnostics-healthy.har"
check "healthy answer: servers in JSON" 0 "$E" replay --json "$AF/exchange-diagnostics-healthy.har"
contains "healthy answer: X-BEServer shown" "$tmp/out" '"be_server":"MBX01"'

check "longpoll-cut (the 504s are errors too)" 1 "$E" replay --no-color "$AF/longpoll-cut-60s.har"
contains "longpoll-cut says the measured duration" "$tmp/out" "keep ending after about 60 s (3 times) although the heartbeat is 900 s"
contains "longpoll-cut next step" "$tmp/out" "idle timeout above the"
contains "a reset after the request went out is a cut response" "$tmp/out" "response failed: Connection reset by peer"
check "long polls answered by Exchange" 0 "$E" replay --fail-on info --no-color "$AF/longpoll-healthy.har"
check "longpoll-cut threshold option" 1 "$E" replay --longpoll-cut 4 --no-color "$AF/longpoll-cut-60s.har"
lacks "--longpoll-cut 4: three cuts are not enough" "$tmp/out" "[longpoll-cut]"
check "bad threshold value exits 2" 2 "$E" replay --longpoll-cut x "$AF/longpoll-cut-60s.har"

check "retry-after-ignored" 0 "$E" replay --fail-on error --no-color "$AF/retry-after-ignored.har"
contains "retry-after-ignored says how early" "$tmp/out" "device THR1 sent Sync 55.0 s before the server's Retry-After of 60 s allowed it"
lacks "the patient device is not named" "$tmp/out" "device THR2 sent"

check "slow-response" 0 "$E" replay --fail-on error --no-color "$AF/slow-response.har"
contains "slow FolderSync" "$tmp/out" "FolderSync took 15.0 s (more than 10.0 s"
test "$(grep -c '\[slow-response\]' "$tmp/out")" = 1 && ok "long polls are not slow" || bad "long polls reported as slow"
check "slow-response threshold option" 0 "$E" replay --slow-ms 20000 --fail-on warning --no-color "$AF/slow-response.har"
check "slow-response lower threshold" 1 "$E" replay --slow-ms 500 --fail-on warning --no-color "$AF/slow-response.har"
contains "800 ms Sync slow at 500 ms" "$tmp/out" "Sync took 0.8 s (more than 0.5 s"

check "foldersync-ignored" 0 "$E" replay --fail-on error --no-color "$AF/foldersync-ignored.har"
contains "foldersync-ignored fires" "$tmp/out" "device FSI1 sent 2 requests (this Ping the last) after Ping Status 7 (exchange 1) without a FolderSync"
lacks "a device that sent FolderSync is fine" "$tmp/out" "device FSI2 sent"
check "--foldersync-grace 3" 0 "$E" replay --foldersync-grace 3 --fail-on error --no-color "$AF/foldersync-ignored.har"
lacks "grace 3: not yet" "$tmp/out" "[foldersync-ignored]"
grep -E "FSI2 +Ping .*Inbox \(5\)$" "$tmp/out" >/dev/null && ok "a Ping's watched folder is named" || bad "the Ping's folder is not named"

check "device-blocked from IIS" 1 "$E" replay --no-color "$AF/iis-device-blocked-quarantined.log"
contains "blocked (As:BlockedP)" "$tmp/out" "device ApplBLK1 is blocked or quarantined by Exchange: access state BlockedP"
contains "quarantined" "$tmp/out" "device androidq1 is blocked or quarantined by Exchange: access state Quarantined"
contains "DeviceNotProvisioned with an access state" "$tmp/out" "access state DeviceDiscovery; error DeviceNotProvisioned"
contains "next step: device access rules" "$tmp/out" "Get-ActiveSyncDeviceAccessRule"
contains "next step: AllowNonProvisionableDevices" "$tmp/out" "AllowNonProvisionableDevices"
lacks "an allowed device is not blocked" "$tmp/out" "device ApplOK1 is blocked"
test "$(grep -c 'device ApplBLK1 is blocked' "$tmp/out")" = 1 && ok "once per device and state" || bad "device-blocked repeated"
check "device-blocked from a mailbox log" 1 "$E" replay --no-color "$FX/logs/mailboxlog-sync-ping-sendmail.txt"
contains "mailbox log access state and rule" "$tmp/out" "access state Blocked (DeviceRule), rule Block iPhone (DeviceModel)"

# Folder names from the trace's FolderSync.
F=$AF/folder-names.har
check "folder names" 1 "$E" replay --no-color "$F"
contains "timeline: names with ids" "$tmp/out" "Inbox (5), Projects <2024> (9), 44"
contains "timeline: renamed folder" "$tmp/out" "Sent (6)"
contains "finding names the folder" "$tmp/out" "for collection Sent (6) (SyncKey sent 0)"
contains "an unnamed collection stays its id" "$tmp/out" "for collection 44 (SyncKey sent 0)"
check "folder names in JSON" 1 "$E" replay --json "$F"
contains "JSON collection name" "$tmp/out" '{"id":"9","name":"Projects <2024>","sync_key":"0","new_sync_key":"1","status":1}'
contains "JSON unnamed collection" "$tmp/out" '{"id":"44","name":null'
check "folder names in the gzip HAR" 0 "$E" replay --fail-on never --no-color "$AF/har-gzip-header-decoded-content.har"
contains "sync-status of Inbox (5)" "$tmp/out" "for collection Inbox (5)"

t_done

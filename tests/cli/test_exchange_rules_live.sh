#!/usr/bin/env bash
# Issue 13's rules on real TLS on loopback: a Python TLS origin that behaves as Exchange and
# the network around it do (a front end answering 404 with X-CasErrorCode and X-FailureContext,
# a 503 with Retry-After, a load balancer that cuts Pings after 2 s, a FolderSync naming the
# folders), curl through `eastrace proxy` as the device, then `eastrace replay` and `show` of
# the proxy's capture. Every port is picked at run time; traffic stays on 127.0.0.1.
. "$(dirname "$0")/../lib.sh"
F=$root/tests/fixtures/proxy

# EAS bodies, encoded with eastrace's own tables.
cat >"$tmp/ping.xml" <<'X'
<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder><Id>5</Id><Class>Email</Class></Folder></Folders></Ping>
X
cat >"$tmp/fs-req.xml" <<'X'
<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>
X
cat >"$tmp/fs-resp.xml" <<'X'
<FolderSync xmlns="FolderHierarchy:"><Status>1</Status><SyncKey>1</SyncKey><Changes><Count>1</Count><Add><ServerId>5</ServerId><ParentId>0</ParentId><DisplayName>Inbox</DisplayName><Type>2</Type></Add></Changes></FolderSync>
X
cat >"$tmp/sync-req.xml" <<'X'
<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>7</SyncKey><CollectionId>5</CollectionId></Collection></Collections></Sync>
X
cat >"$tmp/sync-resp.xml" <<'X'
<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>0</SyncKey><CollectionId>5</CollectionId><Status>3</Status></Collection></Collections></Sync>
X
for b in ping fs-req fs-resp sync-req sync-resp; do
  "$E" encode "$tmp/$b.xml" -o "$tmp/$b.wbxml" >/dev/null 2>&1 || bad "encode $b"
done

oport=$(free_port)
cat >"$tmp/origin.py" <<'PY'
import base64, http.server, ssl, sys, time, urllib.parse
port, cert, key, d = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
WB = "application/vnd.ms-sync.wbxml"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        dev, cmd = q.get("DeviceId", [""])[0], q.get("Cmd", [""])[0]
        ex = [("MS-Server-ActiveSync", "15.1"), ("X-FEServer", "CAS01")]
        if dev.startswith("CUT"):
            time.sleep(2)               # the "load balancer" drops the idle connection
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if dev == "THR1":
            self.answer(503, ex + [("Retry-After", "30"), ("X-MS-ASThrottle", "CommandFrequency")])
        elif dev == "CAS1":
            ctx = base64.b64encode(b"mailbox of t1@contoso.com not found on this forest").decode()
            self.answer(404, [("X-CasErrorCode", "MailboxGuidWithDomainNotFound"),
                              ("X-FEServer", "CAS01"), ("X-CalculatedBETarget", "mbx01.contoso.com"),
                              ("request-id", "11111111-2222-3333-4444-555555555555"),
                              ("X-FailureContext", ctx)])
        elif cmd == "FolderSync":
            self.answer(200, ex + [("Content-Type", WB)], open(d + "/fs-resp.wbxml", "rb").read())
        else:
            self.answer(200, ex + [("Content-Type", WB)], open(d + "/sync-resp.wbxml", "rb").read())
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
python3 "$tmp/origin.py" "$oport" "$F/origin-localhost.pem" "$F/origin-localhost.key" "$tmp" >"$tmp/origin.log" 2>&1 &
pids+=($!)
wait_port "$oport" && ok "TLS origin up" || { bad "TLS origin up"; cat "$tmp/origin.log"; }

pport=$(free_port)
export XDG_DATA_HOME=$tmp/data
"$E" proxy --listen "127.0.0.1:$pport" --allow-target 127.0.0.1 --allow-target localhost \
  --upstream-ca "$F/origin-ca.pem" -w "$tmp/cap.et" >"$tmp/live.txt" 2>"$tmp/err.txt" &
proxy=$!
pids+=($proxy)
wait_port "$pport" && ok "proxy listening" || { bad "proxy listening"; cat "$tmp/err.txt"; }
ca=$tmp/data/eastrace/ca.pem

eas() { # eas DEVICE CMD BODYFILE
  curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$pport" --cacert "$ca" \
    -H "MS-ASProtocolVersion: 14.1" -H "Content-Type: application/vnd.ms-sync.wbxml" \
    --data-binary "@$3" --max-time 20 \
    "https://localhost:$oport/Microsoft-Server-ActiveSync?Cmd=$2&User=t1&DeviceId=$1&DeviceType=iPhone"
}
eas FLD1 FolderSync "$tmp/fs-req.wbxml" >/dev/null
eas FLD1 Sync "$tmp/sync-req.wbxml" >/dev/null
eas CAS1 Sync "$tmp/sync-req.wbxml" >/dev/null
eas THR1 Sync "$tmp/sync-req.wbxml" >/dev/null
sleep 1
eas THR1 Sync "$tmp/sync-req.wbxml" >/dev/null
for i in 1 2 3; do eas CUT1 Ping "$tmp/ping.wbxml" >/dev/null; done
sleep 0.5
kill -TERM $proxy
wait $proxy 2>/dev/null

"$E" replay --no-color "$tmp/cap.et" >"$tmp/replay.txt" 2>&1
contains "cas-error through the proxy" "$tmp/replay.txt" "X-CasErrorCode MailboxGuidWithDomainNotFound (HTTP 404): the front end CAS01 could not hand the request to a mailbox server; it chose mbx01.contoso.com"
contains "X-FailureContext decoded" "$tmp/replay.txt" "X-FailureContext: mailbox of t1@contoso.com not found on this forest"
contains "retry-after-ignored" "$tmp/replay.txt" "[retry-after-ignored] device THR1 sent Sync"
contains "longpoll-cut with the measured duration" "$tmp/replay.txt" "device CUT1's Pings keep ending after about 2 s (3 times) although the heartbeat is 60 s"
contains "folder name in the finding" "$tmp/replay.txt" "for collection Inbox (5)"
contains "folder name on the timeline" "$tmp/replay.txt" "Inbox (5)"
grep -q "Inbox (5)" "$tmp/live.txt" && ok "folder name in the proxy's live view" || bad "live view lacks the folder name"
n=$("$E" replay --json --fail-on never "$tmp/cap.et" | grep -n '"cas_error":"MailboxGuidWithDomainNotFound"' | cut -d: -f1)
[ -n "$n" ] && ok "JSON exchange_diagnostics" || bad "JSON lacks exchange_diagnostics"
"$E" show "$tmp/cap.et" 3 >"$tmp/show.txt" 2>&1
contains "show: Exchange diagnostics" "$tmp/show.txt" "Exchange diagnostics"
contains "show: request-id" "$tmp/show.txt" "11111111-2222-3333-4444-555555555555"

t_done

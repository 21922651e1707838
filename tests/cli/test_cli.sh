#!/usr/bin/env bash
# End-to-end tests of the eastrace command as a user runs it: help and exit statuses, decode,
# encode, replay (timeline, findings, filters, JSON, --fail-on), show, export and re-import.
# ET_EASTRACE names the binary (test.sh sets it). Uses only files it makes in a temp dir.
. "$(dirname "$0")/../lib.sh"
FX=$root/tests/fixtures
CORPUS=${ET_CORPUS_DIR:-$root/../shared/corpus}

# ---- general ----
check "help" 0 "$E" --help
contains "help lists replay" "$tmp/out" "replay"
check "version" 0 "$E" --version
contains "version text" "$tmp/out" "eastrace "
check "unknown command" 2 "$E" frobnicate
check "no arguments" 2 "$E"
for c in decode encode replay show export proxy ca iis mailboxlog; do
  check "$c --help" 0 "$E" "$c" --help
done

# ---- decode ----
for f in "$FX"/wbxml/*.wbxml; do
  [ -e "$f" ] || continue
  case "$f" in *truncated*) continue ;; esac
  check "decode $(basename "$f")" 0 "$E" decode "$f"
done
trunc=$(ls "$FX"/wbxml/truncated*.wbxml 2>/dev/null | head -1)
if [ -n "$trunc" ]; then
  check "decode truncated exits 1" 1 "$E" decode "$trunc"
  contains "truncated names the byte offset" "$tmp/err" "at byte"
  contains "truncated still prints XML" "$tmp/out" "<?xml"
fi
check "decode missing file exits 2" 2 "$E" decode "$tmp/nope.wbxml"
check "decode bad option exits 2" 2 "$E" decode --bogus x

# encode -> decode round trip, JSON validity
check "encode sync" 0 "$E" encode -o "$tmp/sync0.wbxml" "$FX/cli/sync-req-key0.xml"
check "decode encoded" 0 "$E" decode "$tmp/sync0.wbxml"
contains "decoded SyncKey" "$tmp/out" "<SyncKey>0</SyncKey>"
contains "namespace as EAS Inspector shows it" "$tmp/out" 'xmlns="AirSync:"'
check "decode --json" 0 "$E" decode --json "$tmp/sync0.wbxml"
if python3 -m json.tool "$tmp/out" >/dev/null 2>&1; then ok "decode --json is JSON"; else bad "decode --json is JSON"; fi
printf '<Sync xmlns="AirSync:"><Bogus/></Sync>' >"$tmp/bad.xml"
check "encode unknown element exits 1" 1 "$E" encode -o "$tmp/bad.wbxml" "$tmp/bad.xml"

# A raw HTTP request with credentials: redacted by default.
{
  printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=D1&DeviceType=iPhone HTTP/1.1\r\n'
  printf 'Host: mail.example.com\r\nAuthorization: Basic YWxpY2U6c2VjcmV0cHc=\r\n'
  printf 'Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: %d\r\n\r\n' "$(stat -c %s "$tmp/sync0.wbxml")"
  cat "$tmp/sync0.wbxml"
} >"$tmp/req.txt"
check "decode raw request" 0 "$E" decode "$tmp/req.txt"
contains "EAS request line" "$tmp/out" "Sync user=alice device=D1"
lacks "password redacted" "$tmp/out" "YWxpY2U6c2VjcmV0cHc="
check "decode raw request with secrets" 0 "$E" decode --include-secrets "$tmp/req.txt"
contains "secret shown when asked" "$tmp/out" "YWxpY2U6c2VjcmV0cHc="

# ---- replay: a scenario with a SyncKey 0 loop, a blocked SendMail and a healthy device ----
for x in sync-req-key0 sync-req-key22 sync-resp-ok sync-resp-invalid-key sendmail-resp-blocked \
         ping-req ping-resp-changes; do
  "$E" encode -o "$tmp/$x.wbxml" "$FX/cli/$x.xml" || bad "encode $x"
done
w=$tmp
python3 "$FX/cli/make-har.py" "$tmp/scenario.har" \
  "0,GOOD1,Sync,200,$w/sync-req-key0.wbxml,$w/sync-resp-ok.wbxml" \
  "1,LOOP1,Sync,500,$w/sync-req-key22.wbxml,-" \
  "2,LOOP1,Sync,200,$w/sync-req-key0.wbxml,$w/sync-resp-ok.wbxml" \
  "3,LOOP1,Sync,500,$w/sync-req-key22.wbxml,-" \
  "4,LOOP1,Sync,200,$w/sync-req-key0.wbxml,$w/sync-resp-ok.wbxml" \
  "5,LOOP1,Sync,200,$w/sync-req-key0.wbxml,$w/sync-resp-invalid-key.wbxml" \
  "6,MAIL1,SendMail,200,-,$w/sendmail-resp-blocked.wbxml" \
  "7,GOOD1,Ping,200,$w/ping-req.wbxml,$w/ping-resp-changes.wbxml" \
  || bad "make-har"
check "replay finds errors (exit 1)" 1 "$E" replay --no-color "$tmp/scenario.har"
contains "timeline names Sync Status 3" "$tmp/out" "3=InvalidSyncKey"
contains "synckey-reset-loop found" "$tmp/out" "[synckey-reset-loop]"
contains "reset loop notes the 500s" "$tmp/out" "HTTP 5xx"
contains "sendmail 129 found" "$tmp/out" "[sendmail-status]"
contains "sendmail next step" "$tmp/out" "DefaultAccessLevel"
contains "http 500 explained" "$tmp/out" "Failed Request Tracing"
contains "device table" "$tmp/out" "LOOP1"
check "replay --fail-on never" 0 "$E" replay --fail-on never "$tmp/scenario.har"
check "replay healthy device only" 0 "$E" replay --device GOOD1 "$tmp/scenario.har"
lacks "device filter hides others" "$tmp/out" "LOOP1 "
check "replay --cmd SendMail" 1 "$E" replay --cmd SendMail "$tmp/scenario.har"
contains "cmd filter keeps SendMail" "$tmp/out" "SendMail"
lacks "cmd filter drops Ping" "$tmp/out" " Ping "
check "replay --find" 0 "$E" replay --fail-on never --find "<Status>2</Status>" "$tmp/scenario.har"
contains "find matches decoded XML" "$tmp/out" "Ping"
lacks "find drops others" "$tmp/out" "SendMail "
check "replay --since/--until" 0 "$E" replay --fail-on never --since 2024-05-01T10:00:06Z --until 2024-05-01T10:00:07Z "$tmp/scenario.har"
contains "time window keeps #7" "$tmp/out" "SendMail"
lacks "time window drops #1" "$tmp/out" "GOOD1            Sync"
check "replay --json" 1 "$E" replay --json "$tmp/scenario.har"
if python3 - "$tmp/out" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ex, summ = lines[:-1], lines[-1]
assert len(ex) == 8, len(ex)
for o in ex:
    for k in ("n", "time", "client", "method", "host", "path", "status", "eas", "findings"):
        assert k in o, k
    for k in ("cmd", "user", "device_id", "device_type", "protocol", "policy_key", "status"):
        assert k in o["eas"], k
    for f in o["findings"]:
        assert f["severity"] in ("info", "warning", "error")
        assert f["rule"] and f["message"] and f["next_step"]
assert ex[0]["time"] == "2024-05-01T10:00:00.000Z", ex[0]["time"]
assert ex[5]["eas"]["status"] == [3]
assert summ["summary"] is True and summ["exchanges"] == 8
assert any(d["device"] == "LOOP1" for d in summ["devices"])
EOF
then ok "replay --json shape"; else bad "replay --json shape"; fi
check "replay unreadable input exits 2" 2 "$E" replay "$tmp/nope.har"
printf 'garbage' >"$tmp/garbage.bin"
check "replay unknown format exits 2" 2 "$E" replay "$tmp/garbage.bin"

# ---- show ----
check "show 6" 0 "$E" show "$tmp/scenario.har" 6
contains "show prints the response XML" "$tmp/out" "<Status>3</Status>"
contains "show names the status" "$tmp/out" "3 = InvalidSyncKey"
contains "show prints findings" "$tmp/out" "next:"
lacks "show redacts credentials" "$tmp/out" "YWxpY2U6c2VjcmV0cHc="
check "show out of range exits 2" 2 "$E" show "$tmp/scenario.har" 99

# ---- export and re-import ----
check "export --har" 0 "$E" export "$tmp/scenario.har" --har "$tmp/out.har"
lacks "export redacts" "$tmp/out.har" "YWxpY2U6c2VjcmV0cHc="
har_valid "exported HAR is valid HAR 1.2" "$tmp/out.har"
check "re-read exported HAR" 1 "$E" replay "$tmp/out.har"
contains "exported HAR keeps the findings" "$tmp/out" "[synckey-reset-loop]"
check "export --saz" 0 "$E" export "$tmp/scenario.har" --saz "$tmp/out.saz"
check "re-read exported SAZ" 1 "$E" replay "$tmp/out.saz"
contains "exported SAZ keeps the Status" "$tmp/out" "3=InvalidSyncKey"
check "export --device" 0 "$E" export "$tmp/scenario.har" --device GOOD1 --har "$tmp/good.har"
check "filtered export replays clean" 0 "$E" replay "$tmp/good.har"
har_valid "filtered HAR is valid HAR 1.2" "$tmp/good.har"
check "export --include-secrets" 0 "$E" export "$tmp/scenario.har" --include-secrets --har "$tmp/secret.har"
contains "secrets kept when asked" "$tmp/secret.har" "YWxpY2U6c2VjcmV0cHc="
har_valid "HAR with secrets is valid HAR 1.2" "$tmp/secret.har"

# ---- iis: the analyzer's findings in the report ----
iislog=$FX/logs/iis-ex2010-sync-ping-errors.log
check "iis report" 0 "$E" iis "$iislog"
contains "iis report has a findings table" "$tmp/out" "== findings"
contains "iis findings: SendMail 120" "$tmp/out" "SendMail Status 120"
contains "iis findings: throttling" "$tmp/out" "throttling"
check "iis --no-findings" 0 "$E" iis --no-findings "$iislog"
lacks "no findings table when asked" "$tmp/out" "== findings"
check "iis --csv" 0 "$E" iis --csv "$iislog"
lacks "CSV stays the script's one table" "$tmp/out" "sendmail-status"
contains "CSV columns as the script's" "$tmp/out" "DeviceID,Hits,Ping,Sync,FolderSync,DeviceType,User-Agent"
check "iis --json" 0 "$E" iis --json "$iislog"
if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert any(t.get('name')=='findings' for t in d['tables'])" "$tmp/out"; then ok "iis --json has findings"; else bad "iis --json has findings"; fi
check "replay an IIS log" 1 "$E" replay "$iislog"
contains "replay of IIS: Sync Status 12 named" "$tmp/out" "12=FolderHierarchyC"

# ---- real samples (skipped when the shared corpus is absent) ----
if [ -d "$CORPUS" ]; then
  sogo=$CORPUS/generated-sogo-loopback/eas-sogo-mitmproxy.har
  if [ -f "$sogo" ]; then
    check "replay real SOGo HAR" 1 "$E" replay --no-color "$sogo"
    contains "real HAR: Sync Status 13 named" "$tmp/out" "13=IncompleteRequest"
    contains "real HAR: devices" "$tmp/out" "LOOPTEST03"
  fi
  for s in "$CORPUS"/saz/*.saz; do
    case "$s" in
      *notASazFile*) check "broken saz $(basename "$s") exits 2" 2 "$E" replay "$s" ;;
      *) "$E" replay "$s" >"$tmp/out" 2>"$tmp/err"; rc=$?
         if [ $rc -le 1 ]; then ok "saz $(basename "$s") reads"; else bad "saz $(basename "$s") (exit $rc)"; cat "$tmp/err"; fi ;;
    esac
  done
else
  echo "skip - corpus absent ($CORPUS)"
fi

t_done

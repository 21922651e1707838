#!/usr/bin/env bash
# One timeline: `eastrace replay` over a HAR, an IIS log and a mailbox log of the same requests
# (tests/fixtures/timeline/README.md) merges each request into one line with a "seen by"
# column, in text and JSON, whatever the order of the inputs; requests one source missed are
# shown as such, and a capture request the IIS log lacks gets the not-in-server-log note.
# ET_EASTRACE names the binary (test.sh sets it).
. "$(dirname "$0")/../lib.sh"
TL=$root/tests/fixtures/timeline
HAR=$TL/capture-appl1-5-requests.har
IIS=$TL/iis-appl1-dev2-6-eas-lines.log
MBX=$TL/mailboxlog-appl1-4-entries.txt
count_is() { # count_is NAME FILE REGEX N
  local n; n=$(grep -cE -- "$3" "$2")
  if [ "$n" -eq "$4" ]; then ok "$1"; else bad "$1: $n lines match '$3', wanted $4"; fi
}

# ---- text ----
check "three sources, exit 1 for the SendMail 500" 1 "$E" replay --no-color "$HAR" "$IIS" "$MBX"
cp "$tmp/out" "$tmp/text"
contains "seen-by heading" "$tmp/text" "seen by"
count_is "7 timeline lines" "$tmp/text" '^(cap|-  ) (iis|-  ) (mbx|-  ) +[0-9]+ 05-01' 7
count_is "FolderSync seen by all three" "$tmp/text" '^cap iis mbx +1 05-01 10:00:00.000 APPL1 +FolderSync' 1
count_is "SyncKey 0 Sync seen by all three" "$tmp/text" '^cap iis mbx +2 05-01 10:00:05.000 APPL1 +Sync' 1
count_is "Ping: capture and IIS (1 s clock difference)" "$tmp/text" '^cap iis -   +3 .* APPL1 +Ping' 1
count_is "other device: IIS only" "$tmp/text" '^-   iis -   +4 .* DEV2 +Sync' 1
count_is "Sync that never reached the server: capture only" "$tmp/text" '^cap -   -   +5 05-01 10:00:20.000 APPL1 +Sync' 1
count_is "last Sync seen by all three" "$tmp/text" '^cap iis mbx +6 05-01 10:00:30.000 APPL1 +Sync' 1
count_is "SendMail: IIS and mailbox log" "$tmp/text" '^-   iis mbx +7 .* APPL1 +SendMail +500' 1
count_is "merged lines use the capture's bodies" "$tmp/text" '^cap iis mbx .* 200 1=Success +[0-9]+/[0-9]+ +50ms' 3
count_is "one not-in-server-log note" "$tmp/text" 'info \[not-in-server-log\]' 1
contains "note is about the 10:00:20 Sync" "$tmp/text" "#5 Sync"
count_is "SendMail 500 reported once" "$tmp/text" 'error \[http-status\] HTTP 500' 1
contains "summary: 7 exchanges" "$tmp/text" "7 exchange(s); 1 error(s), 1 warning(s), 1 note(s)"
# The mailbox log's SendMail entry carries a StoragePermanentException_Exception field.
contains "mailbox-log exception reaches the analyzer" "$tmp/text" "[server-error] Exchange logged an error for SendMail: Microsoft.Exchange.Data.Storage.StoragePermanentException: submission failed"
count_is "per-device requests counted once" "$tmp/text" '^  APPL1 +alice +iPhone +6 ' 1
contains "seen-by summary: all three" "$tmp/text" "cap iis mbx  3"
contains "seen-by summary: capture only" "$tmp/text" "cap          1 (only)"
contains "seen-by summary: IIS only" "$tmp/text" "iis          1 (only)"

# ---- input order does not matter ----
check "inputs in another order" 1 "$E" replay --no-color "$MBX" "$IIS" "$HAR"
if diff <(grep -E '^(cap|-  ) ' "$tmp/text") <(grep -E '^(cap|-  ) ' "$tmp/out") >/dev/null; then
  ok "same timeline in any order"; else bad "same timeline in any order"; diff "$tmp/text" "$tmp/out" | head; fi

# ---- JSON ----
check "JSON" 1 "$E" replay --json "$HAR" "$IIS" "$MBX"
cat >"$tmp/j.py" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ex = [o for o in lines if not o.get("summary")]
s = [o for o in lines if o.get("summary")][0]
print("n", len(ex))
for o in ex:
    print("seen", ",".join(o["seen_by"]))
print("summary", json.dumps(s["seen_by"], sort_keys=True), s["exchanges"])
PY
python3 "$tmp/j.py" "$tmp/out" >"$tmp/j" 2>&1
contains "JSON: 7 exchanges" "$tmp/j" "n 7"
count_is "JSON: seen_by all three" "$tmp/j" '^seen capture,iis,mailboxlog$' 3
count_is "JSON: seen_by capture only" "$tmp/j" '^seen capture$' 1
count_is "JSON: seen_by iis,mailboxlog" "$tmp/j" '^seen iis,mailboxlog$' 1
contains "JSON summary counts" "$tmp/j" 'summary {"capture": 1, "capture+iis": 1, "capture+iis+mailboxlog": 3, "iis": 1, "iis+mailboxlog": 1} 7'

# ---- tolerance and switches ----
check "tolerance 0.5 s: the Ping logged 1 s later is not matched" 0 "$E" replay --no-color \
  --fail-on never --match-tolerance 0.5 "$HAR" "$IIS"
count_is "Ping split in two lines" "$tmp/out" ' APPL1 +Ping ' 2
check "--no-correlate lists every source's lines" 0 "$E" replay --no-color --fail-on never \
  --no-correlate "$HAR" "$IIS" "$MBX"
lacks "--no-correlate: no seen-by column" "$tmp/out" "seen by"
contains "--no-correlate: 15 exchanges" "$tmp/out" "15 exchange(s)"
check "one source: no seen-by column" 0 "$E" replay --no-color "$HAR"
lacks "one source: no seen-by column" "$tmp/out" "seen by"
lacks "one source: no not-in-server-log" "$tmp/out" "not-in-server-log"
check "two HARs are one kind: no column" 0 "$E" replay --no-color "$HAR" "$HAR"
lacks "two HARs: no seen-by column" "$tmp/out" "seen by"
check "capture + mailbox log only: no not-in-server-log" 0 "$E" replay --no-color --fail-on never "$HAR" "$MBX"
lacks "no IIS log, no not-in-server-log" "$tmp/out" "not-in-server-log"
count_is "capture + mailbox: 3 merged" "$tmp/out" '^cap mbx +[0-9]+ ' 3
check "bad --match-tolerance" 2 "$E" replay --match-tolerance x "$HAR" "$IIS"

t_done

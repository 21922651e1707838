#!/usr/bin/env bash
# One JSON string writer (common/buf.c et_buf_put_json_string) for every JSON output: a file
# name with a backslash and a quote in `mailboxlog --json` (its error names the file), and
# bytes that are not UTF-8 in an IIS User-Agent through `iis --json` and `replay --json`, give
# valid JSON. ET_EASTRACE names the binary (test.sh sets it).
. "$(dirname "$0")/../lib.sh"
jsonl_ok() { python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    if line.strip():
        json.loads(line); n += 1
sys.exit(0 if n > 0 else 1)' "$1" 2>"$tmp/py.err"; }

name="$tmp/C:\\logs\\mbx \"x\".txt"
cp "$root/tests/fixtures/logs/mailboxlog-truncated-last-entry.txt" "$name"
"$E" mailboxlog --json "$name" > "$tmp/m.json" 2>/dev/null
if jsonl_ok "$tmp/m.json" && grep -qF 'C:\\logs\\mbx \"x\".txt' "$tmp/m.json"; then
  ok "mailboxlog --json: file name with \\ and \" is valid JSON"
else
  bad "mailboxlog --json: invalid"; cat "$tmp/py.err"; head -c 600 "$tmp/m.json"
fi

log=$tmp/u_ex110506.log
{
  echo "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken"
  printf '2011-05-06 10:00:00 10.0.0.5 POST /Microsoft-Server-ActiveSync/default.eas User=u&DeviceId=D\xff1&DeviceType=T&Cmd=Sync&Log=S1_ 443 u 203.0.113.9 UA/\xc0\xaf\xed\xa0\x80\xe2\x82 500 0 0 45\n'
} > "$log"
"$E" iis --json --no-progress "$log" > "$tmp/i.json" 2>/dev/null
if jsonl_ok "$tmp/i.json" && grep -qF 'UA/\ufffd' "$tmp/i.json"; then
  ok "iis --json: bytes that are not UTF-8 become U+FFFD"
else
  bad "iis --json: invalid"; cat "$tmp/py.err"
fi
"$E" replay --json "$log" > "$tmp/r.json" 2>/dev/null
if jsonl_ok "$tmp/r.json"; then ok "replay --json: valid"; else bad "replay --json: invalid"; cat "$tmp/py.err"; fi

t_done

#!/usr/bin/env bash
# CSV formula injection and terminal/HTML injection through `eastrace iis` (issue 9 items 3, 4):
# an IIS log whose DeviceId is =cmd|' /C calc'!A0, whose User, DeviceType, cs-username and
# User-Agent start with + @ TAB - and whose User-Agent carries ESC/BEL sequences (OSC title,
# CSI clear screen). Pass figures: 0 CSV cells starting with = + - @ TAB or CR (OWASP: a leading
# single quote), the formula text still there behind the quote; 0 raw control bytes in the
# terminal table and in --html; --json parses and keeps the values.
# Runs alone (ET_EASTRACE names the binary) or from tests/security/run.sh.
. "$(dirname "$0")/../lib.sh"

log=$tmp/u_ex110506.log
esc=$(printf '\033')
bel=$(printf '\007')
tab=$(printf '\t')
{
  echo "#Software: Microsoft Internet Information Services 7.5"
  echo "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken"
  for i in 1 2 3; do
    echo "2011-05-06 10:0$i:00 10.0.0.5 POST /Microsoft-Server-ActiveSync/default.eas User=+SUM(1+1)&DeviceId==cmd|'/C+calc'!A0&DeviceType=@SUM(A1)&Cmd=Sync&Log=V141_Sk0_S1_ 443 ${tab}=HYPERLINK(1) 203.0.113.9 -2+3+cmd|'/C+calc'!A0${esc}]0;PWNED${bel}${esc}[2J 500 0 0 45"
  done
} > "$log"

# ---- CSV ----
"$E" iis --csv --no-progress "$log" > "$tmp/out.csv" 2>"$tmp/err"
python3 - "$tmp/out.csv" > "$tmp/csv.txt" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8", errors="replace")))
cells = [c for r in rows for c in r]
bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
quoted = [c for c in cells if c.startswith("'") and c[1:2] in ("=", "+", "-", "@", "\t", "\r")]
print(len(cells), len(bad), len(quoted))
print("|".join(quoted))
PY
read -r ncells nbad nquoted < "$tmp/csv.txt"
if [ "${nbad:-1}" -eq 0 ] && [ "${ncells:-0}" -gt 0 ]; then
  ok "iis --csv: no formula cell" "0 of $ncells cells start with = + - @ TAB CR"
else
  bad "iis --csv: formula cells" "${nbad:-?} of ${ncells:-?} cells start with = + - @ TAB CR"
fi
if grep -qF "'=cmd|'/C+calc'!A0" "$tmp/out.csv"; then
  ok "iis --csv: the DeviceId kept behind a quote" "'=cmd|'/C+calc'!A0"
else
  bad "iis --csv: the DeviceId" "not found prefixed"; head -3 "$tmp/out.csv"
fi
if [ "${nquoted:-0}" -ge 4 ]; then
  ok "iis --csv: every hostile cell prefixed" "$nquoted cells with a leading quote (DeviceId, User, DeviceType, cs-username, User-Agent)"
else
  bad "iis --csv: hostile cells" "${nquoted:-0} prefixed, wanted >= 4"
fi

# ---- terminal table (the default output, with findings) ----
ctl() { LC_ALL=C tr -d '\n' < "$1" | LC_ALL=C tr -cd '\000-\010\013-\037\177' | wc -c; }
"$E" iis --no-progress "$log" > "$tmp/out.txt" 2>"$tmp/err.txt"
n=$(( $(ctl "$tmp/out.txt") + $(ctl "$tmp/err.txt") ))
if [ "$n" -eq 0 ] && grep -q "=cmd|'/C+calc'!A0" "$tmp/out.txt"; then
  ok "iis table: no raw control bytes" "0 control bytes, the device row shown"
else
  bad "iis table: raw control bytes" "$n control bytes"
fi
grep -q "^== findings (" "$tmp/out.txt" && ok "iis table: findings table present" "HTTP 500 findings" ||
  bad "iis table: findings table" "missing"

# ---- HTML ----
"$E" iis --html --no-progress "$log" > "$tmp/out.html" 2>/dev/null
n=$(ctl "$tmp/out.html")
if [ "$n" -eq 0 ] && grep -qF "=cmd|&#39;/C+calc&#39;!A0" "$tmp/out.html" ||
   { [ "$n" -eq 0 ] && grep -qF "=cmd|&apos;/C+calc&apos;!A0" "$tmp/out.html"; }; then
  ok "iis --html: escaped" "0 control bytes, quotes escaped"
else
  bad "iis --html: not escaped" "$n control bytes"; grep -o "=cmd[^<]*" "$tmp/out.html" | head -2
fi

# ---- JSON ----
"$E" iis --json --no-progress "$log" > "$tmp/out.json" 2>/dev/null
if python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
cells = [c for t in d["tables"] for r in t["rows"] for c in r if isinstance(c, str)]
assert any(c == "=cmd|\x27/C+calc\x27!A0" for c in cells)
assert any("\x1b]0;PWNED\x07" in c for c in cells)
' "$tmp/out.json"; then
  ok "iis --json: valid, values kept" "DeviceId and the escape sequence as JSON escapes"
else
  bad "iis --json" "invalid or values lost"
fi

# ---- hostile Log= items: the findings' fast scan against the full parse ----
# Log= strings past the item cap (60 items, an Error before and after item 48), longer than
# the fast scan takes (5000 bytes), with URL-encoded control bytes and markup in Error and As.
# Pass figures: the findings per rule and device equal replay's (the reader's full parse), 0
# raw control bytes in the table, the markup escaped in --html, --json valid.
log2=$tmp/u_ex110507.log
{
  echo "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken"
  items=""
  for i in $(seq 1 60); do
    if [ "$i" = 10 ]; then items="${items}Error:Early%1B%5B2J<b>_"
    elif [ "$i" = 55 ]; then items="${items}Error:PastTheCap_"
    else items="${items}X${i}_"; fi
  done
  long=$(head -c 5000 /dev/zero | tr '\0' 'A')
  for m in 1 2 3; do
    echo "2011-05-07 10:0$m:00 10.0.0.5 POST /Microsoft-Server-ActiveSync/default.eas User=u&DeviceId=CAPDEV&DeviceType=x&Cmd=Sync&Log=V141_S3_${items} 443 u 203.0.113.9 ua 200 0 0 45"
    echo "2011-05-07 10:1$m:00 10.0.0.5 POST /Microsoft-Server-ActiveSync/default.eas User=v&DeviceId=LONGDEV&DeviceType=x&Cmd=Ping&Log=V141_${long}_S1_As:Blocked%07<script>_Error:DeviceIsBlockedForThisUser_ 443 v 203.0.113.9 ua 200 0 0 45"
  done
} > "$log2"
# rule<TAB>device<TAB>count from iis --json (the findings table) or replay --json.
per_rule() { python3 -c '
import json, sys, collections
c = collections.Counter()
if sys.argv[1] == "iis":
    for t in json.load(sys.stdin)["tables"]:
        if t["name"] == "findings":
            for r in t["rows"]:
                c[(r[1], r[2])] += int(r[3])
else:
    for line in sys.stdin:
        for f in json.loads(line).get("findings", []):
            c[(f["rule"], f.get("device") or "-")] += 1
for (rule, dev), n in sorted(c.items()):
    print("%s\t%s\t%d" % (rule, dev, n))' "$1"; }
"$E" iis --json --no-progress "$log2" > "$tmp/h.json" 2>/dev/null
if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/h.json" 2>/dev/null; then
  ok "iis --json over hostile Log= items: valid" "$(wc -c < "$tmp/h.json") bytes"
else
  bad "iis --json over hostile Log= items" "invalid JSON"
fi
a=$(per_rule iis < "$tmp/h.json")
b=$("$E" replay --json --fail-on never "$log2" 2>/dev/null | per_rule replay)
if [ -n "$a" ] && [ "$a" = "$b" ] && grep -q "sync-status" <<<"$a" && grep -q "device-blocked" <<<"$a"; then
  ok "iis findings over hostile Log= items: replay's (the full parse), Status 3 and the blocked device" "$(tr '\n\t' '; ' <<<"$a")"
else
  bad "iis findings over hostile Log= items" "iis: $(tr '\n' ';' <<<"$a") replay: $(tr '\n' ';' <<<"$b")"
fi
"$E" iis --no-progress "$log2" > "$tmp/h.txt" 2>&1
n=$(ctl "$tmp/h.txt")
if [ "$n" -eq 0 ] && grep -q "^== findings (" "$tmp/h.txt"; then
  ok "iis table over hostile Log= items: no raw control bytes" "0 control bytes, findings shown"
else
  bad "iis table over hostile Log= items" "$n control bytes"
fi
"$E" iis --html --no-progress "$log2" > "$tmp/h.html" 2>/dev/null
if [ "$(ctl "$tmp/h.html")" -eq 0 ] && ! grep -q "<script>" "$tmp/h.html" && grep -q "&lt;script&gt;" "$tmp/h.html"; then
  ok "iis --html over hostile Log= items: markup escaped" "&lt;script&gt;, 0 control bytes"
else
  bad "iis --html over hostile Log= items" "markup or control bytes raw"
fi

t_done

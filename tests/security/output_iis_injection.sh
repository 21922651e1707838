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

t_done

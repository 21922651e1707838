#!/usr/bin/env bash
# `eastrace iis` computes the analyzer's findings in the report's own pass (report/findings.c)
# from the line splitter, without building an exchange per line. They must be the findings
# `eastrace replay` gives the same log (the reader, the view, the same analyzer): this test
# counts findings per rule and device through both, for every IIS fixture and for a generated
# log big enough to be read by two threads and analyzed in two device shards. It also checks
# that the findings table is absent from --csv and present in the table, --html and --json.
# ET_EASTRACE names the binary (test.sh sets it).
. "$(dirname "$0")/../lib.sh"

# rule<TAB>device<TAB>count lines, sorted, from `iis --json` (the findings table's Count).
iis_counts() {
  python3 -c '
import json, sys, collections
d = json.load(sys.stdin)
c = collections.Counter()
for t in d["tables"]:
    if t["name"] == "findings":
        cols = t["columns"]
        for r in t["rows"]:
            row = dict(zip(cols, r))
            c[(row["Rule"], row["Device"])] += int(row["Count"])
for (rule, dev), n in sorted(c.items()):
    print("%s\t%s\t%d" % (rule, dev, n))
'
}
# The same from `replay --json` (findings per exchange and the summary's).
replay_counts() {
  python3 -c '
import json, sys, collections
c = collections.Counter()
for line in sys.stdin:
    d = json.loads(line)
    for f in d.get("findings", []):
        c[(f["rule"], f.get("device") or "-")] += 1
for (rule, dev), n in sorted(c.items()):
    print("%s\t%s\t%d" % (rule, dev, n))
'
}

compare() { # compare NAME LOG [IIS OPTIONS...]
  local name=$1 log=$2; shift 2
  "$E" iis --json --no-progress "$@" "$log" > "$tmp/iis.json" 2>"$tmp/iis.err"
  "$E" replay --json "$log" > "$tmp/replay.json" 2>"$tmp/replay.err"
  iis_counts < "$tmp/iis.json" > "$tmp/a" || { bad "$name: iis --json unreadable"; return; }
  replay_counts < "$tmp/replay.json" > "$tmp/b" || { bad "$name: replay --json unreadable"; return; }
  # Each iis row shows its group's first message: it must be one replay printed, word for
  # word (exchange numbers quoted in messages included).
  if python3 - "$tmp/iis.json" "$tmp/replay.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
a = {(r[1], r[2], r[5]) for t in d["tables"] if t["name"] == "findings" for r in t["rows"]}
b = set()
for line in open(sys.argv[2], encoding="utf-8"):
    for f in json.loads(line).get("findings", []):
        b.add((f["rule"], f.get("device") or "-", f["message"]))
missing = sorted(a - b)
for m in missing[:5]:
    print("  not in replay:", m)
sys.exit(1 if missing else 0)
PY
  then ok "$name: every message is one replay gives"; else bad "$name: messages differ"; fi
  if cmp -s "$tmp/a" "$tmp/b"; then
    ok "$name: same findings per rule and device as replay ($(wc -l < "$tmp/a") rule/device pairs, $(awk -F'\t' '{s+=$3} END {print s+0}' "$tmp/a") findings)"
  else
    bad "$name: iis and replay differ"; diff "$tmp/a" "$tmp/b" | head -20
  fi
}

for log in "$root"/tests/fixtures/logs/iis-*.log "$root"/tests/fixtures/timeline/iis-*.log; do
  compare "$(basename "$log")" "$log"
done

# A fixture with findings must give some (a test that cannot fail is no test).
"$E" iis --json --no-progress "$root/tests/fixtures/logs/iis-ex2010-sync-ping-errors.log" |
  iis_counts > "$tmp/a"
n=$(awk -F'\t' '{s+=$3} END {print s+0}' "$tmp/a")
if [ "$n" -ge 10 ]; then ok "ex2010 fixture has $n findings"; else bad "ex2010 fixture: $n findings"; fi
grep -q "^sendmail-status	ApplDNPX1	1$" "$tmp/a" && ok "SendMail 120 found for ApplDNPX1" ||
  bad "SendMail 120 missing"

# Two threads, two shards: a generated log of 10 MB (5000 devices, storms, errors).
if cc -O2 -o "$tmp/gen" "$root/bench/gen_iislog.c" 2>"$tmp/cc.err"; then
  "$tmp/gen" "$tmp/u_ex160901.log" 10 300 >/dev/null 2>&1
  compare "generated 10 MB log, 2 threads" "$tmp/u_ex160901.log" --threads 2
  compare "generated 10 MB log, 1 thread" "$tmp/u_ex160901.log" --threads 1
  [ "$(awk -F'\t' '{s+=$3} END {print s+0}' "$tmp/a")" -gt 0 ] && ok "generated log has findings" ||
    bad "generated log has no findings"
else
  bad "cannot compile bench/gen_iislog.c"; cat "$tmp/cc.err"
fi

# Which outputs carry the table.
L=$root/tests/fixtures/logs/iis-ex2010-sync-ping-errors.log
"$E" iis --no-progress "$L" > "$tmp/t.txt" && grep -q "^== findings (" "$tmp/t.txt" &&
  ok "table has the findings" || bad "table lacks the findings"
"$E" iis --html --no-progress "$L" > "$tmp/t.html" && grep -q "<h2>findings</h2>" "$tmp/t.html" &&
  ok "--html has the findings" || bad "--html lacks the findings"
"$E" iis --csv --no-progress "$L" > "$tmp/t.csv" && ! grep -q "sendmail-status" "$tmp/t.csv" &&
  ok "--csv is the device table only" || bad "--csv carries findings"
"$E" iis --no-findings --json --no-progress "$L" | iis_counts > "$tmp/none"
[ ! -s "$tmp/none" ] && ok "--no-findings leaves them out" || bad "--no-findings still has findings"

t_done

#!/usr/bin/env bash
# One pipeline (issue 11): every command gives the same number, order, Status and findings
# for the same exchange. Drives replay (text and --json), show N (text and --json), export
# (.saz and HAR, then replay of the export; --html, its embedded rows read back), the JSON API
# of `eastrace web` (/api/rows), mailboxlog and the proxy's live view over the same
# multi-source inputs, and compares. Then the inputs that must end at once with one clear
# message (issue 10 item 1) and wrong-format inputs (issue 10 item 5).
. "$(dirname "$0")/../lib.sh"
P=$root/tests/fixtures/pipeline
TL=$root/tests/fixtures/timeline
C=$root/../shared/corpus
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }

# ---- helpers: one line "n cmd http status rules" per exchange, from each command ----------

# From JSON Lines (replay --json; show --json wraps the object in "exchange").
json_rows() {
  python3 -c '
import json, sys
text = sys.stdin.read()
try:
    docs = [json.loads(l) for l in text.splitlines() if l.strip()]
except ValueError:
    docs = [json.loads(text)]  # show --json: one object, pretty trees may span lines
for o in docs:
    if o.get("summary"):
        continue
    o = o.get("exchange", o)
    eas = o.get("eas") or {}
    st = ",".join(str(s) for s in (eas.get("status") or [])) or "-"
    rules = ",".join(sorted(f["rule"] for f in o["findings"])) or "-"
    print(o["n"], eas.get("cmd") or o.get("method"), o.get("status") or "-", st, rules)
'
}

# From the text timeline: "n cmd http shown-status" (the seen-by column skipped), and the
# grouped findings "n rules".
text_rows() {
  awk '/^Findings$/ {exit}
       { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/ && $(i+1) ~ /^[0-9][0-9]-[0-9][0-9]$/) {
           split($(i+6), s, "="); print $i, $(i+4), $(i+5), s[1]; break } }'
}
text_findings() {
  awk '/^Findings$/ {f=1; next} /^(Across the whole input|Devices)$/ {f=0}
       f && /^#[0-9]+/ {n=substr($1,2)} f && /^  [a-z]+ \[/ {r=$2; gsub(/[][]/,"",r); print n, r}' |
    sort -k1,1n -k2 | awk '{a[$1]=a[$1] (a[$1]?",":"") $2} END {for (k in a) print k, a[k]}' | sort -n
}
# The shown Status of each JSON row: the first non-success the text cell shows is checked
# against the JSON list (it must be one of them).
status_in_list() { # text_rows file, json_rows file
  python3 - "$1" "$2" <<'EOF'
import sys
t = [l.split() for l in open(sys.argv[1])]
j = [l.split() for l in open(sys.argv[2])]
bad = 0
for a, b in zip(t, j):
    if a[0] != b[0] or a[1] != b[1] or a[2] != b[2]:
        bad += 1
    elif a[3] != "-" and a[3] not in b[3].split(","):
        bad += 1
print("same" if bad == 0 and len(t) == len(j) else "differ: %d of %d/%d" % (bad, len(t), len(j)))
EOF
}

# ---- the same inputs through every command ------------------------------------------------

# The rows of export --html (its embedded data) or of web's /api/rows: "n cmd http rules".
page_rows() { python3 -c '
import json, re, sys
t = sys.stdin.read()
m = re.search(r"<script type=\"application/json\" id=\"et-data\">(.*?)</script>", t, re.S)
rows = json.loads(m.group(1))["rows"] if m else json.loads(t)["rows"]
for r in rows:
    print(r["n"], r["cmd"], r["http"] or "-", ",".join(sorted(set((r["rules"] or "-").split()))))'; }

# /api/rows of `eastrace web ARGS...` with the extra query QUERY ("&user=...").
web_rows() { # query, web args...
  local q=$1
  shift
  web_api "$@" -- "/api/rows?limit=1000$q"
}

compare_set() { # name, files...
  local name=$1; shift
  "$E" replay --json --fail-on never "$@" 2>"$tmp/$name.err" | json_rows >"$tmp/$name.json.rows"
  "$E" replay --no-color --fail-on never "$@" 2>/dev/null >"$tmp/$name.txt"
  text_rows <"$tmp/$name.txt" >"$tmp/$name.text.rows"
  local n
  n=$(wc -l <"$tmp/$name.json.rows")
  [ "$n" -gt 0 ] && ok "$name: replay --json gives $n exchanges" || bad "$name: replay --json empty"
  check "$name: text timeline and --json: same numbers, order, command, HTTP and Status" \
    "$(status_in_list "$tmp/$name.text.rows" "$tmp/$name.json.rows")" same
  # Numbers in time order, each once.
  check "$name: numbers unique" "$(cut -d' ' -f1 "$tmp/$name.json.rows" | sort | uniq -d | wc -l)" 0
  # Findings under each number: text's grouped findings equal --json's.
  awk '$5 != "-" {print $1, $5}' "$tmp/$name.json.rows" | sort -n >"$tmp/$name.jf"
  text_findings <"$tmp/$name.txt" >"$tmp/$name.tf"
  check "$name: text findings and --json findings" "$(diff "$tmp/$name.tf" "$tmp/$name.jf" >/dev/null && echo same)" same
  # show N for every N replay printed: the same exchange, Status and findings.
  : >"$tmp/$name.show.rows"
  local bad_text=0
  while read -r num _; do
    "$E" show --json "$@" "$num" 2>/dev/null | json_rows >>"$tmp/$name.show.rows"
    "$E" show "$@" "$num" 2>/dev/null >"$tmp/show.txt"
    grep -q "^Exchange $num\$" "$tmp/show.txt" || bad_text=$((bad_text + 1))
    [ "$(sed -n 2p "$tmp/show.txt" | text_rows | cut -d' ' -f1)" = "$num" ] || bad_text=$((bad_text + 1))
  done <"$tmp/$name.json.rows"
  check "$name: show --json N equals replay's exchange N (all $n)" \
    "$(diff "$tmp/$name.show.rows" "$tmp/$name.json.rows" >/dev/null && echo same)" same
  check "$name: show N text says Exchange N and its line starts with N" "$bad_text" 0
  # export then replay of the export: the same order, commands, HTTP status and EAS Status.
  # Exchanges only a server log saw carry their Status as server-log facts, which a .saz or
  # HAR has no place for: with those (EXPORT_FIELDS=2-3) only order, command and HTTP status
  # are compared.
  for fmt in ${EXPORT_FORMATS:-saz har}; do
    "$E" export "$@" --$fmt "$tmp/$name.$fmt" 2>/dev/null
    "$E" replay --json --fail-on never "$tmp/$name.$fmt" 2>/dev/null | json_rows |
      cut -d' ' -f"${EXPORT_FIELDS:-2-4}" >"$tmp/$name.$fmt.rows"
    cut -d' ' -f"${EXPORT_FIELDS:-2-4}" "$tmp/$name.json.rows" >"$tmp/$name.want"
    check "$name: export --$fmt then replay: same order, command, HTTP${EXPORT_FIELDS:+ (not Status)}${EXPORT_FIELDS:- and Status}" \
      "$(diff "$tmp/$name.$fmt.rows" "$tmp/$name.want" >/dev/null && echo same)" same
  done
  # export --html read back (its embedded data) and the JSON API the page of `eastrace web`
  # uses: the same numbers, order, command, HTTP status and rules.
  python3 -c '
import sys
for l in open(sys.argv[1]):
    n, cmd, http, _, rules = l.split()
    print(n, cmd, http, ",".join(sorted(set(rules.split(",")))))' "$tmp/$name.json.rows" >"$tmp/$name.want.page"
  "$E" export "$@" --html "$tmp/$name.html" 2>/dev/null
  page_rows <"$tmp/$name.html" >"$tmp/$name.html.rows"
  check "$name: export --html read back: same numbers, order, command, HTTP and rules" \
    "$(diff "$tmp/$name.html.rows" "$tmp/$name.want.page" >/dev/null && echo same)" same
  web_rows "" "$@" | page_rows >"$tmp/$name.web.rows"
  check "$name: web's /api/rows: same numbers, order, command, HTTP and rules" \
    "$(diff "$tmp/$name.web.rows" "$tmp/$name.want.page" >/dev/null && echo same)" same
  # Several inputs: numbered by merged position, so the export (1..N) keeps the numbers.
  if [ $# -gt 1 ]; then
    local f=${EXPORT_FORMATS:-saz}
    f=${f%% *}
    "$E" replay --json --fail-on never "$tmp/$name.$f" 2>/dev/null | json_rows | cut -d' ' -f1 >"$tmp/a"
    cut -d' ' -f1 "$tmp/$name.json.rows" >"$tmp/b"
    check "$name: export .$f keeps the merged numbers" "$(diff "$tmp/a" "$tmp/b" >/dev/null && echo same)" same
  fi
}

# IIS lines carry no HTTP version, which the .saz writer needs (it writes "HTTP/0.0", which no
# reader takes): the three-source set is exported as HAR only.
EXPORT_FORMATS=har EXPORT_FIELDS=2-3 compare_set trio "$TL/capture-appl1-5-requests.har" "$TL/iis-appl1-dev2-6-eas-lines.log" \
  "$TL/mailboxlog-appl1-4-entries.txt"
compare_set sazmbx "$P/saz-sessions-3-7-9.saz" "$P/mailboxlog-sync-collections-1-and-3.txt"
compare_set saz "$P/saz-sessions-3-7-9.saz"
compare_set mbx "$P/mailboxlog-sync-collections-1-and-3.txt"
# All four kinds at once: a recording (HAR), an IIS log, a mailbox log and a .saz whose
# session numbers have gaps (3, 7, 9).
EXPORT_FORMATS=har EXPORT_FIELDS=2-3 compare_set four "$TL/capture-appl1-5-requests.har" \
  "$TL/iis-appl1-dev2-6-eas-lines.log" "$TL/mailboxlog-appl1-4-entries.txt" "$P/saz-sessions-3-7-9.saz"

# The merged three-source timeline is in time order.
"$E" replay --json --fail-on never "$TL/capture-appl1-5-requests.har" \
  "$TL/iis-appl1-dev2-6-eas-lines.log" "$TL/mailboxlog-appl1-4-entries.txt" |
  python3 -c 'import json,sys; t=[json.loads(l).get("time") for l in sys.stdin if "summary" not in l]; print("sorted" if t == sorted(t) else "unsorted")' >"$tmp/o"
check "three sources: the merged timeline is in time order" "$(cat "$tmp/o")" sorted

# One .saz: its session numbers everywhere (issue 11: it said 1 and 2, and "no exchange 7").
check "saz: replay numbers are the session numbers" "$(cut -d' ' -f1 "$tmp/saz.json.rows" | tr '\n' ' ')" "3 7 9 "
check "saz: text numbers are the session numbers" "$(cut -d' ' -f1 "$tmp/saz.text.rows" | tr '\n' ' ')" "3 7 9 "
"$E" show "$P/saz-sessions-3-7-9.saz" 7 >"$tmp/s7" 2>&1
grep -q "^Exchange 7$" "$tmp/s7" && grep -q "Sync" "$tmp/s7" && ok "show X.saz 7 opens session 7 (the Sync)" || bad "show X.saz 7"
"$E" show "$P/saz-sessions-3-7-9.saz" 2 >/dev/null 2>"$tmp/s2"
rc=$?
[ $rc -eq 2 ] && grep -q "numbered 3 to 9" "$tmp/s2" && ok "show X.saz 2: no such exchange, says the numbers (exit 2)" ||
  bad "show X.saz 2 (exit $rc: $(cat "$tmp/s2"))"

# A Sync whose collections answered 1 and 3: the same Status (3) in mailboxlog and replay.
"$E" mailboxlog "$P/mailboxlog-sync-collections-1-and-3.txt" >"$tmp/m.txt"
check "mailboxlog: the Sync's Status is 3 (not the first <Status>)" \
  "$(awk '$4 == "Sync" {print $1, $6}' "$tmp/m.txt")" "1 3"
check "mailboxlog and replay: same number, command and Status per entry" \
  "$(awk 'NR > 1 {print $1, $4, ($6 == "-" ? "-" : $6)}' "$tmp/m.txt")" \
  "$(awk '{print $1, $2, $4}' "$tmp/mbx.text.rows")"
"$E" mailboxlog --json "$P/mailboxlog-sync-collections-1-and-3.txt" |
  python3 -c 'import json,sys; print(" ".join("%d:%d" % (o["n"], o["eas_status"]) for o in map(json.loads, sys.stdin)))' >"$tmp/mj"
check "mailboxlog --json: numbers and Status" "$(cat "$tmp/mj")" "1:3 2:1 3:-1"
# The mailbox log's exception survives the merge with the capture (the SendMail 500).
grep -q '^4 SendMail 500 - .*server-error' "$tmp/sazmbx.json.rows" &&
  "$E" show "$P/saz-sessions-3-7-9.saz" "$P/mailboxlog-sync-collections-1-and-3.txt" 4 2>/dev/null |
  grep -c "StoragePermanentException" >/dev/null &&
  ok "the mailbox log's exception survives merging with the capture" || bad "exception lost in the merge"
check "capture + mailbox log: seen by" "$("$E" replay --no-color "$P/saz-sessions-3-7-9.saz" \
  "$P/mailboxlog-sync-collections-1-and-3.txt" 2>/dev/null | awk '/^Seen by/ {f=1; next} f && NF == 0 {f=0} f' | tr -s ' ' | tr '\n' '|')" \
  " cap mbx 2| mbx 1 (only)| cap 1 (only)|"

# ---- inputs that must end at once, with one message (issue 10 item 1) ----------------------

ends() { # label, command...
  local label=$1 t0 t1 rc
  shift
  t0=$(date +%s%N)
  timeout 5 "$@" >/dev/null 2>"$tmp/e"
  rc=$?
  t1=$(date +%s%N)
  local ms=$(((t1 - t0) / 1000000)) lines
  lines=$(wc -l <"$tmp/e")
  if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && [ $ms -lt 1000 ]; then
    ok "$label: exit 2, one message, ${ms} ms"
  else
    bad "$label: exit $rc, $lines message line(s), ${ms} ms: $(head -c 300 "$tmp/e")"
  fi
}
for f in har-empty-object.har har-log-without-entries.har har-array.har har-cut-mid-entry.har \
  random-bytes.bin; do
  ends "replay $f" "$E" replay "$P/$f"
  ends "show $f 1" "$E" show "$P/$f" 1
  ends "export $f" "$E" export "$P/$f" --har "$tmp/x.har"
  for fmt in capture saz har; do
    ends "replay --format $fmt $f" "$E" replay --format "$fmt" "$P/$f"
  done
done
grep -q "har-cut-mid-entry.har: .*at byte 1500" <("$E" replay "$P/har-cut-mid-entry.har" 2>&1) &&
  ok "the message names the file, what was expected and the offset" || bad "cut HAR message"
for f in mitmproxy/har/corrupted_har__brokenfile.har mitmproxy/har/har_extractor.har; do
  if [ -f "$C/$f" ]; then
    ends "replay corpus $(basename "$f")" "$E" replay "$C/$f"
    ends "export corpus $(basename "$f")" "$E" export "$C/$f" --saz "$tmp/x.saz"
  else
    echo "skip - corpus $f not present"
  fi
done
# Text of another kind (a README, a .log that is no IIS log): one message naming the file and
# the formats eastrace reads, for every command that reads inputs (it was read as an IIS log,
# one error per line).
printf '# notes\n\nSome text, not a log.\n# a heading\n' >"$tmp/README.md"
cp "$tmp/README.md" "$tmp/notes.log"
for f in README.md notes.log; do
  for cmd in replay "show 1" "export --har $tmp/x.har" "export --html $tmp/x.html" "iis" "mailboxlog"; do
    # shellcheck disable=SC2086
    set -- $cmd
    c=$1; shift
    ends "$c $f" "$E" "$c" "$tmp/$f" "$@"
    grep -q "$f" "$tmp/e" || bad "$c $f: the message does not name the file"
  done
  "$E" replay "$tmp/$f" >/dev/null 2>"$tmp/e"
  grep -q "$f: not a format eastrace reads (expected a capture, .saz, HAR, IIS log or mailbox log)" "$tmp/e" &&
    ok "replay $f: names the file and the formats" || bad "replay $f: $(cat "$tmp/e")"
done
# No input could be opened: the message alone, exit 2, no empty timeline on stdout, and an
# export does not create (or empty) its output file.
"$E" replay "$tmp/README.md" "$tmp/no-such.cap" >"$tmp/o" 2>"$tmp/e"
check "replay of nothing readable: exit 2" "$?" 2
check "replay of nothing readable: nothing on stdout" "$(wc -c <"$tmp/o")" 0
"$E" replay --json "$tmp/no-such.cap" >"$tmp/o" 2>"$tmp/e"
check "replay --json of nothing readable: nothing on stdout" "$(wc -c <"$tmp/o")" 0
for fmt in har saz html; do
  echo precious >"$tmp/keep.$fmt"
  "$E" export "$tmp/no-such.cap" --$fmt "$tmp/keep.$fmt" 2>"$tmp/e"
  check "export --$fmt of nothing readable: exit 2" "$?" 2
  check "export --$fmt of nothing readable: the existing output is kept" "$(cat "$tmp/keep.$fmt")" precious
  "$E" export "$tmp/no-such.cap" --$fmt "$tmp/new.$fmt" 2>"$tmp/e"
  check "export --$fmt of nothing readable: no output file" "$([ -e "$tmp/new.$fmt" ] && echo created || echo none)" none
done
# Every reader error says "FILE: where: what" once: the file, the offset and "skipped" at most
# once a line (a gzip error named the file twice, a damaged capture record its offset and
# "skipped" twice, a directory read by the mailbox-log reader its name twice).
CAPFX=$root/tests/fixtures/capture/capfile-v1-sync-and-cert-error.etcap
head -c $(($(stat -c %s "$CAPFX") - 7)) "$CAPFX" >"$tmp/torn.etcap"
cp "$CAPFX" "$tmp/damaged.etcap"
printf '\377\377\377\377' | dd of="$tmp/damaged.etcap" bs=1 seek=200 conv=notrunc 2>/dev/null
gzip -c "$root/tests/fixtures/logs/iis-ex2010-sync-ping-errors.log" | head -c 300 >"$tmp/cut.log.gz"
mkdir -p "$tmp/dir.d"
printf '{"log":{"entries":[{"request":{"method":5}}]}}' >"$tmp/bad-entry.har"
printf 'PK\003\004junk' >"$tmp/junk.saz"
: >"$tmp/empty.har"
once_bad=0
once_n=0
for f in torn.etcap damaged.etcap cut.log.gz dir.d bad-entry.har junk.saz empty.har README.md; do
  for cmd in replay "show 1" "export --har $tmp/x.har" iis mailboxlog decode; do
    # shellcheck disable=SC2086
    set -- $cmd
    c=$1; shift
    "$E" "$c" "$tmp/$f" "$@" >/dev/null 2>"$tmp/e"
    while IFS= read -r line; do
      case $line in "eastrace: exported "* | "eastrace: export: $tmp/x.har not written"*) continue ;; esac
      once_n=$((once_n + 1))
      names=$(grep -o -F "$f" <<<"$line" | wc -l)
      offs=$(grep -o "at byte [0-9]*" <<<"$line" | sort | uniq -d | wc -l)
      skips=$(grep -o "skipped" <<<"$line" | wc -l)
      if [ "$names" -ne 1 ] || [ "$offs" -ne 0 ] || [ "$skips" -gt 1 ]; then
        once_bad=$((once_bad + 1)); echo "  $c $f: $line"
      fi
    done <"$tmp/e"
  done
done
[ "$once_n" -ge 40 ] && [ "$once_bad" -eq 0 ] &&
  ok "bad inputs through 6 commands: $once_n messages, each names the file, its offset and 'skipped' once" ||
  bad "bad inputs: $once_bad of $once_n messages repeat the file, the offset or 'skipped'"
# --find searches the decoded XML, not the raw bytes of a body the view decoded: WBXML tag
# bytes 0x45 0x4F 0x4B spell "EOK" (<Sync><Collection><SyncKey>), which used to match.
printf '\003\001\152\000\105\117\113\001\001\001' >"$tmp/eok.wbxml"
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=d1&DeviceType=t HTTP/1.1\r\nHost: mail.example.com\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n\r\n' >"$tmp/eok-req.txt"
python3 "$root/tests/security/gen.py" http-resp "$tmp/eok.http" identity "$tmp/eok.wbxml"
python3 "$root/tests/security/gen.py" har "$tmp/eok.har" "$tmp/eok-req.txt" "$tmp/eok.http"
check "replay --find: raw WBXML tag bytes do not match, the XML does" \
  "$("$E" replay --json --find EOK "$tmp/eok.har" 2>/dev/null | grep -c '"n"') $("$E" replay --json --find '<SyncKey>' "$tmp/eok.har" 2>/dev/null | grep -c '"n"')" "0 1"
# web: the same one message, before it serves anything.
timeout 5 "$E" web "$tmp/README.md" >"$tmp/wo" 2>"$tmp/e"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] && grep -q "README.md: not a format eastrace reads" "$tmp/e" &&
  ok "web README.md: exit 2, one message" || bad "web README.md: exit $rc: $(head -c 300 "$tmp/e")"
# A reader that reports a damaged record for every line: bounded output, and an end.
timeout 5 "$E" replay --format iis "$P/random-bytes.bin" >/dev/null 2>"$tmp/e"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l <"$tmp/e")" -le 12 ] && ok "replay --format iis on random bytes: exit 2, at most 12 lines" ||
  bad "replay --format iis random bytes: exit $rc, $(wc -l <"$tmp/e") lines"

# ---- wrong-format input (issue 10 item 5) ------------------------------------------------

says() { # label, expected text, command...
  local label=$1 want=$2; shift 2
  "$@" >/dev/null 2>"$tmp/e"
  local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$want" "$tmp/e"; then ok "$label: exit 2, '$want'"; else
    bad "$label: exit $rc: $(head -c 300 "$tmp/e")"; fi
}
says "iis garbage" "not an IIS log" "$E" iis "$P/random-bytes.bin"
says "iis mailbox-log" "eastrace mailboxlog" "$E" iis "$P/mailboxlog-sync-collections-1-and-3.txt"
says "mailboxlog u_ex.log" "is an IIS log: read it with \`eastrace iis\`" "$E" mailboxlog "$TL/iis-appl1-dev2-6-eas-lines.log"
says "mailboxlog garbage" "not an EAS mailbox log" "$E" mailboxlog "$P/random-bytes.bin"
says "decode X.saz" "Fiddler .saz archive: read it with \`eastrace replay\`" "$E" decode "$P/saz-sessions-3-7-9.saz"
says "decode X.har" "HAR file" "$E" decode "$TL/capture-appl1-5-requests.har"
# IIS lines without a #Fields header are read by replay.
check "replay reads IIS lines without #Fields" \
  "$("$E" replay --json "$P/iis-eas-lines-without-fields-header.log" 2>/dev/null | grep -c '"eas"')" 6

# ---- export replaces its output whole or not at all -------------------------------------

# Written to a temporary file next to the target, renamed over it only when the export
# succeeded: an input that ends with an error after a good one, a writer that fails midway
# (a file size limit) or a target that cannot be replaced leave the old target byte for byte
# and no temporary file.
mkdir -p "$tmp/out"
no_temp() { find "$tmp/out" -name '*.tmp-*' | wc -l; }
for fmt in har saz html; do
  printf 'precious\000old export\n' >"$tmp/out/keep.$fmt"
  cp "$tmp/out/keep.$fmt" "$tmp/out/orig"
  "$E" export "$P/saz-sessions-3-7-9.saz" "$P/har-cut-mid-entry.har" --$fmt "$tmp/out/keep.$fmt" 2>"$tmp/e"
  rc=$?
  check "export --$fmt, a good input then a truncated HAR: exit 2, old output byte for byte, no temporary file" \
    "$rc $(cmp -s "$tmp/out/keep.$fmt" "$tmp/out/orig" && echo same) $(no_temp)" "2 same 0"
  grep -q "keep.$fmt not written (the existing file is unchanged)" "$tmp/e" &&
    ok "export --$fmt failed: says the output was not written" || bad "export --$fmt failed: $(cat "$tmp/e")"
  "$E" export "$P/saz-sessions-3-7-9.saz" "$P/random-bytes.bin" --$fmt "$tmp/out/keep.$fmt" 2>/dev/null
  check "export --$fmt, a good input and random bytes: exit 2, old output, no temporary file" \
    "$? $(cmp -s "$tmp/out/keep.$fmt" "$tmp/out/orig" && echo same) $(no_temp)" "2 same 0"
  # A writer failing midway: writes past 2 KiB fail with EFBIG (SIGXFSZ ignored).
  (trap '' XFSZ; ulimit -f 2; exec "$E" export "$TL/capture-appl1-5-requests.har" "$P/saz-sessions-3-7-9.saz" \
    --$fmt "$tmp/out/keep.$fmt") 2>"$tmp/e"
  check "export --$fmt, the writer fails midway (file size limit): exit 2, old output, no temporary file" \
    "$? $(cmp -s "$tmp/out/keep.$fmt" "$tmp/out/orig" && echo same) $(no_temp)" "2 same 0"
  mkdir -p "$tmp/out/dir.$fmt/inside"
  "$E" export "$P/saz-sessions-3-7-9.saz" --$fmt "$tmp/out/dir.$fmt" 2>/dev/null
  check "export --$fmt over a directory: exit 2, the directory as it was, no temporary file" \
    "$? $([ -d "$tmp/out/dir.$fmt/inside" ] && echo kept) $(no_temp)" "2 kept 0"
  (umask 027; exec "$E" export "$P/saz-sessions-3-7-9.saz" --$fmt "$tmp/out/keep.$fmt" 2>/dev/null)
  check "export --$fmt succeeds: replaces the old output, mode 0666 minus the umask (027), no temporary file" \
    "$? $(cmp -s "$tmp/out/keep.$fmt" "$tmp/out/orig" || echo replaced) $(stat -c %a "$tmp/out/keep.$fmt") $(no_temp)" \
    "0 replaced 640 0"
done

# ---- --user names an account as the proxy's --only-user does ------------------------------

# The same capture filtered by the three forms of one user (and the User parameter or the
# Basic user name) gives the same exchanges in replay (text and --json), show, export (HAR,
# .saz, HTML) and web (the grid's user=): 1 User=jdoe, 2 Basic CONTOSO\jdoe,
# 3 User=jdoe@contoso.com, 7 Basic jdoe@contoso.com (tests/fixtures/pipeline/make-fixtures.py).
U=$P/har-users-jdoe-in-3-forms-and-others.har
devs_json() { python3 -c '
import json, sys
print(" ".join((o.get("eas") or {}).get("device_id") or "-" for o in map(json.loads, sys.stdin) if "n" in o))'; }
user_case() { # label, --user value, expected numbers
  local label=$1 u=$2 want=$3 wantdev="" n
  for n in $want; do wantdev="$wantdev DEV$n"; done
  wantdev=${wantdev# }
  check "--user $label: replay --json" \
    "$("$E" replay --json --user "$u" "$U" 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(o["n"]) for o in map(json.loads, sys.stdin) if "n" in o))')" "$want"
  check "--user $label: replay" "$("$E" replay --no-color --user "$u" "$U" 2>/dev/null | text_rows | cut -d' ' -f1 | tr '\n' ' ')" "$want "
  local shown=""
  for n in $want; do
    shown="$shown $("$E" show --json "$U" "$n" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["exchange"]["eas"]["device_id"])')"
  done
  check "--user $label: show N of each" "${shown# }" "$wantdev"
  for fmt in har saz; do
    "$E" export --user "$u" "$U" --$fmt "$tmp/u.$fmt" 2>/dev/null
    check "--user $label: export --$fmt, replayed" "$("$E" replay --json "$tmp/u.$fmt" 2>/dev/null | devs_json)" "$wantdev"
  done
  "$E" export --user "$u" "$U" --html "$tmp/u.html" 2>/dev/null
  check "--user $label: export --html rows" "$(page_rows <"$tmp/u.html" | cut -d' ' -f1 | tr '\n' ' ')" "$want "
  local q
  q="&user=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$u")"
  check "--user $label: web's /api/rows?user=" "$(web_rows "$q" "$U" | page_rows | cut -d' ' -f1 | tr '\n' ' ')" "$want "
}
user_case 'CONTOSO\jdoe' 'CONTOSO\jdoe' "1 2 3 7"
user_case JDOE JDOE "1 2 3 7"
user_case jdoe@contoso.com jdoe@contoso.com "1 2 3 7"
# Not looser than that: another account, and the same account name in another domain.
user_case jdoe2 jdoe2 "4 6"
user_case 'FABRIKAM\jdoe' 'FABRIKAM\jdoe' "1 3 7"

# ---- every filter means the same in replay and in the session browser's grid ---------------

# replay's --device/--cmd/--host/--since/--until/--errors and web's /api/rows device=, cmd=,
# host=, since=, until=, errors=1 (one test, et_pipe_filter_match_facts, over the facts the
# grid keeps per row): the same exchanges, for values taken from the inputs themselves.
filter_case() { # label, replay options (one word or "opt value"), web query, files...
  local label=$1 ropts=$2 q=$3
  shift 3
  local want got
  # shellcheck disable=SC2086
  want=$("$E" replay --json --fail-on never $ropts "$@" 2>/dev/null | json_rows | cut -d' ' -f1 | tr '\n' ' ')
  got=$(web_rows "$q" "$@" | page_rows | cut -d' ' -f1 | tr '\n' ' ')
  if [ -n "$want" ] && [ "$want" = "$got" ]; then
    ok "filter $label: replay and web's grid give the same exchanges ($want)"
  else
    bad "filter $label: replay gave '$want', web's grid '$got'"
  fi
}
F=("$P/saz-sessions-3-7-9.saz" "$P/mailboxlog-sync-collections-1-and-3.txt")
facts=$("$E" replay --json --fail-on never "${F[@]}" 2>/dev/null | python3 -c '
import json, sys
xs = [o.get("exchange", o) for o in map(json.loads, sys.stdin) if "n" in o]
dev = next(((o.get("eas") or {}).get("device_id") for o in xs if (o.get("eas") or {}).get("device_id")), "")
cmd = next(((o.get("eas") or {}).get("cmd") for o in xs if (o.get("eas") or {}).get("cmd")), "")
host = next((o.get("host") for o in xs if o.get("host")), "")
ts = sorted(o["time"] for o in xs if o.get("time"))
print(dev, cmd, host, ts[len(ts) // 2] if ts else "")')
read -r fdev fcmd fhost ftime <<<"$facts"
lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }
filter_case "--device $fdev" "--device $fdev" "&device=$fdev" "${F[@]}"
filter_case "--device (other case)" "--device $(lower "$fdev")" "&device=$(lower "$fdev")" "${F[@]}"
filter_case "--cmd $fcmd" "--cmd $fcmd" "&cmd=$fcmd" "${F[@]}"
filter_case "--host $fhost" "--host $fhost" "&host=$fhost" "${F[@]}"
filter_case "--since $ftime" "--since $ftime" "&since=$ftime" "${F[@]}"
filter_case "--until $ftime" "--until $ftime" "&until=$ftime" "${F[@]}"
filter_case "--errors" "--errors" "&errors=1" "${F[@]}"

# ---- the proxy's live number is replay's number ------------------------------------------

F=$root/tests/fixtures/proxy
if command -v openssl >/dev/null && command -v curl >/dev/null; then
  oport=$(free_port)
  openssl s_server -accept "127.0.0.1:$oport" -cert "$F/origin-localhost.pem" \
    -key "$F/origin-localhost.key" -www -quiet >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$oport"
  export XDG_DATA_HOME=$tmp/data
  live_run() { # capture, count, tag
    local pport
    pport=$(free_port)
    "$E" proxy --listen "127.0.0.1:$pport" --allow-target 127.0.0.1 --allow-target localhost \
      --upstream-ca "$F/origin-ca.pem" -w "$1" >>"$tmp/live.txt" 2>>"$tmp/proxy.err" &
    local pr=$!
    pids+=($pr)
    wait_port "$pport"
    for i in $(seq 1 "$2"); do
      curl -s -o /dev/null -x "http://127.0.0.1:$pport" --cacert "$tmp/data/eastrace/ca.pem" \
        "https://localhost:$oport/Microsoft-Server-ActiveSync?Cmd=Ping&User=bob&DeviceId=$3$i&DeviceType=iPhone"
    done
    sleep 0.3
    kill -TERM $pr
    wait $pr 2>/dev/null
  }
  live_run "$tmp/live.cap" 3 LIVEA
  live_run "$tmp/live.cap" 2 LIVEB # appended: numbers go on
  awk '{for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+$/ && $(i+1) ~ /^[0-9][0-9]-[0-9][0-9]$/) {print $i, $(i+3); break}}' \
    "$tmp/live.txt" >"$tmp/live.rows"
  "$E" replay --json --fail-on never "$tmp/live.cap" 2>/dev/null |
    python3 -c 'import json,sys
for o in map(json.loads, sys.stdin):
    if not o.get("summary"): print(o["n"], (o.get("eas") or {}).get("device_id"))' >"$tmp/replay.rows"
  check "proxy: 5 live lines" "$(wc -l <"$tmp/live.rows")" 5
  check "proxy: live numbers (with a restart appending) equal replay's" \
    "$(diff "$tmp/live.rows" "$tmp/replay.rows" >/dev/null && echo same || cat "$tmp/live.rows" "$tmp/replay.rows" | tr '\n' ' ')" same
else
  echo "skip - openssl or curl missing: proxy live numbers"
fi

t_done

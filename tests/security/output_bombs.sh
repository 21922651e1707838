#!/usr/bin/env bash
# Output budgets (issue 9 item 1): bombs of every codec through every path that renders or
# reads them. Pass figure of each case: the exit status wanted, an error naming the budget
# or cap (and the file), at most 2 s and 256 MiB (measured by /usr/bin/time under a 1 GiB
# address-space limit), and at most 64 MiB (the body budget, ET_BODY_BUDGET) of rendered body.
. "$(dirname "$0")/lib.sh"
G="python3 $sec_here/gen.py"
budget=$((64 << 20))
slack=$((2 << 20)) # headers, comments and the rest of `show` around one body

REQ=$tmp/req.txt
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=d1&DeviceType=t HTTP/1.1\r\nHost: mail.example.com\r\nMS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n\r\n' >"$REQ"

# bomb NAME WANT_EXIT ERR_PATTERN COMMAND...: one case. WANT_EXIT is an exit status or
# alternatives ("0|2"); ERR_PATTERN (extended regex, may be empty) must be on stderr; the
# output must stay within the budget.
bomb() {
  local name=$1 want=$2 pat=$3; shift 3
  measure "$tmp/o" "$tmp/e" "$@"
  local out
  out=$(stat -c %s "$tmp/o")
  local max=${MAXOUT:-$((budget + slack))}
  local f="$(fig), $((out >> 20)) MiB out; pass: exit $want, <= 2 s, <= 256 MiB, <= $((max >> 20)) MiB out"
  [ -n "$pat" ] && f="$f, stderr ~ /$pat/"
  if [[ "$m_rc" =~ ^($want)$ ]] && within 2 256 && [ "$out" -le "$max" ] &&
     { [ -z "$pat" ] || grep -Eqi -- "$pat" "$tmp/e"; }; then
    ok "$name" "$f"
  else
    bad "$name" "$f"; head -c 600 "$tmp/e"
  fi
}
# every_path LABEL FILE N PATTERN: the reading and rendering commands over one archive
every_path() {
  local label=$1 f=$2 n=$3 pat=$4 want=${5:-1}
  bomb "$label: show" "$want" "$pat" "$E" show "$f" "$n"
  bomb "$label: show --json" "$want" "$pat" "$E" show --json "$f" "$n"
  bomb "$label: replay" 0 "" "$E" replay "$f"
  bomb "$label: replay --json" 0 "" "$E" replay --json "$f"
  bomb "$label: export --har" 0 "" "$E" export "$f" --har "$tmp/x.har"
  bomb "$label: export --saz" 0 "" "$E" export "$f" --saz "$tmp/x.saz"
}
in_saz() { $G saz "$1" "raw/01_c.txt=$REQ" "raw/01_s.txt=$2"; }
in_har() { $G har "$1" "$REQ" "$2"; }

# ---- WBXML string table: 0.9 MB standing for 100 GB of text ----
$G wbxml-strtbl "$tmp/strtbl.wbxml"
bomb "wbxml string-table bomb: decode" 1 "budget.*string-table" "$E" decode "$tmp/strtbl.wbxml"
bomb "wbxml string-table bomb: decode --json" 1 "budget" "$E" decode --json "$tmp/strtbl.wbxml"
$G http-resp "$tmp/strtbl.http" identity "$tmp/strtbl.wbxml"
bomb "wbxml string-table bomb: decode of the HTTP response" 1 "budget" "$E" decode "$tmp/strtbl.http"
in_saz "$tmp/strtbl.saz" "$tmp/strtbl.http"
every_path "wbxml string-table bomb in a .saz" "$tmp/strtbl.saz" 1 "budget"
in_har "$tmp/strtbl.har" "$tmp/strtbl.http"
every_path "wbxml string-table bomb in a HAR" "$tmp/strtbl.har" 1 "budget"

# ---- nested OPAQUE WBXML: 100 x 4 MB of text from 0.6 MB ----
# Past the budget the decoder stops (exit 1, the error naming the OPAQUE's byte offset and the
# budget), as for the string-table bomb, instead of showing the levels past the budget as
# base64 (63 MiB, exit 0); what it shows of the document is its first MiB.
$G wbxml-nested "$tmp/nested.wbxml" 2 10
nested_pat="nested WBXML in the OPAQUE data at byte [0-9]+: .*budget of 67108864 bytes"
MAXOUT=$((2 << 20)) bomb "nested OPAQUE wbxml bomb: decode" 1 "$nested_pat" "$E" decode "$tmp/nested.wbxml"
MAXOUT=$((2 << 20)) bomb "nested OPAQUE wbxml bomb: decode --json" 1 "$nested_pat" "$E" decode --json "$tmp/nested.wbxml"
$G http-resp "$tmp/nested.http" identity "$tmp/nested.wbxml"
MAXOUT=$((2 << 20)) bomb "nested OPAQUE wbxml bomb: decode of the HTTP response" 1 "$nested_pat" "$E" decode "$tmp/nested.http"
in_saz "$tmp/nested.saz" "$tmp/nested.http"
MAXOUT=$((3 << 20)) every_path "nested OPAQUE wbxml bomb in a .saz" "$tmp/nested.saz" 1 "$nested_pat"

# ---- gzip and deflate: 100 MiB (1 GiB long) of zeros from 0.1 MB, past the 64 MiB cap ----
mib=$([ "$LONG" = 1 ] && echo 1024 || echo 100)
for coding in gzip deflate; do
  $G http-resp "$tmp/$coding.http" $coding "-zeros:$mib"
  bomb "$coding bomb ($mib MiB): decode" 1 "zip bomb|cap" "$E" decode "$tmp/$coding.http"
  bomb "$coding bomb ($mib MiB): decode --json" 1 "zip bomb|cap" "$E" decode --json "$tmp/$coding.http"
  in_saz "$tmp/$coding.saz" "$tmp/$coding.http"
  every_path "$coding bomb in a .saz" "$tmp/$coding.saz" 1 "zip bomb|cap"
  in_har "$tmp/$coding.har" "$tmp/$coding.http"
  # HAR content is decoded text by the spec; the reader undoes only a gzip-magic body, so a
  # deflate stream there is bytes that fail as WBXML: bounded either way.
  bomb "$coding bomb in a HAR: show" 1 "response body" "$E" show "$tmp/$coding.har" 1
  bomb "$coding bomb in a HAR: replay" 0 "" "$E" replay "$tmp/$coding.har"
done

# ---- multipart: 300 MiB of parts under gzip; 5000 parts ----
$G multipart "$tmp/mp.http" 3 100
bomb "multipart bomb (3 x 100 MiB, gzip): decode" 1 "zip bomb|cap" "$E" decode "$tmp/mp.http"
in_saz "$tmp/mp.saz" "$tmp/mp.http"
bomb "multipart bomb in a .saz: show" 1 "zip bomb|cap" "$E" show "$tmp/mp.saz" 1
bomb "multipart bomb in a .saz: replay" 0 "" "$E" replay "$tmp/mp.saz"
$G multipart "$tmp/mp5000.http" 5000 0
bomb "multipart of 5000 parts: decode" 1 "parts" "$E" decode "$tmp/mp5000.http"

# ---- archives whose entries inflate to 250 MiB each (the issue's 1.6 MB .saz) ----
$G saz-bomb "$tmp/big.saz" 2 250
# Each session is skipped with its entry named: show finds no exchange 1, replay and export
# name both entries; with nothing readable left the input counts as unreadable (exit 2).
bomb "saz, 2 entries of 250 MiB: show" 2 "raw/01_s.txt.*cap" "$E" show "$tmp/big.saz" 1
bomb "saz, 2 entries of 250 MiB: replay" "0|2" "raw/02_s.txt.*cap" "$E" replay "$tmp/big.saz"
bomb "saz, 2 entries of 250 MiB: export --har" "0|2" "raw/02_s.txt.*cap" "$E" export "$tmp/big.saz" --har "$tmp/x.har"
$G saz-bomb "$tmp/lie.saz" 2 250 lie
bomb "saz, 250 MiB entries whose headers say 1000 bytes: show" 2 "raw/01_s.txt.*inflates past" "$E" show "$tmp/lie.saz" 1
bomb "saz, 250 MiB entries whose headers say 1000 bytes: replay" "0|2" "raw/02_s.txt.*inflates past" "$E" replay "$tmp/lie.saz"
# Just under the caps: two 60 MiB bodies are read and shown, within the same bounds.
$G saz-bomb "$tmp/s60.saz" 2 60
bomb "saz, 2 entries of 60 MiB (under the cap): show" 0 "" "$E" show "$tmp/s60.saz" 1
bomb "saz, 2 entries of 60 MiB (under the cap): show --json" 0 "" "$E" show --json "$tmp/s60.saz" 2
bomb "saz, 2 entries of 60 MiB (under the cap): replay" 0 "" "$E" replay "$tmp/s60.saz"

sec_done

#!/usr/bin/env bash
# Redaction canaries (issue 9 item 8): one secret per place a credential travels, through
# every output. Pass figure: 0 canary secrets in the output, and with --include-secrets the
# secret is there (so the case can fail). X-MS-PolicyKey is kept on purpose (docs/security.md).
. "$(dirname "$0")/lib.sh"
G="python3 $sec_here/gen.py"
# The secrets: each a distinct word so a leak names itself.
B64=$(printf 'jdoe:SECRETbasic' | base64)
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Settings&User=jdoe&DeviceId=D1&DeviceType=t&Password=SECRETquery HTTP/1.1\r\nHost: mail.example.com\r\nAuthorization: Basic %s\r\nCookie: s=SECRETcookie\r\nX-MS-PolicyKey: 1307199584\r\nMS-ASProtocolVersion: 14.1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: 0\r\n\r\n' "$B64" >"$tmp/c.txt"
# Settings <DevicePassword><Password>SECRETwbxml</Password></DevicePassword> (page 18:
# Settings 0x05, DevicePassword 0x14, Password 0x15), as the response body.
printf '\x03\x01\x6a\x00\x00\x12\x45\x54\x55\x03SECRETwbxml\x00\x01\x01\x01' >"$tmp/settings.wbxml"
$G http-resp "$tmp/s.txt" identity "$tmp/settings.wbxml"
sed -i 's|Content-Type: application/vnd.ms-sync.wbxml|Set-Cookie: t=SECRETsetcookie\r\nContent-Type: application/vnd.ms-sync.wbxml|' "$tmp/s.txt"
# The body's Content-Length is unchanged by the header edit.
$G saz "$tmp/r.saz" "raw/01_c.txt=$tmp/c.txt" "raw/01_s.txt=$tmp/s.txt"
$G har "$tmp/r.har" "$tmp/c.txt" "$tmp/s.txt"
# Autodiscover in plain XML with a Password element.
printf 'POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: mail.example.com\r\nContent-Type: text/xml\r\nContent-Length: 119\r\n\r\n<Autodiscover><Request><EMailAddress>j@x</EMailAddress><a:Password>SECRETxml</a:Password></Request></Autodiscover>\n' >"$tmp/ad.txt"
printf 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' >"$tmp/ok.txt"
$G saz "$tmp/ad.saz" "raw/01_c.txt=$tmp/ad.txt" "raw/01_s.txt=$tmp/ok.txt"

# leak NAME COMMAND...: the secrets must not appear; the same command with
# --include-secrets must show at least one (the case can fail).
leak() {
  local name=$1; shift
  "$@" >"$tmp/o" 2>"$tmp/e"
  [ -f "$tmp/x.out" ] && cat "$tmp/x.out" >>"$tmp/o" && rm -f "$tmp/x.out"
  local n
  n=$(grep -ao 'SECRET[a-z]*' "$tmp/o" "$tmp/e" | sort -u | sed 's/.*://' | tr '\n' ' ')
  local f="secrets printed: ${n:-none}; pass: none"
  if [ -z "$n" ] && [ -s "$tmp/o" ]; then ok "$name" "$f"; else bad "$name" "$f"; fi
}
for f in r.saz r.har; do
  leak "$f: show" "$E" show "$tmp/$f" 1
  leak "$f: show --json" "$E" show --json "$tmp/$f" 1
  leak "$f: replay --json" "$E" replay --json "$tmp/$f"
  leak "$f: export --har" sh -c "'$E' export '$tmp/$f' --har '$tmp/x.out' >/dev/null"
  leak "$f: export --saz" sh -c "'$E' export '$tmp/$f' --saz '$tmp/x.saz' >/dev/null && unzip -p '$tmp/x.saz' > '$tmp/x.out'"
  # The HAR keeps WBXML as base64: look inside, and re-read both exports.
  leak "$f: export --har, bodies decoded" sh -c "'$E' export '$tmp/$f' --har '$tmp/x.har' >/dev/null && '$E' show --include-secrets '$tmp/x.har' 1 > '$tmp/x.out'"
  leak "$f: export --saz, re-read" sh -c "'$E' export '$tmp/$f' --saz '$tmp/x.saz' >/dev/null && '$E' show --include-secrets '$tmp/x.saz' 1 > '$tmp/x.out'"
done
leak "decode of the raw request" "$E" decode "$tmp/c.txt"
leak "decode --json of the raw request" "$E" decode --json "$tmp/c.txt"
leak "decode of the Settings DevicePassword body" "$E" decode "$tmp/settings.wbxml"
leak "decode --json of the Settings DevicePassword body" "$E" decode --json "$tmp/settings.wbxml"
leak "Autodiscover XML: show" "$E" show "$tmp/ad.saz" 1
leak "Autodiscover XML: show --json" "$E" show --json "$tmp/ad.saz" 1
leak "Autodiscover XML: export --saz, re-read" sh -c "'$E' export '$tmp/ad.saz' --saz '$tmp/y.saz' >/dev/null && '$E' show --include-secrets '$tmp/y.saz' 1 > '$tmp/x.out'"
# The session browser: the detail of each exchange (/api/exchange/N) and its rows, for the
# same inputs, plus a header and a source field named like a token or password (the policy's
# names, not only Authorization and cookies).
sed 's|Cookie: s=SECRETcookie|Cookie: s=SECRETcookie\r\nX-Auth-Token: SECRETtoken|' "$tmp/c.txt" >"$tmp/c2.txt"
$G saz "$tmp/t.saz" "raw/01_c.txt=$tmp/c2.txt" "raw/01_s.txt=$tmp/s.txt"
web_detail() { web_api "$@" -- /api/exchange/1 /api/rows; }
for f in r.saz r.har t.saz ad.saz; do
  leak "$f: web's detail and rows" web_detail "$tmp/$f"
done
leak "t.saz (X-Auth-Token): show" "$E" show "$tmp/t.saz" 1
leak "t.saz (X-Auth-Token): replay --json" "$E" replay --json "$tmp/t.saz"
web_detail --include-secrets "$tmp/t.saz" >"$tmp/o" 2>&1
n=$(grep -ao 'SECRET[a-z]*' "$tmp/o" | sort -u | wc -l)
verdict "web --include-secrets shows them" "$n distinct secrets shown; pass: >= 4" [ "$n" -ge 4 ]

# The opt-out works, so the cases above can fail.
"$E" show --include-secrets "$tmp/r.saz" 1 >"$tmp/o" 2>&1
n=$(grep -ao 'SECRET[a-z]*' "$tmp/o" | sort -u | wc -l)
verdict "show --include-secrets shows them" "$n distinct secrets shown; pass: >= 4" [ "$n" -ge 4 ]
# X-MS-PolicyKey is not a credential: kept.
"$E" show "$tmp/r.saz" 1 >"$tmp/o" 2>&1
verdict "X-MS-PolicyKey kept (policy key, not a password)" "$(grep -c 1307199584 "$tmp/o") lines; pass: >= 1" has "$tmp/o" 1307199584

# IIS: cs(Cookie) and a Password in the query.
src=$root/tests/fixtures/logs/iis-ex2010-sync-ping-errors.log
if [ -f "$src" ]; then
  sed -e 's/cs(User-Agent) sc-status/cs(User-Agent) cs(Cookie) sc-status/' \
      -e 's|Apple-iPhone4C1/902.206 200|Apple-iPhone4C1/902.206 s=SECRETiiscookie 200|' \
      -e 's|Cmd=FolderSync&|Cmd=FolderSync\&Password=SECRETiisquery\&|' "$src" >"$tmp/iis.log"
  leak "IIS log: show" "$E" show "$tmp/iis.log" 2
  leak "IIS log: show --json" "$E" show --json "$tmp/iis.log" 2
  leak "IIS log: replay --json" "$E" replay --json "$tmp/iis.log"
  leak "IIS log: web's detail and rows (exchange 1)" web_detail "$tmp/iis.log"
fi
sec_done

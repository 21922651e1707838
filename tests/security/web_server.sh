#!/usr/bin/env bash
# Security cases of the session browser's server (eastrace web, docs/web.md "Security"), from a
# plain HTTP client (curl) on 127.0.0.1: the access token (401 without, 403 wrong, cookie
# HttpOnly + SameSite=Strict), Host and Origin checks against DNS rebinding and cross-site
# requests, no CORS, the response headers (CSP without inline script, nosniff, no framing),
# methods and sizes, a non-loopback --listen (token still needed, and it says so), the
# connection cap. The browser-side cases (a rebinding name in Chromium, hostile values never
# becoming markup) are in tests/web/test_browser.js. ET_EASTRACE names the binary.
. "$(dirname "$0")/../lib.sh"
CAP=$root/tests/fixtures/capture/capfile-v1-sync-and-cert-error.etcap
is() { if [ "$2" = "$3" ]; then ok "$1: $2"; else bad "$1: got '$2', wanted '$3'"; fi; }

start() { # start NAME ARGS...: runs eastrace web, sets url port token
  local name=$1; shift
  "$E" web "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$tmp/$name.out" ] && break; sleep 0.05; done
  url=$(head -1 "$tmp/$name.out")
  port=$(sed -E 's|^http://[^/]*:([0-9]+)/.*|\1|' <<<"$url")
  token=${url##*token=}
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

start a "$CAP"
[[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+/\?token=[0-9a-f]{32}$ ]] && ok "URL on loopback with a 128-bit token" || bad "URL: $url"
base=http://127.0.0.1:$port
ck="Cookie: et_token_$port=$token"

# ---- the token ----
is "no token: page" "$(code "$base/")" 401
is "no token: API" "$(code "$base/api/rows")" 401
is "no token: script" "$(code "$base/app.js")" 401
is "no token: detail" "$(code "$base/api/exchange/1")" 401
# the last digit changed (to 0, or to 1 when it is 0), so the token is always wrong
last=${token: -1}; other=0; [ "$last" = 0 ] && other=1
is "wrong token in the URL" "$(code "$base/?token=${token%?}$other")" 403
is "token one digit short" "$(code "$base/api/rows?token=${token%?}")" 403
is "wrong cookie" "$(code -H "Cookie: et_token_$port=0123456789abcdef0123456789abcdef" "$base/api/rows")" 403
is "another server's cookie (other port)" "$(code -H "Cookie: et_token_1=$token" "$base/api/rows")" 401
is "empty cookie" "$(code -H "Cookie: et_token_$port=" "$base/api/rows")" 401
curl -s -D "$tmp/h" -o /dev/null "$url"
is "token URL: redirect" "$(head -1 "$tmp/h" | tr -d '\r' | cut -d' ' -f2)" 303
grep -qi "^Set-Cookie: et_token_$port=$token; Path=/; HttpOnly; SameSite=Strict" "$tmp/h" && ok "cookie is HttpOnly, SameSite=Strict" || bad "cookie attributes: $(grep -i set-cookie "$tmp/h")"
grep -qi "^Location: /\s*$" "$tmp/h" && ok "token leaves the address bar (Location: /)" || bad "Location"
is "cookie: page" "$(code -H "$ck" "$base/")" 200
is "cookie: API" "$(code -H "$ck" "$base/api/rows")" 200

# ---- Host and Origin (DNS rebinding, cross-site) ----
is "Host of another name, right cookie" "$(code -H "$ck" -H "Host: attacker.example:$port" "$base/api/rows")" 421
is "Host of another name, token in URL" "$(code -H "Host: attacker.example:$port" "$base/?token=$token")" 421
is "Host right name, other port" "$(code -H "$ck" -H "Host: 127.0.0.1:$((port == 65535 ? 1 : port + 1))" "$base/api/rows")" 421
is "Host without port" "$(code -H "$ck" -H "Host: 127.0.0.1" "$base/api/rows")" 421
is "no Host" "$(code -H "$ck" -H "Host:" "$base/api/rows")" 421
is "Host localhost on loopback" "$(code -H "$ck" -H "Host: localhost:$port" "$base/api/rows")" 200
is "Host another loopback address" "$(code -H "$ck" -H "Host: 127.0.0.2:$port" "$base/api/rows")" 421
is "Origin of another site" "$(code -H "$ck" -H "Origin: http://attacker.example" "$base/api/rows")" 403
is "Origin null" "$(code -H "$ck" -H "Origin: null" "$base/api/rows")" 403
is "Origin https of ours" "$(code -H "$ck" -H "Origin: https://127.0.0.1:$port" "$base/api/rows")" 403
is "Origin ours" "$(code -H "$ck" -H "Origin: http://127.0.0.1:$port" "$base/api/rows")" 200
is "Sec-Fetch-Site: cross-site" "$(code -H "$ck" -H "Sec-Fetch-Site: cross-site" "$base/api/rows")" 403
is "Sec-Fetch-Site: same-origin" "$(code -H "$ck" -H "Sec-Fetch-Site: same-origin" "$base/api/rows")" 200

# ---- headers ----
curl -s -D "$tmp/h" -o /dev/null -H "$ck" -H "Origin: http://attacker.example" "$base/api/rows"
curl -s -D "$tmp/h2" -o /dev/null -H "$ck" "$base/"
curl -s -D "$tmp/h3" -o /dev/null -X OPTIONS -H "$ck" -H "Origin: http://attacker.example" \
  -H "Access-Control-Request-Method: GET" "$base/api/rows"
cat "$tmp/h" "$tmp/h2" "$tmp/h3" >"$tmp/all"
if grep -qi "^Access-Control-" "$tmp/all"; then bad "a CORS header was sent"; else ok "no CORS header (refusal, page, preflight)"; fi
is "preflight refused" "$(head -1 "$tmp/h3" | tr -d '\r' | cut -d' ' -f2)" 405
csp=$(grep -i "^Content-Security-Policy:" "$tmp/h2" | tr -d '\r')
[[ "$csp" == *"default-src 'none'"* && "$csp" == *"script-src 'self'"* && "$csp" == *"frame-ancestors 'none'"* && "$csp" != *unsafe* ]] &&
  ok "CSP: default-src none, script-src self, no unsafe-*, no framing" || bad "CSP: $csp"
grep -qi "^X-Content-Type-Options: nosniff" "$tmp/h2" && ok "nosniff" || bad "nosniff"
grep -qi "^Referrer-Policy: no-referrer" "$tmp/h2" && ok "no referrer (the token never leaves)" || bad "Referrer-Policy"
grep -qi "^Cache-Control: no-store" "$tmp/h2" && ok "no-store" || bad "Cache-Control"
curl -s -o "$tmp/index.html" -H "$ck" "$base/"
if grep -qE "<script>|[[:space:]]on[a-z]+=" "$tmp/index.html"; then bad "the page has inline script"; else ok "the page has no inline script or handler"; fi
ctype=$(curl -s -D - -o /dev/null -H "$ck" "$base/api/rows" | grep -i "^Content-Type:" | tr -d '\r')
[[ "$ctype" == *application/json* ]] && ok "API answers are application/json" || bad "API type: $ctype"

# ---- methods, paths, sizes ----
is "POST" "$(code -X POST -H "$ck" -d x "$base/api/rows")" 405
is "PUT" "$(code -X PUT -H "$ck" -d x "$base/api/rows")" 405
is "path traversal" "$(code --path-as-is -H "$ck" "$base/../../etc/passwd")" 404
is "encoded traversal" "$(code --path-as-is -H "$ck" "$base/%2e%2e/%2e%2e/etc/passwd")" 404
is "exchange number with a NUL" "$(code -H "$ck" "$base/api/exchange/1%00")" 404
is "exchange number out of range" "$(code -H "$ck" "$base/api/exchange/99999999999999999999999")" 404
is "header section over 16 KiB" "$(code -H "$ck" -H "X-Pad: $(head -c 20000 /dev/zero | tr '\0' a)" "$base/api/rows")" 431
is "malformed request" "$(printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nBad Header\r\n\r\n' "$port" | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat >&3; head -1 <&3" | cut -d' ' -f2)" 400

# ---- the connection cap: idle sockets do not lock the page out for ever ----
exec_fds=()
for i in $(seq 1 70); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null && exec_fds+=("$fd")
done
sleep 0.3
got=$(code -H "$ck" "$base/api/summary")
is "${#exec_fds[@]} idle connections held: one more beyond the cap of 64 is closed" "$got" 000
for fd in "${exec_fds[@]}"; do exec {fd}>&-; done
for _ in $(seq 1 40); do got=$(code -H "$ck" "$base/api/summary"); [ "$got" = 200 ] && break; sleep 0.1; done
is "after they close, the page is served again" "$got" 200

# ---- two runs, two tokens ----
start b "$CAP"
[ "$token" != "$(head -1 "$tmp/a.out" | sed 's/.*token=//')" ] && ok "each run has its own token" || bad "same token twice"

# ---- a non-loopback listener: says so, token still needed ----
start c --listen 0.0.0.0:0 "$CAP"
grep -q "not a loopback address" "$tmp/c.err" && grep -q "needs the token" "$tmp/c.err" && ok "--listen 0.0.0.0: the warning names the exposure and the token" || bad "non-loopback warning: $(cat "$tmp/c.err")"
is "--listen 0.0.0.0: no token" "$(code "http://127.0.0.1:$port/api/rows")" 401
is "--listen 0.0.0.0: a DNS name as Host" "$(code -H "Cookie: et_token_$port=$token" -H "Host: attacker.example:$port" "http://127.0.0.1:$port/api/rows")" 421
is "--listen 0.0.0.0: an address as Host, with the token" "$(code -H "Cookie: et_token_$port=$token" "http://127.0.0.1:$port/api/rows")" 200
is "--listen 0.0.0.0: localhost is not ours there" "$(code -H "Cookie: et_token_$port=$token" -H "Host: localhost:$port" "http://127.0.0.1:$port/api/rows")" 421

# ---- bad listen addresses ----
"$E" web --listen nonsense "$CAP" >/dev/null 2>"$tmp/bad.err"
is "--listen nonsense: exit" "$?" 2
grep -q "bad listen address" "$tmp/bad.err" && ok "--listen nonsense: says why" || bad "bad listen message: $(cat "$tmp/bad.err")"

t_done

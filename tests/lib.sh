# The prelude every shell test script shares (tests/cli/*.sh, tests/security/*.sh), sourced
# first as
#   . "$(dirname "$0")/../lib.sh"
# It sets
#   here   the script's folder          root  the checkout
#   E      the binary: ET_EASTRACE, else build-test/cli/eastrace (the script ends at once with
#          "FAIL - no eastrace binary at E" and "0 passed, 1 failed" when it is missing)
#   tmp    a new directory, removed at exit
#   pids   background processes (pids+=($!)), killed at exit; a script that has more to undo
#          at exit defines t_on_exit, which runs first
# and the case helpers: ok NAME [FIGURE] / bad NAME [FIGURE] print "ok - NAME[: FIGURE]" /
# "FAIL - ..." and count; t_done prints "N passed, N failed" (the line test.sh and
# tests/security/run.sh read) and returns 1 after a failure, so a script ends with `t_done`.
# check NAME EXPECTED_EXIT COMMAND... (output in $tmp/out and $tmp/err), contains / lacks
# NAME FILE TEXT, har_valid NAME FILE (node-har-validator), free_port, wait_port PORT,
# wait_file FILE, web_api WEB-ARGS... -- API-PATH... (eastrace web started, queried, stopped).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E=${ET_EASTRACE:-$root/build-test/cli/eastrace}
tmp=$(mktemp -d)
pids=()
t_cleanup() {
  if declare -F t_on_exit >/dev/null; then t_on_exit; fi
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap t_cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1${2:+: $2}"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
t_done() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
[ -x "$E" ] || { echo "FAIL - no eastrace binary at $E"; echo "0 passed, 1 failed"; exit 1; }

check() { # check NAME EXPECTED_EXIT COMMAND...: output in $tmp/out, $tmp/err
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok "$name"; else
    bad "$name (exit $got, wanted $want)"; head -30 "$tmp/err" "$tmp/out"; fi
}
contains() { # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: '$3' not in $2"; head -40 "$2"; fi
}
lacks() { # lacks NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then bad "$1: '$3' found in $2"; grep -F -- "$3" "$2" | head -5
  else ok "$1"; fi
}
har_valid() { # har_valid NAME FILE: valid HAR 1.2 by Debian's node-har-validator
  if NODE_PATH=${NODE_PATH:-/usr/share/nodejs} node "$root/tests/cli/har-validate.js" "$2" >"$tmp/hv" 2>&1; then
    ok "$1"; else bad "$1"; cat "$tmp/hv"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
# web_api ARGS... -- PATH...: starts `eastrace web ARGS...` on a free loopback port, waits
# until it has read its inputs, prints each API PATH (the token appended), stops it.
web_api() {
  local args=() wport wpid url p sep
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  wport=$(free_port)
  "$E" web --listen "127.0.0.1:$wport" "${args[@]}" >"$tmp/web.url" 2>/dev/null &
  wpid=$!
  pids+=($wpid)
  wait_port "$wport"
  wait_file "$tmp/web.url" # it may listen before it prints the URL with the token
  url=$(head -1 "$tmp/web.url")
  for _ in $(seq 1 50); do
    curl -s "http://127.0.0.1:$wport/api/summary?token=${url##*token=}" | grep -q '"finished":true' && break
    sleep 0.1
  done
  for p in "$@"; do
    case $p in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -s "http://127.0.0.1:$wport$p${sep}token=${url##*token=}"
  done
  kill "$wpid" 2>/dev/null
  wait "$wpid" 2>/dev/null
}

#!/usr/bin/env bash
# The security battery: runs every case file in tests/security/ (each *.sh but run.sh and
# lib.sh), prints each case's line with its pass figure and a per-file count, and ends with
# "N passed, N failed" over all files. ./test.sh runs it after the CLI tests.
#   ET_EASTRACE        the binary (default build-test/cli/eastrace)
#   ET_SECURITY_LONG=1 the longer variants (bigger bombs, every split point, ...)
#   ET_SECURITY_ONLY   a glob of case file names to run (e.g. 'output_*')
# A case file sources lib.sh, prints "ok - NAME: FIGURE" / "FAIL - NAME: FIGURE" /
# "skip - NAME: REASON" per case and ends with its own "N passed, N failed" line; one that exits
# non-zero without such a line counts as one failure. Each file gets ET_SECURITY_TIMEOUT
# seconds (default 300, 1800 with ET_SECURITY_LONG=1).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export ET_EASTRACE=${ET_EASTRACE:-$root/build-test/cli/eastrace}
export ET_SECURITY_LONG=${ET_SECURITY_LONG:-0}
limit=${ET_SECURITY_TIMEOUT:-$([ "$ET_SECURITY_LONG" = 1 ] && echo 1800 || echo 300)}
only=${ET_SECURITY_ONLY:-*}
passed=0
failed=0
skipped=0
failures=()
start=$(date +%s)
for f in "$here"/*.sh; do
  base=$(basename "$f")
  case "$base" in run.sh | lib.sh) continue ;; esac
  # shellcheck disable=SC2254
  case "$base" in $only) ;; *) continue ;; esac
  echo "=== security: ${base%.sh}"
  log=$(mktemp)
  t0=$(date +%s)
  timeout "$limit" bash "$f" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
  p=0 n=0
  if [ -n "$line" ]; then p=$(cut -d' ' -f1 <<<"$line"); n=$(cut -d' ' -f3 <<<"$line"); fi
  if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
    n=1
    [ "$rc" -eq 124 ] && echo "FAIL - ${base%.sh}: timed out after ${limit} s" ||
      echo "FAIL - ${base%.sh}: exit $rc without a failing case"
  fi
  s=$(grep -c "^skip - " "$log")
  passed=$((passed + p)); failed=$((failed + n)); skipped=$((skipped + s))
  [ "$n" -eq 0 ] || failures+=("${base%.sh} ($n)")
  echo "--- ${base%.sh}: $p passed, $n failed, $s skipped, $(( $(date +%s) - t0 )) s"
  rm -f "$log"
done
echo
for x in "${failures[@]}"; do echo "FAILED: $x"; done
echo "security battery: $skipped skipped, $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# eastrace's test command: installs what is missing, then builds and runs every test:
#   1. the cmocka suites with warnings as errors,
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. every libFuzzer target for a short time (ET_FUZZ_SECONDS, default 20 s each),
#   4. the shell-level CLI tests (tests/cli/*.sh),
#   5. the security battery (tests/security/run.sh: quick cases; ET_SECURITY_LONG=1 for the
#      long ones).
# Options: --quick skips 2 and 3. Environment: ET_CORPUS_DIR overrides ../shared/corpus.
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/install-deps.sh test || exit 1
jobs=$(nproc)
passed=0
failed=0
failures=()

count_ctest() { # adds ctest's pass/fail counts from a log to the totals
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$1" | tail -1)
  [ -n "$line" ] || return 0
  local total fails
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  fails=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - fails))
  failed=$((failed + fails))
}

step() { # step NAME COMMAND...: runs a non-ctest step and counts it as one test
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

suite() { # suite NAME DIR BUILD_TYPE: configure, build with -Werror, run ctest
  local name=$1 dir=$2 type=$3 log
  echo "=== $name"
  log=$(mktemp)
  if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DET_WERROR=ON >"$log" 2>&1 &&
         cmake --build "$dir" -j"$jobs" >>"$log" 2>&1; }; then
    tail -60 "$log"; failed=$((failed + 1)); failures+=("$name: build"); rm -f "$log"; return
  fi
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failures+=("$name")
  count_ctest "$log"
  rm -f "$log"
}

suite "build + unit tests" build-test Debug
if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  suite "unit tests under ASan+UBSan" build-san Sanitize
  step "fuzz targets" scripts/run-fuzz.sh "${ET_FUZZ_SECONDS:-20}"
fi
# Shell-level tests print their own "N passed, N failed" line; their counts join the totals.
for t in tests/cli/*.sh; do
  [ -e "$t" ] || continue
  name="cli: $(basename "$t" .sh)"
  echo "=== $name"
  log=$(mktemp)
  env ET_EASTRACE="$root/build-test/cli/eastrace" bash "$t" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
  if [ -n "$line" ]; then
    passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
    failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
  fi
  if [ "$rc" -ne 0 ]; then
    failures+=("$name")
    [ -n "$line" ] || failed=$((failed + 1))
  fi
  rm -f "$log"
done

# The security battery (docs/security.md): each case prints its pass figure; the runner's last
# line is "N passed, N failed" like the CLI tests'.
echo "=== security battery"
log=$(mktemp)
env ET_EASTRACE="$root/build-test/cli/eastrace" bash tests/security/run.sh 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
if [ -n "$line" ]; then
  passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
  failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
fi
if [ "$rc" -ne 0 ]; then
  failures+=("security battery")
  [ -n "$line" ] || failed=$((failed + 1))
fi
rm -f "$log"

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]

#!/usr/bin/env bash
# eastrace's test command: installs what is missing, then builds and runs every test:
#   1. the cmocka suites with warnings as errors,
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. every libFuzzer target for a short time (ET_FUZZ_SECONDS, default 20 s each),
#   4. the shell-level CLI tests (tests/cli/*.sh).
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

step() { # step NAME COMMAND...: runs a step, counts it
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

build_and_ctest() { # build_and_ctest DIR BUILD_TYPE
  local dir=$1 type=$2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DET_WERROR=ON >/dev/null &&
    cmake --build "$dir" -j"$jobs" 2>&1 | grep -E "error|warning:|Error" ;
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900
}

step "build + unit tests" build_and_ctest build-test Debug
if [ $quick -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  step "unit tests under ASan+UBSan" build_and_ctest build-san Sanitize
  step "fuzz targets" scripts/run-fuzz.sh "${ET_FUZZ_SECONDS:-20}"
fi
for t in tests/cli/*.sh; do
  [ -e "$t" ] || continue
  step "cli: $(basename "$t" .sh)" env ET_EASTRACE="$root/build-test/cli/eastrace" bash "$t"
done

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

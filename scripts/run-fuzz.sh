#!/usr/bin/env bash
# Builds every libFuzzer target with clang (ASan+UBSan) and runs each for SECONDS (default 20),
# seeded from the fixtures of its area. A crash, leak or timeout fails the run; the input that
# caused it is kept in build-fuzz/findings/ to become a named regression fixture.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DET_FUZZ=ON -DET_BUILD_TESTS=OFF -DET_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$dir" -j"$(nproc)" > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }

# Seeds per target: fixture folders (missing ones are fine).
declare -A seeds=(
  [wbxml]="tests/fixtures/wbxml" [easquery]="tests/fixtures/eas" [http]="tests/fixtures/http"
  [capfile]="tests/fixtures/capture" [saz]="tests/fixtures/saz" [har]="tests/fixtures/har"
  [iis]="tests/fixtures/logs" [chrows]="tests/fixtures/logs" [mailboxlog]="tests/fixtures/logs" [proxy_framing]="tests/fixtures/proxy" [proxyproto]="tests/fixtures/proxyproto" [autodiscover]="tests/fixtures/probe"
  [output]="tests/fixtures/wbxml tests/fixtures/http"
  [pipeline]="tests/fixtures/timeline tests/fixtures/pipeline tests/fixtures/har")

mkdir -p "$dir/findings"
status=0
ran=0
for bin in "$dir"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  work=$(mktemp -d)
  # A fixed seed makes the run reproducible: a slower machine runs a prefix of the same
  # sequence. ET_FUZZ_SEED=0 lets libFuzzer pick one (exploration).
  args=(-seed="${ET_FUZZ_SEED:-1}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -artifact_prefix="$dir/findings/$name-" -print_final_stats=1)
  [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
  seed_dirs=()
  for s in ${seeds[$name]:-}; do [ -d "$s" ] && seed_dirs+=("$s"); done
  echo "--- fuzz_$name: ${secs}s"
  if "$bin" "${args[@]}" "$work" "${seed_dirs[@]}" > "$dir/fuzz_$name.log" 2>&1; then
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$dir/fuzz_$name.log" | tail -1
  else
    echo "fuzz_$name FAILED:"; grep -E "ERROR|SUMMARY|artifact" "$dir/fuzz_$name.log" | head -10
    status=1
  fi
  ran=$((ran + 1))
  rm -rf "$work"
done
echo "fuzz targets run: $ran"
[ $ran -gt 0 ] || { echo "no fuzz target was built" >&2; status=1; }
exit $status

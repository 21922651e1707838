#!/usr/bin/env bash
# A large generated capture streams in bounded memory (issue 4): bench_replay writes ~200 MB of
# realistic EAS traffic (with HTTP 500s, Sync Status 3 and SyncKey 0 loops, so findings pile
# up), then `eastrace replay` and `eastrace replay --json` must read every exchange with a peak
# RSS below a fixed bound, and no more than a little above their peak on a capture a quarter
# the size. Peak RSS comes from wait4() (bench_replay --measure), not from timing.
#
# ET_EASTRACE names the eastrace binary (test.sh sets it). The generator is ET_BENCH_REPLAY,
# else bench/bench_replay in the same build directory (built here when missing). Skipped under
# AddressSanitizer, whose shadow memory and quarantine make RSS meaningless.
. "$(dirname "$0")/../lib.sh"
BOUND_KIB=$((64 * 1024))   # fixed bound on peak RSS
GROWTH_KIB=$((4 * 1024))   # allowed growth from the quarter-size capture to the full one
SIZE=200M
finish() { t_done; exit $?; }

bdir=$(cd "$(dirname "$E")/.." && pwd)
if grep -qa "__asan_init" "$E" 2>/dev/null || { ldd "$E" 2>/dev/null | grep -q libasan; }; then
  echo "SKIP - $E is built with AddressSanitizer: peak RSS says nothing about replay's own memory"
  finish
fi
G=${ET_BENCH_REPLAY:-$bdir/bench/bench_replay}
if [ ! -x "$G" ] && [ -z "${ET_BENCH_REPLAY:-}" ] && [ -f "$bdir/CMakeCache.txt" ]; then
  cmake --build "$bdir" --target bench_replay -j2 >/dev/null 2>&1
fi
if [ ! -x "$G" ]; then
  # ET_BUILD_BENCH=OFF builds no generator; anything else is a broken build.
  if grep -q "^ET_BUILD_BENCH:BOOL=OFF" "$bdir/CMakeCache.txt" 2>/dev/null; then
    echo "SKIP - benchmarks not built (ET_BUILD_BENCH=OFF): no capture generator"
    finish
  fi
  bad "capture generator not found at $G (set ET_BENCH_REPLAY)"
  finish
fi

big=$tmp/big.etcap
small=$tmp/quarter.etcap
if ! "$G" --size "$SIZE" "$big" 2>"$tmp/gen.txt"; then
  bad "generating $SIZE capture"; cat "$tmp/gen.txt"; finish
fi
"$G" --size 50M --seed 2 "$small" 2>"$tmp/gen-small.txt" || { bad "generating quarter"; finish; }
want=$(sed -nE 's/.* bytes, ([0-9]+) exchanges.*/\1/p' "$tmp/gen.txt")
echo "# $(cat "$tmp/gen.txt")"

# run LABEL FILE ARGS...: replay, exit status 0 or 1 (findings), peak RSS into $rss
rss=0
run() {
  local label=$1 file=$2; shift 2
  local r wall cpu rc
  r=$("$G" --measure "$E" replay "$@" "$file")
  read -r wall cpu rss rc <<<"$r"
  echo "# $label: ${wall}s wall, ${cpu}s CPU, peak RSS ${rss} KiB, exit $rc"
  if [ "$rc" -le 1 ]; then ok "$label exits 0 or 1"; else bad "$label exit $rc"; fi
}

for mode in timeline json; do
  args=(--no-color)
  [ $mode = json ] && args=(--json)
  run "$mode quarter" "$small" "${args[@]}"
  small_rss=$rss
  run "$mode $SIZE" "$big" "${args[@]}"
  if [ "$rss" -gt 0 ] && [ "$rss" -lt "$BOUND_KIB" ]; then
    ok "$mode of $SIZE peaks below $((BOUND_KIB / 1024)) MiB ($rss KiB)"
  else
    bad "$mode of $SIZE peaks at $rss KiB, bound $BOUND_KIB KiB"
  fi
  if [ "$rss" -le $((small_rss + GROWTH_KIB)) ]; then
    ok "$mode memory does not grow with the capture ($small_rss KiB -> $rss KiB)"
  else
    bad "$mode memory grew from $small_rss KiB to $rss KiB with 4x the capture"
  fi
done

# Every exchange was read and judged: the summary counts them all, and findings were made.
"$E" replay --json "$big" >"$tmp/out.jsonl" 2>"$tmp/err.txt"
got=$(tail -1 "$tmp/out.jsonl" | sed -nE 's/.*"exchanges":([0-9]+).*/\1/p')
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "replay read all $want exchanges"
else
  bad "replay summary says ${got:-nothing} exchanges, generator wrote ${want:-?}"
fi
lines=$(($(wc -l <"$tmp/out.jsonl") - 1))
if [ "$lines" = "$want" ]; then ok "one JSON line per exchange"; else
  bad "$lines JSON lines for $want exchanges"; fi
for rule in http-status sync-status synckey-reset-loop; do
  if grep -q "\"rule\":\"$rule\"" "$tmp/out.jsonl"; then ok "findings include $rule"; else
    bad "no $rule finding in the generated traffic"; fi
done
if [ -s "$tmp/err.txt" ]; then bad "replay wrote to stderr"; head -5 "$tmp/err.txt"; else
  ok "no read errors"; fi
finish

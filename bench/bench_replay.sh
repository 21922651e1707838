#!/usr/bin/env bash
# Replay throughput and peak memory (issue 4, "Benchmark"): generates an eastrace capture of
# realistic EAS traffic (bench_replay, default 1 GiB) and one a quarter of its size, then runs
# `eastrace replay FILE` and `eastrace replay --json FILE` on each (stdout to /dev/null),
# measuring wall time, CPU time and peak RSS of the child with wait4(), interleaved with the
# peer `cat FILE` (the page-cache read ceiling, measured in the same run).
# Prints MB/s (10^6 bytes of capture per second) to timeline and to JSON, each as a fraction of
# cat's, and the peak RSS at both sizes with their ratio (memory must not grow with the file).
#
#   usage: bench/bench_replay.sh [--size SIZE] [--runs N] [BUILD_DIR]
#          SIZE as bench_replay takes it (1G, 512M, ...); BUILD_DIR defaults to build-bench
#          (configured and built here when it has no eastrace yet). Generated files live in
#          BUILD_DIR/bench-replay/ and are deleted at the end.
#
# Measured (RelWithDebInfo, 2 shared cores, 1 GiB = 106,961 exchanges, mean of 3 runs):
#   timeline 820 MB/s wall (825 MB/s per CPU second), JSON 607 MB/s (679 per CPU second);
#   cat 7239 MB/s from the page cache. Peak RSS 7.4 / 7.2 MiB (timeline, full / quarter),
#   7.0 / 7.0 MiB (JSON). Profile (perf, JSON): no single hot spot; kernel copy from the page
#   cache 8%, capture CRC32C 5%, page faults 5%, memmove/memset/memchr 3% each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
size=1G
runs=3
build=
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
build=${build:-$root/build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
E=$build/cli/eastrace
G=$build/bench/bench_replay
if [ ! -x "$E" ] || [ ! -x "$G" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target eastrace bench_replay -j2 >/dev/null
fi
work=$build/bench-replay
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
big=$work/replay-big.etcap
small=$work/replay-quarter.etcap
quarter=$(awk -v s="$size" 'BEGIN {
  n = s + 0; u = substr(s, length(s)); m = 1
  if (u == "K" || u == "k") m = 1024; else if (u == "M" || u == "m") m = 1048576
  else if (u == "G" || u == "g") m = 1073741824
  printf "%d", n * m / 4 }')

echo "generating $size and $quarter bytes of EAS traffic in $work"
"$G" --size "$size" "$big"
"$G" --size "$quarter" --seed 2 "$small"

# measure LABEL FILE CMD...: prints one result line and remembers the numbers.
declare -A sum_wall sum_cpu max_rss
measure() {
  local label=$1 file=$2; shift 2
  local bytes r wall cpu rss rc
  bytes=$(stat -c %s "$file")
  r=$("$G" --measure "$@")
  read -r wall cpu rss rc <<<"$r"
  if [ "$rc" -gt 1 ]; then echo "$label: exit $rc" >&2; exit 1; fi
  printf "  %-22s %8.1f MB/s wall %8.1f MB/s cpu  %7.3f s  peak RSS %7.1f MiB\n" "$label" \
    "$(awk -v b="$bytes" -v t="$wall" 'BEGIN{print b/t/1e6}')" \
    "$(awk -v b="$bytes" -v t="$cpu" 'BEGIN{print (t>0)?b/t/1e6:0}')" "$wall" \
    "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
  sum_wall[$label]=$(awk -v a="${sum_wall[$label]:-0}" -v b="$wall" 'BEGIN{print a+b}')
  sum_cpu[$label]=$(awk -v a="${sum_cpu[$label]:-0}" -v b="$cpu" 'BEGIN{print a+b}')
  [ "$rss" -gt "${max_rss[$label]:-0}" ] && max_rss[$label]=$rss
  return 0
}

cat "$big" "$small" >/dev/null # page cache warm for everyone, so cat is a fair ceiling
for f in big quarter; do
  file=$big; [ $f = quarter ] && file=$small
  echo "$f capture: $(stat -c %s "$file") bytes"
  for ((i = 1; i <= runs; i++)); do
    echo " run $i"
    measure "cat $f" "$file" cat "$file"
    measure "timeline $f" "$file" "$E" replay --no-color "$file"
    measure "json $f" "$file" "$E" replay --json "$file"
  done
done

mbs() { awk -v b="$1" -v t="$2" -v n="$runs" 'BEGIN{printf "%.1f", b*n/t/1e6}'; }
bb=$(stat -c %s "$big")
echo
echo "summary (mean over $runs runs, big capture $bb bytes)"
cat_mbs=$(mbs "$bb" "${sum_wall[cat big]}")
for k in timeline json; do
  w=$(mbs "$bb" "${sum_wall[$k big]}")
  c=$(mbs "$bb" "${sum_cpu[$k big]}")
  printf "  %-8s %8s MB/s wall (%s of cat's %s MB/s), %8s MB/s per CPU second\n" "$k" "$w" \
    "$(awk -v a="$w" -v b="$cat_mbs" 'BEGIN{printf "%.3f", a/b}')" "$cat_mbs" "$c"
done
for k in timeline json; do
  a=${max_rss[$k big]}
  b=${max_rss[$k quarter]}
  printf "  %-8s peak RSS %.1f MiB (full) vs %.1f MiB (quarter): ratio %.2f\n" "$k" \
    "$(awk -v k="$a" 'BEGIN{print k/1024}')" "$(awk -v k="$b" 'BEGIN{print k/1024}')" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')"
done
echo "  target: >= 200 MB/s, peak RSS independent of the capture's size (ratio ~1)"

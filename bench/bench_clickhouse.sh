#!/bin/sh
# The ClickHouse engine against the local report over the same generated IIS log:
#   load: eastrace iis LOG --load URL (MB/s, rows/s, the loader's peak memory)
#   query: eastrace iis --engine URL --report R, for several reports, against
#          eastrace iis LOG --report R (the local pass), each output compared byte-for-byte.
#   bench/bench_clickhouse.sh [EASTRACE] [MEGABYTES]      (default 300 MB)
# A private clickhouse-server (scripts/clickhouse-test-server.sh) runs on loopback for the
# duration and is removed at the end. The log is generated once by bench/gen_iislog.c (the
# generator of bench_iis.sh). With BENCH_LOCK=FILE every timed command runs under
# flock FILE (the project's CPU lock on a shared machine).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
eastrace=${1:-$root/build/cli/eastrace}
mb=${2:-300}
work=${BENCH_DIR:-${TMPDIR:-/tmp}/eastrace-bench-ch}
mkdir -p "$work"
log=$work/u_ex160901.log
if [ ! -s "$log" ] || [ "$(stat -c %s "$log")" -lt $((mb * 1000000)) ] ||
   [ "$(stat -c %s "$log")" -gt $((mb * 1000000 + 2000000)) ]; then
    cc -O2 -o "$work/gen_iislog" "$here/gen_iislog.c"
    echo "generating $mb MB log ..." >&2
    "$work/gen_iislog" "$log" "$mb" 5000
fi
size=$(stat -c %s "$log")
chdir=$work/server
"$root/scripts/clickhouse-test-server.sh" stop "$chdir" 2>/dev/null || true
"$root/scripts/clickhouse-test-server.sh" start "$chdir"
trap '"$root/scripts/clickhouse-test-server.sh" stop "$chdir"' EXIT INT TERM
. "$chdir/env"
url=$CH_URL/bench

lock() { if [ -n "${BENCH_LOCK:-}" ]; then flock "$BENCH_LOCK" "$@"; else "$@"; fi; }
# timed FILE CMD...: runs CMD (under the lock), its seconds (lock wait excluded) in FILE.
timed() {
    tf=$1; shift
    lock sh -c 'a=$(date +%s.%N); "$@"; rc=$?; b=$(date +%s.%N);
                echo "$a $b" | awk "{ print \$2 - \$1 }" >&3; exit $rc' sh "$@" 3>"$tf"
}
cat "$log" > /dev/null  # warm the page cache

# Load. /usr/bin/time (when present) gives the loader's peak RSS.
tv=""
[ -x /usr/bin/time ] && tv="/usr/bin/time -f %M -o $work/load.rss"
timed "$work/load.s" $tv "$eastrace" iis --no-progress "$log" --load "$url" 2> "$work/load.err" ||
    { cat "$work/load.err" >&2; exit 1; }
rows=$(curl -s --data-binary "SELECT count() FROM bench.eas_requests" "http://127.0.0.1:$CH_HTTP_PORT/")
disk=$(curl -s --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'bench' AND active" "http://127.0.0.1:$CH_HTTP_PORT/")
rss=$(cat "$work/load.rss" 2>/dev/null || echo "?")
# ClickHouse merges parts in the background after a load; let it settle before timing queries.
sleep 2

awk -v s="$size" -v l="$(cat "$work/load.s")" -v r="$rows" -v d="$disk" -v m="$rss" 'BEGIN {
    printf "input             %.0f MB, %d EAS rows (page cache)\n", s / 1e6, r
    printf "load              %.2f s  %.1f MB/s  %.0f rows/s  loader peak RSS %s KiB\n", l, s / 1e6 / l, r / l, m
    printf "stored            %.1f MB in ClickHouse (%.1fx smaller than the log)\n", d / 1e6, s / d
}'
printf "%-18s %10s %10s %8s  %s\n" "report" "local s" "engine s" "speedup" "same output"
for spec in "hits --csv" "hits --json" "errors --json" "synckey0 --json" "top --json" \
            "eas-errors --json" "hits --hourly --csv"; do
    set -- $spec
    r=$1; shift
    timed "$work/local.s" "$eastrace" iis --no-progress --no-findings --report "$r" "$@" "$log" \
        > "$work/local.out"
    timed "$work/engine.s" "$eastrace" iis --no-findings --engine "$url" --report "$r" "$@" \
        > "$work/engine.out"
    if cmp -s "$work/local.out" "$work/engine.out"; then same=yes; else same=NO; fi
    awk -v n="$r $*" -v l="$(cat "$work/local.s")" -v e="$(cat "$work/engine.s")" -v same="$same" 'BEGIN {
        printf "%-18s %10.2f %10.2f %7.1fx  %s\n", n, l, e, l / e, same }'
done

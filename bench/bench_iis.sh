#!/bin/sh
# IIS log hits report: eastrace iis --csv against an awk script computing the same per-device
# counts (hits, Ping, Sync, FolderSync) over the same generated multi-GB log, in one run.
#   bench/bench_iis.sh [EASTRACE] [MEGABYTES]
# The log is generated once (bench/gen_iislog.c) and read from the page cache by both tools,
# each run once to warm the cache and then timed. Prints MB/s of each and the ratio.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
eastrace=${1:-$here/../build/cli/eastrace}
mb=${2:-3000}
work=${BENCH_DIR:-${TMPDIR:-/tmp}/eastrace-bench-iis}
mkdir -p "$work"
log=$work/u_ex160901.log
if [ ! -s "$log" ] || [ "$(stat -c %s "$log")" -lt $((mb * 1000000)) ]; then
    cc -O2 -o "$work/gen_iislog" "$here/gen_iislog.c"
    echo "generating $mb MB log ..." >&2
    "$work/gen_iislog" "$log" "$mb" 5000
fi
size=$(stat -c %s "$log")

awk_prog='
$5 ~ /^\/Microsoft-Server-ActiveSync/ {
    q = $6; dev = ""; cmd = ""
    n = split(q, kv, "&")
    for (i = 1; i <= n; i++) {
        if (substr(kv[i], 1, 9) == "DeviceId=") dev = substr(kv[i], 10)
        else if (substr(kv[i], 1, 4) == "Cmd=") cmd = substr(kv[i], 5)
    }
    hits[dev]++
    if (cmd == "Ping") ping[dev]++
    else if (cmd == "Sync") sync[dev]++
    else if (cmd == "FolderSync") fs[dev]++
}
END { for (d in hits) printf "%s,%d,%d,%d,%d\n", d, hits[d], ping[d], sync[d], fs[d] }'

now() { date +%s.%N; }
cat "$log" > /dev/null  # warm the page cache

t0=$(now)
"$eastrace" iis --csv --no-progress "$log" > "$work/eastrace.csv"
t1=$(now)
LC_ALL=C awk "$awk_prog" "$log" > "$work/awk.csv"
t2=$(now)

# Same answer? Compare DeviceID,Hits,Ping,Sync,FolderSync.
tail -n +2 "$work/eastrace.csv" | tr -d '\r' | cut -d, -f1-5 | sort > "$work/e.sorted"
sort "$work/awk.csv" > "$work/a.sorted"
if cmp -s "$work/e.sorted" "$work/a.sorted"; then same=yes; else same=NO; fi

awk -v s="$size" -v a="$t0" -v b="$t1" -v c="$t2" -v same="$same" 'BEGIN {
    e = (b - a); k = (c - b)
    printf "input           %.0f MB (page cache)\n", s / 1e6
    printf "eastrace iis    %.2f s  %.0f MB/s\n", e, s / 1e6 / e
    printf "awk             %.2f s  %.0f MB/s\n", k, s / 1e6 / k
    printf "ratio           %.1fx (eastrace / awk)\n", k / e
    printf "same counts     %s\n", same
}'

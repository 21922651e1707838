#!/bin/sh
# IIS log hits report: eastrace iis --csv against an awk script computing the same per-device
# counts (hits, Ping, Sync, FolderSync) over the same generated multi-GB log, in one run; then
# the outputs that carry the analyzer's findings (the default table, --html, --json: the same
# single pass plus the findings) on the same log, each as a share of --csv's throughput
# (issue 11 asks for >= 80%).
#   bench/bench_iis.sh [EASTRACE] [MEGABYTES]
# The log is generated once (bench/gen_iislog.c) and read from the page cache by every run.
# Each eastrace output is run BENCH_RUNS times (default 3) and its best time is kept, the
# machine being shared. Prints MB/s of each, the ratio to awk and each output's share of --csv.
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

runs=${BENCH_RUNS:-3}
# best_of FILE ARGS...: the best wall time of $runs runs of eastrace iis ARGS (output to FILE)
best_of() {
    out=$1; shift
    best=
    i=0
    while [ "$i" -lt "$runs" ]; do
        a=$(now)
        "$eastrace" iis --no-progress "$@" "$log" > "$out"
        b=$(now)
        best=$(awk -v a="$a" -v b="$b" -v best="$best" 'BEGIN {
            t = b - a; if (best == "" || t < best) best = t; printf "%.4f", best }')
        i=$((i + 1))
    done
    echo "$best"
}
t_csv=$(best_of "$work/eastrace.csv" --csv)
t1=$(now)
LC_ALL=C awk "$awk_prog" "$log" > "$work/awk.csv"
t2=$(now)
t_table=$(best_of "$work/eastrace.txt")
t_html=$(best_of "$work/eastrace.html" --html)
t_json=$(best_of "$work/eastrace.json" --json)

# Same answer? Compare DeviceID,Hits,Ping,Sync,FolderSync.
tail -n +2 "$work/eastrace.csv" | tr -d '\r' | cut -d, -f1-5 | sort > "$work/e.sorted"
sort "$work/awk.csv" > "$work/a.sorted"
if cmp -s "$work/e.sorted" "$work/a.sorted"; then same=yes; else same=NO; fi

awk -v s="$size" -v e="$t_csv" -v k="$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')" \
    -v tt="$t_table" -v th="$t_html" -v tj="$t_json" -v same="$same" 'BEGIN {
    printf "input              %.0f MB (page cache)\n", s / 1e6
    printf "eastrace iis --csv %.2f s  %.0f MB/s\n", e, s / 1e6 / e
    printf "awk                %.2f s  %.0f MB/s\n", k, s / 1e6 / k
    printf "ratio              %.1fx (eastrace --csv / awk)\n", k / e
    printf "same counts        %s\n", same
    printf "table (findings)   %.2f s  %.0f MB/s  %.0f%% of --csv\n", tt, s / 1e6 / tt, 100 * e / tt
    printf "--html (findings)  %.2f s  %.0f MB/s  %.0f%% of --csv\n", th, s / 1e6 / th, 100 * e / th
    printf "--json (findings)  %.2f s  %.0f MB/s  %.0f%% of --csv\n", tj, s / 1e6 / tj, 100 * e / tj
}'

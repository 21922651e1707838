#!/usr/bin/env bash
# Runs the shared EAS capture-proxy bench (../shared/bench-harness beside the checkout) against
# `eastrace proxy` doing its real job: recording every exchange with -w FILE and printing the
# live view (to the harness's log of the proxy). In one run it measures eastrace against each
# peer in turn, in the harness's ratio mode (interleaved points): by default squid ssl-bump
# (which records nothing) and mitmdump -w (which writes every flow to disk). The harness is
# copied into the build directory because it writes results, certificates and a build there.
#
# usage: bench/bench_proxy.sh [BUILD_DIR] [-- harness flags...]
#   BUILD_DIR defaults to build-proxy (must hold cli/eastrace, built in RelWithDebInfo).
#   Default points: keep-alive c=10, 2 KB and 100 KB, 3 s each (+1 s warm-up); harness flags
#   given after -- come later and win, e.g.
#     bench/bench_proxy.sh build-proxy -- --conc 1,10,50 --newconn-conc 10 --hold 1000
#     bench/bench_proxy.sh build-proxy -- --duration 4 --repeat 3
#   Environment:
#     ET_BENCH_PEERS   peers, in order (harness presets)       [squid mitmdump-w]
#     ET_BENCH_RECORD  0: eastrace without -w and --quiet (the relay alone)   [1]
#     ET_BENCH_HARNESS the harness to copy                    [../shared/bench-harness]
# eastrace's CA loader tightens a CA key to 0600, which would lock squid (user proxy) out of
# the shared certs/mitm-ca.key, so eastrace gets its own copy of the key. The capture files
# grow by ~300 MB/s at 100 KB: each is removed when its run ends.
# Prints the harness's tables per peer, then one line per point: proxy CPU us/request of
# eastrace and of every peer (the figure issue 11 sets targets for), with req/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-proxy}
[ "$#" -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case "$build" in /*) ;; *) build="$root/$build" ;; esac
src=${ET_BENCH_HARNESS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench-harness}
bin="$build/cli/eastrace"
[ -x "$bin" ] || { echo "no $bin: build the eastrace target first" >&2; exit 1; }
[ -d "$src" ] || { echo "no bench harness at $src (set ET_BENCH_HARNESS)" >&2; exit 1; }
dst="$build/bench-harness"
if [ ! -d "$dst" ]; then
  mkdir -p "$dst"
  cp -r "$src"/. "$dst"/
  chmod -R u+w "$dst"
fi
peers=(${ET_BENCH_PEERS:-squid mitmdump-w})
record=${ET_BENCH_RECORD:-1}
cd "$dst"
# 10 000 held connections need ~2 fds each in the proxy and the client: raise the hard limit
# when allowed (root); run.sh then raises the soft limit to it.
ulimit -Hn 65536 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$record" = 1 ]; then
  mode="-w run/eastrace-{port}.cap"
  name=eastrace-w
else
  mode="--quiet"
  name=eastrace
fi
cmd="mkdir -p run && install -m 600 certs/mitm-ca.key run/eastrace-ca-{port}.key && \
rm -f run/eastrace-{port}.cap && \
exec $bin proxy --listen 127.0.0.1:{port} --ca-cert certs/mitm-ca.pem \
--ca-key run/eastrace-ca-{port}.key --upstream-ca certs/origin-ca.pem --allow-target localhost \
--allow-target 127.0.0.1 --allow-target ::1 $mode"
defaults=(--conc 10 --sizes 2k,100k --newconn-conc 0 --uniqsni-conc 0 --hold 0 --duration 3
          --warmup 1)
stamp=$(date +%Y%m%d-%H%M%S)
jsons=()
cleanup() { rm -f run/eastrace-*.cap; }
trap cleanup EXIT
for peer in "${peers[@]}"; do
  json="results/$stamp-$name-vs-$peer.json"
  jsons+=("$json")
  # Ports picked now, not fixed: other benchmarks and tests may run beside this one.
  ./run.sh --proxy-cmd "$cmd" --ca certs/mitm-ca.pem --name "$name" \
    --version-cmd "$bin --version" --vs-preset "$peer" \
    --origin-port "$(free_port)" --status-port "$(free_port)" --proxy-port "$(free_port)" \
    --json "$json" "${defaults[@]}" "$@"
  cleanup
done

# One line per point: eastrace and every peer, from the runs above.
python3 - "$name" "${jsons[@]}" <<'EOF'
import json, statistics, sys
name, paths = sys.argv[1], sys.argv[2:]
rows, order, peers = {}, [], []
for p in paths:
    d = json.load(open(p))
    for r in d["runs"]:
        if r.get("failed") or r["target"] == "direct":
            continue
        key = r["scenario"]
        if key not in order:
            order.append(key)
        if r["target"] != name and r["target"] not in peers:
            peers.append(r["target"])
        rows.setdefault((key, r["target"]), []).append(r)
def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
print()
print(f"proxy CPU us/request (req/s), median over every run of each point; {name} ran once per peer")
hdr = f"{'scenario':<16}{name:>20}" + "".join(f"{p:>20}" for p in peers)
print(hdr)
print("-" * len(hdr))
for key in order:
    cells = []
    for t in [name] + peers:
        rs = rows.get((key, t), [])
        us = med([r.get("proxy_cpu_us_per_req") for r in rs])
        rps = med([r["result"]["rps"] for r in rs])
        cells.append(f"{us:,.0f} ({rps:,.0f})" if us is not None else "-")
    print(f"{key:<16}" + "".join(f"{c:>20}" for c in cells))
EOF

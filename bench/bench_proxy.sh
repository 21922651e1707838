#!/usr/bin/env bash
# Runs the shared EAS capture-proxy bench (../shared/bench-harness beside the checkout) against
# `eastrace proxy`, in ratio mode against a peer (default squid ssl-bump). The harness is
# copied into the build directory because it writes results, certificates and a build there.
#
# usage: bench/bench_proxy.sh [BUILD_DIR] [-- harness flags...]
#   BUILD_DIR defaults to build-proxy (must hold cli/eastrace, built in RelWithDebInfo).
#   Examples:
#     bench/bench_proxy.sh build-proxy -- --quick
#     bench/bench_proxy.sh build-proxy -- --vs-preset mitmdump
#     bench/bench_proxy.sh build-proxy -- --vs-preset squid --hold 1000,10000
# eastrace's CA loader tightens a CA key to 0600, which would lock squid (user proxy) out of
# the shared certs/mitm-ca.key, so eastrace gets its own copy of the key.
# Prints the harness's table: req/s, latency, proxy CPU us/request, RSS per held connection.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-proxy}
[ "$#" -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case "$build" in /*) ;; *) build="$root/$build" ;; esac
src=${ET_BENCH_HARNESS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench-harness}
bin="$build/cli/eastrace"
[ -x "$bin" ] || { echo "no $bin: build the eastrace target first" >&2; exit 1; }
dst="$build/bench-harness"
if [ ! -d "$dst" ]; then
  mkdir -p "$dst"
  cp -r "$src"/. "$dst"/
  chmod -R u+w "$dst"
fi
args=("$@")
have_vs=0
for a in "${args[@]}"; do case "$a" in --vs-preset|--vs-proxy-cmd|--preset) have_vs=1 ;; esac; done
[ "$have_vs" = 1 ] || args+=(--vs-preset squid)
cd "$dst"
# 10 000 held connections need ~2 fds each in the proxy and the client: raise the hard limit
# when allowed (root); run.sh then raises the soft limit to it.
ulimit -Hn 65536 2>/dev/null || true
exec ./run.sh \
  --proxy-cmd "mkdir -p run && install -m 600 certs/mitm-ca.key run/eastrace-ca-{port}.key && \
exec $bin proxy --listen 127.0.0.1:{port} --ca-cert certs/mitm-ca.pem \
--ca-key run/eastrace-ca-{port}.key --upstream-ca certs/origin-ca.pem --allow-target localhost \
--allow-target 127.0.0.1 --allow-target ::1 --quiet --no-record" \
  --ca certs/mitm-ca.pem --name eastrace --version-cmd "$bin --version" "${args[@]}"

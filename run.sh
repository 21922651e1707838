#!/usr/bin/env bash
# eastrace's main command: installs what is missing, builds, and runs eastrace.
#   ./run.sh                 start the capture proxy on 127.0.0.1:8888 (eastrace proxy), recording
#                            to a new file in ~/.local/state/eastrace/captures (path printed)
#   ./run.sh decode FILE...  any other eastrace command and its options
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh build
build=${ET_BUILD_DIR:-build}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DET_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target eastrace -j"$(nproc)" >/dev/null
[ $# -eq 0 ] && set -- proxy
exec "$build/cli/eastrace" "$@"

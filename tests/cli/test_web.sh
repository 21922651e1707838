#!/usr/bin/env bash
# The session browser (eastrace web, export --html) in real headless Chromium, driven over the
# DevTools protocol by tests/web/test_browser.js (Node, no npm package): load, count rows
# against replay, open an exchange and compare its XML with show, filters against replay's,
# sort, keys, devices and findings views, hostile values, the export file, and the server's
# token / Host / Origin refusals. ET_EASTRACE names the binary (test.sh sets it);
# ET_BENCH_REPLAY the capture generator (default: beside it in build-test/bench).
. "$(dirname "$0")/../lib.sh"
E=$(cd "$(dirname "$E")" && pwd)/$(basename "$E")
G=${ET_BENCH_REPLAY:-$(dirname "$(dirname "$E")")/bench/bench_replay}
[ -x "$G" ] || { echo "FAIL - no capture generator at $G (cmake --build ... --target bench_replay)"; echo "0 passed, 1 failed"; exit 1; }
command -v node >/dev/null || { echo "FAIL - node is not installed (scripts/install-deps.sh test)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "${ET_CHROMIUM:-/usr/bin/chromium}" ] || { echo "FAIL - chromium is not installed (scripts/install-deps.sh test)"; echo "0 passed, 1 failed"; exit 1; }
ET_EASTRACE=$E ET_BENCH_REPLAY=$G node "$root/tests/web/test_browser.js"

#!/usr/bin/env bash
# Installs the Debian 12 packages eastrace builds, tests and benchmarks with, when missing.
# Usage: scripts/install-deps.sh [build|test|bench]   (each level includes the previous one)
set -euo pipefail

level=${1:-build}
pkgs_build=(build-essential cmake pkg-config libssl-dev openssl libuv1-dev zlib1g-dev libzip-dev
            node-llhttp libjansson-dev)
pkgs_test=(libcmocka-dev clang libclang-rt-14-dev curl libwbxml2-dev libwbxml2-utils unzip
           python3
           # the security battery's exposure cases: a guest namespace, nmap http-open-proxy
           iproute2 nmap
           # validates every HAR the tests export against the HAR 1.2 schema (tests/cli/har-validate.js)
           nodejs node-har-validator
           # the session browser's tests: real headless Chromium driven from Node (tests/web)
           chromium
           # the real EAS server of the `sogo` test group (tests/probe, scripts/sogo-test-server.sh)
           sogo sogo-activesync postgresql memcached dovecot-imapd nginx-light
           # the ClickHouse engine of `eastrace iis` (tests/cli/test_clickhouse.sh,
           # scripts/clickhouse-test-server.sh; never started as a service)
           clickhouse-server clickhouse-client)
pkgs_bench=(nginx libnginx-mod-http-echo mitmproxy squid-openssl tinyproxy gawk)

want=("${pkgs_build[@]}")
case "$level" in
  build) ;;
  test) want+=("${pkgs_test[@]}") ;;
  bench) want+=("${pkgs_test[@]}" "${pkgs_bench[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "eastrace: installing missing Debian packages: ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "eastrace: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Servers installed for tests and benchmarks (nginx, squid, ...) must not start as services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

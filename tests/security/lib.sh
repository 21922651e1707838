# Shared helpers for the security battery's case files (tests/security/*.sh), sourced as
#   . "$(dirname "$0")/lib.sh"
# A case file runs its cases and prints one line per case:
#   ok - NAME: FIGURE        the case passed; FIGURE is what was measured against its pass figure
#   FAIL - NAME: FIGURE      the case failed
#   skip - NAME: REASON      the case could not run here (counted as neither)
# and ends with sec_done, which prints "N passed, N failed" (run.sh adds those up).
# Environment: ET_EASTRACE (the binary), ET_SECURITY_LONG=1 (the long variants),
# ET_CORPUS_DIR (the public samples, optional).
# The prelude (root, E, tmp, pids, ok / bad NAME FIGURE, free_port, wait_port, ...) is
# tests/lib.sh's; this file's lacks FILE TEXT (a test for verdict) replaces its lacks case.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
sec_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FX=$root/tests/fixtures
CORPUS=${ET_CORPUS_DIR:-$root/../shared/corpus}
LONG=${ET_SECURITY_LONG:-0}

skip() { echo "skip - $1: $2"; }
# verdict NAME FIGURE TEST...: ok or FAIL by the exit status of TEST
verdict() {
  local name=$1 fig=$2; shift 2
  if "$@"; then ok "$name" "$fig"; else bad "$name" "$fig"; fi
}
sec_done() { t_done; }

# measure OUT ERR COMMAND...: runs COMMAND with its output in OUT and ERR, under a 1 GiB
# address-space limit and a 30 s timeout (so a case that regresses fails instead of taking the
# machine down). Sets m_rc (exit status; 124 timeout, >128 a signal), m_secs (wall seconds) and
# m_mib (peak resident MiB).
sec_vmem_kib=${ET_SECURITY_VMEM_KIB:-1048576}
measure() {
  local out=$1 err=$2; shift 2
  local tf="$tmp/.time.$$"
  ( ulimit -v "$sec_vmem_kib"; exec /usr/bin/time -f '%e %M' -o "$tf" timeout 30 "$@" ) \
    >"$out" 2>"$err"
  m_rc=$?
  local t
  t=$(tail -1 "$tf" 2>/dev/null)
  m_secs=$(cut -d' ' -f1 <<<"$t")
  m_mib=$(( $(cut -d' ' -f2 <<<"$t" | tr -dc 0-9 | sed 's/^$/0/') / 1024 ))
  [ -n "$m_secs" ] || m_secs=0
  # /usr/bin/time reports a signal as "Command terminated by signal N" first.
  grep -q "terminated by signal" "$tf" 2>/dev/null && [ "$m_rc" -lt 128 ] && m_rc=139
  rm -f "$tf"
}
# within SECS MIB: true when the last measure stayed within both and did not crash or time out
within() {
  [ "$m_rc" -lt 124 ] && awk -v s="$m_secs" -v l="$1" 'BEGIN { exit !(s <= l) }' &&
    [ "$m_mib" -le "$2" ]
}
fig() { echo "exit $m_rc, ${m_secs} s, ${m_mib} MiB"; }

# ctl_count FILE...: raw terminal control bytes in the files: C0 except TAB, LF and a CR right
# before LF (the scrubber's ET_SCRUB_LINES policy), DEL, C1 as UTF-8 (C2 80..C2 9F) and C1 as
# raw bytes 0x80..0x9F outside a valid UTF-8 sequence.
ctl_count() {
  cat "$@" | perl -0777 -ne '
    my $n = 0;
    while (/\xc2[\x80-\x9f]|\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|(\r\n|[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3})|[\x80-\x9f]/g) {
      $n++ unless defined $1;
    }
    print "$n\n";'
}
# has FILE TEXT / lacks FILE TEXT: fixed-string tests for verdict
has() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }

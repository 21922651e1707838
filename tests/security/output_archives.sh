#!/usr/bin/env bash
# Hostile archives and HAR files (issue 9 item 1): every reader must end within 2 s and
# 256 MiB with a clear error naming the file and the entry, never crash or write a file.
. "$(dirname "$0")/lib.sh"
G="python3 $sec_here/gen.py"
REQ=$tmp/req.txt
printf 'POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=d1&DeviceType=t HTTP/1.1\r\nHost: mail.example.com\r\nContent-Length: 0\r\n\r\n' >"$REQ"
printf 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' >"$tmp/resp.txt"
mkdir -p "$tmp/cwd/a/b" && cd "$tmp/cwd/a/b" # where an extracting reader would write

# Path traversal, absolute and drive-letter names: the archive is refused and nothing is
# written outside (or inside) the working directory.
for name in ../../evil_c.txt /tmp/evil_c.txt 'C:/evil_c.txt' 'raw\..\..\evil_c.txt' \
            raw/../../raw/01_c.txt; do
  $G saz "$tmp/trav.saz" "raw/01_c.txt=$REQ" "raw/01_s.txt=$tmp/resp.txt" "$name=$REQ"
  for cmd in replay show; do
    args=("$tmp/trav.saz"); [ $cmd = show ] && args+=(1)
    measure "$tmp/o" "$tmp/e" "$E" $cmd "${args[@]}"
    verdict "saz entry name '$name' refused by $cmd" \
      "$(fig); pass: exit 2, error names the entry, < 2 s" \
      eval '[ "$m_rc" -eq 2 ] && has "$tmp/e" "trav.saz" && grep -qi "unsafe\|traversal\|absolute\|drive\|backslash" "$tmp/e" && within 2 256'
  done
done
[ -z "$(find "$tmp/cwd" -name '*evil*')" ] && [ ! -e /tmp/evil_c.txt ] && ok "no file written by traversal names" "none found" ||
  bad "no file written by traversal names" "evil_c.txt exists"

# A truncated zip (cut in its central directory, then in the middle of an entry).
$G saz "$tmp/good.saz" "raw/01_c.txt=$REQ" "raw/01_s.txt=$tmp/resp.txt"
size=$(stat -c %s "$tmp/good.saz")
for cut in 30 $((size / 2)) $((size - 10)); do
  head -c "$cut" "$tmp/good.saz" >"$tmp/cut.saz"
  measure "$tmp/o" "$tmp/e" "$E" replay "$tmp/cut.saz"
  verdict "truncated saz ($cut of $size bytes)" "$(fig); pass: exit 2, names the file, < 2 s" \
    eval '[ "$m_rc" -eq 2 ] && has "$tmp/e" "cut.saz" && within 2 256'
done

# An archive declaring more entries than a .saz may have (90,000): refused before libzip
# allocates per entry.
n=$([ "$LONG" = 1 ] && echo 400000 || echo 100000)
$G saz-many "$tmp/many.saz" "$n"
measure "$tmp/o" "$tmp/e" "$E" replay "$tmp/many.saz"
verdict "saz with $n entries" "$(fig); pass: exit 2, 'entries' named, < 2 s, < 256 MiB" \
  eval '[ "$m_rc" -eq 2 ] && has "$tmp/e" "entries" && within 2 256'

# export writes its output to a new temporary file (O_EXCL) next to OUT and renames it over OUT:
# an OUT that is a symlink planted to another file (a shared directory) is replaced as a link,
# the file it pointed at is never written; a hostile input after a good one leaves OUT as it
# was and no temporary file.
for fmt in har saz html; do
  mkdir -p "$tmp/exp.$fmt"
  echo precious >"$tmp/exp.$fmt/victim"
  ln -s "$tmp/exp.$fmt/victim" "$tmp/exp.$fmt/out"
  measure "$tmp/o" "$tmp/e" "$E" export "$tmp/good.saz" --$fmt "$tmp/exp.$fmt/out"
  verdict "export --$fmt over a symlink replaces the link, not its target" \
    "$(fig); pass: exit 0, the pointed-at file unchanged, OUT a regular file, no temporary file" \
    eval '[ "$m_rc" -eq 0 ] && [ "$(cat "$tmp/exp.$fmt/victim")" = precious ] && [ -f "$tmp/exp.$fmt/out" ] && [ ! -L "$tmp/exp.$fmt/out" ] && [ "$(ls "$tmp/exp.$fmt" | wc -l)" -eq 2 ]'
  cp "$tmp/exp.$fmt/out" "$tmp/exp.$fmt/before"
  measure "$tmp/o" "$tmp/e" "$E" export "$tmp/good.saz" "$tmp/many.saz" --$fmt "$tmp/exp.$fmt/out"
  verdict "export --$fmt with a hostile input after a good one keeps the old output" \
    "$(fig); pass: exit 2, OUT byte for byte, no temporary file, < 2 s" \
    eval '[ "$m_rc" -eq 2 ] && cmp -s "$tmp/exp.$fmt/out" "$tmp/exp.$fmt/before" && [ "$(ls "$tmp/exp.$fmt" | wc -l)" -eq 3 ] && within 2 256'
done

sec_done

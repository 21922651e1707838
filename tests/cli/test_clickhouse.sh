#!/usr/bin/env bash
# The ClickHouse engine of `eastrace iis` against a real clickhouse-server (Debian's 18.16)
# started on 127.0.0.1 by scripts/clickhouse-test-server.sh (private config, ports picked at
# run time, temporary data): the fixture logs (Exchange 2003 to 2019 layouts, base64 queries,
# front end + back end, hostile values) are loaded with --load, then every report in every
# format computed with --engine must be byte-for-byte the local report over the same logs.
# Also: incremental loads, several batches, .gz, --print-schema run on the server, --since/
# --until, SQL injection through values and options, a two-shard cluster behind Distributed
# tables (sharded by device), and the clear errors (bad URL, server down, not ClickHouse,
# another schema, no table). ET_EASTRACE names the binary.
. "$(dirname "$0")/../lib.sh"
FX=$root/tests/fixtures/logs
t_on_exit() {
  "$root/scripts/clickhouse-test-server.sh" stop "$tmp/ch" 2>/dev/null
  [ -n "${hpid:-}" ] && kill "$hpid" 2>/dev/null
  [ -n "${mpid:-}" ] && kill "$mpid" 2>/dev/null
}
# same NAME LOCAL-ARGS -- ENGINE-ARGS: both outputs byte-for-byte equal (and not empty)
same() {
  local name=$1; shift
  local largs=() eargs=()
  while [ "$1" != "--" ]; do largs+=("$1"); shift; done
  shift
  eargs=("$@")
  "$E" iis "${largs[@]}" >"$tmp/local" 2>"$tmp/local.err"
  local lrc=$?
  "$E" iis "${eargs[@]}" >"$tmp/engine" 2>"$tmp/engine.err"
  local erc=$?
  if [ "$lrc" -ne 0 ] || [ "$erc" -ne 0 ]; then
    bad "$name (exit local $lrc, engine $erc)"; head -5 "$tmp/local.err" "$tmp/engine.err"
  elif [ ! -s "$tmp/local" ]; then
    bad "$name (empty output)"
  elif cmp -s "$tmp/local" "$tmp/engine"; then
    ok "$name"
  else
    bad "$name (outputs differ)"; diff "$tmp/local" "$tmp/engine" | head -10
  fi
}

if ! "$root/scripts/clickhouse-test-server.sh" start "$tmp/ch" 2>"$tmp/start.err"; then
  echo "FAIL - no ClickHouse server: $(cat "$tmp/start.err")"
  echo "0 passed, 1 failed"
  exit 1
fi
. "$tmp/ch/env"
U=$CH_URL
chq() { curl -s --data-binary "$1" "http://127.0.0.1:$CH_HTTP_PORT/"; }

# ---- load every fixture, then every report in every format ---------------------------
LOGS=()
for f in "$FX"/iis-*.log; do LOGS+=("$f"); done
check "load the fixture logs" 0 "$E" iis "${LOGS[@]}" --load "$U/fx"
contains "load says what it loaded" "$tmp/err" "EAS requests from ${#LOGS[@]} file(s)"
n=$(chq "SELECT count() FROM fx.eas_requests")
want=$("$E" iis "${LOGS[@]}" --site both --json --no-findings | python3 -c 'import json,sys; print(json.load(sys.stdin)["eas"])')
[ "$n" = "$want" ] && ok "one row per EAS line ($n)" || bad "one row per EAS line ($n rows, local $want)"
b64=$(chq "SELECT countIf(query_base64 = 1 AND device_id != '' AND cmd != '') FROM fx.eas_requests")
[ "${b64:-0}" -ge 3 ] && ok "base64 queries decoded into typed columns ($b64)" || bad "base64 queries decoded ($b64)"
typed=$(chq "SELECT count() FROM fx.eas_requests WHERE heartbeat = 1680 AND cmd_kind = 'Ping' AND eas_status = 2")
[ "$typed" = 1 ] && ok "Log= items as typed columns (Hb, S)" || bad "Log= items as typed columns ($typed)"

for r in hits errors synckey0 syncs-by-synckey sendmail eas-errors rpc top calendar; do
  for f in "" --csv --json --html; do
    same "report $r ${f:-table}" "${LOGS[@]}" --no-findings --report "$r" $f -- \
      --engine "$U/fx" --no-findings --report "$r" $f
  done
done
for o in "--hourly" "--interval 600" "--top 3" "--minimum-hits 3" "--date 2011-05-06" \
         "--date 05-06-2011 --report errors" "--device applDNPX1" "--site backend" \
         "--site both" "--report device-timeline --device ApplDNPX1" "--report top --hourly" \
         "--report rpc --rpc-count 10 --rpc-latency 50" "--report syncs-by-synckey --site both"; do
  # shellcheck disable=SC2086
  same "options $o (json)" "${LOGS[@]}" --no-findings $o --json -- --engine "$U/fx" --no-findings $o --json
done
same "--since/--until is --date" "${LOGS[@]}" --no-findings --date 2024-05-01 --html -- \
  --engine "$U/fx" --no-findings --since 2024-05-01T00:00:00Z --until 2024-05-02T00:00:00Z --html

# ---- findings: what the engine says about them ----------------------------------------
check "engine report with findings" 0 "$E" iis --engine "$U/fx"
contains "findings table names the local pass" "$tmp/out" "the local pass: eastrace iis LOG..."
check "engine findings in JSON" 0 "$E" iis --engine "$U/fx" --json
contains "names the pattern rules" "$tmp/out" "synckey-reset-loop"
contains "points at the SQL report of their facts" "$tmp/out" "--report eas-errors"
contains "and says so on stderr" "$tmp/err" "findings need the local pass"

# ---- loads in steps, several batches, .gz ---------------------------------------------
check "load one file" 0 "$E" iis "$FX/iis-ex2010-sync-ping-errors.log" --load "$U/inc"
for f in "" --csv --json --html; do
  same "an Exchange 2010 layout alone ${f:-table}" "$FX/iis-ex2010-sync-ping-errors.log" --no-findings $f -- \
    --engine "$U/inc" --no-findings $f
done
check "then two more, 3 rows per batch" 0 "$E" iis "$FX/iis-ex2016-base64-query-windowsmail.log" \
  "$FX/iis-ex2019-no-log-tokens.log" --load "$U/inc" --batch-rows 3
contains "several batches" "$tmp/err" "3 batches"
same "incremental loads equal one pass" "$FX/iis-ex2010-sync-ping-errors.log" \
  "$FX/iis-ex2016-base64-query-windowsmail.log" "$FX/iis-ex2019-no-log-tokens.log" --no-findings --json -- \
  --engine "$U/inc" --no-findings --json
check "the same files again" 0 "$E" iis "$FX/iis-ex2010-sync-ping-errors.log" \
  "$FX/iis-ex2016-base64-query-windowsmail.log" --load "$U/inc"
contains "are skipped" "$tmp/err" "skipped 2 file(s) loaded before (same name and size)"
contains "nothing loaded twice" "$tmp/err" "loaded 0 EAS requests"
same "still one pass" "$FX/iis-ex2010-sync-ping-errors.log" \
  "$FX/iis-ex2016-base64-query-windowsmail.log" "$FX/iis-ex2019-no-log-tokens.log" --no-findings --json -- \
  --engine "$U/inc" --no-findings --json
head -8 "$FX/iis-ex2010-sync-ping-errors.log" >"$tmp/u_ex110506.log"
check "a log being written" 0 "$E" iis "$tmp/u_ex110506.log" --load "$U/grow"
tail -n +9 "$FX/iis-ex2010-sync-ping-errors.log" >>"$tmp/u_ex110506.log"
check "the same log, grown" 0 "$E" iis "$tmp/u_ex110506.log" --load "$U/grow"
contains "says its earlier rows are in twice" "$tmp/err" "loaded before with another size"
gzip -c "$FX/iis-ex2016-fields-change-frontend-backend.log" >"$tmp/fe-be.log.gz"
check "load a .gz" 0 "$E" iis "$tmp/fe-be.log.gz" --load "$U/gz"
same "a .gz log" "$tmp/fe-be.log.gz" --no-findings --report errors -- --engine "$U/gz" --no-findings --report errors

# ---- the printed schema is the one eastrace checks -------------------------------------
check "print the schema" 0 "$E" iis --print-schema --engine "$U/sch"
cp "$tmp/out" "$tmp/schema.sql"
contains "schema has the typed Log= columns" "$tmp/schema.sql" "sync_key Int64"
if clickhouse-client --port "$CH_TCP_PORT" --multiquery <"$tmp/schema.sql" 2>"$tmp/cc.err"; then
  ok "the printed schema runs on the server"
else
  bad "the printed schema runs on the server: $(head -3 "$tmp/cc.err")"
fi
check "load into tables made from the printed schema" 0 "$E" iis "$FX/iis-ex2003-iis6.log" --load "$U/sch"

# ---- hostile values: no SQL, TSV or CSV injection -------------------------------------
H=$FX/iis-hostile-values-sql-tsv-csv.log
check "load hostile values" 0 "$E" iis "$H" --load "$U/evil"
for r in hits synckey0 sendmail eas-errors top; do
  same "hostile values, report $r" "$H" --no-findings --report "$r" --json -- --engine "$U/evil" --no-findings --report "$r" --json
done
same "hostile values, CSV" "$H" --no-findings --csv -- --engine "$U/evil" --no-findings --csv
nt=$(chq "SELECT count() FROM system.tables WHERE database = 'evil'")
[ "$nt" = 2 ] && ok "the tables survive a DROP TABLE in a value" || bad "tables in evil: $nt"
dev=$(chq "SELECT device_id FROM evil.eas_requests WHERE line = 5 FORMAT TSVRaw")
[ "$dev" = "EVIL'\\\\'1" ] && ok "quotes and backslashes stored as logged" || bad "device stored as '$dev'"
same "a quote in --device" "$H" --no-findings --device "x' OR '1'='1" --json -- \
  --engine "$U/evil" --no-findings --device "x' OR '1'='1" --json

# ---- a cluster: two shards behind Distributed tables (docs/scale-out.md) ----------------
check "print the schema of the shards' local tables" 0 "$E" iis --print-schema --engine "$U/shard1?table=eas_requests_local"
cp "$tmp/out" "$tmp/local.sql"
sed 's/shard1\./shard2./g; s/EXISTS shard1;/EXISTS shard2;/' "$tmp/local.sql" >"$tmp/local2.sql"
if clickhouse-client --port "$CH_TCP_PORT" --multiquery <"$tmp/local.sql" 2>"$tmp/cc.err" &&
   clickhouse-client --port "$CH_TCP_PORT" --multiquery <"$tmp/local2.sql" 2>>"$tmp/cc.err"; then
  ok "local tables on both shards"
else
  bad "local tables on both shards: $(head -3 "$tmp/cc.err")"
fi
chq "CREATE DATABASE eas" >/dev/null
chq "CREATE TABLE eas.eas_requests AS shard1.eas_requests_local ENGINE = Distributed(eastrace_two_shards, '', eas_requests_local, cityHash64(lower(device_id)))" >"$tmp/d1"
chq "CREATE TABLE eas.eas_requests_files AS shard1.eas_requests_local_files ENGINE = Distributed(eastrace_two_shards, '', eas_requests_local_files, rand())" >"$tmp/d2"
[ ! -s "$tmp/d1" ] && [ ! -s "$tmp/d2" ] && ok "Distributed tables" || bad "Distributed tables: $(cat "$tmp/d1" "$tmp/d2")"
check "load through the Distributed table" 0 "$E" iis "${LOGS[@]}" --load "$U/eas" --batch-rows 10
# A Distributed INSERT reaches its shards in the background.
want=$(chq "SELECT count() FROM fx.eas_requests")
for _ in $(seq 100); do
  got=$(chq "SELECT (SELECT count() FROM shard1.eas_requests_local) + (SELECT count() FROM shard2.eas_requests_local)")
  gotf=$(chq "SELECT (SELECT count() FROM shard1.eas_requests_local_files) + (SELECT count() FROM shard2.eas_requests_local_files)")
  [ "$got" = "$want" ] && [ "$gotf" = "${#LOGS[@]}" ] && break
  sleep 0.1
done
[ "$got" = "$want" ] && ok "every row reached a shard ($got)" || bad "rows on the shards: $got of $want"
s1=$(chq "SELECT uniqExact(lower(device_id)) FROM shard1.eas_requests_local")
s2=$(chq "SELECT uniqExact(lower(device_id)) FROM shard2.eas_requests_local")
both=$(chq "SELECT count() FROM (SELECT DISTINCT lower(device_id) AS d FROM shard1.eas_requests_local) ANY INNER JOIN (SELECT DISTINCT lower(device_id) AS d FROM shard2.eas_requests_local) USING d")
[ "${s1:-0}" -gt 0 ] && [ "${s2:-0}" -gt 0 ] && [ "$both" = 0 ] &&
  ok "sharded by device: $s1 and $s2 devices, none on both" || bad "sharding: $s1 / $s2 devices, $both on both"
for r in hits errors synckey0 syncs-by-synckey sendmail eas-errors rpc top calendar; do
  same "cluster: report $r" "${LOGS[@]}" --no-findings --report "$r" --json -- --engine "$U/eas" --no-findings --report "$r" --json
done
for f in "" --csv --html; do
  same "cluster: hits ${f:-table}" "${LOGS[@]}" --no-findings $f -- --engine "$U/eas" --no-findings $f
done

# ---- clear errors ----------------------------------------------------------------------
check "a URL that is not clickhouse://" 2 "$E" iis --engine "http://127.0.0.1:$CH_HTTP_PORT/fx"
contains "says the form" "$tmp/err" "must start with clickhouse://"
check "a bad database name" 2 "$E" iis --engine "$U/no-such;db"
contains "says what a name may hold" "$tmp/err" "letters, digits and _"
check "a password in the URL" 2 "$E" iis --engine "clickhouse://u:secret@127.0.0.1:$CH_HTTP_PORT/fx"
contains "points at CLICKHOUSE_PASSWORD" "$tmp/err" "CLICKHOUSE_PASSWORD"
check "a database without the table" 2 "$E" iis --engine "$U/nothing_loaded"
contains "says to load first" "$tmp/err" "load logs first"
chq "CREATE DATABASE other" >/dev/null
chq "CREATE TABLE other.eas_requests (time DateTime('UTC'), device String) ENGINE = Memory" >/dev/null
check "a table of another schema (report)" 2 "$E" iis --engine "$U/other"
contains "names the column" "$tmp/err" "has another schema: column 2 is 'device String'"
check "a table of another schema (load)" 2 "$E" iis "$H" --load "$U/other"
contains "load refuses it too" "$tmp/err" "has another schema"
n=$(chq "SELECT count() FROM other.eas_requests")
[ "$n" = 0 ] && ok "nothing written into the other table" || bad "rows in the other table: $n"
check "ClickHouse's native port is not the HTTP interface" 2 "$E" iis --engine "clickhouse://127.0.0.1:$CH_TCP_PORT/fx"
contains "says which port to use" "$tmp/err" "HTTP"
mkdir "$tmp/www"
python3 -m http.server 0 --bind 127.0.0.1 --directory "$tmp/www" >"$tmp/http.out" 2>&1 &
hpid=$!
for _ in $(seq 50); do hp=$(grep -o 'port [0-9]*' "$tmp/http.out" | head -1 | cut -d' ' -f2); [ -n "$hp" ] && break; sleep 0.1; done
if [ -n "${hp:-}" ]; then
  check "a web server that is not ClickHouse" 2 "$E" iis --engine "clickhouse://127.0.0.1:$hp/fx"
  contains "says it is not ClickHouse" "$tmp/err" "not ClickHouse's HTTP interface"
else
  bad "python3 -m http.server did not start"
fi
# A server that accepts and never answers: the wait is bounded.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' >"$tmp/mute.port" 2>/dev/null &
mpid=$!
for _ in $(seq 50); do [ -s "$tmp/mute.port" ] && break; sleep 0.1; done
check "a server that never answers" 2 env EASTRACE_CH_QUERY_TIMEOUT=1 "$E" iis --engine "clickhouse://127.0.0.1:$(cat "$tmp/mute.port")/fx"
contains "says it timed out" "$tmp/err" "timed out waiting for an answer"
kill "$mpid" 2>/dev/null
"$root/scripts/clickhouse-test-server.sh" stop "$tmp/ch"
check "the server is down" 2 "$E" iis --engine "$U/fx"
contains "says connection refused" "$tmp/err" "connection refused"
check "load with the server down" 2 "$E" iis "$H" --load "$U/fx"
contains "load says so too" "$tmp/err" "cannot connect to 127.0.0.1 port $CH_HTTP_PORT"
check "--mail-to with --engine" 2 "$E" iis --engine "$U/fx" --mail-to a@example.com --smtp 127.0.0.1
contains "says to mail the local report or a file" "$tmp/err" "--mail-to works on the local report only"
check "--since without --engine" 2 "$E" iis "$H" --since 2024-01-01
contains "points at --date" "$tmp/err" "--date"

t_done

#!/usr/bin/env bash
# `eastrace iis --mail-to ... --smtp ...` against a real SMTP server on 127.0.0.1 (Python's
# stdlib smtpd, tests/logs/smtp_server.py): the mail arrives with its recipients, subject, the
# HTML report as the message and the CSV attached; a refused recipient, a bad password, a
# missing STARTTLS and an unreachable port each fail with a clear error and a non-zero exit.
# ET_EASTRACE names the binary (test.sh sets it). Skips (passes nothing, fails nothing) when
# python3 has no smtpd module.
. "$(dirname "$0")/../lib.sh"
LOG=$root/tests/fixtures/logs/iis-ex2010-sync-ping-errors.log

if ! python3 -W ignore -c "import smtpd" 2>/dev/null; then
  echo "skip - python3 has no smtpd module (needs Python <= 3.11)"
  echo "0 passed, 0 failed"
  exit 0
fi

mkdir "$tmp/srv"
python3 "$root/tests/logs/smtp_server.py" "$tmp/srv" 2>"$tmp/server.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/srv/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/srv/port" 2>/dev/null)
[ -n "$port" ] || { echo "FAIL - SMTP server did not start"; cat "$tmp/server.err"; echo "0 passed, 1 failed"; exit 1; }
S=127.0.0.1:$port
nmsg() { ls "$tmp/srv" | grep -c '\.eml$'; }

# ---- a report arrives ----
"$E" iis --html "$LOG" >"$tmp/want.html" 2>/dev/null
"$E" iis --csv "$LOG" >"$tmp/want.csv" 2>/dev/null
check "mail the hits report" 0 "$E" iis --mail-to ops@example.com,lead@example.com \
  --mail-from reports@example.org --smtp "$S" "$LOG"
contains "says where it went" "$tmp/err" "mailed the report to 2 recipient(s)"
[ -s "$tmp/out" ] && bad "nothing on stdout without -o or a format" || ok "nothing on stdout without -o or a format"
if [ "$(nmsg)" -eq 1 ]; then ok "one message arrived"; else bad "one message arrived ($(nmsg))"; fi
contains "envelope sender" "$tmp/srv/msg-1.env" "from reports@example.org"
contains "first recipient" "$tmp/srv/msg-1.env" "rcpt ops@example.com"
contains "second recipient" "$tmp/srv/msg-1.env" "rcpt lead@example.com"
cat >"$tmp/parse.py" <<'EOF'
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print("subject:", m["Subject"])
print("to:", m["To"])
print("from:", m["From"])
print("type:", m.get_content_type())
for i, p in enumerate(m.iter_parts()):
    print("part%d: %s %s %s" % (i, p.get_content_type(), p.get_content_disposition(),
                                 p.get_filename()))
    open("%s.part%d" % (sys.argv[1], i), "wb").write(p.get_payload(decode=True))
EOF
python3 "$tmp/parse.py" "$tmp/srv/msg-1.eml" >"$tmp/parsed" 2>&1
contains "subject names the report" "$tmp/parsed" "subject: eastrace IIS report (hits): 15 EAS requests, 3 devices"
contains "To header" "$tmp/parsed" "to: ops@example.com, lead@example.com"
contains "From header" "$tmp/parsed" "from: reports@example.org"
contains "multipart/mixed" "$tmp/parsed" "type: multipart/mixed"
contains "HTML part first, inline" "$tmp/parsed" "part0: text/html inline None"
contains "CSV attached" "$tmp/parsed" "part1: text/csv attachment eastrace-iis-hits.csv"
if cmp -s "$tmp/srv/msg-1.eml.part0" "$tmp/want.html"; then ok "HTML part is the --html report"; else bad "HTML part is the --html report"; fi
if cmp -s "$tmp/srv/msg-1.eml.part1" "$tmp/want.csv"; then ok "CSV attachment is the --csv report"; else bad "CSV attachment is the --csv report"; fi
contains "CSV has the script's columns" "$tmp/srv/msg-1.eml.part1" "DeviceID,Hits,Ping,Sync,FolderSync,DeviceType,User-Agent"
for f in "$tmp/srv/msg-1.eml"; do
  if awk 'length($0) > 998 { exit 1 }' "$f"; then ok "no line over 998 octets"; else bad "no line over 998 octets"; fi
done

# ---- -o and a format still write the file; another report kind and subject ----
check "mail + -o" 0 "$E" iis --report errors --csv -o "$tmp/errors.csv" --mail-to ops@example.com \
  --mail-subject "weekly EAS errors" --smtp "$S" "$LOG"
contains "-o file written" "$tmp/errors.csv" "InvalidContent"
python3 "$tmp/parse.py" "$tmp/srv/msg-2.eml" >"$tmp/parsed2" 2>&1
contains "custom subject" "$tmp/parsed2" "subject: weekly EAS errors"
contains "attachment named for the report" "$tmp/parsed2" "eastrace-iis-errors.csv"

# ---- AUTH (loopback allows it without TLS) ----
check "AUTH with SMTP_PASSWORD" 0 env SMTP_PASSWORD='s3cret pw' "$E" iis --mail-to ops@example.com \
  --smtp-user alice --smtp "$S" "$LOG"
contains "server saw AUTH" "$tmp/srv/commands.log" "AUTH (redacted)"
echo 's3cret pw' >"$tmp/pw"
check "AUTH with --smtp-password-file" 0 "$E" iis --mail-to ops@example.com --smtp-user alice \
  --smtp-password-file "$tmp/pw" --smtp "$S" "$LOG"
n_before=$(nmsg)
check "wrong password exits 2" 2 env SMTP_PASSWORD='wrong' "$E" iis --mail-to ops@example.com \
  --smtp-user alice --smtp "$S" "$LOG"
contains "wrong password: SMTP code and text" "$tmp/err" "refused AUTH PLAIN: 535 5.7.8 Authentication credentials invalid"
lacks "password not echoed" "$tmp/err" "wrong"
check "--smtp-password refused" 2 "$E" iis --mail-to ops@example.com --smtp-user alice \
  --smtp-password x --smtp "$S" "$LOG"
contains "says why" "$tmp/err" "no password on the command line"
check "--smtp-user without a password" 2 env -u SMTP_PASSWORD "$E" iis --mail-to ops@example.com \
  --smtp-user alice --smtp "$S" "$LOG"

# ---- refusals and failures ----
check "refused recipient exits 2" 2 "$E" iis --mail-to ops@example.com,refuse-me@example.com \
  --smtp "$S" "$LOG"
contains "refused recipient named with code and text" "$tmp/err" \
  "refused RCPT TO:<refuse-me@example.com>: 550 5.1.1"
if [ "$(nmsg)" -eq "$n_before" ]; then ok "nothing delivered after refusals"; else bad "nothing delivered after refusals"; fi
check "STARTTLS required but not offered" 2 "$E" iis --mail-to ops@example.com \
  --smtp-starttls required --smtp "$S" "$LOG"
contains "says STARTTLS is missing" "$tmp/err" "does not offer STARTTLS (required)"
freeport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
check "unreachable port exits 2" 2 "$E" iis --mail-to ops@example.com --smtp-timeout 5 \
  --smtp "127.0.0.1:$freeport" "$LOG"
contains "unreachable port: clear error" "$tmp/err" "cannot connect to 127.0.0.1 port $freeport: connection refused"
check "--mail-to without --smtp" 2 "$E" iis --mail-to ops@example.com "$LOG"
check "bad --smtp-starttls" 2 "$E" iis --mail-to a@b --smtp "$S" --smtp-starttls maybe "$LOG"
check "address with a newline refused" 2 "$E" iis --mail-to "$(printf 'a@b\r\nRCPT TO:<x@y>')" --smtp "$S" "$LOG"
contains "bad address named" "$tmp/err" "bad recipient address"

t_done

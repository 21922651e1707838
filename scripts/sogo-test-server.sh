#!/bin/bash
# A real Exchange ActiveSync server on loopback for the tests: SOGo (sogo, sogo-activesync)
# with a private PostgreSQL cluster, memcached and dovecot, behind nginx with TLS from a test CA.
#
#   scripts/sogo-test-server.sh start DIR   starts everything; writes DIR/env (shell variables)
#   scripts/sogo-test-server.sh stop DIR    stops everything started in DIR and removes DIR
#
# It installs nothing (the test command installs the packages) and changes nothing outside DIR:
# no service is enabled, every daemon gets a private config in DIR and listens on 127.0.0.1 only.
# A failed start stops what it had started and removes DIR. Exit status 0 when the server
# answers OPTIONS through TLS; else 1 with the reason on stderr.
#
# DIR/env defines:
#   SOGO_URL          https://localhost:PORT/Microsoft-Server-ActiveSync (certificate matches)
#   SOGO_WRONG_URL    https://localhost:PORT2/Microsoft-Server-ActiveSync (certificate for
#                     wrong.example.test)
#   SOGO_HTTPS_PORT, SOGO_WRONG_PORT, SOGO_HTTP_PORT (sogod itself, plain HTTP)
#   SOGO_CA           the test CA certificate (PEM)
#   SOGO_USER, SOGO_PASSWORD   t1 / t1pass
set -u

die() { echo "sogo-test-server: $*" >&2; exit 1; }

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# pick_port VAR: a TCP port on 127.0.0.1 that nothing listens on (a refused connect through
# bash's /dev/tcp) and that this run has not handed out yet. No subshell: $RANDOM and the list
# of ports given out must persist between calls.
# Ports come from below the kernel's ephemeral range: a busy machine's outgoing connections
# hold ephemeral ports that a connect test cannot see but that make bind() fail.
USED_PORTS=" "
EPH_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "${EPH_LOW:-0}" -gt 12000 ] 2>/dev/null || EPH_LOW=32768
pick_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (EPH_LOW - 10000) ))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    fail "no free port on 127.0.0.1"
}

# Runs a command as user $1 (when root) or as ourselves.
as_user() {
    local u=$1; shift
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$u" -- "$@"
    else
        "$@"
    fi
}

need() {
    local missing=""
    for f in "$@"; do
        [ -x "$f" ] || missing="$missing $f"
    done
    [ -z "$missing" ] || die "missing programs:$missing (install the Debian packages: sogo sogo-activesync postgresql memcached dovecot-imapd nginx-light openssl)"
}

wait_tcp() { # port seconds
    local i
    for i in $(seq 1 $(( $2 * 5 ))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

descendants() { local p; for p in $(pgrep -P "$1" 2>/dev/null); do echo "$p"; descendants "$p"; done; }

stop_all() {
    local dir=$1
    [ -d "$dir" ] || return 0
    for pf in "$dir"/nginx/nginx.pid "$dir"/sogo/sogo.pid "$dir"/memcached.pid; do
        if [ -s "$pf" ]; then
            kill "$(cat "$pf")" 2>/dev/null
        fi
    done
    # sogod forks workers and may take its time over SIGTERM: wait, then kill the parent and
    # its own children (by parent pid, nothing broader).
    for pf in "$dir/sogo/sogo.pid" "$dir/sogo/launcher.pid"; do
        [ -s "$pf" ] || continue
        local sp; sp=$(cat "$pf")
        local kids; kids=$(descendants "$sp")
        kill "$sp" 2>/dev/null
        for i in $(seq 1 15); do kill -0 "$sp" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$sp" $kids 2>/dev/null
    done
    if [ -f "$dir/dovecot/dovecot.conf" ]; then
        local dp=""
        [ -s "$dir/dovecot/run/master.pid" ] && dp=$(cat "$dir/dovecot/run/master.pid")
        /usr/sbin/dovecot -c "$dir/dovecot/dovecot.conf" stop >/dev/null 2>&1 || \
            { [ -n "$dp" ] && kill "$dp" 2>/dev/null; }
        for i in $(seq 1 25); do [ -n "$dp" ] && kill -0 "$dp" 2>/dev/null || break; sleep 0.2; done
    fi
    if [ -f "$dir/pg/data/postmaster.pid" ]; then
        as_user "$PGUSER_RUN" "$PGBIN/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1
    fi
    sleep 0.3
    rm -rf "$dir"
}

cmd=${1:-}
DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || die "usage: $0 start|stop DIR"
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
if [ "$(id -u)" = 0 ]; then PGUSER_RUN=postgres; SOGO_RUN=sogo; else PGUSER_RUN=$(id -un); SOGO_RUN=$(id -un); fi

if [ "$cmd" = stop ]; then
    stop_all "$DIR"
    exit 0
fi
[ "$cmd" = start ] || die "usage: $0 start|stop DIR"

need "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/psql" /usr/sbin/sogod /usr/bin/memcached \
     /usr/sbin/dovecot /usr/sbin/nginx /usr/bin/openssl
[ -d /usr/lib/GNUstep/SOGo/ActiveSync.SOGo ] || die "SOGo's ActiveSync module is missing (install sogo-activesync)"
[ ! -e "$DIR" ] || die "$DIR exists; stop it first or pick another directory"

mkdir -p "$DIR" || die "cannot create $DIR"
chmod 755 "$DIR"
# The daemons run as postgres and sogo: every parent of DIR must let them through.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$DIR"; then
    rmdir "$DIR" 2>/dev/null
    die "$DIR is not reachable by the postgres user (a parent directory is private: chmod 755 it)"
fi
fail() {
    echo "sogo-test-server: $*" >&2
    echo "sogo-test-server: start failed; last log lines:" >&2
    tail -n 25 "$DIR"/sogo/sogo.log "$DIR"/sogo/sogo.out "$DIR"/nginx/error.log "$DIR"/pg/log "$DIR"/pg/initdb.log \
        "$DIR"/dovecot/dovecot.log "$DIR"/memcached.log >&2 2>/dev/null
    # SOGO_KEEP_ON_FAIL=1 leaves DIR and the daemons for a post-mortem (then run stop).
    [ "${SOGO_KEEP_ON_FAIL:-0}" = 1 ] || stop_all "$DIR"
    exit 1
}
trap 'fail "interrupted"' INT TERM

pick_port PG_PORT; pick_port MC_PORT; pick_port IMAP_PORT; pick_port SOGO_PORT
pick_port HTTPS_PORT; pick_port WRONG_PORT

# ---- PostgreSQL: a private cluster, trust auth on loopback --------------------------------
mkdir -p "$DIR/pg"
chown "$PGUSER_RUN" "$DIR/pg" 2>/dev/null || true
as_user "$PGUSER_RUN" "$PGBIN/initdb" -D "$DIR/pg/data" -U postgres --auth=trust -E UTF8 \
    --no-locale >"$DIR/pg/initdb.log" 2>&1 || fail "initdb failed (see $DIR/pg/initdb.log)"
as_user "$PGUSER_RUN" "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$DIR/pg" \
    start >/dev/null || fail "PostgreSQL did not start (see $DIR/pg/log)"
psql_do() { as_user "$PGUSER_RUN" "$PGBIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" "$@"; }
psql_do -U postgres -d postgres -c "CREATE ROLE sogo LOGIN PASSWORD 'sogo';" \
    -c "CREATE DATABASE sogo OWNER sogo;" >/dev/null || fail "cannot create the sogo database"
psql_do -U sogo -d sogo >/dev/null <<'SQL' || fail "cannot create the SOGo tables"
CREATE TABLE sogo_users (c_uid VARCHAR(128) PRIMARY KEY, c_name VARCHAR(128) NOT NULL,
  c_password VARCHAR(128) NOT NULL, c_cn VARCHAR(128), mail VARCHAR(128));
INSERT INTO sogo_users VALUES ('t1', 't1', 't1pass', 'Test User One', 't1@example.test');
-- SOGo 5.8 does not create its ActiveSync cache table itself; c_uid must be nullable.
CREATE TABLE sogo_cache_folder (c_uid VARCHAR(255) NULL, c_path VARCHAR(255) PRIMARY KEY,
  c_parent_path VARCHAR(255), c_type SMALLINT NOT NULL, c_creationdate INT4 NOT NULL,
  c_lastmodified INT4 NOT NULL, c_version INT4 NOT NULL DEFAULT 0,
  c_deleted SMALLINT NOT NULL DEFAULT 0, c_content TEXT);
SQL

# ---- memcached ----------------------------------------------------------------------------
MC_USER=(); [ "$(id -u)" = 0 ] && MC_USER=(-u memcache)
/usr/bin/memcached "${MC_USER[@]}" -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 32 \
    >"$DIR/memcached.log" 2>&1 &
echo $! >"$DIR/memcached.pid"
wait_tcp "$MC_PORT" 10 || fail "memcached did not start (see $DIR/memcached.log)"

# ---- dovecot: IMAP on loopback, plaintext auth, one user ----------------------------------
mkdir -p "$DIR/dovecot/run" "$DIR/dovecot/state" "$DIR/dovecot/home/t1/Maildir/"{cur,new,tmp}
MAIL_UID=$(id -u "$SOGO_RUN"); MAIL_GID=$(id -g "$SOGO_RUN")
echo "t1:{PLAIN}t1pass:$MAIL_UID:$MAIL_GID::$DIR/dovecot/home/t1" >"$DIR/dovecot/users"
# One message in the Inbox, so a Sync has an item to count.
cat >"$DIR/dovecot/home/t1/Maildir/new/1700000000.M1P1.eastrace" <<'EOF'
From: Probe Sender <sender@example.test>
To: Test User One <t1@example.test>
Subject: eastrace probe test message
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <probe-1@example.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello from the eastrace test server.
EOF
chown -R "$MAIL_UID:$MAIL_GID" "$DIR/dovecot/home"
DOVE_ROOT_OPTS=""
[ "$(id -u)" = 0 ] || DOVE_ROOT_OPTS="default_internal_user = $(id -un)
default_login_user = $(id -un)
default_internal_group = $(id -gn)"
cat >"$DIR/dovecot/dovecot.conf" <<EOF
base_dir = $DIR/dovecot/run
state_dir = $DIR/dovecot/state
log_path = $DIR/dovecot/dovecot.log
info_log_path = $DIR/dovecot/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
$DOVE_ROOT_OPTS
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DIR/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/dovecot/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
EOF
/usr/sbin/dovecot -c "$DIR/dovecot/dovecot.conf" || fail "dovecot did not start (see $DIR/dovecot/dovecot.log)"
wait_tcp "$IMAP_PORT" 10 || fail "dovecot does not listen on $IMAP_PORT (see $DIR/dovecot/dovecot.log)"

# ---- sogod: every setting on its command line (GNUstep's argument domain wins over
# /etc/sogo/sogo.conf, and GNUstep finds the defaults database through the passwd home, not
# $HOME, so a private defaults file cannot be used without touching the system).
mkdir -p "$DIR/sogo"
DB="postgresql://sogo:sogo@127.0.0.1:$PG_PORT/sogo"
SOGO_ARGS=(
    -WONoDetach YES
    -WOPort "127.0.0.1:$SOGO_PORT"
    -WOWorkersCount 3
    -WOPidFile "$DIR/sogo/sogo.pid"
    -WOLogFile "$DIR/sogo/sogo.log"
    -SOGoProfileURL "$DB/sogo_user_profile"
    -OCSFolderInfoURL "$DB/sogo_folder_info"
    -OCSSessionsFolderURL "$DB/sogo_sessions_folder"
    -OCSEMailAlarmsFolderURL "$DB/sogo_alarms_folder"
    -OCSCacheFolderURL "$DB/sogo_cache_folder"
    -SOGoUserSources "({ type = sql; id = users; viewURL = \"$DB/sogo_users\"; canAuthenticate = YES; isAddressBook = NO; userPasswordAlgorithm = plain; })"
    -SOGoIMAPServer "imap://127.0.0.1:$IMAP_PORT"
    -SOGoSieveServer ""
    -SOGoSMTPServer "smtp://127.0.0.1:25"
    -SOGoMailDomain example.test
    -SOGoMemcachedHost "127.0.0.1:$MC_PORT"
    -SOGoTimeZone UTC
    -SOGoMaximumPingInterval 10
    -SOGoMaximumSyncInterval 10
    -SOGoInternalSyncInterval 2
    -SOGoMaximumSyncWindowSize 50
    -SOGoAppointmentSendEMailNotifications NO
)
chown -R "$SOGO_RUN" "$DIR/sogo"
as_user "$SOGO_RUN" /usr/sbin/sogod "${SOGO_ARGS[@]}" >>"$DIR/sogo/sogo.out" 2>&1 &
SOGO_BG=$!
# The pid file appears when sogod is up; keep the launcher's pid until then.
echo "$SOGO_BG" >"$DIR/sogo/launcher.pid"
ok=0
for i in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$SOGO_PORT") 2>/dev/null; then
        st=$( { exec 3<>"/dev/tcp/127.0.0.1/$SOGO_PORT"; \
                printf 'OPTIONS /SOGo/Microsoft-Server-ActiveSync HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic dDE6dDFwYXNz\r\n\r\n' >&3; \
                head -c 12 <&3; } 2>/dev/null)
        case "$st" in "HTTP/1."?" 200") ok=1; break ;; esac
    fi
    kill -0 "$SOGO_BG" 2>/dev/null || break
    sleep 0.2
done
[ -s "$DIR/sogo/sogo.pid" ] || echo "$SOGO_BG" >"$DIR/sogo/sogo.pid"
[ "$ok" = 1 ] || fail "sogod does not answer OPTIONS with 200 on 127.0.0.1:$SOGO_PORT (last: '${st:-no answer}'; see $DIR/sogo/sogo.log)"

# ---- Test PKI: a CA, a leaf for localhost/127.0.0.1 and one for another name -----------------
P="$DIR/pki"; mkdir -p "$P"; chmod 700 "$P"
( set -e
  cd "$P"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
      -subj "/CN=eastrace SOGo test CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  for n in good wrong; do
      if [ $n = good ]; then cn=localhost; san="DNS:localhost,IP:127.0.0.1"; else cn=wrong.example.test; san="DNS:wrong.example.test"; fi
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout $n.key -out $n.csr 2>/dev/null
      printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$san" >$n.ext
      openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -sha256 \
          -extfile $n.ext -out $n.pem 2>/dev/null
  done
  chmod 600 ./*.key
) || fail "openssl could not make the test certificates"

# ---- nginx: TLS in front of sogod, the EAS path mapped as on a CAS --------------------------
N="$DIR/nginx"; mkdir -p "$N/tmp"; chmod 777 "$N/tmp"
NGUSER=""; [ "$(id -u)" = 0 ] && NGUSER="user nobody nogroup;"
server_block() { # port cert
cat <<EOF
    server {
        listen 127.0.0.1:$1 ssl;
        server_name localhost;
        ssl_certificate $P/$2.pem;
        ssl_certificate_key $P/$2.key;
        location /Microsoft-Server-ActiveSync {
            proxy_pass http://127.0.0.1:$SOGO_PORT/SOGo/Microsoft-Server-ActiveSync;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_read_timeout 600s;
            proxy_buffering off;
        }
    }
EOF
}
cat >"$N/nginx.conf" <<EOF
$NGUSER
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 128; }
http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    client_max_body_size 20m;
    keepalive_timeout 120s;
$(server_block "$HTTPS_PORT" good)
$(server_block "$WRONG_PORT" wrong)
}
EOF
/usr/sbin/nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" || fail "nginx did not start (see $N/error.log)"
wait_tcp "$HTTPS_PORT" 10 || fail "nginx does not listen on $HTTPS_PORT"
wait_tcp "$WRONG_PORT" 10 || fail "nginx does not listen on $WRONG_PORT"

cat >"$DIR/env" <<EOF
SOGO_URL=https://localhost:$HTTPS_PORT/Microsoft-Server-ActiveSync
SOGO_WRONG_URL=https://localhost:$WRONG_PORT/Microsoft-Server-ActiveSync
SOGO_HTTPS_PORT=$HTTPS_PORT
SOGO_WRONG_PORT=$WRONG_PORT
SOGO_HTTP_PORT=$SOGO_PORT
SOGO_CA=$P/ca.pem
SOGO_USER=t1
SOGO_PASSWORD=t1pass
EOF
trap - ERR
echo "sogo-test-server: up: SOGo EAS on https://localhost:$HTTPS_PORT (CA $P/ca.pem), wrong-name certificate on $WRONG_PORT"
exit 0

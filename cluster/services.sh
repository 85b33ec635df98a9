#!/usr/bin/env bash
# start|stop|status of one service of the local stack: pg, redis, kafka, ray.
#   cluster/services.sh start pg      cluster/services.sh status
# Every service listens on NODE_ADDRESS (loopback unless set) and requires credentials
# (cluster/common.sh generates them; docs/security.md). START_TIMEOUT_S (120): how long a start
# waits for Kafka or Ray to be ready, its own or one started before.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
START_TIMEOUT_S="${START_TIMEOUT_S:-120}"
no_inherited_fds # the daemons started here

PGDATA="$RUN/pg"
# The server runs as the postgres user, who must be able to reach its data directory; a clone
# under a private directory (mode 700, e.g. from mktemp -d) is not reachable, so use /var/tmp.
if ! (cd / && runuser -u postgres -- test -x "$RUN") 2>/dev/null; then
  PGDATA="$(pg_fallback_data)"
fi
PGLOG="$PGDATA/server.log"
# pg_socket_dir -> the directory of the server's Unix socket (.s.PGSQL.<port>): the data
# directory, unless the socket's path would pass the 107 bytes a socket address holds (a clone
# under a long path: the server would not start). Then, as haproxy_dir does (cluster/common.sh),
# a directory of the postgres user's under /tmp named after the data directory.
pg_socket_dir() {
  local LC_ALL=C dir="$PGDATA" socket=".s.PGSQL.$PG_PORT"
  (( ${#dir} + 1 + ${#socket} <= 107 )) || dir="/tmp/orders-pg-$(printf %s "$PGDATA" | sha1sum | cut -c1-8)"
  echo "$dir"
}
PG_SOCKET="$(pg_socket_dir)"
# Autovacuum workers (Postgres's default is 3). The queue tables (outbox, reservation_holds)
# need a vacuum every few seconds under load; the big tables' vacuums are cost-delayed and last
# minutes. With three workers, three big tables due at once (orders, reservations, payments,
# shipments, the day's history partitions) took every worker and the outbox went unvacuumed:
# 485,000 dead rows in 80 s at 720 orders/s (docs/performance.md). The big tables share one
# cost budget however many run, so more workers do not vacuum them faster; they leave a worker
# free for the queue tables. Applied at every start (an existing data directory too).
PG_AUTOVACUUM_WORKERS="${PG_AUTOVACUUM_WORKERS:-8}"
# as the postgres user, from a directory it can enter (the checkout may be private), with an
# empty environment but PATH and the locale: the server and every backend inherit it, and this
# shell's holds the stack's passwords, the Ray token and JWT_SECRET (readable by the OS user
# postgres, and by the superuser through COPY ... FROM PROGRAM)
pg_as_postgres() {
  local keep=(PATH="$PATH" LANG="${LANG:-C.UTF-8}")
  [[ -z "${LC_ALL:-}" ]] || keep+=(LC_ALL="$LC_ALL")
  [[ -z "${TZ:-}" ]] || keep+=(TZ="$TZ")
  (cd / && runuser -u postgres -- env -i "${keep[@]}" "$@")
}
# pg_admin DB [PSQL ARGS...] -> runs the SQL on stdin as the superuser, over the Unix socket
# (peer: only the OS user postgres gets in; the superuser has no password, no TCP login).
pg_admin() {
  local db="$1"; shift
  pg_as_postgres "$PG_BIN/psql" -h "$PG_SOCKET" -p "$PG_PORT" -U postgres -d "$db" -qtAX \
    -v ON_ERROR_STOP=1 "$@" >/dev/null
}
# scram_verifier -> the SCRAM-SHA-256 verifier of the password on stdin (RFC 5802/7677, as
# Postgres stores it), so that the password itself never reaches the server or its logs.
scram_verifier() {  # (the venv's Python: a minimal image has no python3)
  "$PY" -c '
import base64, hashlib, hmac, os, sys
password, salt, rounds = sys.stdin.readline().strip().encode(), os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, rounds)
stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
server = hmac.new(salted, b"Server Key", "sha256").digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${rounds}:{b64(salt)}${b64(stored)}:{b64(server)}")'
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$NODE_ADDRESS" -p "$PG_PORT"; }
pg_init() {
  log "postgres: initdb in $PGDATA"
  # made here, never adopted (no -p): a name another user made meanwhile fails the mkdir
  if [[ ! -d "$PGDATA" ]]; then mkdir -m 700 "$PGDATA" || die "could not make $PGDATA"; fi
  pg_data_ok "$PGDATA" || die "$PGDATA is a symlink, not a directory, or another user's: refused"
  chown -h postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  # the locale named, not the caller's: an LANG not generated here failed initdb, LC_ALL=C made
  # a SQL_ASCII database, and text sorted differently from one machine to the next
  pg_as_postgres "$PG_BIN/initdb" -D "$PGDATA" --auth-local=peer --auth-host=scram-sha-256 \
    --locale=C.UTF-8 --encoding=UTF8 -U postgres >"$RUN/logs/initdb.log"
  cat >>"$PGDATA/postgresql.conf" <<CONF
unix_socket_directories = '$PG_SOCKET'
max_connections = 200
shared_buffers = 256MB
wal_compression = on
max_wal_size = 1GB
CONF
}
# Who may connect, written at every start (a data directory initialised with `trust` by an
# earlier version is upgraded in place): no trust anywhere; the superuser only through the
# socket as the OS user postgres; the platform's two roles with scram-sha-256, to their database.
pg_hba() {
  local tmp="$PGDATA/pg_hba.conf.new" host=host
  [[ "$STACK_TLS" != on ]] || host=hostssl # TCP over TLS only (cluster/tls.sh)
  {
    echo "# Written by cluster/services.sh at every start; edits are overwritten (docs/security.md)."
    echo "local  all                postgres                   peer"
    echo "local  $PG_DATABASE  $PG_OWNER_USER,$PG_APP_USER             scram-sha-256"
    echo "$host $PG_DATABASE  $PG_OWNER_USER,$PG_APP_USER  127.0.0.1/32  scram-sha-256"
    # other machines of the cluster: the networks this host is directly on
    is_loopback "$NODE_ADDRESS" || echo "$host $PG_DATABASE  $PG_OWNER_USER,$PG_APP_USER  samenet  scram-sha-256"
  } >"$tmp"
  chown postgres:postgres "$tmp" && chmod 600 "$tmp" && mv -f "$tmp" "$PGDATA/pg_hba.conf"
}
# The roles and their privileges (idempotent): `orders` owns the database and its schema (the
# migrations run as it), `orders_app` (the platform) may read and write the tables' rows and
# nothing else: no DDL, no other database, no role attributes.
pg_roles() {
  local owner app
  owner="$(scram_verifier <<<"$ORDERS_DB_PASSWORD")"
  app="$(scram_verifier <<<"$ORDERS_APP_DB_PASSWORD")"
  pg_admin postgres <<SQL
ALTER SYSTEM SET password_encryption = 'scram-sha-256';
SELECT 'CREATE ROLE $PG_OWNER_USER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_OWNER_USER') \\gexec
SELECT 'CREATE ROLE $PG_APP_USER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') \\gexec
ALTER ROLE $PG_OWNER_USER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '$owner';
ALTER ROLE $PG_APP_USER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '$app';
ALTER ROLE postgres PASSWORD NULL;
SELECT 'CREATE DATABASE $PG_DATABASE OWNER $PG_OWNER_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DATABASE') \\gexec
ALTER DATABASE $PG_DATABASE OWNER TO $PG_OWNER_USER;
REVOKE ALL ON DATABASE $PG_DATABASE FROM PUBLIC;
GRANT CONNECT ON DATABASE $PG_DATABASE TO $PG_APP_USER;
SQL
  pg_admin "$PG_DATABASE" <<SQL
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO $PG_APP_USER;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $PG_APP_USER;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO $PG_APP_USER;
ALTER DEFAULT PRIVILEGES FOR ROLE $PG_OWNER_USER IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO $PG_APP_USER;
ALTER DEFAULT PRIVILEGES FOR ROLE $PG_OWNER_USER IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO $PG_APP_USER;
SQL
  # pg_partman (migration 0006 partitions the append-only tables with it): the extension needs
  # the superuser, the schema's owner uses it (its partitions are DDL); the app may read it.
  if [[ -f "$ROOT/cluster/pg_partman.sql" ]] && compgen -G "/usr/share/postgresql/*/extension/pg_partman.control" >/dev/null; then
    pg_admin "$PG_DATABASE" -v owner_role="$PG_OWNER_USER" <"$ROOT/cluster/pg_partman.sql"
    pg_admin "$PG_DATABASE" <<SQL
GRANT USAGE ON SCHEMA partman TO $PG_APP_USER;
GRANT SELECT ON ALL TABLES IN SCHEMA partman TO $PG_APP_USER;
SQL
  fi
}
# pg_socket -> the socket directory ready and named in postgresql.conf (a data directory made
# before, where the path did not fit, names its own). Under /tmp it is a predictable name that
# another user may have made first: only a directory of the postgres user's is used.
pg_socket() {
  local conf="$PGDATA/postgresql.conf" line="unix_socket_directories = '$PG_SOCKET'"
  if [[ "$PG_SOCKET" != "$PGDATA" ]]; then
    if [[ ! -e "$PG_SOCKET" && ! -L "$PG_SOCKET" ]] && mkdir -m 700 "$PG_SOCKET" 2>/dev/null; then
      chown postgres:postgres "$PG_SOCKET"
    fi
    [[ -d "$PG_SOCKET" && ! -L "$PG_SOCKET" && "$(stat -c %U "$PG_SOCKET")" == postgres ]] \
      || die "$PG_SOCKET (Postgres's socket directory) is a symlink, not a directory, or not the" \
        "postgres user's: remove it and run again"
    chmod 700 "$PG_SOCKET"
  fi
  [[ "$(grep '^unix_socket_directories = ' "$conf" | tail -n 1)" == "$line" ]] && return 0
  pg_as_postgres sed -i '/^unix_socket_directories = /d' "$conf"
  echo "$line" >>"$conf"
}
# pg_tls -> `ssl` in postgresql.conf as STACK_TLS says, and with TLS the head's server certificate
# and key in the data directory (the postgres user's, mode 600: Postgres refuses a key others
# may read), copied again at every start (a certificate made again for a new address)
pg_tls() {
  local conf="$PGDATA/postgresql.conf" line="ssl = off"
  if [[ "$STACK_TLS" == on ]]; then
    line="ssl = on"
    install -o postgres -g postgres -m 600 "$TLS_DIR/server.pem" "$PGDATA/server.crt"
    install -o postgres -g postgres -m 600 "$TLS_DIR/server.key" "$PGDATA/server.key"
  fi
  [[ "$(grep '^ssl = ' "$conf" | tail -n 1)" == "$line" ]] && return 0
  pg_as_postgres sed -i '/^ssl = /d' "$conf"
  echo "$line" >>"$conf"
}
# pg_tls_ready -> the platform's role gets in over TLS, checking the server's certificate and
# address against the stack's CA (its password through the environment, not argv)
pg_tls_ready() {
  PGPASSWORD="$ORDERS_APP_DB_PASSWORD" PGCONNECT_TIMEOUT=5 PGSSLMODE=verify-full PGSSLROOTCERT="$TLS_CA_FILE" \
    "$PG_BIN/psql" -qtAX -h "$NODE_ADDRESS" -p "$PG_PORT" -U "$PG_APP_USER" -d "$PG_DATABASE" -c 'SELECT 1'
}
pg_start() {
  ensure_credentials
  pg_data_ok "$PGDATA" || die "$PGDATA is a symlink, not a directory, or another user's: refused"
  [[ -f "$PGDATA/PG_VERSION" ]] || pg_init
  pg_hba
  pg_socket
  pg_tls
  if ! pg_ready; then
    log "postgres: starting on $NODE_ADDRESS:$PG_PORT"
    pg_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" \
      -o "-p $PG_PORT -c listen_addresses=$NODE_ADDRESS -c autovacuum_max_workers=$PG_AUTOVACUUM_WORKERS" \
      -l "$PGLOG" -w -t 300 start >/dev/null || {
      # still starting (a crash recovery of a big database can take minutes) or not: a server
      # of this data directory is this stack's, recorded so that `make down` can stop it
      [[ -f "$PGDATA/postmaster.pid" ]] && head -n1 "$PGDATA/postmaster.pid" >"$RUN/pids/pg.pid"
      die "postgres did not start within 300 s; see $PGLOG (still recovering: run again later)"
    }
    ln -sf "$PGLOG" "$RUN/logs/postgres.log"
  else
    pg_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" reload >/dev/null # the access rules just written
  fi
  head -n1 "$PGDATA/postmaster.pid" >"$RUN/pids/pg.pid"
  pg_roles
  # The outbox is a queue table (rows inserted and deleted all the time): check for dead rows
  # every 5 s instead of every minute (migration 0004 sets its thresholds). At 300 orders/s
  # the default 1 GB of WAL filled in ~3 minutes: each checkpoint then restarts full-page
  # images of every page touched, compressed with pglz on the same 2 cores. Fewer checkpoints,
  # and lz4. Autovacuum and autoanalyze of the big append-mostly tables (order_events,
  # notifications, processed_events: millions of rows after a few benchmarks) ran in the middle
  # of a run and stalled the accept path for a second: they now sleep 10 ms instead of 2 ms
  # per cost budget, the same work spread thinner (docs/performance.md, fifth round). The
  # server's TCP keepalives, for every session (the shards' owner sessions set them since
  # ADR-010; k8s's Postgres has them too): a session whose machine vanished mid-transaction
  # (power lost, network cut) held its row locks for the OS default of ~2 h, and the restarted
  # stage waited on them; now its backend ends ~25 s after the last packet. Idempotent.
  pg_admin postgres <<'SQL'
ALTER SYSTEM SET tcp_keepalives_idle = '10';
ALTER SYSTEM SET tcp_keepalives_interval = '5';
ALTER SYSTEM SET tcp_keepalives_count = '3';
ALTER SYSTEM SET autovacuum_naptime = '5s';
ALTER SYSTEM SET max_wal_size = '4GB';
ALTER SYSTEM SET checkpoint_timeout = '15min';
ALTER SYSTEM SET wal_compression = 'lz4';
ALTER SYSTEM SET autovacuum_vacuum_cost_delay = '10ms';
SELECT pg_reload_conf();
SQL
  [[ "$STACK_TLS" != on ]] || wait_for "postgres over TLS ($NODE_ADDRESS:$PG_PORT)" 30 pg_tls_ready
}
pg_stop() {
  if [[ -f "$PGDATA/postmaster.pid" ]] && pid_alive pg; then
    log "stopping postgres"
    # a stop that did not finish (pg_ctl waits 60 s) is not "stopped": make clean-data would
    # delete a running server's data directory
    pg_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null \
      || die "postgres did not stop (pid $(cat "$RUN/pids/pg.pid")); see $PGLOG"
  fi
  rm -f "$RUN/pids/pg.pid"
  # the /tmp socket directory, empty once the server has stopped
  if [[ "$PG_SOCKET" != "$PGDATA" ]]; then rmdir "$PG_SOCKET" 2>/dev/null || true; fi
}

# redis-cli as the platform's ACL user (the password through the environment, not argv), for 10 s
# at most: a TLS client waits for ever on a server without TLS (one started before TLS was
# switched on), which would hold make up there
redis_cli() {
  local tls=()
  [[ "$STACK_TLS" != on ]] || tls=(--tls --cacert "$TLS_CA_FILE")
  REDISCLI_AUTH="${REDIS_PASSWORD:-}" timeout 10 redis-cli "${tls[@]}" --user "$REDIS_USER" \
    -h "$NODE_ADDRESS" -p "$REDIS_PORT" "$@"
}
# ready: answering, and as the platform's user (redis-cli carries on as the default user when
# its AUTH fails, so a PONG alone would not tell)
redis_ready() { [[ "$(redis_cli ACL WHOAMI 2>/dev/null)" == "$REDIS_USER" ]]; }
# the ACL of this version: the platform's user refused a key outside its prefixes (a Redis
# started before 2026-12-07 gave it every key until its next restart) and SCAN (one started
# before 2026-12-08 let it list every key's name)
redis_acl_current() {
  [[ "$(redis_cli EXISTS acl-probe 2>&1)" == *NOPERM* ]] \
    && [[ "$(redis_cli SCAN 0 COUNT 1 2>&1)" == *NOPERM* ]] # and no listing (2026-12-08)
}
redis_start() {
  ensure_credentials
  if pid_alive redis; then
    redis_ready && redis_acl_current && tls_marked redis && return 0
    # not answering, still without the ACL of these credentials or of this version, or started
    # with TLS switched the other way or another certificate (cluster/tls.sh)
    stop_pid redis
  fi
  log "redis: starting on $NODE_ADDRESS:$REDIS_PORT"
  mkdir -p "$RUN/redis" && chmod 700 "$RUN/redis" # its files hold idempotent responses, customer ids
  # The ACL: the default (anonymous) user off; the platform's user `orders` with the SHA-256 of
  # its password, the platform's keys and channels only (adapters/redis_clients.py, ACL_RIGHTS),
  # and no administrative or dangerous command (CONFIG,
  # MODULE, REPLICAOF, DEBUG, FLUSHALL, KEYS, SHUTDOWN...). Nobody can log in as the default
  # user (off, no password), but Redis replays the append-only file as that user and checks its
  # rights again at each EXEC: with none, every script's writes (stored as MULTI/EXEC) were
  # dropped at a restart, each with a CRITICAL log line (redis/redis#14541). So it has every
  # key's rights (an append-only file of an older stack may hold keys of other names).
  # Memory: at most REDIS_MAXMEMORY of data (default 1gb), then Redis evicts the least recently
  # used key that has a TTL: idempotency entries first (24 h each, ~600 B: a day at 300 keyed
  # orders/s is ~15 GB; Postgres keeps every key, so an evicted one is answered from there),
  # never the breaker's state, which has none.
  local conf="$RUN/redis/redis.conf" hash listen=(--port "$REDIS_PORT")
  # with TLS (cluster/tls.sh) the one port takes TLS clients only; clients show no certificate
  [[ "$STACK_TLS" != on ]] || listen=(--port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$TLS_DIR/server.pem"
    --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_CA_FILE" --tls-auth-clients no)
  hash="$(printf %s "$REDIS_PASSWORD" | sha256sum | cut -d' ' -f1)"
  (umask 077 && printf '%s\n' "user default off resetpass resetchannels ~* +@all -@admin -@dangerous" \
    "user $REDIS_USER on #$hash ~idem:* ~ratelimit:* ~fault:* ~payment-provider:* resetchannels &order-status:* +@all -@admin -@dangerous -scan -randomkey" >"$conf")
  env "${SECRET_ENV_DROP[@]}" redis-server "$conf" --bind "$NODE_ADDRESS" "${listen[@]}" --dir "$RUN/redis" \
    --daemonize yes --pidfile "$RUN/pids/redis.pid" --logfile "$RUN/logs/redis.log" \
    --appendonly yes --appendfsync everysec --save "" \
    --maxmemory "${REDIS_MAXMEMORY:-1gb}" --maxmemory-policy volatile-lru >/dev/null
  tls_mark_set redis
  wait_for redis 30 redis_ready
}
redis_stop() { stop_pid redis; }

# await_started NAME TIMEOUT_S READY... -> for NAME's recorded process, alive but not ready yet
# (a second `make up` while the first is still starting it, or a broker replaying its log):
# 0 once READY succeeds, 1 when the process ends first (the caller starts it anew). Still not
# ready after TIMEOUT_S is an error: a second copy on the same data and ports is never started
# beside it.
await_started() {
  local name="$1" timeout="$2" start=$SECONDS pid
  shift 2
  pid="$(head -n 1 "$RUN/pids/$name.pid")"
  log "$name: already starting (pid $pid), waiting up to ${timeout}s for it to be ready"
  while pid_alive "$name"; do
    "$@" >/dev/null 2>&1 && return 0
    (( SECONDS - start < timeout )) || die "$name (pid $pid, started earlier) is running but not" \
      "ready after ${timeout}s more; see $RUN/logs/. Stop it (cluster/services.sh stop $name," \
      "or make down) and start again"
    sleep 0.5
  done
  log "$name: pid $pid ended before it was ready: starting it again"
  return 1
}

KAFKA_HOME="$RUN/kafka-$KAFKA_VERSION"
# use_kafka_java -> KAFKA_JAVA, a Java that runs Kafka (common.sh's kafka_java), or a stop that says
# which one is there and how to get another
use_kafka_java() {
  [[ -z "${KAFKA_JAVA:-}" ]] || return 0
  KAFKA_JAVA="$(kafka_java)"
  [[ -n "$KAFKA_JAVA" ]] && return 0
  local found
  found="$(command -v java || true)"
  [[ -z "$found" ]] || found="$found is Java $(java_major "$found"), "
  die "kafka: Kafka $KAFKA_VERSION needs Java $KAFKA_MIN_JAVA or newer; ${found:-no java on PATH, }none" \
    "in $JVM_DIR either. make install installs one (openjdk-17-jre-headless)"
}
# Kafka's command-line tools (storage format); the broker itself runs from cluster/kafka/run.sh.
kafka_tool() {
  use_kafka_java
  env "${SECRET_ENV_DROP[@]}" "$KAFKA_JAVA" -Dlog4j2.configurationFile="$ROOT/cluster/kafka/log4j2.yaml" -Dkafka.logs.dir="$RUN/logs" \
    -cp "$KAFKA_HOME/libs/*" "$@"
}
# kafka_jaas MODULE [SERVER] -> the JAAS entry logging in as KAFKA_USERNAME with KAFKA_PASSWORD
# through MODULE (plain, scram); SERVER: also the user list of a PLAIN listener (that one user)
kafka_jaas() {
  local module=plain.PlainLoginModule users=""
  [[ "$1" == scram ]] && module=scram.ScramLoginModule
  [[ -n "${2:-}" ]] && users=" user_$KAFKA_USERNAME=\"$KAFKA_PASSWORD\""
  printf 'org.apache.kafka.common.security.%s required username="%s" password="%s"%s;' \
    "$module" "$KAFKA_USERNAME" "$KAFKA_PASSWORD" "$users"
}
# kafka_listener MODE -> the client listener's protocol in MODE (kafka_conf): SASL_SSL for `scram`
# with TLS (cluster/tls.sh), else SASL_PLAINTEXT (the setup's loopback broker too)
kafka_listener() {
  if [[ "$1" == scram && "$STACK_TLS" == on ]]; then echo SASL_SSL; else echo SASL_PLAINTEXT; fi
}
# kafka_conf MODE ADDRESS -> $RUN/kafka/server.properties, the broker's client listener on ADDRESS:
# `none`, no authentication anywhere (loopback: a single box, ADR-011); `scram`, that listener
# SASL/SCRAM-SHA-512 only (multi-host mode, KAFKA_AUTH=scram) with the broker's own login
# KAFKA_USERNAME's, over TLS with the head's certificate when STACK_TLS is on; `setup`, SASL/PLAIN
# as KAFKA_USERNAME instead (kafka_scram_user: SCRAM users are set through a broker). With SASL
# the controller's listener, on loopback, takes that PLAIN login too: it also answers requests
# that change users and topics.
kafka_conf() {
  local conf="$RUN/kafka/server.properties" tmp mech=PLAIN client proto="" name
  tmp="$(umask 077 && mktemp "$conf.XXXXXX")" # the SASL files hold KAFKA_PASSWORD
  sed -e "s#@DATA@#$RUN/kafka/data#" -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
    -e "s#PLAINTEXT://127.0.0.1#PLAINTEXT://$2#g" "$ROOT/cluster/kafka/server.properties" >"$tmp"
  if [[ "$1" != none ]]; then
    proto="$(kafka_listener "$1")" && name="${proto,,}"
    client="listener.name.$name.plain.sasl.jaas.config=$(kafka_jaas plain server)"
    if [[ "$1" == scram ]]; then
      mech=SCRAM-SHA-512
      client="listener.name.$name.scram-sha-512.sasl.jaas.config=$(kafka_jaas scram)"
    fi
    sed -i -e "s#PLAINTEXT://#$proto://#g" \
      -e "s#^listener.security.protocol.map=.*#listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,$proto:$proto#" \
      -e "s#^inter.broker.listener.name=.*#inter.broker.listener.name=$proto#" "$tmp"
    printf '%s\n' "listener.name.$name.sasl.enabled.mechanisms=$mech" \
      "sasl.mechanism.inter.broker.protocol=$mech" "$client" \
      "listener.name.controller.sasl.enabled.mechanisms=PLAIN" "sasl.mechanism.controller.protocol=PLAIN" \
      "listener.name.controller.plain.sasl.jaas.config=$(kafka_jaas plain server)" >>"$tmp"
  fi
  if [[ "$proto" == SASL_SSL ]]; then
    # Kafka's PEM key store: the key, then the certificate (mode 600, beside the properties);
    # the broker checks its own listener (inter-broker) against the CA, by address
    (umask 077 && cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$RUN/kafka/keystore.pem")
    printf '%s\n' ssl.keystore.type=PEM "ssl.keystore.location=$RUN/kafka/keystore.pem" \
      ssl.truststore.type=PEM "ssl.truststore.location=$TLS_CA_FILE" >>"$tmp"
  fi
  mv -f "$tmp" "$conf"
}
# kafka_ports_closed -> 0 when nothing listens on the broker's ports (loopback and NODE_ADDRESS)
kafka_ports_closed() {
  ! port_open "$KAFKA_PORT" 127.0.0.1 && ! port_open "$KAFKA_CONTROLLER_PORT" 127.0.0.1 \
    && ! port_open "$KAFKA_PORT"
}
# kafka_halt -> the broker stopped (by pid) and its ports closed: a JVM's process can look gone
# (its main thread ended) while its other threads still hold the listeners for a moment, and the
# start that follows a restart would find the port taken (seen switching TLS on, 2026-12-07)
kafka_halt() {
  stop_pid kafka 60
  wait_for "kafka's ports $KAFKA_PORT and $KAFKA_CONTROLLER_PORT closed" 60 kafka_ports_closed
}
# kafka_launch -> the broker of $RUN/kafka/server.properties started, its port open on ADDRESS
kafka_launch() {
  use_kafka_java
  env "${SECRET_ENV_DROP[@]}" KAFKA_JAVA="$KAFKA_JAVA" setsid nohup "$ROOT/cluster/kafka/run.sh" "$KAFKA_HOME" "$RUN/kafka/server.properties" \
    "$RUN/logs" >"$RUN/logs/kafka.out" 2>&1 </dev/null &
  echo $! >"$RUN/pids/kafka.pid"
  wait_for "kafka port $1:$KAFKA_PORT" "$START_TIMEOUT_S" port_open "$KAFKA_PORT" "$1"
}
# kafka_scram_user -> the broker's metadata holds KAFKA_USERNAME with KAFKA_PASSWORD (SCRAM-SHA-512),
# set through a short start on loopback only whenever the pair differs from the one last set
# ($RUN/kafka/scram.sha256, a digest: a new data directory, a changed password). Kafka's tools
# change SCRAM users through a broker only, and this one then takes SCRAM clients only.
SCRAM_MARK="$RUN/kafka/scram.sha256"
scram_digest() { printf '%s:%s' "$KAFKA_USERNAME" "$KAFKA_PASSWORD" | sha256sum | cut -c1-64; }
scram_user_set() { [[ "$(cat "$SCRAM_MARK" 2>/dev/null)" == "$(scram_digest)" ]]; }
kafka_scram_user() {
  local add="$RUN/kafka/scram-user.properties" login="$RUN/kafka/setup-login.properties"
  scram_user_set && return 0
  log "kafka: setting SCRAM user $KAFKA_USERNAME (the broker on loopback with a PLAIN login meanwhile)"
  # whatever stops this (a start that times out, the tool failing): the loopback broker and the
  # password's files go
  trap "rm -f $(printf %q "$add") $(printf %q "$login"); stop_pid kafka 60" EXIT
  kafka_conf setup 127.0.0.1
  kafka_launch 127.0.0.1
  (umask 077 && printf 'SCRAM-SHA-512=password=%s\n' "$KAFKA_PASSWORD" >"$add" \
    && printf '%s\n' security.protocol=SASL_PLAINTEXT sasl.mechanism=PLAIN \
      "sasl.jaas.config=$(kafka_jaas plain)" >"$login")
  kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$login" \
    --alter --entity-type users --entity-name "$KAFKA_USERNAME" --add-config-file "$add" \
    >"$RUN/logs/kafka-scram.log" 2>&1 || die "kafka: setting the SCRAM user failed; see $RUN/logs/kafka-scram.log"
  rm -f "$add" "$login"
  kafka_halt
  trap - EXIT
  scram_digest >"$SCRAM_MARK"
}
# kafka_as_wanted -> 0 when the running broker has the mode KAFKA_AUTH and STACK_TLS ask for (and,
# with SCRAM, the user of the current password); otherwise it must start again
kafka_as_wanted() {
  local conf="$RUN/kafka/server.properties"
  if [[ "$KAFKA_AUTH" == none ]]; then ! grep -q '^sasl\.mechanism\.' "$conf" 2>/dev/null; else
    local name
    name="$(kafka_listener scram)" && name="${name,,}"
    grep -q "^listener.name.$name.sasl.enabled.mechanisms=SCRAM-SHA-512\$" "$conf" 2>/dev/null \
      && scram_user_set || return 1
    # with TLS: the key store holds the head's current certificate (one made for a new address)
    [[ "$STACK_TLS" != on ]] || cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" 2>/dev/null \
      | cmp -s - "$RUN/kafka/keystore.pem"
  fi
}
kafka_start() {
  if pid_alive kafka && ! kafka_as_wanted; then
    log "kafka: running with other authentication, TLS or SCRAM password than KAFKA_AUTH=$KAFKA_AUTH," \
      "STACK_TLS=$STACK_TLS and $CREDENTIALS_FILE ask for: starting it again"
    kafka_halt
  fi
  if pid_alive kafka; then
    port_open "$KAFKA_PORT" && return 0
    await_started kafka "$START_TIMEOUT_S" port_open "$KAFKA_PORT" && return 0
  fi
  if [[ "$KAFKA_AUTH" == scram ]]; then # (both go into a JAAS string and a properties file)
    [[ "${KAFKA_PASSWORD:-}" =~ ^[A-Za-z0-9._~-]+$ && "$KAFKA_USERNAME" =~ ^[A-Za-z0-9._~-]+$ ]] \
      || die "kafka: KAFKA_USERNAME and KAFKA_PASSWORD must be set, of letters, digits and ._~- only" \
        "(make up generates the password in $CREDENTIALS_FILE)"
  fi
  mkdir -p "$RUN/kafka/data" && chmod 700 "$RUN/kafka" # the log holds every order's events
  kafka_conf none "$NODE_ADDRESS"
  if [[ ! -f "$RUN/kafka/data/meta.properties" ]]; then
    log "kafka: formatting KRaft storage"
    rm -f "$SCRAM_MARK"
    kafka_tool kafka.tools.StorageTool format --standalone -t "$(kafka_tool kafka.tools.StorageTool random-uuid)" \
      -c "$RUN/kafka/server.properties" >"$RUN/logs/kafka-format.log" 2>&1 || die "kafka format failed; see $RUN/logs/kafka-format.log"
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_PORT" 127.0.0.1 || port_open "$KAFKA_CONTROLLER_PORT" 127.0.0.1; then
    die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by a process this stack did not start; stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
  fi
  [[ "$STACK_TLS" != on ]] || tls_certs # (the head's certificate: made by ensure_credentials too)
  [[ "$KAFKA_AUTH" == none ]] || { kafka_scram_user; kafka_conf scram "$NODE_ADDRESS"; }
  log "kafka: starting KRaft broker+controller on $NODE_ADDRESS:$KAFKA_PORT ($KAFKA_AUTH, TLS $STACK_TLS, heap 512 MB)"
  kafka_launch "$NODE_ADDRESS"
}
kafka_stop() { stop_pid kafka 60; }

# (a HOST:PORT address's port first: `ray status` retries a closed one for some 40 s)
ray_ready() {
  local port="${RAY_ADDRESS##*:}"
  if [[ "$port" =~ ^[0-9]+$ ]] && ! port_open "$port" "${RAY_ADDRESS%:*}"; then return 1; fi
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="$(ray_loopback_switch)" \
    "$VENV/bin/ray" status --address "$RAY_ADDRESS" >/dev/null 2>&1
}
ray_start() {
  ensure_credentials
  ray_temp_dir # also for a head running from before: its sessions are in $RUN/ray
  # its processes hold the TLS and Kafka settings of their start: TLS switched, a certificate
  # made again (cluster/tls.sh), the Kafka login changed; make up deploys the platform again
  if pid_alive ray; then
    if ! tls_marked ray; then
      log "ray: running with other TLS settings than STACK_TLS=$STACK_TLS and $TLS_DIR: starting it again"
      ray_stop
    elif ! kafka_login_current ray; then
      log "ray: its processes log in to Kafka otherwise than KAFKA_AUTH=$KAFKA_AUTH asks: starting it again"
      ray_stop
    fi
  fi
  if pid_alive ray; then
    ray_ready && return 0
    await_started ray "$START_TIMEOUT_S" ray_ready && return 0
  fi
  log "ray: starting head on $NODE_ADDRESS (num-cpus=$RAY_NUM_CPUS, dashboard $DASHBOARD_HOST:$DASHBOARD_PORT)"
  dashboard_check
  # --block keeps `ray start` in the foreground as the parent of Ray's processes, so stopping that
  # one pid stops this cluster and nothing else on the machine (unlike `ray stop`). Every port
  # Ray opens binds NODE_ADDRESS (loopback by default; docs/security.md lists them).
  ray_env
  ray_port_args
  env "${RAY_ENV_DROP[@]}" "${RAY_ENV[@]}" setsid nohup "$VENV/bin/ray" start --head --block \
    --node-ip-address="$NODE_ADDRESS" --port="$RAY_GCS_PORT" --num-cpus="$RAY_NUM_CPUS" \
    --ray-client-server-port="$RAY_CLIENT_SERVER_PORT" \
    --dashboard-host="$DASHBOARD_HOST" --dashboard-port="$DASHBOARD_PORT" \
    "${RAY_PORT_ARGS[@]}" --disable-usage-stats \
    --temp-dir="$RAY_TEMP" >"$RUN/logs/ray.out" 2>&1 </dev/null &
  echo $! >"$RUN/pids/ray.pid"
  tls_mark_set ray
  wait_for "ray head" "$START_TIMEOUT_S" ray_ready
  ray_session_priority "$(cat "$RUN/pids/ray.pid")"
}
ray_stop() { stop_pid ray 60 && remove_haproxy_dir; }

# status_line NAME OK WHERE -> one line of `make status` (coloured on a terminal only); a part
# down is remembered for the exit status.
any_down=false
status_line() {
  local name="$1" ok="$2" where="$3" green="" red="" plain=""
  if _on_tty 1; then green=$'\033[32m' red=$'\033[31m' plain=$'\033[0m'; fi
  if $ok; then printf '  %-8s %sup%s    %s\n' "$name" "$green" "$plain" "$where"
  else printf '  %-8s %sdown%s  %s\n' "$name" "$red" "$plain" "$where"; any_down=true; fi
}
# all_status -> each part up or down; exits 1 when any is down
all_status() {
  local s
  if joined_machine; then joined_status; return; fi
  s=false; pg_ready 2>/dev/null && s=true; status_line postgres $s "$NODE_ADDRESS:$PG_PORT"
  s=false; redis_ready 2>/dev/null && s=true; status_line redis $s "$NODE_ADDRESS:$REDIS_PORT"
  s=false; port_open "$KAFKA_PORT" && s=true; status_line kafka $s "$NODE_ADDRESS:$KAFKA_PORT"
  s=false; ray_ready && s=true; status_line ray $s "$NODE_ADDRESS:$RAY_GCS_PORT, dashboard http://$DASHBOARD_HOST:$DASHBOARD_PORT"
  local gw; gw="$(gateway_url)"
  s=false; curl -fsS "$gw/health" >/dev/null 2>&1 && s=true
  status_line gateway $s "$gw (docs /docs)"
  if $any_down; then exit 1; fi
}

# joined_status -> on a machine that joined a head (make join): its Ray node, and the head's
# services as this machine's Ray processes reach them (cluster/reach.py; the head's recorded
# ports: cluster/common.sh took them); exits 1 when any is down, or could not be checked (the
# last line reach.py wrote that is not a service's names why: a bad setting, no venv)
joined_status() {
  local name ok where s out seen=" " why=""
  s=false; pid_alive ray-worker && s=true
  status_line "ray node" $s "$NODE_ADDRESS, joined to $HEAD_ADDRESS:$RAY_GCS_PORT (make leave stops it)"
  out="$(env "${RAY_ENV_DROP[@]}" "$PY" -m cluster.reach --lines 2>&1)" || true
  while IFS=$'\t' read -r name ok where; do
    if [[ "$ok" == up || "$ok" == down ]]; then
      s=false; [[ "$ok" == up ]] && s=true
      status_line "$name" $s "$where"
      seen+="$name "
    elif [[ -n "$name$ok$where" ]]; then
      why="$name${ok:+ $ok}${where:+ $where}"
    fi
  done <<<"$out"
  for name in postgres redis kafka; do
    [[ "$seen" == *" $name "* ]] || status_line "$name" false "not checked: ${why:-no answer from $PY -m cluster.reach}"
  done
  if $any_down; then exit 1; fi
}

cmd="${1:-status}"; svc="${2:-}"
case "$cmd" in
  start|stop) [[ -n "$svc" ]] || die "usage: $0 start|stop pg|redis|kafka|ray"; "${svc}_${cmd}" ;;
  status) all_status ;;
  pgdata) echo "$PGDATA" ;; # where this checkout's database lives (`make clean-data` removes it)
  pgsocket) echo "$PG_SOCKET" ;; # the directory of its Unix socket (psql -h)
  *) die "usage: $0 start|stop|status [pg|redis|kafka|ray] | pgdata | pgsocket" ;;
esac

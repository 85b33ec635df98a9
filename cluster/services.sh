#!/usr/bin/env bash
# start|stop|status of one service of the local stack: pg, redis, kafka, ray.
#   cluster/services.sh start pg      cluster/services.sh status
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGDATA="$RUN/pg"
# The server runs as the postgres user, who must be able to reach its data directory; a clone
# under a private directory (mode 700, e.g. from mktemp -d) is not reachable, so use /var/tmp.
if ! (cd / && runuser -u postgres -- test -x "$RUN") 2>/dev/null; then
  PGDATA="/var/tmp/ray-orders-pg-$(printf %s "$ROOT" | sha1sum | cut -c1-10)"
fi
PGLOG="$PGDATA/server.log"
# as the postgres user, from a directory it can enter (the checkout may be private)
pg_as_postgres() { (cd / && runuser -u postgres -- "$@"); }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
pg_start() {
  if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    log "postgres: initdb in $PGDATA"
    mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
    pg_as_postgres "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres >"$RUN/logs/initdb.log"
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGDATA'
max_connections = 200
shared_buffers = 256MB
wal_compression = on
max_wal_size = 1GB
CONF
  fi
  if ! pg_ready; then
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    pg_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -o "-p $PG_PORT" \
      -l "$PGLOG" -w -t 60 start >/dev/null || die "postgres did not start; see $PGLOG"
    ln -sf "$PGLOG" "$RUN/logs/postgres.log"
  fi
  head -n1 "$PGDATA/postmaster.pid" >"$RUN/pids/pg.pid"
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAX)
  if [[ "$("${psql[@]}" -c "select 1 from pg_roles where rolname='orders'")" != 1 ]]; then
    "${psql[@]}" -c "create role orders login password 'orders'"
  fi
  if [[ "$("${psql[@]}" -c "select 1 from pg_database where datname='orders'")" != 1 ]]; then
    "${psql[@]}" -c "create database orders owner orders"
  fi
  # The outbox is a queue table (rows inserted and deleted all the time): check for dead rows
  # every 5 s instead of every minute (migration 0004 sets its thresholds). At 300 orders/s
  # the default 1 GB of WAL filled in ~3 minutes: each checkpoint then restarts full-page
  # images of every page touched, compressed with pglz on the same 2 cores. Fewer checkpoints,
  # and lz4. Autovacuum and autoanalyze of the big append-mostly tables (order_events,
  # notifications, processed_events: millions of rows after a few benchmarks) ran in the middle
  # of a run and stalled the accept path for a second: they now sleep 10 ms instead of 2 ms
  # per cost budget, the same work spread thinner (docs/performance.md, fifth round). Idempotent.
  "${psql[@]}" -c "alter system set autovacuum_naptime = '5s'" \
    -c "alter system set max_wal_size = '4GB'" -c "alter system set checkpoint_timeout = '15min'" \
    -c "alter system set wal_compression = 'lz4'" \
    -c "alter system set autovacuum_vacuum_cost_delay = '10ms'" -c "select pg_reload_conf()" >/dev/null
}
pg_stop() {
  [[ -f "$PGDATA/postmaster.pid" ]] && pid_alive pg && log "stopping postgres" \
    && pg_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  rm -f "$RUN/pids/pg.pid"
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }
redis_start() {
  pid_alive redis && redis_ready && return 0
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$RUN/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN/redis" --daemonize yes \
    --pidfile "$RUN/pids/redis.pid" --logfile "$RUN/logs/redis.log" \
    --appendonly yes --appendfsync everysec --save "" >/dev/null
  wait_for redis 30 redis_ready
}
redis_stop() { stop_pid redis; }

KAFKA_HOME="$RUN/kafka-$KAFKA_VERSION"
# Kafka's command-line tools (storage format); the broker itself runs from cluster/kafka/run.sh.
kafka_tool() {
  java -Dlog4j2.configurationFile="$ROOT/cluster/kafka/log4j2.yaml" -Dkafka.logs.dir="$RUN/logs" \
    -cp "$KAFKA_HOME/libs/*" "$@"
}
kafka_start() {
  pid_alive kafka && port_open "$KAFKA_PORT" && return 0
  local conf="$RUN/kafka/server.properties"
  mkdir -p "$RUN/kafka/data"
  sed -e "s#@DATA@#$RUN/kafka/data#" -e "s#@PORT@#$KAFKA_PORT#g" \
    -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" "$ROOT/cluster/kafka/server.properties" >"$conf"
  if [[ ! -f "$RUN/kafka/data/meta.properties" ]]; then
    log "kafka: formatting KRaft storage"
    kafka_tool kafka.tools.StorageTool format --standalone -t "$(kafka_tool kafka.tools.StorageTool random-uuid)" \
      -c "$conf" >"$RUN/logs/kafka-format.log" 2>&1 || die "kafka format failed; see $RUN/logs/kafka-format.log"
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
    die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by a process this stack did not start; stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
  fi
  log "kafka: starting KRaft broker+controller on 127.0.0.1:$KAFKA_PORT (heap 512 MB)"
  setsid nohup "$ROOT/cluster/kafka/run.sh" "$KAFKA_HOME" "$conf" "$RUN/logs" \
    >"$RUN/logs/kafka.out" 2>&1 </dev/null &
  echo $! >"$RUN/pids/kafka.pid"
  wait_for "kafka port $KAFKA_PORT" 120 port_open "$KAFKA_PORT"
}
kafka_stop() { stop_pid kafka 60; }

ray_ready() { "$VENV/bin/ray" status --address "$RAY_ADDRESS" >/dev/null 2>&1; }
ray_start() {
  pid_alive ray && ray_ready && return 0
  log "ray: starting head (num-cpus=$RAY_NUM_CPUS, dashboard :$DASHBOARD_PORT)"
  # --block keeps `ray start` in the foreground as the parent of Ray's processes, so stopping that
  # one pid stops this cluster and nothing else on the machine (unlike `ray stop`).
  # Ray starts its workers at niceness 15 by default: on a shared 2-core box that starves the
  # gateway and the actors next to Kafka and Postgres (measured 78 vs 212 accepts/s).
  # Throughput-optimized Serve: user code on the replica's own event loop (no thread hop per
  # request), buffered request logs, no per-request log line on stderr (docs/performance.md).
  # The Serve controller checks its deployments every 0.5 s instead of 0.1 s (0.04 cores at
  # 300 orders/s for a fixed set of one app and one replica).
  # Ray's own processes took 0.13 cores at 300 orders/s; three switches give back ~0.045
  # (docs/performance.md, sixth round): HAProxy's per-request log line, parsed in Python by the
  # HAProxyManager (the replica counts its requests instead), the C++ event-loop statistics of
  # every process (only shown in debug dumps), and the two idle workers Ray starts ahead of
  # tasks this platform never submits (actors get their own processes anyway).
  # (No comment lines inside this command: a comment would end it after the first variable.)
  RAY_worker_niceness="${RAY_WORKER_NICENESS:-0}" \
  RAY_SERVE_HAPROXY_METRICS_ENABLED="${RAY_SERVE_HAPROXY_METRICS_ENABLED:-0}" \
  RAY_event_stats="${RAY_EVENT_STATS:-0}" RAY_enable_worker_prestart=0 RAY_prestart_worker_first_driver=0 \
  RAY_SERVE_ENABLE_HA_PROXY="${RAY_SERVE_ENABLE_HA_PROXY:-1}" RAY_SERVE_HAPROXY_NBTHREAD=2 \
  RAY_SERVE_THROUGHPUT_OPTIMIZED="${RAY_SERVE_THROUGHPUT_OPTIMIZED:-1}" \
  RAY_SERVE_CONTROL_LOOP_INTERVAL_S="${RAY_SERVE_CONTROL_LOOP_INTERVAL_S:-0.5}" \
  RAY_SERVE_HTTP_HOST=127.0.0.1 setsid nohup "$VENV/bin/ray" start --head --block \
    --node-ip-address=127.0.0.1 --port="$RAY_GCS_PORT" --num-cpus="$RAY_NUM_CPUS" \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --disable-usage-stats --metrics-export-port="$METRICS_EXPORT_PORT" \
    --temp-dir="$RUN/ray" >"$RUN/logs/ray.out" 2>&1 </dev/null &
  echo $! >"$RUN/pids/ray.pid"
  wait_for "ray head" 120 ray_ready
}
ray_stop() { stop_pid ray 60; }

status_line() {
  local name="$1" ok="$2" where="$3"
  if $ok; then printf '  %-8s \033[32mup\033[0m    %s\n' "$name" "$where"
  else printf '  %-8s \033[31mdown\033[0m  %s\n' "$name" "$where"; fi
}
all_status() {
  local s
  s=false; pg_ready 2>/dev/null && s=true; status_line postgres $s "127.0.0.1:$PG_PORT"
  s=false; redis_ready 2>/dev/null && s=true; status_line redis $s "127.0.0.1:$REDIS_PORT"
  s=false; port_open "$KAFKA_PORT" && s=true; status_line kafka $s "127.0.0.1:$KAFKA_PORT"
  s=false; ray_ready && s=true; status_line ray $s "127.0.0.1:$RAY_GCS_PORT, dashboard http://127.0.0.1:$DASHBOARD_PORT"
  s=false; curl -fsS "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && s=true
  status_line gateway $s "http://127.0.0.1:$HTTP_PORT (docs /docs)"
}

cmd="${1:-status}"; svc="${2:-}"
case "$cmd" in
  start|stop) [[ -n "$svc" ]] || die "usage: $0 start|stop pg|redis|kafka|ray"; "${svc}_${cmd}" ;;
  status) all_status ;;
  *) die "usage: $0 start|stop|status [pg|redis|kafka|ray]" ;;
esac

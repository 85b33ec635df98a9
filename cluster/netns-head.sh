# The head host of cluster/netns.sh, and the whole `up` and `down`. Sourced by netns-lib.sh.
# shellcheck shell=bash

# head_service NAME -> `cluster/services.sh start NAME` on the head (listening on its bridge
# address, with this harness's credentials and data in RUN_DIR)
head_service() {
  on head "$ROOT/cluster/services.sh" start "$1" >>"$RUN/logs/head-services.log" 2>&1 \
    || { tail -15 "$RUN/logs/head-services.log" >&2; die "head: $1 did not start"; }
}
# The Kafka jars: those the single-box stack fetched, else fetched for this RUN_DIR.
head_kafka_jars() {
  local home="$RUN/kafka-$KAFKA_VERSION" main="$ROOT/.run/kafka-$KAFKA_VERSION"
  [[ -f "$home/libs/.complete" ]] && return 0
  if [[ -f "$main/libs/.complete" ]]; then ln -sfn "$main" "$home"
  else "$ROOT/cluster/install.sh" >>"$RUN/logs/install.log" 2>&1 || die "install failed; see $RUN/logs/install.log"; fi
}
# The head's Ray, once more when its start times out (Ray waits 30 s for its own raylet to
# register, which a box busy with other work can exceed).
head_ray() {
  local try
  for try in 1 2; do
    on head "$ROOT/cluster/services.sh" start ray >>"$RUN/logs/head-services.log" 2>&1 && return 0
    log "head: ray did not start (try $try; $RUN/logs/ray.out)"
    stop_pid ray 0
    kill_rest_except_services
  done
  die "head: ray did not start; see $RUN/logs/ray.out"
}
# what Ray left on the head after a failed start (Postgres, Redis and Kafka stay)
kill_rest_except_services() {
  local p
  for p in $(cg_pids head); do
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in
      postgres | redis-server | java | "") ;;
      *) kill -KILL "$p" 2>/dev/null || true ;;
    esac
  done
}
# what `up` and `down` remove: never the whole RUN_DIR (it may be given), only what this made
run_files() {
  printf '%s\n' "$RUN"/{pids,pg,kafka,redis,ray,code,haproxy,tls,w[1-9],kafka-"$KAFKA_VERSION"} \
    "$RUN"/{credentials.env,jwt.env,node.env} "$RUN"/cap-*
}
# remove_run_files -> them removed, one path per line (a RUN_DIR with a space is one path)
remove_run_files() {
  local -a files
  mapfile -t files < <(run_files)
  rm -rf "${files[@]}"
}

netns_up() {
  local workers="$1" i t0=$SECONDS
  remove_run_files && rm -rf "$RUN/logs" && mkdir -p "$RUN/pids" "$RUN/logs"
  (umask 077 && openssl rand -hex 32 >"$RUN/jwt.env")
  JWT_SECRET="$(cat "$RUN/jwt.env")" && export JWT_SECRET
  ensure_credentials # this harness's Postgres, Redis and Ray token; the URLs on the head's address
  netns_snapshot
  log "bridge $BR $HOST_IP/24; head $(ns_of head) $HEAD_IP; cgroups $(cg_kind); data $RUN"
  net_bridge
  net_host head
  cg_make head 0
  head_kafka_jars
  head_service pg
  head_service redis
  head_service kafka
  log "head: migrate, seed, topics (${KAFKA_PARTITIONS:-6} partitions)"
  # the owner's URL reaches them in the environment (exported, cluster/common.sh), which they
  # take first (core/owner.py): as `env DATABASE_URL=...` it was in a command line, which every
  # local user can read
  { in_head "$PY" -m cli.main migrate && in_head "$PY" -m cli.main seed \
      && in_head "$PY" -m cli.main topics; } >"$RUN/logs/init.log" 2>&1 \
    || { tail -20 "$RUN/logs/init.log" >&2; die "migrate/seed/topics failed"; }
  head_ray
  for ((i = 1; i <= workers; i++)); do netns_worker "$i"; done
  netns_wait_nodes
  netns_deploy
  log "up in $((SECONDS - t0))s: gateway http://$HEAD_IP:$HTTP_PORT, dashboard http://$HEAD_IP:$DASHBOARD_PORT"
}

# down_step WHAT COMMAND... -> COMMAND, best-effort: a failure is logged and remembered in
# down_failed, and the teardown goes on (it must reach the namespaces, links, bridge, cgroups
# and owner file whatever failed before them)
down_step() {
  local what="$1" rc=0
  shift
  "$@" || rc=$?
  (( rc == 0 )) && return 0
  log "down: $what failed (exit $rc); going on"
  down_failed+=("$what")
}

netns_down() {
  local h d
  down_failed=()
  # Everything goes, the data too: worker hosts and Ray are SIGKILLed (no graceful drain).
  for h in $(hosts_up); do
    [[ "$h" == head ]] || NETNS_STOP_S=0 down_step "worker host $h" netns_stop_worker "${h#w}"
  done
  for h in $(ls "$RUN"/cap-w* 2>/dev/null | sed 's/.*cap-//'); do
    NETNS_STOP_S=0 down_step "worker host $h" netns_stop_worker "${h#w}"
  done
  if ns_exists "$(ns_of head)"; then
    down_step ray stop_pid ray 0
    down_step "HAProxy's directory" remove_haproxy_dir
    down_step kafka stop_pid kafka 30
    down_step redis stop_pid redis 10
    down_step postgres stop_pid pg 30 INT # INT: Postgres's fast shutdown (clients not awaited)
    down_step "the head's other processes" kill_rest head
    ip link del "$P-head" 2>/dev/null || true # (goes with the namespace anyway)
    down_step "namespace $(ns_of head)" ip netns del "$(ns_of head)"
  fi
  down_step "the head's cgroups" cg_remove head
  for d in "/sys/fs/cgroup/cpu/$CG_NAME" "/sys/fs/cgroup/cpuacct/$CG_NAME" "/sys/fs/cgroup/$CG_NAME"; do
    [[ ! -d "$d" ]] || down_step "cgroup $d" rmdir "$d"
  done
  ! ip link show "$BR" >/dev/null 2>&1 || down_step "bridge $BR" ip link del "$BR"
  # the data goes too; the logs stay for a look afterwards (the next `up` removes them)
  remove_run_files
  [[ "$(owner_of)" != "$RUN" ]] || rm -f "$OWNER"
  if (( ${#down_failed[@]} )); then
    log "netns harness down, except: ${down_failed[*]} (logs in $RUN/logs)"
    return 1
  fi
  log "netns harness down (logs in $RUN/logs)"
}

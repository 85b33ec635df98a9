#!/usr/bin/env bash
# make join HEAD=<address>: this machine joins, as a worker node, the Ray cluster whose head was
# started with `NODE_ADDRESS=<address> make up` (README, "Adding a machine"). Ray's processes
# here run with the project's environment: the connection URLs point at the head's services,
# with the credentials and the ports of the head's .run/credentials.env copied to this
# checkout's .run/ (or given in the environment). `make leave` stops this node again (by pid).
#   cluster/join.sh HEAD_ADDRESS       NODE_ADDRESS: this machine's address (default: the source
#                                      address of the route to the head); WORKER_NUM_CPUS
set -euo pipefail
head="${1:-}"
# refuse MESSAGE... -> the message, exit 2 (before common.sh, whose die comes with it)
refuse() { echo "$*" >&2; exit 2; }
[[ -n "$head" ]] || refuse "usage: make join HEAD=<address or host name of the head>"
# a host name: the head's IPv4 address (its services' certificates name that address, and Ray
# and `ip route get` take addresses only)
if [[ ! "$head" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
  [[ ! "$head" =~ ^[^:]+:[0-9]+$ ]] || refuse "error: HEAD=$head: give the address alone" \
    "(the head's ports come with its credentials file)"
  [[ "$head" != *:* ]] || refuse "error: HEAD=$head: the stack joins over IPv4 only; give the" \
    "head's IPv4 address"
  resolved="$(getent ahostsv4 "$head" 2>/dev/null | awk 'NR == 1 {print $1}')" || resolved=""
  [[ -n "$resolved" ]] || refuse "error: HEAD=$head has no IPv4 address here (getent ahostsv4);" \
    "give the head's address"
  echo "HEAD=$head is $resolved"
  head="$resolved"
fi
export HEAD_ADDRESS="$head"
if [[ -z "${NODE_ADDRESS:-}" ]]; then
  # without iproute2 the lookup below found nothing, and the check after it blamed the route
  command -v ip >/dev/null || refuse "error: no \`ip\` command here (Debian: apt-get install" \
    "iproute2) to find this machine's address; install it, or set NODE_ADDRESS=<this machine's address>"
  # (no route: empty, and the check below says so; under pipefail a failed `ip` ended the
  # script here without a word)
  NODE_ADDRESS="$({ ip -4 route get "$head" 2>/dev/null || true; } | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)"
  export NODE_ADDRESS
fi
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# a machine that ran a stack of its own (make up recorded it in node.env): that record wins over
# the join's (common.sh), so make status, make up and the tools here took it for a head, and
# the settings read above came from it
if [[ -e "$RUN/node.env" ]]; then
  for s in ray pg redis kafka; do
    ! pid_alive "$s" || die "this machine runs a stack of its own ($s is up): make down first," \
      "then make join"
  done
  log "forgetting this machine's own stack's record ($RUN/node.env): it joins $HEAD_ADDRESS"
  rm -f "$RUN/node.env"
  exec bash "${BASH_SOURCE[0]}" "$@" # common.sh's settings read again, without it
fi
dotenv_ignored
# the head's ports (PG_PORT, REDIS_PORT, KAFKA_PORT, RAY_GCS_PORT) from its credentials file,
# unless the environment gives them: a head started with PG_PORT=5433 is reached there
head_ports
log "the head's services: postgres $HEAD_ADDRESS:$PG_PORT, redis $HEAD_ADDRESS:$REDIS_PORT," \
  "kafka $KAFKA_BOOTSTRAP, Ray's GCS $HEAD_ADDRESS:$RAY_GCS_PORT"

is_loopback "$HEAD_ADDRESS" && die "HEAD=$HEAD_ADDRESS is loopback: start the head with" \
  "NODE_ADDRESS=<its address> make up and join that address"
[[ -n "$NODE_ADDRESS" ]] && ! is_loopback "$NODE_ADDRESS" \
  || die "no address of this machine reaches $HEAD_ADDRESS; set NODE_ADDRESS=<this machine's address>"
# the copy of the head's credentials holds every password of the cluster: this user's only,
# whatever mode the copy was made with
[[ ! -f "$CREDENTIALS_FILE" ]] || chmod go-rwx "$CREDENTIALS_FILE" \
  || die "cannot make $CREDENTIALS_FILE private (chmod 600 it)"
for key in "${CREDENTIAL_KEYS[@]}"; do
  [[ -n "${!key:-}" ]] || die "$key is not set: copy the head's .run/credentials.env to" \
    "$CREDENTIALS_FILE (mode 600), or export the head's credentials"
done
# the head's JWT_SECRET and APP_ENV must be this machine's too: actors and gateway replicas
# placed here read them (the secret is not in credentials.env); a prod head's strong secret
# missing here made every actor placed on this machine fail its settings check and restart for
# ever. The head's mode comes with its credentials file (HEAD_APP_ENV), so an APP_ENV left at
# this machine's default (dev) is caught too.
head_env=""  # credentials exported instead of copied: no file, no recorded mode
[[ -r "$CREDENTIALS_FILE" ]] && head_env="$(sed -n 's/^HEAD_APP_ENV=//p' "$CREDENTIALS_FILE" | tail -n 1)"
[[ -z "$head_env" || "$head_env" == "$APP_ENV" ]] \
  || die "the head runs APP_ENV=$head_env, this machine APP_ENV=$APP_ENV: export the head's" \
    "APP_ENV and JWT_SECRET here (README, Adding a machine)"
[[ "$APP_ENV" == dev || "$JWT_SECRET" != devsecret ]] \
  || die "APP_ENV=$APP_ENV needs the head's JWT_SECRET exported here (README, Adding a machine)"
if pid_alive ray-worker; then
  log "already joined (pid $(cat "$RUN/pids/ray-worker.pid")); make leave first"
  exit 0
fi
# the head's CA, which its services' certificates are checked against, and this machine's own
# certificate for Ray's mutual TLS (cluster/tls.sh)
tls_ca_from_credentials
tls_localize_credentials
"$ROOT/cluster/install.sh" --venv-only
# the head's services, with the settings Ray's processes here get: Ray's own join only proves
# its GCS answers, and an actor placed here that cannot reach Postgres retried its start for
# ever, saying so only in its own log
log "checking that this machine reaches the head's postgres, redis and kafka"
env "${RAY_ENV_DROP[@]}" "$PY" -m cluster.reach || die "this machine cannot use the head's" \
  "services (above); nothing was started"

# running PID -> 0 while PID runs (a zombie counts as ended). PID is this script's child, so it
# cannot be another process's before this script reaps it. Not pid_alive: between the fork and
# the child's exec its command line is still this script's, which pid_alive takes for another
# process, removing the record; on a busy box (the namespace harness under its CPU cap) a join
# failed that way at once, twice in a row.
running() {
  local state
  state="$(stat_field "$1" 0)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}
# joined: Ray's startup message is in the log; exits 2 once the process is gone (a wrong token,
# an unreachable GCS): wait_for hides a check's output, so the reason is printed after it
worker=""
joined() {
  running "$worker" || return 2
  grep -q "Ray runtime started" "$RUN/logs/ray-worker.out"
}
joined_or_gone() { joined || [[ $? -eq 2 ]]; }
cpus="${WORKER_NUM_CPUS:-$(nproc)}"
log "ray: joining $HEAD_ADDRESS:$RAY_GCS_PORT as $NODE_ADDRESS (num-cpus=$cpus)"
ray_env
ray_port_args
ray_temp_dir
no_inherited_fds
# --block: this pid is the parent of the node's Ray processes; make leave stops them by it.
env "${RAY_ENV_DROP[@]}" "${RAY_ENV[@]}" setsid nohup "$VENV/bin/ray" start --block \
  --address="$HEAD_ADDRESS:$RAY_GCS_PORT" --node-ip-address="$NODE_ADDRESS" --num-cpus="$cpus" \
  "${RAY_PORT_ARGS[@]}" --disable-usage-stats \
  --temp-dir="$RAY_TEMP" >"$RUN/logs/ray-worker.out" 2>&1 </dev/null &
worker=$!
echo "$worker" >"$RUN/pids/ray-worker.pid"
# a join that fails or times out leaves no node behind: it could register later, and the next
# make join would then answer "already joined"
trap 'stop_pid ray-worker 10 >/dev/null 2>&1 || true' EXIT
wait_for "ray worker node" 120 joined_or_gone
joined || die "ray start failed: $(tail -n 5 "$RUN/logs/ray-worker.out" | tr '\n' ' ')(see $RUN/logs/ray-worker.out)"
trap - EXIT
ray_session_priority "$(cat "$RUN/pids/ray-worker.pid")"
# what this machine joined, for its later make commands (cluster/common.sh): `make status` here
# then reports this node and the head's services, not a local stack that is not there
tmp="$(mktemp "$RUN/join.env.XXXXXX")"
printf 'HEAD_ADDRESS=%s\nNODE_ADDRESS=%s\n' "$HEAD_ADDRESS" "$NODE_ADDRESS" >"$tmp"
replace_if_changed "$tmp" "$RUN/join.env"
log "joined: this machine ($NODE_ADDRESS) is a node of the cluster at $HEAD_ADDRESS"

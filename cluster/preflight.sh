#!/usr/bin/env bash
# Checks that `make up` / `make test` can work on this machine, before they install or start
# anything, and says what to do when not: the OS (Debian or Ubuntu: the stack installs with
# apt-get), root (apt-get, and Postgres runs as the postgres user), Python 3.11 (the lock file's
# interpreter) and the local stack's ports (a port held by a process this stack did not start
# names the port, the process and the variable that moves it). A port held by this checkout's
# own running stack is fine: `make up` reuses it.
#   cluster/preflight.sh          exit 0 when all is well, 1 with every problem listed
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
goal="${1:-up}" # the make goal, for the messages

problems=()
problem() { problems+=("$*"); }

check_os() {
  local id="" like="" pretty
  pretty="$(uname -s)"
  local release="${OS_RELEASE:-/etc/os-release}"
  if [[ -r "$release" ]]; then
    id="$(. "$release" && echo "${ID:-}")"
    like="$(. "$release" && echo "${ID_LIKE:-}")"
    pretty="$(. "$release" && echo "${PRETTY_NAME:-$id}")"
  fi
  if [[ "$id" != debian && "$id" != ubuntu && " $like " != *" debian "* ]]; then
    problem "unsupported OS: $pretty. make up installs PostgreSQL, Redis, Java and Maven with apt-get" \
      "and needs Debian 12 or Ubuntu 22.04/24.04 (see README, Prerequisites); elsewhere use" \
      "docker compose up -d --build (README, Docker Compose)"
  fi
}

check_root() {
  if [[ "$(id -u)" != 0 ]]; then
    problem "not root (uid $(id -u)): make up installs Debian packages and runs Postgres as the" \
      "postgres user; run it as root, e.g. sudo -E make $goal"
  fi
}

# The interpreter install.sh builds .venv from: the venv's own when it exists, else python3.11
# or python3 on PATH, else apt's python3.11, which install.sh installs (Debian 12 minimal).
check_python() {
  local py version
  if [[ -x "$PY" ]] && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    return 0
  fi
  py="$(command -v python3.11 || command -v python3 || true)"
  if [[ "$py" != */python3.11 ]] && apt_has python3.11; then
    log "python3.11: not installed, apt has it (make install installs it)"
    return 0
  fi
  if [[ -z "$py" ]]; then
    problem "no Python found: Python 3.11 is required (Debian 12: apt-get install python3.11" \
      "python3.11-venv; Ubuntu 24.04 ships 3.12: install 3.11 with pyenv or the deadsnakes PPA)"
    return 0
  fi
  version="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo unknown)"
  if [[ "$version" != 3.11.* ]]; then
    problem "wrong Python: $py is $version, the project needs 3.11 (requirements.lock and" \
      "pyproject.toml pin it). Put a python3.11 on PATH (Debian 12: apt-get install python3.11" \
      "python3.11-venv; Ubuntu 24.04: pyenv or the deadsnakes PPA) and run again"
  elif ! "$py" -c 'import ensurepip, venv' 2>/dev/null && ! command -v apt-get >/dev/null; then
    # with apt, cluster/install.sh installs python3.11-venv itself
    problem "$py ($version) has no venv/ensurepip module: install python3.11's venv module"
  fi
}

# pid_mine PID -> 0 when PID is, or descends from, a process recorded in $RUN/pids (this
# checkout's stack: Ray's proxies, dashboard and GCS are children of `ray start --block`).
# Only records of live processes of this stack count (pid_alive): after a reboot a stale one may
# name the very process that now holds a port.
mine=()
for name in pg redis kafka ray ray-worker; do
  if pid_alive "$name"; then mine+=("$(head -n 1 "$RUN/pids/$name.pid")"); fi
done
pid_mine() {
  local pid="$1" m
  while [[ -n "$pid" && "$pid" -gt 1 ]]; do
    for m in "${mine[@]}"; do [[ "$pid" == "$m" ]] && return 0; done
    pid="$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  done
  return 1
}

# holder PORT -> "pid name" of the process listening on PORT (any address); "? ?" when a
# socket listens there but ss may not name its process; nothing when the port is free.
holder() {
  local lines
  lines="$(ss -Hltnp "sport = :$1" 2>/dev/null || true)"
  [[ -z "$lines" ]] && return 0
  grep -q 'pid=' <<<"$lines" || { echo "? ?"; return 0; }
  grep -o 'users:(("[^"]*",pid=[0-9]*' <<<"$lines" | head -n1 \
    | sed -E 's/users:\(\("([^"]*)",pid=([0-9]*)/\2 \1/'
}

# system_service PID -> the systemd service PID runs in, as one stops and disables it (Debian's
# Postgres clusters run as postgresql@<version>-<name>, started by postgresql); nothing when it is
# not a system service. A package this stack installs may have started one (cluster/install.sh
# prevents that, but not for a package installed before, nor after a reboot).
system_service() {
  local unit
  unit="$(sed -n 's#.*/system\.slice/\([^/]*\)\.service$#\1#p' "/proc/$1/cgroup" 2>/dev/null | head -n 1)"
  [[ "$unit" == postgresql@* ]] && unit=postgresql
  echo "$unit"
}

# The stack's ports as set (PORT_KEYS) and the workers' range: a port Ray or a server of the
# stack finds taken by another of its own fails after the others started (Ray checks its own
# components only), so two variables on one port, or a port in the range, are refused here.
port_ok() { [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] && (( $1 <= 65535 )); }
in_worker_range() { worker_ports_ok && (( $1 >= BASH_REMATCH[1] && $1 <= BASH_REMATCH[2] )); }
worker_ports_ok \
  || problem "RAY_WORKER_PORTS=$RAY_WORKER_PORTS is not a range LOW-HIGH of ports (e.g. 20000-20999)"
declare -A port_owner=()
for var in "${PORT_KEYS[@]}"; do
  [[ -n "${!var:-}" ]] || continue
  # (a number before any arithmetic: bash evaluates a word in (( )) as an expression)
  if ! port_ok "${!var}"; then
    problem "$var=${!var} is not a port (1-65535)"
    continue
  fi
  if [[ -n "${port_owner[${!var}]:-}" ]]; then
    problem "${port_owner[${!var}]} and $var are both port ${!var}: give one of them another"
  else
    port_owner[${!var}]="$var"
  fi
  ! in_worker_range "${!var}" || problem "$var=${!var} is in RAY_WORKER_PORTS ($RAY_WORKER_PORTS)," \
    "the range Ray's workers take their ports from: move it, or the range"
done
# next_port PORT -> the first port above PORT that no variable of the stack takes (the advice
# of a busy port's message: PORT + 1 is often the next of the stack's own, 6390 → 6391)
next_port() {
  local p=$(( $1 + 1 ))
  while [[ -n "${port_owner[$p]:-}" ]] || in_worker_range "$p"; do p=$(( p + 1 )); done
  echo "$p"
}

check_port() {
  local var="$1" port="$2" pid name user cmd service
  if ! command -v ss >/dev/null; then
    port_open "$port" && problem "port $port ($var) is in use; stop what listens there or move" \
      "ours: $var=<free port> make $goal (apt-get install iproute2 to see which process)"
    return 0
  fi
  read -r pid name <<<"$(holder "$port")"
  [[ -z "${pid:-}" ]] && return 0
  if [[ "$pid" == "?" ]]; then
    problem "port $port ($var) is in use by a process of another user; stop it, or move ours:" \
      "$var=$(next_port "$port") make $goal"
    return 0
  fi
  pid_mine "$pid" && return 0
  user="$(ps -o user= -p "$pid" 2>/dev/null || echo '?')"
  cmd="$(ps -o args= -p "$pid" 2>/dev/null | cut -c1-100 || true)"
  service="$(system_service "$pid")"
  if [[ -n "$service" ]]; then
    service=" It is the system service $service: \`systemctl disable --now $service\` stops it and"
    service+=" keeps it off after a reboot (this stack runs its own)."
  fi
  problem "port $port ($var) is in use by $name (pid $pid, user $user: $cmd), not by this" \
    "checkout's stack.$service Stop it, or move ours: $var=$(next_port "$port") make $goal" \
    "(the same variable for every make command; see README, Settings)"
}

check_os
check_root
check_python
# Every port variable cluster/common.sh defines (the ones it does not are skipped). Not the
# range of Ray's workers (RAY_WORKER_PORTS): the stack's own drivers (a test, the CLI) take
# their ports from it too, and the raylet passes over a port of it that is in use.
for var in "${PORT_KEYS[@]}"; do
  port_ok "${!var:-}" || continue # (empty, or refused above)
  check_port "$var" "${!var}"
done

if (( ${#problems[@]} )); then
  printf '\033[1;31mpreflight:\033[0m %s\n' "${problems[@]}" >&2
  die "make $goal cannot start: ${#problems[@]} problem(s) above"
fi

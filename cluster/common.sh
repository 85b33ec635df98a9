# Shared settings and helpers of the local stack. Sourced by the other cluster/ scripts.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${RUN_DIR:-$ROOT/.run}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
mkdir -p "$RUN/pids" "$RUN/logs"

export PG_PORT="${PG_PORT:-5432}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export HTTP_PORT="${HTTP_PORT:-8080}"
export DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
export RAY_GCS_PORT="${RAY_GCS_PORT:-6390}"
export RAY_NUM_CPUS="${RAY_NUM_CPUS:-2}"
export METRICS_EXPORT_PORT="${METRICS_EXPORT_PORT:-8090}"
export APP_ENV="${APP_ENV:-dev}"
export JWT_SECRET="${JWT_SECRET:-devsecret}"
export DATABASE_URL="${DATABASE_URL:-postgresql://orders:orders@127.0.0.1:$PG_PORT/orders}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
export RAY_ADDRESS="${RAY_ADDRESS:-127.0.0.1:$RAY_GCS_PORT}"
export KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
export PATH="$VENV/bin:$PATH"

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

log() { printf '\033[1;34m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# pid_alive NAME -> 0 when the pid recorded for NAME is a live process.
pid_alive() {
  local f="$RUN/pids/$1.pid"
  [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# port_open PORT -> 0 when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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

# stop_pid NAME [TIMEOUT_S] -> TERM the recorded process group, KILL it after the timeout.
stop_pid() {
  local name="$1" timeout="${2:-30}" f="$RUN/pids/$1.pid" pid
  [[ -s "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
      if (( SECONDS - start >= timeout )); then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.2
    done
  fi
  rm -f "$f"
}

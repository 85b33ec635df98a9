#!/usr/bin/env bash
# Installs whatever the local stack needs and is missing. Idempotent; fast when all is there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# --venv-only: just the Python venv (what `make token` needs), no apt, Maven or npm.
venv_only=false
[[ "${1:-}" == --venv-only ]] && venv_only=true

# progress WHAT LOG COMMAND... -> COMMAND with its output in LOG; every 10 s a line with the time
# so far and the log's last line, so that a first install (minutes) never looks stuck.
progress() {
  local what="$1" logfile="$2" start=$SECONDS last=$SECONDS pid
  shift 2
  "$@" >>"$logfile" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 10 )); then
      last=$SECONDS
      log "  $what: $((SECONDS - start))s: $(tail -n 1 "$logfile" | tr -d '\r' | cut -c1-90)"
    fi
  done
  wait "$pid"
}

# Debian's postinst scripts start a package's service at once (invoke-rc.d, deb-systemd-invoke):
# on a systemd host postgresql and redis-server would take 5432 and 6379, which preflight has
# just found free, and this stack's own servers would then fail to bind. While this script
# installs, a policy-rc.d that forbids every start (exit 101, policy-rc.d's "action forbidden")
# holds them back; one already there (a container image's) is left as it is. Ours goes when the
# script ends, on failure too.
POLICY_RC=/usr/sbin/policy-rc.d
policy_ours=false
hold_services() {
  $policy_ours && return 0
  [[ -e "$POLICY_RC" || -L "$POLICY_RC" ]] && return 0
  # set -C: never over a file that appeared meanwhile
  (set -C && printf '#!/bin/sh\n# %s\nexit 101\n' \
    "cluster/install.sh (pid $$): no service starts while it installs; removed when it ends" \
    >"$POLICY_RC") 2>/dev/null || return 0
  chmod 755 "$POLICY_RC"
  policy_ours=true
  trap release_services EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
release_services() {
  if $policy_ours && grep -q "cluster/install.sh (pid $$)" "$POLICY_RC" 2>/dev/null; then
    rm -f "$POLICY_RC"
  fi
  policy_ours=false
}
# The packages' units are also enabled for the next boot, where they would take the ports
# again: those of the packages this run installed are disabled (never a service that was there
# before). Without systemd (a container) there is nothing to disable.
disable_units() {
  [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null || return 0
  log "systemd: disabling $* (this stack runs its own servers from $RUN)"
  systemctl disable --quiet "$@" >>"$RUN/logs/apt.log" 2>&1 \
    || log "systemd: could not disable $*; see $RUN/logs/apt.log (a running one takes its port)"
}

need_apt=()
[[ -n "$PG_BIN" && -x "$PG_BIN/postgres" ]] || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v wrk >/dev/null || need_apt+=(wrk)
# cluster/up.sh waits for the gateway with curl, and the tests call it; Debian marks it optional
command -v curl >/dev/null || need_apt+=(curl)
# the multi-host tests' namespaces (tests/multinode, make bench-scale) and make join's route lookup
command -v ip >/dev/null || need_apt+=(iproute2)
if (( ${#need_apt[@]} )) && ! $venv_only; then
  log "apt: installing ${need_apt[*]}"
  hold_services
  : >"$RUN/logs/apt.log"
  progress "apt-get update" "$RUN/logs/apt.log" apt-get update \
    || die "apt-get update failed; see $RUN/logs/apt.log"
  progress apt "$RUN/logs/apt.log" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}" \
    || die "apt-get install failed; see $RUN/logs/apt.log"
  units=()
  [[ " ${need_apt[*]} " == *" postgresql "* ]] && units+=(postgresql)
  [[ " ${need_apt[*]} " == *" redis-server "* ]] && units+=(redis-server)
  (( ${#units[@]} == 0 )) || disable_units "${units[@]}"
fi
# pg_partman for the installed PostgreSQL major: it manages the partitions of the append-only
# tables (migration 0006, docs/adr/ADR-012-retention.md). Known only once PostgreSQL is there.
pg_major="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -n "$pg_major" && ! -f "/usr/share/postgresql/$pg_major/extension/pg_partman.control" ]] \
  && ! $venv_only; then
  log "apt: installing postgresql-$pg_major-partman"
  hold_services
  partman=(env DEBIAN_FRONTEND=noninteractive apt-get install -y "postgresql-$pg_major-partman")
  progress apt "$RUN/logs/apt.log" "${partman[@]}" \
    || { progress "apt-get update" "$RUN/logs/apt.log" apt-get update \
      && progress apt "$RUN/logs/apt.log" "${partman[@]}"; } \
    || die "apt-get install postgresql-$pg_major-partman failed; see $RUN/logs/apt.log"
fi

# Python: a project venv, installed from the lock file; re-run only when the inputs change.
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha1sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  py="$(command -v python3.11 || command -v python3)"
  "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || die "Python 3.11 is required (found $("$py" --version)); install python3.11"
  [[ -x "$PY" ]] || "$py" -m venv "$VENV"
  log "pip: installing the project and its pinned dependencies (first time ~1 min)"
  "$PY" -m pip install -q --upgrade pip >"$RUN/logs/pip.log" 2>&1
  progress pip "$RUN/logs/pip.log" "$PY" -m pip install --progress-bar off \
    -c "$ROOT/requirements.lock" -e "${ROOT}[dev]" || die "pip install failed; see $RUN/logs/pip.log"
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
$venv_only && exit 0

# Node.js tools for the API collection checks (newman).
"$ROOT/cluster/install-node-tools.sh" >/dev/null
# kubectl for the offline checks of k8s/ (Debian's kubernetes-client).
"$ROOT/cluster/install-kubectl.sh" >/dev/null

# Kafka: the official jars from Maven Central, resolved by Maven's dependency plugin.
kafka_libs="$RUN/kafka-$KAFKA_VERSION/libs"
if [[ ! -f "$kafka_libs/.complete" ]]; then
  log "maven: fetching Apache Kafka $KAFKA_VERSION jars into $kafka_libs"
  mkdir -p "$kafka_libs"
  : >"$RUN/logs/maven.log"
  progress maven "$RUN/logs/maven.log" mvn -B -f "$ROOT/cluster/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies -DoutputDirectory="$kafka_libs" \
    -DincludeScope=runtime || die "maven could not fetch Kafka; see $RUN/logs/maven.log"
  touch "$kafka_libs/.complete"
fi

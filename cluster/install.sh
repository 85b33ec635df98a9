#!/usr/bin/env bash
# Installs whatever the local stack needs and is missing. Idempotent; fast when all is there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# --venv-only: just the Python venv (what `make token` needs), no apt, Maven or npm.
venv_only=false
[[ "${1:-}" == --venv-only ]] && venv_only=true

# progress WHAT LOG COMMAND... -> COMMAND with its output in LOG; every 10 s a line with the time
# so far and the log's last line, so that a first install (minutes) never looks stuck.
# A command a script starts with & ignores SIGINT (no job control): after a Ctrl-C it would carry
# on, and the next run would start a second apt or pip beside it. So an INT or TERM stops it
# (TERM), waits for it and ends the script (130, 143); the traps set before (hold_services') are
# back once COMMAND is done.
progress() {
  local what="$1" logfile="$2" start=$SECONDS last=$SECONDS rc=0 traps
  shift 2
  traps="$(trap -p INT TERM)"
  progress_pid=""
  trap 'progress_stop 130' INT
  trap 'progress_stop 143' TERM
  "$@" >>"$logfile" 2>&1 &
  progress_pid=$!
  while kill -0 "$progress_pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 10 )); then
      last=$SECONDS
      log "  $what: $((SECONDS - start))s: $(tail -n 1 "$logfile" | tr -d '\r' | cut -c1-90)"
    fi
  done
  wait "$progress_pid" || rc=$?
  progress_pid=""
  trap - INT TERM
  eval "$traps"
  return "$rc"
}
progress_stop() {
  if [[ -n "${progress_pid:-}" ]]; then
    kill -TERM "$progress_pid" 2>/dev/null || true
    wait "$progress_pid" 2>/dev/null || true
  fi
  exit "$1"
}

# Debian's postinst scripts start a package's service at once (invoke-rc.d, deb-systemd-invoke):
# on a systemd host postgresql and redis-server would take 5432 and 6379, which preflight has
# just found free, and this stack's own servers would then fail to bind. While this script
# installs, a policy-rc.d that forbids every start (exit 101, policy-rc.d's "action forbidden")
# holds them back; one already there (a container image's) is left as it is. Ours goes when the
# script ends, on failure too. POLICY_RC: another path (the tests).
POLICY_RC="${POLICY_RC:-/usr/sbin/policy-rc.d}"
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
# clear_stale_policy -> removes a policy-rc.d of ours whose install.sh no longer runs (SIGKILLed,
# or the machine went down mid-install: no EXIT trap ran). Left there it would keep every
# package's service on this host from starting, for good.
clear_stale_policy() {
  local pid cmdline
  [[ -f "$POLICY_RC" ]] || return 0
  pid="$(sed -n 's#.*cluster/install\.sh (pid \([0-9]*\)).*#\1#p' "$POLICY_RC" 2>/dev/null || true)"
  pid="${pid%%$'\n'*}"
  [[ -n "$pid" ]] || return 0
  # a running install.sh's (not this one's: it made none yet, so the pid is a former process's)
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
  [[ "$pid" != "$$" && "$cmdline" == *install.sh* ]] && return 0
  if rm -f "$POLICY_RC" 2>/dev/null; then
    log "apt: removed $POLICY_RC, left by cluster/install.sh pid $pid, which no longer runs"
  else
    log "apt: $POLICY_RC was left by cluster/install.sh pid $pid, which no longer runs; remove it"
  fi
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

$venv_only || clear_stale_policy

# The Python venv: made from python3.11 (or a python3 that is 3.11), installed from the lock
# file; pip runs again only when its inputs change (the stamp) or the venv no longer runs.
PIP_VERSION=26.3 # the venv's own pip, exact (pip's build isolation fetches setuptools: pyproject.toml)
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha1sum | cut -c1-12)"
venv_fresh() { [[ -f "$stamp" ]] && "$PY" -c '' 2>/dev/null; }
# venv_ok -> 0 when the venv runs Python 3.11 and has its pip: one left without pip (ensurepip
# interrupted) or whose interpreter is gone (the base Python removed) is made anew.
venv_ok() {
  "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
    && "$PY" -m pip --version >/dev/null 2>&1
}
base_python() { command -v python3.11 || command -v python3 || true; }
is_311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }

need_apt=()
# Debian's python3.11 comes without ensurepip, which `python3.11 -m venv` needs: python3.11-venv
if ! $venv_only && ! venv_fresh && ! venv_ok; then
  py="$(base_python)"
  if [[ -z "$py" ]] || { ! command -v python3.11 >/dev/null && ! is_311 "$py"; }; then
    need_apt+=(python3.11 python3.11-venv)
  elif is_311 "$py" && ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    need_apt+=(python3.11-venv)
  fi
fi
[[ -n "$PG_BIN" && -x "$PG_BIN/postgres" ]] || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# (a Java older than Kafka's 17 gets openjdk-17-jre-headless below)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v wrk >/dev/null || need_apt+=(wrk)
# cluster/up.sh waits for the gateway with curl, and the tests call it; Debian marks it optional
command -v curl >/dev/null || need_apt+=(curl)
# the stack's CA and certificates in multi-host mode (cluster/tls.sh); nearly always there
command -v openssl >/dev/null || need_apt+=(openssl)
# the multi-host tests' namespaces (tests/multinode, make bench-scale) and make join's route lookup
command -v ip >/dev/null || need_apt+=(iproute2)
# their hosts' firewalls (cluster/netns.sh loads cluster/firewall.sh's rule set in each)
command -v nft >/dev/null || need_apt+=(nftables)
# A package an interrupted install left unpacked but not configured has its files in place, so
# the checks above skip it, and every later apt-get refuses until dpkg finishes it.
if ! $venv_only && command -v dpkg >/dev/null && [[ -n "$(dpkg --audit 2>/dev/null)" ]]; then
  log "dpkg: finishing what an interrupted install left (dpkg --configure -a)"
  hold_services
  progress dpkg "$RUN/logs/apt.log" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a \
    --force-confdef --force-confold || die "dpkg --configure -a failed; see $RUN/logs/apt.log"
fi
if (( ${#need_apt[@]} )) && ! $venv_only; then
  log "apt: installing ${need_apt[*]}"
  hold_services
  : >"$RUN/logs/apt.log"
  progress "apt-get update" "$RUN/logs/apt.log" apt_get update \
    || die "apt-get update failed; see $RUN/logs/apt.log"
  progress apt "$RUN/logs/apt.log" apt_get install -y "${need_apt[@]}" \
    || die "apt-get install failed; see $RUN/logs/apt.log"
  units=()
  [[ " ${need_apt[*]} " == *" postgresql "* ]] && units+=(postgresql)
  [[ " ${need_apt[*]} " == *" redis-server "* ]] && units+=(redis-server)
  (( ${#units[@]} == 0 )) || disable_units "${units[@]}"
fi
# pg_partman for the installed PostgreSQL major: it manages the partitions of the append-only
# tables (migration 0006, docs/adr/ADR-012-retention.md). Known only once PostgreSQL is there.
# apt_late PACKAGE... -> installed after the step above, with an `apt-get update` and a second
# try when the first fails (the package lists may be older than the package)
apt_late() {
  local install=(apt_get install -y "$@")
  log "apt: installing $*"
  hold_services
  progress apt "$RUN/logs/apt.log" "${install[@]}" \
    || { progress "apt-get update" "$RUN/logs/apt.log" apt_get update \
      && progress apt "$RUN/logs/apt.log" "${install[@]}"; } \
    || die "apt-get install $* failed; see $RUN/logs/apt.log"
}
# (the major whose server is installed, as common.sh's PG_BIN: apt may have just installed it)
pg_major="$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)"
pg_major="${pg_major#/usr/lib/postgresql/}" && pg_major="${pg_major%%/*}"
if [[ -n "$pg_major" && ! -f "/usr/share/postgresql/$pg_major/extension/pg_partman.control" ]] \
  && ! $venv_only; then
  apt_late "postgresql-$pg_major-partman"
fi
# Kafka's Java, 17 or newer (common.sh's kafka_java): Debian 12's default Java is 17, Ubuntu
# 22.04's is 11, and a machine may have an older one on PATH already
if ! $venv_only && [[ -z "$(kafka_java)" ]]; then
  apt_late openjdk-17-jre-headless
  [[ -n "$(kafka_java)" ]] || die "no Java $KAFKA_MIN_JAVA or newer after installing" \
    "openjdk-17-jre-headless; Kafka $KAFKA_VERSION needs one (java on PATH or in $JVM_DIR)"
fi

if ! venv_fresh; then
  py="$(base_python)"
  [[ -n "$py" ]] || die "no python3.11 or python3 on PATH: Python 3.11 is required (Debian 12:" \
    "apt-get install python3.11 python3.11-venv; README, Prerequisites)"
  is_311 "$py" || die "Python 3.11 is required (found $("$py" --version 2>&1)); install python3.11"
  if ! venv_ok; then
    log "venv: making $VENV (none yet, or one without pip or a working interpreter)"
    "$py" -m venv --clear "$VENV" >"$RUN/logs/venv.log" 2>&1 \
      || die "$py -m venv failed; see $RUN/logs/venv.log (Debian: apt-get install python3.11-venv)"
  fi
  log "pip: installing the project and its pinned dependencies (first time ~1 min)"
  : >"$RUN/logs/pip.log"
  progress pip "$RUN/logs/pip.log" "$PY" -m pip install -q --upgrade "pip==$PIP_VERSION" \
    || die "pip could not install pip $PIP_VERSION into $VENV; see $RUN/logs/pip.log"
  progress pip "$RUN/logs/pip.log" "$PY" -m pip install --progress-bar off \
    -c "$ROOT/requirements.lock" -e "${ROOT}[dev]" || die "pip install failed; see $RUN/logs/pip.log"
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
$venv_only && exit 0

# Node.js tools for the API collection checks (newman).
"$ROOT/cluster/install-node-tools.sh" >/dev/null
# kubectl for the offline checks of k8s/ (Debian's kubernetes-client).
"$ROOT/cluster/install-kubectl.sh" >/dev/null

# Kafka: the official jars from Maven Central, resolved by Maven's dependency plugin (pinned;
# -C: a checksum that does not match fails). libs/.complete names the pom.xml and Kafka version
# they were fetched for: either changed, they are fetched again, into a directory beside libs/
# that takes its place once complete (an interrupted fetch leaves libs/ as it was).
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
kafka_home="$RUN/kafka-$KAFKA_VERSION"
kafka_libs="$kafka_home/libs"
kafka_key="pom.xml $(sha1sum <"$ROOT/cluster/kafka/pom.xml" | cut -c1-12), Kafka $KAFKA_VERSION"
if [[ "$(cat "$kafka_libs/.complete" 2>/dev/null)" != "$kafka_key" ]]; then
  log "maven: fetching Apache Kafka $KAFKA_VERSION jars into $kafka_libs"
  mkdir -p "$kafka_home"
  # what an interrupted fetch left (an hour old: never one that is still running)
  find "$kafka_home/" -maxdepth 1 -name 'libs.new.*' -mmin +60 -exec rm -rf {} +
  new="$(mktemp -d "$kafka_libs.new.XXXXXX")"
  chmod 755 "$new"
  : >"$RUN/logs/maven.log"
  progress maven "$RUN/logs/maven.log" mvn -B -C -f "$ROOT/cluster/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$new" -DincludeScope=runtime \
    || { rm -rf "$new"; die "maven could not fetch Kafka; see $RUN/logs/maven.log"; }
  compgen -G "$new/kafka_*.jar" >/dev/null \
    || { rm -rf "$new"; die "maven fetched no Kafka jar; see $RUN/logs/maven.log"; }
  echo "$kafka_key" >"$new/.complete"
  if [[ -e "$kafka_libs" ]]; then mv "$kafka_libs" "$new.old"; fi
  mv "$new" "$kafka_libs"
  rm -rf "$new.old"
fi

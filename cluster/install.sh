#!/usr/bin/env bash
# Installs whatever the local stack needs and is missing. Idempotent; fast when all is there.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_apt=()
[[ -n "$PG_BIN" && -x "$PG_BIN/postgres" ]] || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v wrk >/dev/null || need_apt+=(wrk)
if (( ${#need_apt[@]} )); then
  log "apt: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >"$RUN/logs/apt.log" 2>&1 \
    || die "apt-get install failed; see $RUN/logs/apt.log"
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
  "$PY" -m pip install -q -c "$ROOT/requirements.lock" -e "$ROOT[dev]" >>"$RUN/logs/pip.log" 2>&1 \
    || die "pip install failed; see $RUN/logs/pip.log"
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi

# Node.js tools for the API collection checks (newman).
"$ROOT/cluster/install-node-tools.sh" >/dev/null

# Kafka: the official jars from Maven Central, resolved by Maven's dependency plugin.
kafka_libs="$RUN/kafka-$KAFKA_VERSION/libs"
if [[ ! -f "$kafka_libs/.complete" ]]; then
  log "maven: fetching Apache Kafka $KAFKA_VERSION jars into $kafka_libs"
  mkdir -p "$kafka_libs"
  mvn -q -B -f "$ROOT/cluster/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$kafka_libs" -DincludeScope=runtime \
    >"$RUN/logs/maven.log" 2>&1 || die "maven could not fetch Kafka; see $RUN/logs/maven.log"
  touch "$kafka_libs/.complete"
fi

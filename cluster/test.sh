#!/usr/bin/env bash
# make test: on a fresh machine too. Installs what is missing, lints, type-checks, starts the
# services that are not running (reusing running ones), runs the whole suite, and stops again
# exactly what it started.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# The whole run holds .run/heavy.lock (cluster/heavy.sh), not just pytest: its make up redeploys
# a running stack with the suite's shard counts (every actor restarted) and cleanup gives the
# old ones back, which restarted a make bench or chaos of this checkout in the middle of its run.
[[ -n "${HEAVY_LOCK_HELD:-}" ]] || exec "$ROOT/cluster/heavy.sh" "$ROOT/cluster/test.sh" "$@"
t0=$SECONDS
"$ROOT/cluster/preflight.sh" test # OS, root, Python 3.11, free ports: fail early and clearly
"$ROOT/cluster/install.sh"
cd "$ROOT"
log "ruff"
"$PY" -m ruff check .
log "mypy --strict"
"$PY" -m mypy
svc="$ROOT/cluster/services.sh"
# The settings read below need the stack's credentials (its Kafka login, the default:
# kafka_auth): generated here on a fresh clone, as make up would.
ensure_credentials
# The suite runs two inventory and two payment shards (the default on one host is one of each,
# docs/adr/ADR-014), so the rules that span shards (an order's SKUs on two shards) are tested.
# A stack that was already up gets the caller's counts back afterwards: as its Settings read them
# (the environment, else .env, else the default), not the environment alone.
read -r _inventory _payment < <("$PY" -c 'from core.settings import get_settings as g
s = g(); print(s.inventory_shards, s.payment_shards)') || die "the settings do not load: see above"
own_shards=("INVENTORY_SHARDS=$_inventory" "PAYMENT_SHARDS=$_payment")
export INVENTORY_SHARDS="${TEST_INVENTORY_SHARDS:-2}" PAYMENT_SHARDS="${TEST_PAYMENT_SHARDS:-2}"
# Remember what was already up, so cleanup stops only what this run started.
was_up=()
pid_alive pg && was_up+=(pg)
pid_alive redis && was_up+=(redis)
pid_alive kafka && was_up+=(kafka)
pid_alive ray && was_up+=(ray)
# A clone Postgres cannot enter keeps its database in /var/tmp (cluster/services.sh): one this
# run makes there is removed with the server it started (CI's clones, one per run, left a
# database of their own each, up to gigabytes, that no `make clean-data` ever reached).
pgdata="$("$svc" pgdata)"
made_pgdata=false
[[ "$pgdata" == "$(pg_fallback_data)" && ! -e "$pgdata" ]] && made_pgdata=true
cleanup() {
  local rc=$?
  if [[ " ${was_up[*]} " == *" ray "* \
     && "${own_shards[*]}" != "INVENTORY_SHARDS=$INVENTORY_SHARDS PAYMENT_SHARDS=$PAYMENT_SHARDS" ]]; then
    log "giving the running stack its shard counts back (${own_shards[*]})"
    env "${own_shards[@]}" "$PY" -m cli.main deploy >>"$RUN/logs/test-up.log" 2>&1 \
      || log "redeploy failed (see $RUN/logs/test-up.log): run make up"
  fi
  for s in ray kafka redis pg; do
    [[ " ${was_up[*]} " == *" $s "* ]] || "$svc" stop "$s" || true
  done
  if $made_pgdata && ! pid_alive pg; then
    log "removing the database this run made in $pgdata"
    rm -rf -- "$pgdata"
  fi
  exit $rc
}
trap cleanup EXIT
"$ROOT/cluster/up.sh" >"$RUN/logs/test-up.log" 2>&1 || { tail -40 "$RUN/logs/test-up.log"; die "make up failed"; }
# the credentials a first make up generated, for the tests that connect with them
load_credentials && derive_urls && stack_switches
log "stack ready ($((SECONDS - t0))s); running pytest"
set +e
"$ROOT/cluster/heavy.sh" "$PY" -m pytest -p no:cacheprovider -q -ra "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then die "pytest collected no tests"; fi
log "make test finished in $((SECONDS - t0))s (pytest exit $rc)"
exit $rc

#!/usr/bin/env bash
# Runs a command that loads the machine (chaos, benchmark) while holding .run/heavy.lock, so two
# such runs never overlap and skew each other's numbers. Nested calls reuse the held lock. A lock
# another run holds is named before this one waits for it.
#   cluster/heavy.sh COMMAND...
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -n "${HEAVY_LOCK_HELD:-}" ]]; then
  exec "$@"
fi
export HEAVY_LOCK_HELD=1
lock="$RUN/heavy.lock"
# this user's alone: flock takes its lock through any descriptor, a read-only one too, so a lock
# file others could open let any local user hold every make test, bench and chaos back
(umask 077 && : >>"$lock") && chmod 600 "$lock"
if ! flock -n "$lock" true; then
  log "waiting for $lock (another make test/bench/chaos/soak is running)…" >&2
fi
# -o: the lock stays with flock itself, never with daemons the command may start
exec flock -o "$lock" "$@"

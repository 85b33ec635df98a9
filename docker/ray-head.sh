#!/usr/bin/env bash
# Entry point of the compose `ray-head` container: the Ray head node, then `deploy` (actors and
# the Serve app), the last step of `make up`. The steps before it (migrate, seed, topics) ran in
# the one-shot `init` service, which compose waits for (service_completed_successfully). Ray
# stays in the foreground (--block), so the container lives exactly as long as the head node.
set -euo pipefail

# the Ray token of docker/secrets.dev.env is public: with it anyone who reaches the dashboard runs
# code on every node. The platform refuses its other committed demo secrets outside APP_ENV=dev
# (core/demo_passwords.py); this one only Ray reads, so it is refused here.
DEV_RAY_TOKEN=ray-dev-token-0123456789abcdef
if [[ "${APP_ENV:-dev}" != dev && "${RAY_AUTH_TOKEN:-}" == "$DEV_RAY_TOKEN" ]]; then
  echo "ray-head: RAY_AUTH_TOKEN is the committed demo token while APP_ENV=$APP_ENV; set a" \
    "token of your own in docker/secrets.env (docs/security.md)" >&2
  exit 2
fi

GCS_PORT="${RAY_GCS_PORT:-6390}"
# `docker compose stop` sends SIGTERM to this script, the container's PID 1, which ignores it
# unless trapped: compose then killed the container after its grace, Ray's processes unstopped.
# Ray stops them on SIGTERM (after draining the node: compose's stop_grace_period allows it), so
# it is passed on, to the deploy too while it runs, and awaited. bash runs a trap only between
# commands: the deploy and the polls run in the background, waited for with `wait`, which a
# signal interrupts. (Set before Ray starts: a signal then finds the trap.)
ray_pid="" child=""
stop() {
  [[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null || true
  if [[ -n "$ray_pid" ]]; then
    kill -TERM "$ray_pid" 2>/dev/null || true
    wait "$ray_pid" || true
  fi
  exit "$1"
}
trap 'stop 143' TERM
trap 'stop 130' INT
# in_background CMD... -> CMD's exit status; a signal meanwhile stops everything (stop)
in_background() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

ray start --head --block --port="$GCS_PORT" --num-cpus="${RAY_NUM_CPUS:-2}" \
  --dashboard-host=0.0.0.0 --dashboard-port="${DASHBOARD_PORT:-8265}" \
  --metrics-export-port="${METRICS_EXPORT_PORT:-8090}" --disable-usage-stats &
ray_pid=$!

until in_background ray status --address="127.0.0.1:$GCS_PORT" >/dev/null 2>&1; do
  kill -0 "$ray_pid" 2>/dev/null || { echo "ray start exited" >&2; exit 1; }
  in_background sleep 1
done

RAY_ADDRESS="127.0.0.1:$GCS_PORT" in_background python -m cli.main deploy
echo "ray-head: API on :${HTTP_PORT:-8080}, dashboard on :${DASHBOARD_PORT:-8265}"
wait "$ray_pid"

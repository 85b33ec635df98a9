#!/usr/bin/env bash
# HAProxy as Ray Serve's ingress starts it (RAY_SERVE_HAPROXY_BINARY_PATH points here; set by
# cluster/services.sh): the real binary (ORDERS_HAPROXY_BIN) with the configuration Ray wrote,
# tightened where Ray offers no setting (docs/security.md, "Ports"):
#   - the admin socket `mode 600` instead of 666 (its directory is private as well);
#   - the stats page and the Prometheus frontend on loopback instead of every interface, and the
#     stats page behind basic auth (user `ops`, password: the cluster's RAY_AUTH_TOKEN; it shows
#     HAProxy's version and the backend addresses);
#   - `timeout http-request 10s`: a client gets 10 s to send its request headers (without it
#     only the 3600 s client inactivity timeout bounds a slow sender);
#   - no access log unless RAY_SERVE_HAPROXY_LOG_TARGET names a syslog target: Ray's default
#     sends a line per request to 127.0.0.1:514 over UDP, where nothing listens here (its
#     metrics, the one reader, are off: cluster/common.sh). That line cost ~20 us of HAProxy's
#     CPU per request (~80 us in all) and two UDP sockets on every interface.
# Ray regenerates the file before every (re)start and passes it with -f; the edits are idempotent.
set -euo pipefail
real="${ORDERS_HAPROXY_BIN:?ORDERS_HAPROXY_BIN (the HAProxy binary) is not set}"
stats="${RAY_SERVE_HAPROXY_STATS_PORT:-8404}" metrics="${RAY_SERVE_HAPROXY_METRICS_PORT:-9101}"
conf="" prev=""
for arg in "$@"; do
  [[ "$prev" == -f ]] && conf="$arg"
  prev="$arg"
done
if [[ -n "$conf" && -w "$conf" ]]; then
  tmp="$conf.tightened.$$"
  edits=(-e "s/^([[:space:]]*stats socket [^[:space:]]+) mode 666 /\1 mode 600 /")
  [[ -n "${RAY_SERVE_HAPROXY_LOG_TARGET:-}" ]] || edits+=(-e '/^[[:space:]]*log 127\.0\.0\.1:514 /d')
  sed -E "${edits[@]}" \
    -e "s/^([[:space:]]*bind )(\*)?:($stats|$metrics)[[:space:]]*$/\1127.0.0.1:\3/" "$conf" |
    awk '{ print } /^defaults[[:space:]]*$/ && !done { print "    timeout http-request 10s"; done = 1 }' |
    awk '!(/^[[:space:]]*timeout http-request / && seen++)' |
    awk 'BEGIN { auth = ENVIRON["RAY_AUTH_TOKEN"] } { print }
      /^[[:space:]]*stats enable[[:space:]]*$/ && auth != "" && !done { print "  stats auth ops:" auth; done = 1 }' |
    awk '!(/^[[:space:]]*stats auth / && seen++)' >"$tmp"
  mv -f "$tmp" "$conf"
fi
exec "$real" "$@"

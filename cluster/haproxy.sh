#!/usr/bin/env bash
# HAProxy as Ray Serve's ingress starts it (RAY_SERVE_HAPROXY_BINARY_PATH points here; set by
# cluster/services.sh): the real binary (ORDERS_HAPROXY_BIN) with the configuration Ray wrote,
# tightened where Ray offers no setting (docs/security.md, "Ports"):
#   - the admin socket `mode 600` instead of 666 (its directory is private as well), and the
#     rewritten file itself mode 600 (it holds the stats page's password);
#   - the stats page and the Prometheus frontend on loopback instead of every interface, and the
#     stats page behind basic auth (user `ops`, password: HAPROXY_STATS_PASSWORD, generated in
#     the stack's credentials; a password of its own, not the Ray token, so that whoever is given
#     the page is given nothing else). Without a password (a Ray started before the setting
#     existed, whose environment lacks it) the stats page is left out, not left open: HAProxy
#     itself must keep starting, Ray reloads it whenever a replica comes or goes;
#   - `timeout http-request 10s`: a client gets 10 s to send its request headers (without it
#     only the 3600 s client inactivity timeout bounds a slow sender);
#   - HAProxy's own answers in the API's JSON error shape with `Cache-Control: no-store`
#     (README, "Errors"): 500, and 503 with `Retry-After: 1` for its 502/503/504 (no replica
#     answered; Ray's template maps those to a plain-text 500). The 400 and 408 files are
#     written too, but the HAProxy Ray ships (2.8) ignores `errorfile` for errors it answers
#     while still parsing a request (haproxy/haproxy#3032, fixed in 3.2): those stay HTML;
#   - Serve's own endpoints, which HAProxy answers itself (/-/healthz, /-/routes; probes read
#     them): their answers carry `Cache-Control: no-store` and `nosniff` like the API's, and a
#     method but GET or HEAD there gets the API's JSON 405 with `Allow` (README, "Errors");
#   - no access log unless RAY_SERVE_HAPROXY_LOG_TARGET names a syslog target: Ray's default
#     sends a line per request to 127.0.0.1:514 over UDP, where nothing listens here (its
#     metrics, the one reader, are off: cluster/common.sh). That line cost ~20 us of HAProxy's
#     CPU per request (~80 us in all) and two UDP sockets on every interface.
# Ray regenerates the file before every (re)start and passes it with -f; the edits are idempotent.
set -euo pipefail
umask 077
real="${ORDERS_HAPROXY_BIN:?ORDERS_HAPROXY_BIN (the HAProxy binary) is not set}"
stats="${RAY_SERVE_HAPROXY_STATS_PORT:-8404}" metrics="${RAY_SERVE_HAPROXY_METRICS_PORT:-9101}"
conf="" prev=""
for arg in "$@"; do
  [[ "$prev" == -f ]] && conf="$arg"
  prev="$arg"
done

# error_file STATUS REASON CODE MESSAGE [HEADER] -> an HTTP response in the API's error shape.
error_file() {
  local body="{\"error\":{\"code\":\"$3\",\"message\":\"$4\"}}" extra=""
  [[ -n "${5:-}" ]] && extra="$5"$'\r\n'
  printf 'HTTP/1.1 %s %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$1" "$2" "$extra" "${#body}" "$body"
}

if [[ -n "$conf" && -w "$conf" ]]; then
  if [[ -z "${HAPROXY_STATS_PASSWORD:-}" ]]; then
    echo "haproxy.sh: HAPROXY_STATS_PASSWORD is not set: the stats page is left out (make down && make up gives Ray the password)" >&2
  fi
  dir="$(dirname "$conf")"
  error_file 400 "Bad Request" bad_request "HTTP request not understood" >"$dir/orders-400.http"
  error_file 408 "Request Timeout" request_timeout "request headers not sent within 10 s" >"$dir/orders-408.http"
  error_file 500 "Internal Server Error" internal "internal error" >"$dir/orders-500.http"
  error_file 503 "Service Unavailable" unavailable "no gateway replica answered; retry shortly" \
    "Retry-After: 1" >"$dir/orders-503.http"
  chmod 644 "$dir"/orders-*.http  # HAProxy reads them; they hold nothing secret
  errors="    errorfile 400 $dir/orders-400.http
    errorfile 408 $dir/orders-408.http
    errorfile 500 $dir/orders-500.http
    errorfile 502 $dir/orders-503.http
    errorfile 503 $dir/orders-503.http
    errorfile 504 $dir/orders-503.http"
  no_store='hdr Cache-Control no-store hdr X-Content-Type-Options nosniff'
  not_allowed='http-request return status 405 content-type application/json '"$no_store"' hdr Allow "GET, HEAD" string "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"use GET or HEAD\"}}"'
  # what no route takes (a request target that is no path: `OPTIONS *`): Ray's plain-text 404
  # echoing the path, without the API's headers
  not_found='http-request return status 404 content-type application/json '"$no_store"' string "{\"error\":{\"code\":\"not_found\",\"message\":\"Not Found\"}}"'
  tmp="$conf.tightened.$$"
  edits=(-e "s/^([[:space:]]*stats socket [^[:space:]]+) mode 666 /\1 mode 600 /")
  [[ -n "${RAY_SERVE_HAPROXY_LOG_TARGET:-}" ]] || edits+=(-e '/^[[:space:]]*log 127\.0\.0\.1:514 /d')
  # Ray's errorfile lines go, with their comment (two lines), for the ones above
  sed -E "${edits[@]}" -e '/^[[:space:]]*errorfile /d' -e '/# Normalize 502\/503\/504 to 500/,+1d' \
    -e "s/^([[:space:]]*bind )(\*)?:($stats|$metrics)[[:space:]]*$/\1127.0.0.1:\3/" "$conf" |
    ERRORS="$errors" awk '{ print }
      /^defaults[[:space:]]*$/ && !done { print "    timeout http-request 10s"; print ENVIRON["ERRORS"]; done = 1 }' |
    awk '!(/^[[:space:]]*timeout http-request / && seen++)' |
    NOT_ALLOWED="$not_allowed" NOT_FOUND="$not_found" awk -v hdrs="$no_store" '
      BEGIN { refuse = ENVIRON["NOT_ALLOWED"]; missing = ENVIRON["NOT_FOUND"] }
      /^[[:space:]]*http-request return status 405 .* !METH_GET$/ { next }
      /^[[:space:]]*http-request return status 404 content-type text\/plain / { print "    " missing; next }
      /^[[:space:]]*http-request return status [0-9]+ .* if (healthcheck|routes)/ && !index($0, hdrs) {
        sub(/ if (healthcheck|routes)/, " " hdrs "&") }
      { print }
      /^[[:space:]]*acl (healthcheck|routes) path / { print "    " refuse " if " $2 " !METH_GET" }' |
    awk 'BEGIN { auth = ENVIRON["HAPROXY_STATS_PASSWORD"] }
      /^[^[:space:]#]/ { skip = (auth == "" && $1 == "listen" && $2 == "stats") }
      skip || /^[[:space:]]*stats auth / { next }
      { print }
      /^[[:space:]]*stats enable[[:space:]]*$/ && !done { print "  stats auth ops:" auth; done = 1 }' >"$tmp"
  mv -f "$tmp" "$conf"
fi
exec "$real" "$@"

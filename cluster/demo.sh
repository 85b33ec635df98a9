#!/usr/bin/env bash
# make demo: the seed's quickstart against the running stack, then the order's live status
# (Server-Sent Events) until it is final, then the order with its timeline. DEMO_WAIT_S (60): how
# long it follows the order before it gives up.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
api="$(gateway_url localhost)"
wait_s="${DEMO_WAIT_S:-60}"
[[ "$wait_s" =~ ^[1-9][0-9]{0,4}$ ]] || die "DEMO_WAIT_S=$wait_s: give a whole number of seconds"
curl -fsS "$api/health" >/dev/null 2>&1 || die "the gateway is not answering on $api: run 'make up'"
# a token that ends a minute after the demo (none by default), given to curl on its standard
# input: on curl's command line any user of the machine could read it (/proc/PID/cmdline)
TOKEN="$("$PY" -m cli.main token --ttl "$((wait_s + 60))" 2>/dev/null)" || die "no token: cli.main token failed"
authed() { curl "$@" -H @- <<<"Authorization: Bearer $TOKEN"; }
log "POST /api/orders (the seed's quickstart)"
resp="$(authed -sS -w '\n%{http_code}' -X POST "$api/api/orders" \
  -H 'Content-Type: application/json' -d '{"customerId":"c-1","items":[{"sku":"SKU-1","qty":2}]}')" \
  || die "POST /api/orders: no answer from $api"
code="${resp##*$'\n'}" && resp="${resp%$'\n'*}"
echo "$resp"
# 429 (rate limit), 503 (shedding load, payments unavailable): the answer above says why
[[ "$code" == 202 ]] || die "POST /api/orders answered HTTP $code, not 202: no order to follow"
order_id="$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["orderId"])' <<<"$resp" 2>/dev/null)" \
  || die "no order id in the answer"
log "GET /api/orders/$order_id/events (live status until final)"
# --fail-with-body: an HTTP error (401, 404, 429, 503) is curl's exit 22, its JSON shown
authed -sSN --fail-with-body --max-time "$wait_s" "$api/api/orders/$order_id/events" \
  | grep --line-buffered -E '^(data:|\{"error")' || stream=("${PIPESTATUS[@]}")
if [[ "${stream[0]:-0}" == 28 ]]; then
  die "order $order_id not final within $wait_s s: .venv/bin/orders get $order_id"
elif [[ "${stream[0]:-0}" == 22 ]]; then
  die "the order's status stream was refused (the error above): .venv/bin/orders get $order_id"
elif [[ "${stream[0]:-0}" != 0 ]]; then
  die "the order's status stream failed (curl exit ${stream[0]}): .venv/bin/orders get $order_id"
fi
log "GET /api/orders/$order_id"
authed -sS --fail-with-body "$api/api/orders/$order_id" | "$PY" -m json.tool \
  || die "GET /api/orders/$order_id failed (the answer above)"

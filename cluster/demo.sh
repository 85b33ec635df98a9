#!/usr/bin/env bash
# make demo: the seed's quickstart against the running stack, then the order's live status
# (Server-Sent Events) until it is final, then the order with its timeline.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
api="http://localhost:$HTTP_PORT"
curl -fsS "$api/health" >/dev/null 2>&1 || die "the gateway is not answering on $api: run 'make up'"
TOKEN="$("$PY" -m cli.main token 2>/dev/null)"
log "POST /api/orders (the seed's quickstart)"
resp="$(curl -sS -X POST "$api/api/orders" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"customerId":"c-1","items":[{"sku":"SKU-1","qty":2}]}')"
echo "$resp"
order_id="$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["orderId"])' <<<"$resp")" \
  || die "no order id in the answer"
log "GET /api/orders/$order_id/events (live status until final)"
curl -sSN --max-time 60 "$api/api/orders/$order_id/events" -H "Authorization: Bearer $TOKEN" \
  | grep --line-buffered '^data:'
log "GET /api/orders/$order_id"
curl -sS "$api/api/orders/$order_id" -H "Authorization: Bearer $TOKEN" | "$PY" -m json.tool

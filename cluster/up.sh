#!/usr/bin/env bash
# make up: install what is missing, start every service (only those not running), migrate, seed,
# create topics, deploy the actors and the Serve app, then print how to use it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
t0=$SECONDS
# a machine that joined a head is one of its worker nodes: a stack of its own here would take
# that head's settings (join.env) and run beside the node
[[ ! -r "$RUN/join.env" || -r "$RUN/node.env" ]] || die "this machine is a worker node of" \
  "$HEAD_ADDRESS (make join): make leave first, then make up"
"$ROOT/cluster/preflight.sh" up # OS, root, Python 3.11, free ports: fail early and clearly
dotenv_ignored
kafka_auth_check
"$ROOT/cluster/install.sh"
# The node address the later make commands use, Kafka's authentication (kafka_auth), TLS
# (stack_tls), the ports `orders status` looks for Ray at (cli/ray_access.py), and the
# credentials (generated the first time).
printf 'NODE_ADDRESS=%s\nRAY_GCS_PORT=%s\nDASHBOARD_PORT=%s\nKAFKA_AUTH=%s\nSTACK_TLS=%s\n' "$NODE_ADDRESS" \
  "$RAY_GCS_PORT" "$DASHBOARD_PORT" "$KAFKA_AUTH" "$STACK_TLS" >"$RUN/node.env"
ensure_credentials
svc="$ROOT/cluster/services.sh"
"$svc" start pg
"$svc" start redis
"$svc" start kafka
cd "$ROOT"
log "postgres: migrating and seeding the catalog (as the schema's owner, $PG_OWNER_USER)"
DATABASE_URL="$MIGRATION_DATABASE_URL" "$PY" -m cli.main migrate
DATABASE_URL="$MIGRATION_DATABASE_URL" "$PY" -m cli.main seed
log "kafka: ensuring topics"
"$PY" -m cli.main topics
"$svc" start ray
log "ray: deploying actors and the Serve app (gateway on :$HTTP_PORT)"
"$PY" -m cli.main deploy
gw="$(gateway_url)"
wait_for "gateway /health" 120 curl -fsS "$gw/health"
wait_for "gateway /ready" 120 bash -c "curl -fsS $gw/ready | grep -q '\"status\":\"up\"'"
log "stack is up in $((SECONDS - t0))s"
# Only the public dev default is ever printed; a real secret stays out of consoles and logs.
shown_secret='<your JWT_SECRET>' demo_token=""
if [[ "$JWT_SECRET" == devsecret ]]; then
  shown_secret=devsecret
  # the token itself, as the seed's `make up` prints it (good for the 24 h the gateway accepts
  # a token without exp after its iat); one signed with a real secret is never printed
  demo_token="$("$PY" -m cli.main token --sub customer1 --role customer 2>/dev/null || true)"
fi
cat <<MSG

  API         $gw/api/orders
  API docs    $gw/docs
  Readiness   $gw/ready
  Ray         http://$DASHBOARD_HOST:$DASHBOARD_PORT  (token: RAY_AUTH_TOKEN in $CREDENTIALS_FILE)
  Credentials $CREDENTIALS_FILE  (Postgres, Redis, Ray, Kafka; git-ignored)

  Demo token (customer1, role customer, no exp):${demo_token:+
    TOKEN=$demo_token
  or a new one:}
    export JWT_SECRET=$shown_secret
    TOKEN=\$(make -s token)            # admin: make -s token ROLE=admin SUB=admin1
  Seed quickstart:
    curl -X POST $(gateway_url localhost)/api/orders -H "Authorization: Bearer \$TOKEN" \\
      -H 'Content-Type: application/json' -d '{"customerId":"c-1","items":[{"sku":"SKU-1","qty":2}]}'

MSG

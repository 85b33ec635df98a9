#!/usr/bin/env bash
# First start of the Postgres container (docker-entrypoint-initdb.d, as POSTGRES_USER, a
# superuser): the application's role `orders`, a login that is not a superuser and owns only its
# database (the migrations create its tables there), with the password ORDERS_DB_PASSWORD; and,
# when the image has it (docker/postgres/Dockerfile), pg_partman in that database, usable by
# the role, as cluster/pg_partman.sql does for the local stack. Clients authenticate with
# scram-sha-256 (POSTGRES_INITDB_ARGS). The same script runs in k8s (k8s/infra/postgres.yaml).
set -euo pipefail
: "${ORDERS_DB_PASSWORD:?set ORDERS_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 -v pw="$ORDERS_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE orders LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
CREATE DATABASE orders OWNER orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
SQL
available="$(psql --username "$POSTGRES_USER" --dbname orders -tAc \
  "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_partman'")"
if [[ "$available" == 1 ]]; then
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname orders <<'SQL'
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
GRANT ALL ON SCHEMA partman TO orders;
GRANT ALL ON ALL TABLES IN SCHEMA partman TO orders;
GRANT ALL ON ALL SEQUENCES IN SCHEMA partman TO orders;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO orders;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO orders;
SQL
fi

#!/usr/bin/env bash
# First start of the compose Postgres (docker-entrypoint-initdb.d): the application's role
# `orders`, a login that is not a superuser and owns only its database (the migrations create
# its tables there), with the password of ORDERS_DB_PASSWORD. Clients authenticate with
# scram-sha-256 (POSTGRES_INITDB_ARGS in docker-compose.yml).
set -euo pipefail
: "${ORDERS_DB_PASSWORD:?set ORDERS_DB_PASSWORD (docker/secrets.dev.env)}"
psql -v ON_ERROR_STOP=1 -v pw="$ORDERS_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE orders LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
CREATE DATABASE orders OWNER orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
SQL

#!/usr/bin/env bash
# The platform's two roles in the Postgres container (docker-compose.yml, k8s/infra/postgres.yaml),
# as cluster/services.sh (pg_roles) creates them for the local stack:
#   orders      owns the database and its schema; the migrations and the seed run as it
#               (MIGRATION_DATABASE_URL), password ORDERS_DB_PASSWORD;
#   orders_app  what the platform runs as (DATABASE_URL): may read and write the tables' rows
#               and use their sequences, nothing else (no DDL, no other database, no role
#               attributes), password ORDERS_APP_DB_PASSWORD.
# Neither is a superuser; the superuser (POSTGRES_USER) is for initdb and this script only.
# And, when the image has it (docker/postgres/Dockerfile), pg_partman in that database: the owner
# uses it (migration 0006 partitions the history tables), the app may read it.
# Runs on the first start (docker-entrypoint-initdb.d, as POSTGRES_USER). Idempotent, so it also
# brings a data volume from before orders_app existed up to date (README, Compose):
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-orders-role.sh
set -euo pipefail
: "${ORDERS_DB_PASSWORD:?set ORDERS_DB_PASSWORD}" "${ORDERS_APP_DB_PASSWORD:?set ORDERS_APP_DB_PASSWORD}"
export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"
su_psql() {
  psql -v ON_ERROR_STOP=1 -qtAX --username "${POSTGRES_USER:-postgres}" "$@"
}
# The passwords come from the environment (\getenv), not psql's command line, which `ps` shows;
# this session logs no statement, not even a failing one, since the ALTER ROLEs carry them.
su_psql --dbname postgres <<'SQL'
\getenv owner_pw ORDERS_DB_PASSWORD
\getenv app_pw ORDERS_APP_DB_PASSWORD
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SELECT 'CREATE ROLE orders' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders') \gexec
SELECT 'CREATE ROLE orders_app' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders_app') \gexec
ALTER ROLE orders LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_pw';
ALTER ROLE orders_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_pw';
SELECT 'CREATE DATABASE orders OWNER orders' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'orders') \gexec
ALTER DATABASE orders OWNER TO orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
GRANT CONNECT ON DATABASE orders TO orders_app;
SQL
su_psql --dbname orders <<'SQL'
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO orders_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orders_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO orders_app;
ALTER DEFAULT PRIVILEGES FOR ROLE orders IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orders_app;
ALTER DEFAULT PRIVILEGES FOR ROLE orders IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO orders_app;
SQL
available="$(su_psql --dbname orders -c \
  "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_partman'")"
if [[ "$available" == 1 ]]; then
  su_psql --dbname orders <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
GRANT ALL ON SCHEMA partman TO orders;
GRANT ALL ON ALL TABLES IN SCHEMA partman TO orders;
GRANT ALL ON ALL SEQUENCES IN SCHEMA partman TO orders;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO orders;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO orders;
GRANT USAGE ON SCHEMA partman TO orders_app;
GRANT SELECT ON ALL TABLES IN SCHEMA partman TO orders_app;
SQL
fi

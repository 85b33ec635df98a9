SET client_min_messages = warning;
-- pg_partman in the platform's database, usable by the role that owns its tables and migrates
-- them (run as a superuser; idempotent):  psql -v owner_role=orders -d orders -f cluster/pg_partman.sql
-- CREATE EXTENSION pg_partman needs a superuser; migration 0006 then partitions the tables as
-- the owner, which also runs the maintenance that makes and drops the partitions
-- (adapters/retention.py, docs/adr/ADR-012-retention.md).
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
GRANT ALL ON SCHEMA partman TO :"owner_role";
GRANT ALL ON ALL TABLES IN SCHEMA partman TO :"owner_role";
GRANT ALL ON ALL SEQUENCES IN SCHEMA partman TO :"owner_role";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO :"owner_role";
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO :"owner_role";

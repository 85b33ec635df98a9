"""The partition maintenance as a function the platform's own role may call.

Making and dropping partitions is DDL, which only the tables' owner may do; the platform runs
as a role that may only read and write rows. `retention_maintain(table, window)` runs with its
owner's rights (SECURITY DEFINER, search path pinned) and does exactly one thing: set the
table's window in pg_partman's configuration, run pg_partman's maintenance of that table (the
next days made, the days past the window dropped whole) and move the guard of its default
partition to the oldest partition kept (docs/adr/ADR-012-retention.md). It grants nothing the
role could not do already: it may delete those rows anyway.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAINTAIN = """
CREATE OR REPLACE FUNCTION retention_maintain(p_table text, p_window interval)
RETURNS TABLE (dropped text[], created text[], kept_from timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $fn$
DECLARE
  v_parent text := '{schema}.' || p_table;
  v_key text := CASE p_table WHEN 'processed_events' THEN 'event_at'
                             WHEN 'notifications' THEN 'order_at' END;
  v_before text[];
  v_after text[];
BEGIN
  IF p_table NOT IN ('processed_events', 'notifications', 'order_events') THEN
    RAISE EXCEPTION 'retention_maintain: % is not a partitioned history table', p_table;
  END IF;
  IF p_window < interval '1 hour' THEN
    RAISE EXCEPTION 'retention_maintain: a window of % is shorter than an hour', p_window;
  END IF;
  PERFORM set_config('lock_timeout', '5s', true);
  v_before := ARRAY(SELECT partition FROM retention_partitions(p_table));
  UPDATE partman.part_config SET retention = p_window::text, retention_keep_table = false,
    retention_keep_index = false, infinite_time_partitions = true, inherit_privileges = true
  WHERE parent_table = v_parent;
  PERFORM partman.run_maintenance(v_parent, false);
  v_after := ARRAY(SELECT partition FROM retention_partitions(p_table));
  kept_from := (SELECT min(lower_bound) FROM retention_partitions(p_table));
  IF v_key IS NOT NULL AND kept_from IS NOT NULL THEN
    -- a key older than every partition kept may have had its row in a dropped one: refuse it
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I',
                   p_table || '_default', p_table || '_within_retention');
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I = ''-infinity'' OR %I >= %L) '
                   'NOT VALID', p_table || '_default', p_table || '_within_retention',
                   v_key, v_key, kept_from);
  END IF;
  dropped := ARRAY(SELECT unnest(v_before) EXCEPT SELECT unnest(v_after) ORDER BY 1);
  created := ARRAY(SELECT unnest(v_after) EXCEPT SELECT unnest(v_before) ORDER BY 1);
  RETURN NEXT;
END
$fn$
"""

PARTITIONS = """
CREATE OR REPLACE FUNCTION retention_partitions(p_table text)
RETURNS TABLE (partition text, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE SET search_path = {schema}, pg_temp AS $fn$
  SELECT c.relname::text,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]
           ::timestamptz,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]
           ::timestamptz
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = ('{schema}.' || p_table)::regclass
    AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
$fn$
"""


def upgrade() -> None:
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(PARTITIONS.format(schema=schema))
    op.execute(MAINTAIN.format(schema=schema))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS retention_maintain(text, interval)")
    op.execute("DROP FUNCTION IF EXISTS retention_partitions(text)")

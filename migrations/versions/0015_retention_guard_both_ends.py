"""The default partitions refuse keys a week or more ahead; maintenance keeps one time zone.

A row lands in a table's default partition when no partition holds its key. Migration 0007's
guard refused a dedupe key older than the oldest partition kept; nothing refused one later than
the newest partition made ahead (7 days). Such a key comes from a host's clock (an event id, an
order id, a timeline row's time) or from any event id on the wire. pg_partman's maintenance then
tried to make the partition of that day, which Postgres refuses while the default partition
holds rows of its range: every later run failed, the table's old partitions stayed, and after
a week every new row went to the default partition (found in review, 2026-12-07). Now:

- `<table>_within_retention` on the default partition of each of the three tables: a key 7
  days or more ahead of the database's clock at the write (pg_partman makes partitions 7 days
  ahead) is refused (a stage's write fails and its event goes to the dead-letter topic; the
  writes of a host whose clock is a week ahead fail), so no such row stays to block the
  maintenance. The bound follows the clock, not the partitions made: a maintenance stopped for
  more than a week still lets the day's rows into the default partition (ADR-012, 4) instead
  of stopping the writes. A CHECK with `now()` holds for each row when it is written, which is
  all it is for here. The dedupe tables keep their lower bound, and `-infinity` (a non-v7 id)
  passes as before; `order_events`, whose key is a write's own time, gets the upper bound only;
- the guard is replaced only when its lower bound moved (the constraint's comment holds it):
  adding it takes an `ACCESS EXCLUSIVE` lock on the default partition, which every run took
  before;
- a lock is waited for 500 ms, not 5 s: while pg_partman's `DROP` of a day waits for the
  table's lock (a payment shard's transaction holds it through the provider call), every write
  of the table queues behind it; `adapters/retention.py` tries a busy table again a few times;
- the function runs in the time zone of the session that ran this migration (`SET timezone
  FROM CURRENT`: the server's, as for migration 0006, which made the first partitions at its
  midnights), whatever the caller's: pg_partman names a day's partition after its start in the
  session's time zone and passes over a name that exists, so a caller in another time zone
  (`PGTZ`) named a day after the day before and that day was never made. A fixed UTC would do
  the same on a server east of UTC, whose partitions start at its own midnight.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import importlib

from alembic import op
from sqlalchemy import text

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

MAINTAIN = """
CREATE OR REPLACE FUNCTION retention_maintain(p_table text, p_window interval)
RETURNS TABLE (dropped text[], created text[], kept_from timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp SET timezone FROM CURRENT
AS $fn$
DECLARE
  v_parent text := '{schema}.' || p_table;
  v_key text := CASE p_table WHEN 'processed_events' THEN 'event_at'
                             WHEN 'notifications' THEN 'order_at'
                             WHEN 'order_events' THEN 'at' END;
  v_default text := p_table || '_default';
  v_guard text := p_table || '_within_retention';
  v_before text[];
  v_after text[];
  -- a key this far ahead of the database's clock has no partition yet (pg_partman's premake)
  v_ahead text := $$now() + interval '7 days'$$;
  v_check text;
BEGIN
  IF v_key IS NULL THEN
    RAISE EXCEPTION 'retention_maintain: % is not a partitioned history table', p_table;
  END IF;
  IF p_window < interval '1 hour' THEN
    RAISE EXCEPTION 'retention_maintain: a window of % is shorter than an hour', p_window;
  END IF;
  -- waiting for a lock queues every writer of the table behind it: short waits, retried by
  -- the caller (adapters/retention.py)
  PERFORM set_config('lock_timeout', '500ms', true);
  v_before := ARRAY(SELECT partition FROM retention_partitions(p_table));
  UPDATE partman.part_config SET retention = p_window::text, retention_keep_table = false,
    retention_keep_index = false, infinite_time_partitions = true, inherit_privileges = true
  WHERE parent_table = v_parent;
  PERFORM partman.run_maintenance(v_parent, false);
  v_after := ARRAY(SELECT partition FROM retention_partitions(p_table));
  kept_from := (SELECT min(lower_bound) FROM retention_partitions(p_table));
  IF kept_from IS NOT NULL THEN
    IF p_table = 'order_events' THEN
      v_check := format('%I < %s', v_key, v_ahead);
    ELSE
      -- older than every partition kept: its row may have been in a dropped one
      v_check := format('%I = ''-infinity'' OR (%I >= %L AND %I < %s)',
                        v_key, v_key, kept_from, v_key, v_ahead);
    END IF;
    IF kept_from::text IS DISTINCT FROM (
      SELECT obj_description(c.oid, 'pg_constraint') FROM pg_constraint c
      WHERE c.conname = v_guard AND c.conrelid = v_default::regclass
    ) THEN
      EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', v_default, v_guard);
      EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s) NOT VALID',
                     v_default, v_guard, v_check);
      EXECUTE format('COMMENT ON CONSTRAINT %I ON %I IS %L', v_guard, v_default, kept_from);
    END IF;
  END IF;
  dropped := ARRAY(SELECT unnest(v_before) EXCEPT SELECT unnest(v_after) ORDER BY 1);
  created := ARRAY(SELECT unnest(v_after) EXCEPT SELECT unnest(v_before) ORDER BY 1);
  RETURN NEXT;
END
$fn$
"""


def upgrade() -> None:
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(MAINTAIN.format(schema=schema))


def downgrade() -> None:
    """0007's function again; the guards stay until its next run replaces them (that of
    `order_events`, which 0007 does not keep, goes now)."""
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    before = importlib.import_module("migrations.versions.0007_retention_maintain")
    op.execute(before.MAINTAIN.format(schema=schema))
    op.execute(
        "ALTER TABLE order_events_default DROP CONSTRAINT IF EXISTS order_events_within_retention"
    )

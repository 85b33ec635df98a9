"""`retention_partitions` reads a table's partition bounds without opening other tables.

`pg_get_expr(relpartbound, oid)` opens the partition it names (for its column names) and so
waits for its lock, and the planner may evaluate it for every child of every partitioned table
before the parent filter applies: one busy table (an `ACCESS EXCLUSIVE` lock, a long `DROP`)
made the maintenance of the other tables wait for it and give up ("busy", next run). A
partition bound holds only constants, so `pg_get_expr(relpartbound, 0)` reads it without
opening anything; the bounds come out the same.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PARTITIONS = """
CREATE OR REPLACE FUNCTION retention_partitions(p_table text)
RETURNS TABLE (partition text, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE SET search_path = {schema}, pg_temp AS $fn$
  SELECT c.relname::text,
         (regexp_match(pg_get_expr(c.relpartbound, {relid}), 'FROM \\(''([^'']+)''\\)'))[1]
           ::timestamptz,
         (regexp_match(pg_get_expr(c.relpartbound, {relid}), 'TO \\(''([^'']+)''\\)'))[1]
           ::timestamptz
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = ('{schema}.' || p_table)::regclass
    AND pg_get_expr(c.relpartbound, {relid}) <> 'DEFAULT'
$fn$
"""


def _partitions(relid: str) -> None:
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(PARTITIONS.format(schema=schema, relid=relid))


def upgrade() -> None:
    _partitions("0")


def downgrade() -> None:
    _partitions("c.oid")

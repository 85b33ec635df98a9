"""`uuid7_time(uuid)` as a function Postgres inlines into the statement that calls it.

Declared STRICT, with a CASE as its body, it could not be inlined (the planner inlines a strict
SQL function only when its body is strict too, and CASE is not): every row of the dedupe claim
and of the notification insert paid a SQL-function call, ~8 µs against ~1.5 µs inlined
(500,000 v7 ids on the 2-core box). The same values: NULL for NULL, the time of a v7 id,
`-infinity` for any other id (docs/adr/ADR-012-retention.md).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INLINED = """
CREATE OR REPLACE FUNCTION uuid7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN get_byte(uuid_send(id), 6) >> 4 = 7
    THEN to_timestamp(('x' || encode(substring(uuid_send(id) FROM 1 FOR 6), 'hex'))::bit(48)
                      ::bigint / 1000.0)
    WHEN id IS NOT NULL THEN '-infinity'::timestamptz END
$$
"""

CALLED = """
CREATE OR REPLACE FUNCTION uuid7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN get_byte(uuid_send(id), 6) >> 4 = 7
    THEN to_timestamp(('x' || encode(substring(uuid_send(id) FROM 1 FOR 6), 'hex'))::bit(48)
                      ::bigint / 1000.0)
    ELSE '-infinity'::timestamptz END
$$
"""


def upgrade() -> None:
    op.execute(INLINED)


def downgrade() -> None:
    op.execute(CALLED)

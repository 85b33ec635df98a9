"""The default partitions refuse keys 6 days ahead, a day below the partitions made ahead.

Migration 0015's guard refused a key 7 days or more ahead of the database's clock, the same
horizon pg_partman makes partitions to (premake 7). The runs keep about half a day of margin,
but once a table's maintenance had not succeeded for a day (the relay down, the table busy run
after run), its newest partition ended before `now() + 7 days`: a key in that gap (a host clock
6–7 days ahead, the very case 0015 is for) passed the guard and landed in the default
partition, and the next run, refused the day's partition over it, failed from then on (a
review of 2026-12-08). The bound is now `now() + 6 days`: a day of maintenance may fail without
it. The guard's comment now records the bound too, so the first run after this migration
replaces every guard (they carried 7 days); otherwise the function is 0015's.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import importlib

from alembic import op
from sqlalchemy import text

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_EARLIER = importlib.import_module("migrations.versions.0015_retention_guard_both_ends")
# (0015's text, this revision's), each found exactly once
_CHANGES = (
    (
        "v_ahead text := $$now() + interval '7 days'$$;",
        "v_ahead text := $$now() + interval '6 days'$$;",
    ),
    (
        "IF kept_from::text IS DISTINCT FROM (",
        "IF kept_from::text || ' ' || v_ahead IS DISTINCT FROM (",
    ),
    (
        "'COMMENT ON CONSTRAINT %I ON %I IS %L', v_guard, v_default, kept_from);",
        "'COMMENT ON CONSTRAINT %I ON %I IS %L', v_guard, v_default,\n"
        "                     kept_from::text || ' ' || v_ahead);",
    ),
)


def maintain_sql() -> str:
    sql = _EARLIER.MAINTAIN
    for before, after in _CHANGES:
        assert sql.count(before) == 1, before
        sql = sql.replace(before, after)
    return sql


def upgrade() -> None:
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(maintain_sql().format(schema=schema))


def downgrade() -> None:
    """0015's function again; its next run puts the 7-day guards back (the comments differ)."""
    schema = op.get_bind().execute(text("SELECT current_schema()")).scalar()
    op.execute(_EARLIER.MAINTAIN.format(schema=schema))

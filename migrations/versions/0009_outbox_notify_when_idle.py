"""The outbox trigger NOTIFYs only while the relay waits for one.

A transaction that NOTIFYs takes one lock per database at commit and keeps it until its commit
record is on disk: every notifying commit of every stage waited for the one before it, and the
group commit of the accept path and the stages' units of work was lost under load
(`pg_stat_activity` showed the accepts waiting on `Lock:object` at COMMIT, docs/performance.md).
A busy relay does not need waking: it polls while it drains. It says whether it waits in the
one row of `outbox_relay` (UNLOGGED: after a crash the table is empty, which reads as waiting,
so the trigger notifies until the relay says otherwise). The payload names the outbox's schema
(the relay ignores it; a test in a scratch schema tells its own notifications apart).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WHEN_WAITING = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger AS $$
BEGIN
  IF (SELECT waiting FROM outbox_relay WHERE id = 1) IS NOT FALSE THEN
    PERFORM pg_notify('outbox', TG_TABLE_SCHEMA);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""

ALWAYS = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger AS $$
BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.execute(
        "CREATE UNLOGGED TABLE outbox_relay ("
        "id smallint PRIMARY KEY CHECK (id = 1), waiting boolean NOT NULL)"
    )
    op.execute("INSERT INTO outbox_relay VALUES (1, true)")
    op.execute(WHEN_WAITING)


def downgrade() -> None:
    op.execute(ALWAYS)
    op.execute("DROP TABLE outbox_relay")

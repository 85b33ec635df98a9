"""Initial schema: catalog, inventory, orders + timeline, outbox, dedupe, reservations,
payments, shipments, notifications.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

from core.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NOTIFY_FN = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger AS $$
BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    op.execute(_NOTIFY_FN)
    # One wake-up per statement, not per row: the relay drains the table in batches.
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
    metadata.drop_all(op.get_bind())

"""Costs that grew with the backlog: the open-hold cap and the outbox scan.

- The cap on open holds per principal joined every HELD reservation to its order to find the
  principal (20–42 ms a call at a few thousand open holds, once per inventory batch: the slower
  the pipeline, the more holds, the slower the pipeline). Reservations now carry the principal,
  indexed among HELD rows. Existing HELD rows are backfilled.
- The outbox is a queue: ~10 rows per order are inserted and deleted. Autovacuum's defaults
  (20 % of the table, checked once a minute) let the dead index entries at its head pile up, and
  the relay's `ORDER BY id LIMIT n` scan stepped over all of them (20 ms a call at 300 orders/s).
  The table is vacuumed after every 5,000 dead rows, without cost-based throttling; the local
  stack also checks every 5 s (`autovacuum_naptime`, cluster/services.sh).

See docs/adr/ADR-005-postgres-write-path.md.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reservations", sa.Column("principal", sa.Text(), nullable=True))
    op.execute(
        "UPDATE reservations r SET principal = o.principal FROM orders o "
        "WHERE o.id = r.order_id AND r.state = 'HELD'"
    )
    op.create_index(
        "reservations_held_principal",
        "reservations",
        ["principal"],
        postgresql_where=sa.text("state='HELD'"),
    )
    op.execute(
        "ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay)"
    )
    op.drop_index("reservations_held_principal", table_name="reservations")
    op.drop_column("reservations", "principal")

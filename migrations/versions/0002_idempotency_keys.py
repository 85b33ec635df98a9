"""Idempotency keys stored with the order, in the same transaction: Redis only answers fast and
detects in-flight duplicates; Postgres guarantees one order per (principal, key).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("request_hash", sa.Text(), nullable=True))
    op.create_index(
        "orders_principal_idempotency_key",
        "orders",
        ["principal", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("orders_principal_idempotency_key", table_name="orders")
    op.drop_column("orders", "request_hash")
    op.drop_column("orders", "idempotency_key")

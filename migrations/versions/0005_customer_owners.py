"""Who owns a customer id: the first customer principal that placed an order for it.

The gateway claims an id in the same statement that stores the order (adapters/accept_store.py);
another customer principal naming an owned id gets 403, admins act for anyone and claim nothing.
The quickstart's pairs are seeded, so `customer1` (the seed's demo token) keeps `c-1`, and the
Postman collection's second customer `customer2` keeps `c-2`. Orders placed before this
migration claim nothing: an id is owned from its first order after it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEEDED_OWNERS = (("c-1", "customer1"), ("c-2", "customer2"))


def upgrade() -> None:
    owners = op.create_table(
        "customer_owners",
        sa.Column("customer_id", sa.Text(), primary_key=True),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.bulk_insert(owners, [{"customer_id": c, "principal": p} for c, p in SEEDED_OWNERS])


def downgrade() -> None:
    op.drop_table("customer_owners")

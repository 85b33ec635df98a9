"""A partial index of the open authorizations, for the payment shard's reload.

A payment shard keeps each customer's open exposure (authorized, not yet captured or refunded)
in memory, and reads it again from Postgres when it starts and after a transaction whose outcome
it cannot know (`adapters/payments.outstanding`). That read filtered `payments` by status with
no index on it, so it scanned the whole ledger, which nothing ever prunes: 94 ms at 1.15 M rows
here, about a second at 10 M, under the shard's lock, and after a Postgres restart every shard
did it at once. Only the open authorizations are in this index (a few hundred at a time), so the
read takes what is open, whatever the ledger's size.

Its cost: `status` is now an indexed column, so a payment's update from AUTHORIZED to CAPTURED
or REFUNDED is never HOT (55-63 % were since migration 0010): it writes an entry into the
table's two other indexes. The new row version matches no predicate, so this index takes an
entry only at the insert of an authorization.

Built `CONCURRENTLY` (no lock that stops the writes; it cannot run inside a transaction, hence
the autocommit block); an index left invalid by a build that failed is dropped and built again.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEX = "ix_payments_authorized"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            # this schema's only (a scratch schema's leftover is another index)
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_index i "
            f"JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = '{INDEX}' "
            "AND c.relnamespace = current_schema()::regnamespace "
            f"AND NOT i.indisvalid) THEN DROP INDEX IF EXISTS {INDEX}; END IF; END $$"
        )
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON payments (customer_id) "
            "INCLUDE (amount) WHERE status = 'AUTHORIZED'"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")

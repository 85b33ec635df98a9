"""Payments and shipments take HOT updates: free space on every page.

A payment is inserted and then updated once or twice (AUTHORIZED → CAPTURED or REFUNDED), a
shipment two or three times (CREATED → SHIPPED → DELIVERED). Neither updates an indexed
column, but their pages were filled to the brim by the inserts, so the new row version rarely
fit beside the old one: measured at 400 orders/s (30 s, `pg_stat_user_tables`), 10 % of the
payments' updates and 67 % of the shipments' were HOT. Every other one wrote a new entry into
each index of the table and left a dead row for vacuum, whose runs over these growing tables
overlapped the benchmark's load points. Fillfactor 80, as `orders` has since migration 0003:
55–63 % and 91–92 %, and the non-HOT updates per order fell from 5.5 to 2.3 (docs/adr/
ADR-005-postgres-write-path.md). Existing pages keep their rows; new ones are filled to 80 %.

`reservations` gains nothing from it: its state is in the predicate of two partial indexes, so
no update of a reservation can be HOT.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("payments", "shipments")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")

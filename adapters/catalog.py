"""The demo catalog in Postgres: catalog rows and their starting stock."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from domain.catalog import CatalogItem


def seed(dsn: str, items: Sequence[CatalogItem]) -> None:
    """Insert `items` with their initial stock; rows that exist already are left alone."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO catalog (sku, name, unit_price) VALUES (%s, %s, %s) "
            "ON CONFLICT (sku) DO NOTHING",
            [(i.sku, i.name, i.unit_price) for i in items],
        )
        cur.executemany(
            "INSERT INTO inventory (sku, on_hand, reserved) VALUES (%s, %s, 0) "
            "ON CONFLICT (sku) DO NOTHING",
            [(i.sku, i.initial_stock) for i in items],
        )

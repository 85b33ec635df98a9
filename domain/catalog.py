"""The seeded catalog and server-side pricing. Clients never send prices."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

CURRENCY = "USD"
CATALOG_SIZE = 100
DEFAULT_STOCK = 1_000_000


class CatalogItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    unit_price: Decimal
    initial_stock: int


def seed_catalog(size: int = CATALOG_SIZE, stock: int = DEFAULT_STOCK) -> list[CatalogItem]:
    """The demo catalog: `SKU-1`…`SKU-<size>`, deterministic prices between 5.00 and 104.00."""
    return [
        CatalogItem(
            sku=f"SKU-{i}",
            name=f"Demo product {i}",
            unit_price=Decimal(5 + (i * 37) % 100).quantize(Decimal("0.01")),
            initial_stock=stock,
        )
        for i in range(1, size + 1)
    ]


def order_total(lines: list[tuple[int, Decimal]]) -> Decimal:
    """Sum of qty × unit price, rounded to cents."""
    return sum((Decimal(qty) * price for qty, price in lines), Decimal("0")).quantize(
        Decimal("0.01")
    )

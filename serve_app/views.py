"""Response shapes of the public API (camelCase, as in the seed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.pg import Row


def _money(value: Decimal | float | str) -> float:
    return float(Decimal(str(value)).quantize(Decimal("0.01")))


def order_view(row: Row, timeline: list[Row] | None = None) -> dict[str, Any]:
    """An order as clients see it."""
    view: dict[str, Any] = {
        "orderId": str(row["id"]),
        "customerId": row["customer_id"],
        "status": row["status"],
        "items": [
            {"sku": i["sku"], "qty": i["qty"], "unitPrice": _money(i["unitPrice"])}
            for i in row["items"]
        ],
        "total": _money(row["total"]),
        "currency": row["currency"],
        "paymentMethod": row["payment_method"],
        "createdAt": row["created_at"].isoformat(),
        "updatedAt": row["updated_at"].isoformat(),
    }
    if row.get("reason"):
        view["reason"] = row["reason"]
    if timeline is not None:
        view["timeline"] = [
            {
                "status": t["status"],
                "event": t["event"],
                "at": t["at"].isoformat(),
                **({"detail": t["detail"]} if t["detail"] else {}),
            }
            for t in timeline
        ]
    return view


def inventory_view(row: Row) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "onHand": row["on_hand"],
        "reserved": row["reserved"],
        "available": row["on_hand"] - row["reserved"],
    }

"""One VALUES row per order for `UPDATE … FROM (VALUES …)`, which applies one row per target."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.pg import _last_per_order


def test_an_order_moved_twice_keeps_its_last_status_and_its_last_reason() -> None:
    a, b, at = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    rows = _last_per_order(
        [
            ("RESERVED", None, at, a),
            ("REJECTED", "out of stock", at, b),
            ("CANCELLED", "hold expired", at, a),
            ("REFUNDED", None, at, a),
        ]
    )
    assert sorted(rows, key=lambda r: r[0]) == [
        ("REFUNDED", "hold expired", at, a),
        ("REJECTED", "out of stock", at, b),
    ]

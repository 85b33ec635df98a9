"""The step phase and each hold compare their 202 answers with Postgres (bench/saturation.py):
their drains count stored orders only, so an order answered 202 and never stored went
unnoticed there (the tracked runs follow each 202 by id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from adapters import benchdb
from bench import saturation
from bench.saturation import Climb


async def test_an_order_answered_202_and_not_stored_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored, gone = str(uuid.uuid4()), str(uuid.uuid4())
    asked: list[tuple[datetime, str]] = []

    async def order_ids(conn: Any, since: datetime, like: str) -> list[str]:
        asked.append((since, like))
        return [stored, str(uuid.uuid4())]  # another order of the phase, its 202 not seen

    monkeypatch.setattr(benchdb, "order_ids", order_ids)
    climb = Climb([100.0])
    climb.records = [(1.0, 1.0, 1.1, 202, stored), (1.0, 1.0, 1.1, 202, gone)]
    climb.records.append((1.0, 1.0, 1.1, 503, "unavailable"))
    assert await saturation._not_stored(None, climb, "bench-s", 0.0) == 1  # type: ignore[arg-type]
    assert asked[0][1] == "bench-s-%"
    climb.records = [(1.0, 1.0, 1.1, 429, "rate_limited")]
    assert await saturation._not_stored(None, climb, "bench-s", 0.0) == 0  # type: ignore[arg-type]
    assert len(asked) == 1  # nothing answered 202: no read

"""`adapters.pg.when_up`: an actor's start-up step that reads Postgres is retried while Postgres
does not answer (Ray never restarts an actor whose `__init__` raised: the shipping actor, its
timers' resume failing on a Postgres that went away after its connect, stayed dead)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from adapters.pg import when_up


class _Step:
    def __init__(self, *failures: Exception) -> None:
        self._failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self._failures:
            raise self._failures.pop(0)
        return "resumed"


async def test_a_step_is_retried_until_postgres_answers() -> None:
    step = _Step(psycopg.OperationalError("connection refused"), PoolTimeout("no connection"))
    assert await when_up(step, "shipping") == "resumed"
    assert step.calls == 3


async def test_another_error_is_not_retried() -> None:
    step = _Step(KeyError("a bug"))
    with pytest.raises(KeyError):
        await when_up(step, "shipping")
    assert step.calls == 1


async def test_it_gives_up_when_told() -> None:
    step = _Step(*(psycopg.OperationalError("down") for _ in range(100)))
    with pytest.raises(psycopg.OperationalError):
        await when_up(step, "shipping", give_up_after_s=0.3)

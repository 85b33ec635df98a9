"""`orders dlq list` reads a dead-letter topic to its end within a bound: with the broker gone
mid-read, `getmany` returns nothing and the loop spun for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from typer.testing import CliRunner

from cli import dlq, invariants


class _Stalled:
    """A consumer whose broker went away: positions never reach the end."""

    def __init__(self) -> None:
        self.stopped = False

    def assign(self, parts: list[TopicPartition]) -> None:
        pass

    async def beginning_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(parts, 0)

    async def end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(parts, 5)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def position(self, tp: TopicPartition) -> int:
        return 0

    async def getmany(self, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.001)
        return {}

    async def stop(self) -> None:
        self.stopped = True


def test_a_read_the_broker_stops_answering_ends_with_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def partitions(bootstrap: str, topic: str) -> list[int]:
        return [0]

    made: list[_Stalled] = []

    async def consumer() -> _Stalled:
        made.append(_Stalled())
        return made[-1]

    monkeypatch.setattr(dlq, "partitions_of", partitions)
    monkeypatch.setattr(dlq, "_consumer", consumer)
    monkeypatch.setattr(dlq, "_READ_S", 0.05)
    with pytest.raises(TimeoutError, match="not read to its end within"):
        asyncio.run(asyncio.wait_for(dlq._read("order.created.dlq", 10), 10))
    assert [c.stopped for c in made] == [True]


def test_a_dead_letter_with_odd_headers_is_listed_not_a_traceback() -> None:
    """Any header may be anything (a poison message's too): `dlq list` shows what it can."""
    from types import SimpleNamespace

    from cli.dlq import DeadLetter

    odd = "²".encode()
    headers = [("dlq.source.partition", b"--1"), ("dlq.source.offset", odd), ("x", b"\xff")]
    record = SimpleNamespace(
        partition=0, offset=7, timestamp=1, key=None, value=b"\xffpoison", headers=headers
    )
    letter = DeadLetter.of(record)
    source = (letter.source_partition, letter.source_offset, letter.source_topic)
    assert source == (None, None, None)
    assert letter.value == "\ufffdpoison" and letter.headers["x"] == "\ufffd"


def test_a_dead_letter_topic_that_does_not_exist_is_not_listed_as_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`orders dlq list` said "0 message(s)" for a topic that is not there (never created, or
    another broker): nothing dead-lettered, it read. Now an error, exit 1."""

    async def partitions(bootstrap: str, topic: str) -> list[int]:
        return []

    monkeypatch.setattr(dlq, "partitions_of", partitions)
    ran = CliRunner().invoke(dlq.app, ["list", "order.created"])
    assert ran.exit_code == 1, ran.output
    assert "order.created.dlq does not exist on" in ran.output


class _StalledStart(_Stalled):
    async def start(self) -> None:
        pass


def test_the_chaos_audits_read_of_a_topic_ends_with_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`orders chaos` read each topic to its end with no deadline: a broker gone meanwhile and it
    never ended."""

    async def partitions(bootstrap: str, topic: str, kafka: Any = None) -> list[int]:
        return [0]

    monkeypatch.setattr(invariants, "partitions_of", partitions)
    made: list[_Stalled] = []

    def consumer(**_: Any) -> _Stalled:
        made.append(_StalledStart())
        return made[-1]

    monkeypatch.setattr(invariants, "AIOKafkaConsumer", consumer)
    monkeypatch.setattr(invariants, "_READ_S", 0.05)
    read = invariants._distinct_events("b:9092", "order.created", {}, {"x"}, lambda e: e.order_id)
    with pytest.raises(TimeoutError, match="not read to its end within"):
        asyncio.run(asyncio.wait_for(read, 10))
    assert [c.stopped for c in made] == [True]  # its consumer closed on the way out

"""A batch the consumer loop isolates event by event (consumers.loop): what is done is marked
for commit as it goes; a dead letter says what the parser found and keeps a replayed record's
link to its earlier dead letter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from consumers import loop as loop_module
from consumers.deadletter import dead_letter, unparseable
from domain.events import Envelope
from tests.unit.test_consumer_retries import TP, _Batch, _Clock, _loop, _Producer


class _EveryOneFails:
    """A handler that fails on every event (a bug): each is dead-lettered after its retries.
    It notes how many records were marked for commit when each call came."""

    def __init__(self, marked: list[Any]) -> None:
        self.marked = marked
        self.seen_marked: list[int] = []

    async def handle(self, events: list[tuple[str, Envelope]]) -> None:
        self.seen_marked.append(len(self.marked))
        raise KeyError("a bug that shows on every event")


async def test_an_isolated_batch_marks_each_event_for_commit_as_it_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Marked only after the whole batch, a batch of such events (~1.2 s each) outlived the
    member's poll interval and its successor redid all of it, dead letters included."""
    monkeypatch.setattr(loop_module, "asyncio", _Clock())  # the retries' waits
    envelopes = [Envelope(type="PaymentAuthorized", order_id=uuid.uuid4()) for _ in range(3)]
    records = [
        ConsumerRecord(TP.topic, 0, n, 0, 0, None, e.to_json(), None, 0, 0, ())
        for n, e in enumerate(envelopes)
    ]
    marked: list[Any] = []
    handler = _EveryOneFails(marked)
    loop = await _loop(handler)
    loop._consumer = _Batch(records)
    loop._producer = producer = _Producer()
    monkeypatch.setattr(loop._commits, "handled", lambda rs: marked.extend(rs))
    monkeypatch.setattr(loop._commits, "start", lambda every_s: None)
    assert await loop._poll_once() == 3
    assert len(producer.sent) == 3
    tries = 1 + loop._settings.consumer_max_retries
    first_calls = handler.seen_marked[tries::tries]  # each event's first call, after the batch's
    assert first_calls == [0, 1, 2], handler.seen_marked


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"type": "OrderCreated"}', "a message on the wire needs eventId, occurredAt, version"),
        (b"{not json", "Invalid JSON"),
    ],
    ids=["no-event-id", "not-json"],
)
def test_an_unparseable_records_dead_letter_says_what_the_parser_found(
    raw: bytes, said: str
) -> None:
    """It said `unparseable: ValidationError` alone: a version this build does not read
    looked like garbage in `orders dlq list`."""
    with pytest.raises(ValidationError) as refused:
        Envelope.from_json(raw)
    reason = unparseable(refused.value)
    assert reason.startswith("unparseable: ValidationError: ") and said in reason, reason


class _Headers(_Producer):
    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, **kw: Any) -> None:
        self.headers.append(dict(kw["headers"]))


async def test_a_replayed_record_that_fails_again_names_its_earlier_dead_letter() -> None:
    link = b"order.created.dlq[0]@41"
    headers = [("dlq.replayed.from", link), ("traceparent", b"00-x")]
    record = ConsumerRecord(TP.topic, 0, 7, 0, 0, b"k", b"{", None, 1, 1, headers)
    producer = _Headers()
    await dead_letter(producer, "payment", record, "unparseable: ValueError")
    (sent,) = producer.headers
    assert sent["dlq.replayed.from"] == link and sent["dlq.source.offset"] == b"7"
    assert "traceparent" not in sent  # only the link is kept

"""`orders dlq replay` refuses a dead letter whose event is past the dedupe window: every stage
would refuse its claim (ADR-012) and it would be dead-lettered again."""

from __future__ import annotations

import uuid

from cli.dlq import not_copied, too_old_to_replay
from domain.events import new_event
from domain.ids import uuid7_time_ms

HOUR_MS = 3_600_000


def test_an_event_within_the_window_may_be_replayed_and_one_past_it_may_not() -> None:
    event = new_event("PaymentAuthorized", uuid.uuid4())
    made = uuid7_time_ms(event.event_id)
    assert made is not None
    assert too_old_to_replay(event.to_json(), made + 47 * HOUR_MS, 48) is None
    refusal = too_old_to_replay(event.to_json(), made + 49 * HOUR_MS, 48)
    assert refusal and str(event.event_id) in refusal and "DEDUPE_RETENTION_HOURS=48" in refusal


def test_a_message_without_an_age_is_left_to_the_operator() -> None:
    assert too_old_to_replay(b"not json", 10**13, 48) is None  # poison: no event to judge
    assert too_old_to_replay(None, 10**13, 48) is None
    v4 = new_event("PaymentAuthorized", uuid.uuid4()).model_copy(update={"event_id": uuid.uuid4()})
    assert too_old_to_replay(v4.to_json(), 10**13, 48) is None  # not v7: no time inside


def test_a_dead_letter_without_its_value_is_not_replayed() -> None:
    """A record too large to copy was dead-lettered without its value: replaying that would
    publish an empty record in its place. The refusal says where the record is."""
    headers = [
        ("dlq.source.topic", b"order.created"),
        ("dlq.source.partition", b"3"),
        ("dlq.source.offset", b"195112"),
        ("dlq.omitted", b"1048446 bytes of key and value: too large to copy"),
    ]
    refusal = not_copied(headers)
    assert refusal is not None
    assert "the record is order.created[3]@195112" in refusal and "1048446 bytes" in refusal
    assert not_copied(headers[:3]) is None

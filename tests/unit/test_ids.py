"""UUIDv7 ids: valid RFC 9562 v7 values that sort by creation time."""

from __future__ import annotations

import time
import uuid

from domain.events import new_event
from domain.ids import uuid7


def test_uuid7_has_version_variant_and_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_uuid7_sorts_by_millisecond_and_is_unique() -> None:
    first = [uuid7() for _ in range(5_000)]
    deadline = time.monotonic() + 1
    while time.time_ns() // 1_000_000 == first[-1].int >> 80 and time.monotonic() < deadline:
        pass  # the next millisecond
    later = uuid7()
    assert len(set(first)) == len(first)
    assert all(later > x for x in first)
    assert [x.int >> 80 for x in first] == sorted(x.int >> 80 for x in first)


def test_events_get_v7_ids() -> None:
    assert new_event("OrderCreated", uuid7()).event_id.version == 7

"""`bench.publish_wait.summarize`: each flow topic's publish wait (Kafka timestamp minus the
event's occurredAt), over the records published inside the window only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.publish_wait import FLOW, summarize, wait_ms

_T0 = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
_T0_MS = int(_T0.timestamp() * 1000)


def _event(occurred: datetime) -> bytes:
    at = occurred.isoformat().encode()
    return b'{"eventId":"e","type":"OrderCreated","occurredAt":"%s"}' % at


def _record(topic: str, published_ms: int, waited_ms: float) -> tuple[str, int, bytes]:
    occurred = _T0 + timedelta(milliseconds=published_ms - _T0_MS - waited_ms)
    return topic, published_ms, _event(occurred)


def test_the_wait_is_the_record_timestamp_minus_occurred_at() -> None:
    assert wait_ms(_event(_T0), _T0_MS + 37) == 37.0
    assert wait_ms(b'{"occurredAt":"2026-12-05T04:00:00.250000Z"}', _T0_MS + 300) == 50.0


def test_values_that_are_not_events_have_no_wait() -> None:
    for value in (None, b"", b"not json", b"[1]", b'{"type":"x"}', b'{"occurredAt":"soon"}'):
        assert wait_ms(value, _T0_MS) is None


def test_each_topic_gets_its_own_percentiles_within_the_window() -> None:
    inside = [_record("order.created", _T0_MS + 1000 + i, 10 + i) for i in range(100)]
    other = [_record("inventory.reserved", _T0_MS + 2000, 5.0)]
    outside = [
        _record("order.created", _T0_MS - 1, 9_999),  # before the window
        _record("order.created", _T0_MS + 10_000, 9_999),  # at its end: excluded
        _record("notification.send", _T0_MS + 1000, 9_999),  # not a topic asked for
        ("order.created", _T0_MS + 1000, b"garbage"),
    ]
    got = summarize([*inside, *other, *outside], FLOW, _T0_MS, _T0_MS + 10_000)
    assert list(got) == list(FLOW)
    assert got["order.created"] == {"p50": 59.0, "p99": 108.0, "events": 100}
    assert got["inventory.reserved"] == {"p50": 5.0, "p99": 5.0, "events": 1}
    assert got["payment.authorized"] == {"events": 0}  # no event: no percentile, not 0 ms

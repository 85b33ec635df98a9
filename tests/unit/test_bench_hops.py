"""`bench.stats.hop_latencies`: accept→SHIPPED hop by hop, only over orders with every stage."""

from __future__ import annotations

from bench.stats import HOPS, hop_latencies
from bench.tracker import Outcome


def _shipped(created: float, *gaps_ms: float) -> Outcome:
    times: list[float | None] = []
    t = created
    for gap in gaps_ms:
        t += gap / 1000
        times.append(t)
    return Outcome("DELIVERED", created, t + 0.2, tuple(times))


def test_each_hop_gets_its_own_percentiles() -> None:
    outcomes = [_shipped(100.0 + i, 10 + i, 20, 30, 50) for i in range(100)]  # 10..109 ms
    got = hop_latencies(outcomes)
    assert list(got) == list(HOPS)
    assert got["accept_to_reserved"] == {"p50": 59.0, "p99": 108.0}
    assert got["reserved_to_paid"] == {"p50": 20.0, "p99": 20.0}
    assert got["paid_to_shipment_created"]["p50"] == 30.0
    assert got["shipment_created_to_shipped"]["p99"] == 50.0


def test_orders_without_every_stage_are_left_out() -> None:
    rejected = Outcome("REJECTED", 100.0, 100.1, (None, None, None, None))
    declined = Outcome("DECLINED", 100.0, 100.3, (100.1, None, None, None))
    legacy = Outcome("DELIVERED", 100.0, 100.5)  # no stage times at all
    shipped = _shipped(100.0, 40, 30, 20, 10)
    got = hop_latencies([rejected, declined, legacy, shipped])
    assert got["accept_to_reserved"] == {"p50": 40.0, "p99": 40.0}
    assert got["shipment_created_to_shipped"] == {"p50": 10.0, "p99": 10.0}
    assert hop_latencies([rejected]) == {}  # nothing measured: no hop, not 0 ms

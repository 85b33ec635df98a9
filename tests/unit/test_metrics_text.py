from __future__ import annotations

from core.metrics import FAMILIES, families_without_samples


def test_every_family_is_announced_before_its_first_sample() -> None:
    lines = families_without_samples("")
    assert len(lines) == 2 * len(FAMILIES)
    assert "# TYPE ray_orders_status_total counter" in lines
    assert "# TYPE ray_orders_stage_latency_ms histogram" in lines


def test_exported_families_are_not_announced_twice() -> None:
    exported = "# HELP ray_orders_dlq_total x\n# TYPE ray_orders_dlq_total counter\n"
    lines = families_without_samples(exported)
    assert not any("ray_orders_dlq_total" in line for line in lines)
    assert len(lines) == 2 * (len(FAMILIES) - 1)


def test_a_counter_exported_under_its_total_name_is_not_announced_again() -> None:
    """prometheus_client exports the counter `ray_orders_outbox_published` as
    `ray_orders_outbox_published_total`: an empty second family of the bare name was added on
    every scrape, and a parser read two families."""
    exported = (
        "# HELP ray_orders_outbox_published_total x\n"
        "# TYPE ray_orders_outbox_published_total counter\n"
        "ray_orders_outbox_published_total 3.0\n"
    )
    lines = families_without_samples(exported)
    assert not any("ray_orders_outbox_published" in line for line in lines), lines
    assert "# TYPE ray_orders_consumer_events_total counter" in families_without_samples("")

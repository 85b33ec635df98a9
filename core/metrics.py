"""Prometheus metrics through `ray.util.metrics` (exported by Ray's metrics agent, which
prefixes every name with `ray_`)."""

from __future__ import annotations

from typing import Any

# ms, up to an hour: a backlog (an open circuit, a broker or Postgres outage) puts events
# minutes old through a stage, and past the last boundary Ray's agent sums each as twice it
_LATENCY_BOUNDARIES = [
    *(5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 1e4),
    *(3e4, 6e4, 3e5, 9e5, 3.6e6),
]

#: name → (kind, description, tag keys): the platform's metric families.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "orders_outbox_published": ("counter", "Outbox rows published to Kafka", ()),
    "orders_status_total": ("counter", "Orders entering a status", ("status",)),
    "orders_consumer_events": ("counter", "Events handled by a consumer group", ("group",)),
    "orders_consumer_lag": ("gauge", "Messages behind the log end, per group", ("group",)),
    "orders_dlq_total": ("counter", "Messages sent to a dead-letter topic", ("topic",)),
    "orders_stage_latency_ms": ("histogram", "Event age when a stage handles it", ("stage",)),
    "orders_breaker_state": (
        "gauge",
        "Payment breaker: 0 closed, 1 half-open, 2 open",
        ("shard",),
    ),
}


class Metrics:
    """Lazily created metric objects; safe to construct in any actor or replica."""

    _cache: dict[str, Any] = {}

    @classmethod
    def _get(cls, name: str) -> Any:
        metric = cls._cache.get(name)
        if metric is None:
            from ray.util import metrics

            kind, description, tags = FAMILIES[name]
            if kind == "counter":
                metric = metrics.Counter(name, description=description, tag_keys=tags)
            elif kind == "gauge":
                metric = metrics.Gauge(name, description=description, tag_keys=tags)
            else:
                metric = metrics.Histogram(
                    name, description=description, boundaries=_LATENCY_BOUNDARIES, tag_keys=tags
                )
            cls._cache[name] = metric
        return metric

    def relay_published(self, n: int) -> None:
        if n > 0:  # Ray counters refuse 0
            self._get("orders_outbox_published").inc(n)

    def status_changed(self, status: str, n: int = 1) -> None:
        if n > 0:
            self._get("orders_status_total").inc(n, tags={"status": status})

    def consumed(self, group: str, n: int) -> None:
        if n > 0:
            self._get("orders_consumer_events").inc(n, tags={"group": group})

    def lag(self, group: str, lag: int) -> None:
        self._get("orders_consumer_lag").set(lag, tags={"group": group})

    def dead_lettered(self, topic: str) -> None:
        self._get("orders_dlq_total").inc(1, tags={"topic": topic})

    def stage_latency(self, stage: str, ms: float) -> None:
        self._get("orders_stage_latency_ms").observe(ms, tags={"stage": stage})

    def breaker_state(self, shard: str, state: str) -> None:
        value = {"closed": 0, "half-open": 1, "open": 2}.get(state, -1)
        self._get("orders_breaker_state").set(value, tags={"shard": shard})


def families_without_samples(exported: str) -> list[str]:
    """HELP/TYPE lines of our families that Ray has not exported yet (nothing recorded so far),
    so a scraper sees every family from the first scrape on."""
    lines = []
    for name, (kind, description, _) in FAMILIES.items():
        # a counter's family is exported under `<name>_total` (prometheus_client adds it to a
        # name without it): looked for under its own name, `orders_outbox_published` and
        # `orders_consumer_events` were announced again, empty, beside their samples
        total = kind == "counter" and not name.endswith("_total")
        full = f"ray_{name}_total" if total else f"ray_{name}"
        if f"# TYPE {full} " not in exported:
            lines += [f"# HELP {full} {description}", f"# TYPE {full} {kind}"]
    return lines

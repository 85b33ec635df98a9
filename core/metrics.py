"""Prometheus metrics through `ray.util.metrics` (exported by Ray's metrics agent)."""

from __future__ import annotations

from typing import Any

_LATENCY_BOUNDARIES = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 1e4]


class Metrics:
    """Lazily created metric objects; safe to construct in any actor or replica."""

    _cache: dict[str, Any] = {}

    @classmethod
    def _get(cls, kind: str, name: str, description: str, tags: tuple[str, ...]) -> Any:
        metric = cls._cache.get(name)
        if metric is None:
            from ray.util import metrics

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
        if n <= 0:  # Ray counters refuse 0
            return
        self._get("counter", "orders_outbox_published", "Outbox rows published to Kafka", ()).inc(n)

    def status_changed(self, status: str, n: int = 1) -> None:
        if n <= 0:
            return
        self._get("counter", "orders_status_total", "Orders entering a status", ("status",)).inc(
            n, tags={"status": status}
        )

    def consumed(self, group: str, n: int) -> None:
        if n <= 0:
            return
        self._get(
            "counter", "orders_consumer_events", "Events handled by a consumer group", ("group",)
        ).inc(n, tags={"group": group})

    def lag(self, group: str, lag: int) -> None:
        self._get(
            "gauge", "orders_consumer_lag", "Messages behind the log end, per group", ("group",)
        ).set(lag, tags={"group": group})

    def dead_lettered(self, topic: str) -> None:
        self._get(
            "counter", "orders_dlq_total", "Messages sent to a dead-letter topic", ("topic",)
        ).inc(1, tags={"topic": topic})

    def stage_latency(self, stage: str, ms: float) -> None:
        self._get(
            "histogram", "orders_stage_latency_ms", "Event age when a stage handles it", ("stage",)
        ).observe(ms, tags={"stage": stage})

    def breaker_state(self, shard: str, state: str) -> None:
        value = {"closed": 0, "half-open": 1, "open": 2}.get(state, -1)
        self._get(
            "gauge",
            "orders_breaker_state",
            "Payment breaker: 0 closed, 1 half-open, 2 open",
            ("shard",),
        ).set(value, tags={"shard": shard})

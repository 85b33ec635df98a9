"""Shared pieces of the consumer handlers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from core import registry
from core.settings import Settings
from domain.events import Envelope


class PoisonMessage(Exception):
    """An event that can never be handled (goes to the DLQ after bounded retries)."""


class Handler(Protocol):
    @property
    def topics(self) -> tuple[str, ...]: ...

    @property
    def events_per_order(self) -> int:
        """Events a delivered order puts on these topics: pacing counts its threshold in
        orders."""
        ...

    @property
    def ignored(self) -> dict[str, tuple[bytes, ...]]:
        """Per topic, byte strings that mark an event this group ignores: such a record is
        passed over unparsed (the JSON comes from `Envelope.to_json`, so a marker such as
        `"shipmentStatus":"CREATED"` is exact)."""
        ...

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None: ...

    async def close(self) -> None: ...


def shipment_status(*statuses: str) -> tuple[bytes, ...]:
    """Markers of `shipping.updated` events with these shipment statuses (see `ignored`)."""
    return tuple(b'"shipmentStatus":"%s"' % s.encode() for s in statuses)


def by_topic(events: Sequence[tuple[str, Envelope]]) -> dict[str, list[Envelope]]:
    grouped: dict[str, list[Envelope]] = defaultdict(list)
    for topic, event in events:
        grouped[topic].append(event)
    return grouped


def items_of(event: Envelope) -> list[tuple[str, int]]:
    try:
        return [(str(i["sku"]), int(i["qty"])) for i in event.data["items"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"event {event.event_id} has no valid items") from exc


class ActorLookup:
    """Cached handles to the named platform actors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, Any] = {}

    def actor(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = registry.get_actor(name, self.settings.ray_namespace)
        return self._cache[name]

    async def close(self) -> None:
        return None

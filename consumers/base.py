"""Shared pieces of the consumer handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from core import registry
from core.settings import Settings
from domain.events import Envelope


class PoisonMessage(Exception):
    """An event that can never be handled (goes to the DLQ after bounded retries)."""


class Handler(Protocol):
    """What a consumer group does with a batch `(topic, event)`; idempotent (a redelivered
    event changes nothing)."""

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None: ...


class ActorLookup:
    """Cached handles to the named platform actors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, Any] = {}

    def actor(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = registry.get_actor(name, self.settings.ray_namespace)
        return self._cache[name]

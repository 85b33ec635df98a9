"""Shared pieces of the consumer handlers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from typing import Any, Protocol

from ray.exceptions import RayActorError

from core import registry
from core.settings import Settings
from domain.errors import Unavailable
from domain.events import Envelope

# A call to another shard (a multi-shard group's member): longer than any batch takes at
# saturation, short enough that a cancel waiting on the batch's row locks gets an answer.
REMOTE_CALL_S = 30.0


class PoisonMessage(Exception):
    """An event that can never be handled (goes to the DLQ after bounded retries)."""


def require_orders(events: Iterable[Envelope], orders: Container[uuid.UUID]) -> None:
    """Raise `PoisonMessage` for an event whose order is not among `orders` (the ids of those
    that exist, or a mapping keyed by them): orders are never deleted, so it never will exist;
    it goes to the dead-letter topic, not passed over unseen."""
    for e in events:
        if e.order_id not in orders:
            raise PoisonMessage(f"order {e.order_id} of {e.type} {e.event_id} does not exist")


class Handler(Protocol):
    """What a consumer group does with a batch `(topic, event)`; idempotent (a redelivered
    event changes nothing)."""

    async def handle(self, events: Sequence[tuple[str, Envelope]]) -> None: ...


class Shards:
    """The shards of one kind as the member of a consumer group hosted by shard `index` sees
    them: its own shard is called in process (no Ray call, no pickling of the batch), the
    others through their named actors (docs/adr/ADR-006)."""

    def __init__(
        self, settings: Settings, name: Callable[[int], str], index: int, local: object
    ) -> None:
        self._namespace = settings.ray_namespace
        self._name = name
        self._index = index
        self._local = local
        self._handles: dict[int, Any] = {}

    @property
    def index(self) -> int:
        """The hosting shard's number (its calls run in process)."""
        return self._index

    def call(self, index: int, method: str, *args: Any) -> Awaitable[Any]:
        """`method(*args)` on shard `index`, awaitable either way."""
        if index == self._index:
            result: Awaitable[Any] = getattr(self._local, method)(*args)
            return result
        return self._remote(index, method, args)

    async def _remote(self, index: int, method: str, args: tuple[Any, ...]) -> Any:
        ref = getattr(await self._handle(index), method).remote(*args)
        try:
            # bounded: the caller's transaction holds its orders' row locks meanwhile (a cancel
            # waits on them), and a shard restarting elsewhere may take minutes; the timeout is
            # transient, the batch is retried; the call itself may still run later, which the
            # shards' idempotent methods make harmless
            return await asyncio.wait_for(ref, REMOTE_CALL_S)
        except RayActorError:
            # the actor died for good (or is unreachable): its name may already belong to a
            # new actor, which this cached handle would never reach; the caller's retry (a
            # transient error) looks the name up again
            self._handles.pop(index, None)
            raise

    async def _handle(self, index: int) -> Any:
        if index not in self._handles:
            name = self._name(index)
            try:  # off the event loop (its heartbeats, the hold sweeps); a timeout is transient
                self._handles[index] = await registry.find_actor(
                    name, self._namespace, REMOTE_CALL_S
                )
            except ValueError as exc:  # not created yet (a rollout): retried, never poison
                raise Unavailable(f"actor {name} does not exist (yet)") from exc
        return self._handles[index]

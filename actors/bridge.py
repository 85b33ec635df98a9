"""Kafka bridge actors: a consumer group's loop in a process of its own, calling the shard actors
that own the group's effects. Several bridges of one group share its partitions."""

from __future__ import annotations

import os
from typing import Any

from actors.base import platform_actor
from consumers.handlers import handler_for
from consumers.loop import ConsumerLoop
from core.settings import get_settings


@platform_actor(max_concurrency=8)
class KafkaBridge:
    async def __init__(self, group: str) -> None:  # type: ignore[misc]
        settings = get_settings()
        self._loop = ConsumerLoop(group, handler_for(group, settings), settings)

    async def health(self) -> dict[str, Any]:
        return {"pid": os.getpid(), **self._loop.health()}

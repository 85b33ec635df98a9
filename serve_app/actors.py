"""Handles to the platform's named Ray actors, looked up once and cached."""

from __future__ import annotations

from typing import Any

from core import registry
from domain.errors import Unavailable

_LOOKUP_S = 10.0


class ActorDirectory:
    """Named actors of the platform's namespace; `Unavailable` (503) when Ray or one is
    missing. Without Ray (the uvicorn baseline of the benchmark) every lookup is Unavailable."""

    def __init__(self, namespace: str, *, with_ray: bool) -> None:
        self._namespace = namespace
        self._with_ray = with_ray
        self._handles: dict[str, Any] = {}

    @property
    def with_ray(self) -> bool:
        return self._with_ray

    async def get(self, name: str) -> Any:
        if not self._with_ray:
            raise Unavailable("this gateway runs without Ray; use the Serve deployment")
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = await registry.find_actor(name, self._namespace, _LOOKUP_S)
            except ValueError:
                raise Unavailable(f"actor {name} is not running; run `make up`") from None
            except TimeoutError:
                wait = f"{_LOOKUP_S:.0f} s"
                raise Unavailable(f"Ray did not find actor {name} within {wait}; retry") from None
            self._handles[name] = handle
        return handle

    def forget(self, name: str) -> None:
        """Drop a cached handle (its actor died for good: a new one by that name gets a new
        handle; `make redeploy` replaces the actors before the replicas)."""
        self._handles.pop(name, None)

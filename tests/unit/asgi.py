"""A request to an app in this process (httpx over ASGI), for the route tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


def request(app: Any, method: str, path: str, timeout_s: float = 10.0, **kw: Any) -> httpx.Response:
    """`method path` against `app`, its keyword arguments httpx's (headers, content); bounded."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(asyncio.wait_for(go(), timeout_s))

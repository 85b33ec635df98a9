"""The platform's metrics as Prometheus text, read from Ray's metrics agent on this node
(non-blocking HTTP on loopback) and filtered to our families and Serve's request counters."""

from __future__ import annotations

import httpx

from core.metrics import families_without_samples
from domain.errors import Unavailable

_SERVE_FAMILIES = ("ray_serve_num_http", "ray_serve_deployment_request")


def _is_platform_metric(line: str) -> bool:
    """Our `orders_*` families and Serve's request counters, with their HELP/TYPE lines."""
    if line.startswith(("# HELP ", "# TYPE ")):
        name = line.split(" ", 3)[2]
    else:
        name = line.split("{", 1)[0].split(" ", 1)[0]
    return "orders_" in name or name.startswith(_SERVE_FAMILIES)


class MetricsProxy:
    def __init__(self, port: int) -> None:
        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=3.0)

    async def text(self) -> str:
        try:
            resp = await self._client.get("/metrics")
            resp.raise_for_status()
        except httpx.HTTPError:
            raise Unavailable("Ray's metrics agent is not reachable on this node") from None
        keep = [line for line in resp.text.splitlines() if _is_platform_metric(line)]
        keep += families_without_samples(resp.text)
        return "\n".join(keep) + "\n"

    async def close(self) -> None:
        await self._client.aclose()

"""The Ray Serve application: the API gateway deployment on :8080.

Import path for `serve run`/RayService: `cluster.app:app`. It lives in the composition root
because a replica's start brings up the platform's actors (under a KubeRay RayService,
serveConfigV2 deploys only this app).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from cluster.deploy import ensure_actors
from core.settings import get_settings
from serve_app.api import create_app

_settings = get_settings()
api = create_app(with_ray=True, on_start=ensure_actors)


@serve.deployment(
    name="api-gateway",
    max_ongoing_requests=_settings.max_ongoing_requests,
    # Past this queue, answer 503 + Retry-After at once instead of letting requests pile up in
    # the proxy until clients time out (measured: congestion collapse at 300 req/s offered).
    max_queued_requests=_settings.max_queued_requests,
    backpressure_config={"status_code": 503, "retry_after_s": 1},
    autoscaling_config={
        "min_replicas": 1,
        "max_replicas": max(1, _settings.gateway_replicas),
        "target_ongoing_requests": max(1, _settings.max_ongoing_requests // 4),
    },
    ray_actor_options={"num_cpus": 0},
    logging_config={"enable_access_log": _settings.serve_access_log},
    health_check_period_s=5,
)
@serve.ingress(api)
class Gateway:
    """JWT-guarded HTTP API; its FastAPI lifespan opens the PG pool and Redis client."""


app = Gateway.bind()  # type: ignore[attr-defined]

# A resource every Ray head node has, and no other node.
HEAD_RESOURCE = "node:__internal_head__"


def on_head() -> Any:
    """The app with its replicas placed on the head node: what `orders deploy` runs (the local
    stack). The head's HTTP proxy is the ingress, and a replica listens on HTTP_HOST (127.0.0.1
    by default): one placed on a joined machine (Serve spreads replicas, which ask for no CPU)
    listened on that machine's loopback, where the head's proxy could not reach it. Under
    KubeRay the RayService runs `app` (replicas on the worker pods, reached by their pod IP)."""
    options = {**Gateway.ray_actor_options, "resources": {HEAD_RESOURCE: 0.001}}  # type: ignore[attr-defined]
    return Gateway.options(ray_actor_options=options).bind()  # type: ignore[attr-defined]

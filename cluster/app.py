"""The Ray Serve application: the API gateway deployment on :8080.

Import path for `serve run`/RayService: `cluster.app:app`. It lives in the composition root
because a replica's start brings up the platform's actors (under a KubeRay RayService,
serveConfigV2 deploys only this app).
"""

from __future__ import annotations

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

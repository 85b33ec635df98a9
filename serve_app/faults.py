"""Dev-mode fault injection (admin): the payment provider down, one customer's shipments
failing or held. Flags live in Redis with an hour's expiry; only APP_ENV=dev sets them, any
APP_ENV clears them."""

from __future__ import annotations

from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from adapters.provider import FAULT_KEY
from domain.commands import SKU_PATTERN
from domain.errors import Conflict, InvalidInput
from serve_app.models import FaultState

_TTL_S = 3600


class FaultSpec(BaseModel):
    """A dev-mode fault: `payment-provider` (global) or `shipping-fail`/`shipping-hold`
    (for one customer's shipments)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"fault": "payment-provider", "enabled": True}]},
    )

    fault: Literal["payment-provider", "shipping-fail", "shipping-hold"]
    enabled: bool = Field(strict=True)
    customer_id: str | None = Field(default=None, alias="customerId", pattern=SKU_PATTERN)


class FaultInjector:
    def __init__(self, redis: aioredis.Redis, app_env: str) -> None:
        self._redis = redis
        self._app_env = app_env

    async def set(self, spec: FaultSpec) -> FaultState:
        """Set or clear a flag. Setting needs APP_ENV=dev; clearing works everywhere: a flag
        set in dev outlives a switch of APP_ENV (Redis keeps it up to an hour), and the
        stages obey it wherever they run."""
        if spec.enabled and self._app_env != "dev":
            raise Conflict("fault injection is only available with APP_ENV=dev")
        if spec.fault == "payment-provider":
            if spec.customer_id is not None:
                raise InvalidInput("payment-provider is global: it takes no customerId")
            key = FAULT_KEY
        elif spec.customer_id is None:
            raise InvalidInput(f"{spec.fault} needs customerId")
        else:
            key = f"fault:{spec.fault}:{spec.customer_id}"
        if spec.enabled:
            value = "down" if spec.fault == "payment-provider" else "1"
            await self._redis.set(key, value, ex=_TTL_S)
        else:
            await self._redis.delete(key)
        return FaultState(fault=spec.fault, customer_id=spec.customer_id, enabled=spec.enabled)

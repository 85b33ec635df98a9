"""Which errors the consumer loop retries without limit (the infrastructure's: a database,
broker or Redis restart, an actor restarting, an open circuit) and which make a message poison
after bounded retries (everything else)."""

from __future__ import annotations

import psycopg
import ray.exceptions
from aiokafka.errors import KafkaError
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import Unavailable

_TRANSIENT = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
    KafkaError,
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    Unavailable,
    ray.exceptions.RayActorError,
    ray.exceptions.ActorUnavailableError,
    ray.exceptions.GetTimeoutError,
)


def root(exc: BaseException) -> BaseException:
    """The error a Ray actor call wrapped (its `cause`), or the error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def is_transient(exc: BaseException) -> bool:
    """True for errors of the infrastructure (retry forever), False for poison."""
    return isinstance(exc, _TRANSIENT) or isinstance(root(exc), _TRANSIENT)

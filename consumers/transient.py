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


class Poisoned(Exception):
    """The consumer loop's verdict on a message: poison, to its dead-letter topic, `reason`
    saying why (its `dlq.reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def root(exc: BaseException) -> BaseException:
    """The error a Ray actor call wrapped (its `cause`), or the error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


# Postgres's errors of the infrastructure, by SQLSTATE: a connection lost (class 08), a
# serialization failure or deadlock (40), resources short (53), the server shutting down or a
# statement cancelled (57), an I/O error (58), a lock not available (55P03). Not all of
# OperationalError: its class 54 (an index row too large for a B-tree, from an event's text)
# and 55000 come back on every retry, and retried without limit such an event held its stage.
_TRANSIENT_SQLSTATES = ("08", "40", "53", "57", "58", "55P03")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate is None:  # the client's own: no connection, a connection broken
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return exc.sqlstate.startswith(_TRANSIENT_SQLSTATES)
    return isinstance(exc, _TRANSIENT)


def refused_for_good(exc: BaseException) -> bool:
    """A refusal no retry can change, poison at once like a `PoisonMessage`: a dedupe key
    older than the kept partitions, refused by the retention guard on the default partition
    (`<table>_within_retention`, ADR-012: the event of an outbox outage longer than
    `DEDUPE_RETENTION_HOURS`). Retried as an unexpected error, each such event of a backlog
    held its group ~1.2 s, a batch of them past the member's poll interval."""
    return isinstance(exc, psycopg.errors.CheckViolation) and (
        exc.diag.constraint_name or ""
    ).endswith("_within_retention")


def is_transient(exc: BaseException) -> bool:
    """True for errors of the infrastructure (retry forever), False for poison."""
    return _transient(exc) or _transient(root(exc))

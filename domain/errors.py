"""Typed errors raised by the core and translated to HTTP or DLQ decisions at the edges."""

from __future__ import annotations

from typing import Any


class OrderError(Exception):
    """Base of every expected business error. `code` is stable and machine-readable."""

    code = "order_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(OrderError):
    code = "not_found"


class Conflict(OrderError):
    code = "conflict"


class InProgress(Conflict):
    """A request with the same Idempotency-Key is still running; retry after `retry_after_s`."""

    code = "idempotency_in_progress"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidInput(OrderError):
    code = "invalid_input"


class Unavailable(OrderError):
    """A dependency is temporarily down; retry after `retry_after_s`."""

    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int = 5, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class InvalidTransition(OrderError):
    code = "invalid_transition"


class RateLimited(OrderError):
    """Too many requests from one principal; retry after `retry_after_s`."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

"""A hostile request, the exact answer it must get, and the check that it stored nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.security.conftest import JSON, World


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None


@dataclass(frozen=True)
class Case:
    """`build(world)` makes the request; the answer must be `status` with error `code` (None:
    any code; ignored for a non-error status)."""

    name: str
    build: Callable[[World], Request]
    status: int
    code: str | None = None


def order(w: World, body: Any, *headers: tuple[str, str]) -> Request:
    """POST /api/orders with `body` (bytes as is, anything else as JSON) as the attacker,
    unless `headers` replace its Authorization."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    auth = [h for h in headers if h[0].lower() == "authorization"] or [w.as_attacker()]
    rest = [h for h in headers if h[0].lower() != "authorization"] or [JSON]
    return Request("POST", "/api/orders", [*auth, *rest], content)


def send(http: httpx.Client, req: Request) -> httpx.Response:
    return http.request(req.method, req.path, headers=req.headers, content=req.body)


def check_answer(resp: httpx.Response, status: int, code: str | None, name: str = "") -> None:
    """Exactly `status`; an error is the JSON envelope (with `code`, when given) and leaks no
    internals."""
    assert resp.status_code == status, (name, resp.status_code, resp.text[:300])
    assert "Traceback" not in resp.text and "psycopg" not in resp.text
    if resp.status_code >= 400:
        error = resp.json()["error"]
        assert error["message"], name
        if code is not None:
            assert error["code"] == code, (name, error)


def run(http: httpx.Client, case: Case, w: World, unchanged: Callable[[World], Any]) -> None:
    """Send the case's request; assert the exact answer and that nothing was stored."""
    check = unchanged(w)
    resp = send(http, case.build(w))
    check_answer(resp, case.status, case.code, case.name)
    check()


def ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]

"""Fixtures of the hostile-input suite: the live stack's gateway (127.0.0.1:HTTP_PORT), tokens
minted with its secret (JWT_SECRET, default devsecret), hand-made tokens for odd claims, and a
check that a refused request stored nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import redis
from psycopg.rows import dict_row

from core.auth import make_token
from core.settings import Settings, get_settings
from tests.integration.conftest import scratch_order

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def http(settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=15) as c:
        yield c


@pytest.fixture(scope="session")
def pg(settings: Settings) -> Iterator[Conn]:
    with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def rds(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@dataclass
class Tokens:
    """Mints tokens signed with the stack's secret: `mint` as `make token` does, `raw` over
    exactly the given header and payload texts (for duplicate keys, NaN and the like)."""

    settings: Settings

    def mint(self, sub: str, *roles: str, ttl_s: int | None = None) -> str:
        s = self.settings
        return make_token(
            sub,
            list(roles or ("customer",)),
            secret=s.jwt_secret,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            ttl_s=ttl_s,
        )

    def raw(self, payload: str, header: str = '{"alg":"HS256","typ":"JWT"}') -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
        key = self.settings.jwt_secret.encode()
        sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(sig)}"

    def claims(self, sub: str = '"customer1"', **fields: str) -> str:
        """The seed's claims as JSON text; `fields` are raw JSON values replacing or added."""
        s = self.settings
        claims = {
            "sub": sub,
            "roles": '["customer"]',
            "aud": f'"{s.jwt_audience}"',
            "iss": f'"{s.jwt_issuer}"',
            "iat": str(int(time.time())),
            **fields,
        }
        return "{" + ",".join(f'"{k}":{v}' for k, v in claims.items()) + "}"


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


JSON = ("Content-Type", "application/json")


@dataclass
class World:
    """Who is who in a case: a fresh attacker principal and customer id, and a victim with an
    order of its own (its customer id owned by it)."""

    tokens: Tokens
    attacker: str = field(default_factory=lambda: f"sec-{uuid.uuid4().hex[:10]}")
    fresh_customer: str = field(default_factory=lambda: f"secc-{uuid.uuid4().hex[:10]}")
    victim: str = ""
    victim_order: str = ""

    def as_attacker(self, *roles: str) -> tuple[str, str]:
        return bearer(self.tokens.mint(self.attacker, *roles))

    def order_body(self, customer: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "customerId": customer or self.fresh_customer,
            "items": [{"sku": "SKU-5", "qty": 1}],
            **extra,
        }


VICTIM_STATUS = "RESERVED"


@pytest.fixture(scope="session")
def victim(http: httpx.Client, tokens: Tokens, pg: Conn) -> tuple[str, str]:
    """A customer (principal = customer id) that owns its customer id (claimed by an order it
    placed) and the victim order: a scratch order, RESERVED, that nothing moves by itself (no
    event names it; the hold-expiry sweep only finds orders with hold rows, and it has none),
    so a case that changed it is seen for the whole session."""
    who = f"victim-{uuid.uuid4().hex[:10]}"
    resp = http.post(
        "/api/orders",
        json={"customerId": who, "items": [{"sku": "SKU-5", "qty": 1}]},
        headers=[bearer(tokens.mint(who)), JSON],
    )
    assert resp.status_code == 202, resp.text
    return who, str(scratch_order(pg, who, VICTIM_STATUS))


@pytest.fixture()
def world(tokens: Tokens, victim: tuple[str, str]) -> World:
    return World(tokens, victim=victim[0], victim_order=victim[1])


@dataclass(frozen=True)
class Footprint:
    """What a request could have stored: orders by the attacker or for the fresh or the
    victim's customer id, ownership rows of those ids, the victim order's status."""

    orders: int
    owners: tuple[tuple[str, str], ...]
    victim_status: str


def footprint(pg: Conn, w: World) -> Footprint:
    ids = [w.fresh_customer, w.victim]
    orders = pg.execute(
        "SELECT count(*) AS n FROM orders WHERE principal = %s OR customer_id = ANY(%s)",
        (w.attacker, ids),
    ).fetchone()
    owners = pg.execute(
        "SELECT customer_id, principal FROM customer_owners WHERE customer_id = ANY(%s) "
        "ORDER BY customer_id",
        (ids,),
    ).fetchall()
    victim = pg.execute("SELECT status FROM orders WHERE id = %s", (w.victim_order,)).fetchone()
    assert orders is not None and victim is not None
    return Footprint(
        int(orders["n"]),
        tuple((r["customer_id"], r["principal"]) for r in owners),
        str(victim["status"]),
    )


@pytest.fixture()
def unchanged(pg: Conn) -> Callable[[World], Callable[[], None]]:
    """`check = unchanged(world)` before a request; `check()` after it asserts nothing was
    stored and the victim's order was not touched (nothing else moves it: `victim`)."""

    def snapshot(w: World) -> Callable[[], None]:
        before = footprint(pg, w)
        assert before.victim_status == VICTIM_STATUS, "an earlier case moved the victim's order"

        def check() -> None:
            after = footprint(pg, w)
            assert after.orders == before.orders, "an order was stored"
            assert after.owners == before.owners, "a customer id was claimed"
            assert after.victim_status == before.victim_status, "the victim's order was moved"

        return check

    return snapshot

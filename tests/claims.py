"""The seed's demo token claims, shared by the unit and the HTTP auth tests."""

from __future__ import annotations

import time


def seed_claims(**overrides: object) -> dict[str, object]:
    """sub=customer1, roles=[customer], aud=orders-api, iss=orders-demo, iat=now, no exp;
    `overrides` change or (with None) remove claims."""
    claims: dict[str, object] = {
        "sub": "customer1",
        "roles": ["customer"],
        "aud": "orders-api",
        "iss": "orders-demo",
        "iat": int(time.time()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}

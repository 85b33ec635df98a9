"""JWT verification for the gateway: HS256 only, aud/iss required, bounded token age."""

from __future__ import annotations

import time
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from core.settings import Settings

Role = Literal["customer", "admin"]
KNOWN_ROLES: frozenset[str] = frozenset({"customer", "admin"})
_ALGORITHMS = ["HS256"]
_CLOCK_SKEW_S = 30
# Key length is enforced by Settings (>= 32 bytes outside dev); the dev secret is short on purpose.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)


class AuthError(Exception):
    """A token that cannot be trusted. `status` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, message: str, status: int = 401, code: str = "unauthorized") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def verify_token(
    token: str,
    *,
    secret: str,
    audience: str,
    issuer: str,
    max_age_s: int,
    now: float | None = None,
) -> Principal:
    """Return the principal of a valid token; raise `AuthError` (no detail leaked) otherwise."""
    current = time.time() if now is None else now
    try:
        claims = _verified_claims(token, secret, audience, issuer)
    except jwt.InvalidTokenError:
        raise AuthError("invalid token") from None
    for claim in ("exp", "nbf"):  # time-dependent: checked on every use, never cached
        value = claims.get(claim)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise AuthError("invalid token")
    if "exp" in claims and claims["exp"] <= current - _CLOCK_SKEW_S:
        raise AuthError("token expired")
    if "nbf" in claims and claims["nbf"] > current + _CLOCK_SKEW_S:
        raise AuthError("invalid token")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise AuthError("invalid token")
    if iat > current + _CLOCK_SKEW_S:
        raise AuthError("token issued in the future")
    if "exp" not in claims and current - iat > max_age_s:
        raise AuthError("token too old: it has no exp and its iat is older than JWT_MAX_AGE_S")
    sub, roles = claims.get("sub"), claims.get("roles")
    if not isinstance(sub, str) or not sub or len(sub) > 128:
        raise AuthError("invalid token")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise AuthError("invalid token: roles missing")
    known = frozenset(roles) & KNOWN_ROLES
    if not known:
        raise AuthError("token has no known role", status=403, code="forbidden")
    return Principal(sub=sub, roles=known)


def authenticate(token: str, settings: Settings) -> Principal:
    """`verify_token` with the platform's JWT settings (secret, audience, issuer, max age)."""
    return verify_token(
        token,
        secret=settings.jwt_secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        max_age_s=settings.jwt_max_age_s,
    )


@lru_cache(maxsize=16_384)
def _verified_claims(token: str, secret: str, audience: str, issuer: str) -> dict[str, Any]:
    """Signature, algorithm, aud and iss of a token: the same answer for the same inputs, so
    cached (a client sends the same token on every request; HMAC plus PyJWT's parsing cost
    ~60 us a request on the gateway's event loop). Failures raise and are never cached."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=_ALGORITHMS,
        audience=audience,
        issuer=issuer,
        options={
            "require": ["sub", "iat", "aud", "iss"],
            "verify_iat": False,
            "verify_exp": False,
            "verify_nbf": False,
        },
    )
    return claims


def make_token(
    sub: str,
    roles: list[str],
    *,
    secret: str,
    audience: str = "orders-api",
    issuer: str = "orders-demo",
    ttl_s: int | None = None,
) -> str:
    """Mint a demo HS256 token (the seed's shape: no `exp` unless `ttl_s` is given)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": roles,
        "aud": audience,
        "iss": issuer,
        "iat": now,
    }
    if ttl_s is not None:
        claims["exp"] = now + ttl_s
    return jwt.encode(claims, secret, algorithm="HS256")

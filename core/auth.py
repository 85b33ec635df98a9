"""JWT verification for the gateway: HS256 only, aud/iss required, strict claims, bounded age.

Strict means a token is refused (401) when its header or payload repeats a key or holds a
non-finite number, when `iat`/`exp`/`nbf` are not integers, when `sub` or a role holds a
control character or is too long, and when `iat` is older than `JWT_MAX_AGE_S`, whether or not
the token has an `exp` (which, when present, is enforced too).
"""

from __future__ import annotations

import base64
import re
import time
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import BaseModel, ConfigDict

from domain.strict_json import JsonRejected, loads

if TYPE_CHECKING:
    from core.settings import Settings

KNOWN_ROLES: frozenset[str] = frozenset({"customer", "admin"})
MAX_SUB_CHARS = 128
MAX_ROLE_CHARS = 32
MAX_ROLES = 16
MAX_TOKEN_CHARS = 4096
_ALGORITHMS = ["HS256"]
_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_CLOCK_SKEW_S = 30
_MAX_TIMESTAMP = 2**53  # seconds; anything larger is no time a token could name
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# Key length is enforced by Settings (>= 32 bytes outside dev); the dev secret is short on purpose.
warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)


class AuthError(Exception):
    """A token that cannot be trusted. `status` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, message: str, status: int = 401, code: str = "unauthorized") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def forbidden(message: str) -> AuthError:
    """The 403 of an authenticated principal that may not do what it asked."""
    return AuthError(message, status=403, code="forbidden")


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str
    roles: frozenset[str]
    # epoch seconds after which its token no longer passes (its exp, with the clock skew
    # allowed, or its iat + JWT_MAX_AGE_S, whichever comes first); what a live stream, which
    # outlives the check at its start, ends by
    valid_until: float | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a token proves once its signature and shape are checked; its times are checked on
    every use."""

    principal: Principal
    iat: int
    exp: int | None
    nbf: int | None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value; 401 otherwise."""
    if authorization is None:
        raise AuthError("missing bearer token: send 'Authorization: Bearer <JWT>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not _TOKEN68.fullmatch(token):
        raise AuthError("not a bearer token: send 'Authorization: Bearer <JWT>'")
    return token


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
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("invalid token: too long")
    try:
        verified = _verified(token, secret, audience, issuer, max_age_s)
    except _NoKnownRole:
        raise forbidden("token has no known role (customer or admin)") from None
    except (jwt.InvalidTokenError, JsonRejected, UnicodeDecodeError):
        raise AuthError("invalid token") from None
    if verified.iat > current + _CLOCK_SKEW_S:
        raise AuthError("token issued in the future")
    if current - verified.iat > max_age_s:
        raise AuthError("token too old: its iat is older than JWT_MAX_AGE_S; get a new token")
    if verified.exp is not None and verified.exp <= current - _CLOCK_SKEW_S:
        raise AuthError("token expired")
    if verified.nbf is not None and verified.nbf > current + _CLOCK_SKEW_S:
        raise AuthError("token not valid yet (nbf)")
    return verified.principal


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
def _verified(token: str, secret: str, audience: str, issuer: str, max_age_s: int) -> _Verified:
    """Signature, algorithm, aud, iss and the shape of the claims: the same answer for the same
    inputs, so cached (a client sends the same token on every request; HMAC plus parsing cost
    ~60 us a request on the gateway's event loop). Failures raise and are never cached."""
    jwt.decode(
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
    # PyJWT parsed the segments with `json.loads` (last duplicate wins, NaN accepted): read
    # them again strictly, and take the claims from that reading.
    header_segment, payload_segment, _ = token.split(".")
    header, claims = _segment(header_segment), _segment(payload_segment)
    if not header.keys() <= _HEADER_KEYS:
        raise jwt.InvalidTokenError("unexpected token header field")
    iat = _timestamp(claims, "iat")
    if iat is None:
        raise jwt.InvalidTokenError("iat is required")
    exp, nbf = _timestamp(claims, "exp"), _timestamp(claims, "nbf")
    if exp is not None and exp < iat:
        raise jwt.InvalidTokenError("exp before iat")
    until = iat + max_age_s if exp is None else min(iat + max_age_s, exp + _CLOCK_SKEW_S)
    return _Verified(_principal(claims, until), iat, exp, nbf)


def _segment(segment: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    value = loads(raw)
    if not isinstance(value, dict):
        raise jwt.InvalidTokenError("not a JSON object")
    return value


def _timestamp(claims: dict[str, Any], name: str) -> int | None:
    """An optional NumericDate claim: an integer number of seconds (no floats, NaN, booleans)."""
    if name not in claims:
        return None
    value = claims[name]
    if type(value) is not int or not 0 <= value < _MAX_TIMESTAMP:
        raise jwt.InvalidTokenError(f"{name} must be an integer number of seconds")
    return value


def _printable(value: object, max_chars: int) -> bool:
    """A non-empty string of at most `max_chars` with no control, format, surrogate, private-use
    or unassigned character (NUL included) and no line or paragraph separator."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_chars
        and (
            value.isascii()
            and value.isprintable()
            or all(unicodedata.category(c)[0] != "C" and c not in "\u2028\u2029" for c in value)
        )
    )


def _principal(claims: dict[str, Any], valid_until: float) -> Principal:
    sub, roles = claims.get("sub"), claims.get("roles")
    if not _printable(sub, MAX_SUB_CHARS):
        raise jwt.InvalidTokenError("sub must be 1..128 printable characters")
    if (
        not isinstance(roles, list)
        or not 0 < len(roles) <= MAX_ROLES
        or not all(_printable(r, MAX_ROLE_CHARS) for r in roles)
    ):
        raise jwt.InvalidTokenError("roles must be a list of 1..16 short printable names")
    known = frozenset(roles) & KNOWN_ROLES
    if not known:
        raise _NoKnownRole
    assert isinstance(sub, str)
    return Principal(sub=sub, roles=known, valid_until=valid_until)


class _NoKnownRole(jwt.InvalidTokenError):
    """A valid token without a role this API knows: 403, not 401."""


def token_problem(sub: str, roles: list[str], ttl_s: int | None) -> str | None:
    """Why the gateway would refuse a token of these claims (None: it takes them), for a tool
    that mints one: the rules `_principal` applies, and a life that has not ended."""
    if not _printable(sub, MAX_SUB_CHARS):
        return f"sub must be 1..{MAX_SUB_CHARS} printable characters"
    if not roles or not frozenset(roles) <= KNOWN_ROLES or len(roles) > MAX_ROLES:
        return f"roles must be one or more of {', '.join(sorted(KNOWN_ROLES))}, got {roles}"
    if ttl_s is not None and ttl_s <= 0:
        return f"ttl must be a positive number of seconds, got {ttl_s}"
    return None


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

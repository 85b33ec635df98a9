from __future__ import annotations

import time

import jwt
import pytest

from core.auth import AuthError, make_token, verify_token
from tests.claims import seed_claims

SECRET = "devsecret"


def _verify(
    token: str, max_age_s: int = 86_400, now: float | None = None, secret: str = SECRET
) -> object:
    return verify_token(
        token,
        secret=secret,
        audience="orders-api",
        issuer="orders-demo",
        max_age_s=max_age_s,
        now=time.time() if now is None else now,
    )


def _sign(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_seed_token_without_exp_is_accepted_while_recent() -> None:
    p = _verify(_sign(seed_claims()))
    assert getattr(p, "sub") == "customer1"  # noqa: B009
    assert getattr(p, "roles") == frozenset({"customer"})  # noqa: B009


def test_make_token_mints_the_seed_shape() -> None:
    token = make_token("customer1", ["customer"], secret=SECRET)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="orders-api")
    assert "exp" not in claims and claims["iss"] == "orders-demo"
    assert abs(claims["iat"] - time.time()) < 5


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (_sign(seed_claims(), key="wrong-secret"), 401),
        (_sign(seed_claims(aud="other-api")), 401),
        (_sign(seed_claims(iss="someone-else")), 401),
        (_sign(seed_claims(exp=int(time.time()) - 3600)), 401),
        (_sign(seed_claims(iat=int(time.time()) - 90_000)), 401),  # no exp, stale iat
        (_sign(seed_claims(iat=int(time.time()) + 3600)), 401),  # issued in the future
        (_sign(seed_claims(sub=None)), 401),
        (_sign(seed_claims(roles=None)), 401),
        (_sign(seed_claims(roles="admin")), 401),
        (_sign(seed_claims(iat=None)), 401),
        (_sign(seed_claims(roles=["superuser"])), 403),
        (_sign(seed_claims(), alg="HS512"), 401),
        ("not-a-jwt", 401),
        ("", 401),
    ],
)
def test_untrustworthy_tokens_are_refused(token: str, status: int) -> None:
    with pytest.raises(AuthError) as err:
        _verify(token)
    assert err.value.status == status


def test_alg_none_is_refused() -> None:
    token = jwt.encode(seed_claims(), None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        _verify(token)


def test_exp_when_present_is_enforced_even_with_old_iat() -> None:
    token = _sign(seed_claims(iat=int(time.time()) - 200_000, exp=int(time.time()) + 60))
    assert getattr(_verify(token), "sub") == "customer1"  # noqa: B009


def test_a_cached_token_is_still_checked_against_the_clock() -> None:
    """Verified signatures are cached per token; exp, nbf and max age never are."""
    now = time.time()
    token = _sign(seed_claims(exp=int(now) + 120, nbf=int(now) + 60))
    with pytest.raises(AuthError):
        _verify(token, now=now)  # not valid before nbf (beyond the 30 s clock skew)
    assert getattr(_verify(token, now=now + 90), "sub") == "customer1"  # noqa: B009
    with pytest.raises(AuthError, match="expired"):
        _verify(token, now=now + 200)  # verified and cached a moment ago, expired now
    seed = _sign(seed_claims())
    _verify(seed)
    with pytest.raises(AuthError, match="too old"):
        _verify(seed, max_age_s=1, now=now + 10)
    with pytest.raises(AuthError):
        _verify(seed, secret="another-secret")  # the cache is keyed by the secret too

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import jwt
import pytest

from core.auth import AuthError, bearer_token, make_token, verify_token
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
    ("token", "status"),  # made when the test runs: the suite may take an hour to get here
    [
        (lambda: _sign(seed_claims(), key="wrong-secret"), 401),
        (lambda: _sign(seed_claims(aud="other-api")), 401),
        (lambda: _sign(seed_claims(iss="someone-else")), 401),
        (lambda: _sign(seed_claims(exp=int(time.time()) - 3600)), 401),
        (lambda: _sign(seed_claims(iat=int(time.time()) - 90_000)), 401),  # no exp, stale iat
        (lambda: _sign(seed_claims(iat=int(time.time()) + 3600)), 401),  # issued in the future
        (lambda: _sign(seed_claims(sub=None)), 401),
        (lambda: _sign(seed_claims(roles=None)), 401),
        (lambda: _sign(seed_claims(roles="admin")), 401),
        (lambda: _sign(seed_claims(iat=None)), 401),
        (lambda: _sign(seed_claims(roles=["superuser"])), 403),
        (lambda: _sign(seed_claims(), alg="HS512"), 401),
        (lambda: "not-a-jwt", 401),
        (lambda: "", 401),
    ],
)
def test_untrustworthy_tokens_are_refused(token: Callable[[], str], status: int) -> None:
    with pytest.raises(AuthError) as err:
        _verify(token())
    assert err.value.status == status


def test_alg_none_is_refused() -> None:
    token = jwt.encode(seed_claims(), None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        _verify(token)


def test_max_age_applies_even_when_exp_is_far_away() -> None:
    """The finding: exp = now + 10^9 s with an iat three years old was accepted."""
    now = int(time.time())
    with pytest.raises(AuthError, match="too old"):
        _verify(_sign(seed_claims(iat=now - 3 * 365 * 86_400, exp=now + 10**9)))
    with pytest.raises(AuthError, match="too old"):
        _verify(_sign(seed_claims(iat=now - 200_000, exp=now + 60)))
    assert getattr(_verify(_sign(seed_claims(exp=now + 60))), "sub") == "customer1"  # noqa: B009


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


def _raw(header: str, payload: str, key: str = SECRET) -> str:
    """A token signed over exactly these header and payload texts (PyJWT would normalise)."""

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


_HEADER = '{"alg":"HS256","typ":"JWT"}'


def _payload(**fields: str) -> str:
    """The seed's claims as JSON text, with `fields` (raw JSON values) replacing or added."""
    claims = {
        "sub": '"customer1"',
        "roles": '["customer"]',
        "aud": '"orders-api"',
        "iss": '"orders-demo"',
        "iat": str(int(time.time())),
        **fields,
    }
    return "{" + ",".join(f'"{k}":{v}' for k, v in claims.items()) + "}"


NOW = int(time.time())


@pytest.mark.parametrize(
    "token",
    [
        _raw(_HEADER, _payload()[:-1] + ',"sub":"customer2"}'),
        _raw(_HEADER, _payload()[:-1] + ',"roles":["admin"]}'),
        _raw('{"alg":"HS256","alg":"HS256","typ":"JWT"}', _payload()),
        _raw('{"alg":"HS256","b64":false}', _payload()),
        _raw('{"alg":"HS256","crit":["exp"]}', _payload()),
        _raw(_HEADER, _payload(iat="NaN")),
        _raw(_HEADER, _payload(exp="NaN")),
        _raw(_HEADER, _payload(exp="Infinity")),
        _raw(_HEADER, _payload(exp="1e999")),
        _raw(_HEADER, _payload(nbf="-Infinity")),
        _raw(_HEADER, _payload(iat=f"{NOW}.5")),
        _raw(_HEADER, _payload(exp=f"{NOW + 60}.0")),
        _raw(_HEADER, _payload(iat="true")),
        _raw(_HEADER, _payload(iat=f'"{NOW}"')),
        _raw(_HEADER, _payload(exp="null")),
        _raw(_HEADER, _payload(iat="-1")),
        _raw(_HEADER, _payload(exp=str(NOW - 10))),  # exp before iat
        _raw(_HEADER, _payload(iat="9" * 30)),
        _raw(_HEADER, _payload(sub='"cust\\u0000omer"')),
        _raw(_HEADER, _payload(sub='"customer1\\n"')),
        _raw(_HEADER, _payload(sub='"cust\\u007fomer"')),
        _raw(_HEADER, _payload(sub='"cust\\u202eomer"')),
        _raw(_HEADER, _payload(sub='"cust\\u2028omer"')),
        _raw(_HEADER, _payload(sub='"\\ud800"')),
        _raw(_HEADER, _payload(sub='"' + "x" * 129 + '"')),
        _raw(_HEADER, _payload(sub='""')),
        _raw(_HEADER, _payload(sub="42")),
        _raw(_HEADER, _payload(roles='["customer\\u0000"]')),
        _raw(_HEADER, _payload(roles='["customer","' + "r" * 33 + '"]')),
        _raw(_HEADER, _payload(roles='["customer"' + ',"x"' * 16 + "]")),
        _raw(_HEADER, _payload(roles="[]")),
        _raw(_HEADER, _payload(roles='["customer",1]')),
        _raw(_HEADER, _payload()[:-1] + ',"pad":"' + "p" * 4000 + '"}'),
    ],
    ids=[
        "duplicate-sub",
        "duplicate-roles",
        "duplicate-header-alg",
        "b64-false",
        "crit",
        "iat-nan",
        "exp-nan",
        "exp-infinity",
        "exp-overflow",
        "nbf-minus-infinity",
        "iat-float",
        "exp-float",
        "iat-bool",
        "iat-string",
        "exp-null",
        "iat-negative",
        "exp-before-iat",
        "iat-huge",
        "sub-nul",
        "sub-newline",
        "sub-del",
        "sub-bidi-override",
        "sub-line-separator",
        "sub-lone-surrogate",
        "sub-too-long",
        "sub-empty",
        "sub-number",
        "role-nul",
        "role-too-long",
        "too-many-roles",
        "no-roles",
        "role-not-a-string",
        "token-too-long",
    ],
)
def test_strict_tokens_refuse_odd_claims_with_401(token: str) -> None:
    with pytest.raises(AuthError) as err:
        _verify(token)
    assert err.value.status == 401


def test_a_strict_token_signed_by_hand_is_accepted() -> None:
    """The hand-made tokens above fail for their oddity, not for how they were signed."""
    p = _verify(_raw(_HEADER, _payload(sub='"caf\\u00e9 1"', exp=str(int(time.time()) + 600))))
    assert getattr(p, "sub") == "café 1"  # noqa: B009


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer abc.def.ghi", True),
        ("bearer abc.def.ghi", True),
        (None, False),
        ("Bearer", False),
        ("Bearer ", False),
        ("Bearer  abc.def.ghi", False),
        ("Bearer abc def", False),
        ("Basic dXNlcjpwYXNz", False),
        ("Bearer abc\x00", False),
    ],
)
def test_bearer_header_parsing(header: str | None, ok: bool) -> None:
    if ok:
        assert bearer_token(header) == "abc.def.ghi"
    else:
        with pytest.raises(AuthError):
            bearer_token(header)


def test_a_principal_says_until_when_its_token_passes() -> None:
    """What a live stream ends by (serve_app/live.py): the token's exp with the clock skew a
    check allows, or its iat + JWT_MAX_AGE_S, whichever comes first."""
    from core.auth import _CLOCK_SKEW_S

    iat = int(time.time())
    no_exp = _verify(_sign(seed_claims(iat=iat)), max_age_s=3_600)
    assert getattr(no_exp, "valid_until") == iat + 3_600  # noqa: B009
    soon = _verify(_sign(seed_claims(iat=iat, exp=iat + 60)), max_age_s=3_600)
    assert getattr(soon, "valid_until") == iat + 60 + _CLOCK_SKEW_S  # noqa: B009
    late = _verify(_sign(seed_claims(iat=iat, exp=iat + 7_200)), max_age_s=3_600)
    assert getattr(late, "valid_until") == iat + 3_600  # noqa: B009

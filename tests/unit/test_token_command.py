"""`orders token` (and `make token`) mints only tokens the gateway takes: an empty or
unprintable sub, an unknown role or a life already over is refused with exit 2 and a one-line
reason, instead of a token that gets 401 or 403."""

from __future__ import annotations

import jwt
import pytest
from typer.testing import CliRunner

from cli.main import app
from core.auth import token_problem


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sub", ""], "sub must be"),
        (["--sub", "a\tb"], "sub must be"),
        (["--role", "bogus"], "roles must be"),
        (["--role", "admin", "--role", "root"], "roles must be"),
        (["--ttl", "-5"], "ttl must be"),
        (["--ttl", "0"], "ttl must be"),
    ],
)
def test_claims_the_gateway_refuses_are_refused(args: list[str], says: str) -> None:
    out = CliRunner().invoke(app, ["token", *args])
    assert out.exit_code == 2 and says in out.output, out.output


def test_the_seed_token_and_an_admin_token_are_minted() -> None:
    for args, roles in ([], ["customer"]), (["--sub", "admin1", "--role", "admin"], ["admin"]):
        out = CliRunner().invoke(app, ["token", *args])
        assert out.exit_code == 0, out.output
        claims = jwt.decode(out.output.strip(), options={"verify_signature": False})
        assert claims["roles"] == roles and "exp" not in claims
    assert token_problem("customer1", ["customer", "admin"], 60) is None

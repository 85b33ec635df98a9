"""`orders get|watch|status --token -` reads the bearer token from standard input (cli/api.py):
a token written after `--token` is in the command line, which every local user can read for as
long as the command runs (`orders watch` waits up to 120 s)."""

from __future__ import annotations

import io

import pytest
import typer

from cli import api
from core.settings import Settings


def test_a_dash_reads_the_token_from_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("eyJ.the.token\n"))
    assert api.token(Settings(jwt_secret="s" * 32), "-") == "eyJ.the.token"


def test_a_dash_with_nothing_on_standard_input_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(typer.BadParameter, match="no token on standard input"):
        api.token(Settings(jwt_secret="s" * 32), "-")

"""The CLI, `make chaos` and its load find the gateway where `make up` put it: `HTTP_HOST`
(loopback for a wildcard, an IPv6 address in brackets) and `HTTP_PORT`, as the scripts'
`gateway_url` does; $ORDERS_API_URL or a given URL wins for the CLI."""

from __future__ import annotations

import pytest

from cli.api import URL_ENV, base_url, local_gateway
from core.settings import Settings


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8088"),
        ("0.0.0.0", "http://127.0.0.1:8088"),
        ("::", "http://127.0.0.1:8088"),
        ("10.77.0.2", "http://10.77.0.2:8088"),
        ("fd00::2", "http://[fd00::2]:8088"),
        ("[fd00::2]", "http://[fd00::2]:8088"),
    ],
)
def test_the_local_gateway_is_where_it_listens(host: str, url: str) -> None:
    assert local_gateway(Settings(http_host=host, http_port=8088)) == url


def test_a_url_given_or_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(http_host="10.77.0.2", http_port=8088)
    monkeypatch.delenv(URL_ENV, raising=False)
    assert base_url(settings) == "http://10.77.0.2:8088"
    monkeypatch.setenv(URL_ENV, "https://orders.example/")
    assert base_url(settings) == "https://orders.example"
    assert base_url(settings, "http://other:1/") == "http://other:1"

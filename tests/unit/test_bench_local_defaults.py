"""`make bench` (and `make soak`, which runs it) find the gateway where `make up` put it:
`HTTP_PORT` from the environment or `.env`, as `make chaos` and the `orders` CLI do."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bench.cli import _local_defaults, _options
from core.settings import Settings


def test_the_gateway_and_the_baseline_follow_http_port() -> None:
    given = {"url": "", "baseline_port": 0}
    out = _local_defaults(given, Settings(http_port=9090))
    assert out == {"url": "http://127.0.0.1:9090", "baseline_port": 9091}


def test_options_given_are_kept() -> None:
    given = {"url": "http://127.0.0.1:7000", "baseline_port": 7500}
    assert _local_defaults(given, Settings(http_port=9090)) == given


def test_a_gateway_beyond_loopback_is_refused() -> None:
    app = typer.Typer()
    app.command()(lambda url: _options({"url": url}))
    out = CliRunner().invoke(app, ["http://10.0.0.5:8080"])
    assert out.exit_code != 0 and "loopback" in out.output


def test_a_loopback_host_is_followed_and_a_taken_baseline_port_refused() -> None:
    given = {"url": "", "baseline_port": 0}
    out = _local_defaults(given, Settings(http_host="::1", http_port=9090))
    assert out["url"] == "http://[::1]:9090"
    out = _local_defaults(given, Settings(http_host="10.0.0.5", http_port=9090))
    assert out["url"] == "http://127.0.0.1:9090"  # never beyond loopback
    with pytest.raises(typer.BadParameter, match="METRICS_EXPORT_PORT"):
        _local_defaults(given, Settings(http_port=8089, metrics_export_port=8090))
    with pytest.raises(typer.BadParameter, match="out of range"):
        _local_defaults(given, Settings(http_port=65535))

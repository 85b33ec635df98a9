"""A stack report must come back while the broker does not answer (a frozen broker is one of
the stalls it is for): its group view is bounded (cli/diagnose.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from cli import diagnose
from core import registry
from core.settings import Settings


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that accepts connections and never answers, like a broker stopped by SIGSTOP."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen(8)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_the_group_view_gives_up_on_a_broker_that_does_not_answer(silent_broker: str) -> None:
    settings = Settings(kafka_bootstrap=silent_broker)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        diagnose._groups(settings, timeout_s=0.5)
    assert time.monotonic() - started < 5


def test_a_part_that_cannot_be_read_says_why() -> None:
    def broken() -> str:
        raise TimeoutError("broker silent")

    assert diagnose._safely(broken) == "(not readable: TimeoutError: broker silent)"


def _nothing_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings whose gateway, Postgres and broker refuse at once (nothing listens on port 1)."""
    settings = Settings(
        http_port=1,
        database_url="postgresql://u:p@127.0.0.1:1/x",
        kafka_bootstrap="127.0.0.1:1",
    )
    monkeypatch.delenv("ORDERS_API_URL", raising=False)
    monkeypatch.setattr(diagnose, "get_settings", lambda: settings)


def test_stacks_with_the_gcs_down_prints_the_rest_and_says_ray_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ray.init` retries a GCS that is down for ever, printing nothing: it is never tried."""
    _nothing_there(monkeypatch)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")

    def no_driver(*args: object, **kwargs: object) -> None:
        raise AssertionError("ray.init must not be tried")

    monkeypatch.setattr(diagnose, "ray_driver", no_driver)
    diagnose.stacks()
    out = capsys.readouterr().out
    for title in ("platform health", "postgres", "kafka: the consumer groups", "actors"):
        assert f"== {title}" in out
    assert "(Ray unavailable: no GCS answers at 127.0.0.1:1 (" in out
    assert "ray.init must not be tried" not in out
    assert "Ray unavailable" in diagnose.report_now()


def test_stacks_prints_what_needs_no_ray_before_it_connects(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nothing_there(monkeypatch)
    printed_first: list[str] = []

    def driver(*args: object, **kwargs: object) -> None:
        printed_first.append(capsys.readouterr().out)
        raise ConnectionError("GCS not answering")

    monkeypatch.setattr(diagnose, "ray_driver", driver)
    with socket.create_server(("127.0.0.1", 0)) as gcs:  # the GCS port accepts, Ray hangs
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{gcs.getsockname()[1]}")
        diagnose.stacks()
    assert "== postgres" in printed_first[0] and "== kafka: the group" in printed_first[0]
    assert "(no Ray driver: ConnectionError: GCS not answering)" in capsys.readouterr().out


def test_stacks_outside_the_stacks_environment_says_to_run_make_stacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run as `.venv/bin/orders stacks`, without RAY_ADDRESS and the token: `ray.init("auto")`
    found another cluster's stale address file and retried it for ever; now Ray's part is left
    out with what to run, and the rest is printed."""
    _nothing_there(monkeypatch)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def no_driver(*args: object, **kwargs: object) -> None:
        raise AssertionError("ray.init must not be tried")

    monkeypatch.setattr(diagnose, "ray_driver", no_driver)
    diagnose.stacks()
    out = capsys.readouterr().out
    assert "== postgres" in out and "run `make stacks`" in out
    assert "ray.init must not be tried" not in out


def test_a_joined_machine_names_the_head_for_the_gateways_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make stacks` on a joined machine asked a gateway at its own 127.0.0.1 (connection
    refused): the gateway listens on the head's loopback."""
    assert diagnose.joined_head(tmp_path) is None
    (tmp_path / "join.env").write_text("HEAD_ADDRESS=10.99.0.1\nNODE_ADDRESS=10.99.0.2\n")
    assert diagnose.joined_head(tmp_path) == "10.99.0.1"
    monkeypatch.setattr(diagnose, "RUN_DIR", tmp_path)
    monkeypatch.delenv("ORDERS_API_URL", raising=False)
    said = diagnose._ready(Settings(http_port=1))  # (nothing listens there: not asked)
    assert "joined the head at 10.99.0.1" in said and "`make stacks` on the head" in said
    monkeypatch.setenv("ORDERS_API_URL", "http://127.0.0.1:1")  # a gateway given: asked
    with pytest.raises(httpx.ConnectError):
        diagnose._ready(Settings(http_port=1))
    (tmp_path / "node.env").write_text("NODE_ADDRESS=10.99.0.2\n")  # a head of its own wins
    assert diagnose.joined_head(tmp_path) is None


def test_the_actors_reported_are_the_clusters_not_this_machines_shard_counts() -> None:
    """A joined machine's settings have one shard of each kind (its defaults) while the head
    deployed two: the report left out the second inventory and payment shards."""
    names = [registry.RELAY, registry.inventory_shard(0), registry.inventory_shard(1)]
    names += [registry.payment_shard(0), registry.payment_shard(1)]
    named = [{"name": n, "namespace": "orders"} for n in names]
    named.append({"name": registry.SHIPPING, "namespace": "another"})
    ray = SimpleNamespace(util=SimpleNamespace(list_named_actors=lambda all_namespaces: named))
    assert diagnose._present(Settings(inventory_shards=1, payment_shards=1), ray) == names

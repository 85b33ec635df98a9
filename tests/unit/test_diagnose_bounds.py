"""A stack report must come back while the broker does not answer (a frozen broker is one of
the stalls it is for): its group view is bounded (cli/diagnose.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from cli import diagnose
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

"""Tests run by a bare `pytest` see the environment the stack's scripts give (cluster/common.sh):
the generated credentials (the connection URLs, Ray's token) and Ray's loopback switch. It has to
be in place before anything imports ray, which reads these variables at import time. Under
`make test` the scripts have set them already, and what is set wins.

In CI (CI=true) a skipped test fails, unless it is marked `ci_may_skip`: CI runs the whole suite
against the stack it started, where a skip would hide a test that did not run."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

_RUN = Path(os.environ.get("RUN_DIR") or Path(__file__).resolve().parents[1] / ".run")


def _pairs(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text().splitlines() if "=" in line]
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


def node_address() -> str:
    """The address `make up` recorded for this checkout's stack (loopback unless set)."""
    return _pairs(_RUN / "node.env").get("NODE_ADDRESS", "127.0.0.1")


def _stack_environment() -> None:
    credentials = _pairs(_RUN / "credentials.env")
    for key, value in credentials.items():
        os.environ.setdefault(key, value)
    if os.environ.get("RAY_AUTH_TOKEN"):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    if (_RUN / "node.env").is_file():
        node = node_address()
        loopback = node.startswith("127.") or node in ("::1", "localhost")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0" if loopback else "1")


_stack_environment()


CI_MAY_SKIP = "ci_may_skip"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{CI_MAY_SKIP}: the test's skip condition can hold in CI too (a property of the "
        "machine, not of the stack): its skip is not turned into a failure there",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With CI=true, a test skipped in its setup or its call is reported as failed (an expected
    failure, xfail, is not a skip), unless marked `ci_may_skip`."""
    report = yield
    if (
        os.environ.get("CI") == "true"
        and report.when in ("setup", "call")
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker(CI_MAY_SKIP) is None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI (CI=true), where every test must run: {reason}\n"
            f"(mark it @pytest.mark.{CI_MAY_SKIP} if its skip condition can hold in CI)"
        )
    return report

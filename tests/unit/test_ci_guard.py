"""tests/conftest.py's CI guard: with CI=true a skipped test fails unless marked `ci_may_skip`
(run on a small suite of its own with pytest's `pytester`)."""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = ["pytester"]

SUITE = """
from typing import Any

import pytest

def test_runs():
    pass

def test_skips_in_its_call():
    pytest.skip("no such thing here")

@pytest.mark.skipif(True, reason="a skipif mark")
def test_skips_in_its_setup():
    pass

@pytest.fixture
def missing():
    pytest.skip("a fixture that skips")

def test_skips_through_a_fixture(missing):
    pass

@pytest.mark.ci_may_skip
def test_may_skip_in_ci():
    pytest.skip("a property of the machine")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> Any:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest("-p", "tests.conftest", "-p", "no:asyncio", "-rA", "--strict-markers")


def test_in_ci_a_skip_fails_unless_marked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, "true")
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_suite.py::test_skips_in_its_call*",
            "ERROR test_suite.py::test_skips_in_its_setup*",
            "ERROR test_suite.py::test_skips_through_a_fixture*",
            "SKIPPED * a property of the machine",
            "skipped in CI (CI=true), where every test must run: no such thing here",
            "skipped in CI (CI=true), where every test must run: a skipif mark",
            "skipped in CI (CI=true), where every test must run: a fixture that skips",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_outside_ci_a_skip_is_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    result = _run(pytester, monkeypatch, ci)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK

"""A failed chaos test's report ends with the stack at that moment, as an integration test's
does (the hook of tests/integration/conftest.py, registered here too)."""

from tests.integration.conftest import pytest_runtest_makereport

__all__ = ["pytest_runtest_makereport"]

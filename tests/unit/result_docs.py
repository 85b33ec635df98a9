"""Helpers for the tests of the benchmarks' result documents (bench/gate.py, bench/scale.py)."""

from __future__ import annotations

import copy
from typing import Any


def replaced(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with the value at `path` replaced."""
    out = copy.deepcopy(doc)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out

"""The one JSON reader of untrusted input (request bodies, token headers and payloads).

Stricter than `json.loads`, whose defaults let the last of two equal keys win and accept
`NaN`/`Infinity`: here a duplicate key, a non-finite number, an integer of more digits than
Python reads (4,300) or nesting deeper than the interpreter allows is an error, so two readers
of the same bytes can never see different values.
"""

from __future__ import annotations

import json
import math
from typing import Any


class JsonRejected(ValueError):
    """The input is not strict JSON; `message` says why, without echoing the input."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise JsonRejected(f"duplicate key {key[:64]!r}: each key may appear once per object")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a repeated key")


def _no_constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected("number out of range")
    return value


def loads(data: bytes | str) -> Any:
    """Parse strict JSON; raise `JsonRejected` for anything else. Bytes are UTF-8 and nothing
    else (`json.loads` would also read UTF-16 and UTF-32, and a byte order mark)."""
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(
            data,
            object_pairs_hook=_unique,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected("JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise JsonRejected(f"not valid JSON ({type(exc).__name__})") from None

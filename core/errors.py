"""An error told in one line, for reports that keep one line per error (health, status)."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """`Kind: the first line of its message`; the message alone when it already starts with its
    kind (aiokafka's do), the kind alone when it has none."""
    kind = type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0]
    if not first:
        return kind
    return first if first.startswith(kind) else f"{kind}: {first}"

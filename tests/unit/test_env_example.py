"""`.env.example` names every setting of `core.settings.Settings`, each with a comment, and
loads as it is (the keys come from the class, so a setting added or removed shows here)."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def _lines() -> list[str]:
    return EXAMPLE.read_text().splitlines()


def _assignments() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in _lines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is set twice"
            found[match.group(1)] = match.group(2)
    return found


def test_every_line_is_a_comment_a_blank_or_an_assignment() -> None:
    odd = [x for x in _lines() if x.strip() and not x.startswith("#") and not ASSIGNMENT.match(x)]
    assert not odd


def test_keys_are_exactly_the_settings_fields() -> None:
    expected = {name.upper() for name in Settings.model_fields}
    keys = set(_assignments())
    assert not expected - keys, f"missing from .env.example: {sorted(expected - keys)}"
    assert not keys - expected, f"not settings (any more): {sorted(keys - expected)}"


def test_each_setting_has_a_comment_above_it() -> None:
    lines = _lines()
    bare = [
        line.split("=", 1)[0]
        for i, line in enumerate(lines)
        if ASSIGNMENT.match(line) and (i == 0 or not lines[i - 1].startswith("# "))
    ]
    assert not bare, f"no comment above {bare}"


def test_the_example_loads_and_holds_the_defaults() -> None:
    loaded = Settings(**{k.lower(): v for k, v in _assignments().items()})  # type: ignore[arg-type]
    for name, field in Settings.model_fields.items():
        assert getattr(loaded, name) == field.default, f"{name.upper()} is not the default"

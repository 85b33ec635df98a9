"""The strict JSON reader of untrusted input: one meaning per document, or an error."""

from __future__ import annotations

import pytest

from domain.strict_json import JsonRejected, loads


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"outer": {"b": true, "b": false}}',
        '[{"sku": "x", "qty": 1, "qty": 2}]',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1e999}',
        '{"a": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        b'{"a": "\xff"}',
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32"),
        b"\xef\xbb\xbf" + b'{"a": 1}',
        '{"a": 1',
        "",
    ],
    ids=[
        "duplicate-key",
        "nested-duplicate",
        "duplicate-in-array-item",
        "nan",
        "infinity",
        "minus-infinity",
        "overflowing-float",
        "huge-integer",
        "too-deep",
        "not-utf-8",
        "utf-16-le",
        "utf-16-with-bom",
        "utf-32",
        "utf-8-bom",
        "truncated",
        "empty",
    ],
)
def test_documents_with_two_readings_or_none_are_rejected(text: str | bytes) -> None:
    with pytest.raises(JsonRejected) as err:
        loads(text)
    assert err.value.message and "9999" not in err.value.message  # never echoes the input


def test_plain_json_reads_as_json() -> None:
    doc = b'{"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 2}], "x": -1.5e3, "n": null}'
    assert loads(doc) == {
        "customerId": "c-1",
        "items": [{"sku": "SKU-1", "qty": 2}],
        "x": -1500.0,
        "n": None,
    }

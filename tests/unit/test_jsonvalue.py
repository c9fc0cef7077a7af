"""Strict JSON for jsonb: loads_strict and check_storable (CONTRACT §3.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spooled_backend.core.errors import InvalidJson, ValidationFailed
from spooled_backend.core.jsonvalue import (
    MAX_DEPTH,
    check_storable,
    dumps,
    find_unstorable,
    json_size,
    loads_strict,
)


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"1e400", b"[-1e400]", b"{", b"[1,]", b"{'a': 1}",
        b'{"a": 1} x', b"", b"\xff", b'"\xed\xa0\x80"', b"1" * 4400,
        b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    ],
)
def test_loads_strict_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidJson) as exc:
        loads_strict(raw)
    assert exc.value.status == 400 and exc.value.code == "INVALID_JSON"
    assert exc.value.details == [
        {"field": "body", "message": exc.value.details[0]["message"], "code": "invalid_json"}
    ]


def test_loads_strict_accepts() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads_strict("\ufeff[1]") == [1]
    assert loads_strict(b"\xef\xbb\xbf[1]") == [1]
    assert loads_strict(b"1e308") == 1e308
    assert loads_strict(b"1e-400") == 0.0
    assert loads_strict(str(2**70)) == 2**70
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_strict(deepest) is not None
    # escapes that decode to unstorable strings still parse: check_storable is the second gate
    assert loads_strict(b'"\\u0000"') == "\x00"
    assert loads_strict(b'"\\ud800"') == "\ud800"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("a\x00b", "payload"),
        ({"k": "\x00"}, "payload.k"),
        ({"\x00": 1}, "payload"),
        (["ok", "\ud800"], "payload.1"),
        ({"a": [{"b": {"\udfff": 1}}]}, "payload.a.0.b"),
        ({"a": float("nan")}, "payload.a"),
        ([float("inf")], "payload.0"),
    ],
)
def test_check_storable_rejects_with_path(value: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        check_storable(value, "payload")
    assert exc.value.status == 400
    assert exc.value.details[0]["field"] == field
    assert exc.value.details[0]["code"] == "invalid_string"


def test_check_storable_deep_structures_do_not_recurse() -> None:
    deep: Any = "fine"
    for _ in range(100_000):
        deep = [deep]
    check_storable(deep, "payload")
    bad: Any = {"x": "\x00"}
    for _ in range(50_000):
        bad = {"n": bad}
    found = find_unstorable(bad, "payload")
    assert found is not None and found[0].count(".n") == 50_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_and_storable_iff_no_bad_strings(value: Any) -> None:
    text = json.dumps(value)
    assert loads_strict(text) == value
    has_bad = "\\u0000" in text or any(
        0xD800 <= ord(ch) <= 0xDFFF for ch in json.dumps(value, ensure_ascii=False)
    )
    assert (find_unstorable(value) is not None) == has_bad
    if not has_bad:
        assert json_size(value) == len(dumps(value).encode())

"""The body validator: every problem reported with its path; unknown fields refused."""

from __future__ import annotations

import pytest

from zoneapi.schema import array, boolean, integer, obj, string, validate

RRSET = obj(
    {"name": string(255), "type": string(10, min_length=1), "ttl": integer(1, 604800),
     "records": array(string(4000), 100, nullable=True), "dry": boolean()},
    required=("name", "type"),
)


@pytest.mark.parametrize(("value", "expected"), [
    ({"name": "www", "type": "A"}, []),
    ({"name": "www", "type": "A", "records": None}, []),
    ({"name": "www"}, ["$.type: required"]),
    ({"name": "www", "type": "A", "extra": 1}, ["$.extra: unknown field"]),
    ({"name": 5, "type": ""}, ["$.name: expected string", "$.type: at least 1 characters"]),
    ({"name": "w", "type": "A", "ttl": 0}, ["$.ttl: must be at least 1"]),
    ({"name": "w", "type": "A", "ttl": True}, ["$.ttl: expected integer"]),
    ({"name": "w", "type": "A", "records": ["ok", 3]}, ["$.records[1]: expected string"]),
    ([], ["$: expected object"]),
    (None, ["$: expected object"]),
])
def test_validate(value: object, expected: list[str]) -> None:
    assert validate(RRSET, value) == expected


def test_enum_and_max_items() -> None:
    schema = obj({"kind": string(10, enum=("a", "b")), "xs": array(integer(), 2)})
    assert validate(schema, {"kind": "c", "xs": [1, 2, 3]}) == [
        "$.kind: must be one of 'a', 'b'", "$.xs: at most 2 items",
    ]


def test_error_count_is_bounded() -> None:
    schema = array(integer(), 10_000)
    assert len(validate(schema, ["x"] * 5000)) == 50

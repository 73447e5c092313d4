"""Address rules shared by the forwarder, the API and the CLI (storage.aliases)."""

from __future__ import annotations

import pytest

from storage.aliases import InvalidAddress, parse_address

VALID = [
    ("Contact@Example.COM", "contact@example.com"),
    ("<a.b+c@example.com>", "a.b+c@example.com"),
    ("x@bücher.example", "x@xn--bcher-kva.example"),
    ("o'brien@example.com.", "o'brien@example.com"),
]

INVALID = [
    "user%other.test@example.com",  # percent hack
    "other.test!user@example.com",  # bang path
    "@relay.test:user@example.com",  # source route
    '"user@other.test"@example.com',  # quoted local part
    "user@[127.0.0.1]",  # IP literal
    "user@127.0.0.1",
    "user@localhost",  # not fully qualified
    "a..b@example.com",
    ".a@example.com",
    "a@b@example.com",
    "a@-bad-.example.com",
    "",
    "<>",
    "x" * 65 + "@example.com",
    "us er@example.com",
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)

"""Zone origins and owner names: IDNA, lengths, hostile input."""

from __future__ import annotations

import dns.name
import pytest

from storage.dnsdata.errors import InvalidName, Problem
from storage.dnsdata.names import (
    name_from_text,
    owner_name,
    subname,
    to_text,
    to_unicode,
    zone_origin,
)

ORIGIN = dns.name.from_text("example.com.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com."),
        ("example.com.", "example.com."),
        ("Example.COM", "example.com."),
        ("bücher.example", "xn--bcher-kva.example."),
        ("BÜCHER.example.", "xn--bcher-kva.example."),
        ("xn--bcher-kva.example", "xn--bcher-kva.example."),
        ("münchen.de", "xn--mnchen-3ya.de."),
        ("example。com", "example.com."),  # UTS 46 maps the ideographic full stop
        ("a-b.c0.example", "a-b.c0.example."),
        ("123.example", "123.example."),
        ("demo.test", "demo.test."),
        ("a" * 63 + ".com", "a" * 63 + ".com."),
    ],
)
def test_zone_origin_accepts(text: str, expected: str) -> None:
    name = zone_origin(text)
    assert name.is_absolute()
    assert name.to_text() == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty zone name"),
        (".", "the root is not allowed"),
        ("com", "at least 2 labels"),
        ("com.", "at least 2 labels"),
        ("..", "empty label"),
        ("a..b.com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("../etc/passwd", "empty label"),
        ("etc/passwd.com", "'/' is not allowed"),
        ("a\x00b.com", "control character"),
        ("a b.com", "space"),
        ("example.com\n", "space or line break"),
        ("*.example.com", "'*' is not allowed"),
        ("@", "'@' is not allowed"),
        ("a@b.com", "'@' is not allowed"),
        ("_dmarc.example.com", "'_' is not allowed"),
        ("a\\.b.com", "backslash"),
        ("a" * 300 + ".com", "300 octets long (at most 63)"),
        ("a" * 64 + ".com", "64 octets long"),
        (".".join(["a" * 60] * 5), "wire form (at most 255)"),
        ("a." * 128 + "com", "wire form"),
        ("-foo.com", "hyphen"),
        ("foo-.com", "hyphen"),
        ("ab--cd.com", "reserved for IDNA"),
        ("xn--zz.example", "not a valid IDNA A-label"),
        ("⌘.com", "not a valid internationalized label"),
        ("x" * 5000, "too long"),
    ],
)
def test_zone_origin_refuses(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as info:
        zone_origin(text)
    assert reason in info.value.reason
    assert info.value.text == text
    assert reason in str(info.value)


def test_zone_origin_min_labels_is_a_parameter() -> None:
    assert zone_origin("com", min_labels=1).to_text() == "com."
    with pytest.raises(InvalidName, match="at least 3 labels"):
        zone_origin("example.com", min_labels=3)


def test_zone_origin_refuses_non_text() -> None:
    with pytest.raises(InvalidName, match="must be text"):
        zone_origin(42)  # type: ignore[arg-type]


def test_invalid_name_message_is_short_and_escaped() -> None:
    with pytest.raises(InvalidName) as info:
        zone_origin("a\x00" * 100)
    message = str(info.value)
    assert "\x00" not in message
    assert len(message) < 200


@pytest.mark.parametrize(
    ("text", "expected", "sub"),
    [
        ("www", "www.example.com.", "www"),
        ("@", "example.com.", ""),
        ("", "example.com.", ""),
        ("example.com.", "example.com.", ""),
        ("WWW.Example.COM.", "www.example.com.", "www"),
        ("*", "*.example.com.", "*"),
        ("*.foo", "*.foo.example.com.", "*.foo"),
        ("_sip._tcp", "_sip._tcp.example.com.", "_sip._tcp"),
        ("_dmarc", "_dmarc.example.com.", "_dmarc"),
        ("-weird-", "-weird-.example.com.", "-weird-"),
        ("bücher", "xn--bcher-kva.example.com.", "xn--bcher-kva"),
        ("_sip.bücher", "_sip.xn--bcher-kva.example.com.", "_sip.xn--bcher-kva"),
        ("a.b.c", "a.b.c.example.com.", "a.b.c"),
    ],
)
def test_owner_name_strict_accepts(text: str, expected: str, sub: str) -> None:
    name = owner_name(text, ORIGIN)
    assert name.to_text() == expected
    assert subname(name, ORIGIN) == sub
    assert owner_name(sub, ORIGIN) == name  # subname() reads back


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo.*", "'*' is only allowed as the whole leftmost label"),
        ("a*b", "'*' is only allowed"),
        ("*.*", "'*' is only allowed"),
        ("a/b", "'/' is not allowed in a record name"),
        ("../x", "empty label"),
        ("a..b", "empty label"),
        (".www", "empty label"),
        ("a b", "space"),
        ("a\x00", "control character"),
        ("a\\032b", "backslash"),
        ("a@b", "'@' is not allowed"),
        ("x" * 64, "64 octets long"),
        ("x" * 300, "300 octets long"),
        ("www.other.org.", "not inside the zone example.com."),
        ("example.com.evil.", "not inside the zone"),
        (".".join(["a" * 63] * 4), "wire form"),
        ("⌘", "not a valid internationalized label"),
    ],
)
def test_owner_name_strict_refuses(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as info:
        owner_name(text, ORIGIN)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\\032b", "a\\032b.example.com."),
        ("a\\.b", "a\\.b.example.com."),
        ("foo.*", "foo.*.example.com."),
        ("a/b", "a/b.example.com."),
        ("\\065BC", "abc.example.com."),  # escapes are lower-cased too
        ("bücher", "xn--bcher-kva.example.com."),
    ],
)
def test_owner_name_lenient_keeps_any_legal_name(text: str, expected: str) -> None:
    assert owner_name(text, ORIGIN, strict=False).to_text() == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a b", "raw space"),
        ("a\\", "bad escape"),
        ("a\\999", "bad escape"),
        ("a..b", "empty label"),
        ("x" * 64, "64 octets long"),
        ("x\\120" * 64, "longer than 63"),
        ("www.other.org.", "not inside the zone"),
    ],
)
def test_owner_name_lenient_refuses(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as info:
        owner_name(text, ORIGIN, strict=False)
    assert reason in info.value.reason


def test_owner_name_takes_names() -> None:
    assert owner_name(dns.name.from_text("Mail", None), ORIGIN).to_text() == "mail.example.com."
    assert owner_name(dns.name.from_text("WWW.example.com."), ORIGIN).labels[0] == b"www"
    with pytest.raises(InvalidName, match="not inside"):
        owner_name(dns.name.from_text("x.org."), ORIGIN)


def test_name_from_text_resolves_without_zone_check() -> None:
    other = dns.name.from_text("sub.example.com.")
    assert name_from_text("www", other, strict=False).to_text() == "www.sub.example.com."
    assert name_from_text("x.org.", other, strict=True).to_text() == "x.org."


def test_subname_outside_the_zone() -> None:
    with pytest.raises(InvalidName):
        subname(dns.name.from_text("x.org."), ORIGIN)


def test_text_helpers() -> None:
    name = zone_origin("Bücher.Example")
    assert to_text(dns.name.from_text("WWW.Example.COM.")) == "www.example.com."
    assert to_unicode(name) == "bücher.example."
    with pytest.raises(ValueError, match="relative"):
        to_text(dns.name.from_text("www", None))


def test_problem_str() -> None:
    problem = Problem(12, "www.example.com.", "A", "invalid IPv4 address '1.2.3'")
    assert str(problem) == "line 12: www.example.com. A: invalid IPv4 address '1.2.3'"
    assert str(Problem(3, None, None, "$INCLUDE is not allowed")) == (
        "line 3: $INCLUDE is not allowed"
    )
    assert str(Problem(None, "example.com.", None, "x")) == "example.com.: x"

"""Server cookies: SipHash-2-4 and the RFC 9018 appendix A vectors."""

from __future__ import annotations

import socket

from nameserver.cookies import CookieJar, siphash24

SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
CLIENT = bytes.fromhex("2464c4abcf10c957")
IP = socket.inet_aton("198.51.100.100")


def test_siphash_reference_vector() -> None:
    # SipHash paper, appendix A: key 00..0f, message 00..0e
    out = siphash24(bytes(range(16)), bytes(range(15)))
    assert out == bytes.fromhex("a129ca6149be45e5")[::-1]


def test_rfc9018_a1_learning_a_new_server_cookie() -> None:
    check = CookieJar(SECRET).check(CLIENT, IP, now=1559731985)
    assert not check.valid
    assert check.reply == CLIENT + bytes.fromhex("010000005cf79f111f8130c3eee29480")


def test_rfc9018_a2_renewed_cookie() -> None:
    old = CLIENT + bytes.fromhex("010000005cf79f111f8130c3eee29480")
    check = CookieJar(SECRET).check(old, IP, now=1559734385)
    assert check.valid  # 40 minutes old: still valid, but past the half hour ...
    assert check.reply == CLIENT + bytes.fromhex("010000005cf7a871d4a564a1442aca77")  # ... renewed


def test_fresh_cookie_is_echoed_and_forgeries_are_not_valid() -> None:
    jar = CookieJar(SECRET)
    issued = jar.check(CLIENT, IP, now=1_700_000_000).reply
    again = jar.check(issued, IP, now=1_700_000_100)
    assert again.valid and again.reply == issued
    assert not jar.check(issued, socket.inet_aton("198.51.100.101"), now=1_700_000_100).valid
    tampered = issued[:-1] + bytes([issued[-1] ^ 1])
    assert not jar.check(tampered, IP, now=1_700_000_100).valid
    assert not jar.check(issued, IP, now=1_700_000_000 + 3601).valid  # expired


def test_previous_secret_stays_valid_for_one_rotation() -> None:
    jar = CookieJar(SECRET)
    issued = jar.check(CLIENT, IP, now=1_700_000_000).reply
    jar.rotate(bytes(16))
    assert jar.check(issued, IP, now=1_700_000_010).valid
    jar.rotate(bytes(range(16)))
    assert not jar.check(issued, IP, now=1_700_000_020).valid


def test_issued_cookies_are_remembered_until_due_for_renewal() -> None:
    jar = CookieJar(SECRET)
    first = jar.check(CLIENT, IP, now=1_700_000_000).reply
    assert jar.check(CLIENT, IP, now=1_700_000_600).reply == first  # same cookie, no recompute
    assert jar.check(first, IP, now=1_700_000_600).valid
    later = jar.check(CLIENT, IP, now=1_700_000_000 + 1800).reply
    assert later != first and later[:8] == CLIENT  # renewed after half an hour
    assert jar.check(first, IP, now=1_700_000_000 + 1800).valid  # the old one still valid
    other_ip = socket.inet_aton("198.51.100.7")
    assert jar.check(first, other_ip, now=1_700_000_600).valid is False

"""SRS0/SRS1 forward and reverse, keys rotating, timestamps checked."""

from __future__ import annotations

import pytest

from mx_forwarder.errors import SrsError
from mx_forwarder.srs import Srs

DAY = 20000
SRS = Srs("fwd.example", (b"key-one",))


def test_srs0_round_trip() -> None:
    rewritten = SRS.forward("Alice@Sender.test", DAY)
    assert rewritten.startswith("SRS0=") and rewritten.endswith("@fwd.example")
    assert SRS.reverse(rewritten, DAY) == "Alice@Sender.test"
    assert SRS.reverse(rewritten.upper().replace("@FWD.EXAMPLE", "@fwd.example"), DAY).lower() \
        == "alice@sender.test"  # MTAs that fold case do not break it


def test_null_sender_stays_null() -> None:
    assert SRS.forward("", DAY) == ""


def test_tampered_hash_and_address_refused() -> None:
    rewritten = SRS.forward("alice@sender.test", DAY)
    local, domain = rewritten.split("@")
    forged = local.replace("alice", "mallory") + "@" + domain
    with pytest.raises(SrsError):
        SRS.reverse(forged, DAY)
    h = local.split("=")[1]
    other = "AAAA" if h.upper() != "AAAA" else "BBBB"
    with pytest.raises(SrsError):
        SRS.reverse(rewritten.replace(h, other, 1), DAY)
    with pytest.raises(SrsError):
        SRS.reverse("SRS0=xx@fwd.example", DAY)
    with pytest.raises(SrsError):
        SRS.reverse(rewritten.split("@")[0] + "@other.example", DAY)


def test_timestamp_expiry_and_wrap() -> None:
    rewritten = SRS.forward("alice@sender.test", DAY)
    assert SRS.reverse(rewritten, DAY + 21) == "alice@sender.test"
    with pytest.raises(SrsError):
        SRS.reverse(rewritten, DAY + 22)
    near_wrap = SRS.forward("bob@sender.test", 1023)
    assert SRS.reverse(near_wrap, 1024 + 5) == "bob@sender.test"


def test_key_rotation() -> None:
    old = SRS.forward("alice@sender.test", DAY)
    rotated = Srs("fwd.example", (b"key-two", b"key-one"))
    assert rotated.reverse(old, DAY) == "alice@sender.test"
    assert Srs("fwd.example", (b"key-two",)).forward("alice@sender.test", DAY) != old
    with pytest.raises(SrsError):
        Srs("fwd.example", (b"key-two",)).reverse(old, DAY)


def test_srs1_chain() -> None:
    first = Srs("first.example", (b"first-key",))
    srs0 = first.forward("alice@sender.test", DAY)
    srs1 = SRS.forward(srs0, DAY)
    assert srs1.startswith("SRS1=") and srs1.endswith("@fwd.example")
    assert "first.example" in srs1
    back = SRS.reverse(srs1, DAY)
    assert back == srs0
    assert first.reverse(back, DAY) == "alice@sender.test"
    # a third forwarder keeps pointing at the first one
    third = Srs("third.example", (b"k3",))
    srs1b = third.forward(srs1, DAY)
    assert third.reverse(srs1b, DAY) == srs0


def test_own_srs_not_nested() -> None:
    rewritten = SRS.forward("alice@sender.test", DAY)
    assert SRS.forward(rewritten, DAY) == rewritten


def test_needs_a_key() -> None:
    with pytest.raises(SrsError):
        Srs("fwd.example", ())

"""TSIG (RFC 8945): keys, checking requests, signing replies; dnspython is the peer."""

from __future__ import annotations

import struct
import time

import dns.message
import dns.name
import dns.rcode
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import pytest

from nameserver.tsig import (
    InvalidKey,
    Keyring,
    Signer,
    TsigKey,
    TsigRcode,
    Verdict,
    badtime_error,
    check_request,
    unsigned_error,
)

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
KEY = TsigKey.from_text(f"xfr-key:hmac-sha256:{SECRET}")
KEYRING = Keyring([KEY])


def signed_query(keyname: str = "xfr-key", secret: str = SECRET, algorithm: str = "hmac-sha256") -> bytes:
    query = dns.message.make_query("example.", "AXFR")
    ring = dns.tsigkeyring.from_text({keyname: (algorithm, secret)})
    query.use_tsig(ring, keyname)
    return query.to_wire()


def test_key_from_text() -> None:
    assert KEY.name == dns.name.from_text("xfr-key.")
    assert KEY.algorithm == dns.name.from_text("hmac-sha256.")
    assert len(KEY.secret) == 16


@pytest.mark.parametrize(
    "text",
    ["xfr-key:hmac-sha256", "k:hmac-sha999:" + SECRET, "k:hmac-sha256:not base64!", "k:hmac-sha256:"],
)
def test_bad_keys_are_rejected(text: str) -> None:
    with pytest.raises(InvalidKey):
        TsigKey.from_text(text)


def test_duplicate_key_names_are_rejected() -> None:
    with pytest.raises(InvalidKey):
        Keyring.from_texts([f"a:hmac-sha256:{SECRET}", f"A.:hmac-sha1:{SECRET}"])


def test_unsigned_request() -> None:
    checked = check_request(dns.message.make_query("example.", "AXFR").to_wire(), KEYRING)
    assert checked.verdict is Verdict.UNSIGNED
    assert checked.message is not None and checked.tsig is None


def test_valid_request() -> None:
    checked = check_request(signed_query(), KEYRING)
    assert checked.verdict is Verdict.VALID
    assert checked.key == KEY
    assert checked.tsig is not None and len(checked.tsig.mac) == 32


@pytest.mark.parametrize(
    ("wire", "verdict"),
    [
        (signed_query(secret="AAAAAAAAAAAAAAAAAAAAAA=="), Verdict.BADSIG),
        (signed_query(keyname="other-key"), Verdict.BADKEY),
        (signed_query(algorithm="hmac-sha512"), Verdict.BADKEY),  # not the key's algorithm
        (b"\x12\x34\x00", Verdict.MALFORMED),
    ],
)
def test_bad_requests(wire: bytes, verdict: Verdict) -> None:
    assert check_request(wire, KEYRING).verdict is verdict


def test_tampered_request_is_badsig() -> None:
    wire = bytearray(signed_query())
    wire[3] |= 0x10  # flip the AD bit after signing
    assert check_request(bytes(wire), KEYRING).verdict is Verdict.BADSIG


def test_skewed_clock_is_badtime() -> None:
    query = dns.message.make_query("example.", "AXFR").to_wire()
    old = Signer(KEY, clock=lambda: time.time() - 3600).sign(query)
    checked = check_request(old, KEYRING)
    assert checked.verdict is Verdict.BADTIME
    assert checked.key == KEY


def _response_to(request: bytes) -> dns.message.Message:
    return dns.message.make_response(dns.message.from_wire(request, keyring=KEYRING.dnspython))


def test_signed_reply_verifies_in_dnspython() -> None:
    request = signed_query()
    checked = check_request(request, KEYRING)
    assert checked.tsig is not None
    reply = _response_to(request)
    reply.tsig = None  # sign it ourselves, not with dnspython
    wire = Signer(KEY, checked.tsig.mac).sign(reply.to_wire())
    parsed = dns.message.from_wire(wire, keyring=KEYRING.dnspython, request_mac=checked.tsig.mac)
    assert parsed.had_tsig


def test_every_message_of_a_stream_is_chained() -> None:
    request = signed_query()
    checked = check_request(request, KEYRING)
    assert checked.tsig is not None
    signer = Signer(KEY, checked.tsig.mac)
    query = dns.message.from_wire(request, keyring=KEYRING.dnspython)
    wires = []
    for _ in range(3):
        message = dns.message.make_response(query)
        message.tsig = None
        wires.append(signer.sign(message.to_wire()))
    ctx = None
    for i, wire in enumerate(wires):
        parsed = dns.message.from_wire(
            wire, keyring=KEYRING.dnspython, request_mac=checked.tsig.mac,
            tsig_ctx=ctx, multi=True,
        )
        assert parsed.had_tsig, i
        ctx = parsed.tsig_ctx
    # Out of order, the chain breaks.
    with pytest.raises(dns.tsig.BadSignature):
        first = dns.message.from_wire(
            wires[0], keyring=KEYRING.dnspython, request_mac=checked.tsig.mac, multi=True
        )
        dns.message.from_wire(
            wires[2], keyring=KEYRING.dnspython, request_mac=checked.tsig.mac,
            tsig_ctx=first.tsig_ctx, multi=True,
        )


def _tsig_of(wire: bytes) -> dns.rdtypes.ANY.TSIG.TSIG:
    message = dns.message.from_wire(wire, keyring=False)
    assert message.tsig is not None
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return rdata


def test_unsigned_error_carries_the_tsig_error() -> None:
    checked = check_request(signed_query(secret="AAAAAAAAAAAAAAAAAAAAAA=="), KEYRING)
    assert checked.tsig is not None
    header = struct.pack("!HHHHHH", 7, 0x8000 | dns.rcode.NOTAUTH, 0, 0, 0, 0)
    rdata = _tsig_of(unsigned_error(header, checked.tsig, TsigRcode.BADSIG))
    assert rdata.error == dns.rcode.BADSIG
    assert rdata.mac == b""
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.message.from_wire(
            unsigned_error(header, checked.tsig, TsigRcode.BADSIG),
            keyring=KEYRING.dnspython, request_mac=checked.tsig.mac,
        )


def test_badtime_reply_carries_our_clock() -> None:
    query = dns.message.make_query("example.", "AXFR").to_wire()
    checked = check_request(Signer(KEY, clock=lambda: 1_000_000).sign(query), KEYRING)
    assert checked.tsig is not None and checked.key is not None
    header = struct.pack("!HHHHHH", 7, 0x8000 | dns.rcode.NOTAUTH, 0, 0, 0, 0)
    rdata = _tsig_of(badtime_error(header, checked.key, checked.tsig, 2_000_000))
    assert rdata.error == dns.rcode.BADTIME
    assert rdata.time_signed == 1_000_000
    assert int.from_bytes(rdata.other, "big") == 2_000_000
    assert len(rdata.mac) == 32

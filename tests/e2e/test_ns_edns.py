"""EDNS(0) (RFC 6891), truncation and DNS cookies (RFC 7873/9018) over real sockets."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from nameserver.options import NameserverOptions
from tests.e2e.ns_fixtures import NsServer, make_query, run_nameserver, serving
from tests.unit.nameserver.zones import all_snapshots


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

COOKIE = dns.edns.OptionType.COOKIE


def test_opt_only_when_asked(ns: NsServer) -> None:
    with_edns = ns.udp("www.zh.test", "A", payload=4096)
    assert with_edns.edns == 0 and with_edns.payload == 1232
    without = ns.udp("www.zh.test", "A", edns=False)
    assert without.edns == -1 and without.answer


def test_do_bit_is_echoed(ns: NsServer) -> None:
    assert ns.udp("www.zh.test", "A", want_dnssec=True).ednsflags & dns.flags.DO
    assert not ns.udp("www.zh.test", "A").ednsflags & dns.flags.DO


def test_badvers_for_unknown_version(ns: NsServer) -> None:
    query = make_query("www.zh.test", "A")
    query.use_edns(1)
    reply = dns.query.udp(query, ns.host, port=ns.port, timeout=2)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and not reply.answer


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2, id="two OPT"),
        pytest.param(b"\x01a\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", id="OPT not at root"),
        pytest.param(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x06\x00\x03\x00\x09ab",
                     id="option overrun"),
    ],
)
def test_malformed_opt_is_formerr(ns: NsServer, extra: bytes) -> None:
    wire = make_query("www.zh.test", "A", edns=False).to_wire()
    arcount = extra.count(b"\x00\x29\x04\xd0")
    message = wire[:10] + struct.pack("!H", arcount) + wire[12:] + extra
    reply = ns.raw_udp(message)
    assert reply is not None and len(reply) == 12
    assert reply[3] & 0xF == dns.rcode.FORMERR


def test_payload_is_honoured_and_tcp_has_it_all(ns: NsServer) -> None:
    small = ns.udp("big.zh.test", "TXT", payload=512)
    assert small.flags & dns.flags.TC and not small.answer
    no_edns = ns.udp("big.zh.test", "TXT", edns=False)
    assert no_edns.flags & dns.flags.TC
    fits = ns.udp("big.zh.test", "TXT", payload=1232)
    assert not fits.flags & dns.flags.TC and len(fits.answer[0]) == 6
    full = ns.tcp("big.zh.test", "TXT", edns=False)
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 6


@pytest.mark.parametrize("payload", [0, 100, 512, 600, 1000, 1232, 4096, 65535])
def test_udp_reply_never_exceeds_what_the_client_allows(ns: NsServer, payload: int) -> None:
    wire = make_query("big.zh.test", "TXT", payload=payload).to_wire()
    reply = ns.raw_udp(wire)
    assert reply is not None
    assert len(reply) <= max(512, min(payload, 1232))


def test_refused_carries_extended_error(ns: NsServer) -> None:
    reply = ns.udp("www.example.net", "A")
    assert reply.rcode() == dns.rcode.REFUSED
    assert [o.otype for o in reply.options] == [dns.edns.OptionType.EDE]


def _cookie(reply: dns.message.Message) -> bytes | None:
    for option in reply.options:
        if option.otype == COOKIE:
            return bytes(option.to_wire())
    return None


def test_client_cookie_gets_a_server_cookie_that_is_accepted_back(ns: NsServer) -> None:
    client = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    first = ns.udp("www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, client)])
    returned = _cookie(first)
    assert returned is not None and len(returned) == 24 and returned[:8] == client
    assert returned[8] == 1  # RFC 9018 version
    again = ns.udp("www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, returned)])
    assert _cookie(again) == returned  # fresh and valid: echoed unchanged
    assert again.answer


@pytest.fixture
def strict_ns() -> Iterator[NsServer]:
    with run_nameserver(all_snapshots(), NameserverOptions(require_cookie=True)) as server:
        yield server


def test_badcookie_when_cookies_are_required(strict_ns: NsServer) -> None:
    client = b"abcdefgh"
    first = strict_ns.udp("www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, client)])
    assert first.rcode() == dns.rcode.BADCOOKIE and not first.answer
    server_cookie = _cookie(first)
    assert server_cookie is not None
    second = strict_ns.udp(
        "www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, server_cookie)]
    )
    assert second.rcode() == dns.rcode.NOERROR and second.answer
    forged = client + b"\x01\x00\x00\x00" + bytes(12)
    third = strict_ns.udp("www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, forged)])
    assert third.rcode() == dns.rcode.BADCOOKIE
    # over TCP the source address is proven: answered anyway
    assert strict_ns.tcp("www.zh.test", "A", options=[dns.edns.GenericOption(COOKIE, forged)]).answer

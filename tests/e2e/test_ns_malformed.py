"""Bad input over real sockets: an error, or silence, and the next query answered at once."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import dns.rcode
import pytest

from tests.e2e.ns_fixtures import NsServer, frame, make_query, read_framed, serving
from tests.unit.nameserver.test_wire import FORMERR_CASES


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

GOOD = make_query("www.zh.test", "A").to_wire()


def canary(server: NsServer) -> None:
    reply = server.raw_udp(GOOD, timeout_s=1.0)
    assert reply is not None and reply[:2] == GOOD[:2] and reply[3] & 0xF == 0


@pytest.mark.parametrize("message", list(FORMERR_CASES.values()), ids=list(FORMERR_CASES))
def test_formerr_then_next_query_answered(ns: NsServer, message: bytes) -> None:
    reply = ns.raw_udp(message)
    assert reply is not None and len(reply) == 12
    assert reply[:2] == message[:2] and reply[3] & 0xF == dns.rcode.FORMERR
    canary(ns)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x12\x34\x00", id="three octets"),
        pytest.param(GOOD[:11], id="eleven octets"),
        pytest.param(GOOD[:2] + bytes([GOOD[2] | 0x80]) + GOOD[3:], id="QR=1"),
    ],
)
def test_silence_then_next_query_answered(ns: NsServer, message: bytes) -> None:
    assert ns.raw_udp(message, timeout_s=0.3) is None
    canary(ns)


def test_unknown_opcode_is_notimp(ns: NsServer) -> None:
    message = GOOD[:2] + bytes([GOOD[2] | (2 << 3)]) + GOOD[3:]
    reply = ns.raw_udp(message)
    assert reply is not None and reply[3] & 0xF == dns.rcode.NOTIMP


def test_random_and_bit_flipped_datagrams(ns: NsServer) -> None:
    rng = random.Random(4592)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(3000):
            if i % 2:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
            else:
                flipped = bytearray(GOOD)
                for _ in range(rng.randrange(1, 6)):
                    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
                data = bytes(flipped)
            sock.sendto(data, (ns.host, ns.port))
    canary(ns)
    assert ns.udp("mail.zh.test", "AAAA").answer


def test_reply_never_reflects_more_than_the_query_allows(ns: NsServer) -> None:
    # a spoofed-source amplification probe without EDNS gets at most 512 octets
    reply = ns.raw_udp(make_query("big.zh.test", "TXT", edns=False).to_wire())
    assert reply is not None and len(reply) <= 512


def test_garbage_over_tcp_then_a_good_query(ns: NsServer) -> None:
    rng = random.Random(7766)
    with ns.connect() as sock:
        for _ in range(50):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            sock.sendall(struct.pack("!H", len(junk)) + junk)
        sock.sendall(frame(GOOD))
        replies = []
        sock.settimeout(2)
        while True:
            data = read_framed(sock)
            assert data is not None
            replies.append(data)
            if data[:2] == GOOD[:2] and len(data) > 12:
                break
        assert all(len(r) >= 12 for r in replies)

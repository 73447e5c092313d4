"""Response rate limiting on a real socket: limit, slip truncated replies, recover."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.message
import pytest

from nameserver.options import NameserverOptions
from nameserver.rrl import RrlOptions
from tests.e2e.ns_fixtures import NsServer, make_query, run_nameserver
from tests.unit.nameserver.zones import all_snapshots


@pytest.fixture
def limited() -> Iterator[NsServer]:
    options = NameserverOptions(rrl=RrlOptions(rate_per_s=5, slip=2))
    with run_nameserver(all_snapshots(), options) as server:
        yield server


def burst(server: NsServer, count: int) -> list[dns.message.Message]:
    wire = make_query("www.zh.test", "A").to_wire()
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for _ in range(count):
            sock.sendto(wire, (server.host, server.port))
        try:
            while True:
                replies.append(dns.message.from_wire(sock.recv(65535)))
        except TimeoutError:
            pass
    return replies


def test_flood_is_limited_with_slipped_truncated_replies(limited: NsServer) -> None:
    time.sleep(1 - time.monotonic() % 1 + 0.05)  # start inside a fresh one-second window
    replies = burst(limited, 25)
    full = [r for r in replies if r.answer]
    slipped = [r for r in replies if r.flags & 0x0200 and not r.answer]
    assert len(full) == 5
    assert len(slipped) == 10  # every second one of the 20 over the limit
    assert len(replies) == 15
    time.sleep(1.1)
    assert limited.udp("www.zh.test", "A").answer  # the next window starts afresh
    assert limited.tcp("www.zh.test", "A").answer  # TCP is never limited

"""Fuzz the nameserver: at least 100,000 malformed packets, then a good query must be
answered at once, correctly, and the process must still be running (issue 3, "Bad input").

Packets are mutations of the corpus's valid queries (bit flips, truncations, random bytes,
wrong counts, compression-pointer loops, bad and oversized OPT, bad names, header bits,
trailing junk), sent over UDP in batches without waiting for each reply, plus TCP streams
with bad length prefixes. Replies with QR=1 sent to the server must get no answer at all.
The seed is printed so that a failure can be replayed (ZONEHOST_FUZZ_SEED).
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.e2e.dnsdiff import build_query, load_corpus
from tests.e2e.dnsdiff.mutate import Kind, as_reply, mutations, tcp_streams
from tests.refservers import RunningServer, ServerUnavailable, nsd_server, zonehost_server

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "zonehost"
UDP_PACKETS = 100_000
TCP_STREAMS = 400
REPLY_PACKETS = 500
BATCH = 100
PROBE_WAIT_S = 0.2
DEADLINE_S = 30.0  # bounds on each flood, whatever the server's speed
TCP_DEADLINE_S = 10.0
MAX_UDP_REPLY = 1232
CANARY = ("www.alpha.test.", dns.rdatatype.A, {"192.0.2.10", "192.0.2.11"})


@dataclass(frozen=True, slots=True)
class FloodStats:
    sent: int
    replies: int
    largest_reply: int
    probes_answered: int
    probes: int
    seconds: float


class _Replies:
    """What came back on one socket."""

    def __init__(self) -> None:
        self.count = 0
        self.largest = 0

    def wait_for(self, sock: socket.socket, reply_id: bytes, wait_s: float) -> bool:
        """Read replies until one starts with reply_id (True) or wait_s passes (False)."""
        end = time.monotonic() + max(wait_s, 0.0)
        while True:
            remaining = end - time.monotonic()
            if not select.select([sock], [], [], max(remaining, 0.0))[0]:
                return False
            try:
                reply = sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            self.count += 1
            self.largest = max(self.largest, len(reply))
            if reply_id and reply.startswith(reply_id):
                return True


def _seeds() -> list[bytes]:
    corpus = load_corpus(CORPUS)
    return [build_query(q, i) for i, q in enumerate(corpus.queries) if not q.axfr]


def _flood_udp(
    server: RunningServer, packets: list[bytes], probe: bytes, deadline: float
) -> FloodStats:
    """Send in batches; after each, a valid probe query whose reply says the batch was read.

    The probe paces the flood on the server's speed (so that packets are parsed, not dropped
    by a full socket buffer) without waiting for each reply; past the deadline we stop waiting.
    """
    start = time.monotonic()
    replies = _Replies()
    sent = probes = answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect((server.host, server.port))
        sock.setblocking(False)
        for number, offset in enumerate(range(0, len(packets), BATCH)):
            for packet in packets[offset : offset + BATCH]:
                _send(sock, packet)
                sent += 1
            probe_id = struct.pack("!H", number % 65536)
            _send(sock, probe_id + probe[2:])
            probes += 1
            wait_s = min(PROBE_WAIT_S, deadline - time.monotonic())
            answered += replies.wait_for(sock, probe_id, wait_s)
            if number % 100 == 0:
                assert server.alive(), f"{server.name} died:\n{server.log_tail()}"
        replies.wait_for(sock, b"", 0.2)
    seconds = time.monotonic() - start
    return FloodStats(sent, replies.count, replies.largest, answered, probes, seconds)


def _send(sock: socket.socket, packet: bytes) -> None:
    try:
        sock.send(packet)
    except (BlockingIOError, ConnectionRefusedError):
        pass  # a full buffer or an ICMP error from an earlier packet: move on


def _replies_to_replies(server: RunningServer, packets: list[bytes]) -> int:
    """Send messages with QR=1; count what comes back (RFC 1035: nothing may)."""
    replies = _Replies()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))
        sock.setblocking(False)
        for packet in packets:
            _send(sock, packet)
        replies.wait_for(sock, b"", 0.5)
    return replies.count


def _flood_tcp(server: RunningServer, streams: list[bytes], deadline: float) -> int:
    """Each stream on its own connection; read a little, then close. Connections made."""
    made = 0
    for i, stream in enumerate(streams):
        if time.monotonic() > deadline:
            break  # a server that stalls every connection must not stall the suite
        try:
            with socket.create_connection((server.host, server.port), timeout=1.0) as sock:
                made += 1
                sock.sendall(stream)
                if i % 4 == 0:  # sometimes wait for what the server says, and for its close
                    sock.shutdown(socket.SHUT_WR)
                    sock.settimeout(0.05)
                    try:
                        while sock.recv(65535):
                            pass
                    except (TimeoutError, ConnectionResetError):
                        pass
        except OSError:
            pass  # the server may cut a bad stream short (reset, not connected): allowed
    return made


def _check_canary(server: RunningServer) -> None:
    qname, qtype, expected = CANARY
    query = dns.message.make_query(qname, qtype, use_edns=0)
    query.flags &= ~dns.flags.RD
    for transport in (dns.query.udp, dns.query.tcp):
        reply = transport(query, server.host, port=server.port, timeout=2.0)
        assert reply.rcode() == dns.rcode.NOERROR, f"{transport.__name__}: {reply}"
        assert reply.flags & dns.flags.AA, f"{transport.__name__}: {reply}"
        got = {rd.to_text() for rrset in reply.answer for rd in rrset}
        assert got == expected, f"{transport.__name__}: {reply}"


@pytest.fixture(params=["zonehost", "nsd"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    with ExitStack() as stack:
        try:
            if request.param == "zonehost":
                env = request.getfixturevalue("cli_env")
                server = stack.enter_context(zonehost_server(CORPUS, tmp_path / "zonehost", env))
            else:
                server = stack.enter_context(nsd_server(CORPUS, tmp_path / "nsd"))
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        yield server


@pytest.mark.slow
def test_fuzz_then_canary(target: RunningServer) -> None:
    seed = int(os.environ.get("ZONEHOST_FUZZ_SEED", random.randrange(1 << 32)))
    print(f"fuzz seed {seed} (replay: ZONEHOST_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    seeds = _seeds()
    _check_canary(target)  # the server works before we start

    packets = mutations(rng, seeds, UDP_PACKETS)
    kinds = Counter(kind.value for kind, _ in packets)
    probe = build_query(load_corpus(CORPUS).queries[0], 0)
    stats = _flood_udp(target, [p for _, p in packets], probe, time.monotonic() + DEADLINE_S)
    print(
        f"UDP: {stats.sent} packets {dict(kinds)}, {stats.replies} replies "
        f"(largest {stats.largest_reply} octets), "
        f"{stats.probes_answered}/{stats.probes} probes answered in time, {stats.seconds:.1f}s"
    )
    assert stats.sent >= UDP_PACKETS
    # No UDP reply above the default EDNS payload (RFC 6891, issue 3: default 1232), whatever
    # payload the malformed OPT records asked for.
    assert stats.largest_reply <= MAX_UDP_REPLY, f"a {stats.largest_reply}-octet UDP reply"
    assert target.alive(), f"{target.name} died during the UDP flood:\n{target.log_tail()}"

    streams = tcp_streams(rng, seeds, TCP_STREAMS)
    connections = _flood_tcp(target, streams, time.monotonic() + TCP_DEADLINE_S)
    print(f"TCP: {connections}/{len(streams)} connections with bad framing or mutated messages")
    assert target.alive(), f"{target.name} died during the TCP streams:\n{target.log_tail()}"

    answered = _replies_to_replies(
        target, [as_reply(rng.choice(seeds)) for _ in range(REPLY_PACKETS)]
    )
    assert answered == 0, f"{answered} of {REPLY_PACKETS} messages with QR=1 were answered"

    _check_canary(target)
    assert target.alive(), f"{target.name} died:\n{target.log_tail()}"


def test_mutations_are_malformed_in_every_way() -> None:
    """The fuzzer itself: every kind is produced, and the packets really differ from queries."""
    rng = random.Random(1)
    seeds = _seeds()
    packets = mutations(rng, seeds, 900)
    assert {kind for kind, _ in packets} == set(Kind)
    unchanged = sum(1 for _, p in packets if p in seeds)
    assert unchanged < 30, unchanged
    assert all(not (p[2] & 0x80) for _, p in packets if len(p) >= 3)
    # The first five kinds of TCP stream are badly framed.
    for stream in tcp_streams(rng, seeds, 8)[:5]:
        assert len(stream) < 2 or struct.unpack("!H", stream[:2])[0] != len(stream) - 2

"""A real nameserver on 127.0.0.1 for the e2e tests, from zone snapshots.

The server runs on its own event loop in a background thread, so tests can
use blocking dnspython and raw sockets against it; `call()` runs a function
on the server's loop (for live zone edits) and waits for it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from nameserver.index import ZoneSnapshot, ZoneTable
from nameserver.options import NameserverOptions
from nameserver.server import RunningNameserver, serve
from tests.unit.nameserver.ask import lines
from tests.unit.nameserver.zones import all_snapshots

HOST = "127.0.0.1"
TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass
class NsServer:
    host: str
    port: int
    table: ZoneTable
    running: RunningNameserver
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop, between two queries, and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT_S)

    def udp(self, qname: str, qtype: str = "A", **kwargs: Any) -> dns.message.Message:
        query = make_query(qname, qtype, **kwargs)
        return dns.query.udp(query, self.host, port=self.port, timeout=TIMEOUT_S)

    def tcp(self, qname: str, qtype: str = "A", **kwargs: Any) -> dns.message.Message:
        query = make_query(qname, qtype, **kwargs)
        return dns.query.tcp(query, self.host, port=self.port, timeout=TIMEOUT_S)

    def raw_udp(self, data: bytes, timeout_s: float = 0.5) -> bytes | None:
        """Send one datagram; the reply, or None if none came within `timeout_s`."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout_s)
            sock.sendto(data, (self.host, self.port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT_S)
        return sock


def make_query(
    qname: str, qtype: str = "A", edns: bool = True, **kwargs: Any
) -> dns.message.Message:
    query = dns.message.make_query(
        qname,
        dns.rdatatype.from_text(qtype),
        use_edns=0 if edns else False,
        **kwargs,
    )
    query.flags &= ~0x0100  # RD clear, as a resolver asks an authority
    return query


def read_framed(sock: socket.socket) -> bytes | None:
    """One length-prefixed DNS message from a TCP socket, None on EOF."""
    head = _read_exact(sock, 2)
    if head is None:
        return None
    return _read_exact(sock, struct.unpack("!H", head)[0])


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def frame(message: dns.message.Message | bytes) -> bytes:
    wire = message if isinstance(message, bytes) else message.to_wire()
    return struct.pack("!H", len(wire)) + wire


@contextmanager
def run_nameserver(
    snapshots: Sequence[ZoneSnapshot], options: NameserverOptions | None = None
) -> Iterator[NsServer]:
    """Serve the snapshots on an ephemeral loopback port until the block ends."""
    table = ZoneTable.from_snapshots(snapshots)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="nameserver", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(serve(table, [(HOST, 0)], options), loop).result(10)
    server = NsServer(HOST, running.addresses[0][1], table, running, loop)
    try:
        yield server
    finally:

        async def stop() -> None:
            running.close()
            await running.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


TEST_OPTIONS = NameserverOptions(tcp_idle_timeout_s=2.0, tcp_max_per_client=8)


def serving(options: NameserverOptions = TEST_OPTIONS) -> AbstractContextManager[NsServer]:
    """The fixture zones (tests/unit/nameserver/zones.py) served until the block ends."""
    return run_nameserver(all_snapshots(), options)


def check_reply(
    reply: dns.message.Message,
    rcode: str,
    aa: bool,
    answer: set[str],
    authority: set[str],
    additional: set[str] | None = None,
) -> None:
    """One row of a DNS case table: rcode, AA and the sections (as `lines`)."""
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert bool(reply.flags & dns.flags.AA) == aa
    assert lines(reply.answer) == answer
    assert lines(reply.authority) == authority
    if additional is not None:
        assert lines(reply.additional) == additional

"""Small UDP clients: "is every zone answered yet?" and single lookups."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Sequence

import dns.exception
import dns.message
import dns.rdatatype

HOST = "127.0.0.1"
SOA = 6
AA = 0x0400


def _wire_name(text: str) -> bytes:
    out = bytearray()
    for label in text.rstrip(".").split("."):
        out.append(len(label))
        out += label.encode("ascii")
    return bytes(out + b"\x00")


def _query(qid: int, name: str, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + _wire_name(name) + struct.pack("!HH", qtype, 1)


def wait_all_zones(
    port: int, origins: Sequence[str], timeout_s: float, alive: Callable[[], bool] = lambda: True,
    sources: int = 1,
) -> float | None:
    """Seconds (monotonic clock) at which the last origin was answered with an
    authoritative NOERROR SOA; None on timeout or if the server died.

    Every origin is asked from each of `sources` sockets (source ports), so
    that with SO_REUSEPORT workers every worker is seen answering. Queries go
    out in bursts of up to 200 pending per socket and are retried every 20 ms,
    so a server that answers everything is seen within one sweep.
    """
    deadline = time.monotonic() + timeout_s
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sources)]
    pending = [{i: origin for i, origin in enumerate(origins)} for _ in socks]
    last = time.monotonic()
    try:
        for sock in socks:
            sock.setblocking(False)
        while any(pending):
            if time.monotonic() > deadline or not alive():
                return None
            for sock, waiting in zip(socks, pending, strict=True):
                for qid, origin in list(waiting.items())[:200]:
                    try:
                        sock.sendto(_query(qid, origin, SOA), (HOST, port))
                    except OSError:
                        break
            wait_until = time.monotonic() + 0.02
            while any(pending):
                left = wait_until - time.monotonic()
                readable = select.select(socks, [], [], left)[0] if left > 0 else []
                if not readable:
                    break
                for sock in readable:
                    waiting = pending[socks.index(sock)]
                    try:
                        data = sock.recv(4096)
                    except OSError:  # ICMP port unreachable: not listening yet
                        continue
                    if len(data) < 12:
                        continue
                    qid, flags, _, ancount = struct.unpack("!HHHH", data[:8])
                    if qid in waiting and flags & 0x000F == 0 and flags & AA and ancount:
                        del waiting[qid]
                        last = time.monotonic()
    finally:
        for sock in socks:
            sock.close()
    return last


class Lookup:
    """One UDP socket for repeated lookups of one name (edit polling)."""

    def __init__(self, port: int, qname: str, qtype: str = "A") -> None:
        self.addr = (HOST, port)
        self.qname = qname
        self.rdtype = dns.rdatatype.from_text(qtype)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)
        self._id = 0

    def close(self) -> None:
        self.sock.close()

    def _exchange(self, rdtype: dns.rdatatype.RdataType) -> dns.message.Message | None:
        self._id = (self._id + 1) & 0xFFFF
        query = dns.message.make_query(self.qname, rdtype)
        query.id = self._id
        query.flags = 0
        self.sock.sendto(query.to_wire(), self.addr)
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            try:
                reply = dns.message.from_wire(self.sock.recv(65535))
            except (TimeoutError, OSError, dns.exception.DNSException):
                return None
            if reply.id == self._id:
                return reply
        return None

    def texts(self) -> set[str] | None:
        """The answer's rdata texts for (qname, qtype), or None on timeout."""
        reply = self._exchange(self.rdtype)
        if reply is None:
            return None
        return {rd.to_text() for rrset in reply.answer if rrset.rdtype == self.rdtype for rd in rrset}

    def serial(self) -> int | None:
        """The SOA serial, when qname is a zone apex."""
        reply = self._exchange(dns.rdatatype.SOA)
        if reply is None:
            return None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None


def wait_served(lookup: Lookup, address: str, since: float, timeout_s: float,
                poll_s: float = 0.0005) -> float | None:
    """Poll until `address` is served (blocking on purpose: nothing else runs
    meanwhile); the perf_counter time it was first seen, None after `timeout_s`."""
    while True:
        texts = lookup.texts()
        now = time.perf_counter()
        if texts is not None and address in texts:
            return now
        if now - since > timeout_s:
            return None
        time.sleep(poll_s)

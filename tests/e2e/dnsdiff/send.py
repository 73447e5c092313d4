"""Send one corpus query to one server, exactly as its flags say, and keep the raw replies."""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Protocol

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdatatype

from .corpus import Query


class Endpoint(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one server sent back: raw DNS messages (several for AXFR), or why none came."""

    wires: tuple[bytes, ...]
    error: str | None = None
    tcp: bool = False


def build_query(query: Query, qid: int) -> bytes:
    msg = dns.message.make_query(
        dns.name.from_text(query.qname),  # keeps the case of every label
        query.qtype,
        query.rdclass,
        use_edns=query.edns_version if query.edns else False,
        want_dnssec=query.do and query.edns,
        payload=query.payload,
        options=[
            dns.edns.GenericOption(dns.edns.OptionType.make(o.code), o.data) for o in query.options
        ],
    )
    msg.id = qid
    msg.flags = 0  # make_query sets RD; the corpus default is RD=0
    for wanted, bit in (
        (query.rd, dns.flags.RD),
        (query.cd, dns.flags.CD),
        (query.ad, dns.flags.AD),
    ):
        if wanted:
            msg.flags |= bit
    msg.set_opcode(query.opcode)
    return msg.to_wire()


def exchange(query: Query, server: Endpoint, timeout_s: float = 2.0) -> Exchange:
    qid = secrets.randbelow(65536)
    wire = build_query(query, qid)
    try:
        if query.tcp:
            return _tcp(wire, qid, server, timeout_s, axfr=query.axfr)
        return _udp(wire, qid, server, timeout_s)
    except OSError as exc:
        return Exchange(wires=(), error=f"{type(exc).__name__}: {exc}", tcp=query.tcp)


def _udp(wire: bytes, qid: int, server: Endpoint, timeout_s: float) -> Exchange:
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))
        sock.send(wire)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Exchange(wires=(), error="timeout")
            sock.settimeout(remaining)
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                return Exchange(wires=(), error="timeout")
            # Match on the ID only: a wrong question is for compare.py to report.
            if len(reply) >= 2 and struct.unpack("!H", reply[:2])[0] == qid:
                return Exchange(wires=(reply,))


def _tcp(wire: bytes, qid: int, server: Endpoint, timeout_s: float, *, axfr: bool) -> Exchange:
    deadline = time.monotonic() + timeout_s * (5 if axfr else 1)
    replies: list[bytes] = []
    soa_seen = 0
    with socket.create_connection((server.host, server.port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                reply = _read_framed(sock)
            except TimeoutError:
                return Exchange(wires=tuple(replies), error="timeout", tcp=True)
            if reply is None:
                error = None if replies else "connection closed without a reply"
                return Exchange(wires=tuple(replies), error=error, tcp=True)
            if len(reply) < 2 or struct.unpack("!H", reply[:2])[0] != qid:
                continue
            replies.append(reply)
            if not axfr:
                return Exchange(wires=tuple(replies), tcp=True)
            soa_seen += _count_soa(reply)
            if soa_seen >= 2 or _rcode(reply) != 0 or soa_seen == 0:
                # Done: the closing SOA came, or an error, or a reply that is no transfer.
                return Exchange(wires=tuple(replies), tcp=True)


def _read_framed(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 2)
    if head is None:
        return None
    return _read_exact(sock, struct.unpack("!H", head)[0])


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _rcode(wire: bytes) -> int:
    return wire[3] & 0x0F if len(wire) >= 4 else -1


def _count_soa(wire: bytes) -> int:
    try:
        msg = dns.message.from_wire(wire, one_rr_per_rrset=True)
    except Exception:  # noqa: BLE001 - a broken reply ends the transfer; compare.py says why
        return 2
    return sum(1 for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SOA)

"""RRsets prepared for the wire once, at load time, so answering copies bytes.

A `PreparedRRset` keeps, per record, the fixed part after the owner name
(TYPE, CLASS, TTL) and the rdata. Most types carry no compressible name and
their record is one ready `bytes` (with RDLENGTH); the RFC 1035 types whose
embedded names may be compressed (RFC 3597 section 4) keep those names apart
so the renderer can point them at earlier names in the message.

Names are lower-case uncompressed wire bytes throughout (`bytes.lower()` is
safe on wire names: length octets are <= 63, below ASCII 'A').
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CLASS_IN = 1

# rdtype numbers used by the engine
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, DNAME, OPT, DS = 1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 41, 43
MD, MF, MB, MG, MR, MINFO = 3, 4, 7, 8, 9, 14
IXFR, AXFR, ANY = 251, 252, 255
TSIG = 250

# Types whose rdata is one domain name that may be compressed.
_ONE_NAME = frozenset({NS, MD, MF, CNAME, MB, MG, MR, PTR})

QNAME_POINTER = b"\xc0\x0c"  # the question name always starts at offset 12
_TTC = struct.Struct("!HHI")
_U16 = struct.Struct("!H")


class WireNameError(ValueError):
    """A stored name or rdata is not valid uncompressed wire format."""


def name_end(wire: bytes, pos: int) -> int:
    """Return the offset just past the uncompressed name starting at `pos`."""
    n = len(wire)
    while True:
        if pos >= n:
            raise WireNameError("name runs past the rdata")
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length > 63:
            raise WireNameError("compressed or extended label in stored rdata")
        pos += length + 1


def parent(name: bytes) -> bytes:
    """The wire name one label up (root stays root)."""
    return name[name[0] + 1 :] if name[0] else name


@dataclass(frozen=True, slots=True)
class CompressedRecord:
    """A record whose rdata holds names the renderer may compress."""

    ttc: bytes  # TYPE CLASS TTL
    head: bytes  # rdata bytes before the first name (MX preference)
    names: tuple[bytes, ...]
    tail: bytes  # rdata bytes after the last name (SOA counters)
    lead: bytes  # what the renderer writes first: ttc, a zero RDLENGTH to patch, head


@dataclass(frozen=True, slots=True)
class PreparedRRset:
    rdtype: int
    ttl: int
    # Either every record is ready bytes (TYPE CLASS TTL RDLEN RDATA) ...
    records: tuple[bytes, ...]
    # ... or, for compressible types, records are kept split here instead.
    compressed: tuple[CompressedRecord, ...]
    # Names additional-section processing and CNAME/DNAME following need:
    # the NS/MX/SRV targets, or the CNAME/DNAME target.
    targets: tuple[bytes, ...]

    def at_qname(self) -> bytes:
        """`records` as they stand in an answer to the query name itself, each
        owner a pointer to the question (offset 12); empty for compressed
        types. Made per use: kept, it would cost 6 MB per 100,000 RRsets."""
        records = self.records
        return QNAME_POINTER + QNAME_POINTER.join(records) if records else b""

    @property
    def count(self) -> int:
        return len(self.records) or len(self.compressed)


def _split(rdtype: int, rdata: bytes) -> tuple[bytes, tuple[bytes, ...], bytes]:
    if rdtype in _ONE_NAME:
        end = name_end(rdata, 0)
        _check_consumed(rdata, end)
        return b"", (rdata[:end].lower(),), b""
    if rdtype == MX:
        end = name_end(rdata, 2)
        _check_consumed(rdata, end)
        return rdata[:2], (rdata[2:end].lower(),), b""
    if rdtype == SOA:
        mid = name_end(rdata, 0)
        end = name_end(rdata, mid)
        if len(rdata) != end + 20:
            raise WireNameError("SOA counters must be 20 octets")
        return b"", (rdata[:mid].lower(), rdata[mid:end].lower()), rdata[end:]
    # MINFO
    mid = name_end(rdata, 0)
    end = name_end(rdata, mid)
    _check_consumed(rdata, end)
    return b"", (rdata[:mid].lower(), rdata[mid:end].lower()), b""


def _check_consumed(rdata: bytes, end: int) -> None:
    if end != len(rdata):
        raise WireNameError("trailing bytes after the name in rdata")


def _targets(rdtype: int, rdatas: tuple[bytes, ...]) -> tuple[bytes, ...]:
    if rdtype in (NS, CNAME):
        return tuple(rd.lower() for rd in rdatas)
    if rdtype == MX:
        return tuple(rd[2:].lower() for rd in rdatas)
    if rdtype == SRV:
        return tuple(rd[6 : name_end(rd, 6)].lower() for rd in rdatas)
    if rdtype == DNAME:
        return tuple(rd[: name_end(rd, 0)].lower() for rd in rdatas)
    return ()


def _compressed(ttc: bytes, head: bytes, names: tuple[bytes, ...], tail: bytes) -> CompressedRecord:
    return CompressedRecord(ttc, head, names, tail, ttc + b"\0\0" + head)


def prepare_rrset(
    rdtype: int, ttl: int, rdatas: tuple[bytes, ...], rdclass: int = CLASS_IN
) -> PreparedRRset:
    """Precompute the wire fragments of one RRset."""
    ttc = _TTC.pack(rdtype, rdclass, ttl)
    if rdtype in _ONE_NAME or rdtype in (MX, SOA, MINFO):
        compressed = tuple(_compressed(ttc, *_split(rdtype, rd)) for rd in rdatas)
        return PreparedRRset(rdtype, ttl, (), compressed, _targets(rdtype, rdatas))
    records = tuple(ttc + _U16.pack(len(rd)) + rd for rd in rdatas)
    return PreparedRRset(rdtype, ttl, records, (), _targets(rdtype, rdatas))


def soa_minimum(soa: PreparedRRset) -> int:
    """The MINIMUM field of a prepared SOA (the last 4 counter octets)."""
    tail: bytes = soa.compressed[0].tail
    return int.from_bytes(tail[16:20], "big")

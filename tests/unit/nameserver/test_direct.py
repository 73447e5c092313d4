"""The responder's direct path gives exactly what the full path gives.

`Responder._direct` answers the commonest miss (an RRset at the query name)
in one function; a responder whose direct path always steps aside is the
reference. Both must produce the same bytes, count the same statistics key
and leave the same reply-cache entry, for every name, type, EDNS form,
header flag and spelling; and the direct path must step aside (None) for
everything it does not handle, malformed queries included.
"""

from __future__ import annotations

import dns.flags
import pytest

from nameserver.options import NameserverOptions
from nameserver.responder import Responder
from nameserver.wire import parse_query
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.test_at_qname import _names
from tests.unit.nameserver.zones import table

TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "SRV", "CNAME", "DS", "ANY", "DNAME", "CAA"]
FORMATS = [
    {"edns": False},
    {"edns": True},
    {"edns": True, "want_dnssec": True},
    {"edns": True, "payload": 512},
    {"edns": True, "payload": 600},
    {"edns": True, "payload": 4096},
]
PEER = ("192.0.2.7", 5353)


def _edns_version_1(wire: bytes) -> bytes:
    return wire[:-5] + b"\x01" + wire[-4:]  # the OPT's VERSION octet (it ends the query)


class FullPathOnly(Responder):
    def _direct(self, data: bytes, transport: str) -> bytes | None:
        return None


def _wires(qname: str) -> list[bytes]:
    out = []
    for spelling in (qname, qname.upper()):
        for qtype in TYPES:
            for fmt in FORMATS:
                query = make_query(spelling, qtype, **fmt)  # type: ignore[arg-type]
                out.append(query.to_wire())
                query.flags |= dns.flags.RD | dns.flags.CD | dns.flags.AD
                query.id ^= 0x5A5A
                out.append(query.to_wire())
    return out


@pytest.mark.parametrize("qname", _names())
def test_same_reply_statistics_and_cache_entry(qname: str) -> None:
    zones = table()
    options = NameserverOptions(cookies=False)
    for transport in ("udp", "tcp"):
        for wire in _wires(qname):
            fast, reference = Responder(zones, options), FullPathOnly(zones, options)
            got = fast.udp(wire, PEER) if transport == "udp" else fast.tcp(wire, PEER)
            want = (
                reference.udp(wire, PEER) if transport == "udp" else reference.tcp(wire, PEER)
            )
            assert got == want, (qname, wire.hex(), transport)
            assert dict(fast.metrics.hits) == dict(reference.metrics.hits)
            cache, ref_cache = fast._caches[transport], reference._caches[transport]
            assert cache.young == ref_cache.young, (qname, wire.hex(), transport)


def test_it_answers_the_plain_answers_itself() -> None:
    responder = Responder(table())
    for qname, qtype in [("www.zh.test", "A"), ("mail.zh.test", "AAAA"), ("zh.test", "A"),
                         ("www.child.zh.test", "A"), ("WWW.ZH.TEST", "A")]:
        for fmt in FORMATS[:3]:
            wire = make_query(qname, qtype, **fmt).to_wire()  # type: ignore[arg-type]
            assert responder._direct(wire, "udp") is not None, (qname, fmt)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",  # header only
        make_query("www.zh.test", "A").to_wire()[:-12],  # OPT cut short
        make_query("www.zh.test", "A", edns=False).to_wire()[:-2],  # question cut short
        b"\x00\x01\x80\x00" + make_query("www.zh.test", "A").to_wire()[4:],  # QR set
        b"\x00\x01\x28\x00" + make_query("www.zh.test", "A").to_wire()[4:],  # opcode 5
        b"\x00\x01\x00\x01" + make_query("www.zh.test", "A").to_wire()[4:],  # RCODE set
        b"\x00\x01\x00\x00\x00\x02" + make_query("www.zh.test", "A").to_wire()[6:],  # QDCOUNT 2
        make_query("www.zh.test", "A", edns=False).to_wire()[:12]
        + b"\xc0\x0c\x00\x01\x00\x01",  # compressed question name
        make_query("www.zh.test", "A", edns=False).to_wire()[:12]
        + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label over 63 octets
        make_query("www.zh.test", "A", edns=False).to_wire()[:-2] + b"\x00\x03",  # class CH
        make_query("www.zh.test", "A", edns=False).to_wire()[:-2] + b"\x00\xff",  # class ANY
        _edns_version_1(make_query("www.zh.test", "A").to_wire()),
        make_query("www.zh.test", "A").to_wire()[:-2] + b"\x00\x04\x00\x03\x00\x00",  # NSID
        make_query("www.zh.test", "ANY").to_wire(),
        make_query("sub.zh.test", "DS").to_wire(),
    ],
)
def test_it_steps_aside_for_what_it_does_not_parse(wire: bytes) -> None:
    assert Responder(table())._direct(wire, "udp") is None


@pytest.mark.parametrize(
    "qname,qtype",
    [
        ("nowhere.zh.test", "A"),  # NXDOMAIN
        ("www.zh.test", "MX"),  # NODATA
        ("zh.test", "MX"),  # additional section
        ("c1.zh.test", "A"),  # CNAME
        ("foo.wild.zh.test", "A"),  # wildcard
        ("ns1.sub.zh.test", "A"),  # below a delegation
        ("www.dn.zh.test", "A"),  # below a DNAME
        ("suspended.test", "A"),  # suspended zone
        ("nowhere.invalid", "A"),  # no zone
    ],
)
def test_other_plain_queries_come_back_parsed(qname: str, qtype: str) -> None:
    for edns in (False, True):
        wire = make_query(qname, qtype, edns=edns).to_wire()
        assert Responder(table())._direct(wire, "udp") == parse_query(wire), (qname, edns)


def test_bytes_after_the_last_record_are_ignored_alike() -> None:
    for edns in (False, True):
        wire = make_query("www.zh.test", "A", edns=edns).to_wire() + b"\x00\x07"
        direct = Responder(table())._direct(wire, "udp")
        assert direct is not None
        assert direct == FullPathOnly(table()).udp(wire, PEER)

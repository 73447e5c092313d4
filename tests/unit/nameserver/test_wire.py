"""parse_query's verdicts on good and bad messages, and render's truncation."""

from __future__ import annotations

import struct
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import pytest

from nameserver.answer import answer
from nameserver.message import Rcode
from nameserver.wire import BadQuery, Unanswerable, parse_query, render, udp_limit
from tests.unit.nameserver.ask import ask, make_query
from tests.unit.nameserver.zones import table

TABLE = table()
QNAME = b"\x03www\x02zh\x04test\x00"


def header(flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0xBEEF, flags, qd, an, ns, ar)


def question(name: bytes = QNAME, qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def opt(version: int = 0, payload: int = 1232, flags: int = 0, options: bytes = b"") -> bytes:
    return b"\x00" + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(options)) + options


def test_parses_a_plain_query() -> None:
    query = parse_query(header(0x0100) + question(b"\x03WwW\x02zh\x04test\x00", 28))
    assert query.id == 0xBEEF and query.qtype == 28 and query.qclass == 1
    assert query.qname == QNAME  # lower-cased for lookups
    assert query.question[:4] == b"\x03WwW"  # as sent, for the echo
    assert query.edns is None


def test_parses_edns_do_payload_and_cookie() -> None:
    cookie = b"\x00\x0a\x00\x08" + b"ABCDEFGH"
    query = parse_query(header(ar=1) + question() + opt(payload=4096, flags=0x8000, options=cookie))
    assert query.edns is not None
    assert (query.edns.version, query.edns.payload, query.edns.do) == (0, 4096, True)
    assert query.edns.cookie == b"ABCDEFGH"


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"", id="empty"),
        pytest.param(header()[:11], id="short header"),
        pytest.param(header(0x8000) + question(), id="QR=1"),
    ],
)
def test_dropped(message: bytes) -> None:
    with pytest.raises(Unanswerable):
        parse_query(message)


FORMERR_CASES = {
    "no question": header(qd=0),
    "two questions": header(qd=2) + question() + question(),
    "answer record": header(an=1) + question(),
    "rcode in query": header(0x0003) + question(),
    "pointer in qname": header() + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer loop": header() + b"\x03www\xc0\x0c\x00\x01\x00\x01",
    "extended label": header() + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01",
    "name over 255": header() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 3 + b"\x00\x00\x01\x00\x01",
    "truncated name": header() + b"\x03ww",
    "no qtype": header() + QNAME + b"\x00",
    "additional promised": header(ar=1) + question(),
    "two OPT": header(ar=2) + question() + opt() + opt(),
    "OPT not at root": header(ar=1) + question() + b"\x01a" + opt()[1:],
    "option past end": header(ar=1) + question() + opt(options=b"\x00\x03\x00\x05ab"),
    "cookie of 5": header(ar=1) + question() + opt(options=b"\x00\x0a\x00\x05abcde"),
    "cookie of 41": header(ar=1) + question() + opt(options=b"\x00\x0a\x00\x29" + b"x" * 41),
    "A in additional": header(ar=1) + question() + b"\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x01\x02\x03\x04",
    "rdata past end": header(ar=1) + question() + opt()[:-2] + b"\x00\x09",
}


@pytest.mark.parametrize("message", list(FORMERR_CASES.values()), ids=list(FORMERR_CASES))
def test_formerr_header_only(message: bytes) -> None:
    with pytest.raises(BadQuery) as caught:
        parse_query(message)
    assert caught.value.rcode == Rcode.FORMERR
    reply = caught.value.reply
    assert len(reply) == 12 and reply[:2] == b"\xbe\xef"
    assert reply[2] & 0x80 and reply[3] & 0x0F == Rcode.FORMERR
    assert reply[4:] == bytes(8)


@pytest.mark.parametrize("opcode", [1, 2, 3, 5, 6, 15])
def test_unknown_opcodes_notimp(opcode: int) -> None:
    with pytest.raises(BadQuery) as caught:
        parse_query(header(opcode << 11, qd=0))
    assert caught.value.rcode == Rcode.NOTIMP
    assert caught.value.reply[2] >> 3 & 0xF == opcode


def test_trailing_bytes_are_ignored_like_nsd() -> None:
    query = parse_query(header(ar=1) + question() + opt() + b"garbage")
    assert query.edns is not None and query.qname == QNAME


def test_ixfr_may_carry_an_authority_soa() -> None:
    soa = b"\xc0\x0c\x00\x06\x00\x01\x00\x00\x00\x00\x00\x16" + b"\x00\x00" + bytes(20)
    query = parse_query(header(ns=1) + question(qtype=251) + soa)
    assert query.qtype == 251


def test_udp_limit_follows_rfc_6891() -> None:
    def limit(**kw: Any) -> int:
        return udp_limit(parse_query(make_query("www.zh.test", "A", **kw).to_wire()), 1232)

    assert limit(edns=False) == 512
    assert limit(payload=100) == 512
    assert limit(payload=1000) == 1000
    assert limit(payload=4096) == 1232


def test_truncation_sets_tc_and_drops_whole_rrsets() -> None:
    full = ask(TABLE, "big.zh.test", "TXT", limit=65535)
    assert len(full.answer[0]) == 6 and not full.flags & dns.flags.TC
    cut = ask(TABLE, "big.zh.test", "TXT", edns=False)
    assert cut.flags & dns.flags.TC
    assert cut.answer == [] and cut.rcode() == dns.rcode.NOERROR


def test_additional_that_does_not_fit_is_left_out_without_tc() -> None:
    wire = make_query("zh.test", "MX").to_wire()
    query = parse_query(wire)
    reply = render(answer(query, TABLE.index), query, 512)
    full = dns.message.from_wire(reply)
    assert full.additional
    tight = dns.message.from_wire(render(answer(query, TABLE.index), query, len(reply) - 10))
    assert not tight.flags & dns.flags.TC
    assert tight.answer == full.answer
    assert len(tight.additional) < len(full.additional)


def test_names_are_compressed() -> None:
    wire = make_query("c1.zh.test", "A", edns=False).to_wire()
    query = parse_query(wire)
    reply = render(answer(query, TABLE.index), query, 512)
    # every owner and CNAME target points back into the message
    assert reply.count(b"\x02zh\x04test\x00") == 1
    assert dns.message.from_wire(reply).answer


def test_badvers_for_edns_version_1() -> None:
    wire = make_query("www.zh.test", "A").to_wire()
    query = parse_query(wire[:-5] + b"\x01" + wire[-4:])  # OPT TTL: version byte
    reply = dns.message.from_wire(render(answer(query, TABLE.index), query, 1232))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and not reply.answer

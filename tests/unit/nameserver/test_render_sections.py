"""Negative answers and referrals rendered from kept sections are the bytes a
fresh rendering gives, whichever query name of the same length came first.

The sections are kept per (query name length, first authority owner): a
name written there may point into the query name, which the kept bytes must
never get wrong. The names below are chosen to collide: the SOA's own names
(ns1.zh.test., hostmaster.zh.test.), glue owners (ns1.sub.zh.test.), and
names of equal length that share nothing with them.
"""

from __future__ import annotations

from itertools import permutations

import dns.message
import dns.rcode
import pytest

from nameserver import wire
from nameserver.answer import answer
from nameserver.wire import parse_query, render
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.zones import table

TABLE = table()
GROUPS = [
    # NXDOMAIN / NODATA below zh.test.: "hostmaster" and "ns1" label the SOA's names
    ["hostmaster.zh.test.", "hostmastex.zh.test.", "abcdefghij.zh.test.", "x.hostmastr.zh.test."],
    ["ns1.zh.test.", "ns9.zh.test.", "www.zh.test.", "a.b.zh.test."],
    ["mx.ns1.zh.test.", "ns1.ns1.zh.test.", "a1.bb1.zh.test.", "ns1.a.zh.test."],
    # referrals at sub.zh.test. (glue ns1.sub.zh.test.) and nods.zh.test.
    ["ns1.sub.zh.test.", "ns2.sub.zh.test.", "xyz.sub.zh.test."],
    ["a.ns1.sub.zh.test.", "a.ns2.sub.zh.test.", "b.xyz.sub.zh.test.", "ns1.ab.sub.zh.test."],
    ["ns1.nods.zh.test.", "www.nods.zh.test."],
    # RFC 4592's zone: NODATA at the wildcard and names of its SOA (hostmaster.example.)
    ["hostmaster.example.", "hostmasterz.example.", "a.hostmaster.example."],
]
QTYPES = ["A", "MX", "TXT", "NS", "DS"]
FORMATS = [{"edns": False}, {"edns": True}, {"edns": True, "want_dnssec": True}]


def _reply(qname: str, qtype: str, fmt: dict[str, bool], limit: int) -> bytes:
    query = parse_query(make_query(qname, qtype, **fmt).to_wire())
    return render(answer(query, TABLE.index), query, limit)


@pytest.mark.parametrize("group", GROUPS)
def test_kept_sections_equal_a_fresh_rendering(group: list[str]) -> None:
    for qtype in QTYPES:
        for fmt in FORMATS:
            for limit in (512, 1232):
                for first, second in permutations(group, 2):
                    for spelling in (second, second.upper()):
                        wire._SECTIONS.clear()
                        fresh = _reply(spelling, qtype, fmt, limit)
                        wire._SECTIONS.clear()
                        _reply(first, qtype, fmt, limit)  # keeps its sections, if any
                        kept = _reply(spelling, qtype, fmt, limit)
                        assert kept[2:] == fresh[2:], (first, spelling, qtype, fmt, limit)


def test_sections_are_kept_and_used() -> None:
    wire._SECTIONS.clear()
    first = _reply("nowhere1.zh.test.", "A", {"edns": True}, 1232)
    assert len(wire._SECTIONS) == 1
    second = _reply("nowhere2.zh.test.", "A", {"edns": True}, 1232)
    assert len(wire._SECTIONS) == 1
    reply = dns.message.from_wire(second)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert str(reply.question[0].name) == "nowhere2.zh.test."
    assert first[12:].replace(b"nowhere1", b"nowhere2") == second[12:]


def test_a_reply_that_does_not_fit_is_rendered_afresh() -> None:
    wire._SECTIONS.clear()
    _reply("nowhere1.zh.test.", "A", {"edns": True}, 1232)
    tight = _reply("nowhere2.zh.test.", "A", {"edns": True}, 60)
    assert tight[2] & 0x02  # TC: the general rendering truncated it

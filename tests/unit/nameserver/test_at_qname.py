"""answer_at_qname + render_at_qname give exactly what answer + render give."""

from __future__ import annotations

from typing import Any

import dns.rdatatype
import pytest

from nameserver.answer import answer, answer_at_qname
from nameserver.wire import parse_query, render, render_at_qname
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.zones import all_snapshots, table

TABLE = table()
TYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "SRV", "CNAME", "DS", "ANY", "DNAME", "CAA"]
FORMATS: list[dict[str, Any]] = [
    {"edns": False},
    {"edns": True},
    {"edns": True, "want_dnssec": True},
    {"edns": True, "payload": 512},
]


def _names() -> list[str]:
    names = {rr.name for snap in all_snapshots() for rr in snap.rrsets}
    names |= {"nowhere.zh.test.", "c.ent.zh.test.", "x.wild.zh.test.", "x.sub.zh.test."}
    return sorted(names)


@pytest.mark.parametrize("qname", _names())
def test_same_bytes_as_the_general_path(qname: str) -> None:
    spellings = [qname, qname.upper()]
    for spelling in spellings:
        for qtype in TYPES:
            for fmt in FORMATS:
                for limit in (512, 1232, 65535):
                    query = parse_query(make_query(spelling, qtype, **fmt).to_wire())
                    found = answer_at_qname(query, TABLE.index)
                    general = render(answer(query, TABLE.index), query, limit)
                    if found is None:
                        continue
                    direct = render_at_qname(query, found[1], limit)
                    if direct is None:  # too big: the general path truncates
                        assert general[2] & 0x02
                    else:
                        assert direct == general, (spelling, qtype, fmt, limit)


def test_it_covers_the_plain_answers() -> None:
    for qname, qtype in [("www.zh.test", "A"), ("mail.zh.test", "AAAA"), ("big.zh.test", "TXT"),
                         ("zh.test", "A"), ("www.child.zh.test", "A")]:
        query = parse_query(make_query(qname, qtype).to_wire())
        found = answer_at_qname(query, TABLE.index)
        assert found is not None, qname
        assert found[1].rdtype == dns.rdatatype.from_text(qtype)


@pytest.mark.parametrize(
    "qname,qtype",
    [
        ("zh.test", "MX"),  # additional section
        ("_sip._udp.zh.test", "SRV"),  # additional section
        ("c1.zh.test", "A"),  # CNAME
        ("foo.wild.zh.test", "A"),  # wildcard
        ("ns1.sub.zh.test", "A"),  # below a delegation
        ("x.inner.zh.test", "A"),  # fine, but DNAMEs in the zone: must be checked
        ("www.dn.zh.test", "A"),  # below a DNAME
        ("suspended.test", "A"),  # suspended zone
        ("sub.zh.test", "DS"),  # DS
        ("www.zh.test", "ANY"),
    ],
)
def test_it_steps_aside_for_everything_else(qname: str, qtype: str) -> None:
    query = parse_query(make_query(qname, qtype).to_wire())
    found = answer_at_qname(query, TABLE.index)
    if qname == "x.inner.zh.test":
        assert found is not None  # not under the DNAME: still a plain answer
    else:
        assert found is None

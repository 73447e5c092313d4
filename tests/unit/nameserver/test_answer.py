"""The answer engine on a fixture index: (qname, qtype) -> rcode, AA, sections."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from nameserver.index import ZoneTable
from tests.unit.nameserver.ask import ask, lines
from tests.unit.nameserver.zones import snapshot, table

TABLE = table()
SOA_ZH = "zh.test. 300 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"
SOA_CHILD = "child.zh.test. 600 SOA ns1.child.zh.test. hostmaster.zh.test. 3 7200 3600 1209600 600"
SOA_OTHER = "other.test. 900 SOA ns.other.test. hostmaster.other.test. 1 7200 3600 1209600 900"
SOA_EXAMPLE = "example. 3600 SOA ns.example.com. hostmaster.example. 1 7200 3600 1209600 3600"
SUB_NS = {"sub.zh.test. 3600 NS ns1.sub.zh.test.", "sub.zh.test. 3600 NS ns.other.test."}
SUBDEL_NS = {"subdel.example. 3600 NS ns.example.com.", "subdel.example. 3600 NS ns.example.net."}

NOERROR, NXDOMAIN, REFUSED = "NOERROR", "NXDOMAIN", "REFUSED"

# (qname, qtype) -> rcode, aa, answer, authority
CASES: list[tuple[str, str, str, bool, set[str], set[str]]] = [
    # plain answers, several records, apex data
    ("www.zh.test", "A", NOERROR, True,
     {"www.zh.test. 300 A 192.0.2.10", "www.zh.test. 300 A 192.0.2.11"}, set()),
    ("zh.test", "SOA", NOERROR, True,
     {"zh.test. 3600 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"}, set()),
    ("zh.test", "NS", NOERROR, True,
     {"zh.test. 3600 NS ns1.zh.test.", "zh.test. 3600 NS ns2.other.test."}, set()),
    # NODATA and NXDOMAIN: SOA with min(TTL, MINIMUM) (RFC 2308)
    ("www.zh.test", "MX", NOERROR, True, set(), {SOA_ZH}),
    ("nowhere.zh.test", "A", NXDOMAIN, True, set(), {SOA_ZH}),
    ("deep.nowhere.zh.test", "TXT", NXDOMAIN, True, set(), {SOA_ZH}),
    ("x.www.zh.test", "A", NXDOMAIN, True, set(), {SOA_ZH}),
    # empty non-terminals are NODATA
    ("c.ent.zh.test", "A", NOERROR, True, set(), {SOA_ZH}),
    ("ent.zh.test", "TXT", NOERROR, True, set(), {SOA_ZH}),
    ("x.c.ent.zh.test", "A", NXDOMAIN, True, set(), {SOA_ZH}),
    # CNAME chains in the zone, into another hosted zone, out, to NXDOMAIN, loops
    ("c1.zh.test", "A", NOERROR, True,
     {"c1.zh.test. 3600 CNAME c2.zh.test.", "c2.zh.test. 3600 CNAME www.zh.test.",
      "www.zh.test. 300 A 192.0.2.10", "www.zh.test. 300 A 192.0.2.11"}, set()),
    ("c1.zh.test", "CNAME", NOERROR, True, {"c1.zh.test. 3600 CNAME c2.zh.test."}, set()),
    ("c1.zh.test", "TXT", NOERROR, True,
     {"c1.zh.test. 3600 CNAME c2.zh.test.", "c2.zh.test. 3600 CNAME www.zh.test."}, {SOA_ZH}),
    ("cother.zh.test", "A", NOERROR, True,
     {"cother.zh.test. 3600 CNAME www.other.test.", "www.other.test. 3600 A 198.51.100.80"},
     set()),
    ("cout.zh.test", "A", NOERROR, True, {"cout.zh.test. 3600 CNAME www.example.net."}, set()),
    ("cnx.zh.test", "A", NXDOMAIN, True, {"cnx.zh.test. 3600 CNAME nowhere.zh.test."}, {SOA_ZH}),
    ("cloop1.zh.test", "A", NOERROR, True,
     {"cloop1.zh.test. 3600 CNAME cloop2.zh.test.", "cloop2.zh.test. 3600 CNAME cloop1.zh.test."},
     set()),
    ("cback.other.test", "A", NOERROR, True,
     {"cback.other.test. 3600 CNAME c1.zh.test.", "c1.zh.test. 3600 CNAME c2.zh.test.",
      "c2.zh.test. 3600 CNAME www.zh.test.", "www.zh.test. 300 A 192.0.2.10",
      "www.zh.test. 300 A 192.0.2.11"}, set()),
    # a CNAME into a delegation: the referral rides along in authority, AA stays
    ("cdeleg.zh.test", "A", NOERROR, True, {"cdeleg.zh.test. 3600 CNAME host.sub.zh.test."},
     SUB_NS),
    # wildcards
    ("foo.wild.zh.test", "A", NOERROR, True, {"foo.wild.zh.test. 3600 A 192.0.2.100"}, set()),
    ("a.b.wild.zh.test", "TXT", NOERROR, True, {'a.b.wild.zh.test. 3600 TXT "wild"'}, set()),
    ("foo.wild.zh.test", "MX", NOERROR, True, set(), {SOA_ZH}),
    ("exists.wild.zh.test", "TXT", NOERROR, True, set(), {SOA_ZH}),
    ("x.exists.wild.zh.test", "A", NXDOMAIN, True, set(), {SOA_ZH}),
    ("cwild.zh.test", "A", NOERROR, True,
     {"cwild.zh.test. 3600 CNAME x.wild.zh.test.", "x.wild.zh.test. 3600 A 192.0.2.100"}, set()),
    ("x.wc.zh.test", "A", NOERROR, True,
     {"x.wc.zh.test. 3600 CNAME www.zh.test.", "www.zh.test. 300 A 192.0.2.10",
      "www.zh.test. 300 A 192.0.2.11"}, set()),
    # delegations: referral with AA clear; DS from the parent side
    ("www.sub.zh.test", "A", NOERROR, False, set(), SUB_NS),
    ("sub.zh.test", "NS", NOERROR, False, set(), SUB_NS),
    ("sub.zh.test", "A", NOERROR, False, set(), SUB_NS),
    ("ns1.sub.zh.test", "A", NOERROR, False, set(), SUB_NS),
    ("sub.zh.test", "DS", NOERROR, True,
     {("sub.zh.test. 3600 DS 12345 13 2 "
      "ddc6e2b224d0fd821669202258386936fc9ce2899e215eec6322b95f8dd96d6a")}, set()),
    ("www.sub.zh.test", "DS", NOERROR, False, set(), SUB_NS),
    ("nods.zh.test", "DS", NOERROR, True, set(), {SOA_ZH}),
    # parent and child both hosted: the child answers; DS at the child apex from the parent
    ("child.zh.test", "SOA", NOERROR, True,
     {"child.zh.test. 1800 SOA ns1.child.zh.test. hostmaster.zh.test. 3 7200 3600 1209600 600"},
     set()),
    ("www.child.zh.test", "A", NOERROR, True, {"www.child.zh.test. 1800 A 203.0.113.10"}, set()),
    ("nowhere.child.zh.test", "A", NXDOMAIN, True, set(), {SOA_CHILD}),
    ("child.zh.test", "DS", NOERROR, True, set(), {SOA_ZH}),
    # DNAME: the DNAME, a synthesized CNAME, and the target when hosted
    ("www.dn.zh.test", "A", NOERROR, True,
     {"dn.zh.test. 3600 DNAME other.test.", "www.dn.zh.test. 3600 CNAME www.other.test.",
      "www.other.test. 3600 A 198.51.100.80"}, set()),
    ("nowhere.dn.zh.test", "A", NXDOMAIN, True,
     {"dn.zh.test. 3600 DNAME other.test.", "nowhere.dn.zh.test. 3600 CNAME nowhere.other.test."},
     {SOA_OTHER}),
    ("dn.zh.test", "A", NOERROR, True, {"dn.zh.test. 3600 A 192.0.2.140"}, set()),
    ("x.dnin.zh.test", "A", NOERROR, True,
     {"dnin.zh.test. 3600 DNAME inner.zh.test.", "x.dnin.zh.test. 3600 CNAME x.inner.zh.test.",
      "x.inner.zh.test. 3600 A 192.0.2.150"}, set()),
    ("x.dnin.zh.test", "CNAME", NOERROR, True,
     {"dnin.zh.test. 3600 DNAME inner.zh.test.", "x.dnin.zh.test. 3600 CNAME x.inner.zh.test."},
     set()),
    ("a" * 63 + ".dnlong.zh.test", "A", "YXDOMAIN", True,
     {"dnlong.zh.test. 3600 DNAME " + ".".join(c * 63 for c in "abc") + ".example.net."}, set()),
    # ANY (RFC 8482): one RRset, SOA at the apex
    ("zh.test", "ANY", NOERROR, True,
     {"zh.test. 3600 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"}, set()),
    ("mail.zh.test", "ANY", NOERROR, True, {"mail.zh.test. 3600 A 192.0.2.25"}, set()),
    ("c1.zh.test", "ANY", NOERROR, True, {"c1.zh.test. 3600 CNAME c2.zh.test."}, set()),
    ("nowhere.zh.test", "ANY", NXDOMAIN, True, set(), {SOA_ZH}),
    ("c.ent.zh.test", "ANY", NOERROR, True, set(), {SOA_ZH}),
    # names in no hosted zone, and suspended zones
    ("www.example.net", "A", REFUSED, False, set(), set()),
    (".", "NS", REFUSED, False, set(), set()),
    ("test", "SOA", REFUSED, False, set(), set()),
    ("suspended.test", "A", REFUSED, False, set(), set()),
    ("www.suspended.test", "A", REFUSED, False, set(), set()),
]


@pytest.mark.parametrize(
    "qname,qtype,rcode,aa,answer,authority", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_answer(
    qname: str, qtype: str, rcode: str, aa: bool, answer: set[str], authority: set[str]
) -> None:
    reply = ask(TABLE, qname, qtype)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert bool(reply.flags & dns.flags.AA) == aa
    assert lines(reply.answer) == answer
    assert lines(reply.authority) == authority


def test_rfc4592_section_2_2_1() -> None:
    """Every query RFC 4592 section 2.2.1 lists, with the answer it gives."""
    cases = [
        ("host3.example", "MX", NOERROR, {"host3.example. 3600 MX 10 host1.example."}, set()),
        ("host3.example", "A", NOERROR, set(), {SOA_EXAMPLE}),
        ("foo.bar.example", "TXT", NOERROR, {'foo.bar.example. 3600 TXT "this is a wildcard"'},
         set()),
        ("host1.example", "MX", NOERROR, set(), {SOA_EXAMPLE}),
        ("sub.*.example", "MX", NOERROR, set(), {SOA_EXAMPLE}),
        ("_telnet._tcp.host1.example", "SRV", NXDOMAIN, set(), {SOA_EXAMPLE}),
        ("host.subdel.example", "A", NOERROR, set(), SUBDEL_NS),
        ("ghost.*.example", "MX", NXDOMAIN, set(), {SOA_EXAMPLE}),
    ]
    for qname, qtype, rcode, answer, authority in cases:
        reply = ask(TABLE, qname, qtype)
        assert dns.rcode.to_text(reply.rcode()) == rcode, qname
        assert lines(reply.answer) == answer, qname
        assert lines(reply.authority) == authority, qname
        assert bool(reply.flags & dns.flags.AA) == (qname != "host.subdel.example"), qname


def test_additional_has_targets_and_glue() -> None:
    mx = ask(TABLE, "zh.test", "MX")
    assert lines(mx.additional) == {
        "mail.zh.test. 3600 A 192.0.2.25", "mail.zh.test. 3600 AAAA 2001:db8::25"
    }
    srv = ask(TABLE, "_sip._udp.zh.test", "SRV")
    assert "mail.zh.test. 3600 A 192.0.2.25" in lines(srv.additional)
    referral = ask(TABLE, "www.sub.zh.test", "A")
    assert lines(referral.additional) == {"ns1.sub.zh.test. 3600 A 192.0.2.54"}


def test_query_name_case_is_echoed() -> None:
    reply = ask(TABLE, "WwW.zH.TeSt", "A")
    assert reply.question[0].name.to_text() == "WwW.zH.TeSt."
    assert reply.answer[0].name.to_text() == "WwW.zH.TeSt."


def test_class_any_is_answered_without_aa() -> None:
    reply = ask(TABLE, "www.zh.test", "A", rdclass="ANY")
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert len(reply.answer[0]) == 2


def test_chaos_and_other_classes_are_refused() -> None:
    version = ask(TABLE, "version.bind", "TXT", rdclass="CH")
    assert version.rcode() == dns.rcode.REFUSED and len(version.question) == 1
    hesiod = ask(TABLE, "www.zh.test", "A", rdclass="HS")
    assert hesiod.rcode() == dns.rcode.REFUSED and len(hesiod.question) == 0


def _chain_table(links: int) -> ZoneTable:
    lines = ["$ORIGIN long.test.", "$TTL 300",
             "@ IN SOA ns.long.test. h.long.test. 1 7200 3600 1209600 60", "@ NS ns", "ns A 192.0.2.1"]
    lines += [f"c{i} CNAME c{i + 1}" for i in range(links)]
    lines.append(f"c{links} A 192.0.2.30")
    return ZoneTable.from_snapshots([snapshot("\n".join(lines), "long.test.")])


def test_long_cname_chains_are_followed_to_the_end_like_nsd() -> None:
    chain = _chain_table(40)
    full = ask(chain, "c0.long.test", "A", limit=65535)
    assert len(full.answer) == 41 and full.answer[-1].rdtype == dns.rdatatype.A
    cut = ask(chain, "c0.long.test", "A", edns=False)  # 512 octets: what fits, and TC
    assert cut.flags & dns.flags.TC
    assert 0 < len(cut.answer) < 41
    assert [r.name.to_text() for r in cut.answer] == [f"c{i}.long.test." for i in range(len(cut.answer))]


EDGE = """
$ORIGIN edge.test.
$TTL 300
@ IN SOA ns.edge.test. h.edge.test. 1 7200 3600 1209600 60
@ NS ns
ns A 192.0.2.1
* CNAME loopw.edge.test.
loopw CNAME x.edge.test.
*.w2 A 192.0.2.7
*.w2 TXT "w2"
d2 DNAME d3.edge.test.
d3 DNAME w2.edge.test.
"""
APEX_DNAME = """
$ORIGIN apexd.test.
$TTL 300
@ IN SOA ns.edge.test. h.edge.test. 1 7200 3600 1209600 60
@ NS ns.edge.test.
@ DNAME edge.test.
@ A 192.0.2.9
"""
EDGES = ZoneTable.from_snapshots([snapshot(EDGE, "edge.test."), snapshot(APEX_DNAME, "apexd.test.")])


def test_edge_cases_checked_against_nsd() -> None:
    # a wildcard CNAME whose target falls back into the wildcard: stops at the repeat
    loop = ask(EDGES, "foo.edge.test", "A")
    assert [r.name.to_text() for r in loop.answer] == [
        "foo.edge.test.", "loopw.edge.test.", "x.edge.test."
    ]
    # DNAME to a DNAME to a wildcard
    chained = ask(EDGES, "q.d2.edge.test", "A")
    assert lines(chained.answer) == {
        "d2.edge.test. 300 DNAME d3.edge.test.", "q.d2.edge.test. 300 CNAME q.d3.edge.test.",
        "d3.edge.test. 300 DNAME w2.edge.test.", "q.d3.edge.test. 300 CNAME q.w2.edge.test.",
        "q.w2.edge.test. 300 A 192.0.2.7",
    }
    # DNAME at a zone apex: the apex answers for itself, names below are redirected
    assert lines(ask(EDGES, "apexd.test", "A").answer) == {"apexd.test. 300 A 192.0.2.9"}
    below = ask(EDGES, "ns.apexd.test", "A")
    assert lines(below.answer) == {
        "apexd.test. 300 DNAME edge.test.", "ns.apexd.test. 300 CNAME ns.edge.test.",
        "ns.edge.test. 300 A 192.0.2.1",
    }
    # ANY at a wildcard: one RRset, owned by the query name
    any_reply = ask(EDGES, "a.w2.edge.test", "ANY")
    assert lines(any_reply.answer) == {"a.w2.edge.test. 300 A 192.0.2.7"}

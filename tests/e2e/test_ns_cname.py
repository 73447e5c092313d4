"""CNAME chains over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.ns_fixtures import NsServer, check_reply, serving


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

SOA_ZH = "zh.test. 300 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"
WWW = {"www.zh.test. 300 A 192.0.2.10", "www.zh.test. 300 A 192.0.2.11"}
C1 = {"c1.zh.test. 3600 CNAME c2.zh.test.", "c2.zh.test. 3600 CNAME www.zh.test."}

CASES = [
    ("c1.zh.test", "A", "NOERROR", C1 | WWW, set()),
    ("c1.zh.test", "CNAME", "NOERROR", {"c1.zh.test. 3600 CNAME c2.zh.test."}, set()),
    ("c1.zh.test", "MX", "NOERROR", C1, {SOA_ZH}),
    ("cnx.zh.test", "A", "NXDOMAIN", {"cnx.zh.test. 3600 CNAME nowhere.zh.test."}, {SOA_ZH}),
    ("cout.zh.test", "A", "NOERROR", {"cout.zh.test. 3600 CNAME www.example.net."}, set()),
    (
        "cother.zh.test",
        "A",
        "NOERROR",
        {"cother.zh.test. 3600 CNAME www.other.test.", "www.other.test. 3600 A 198.51.100.80"},
        set(),
    ),
    (
        "cback.other.test",
        "A",
        "NOERROR",
        {"cback.other.test. 3600 CNAME c1.zh.test."} | C1 | WWW,
        set(),
    ),
    (
        "cloop1.zh.test",
        "A",
        "NOERROR",
        {
            "cloop1.zh.test. 3600 CNAME cloop2.zh.test.",
            "cloop2.zh.test. 3600 CNAME cloop1.zh.test.",
        },
        set(),
    ),
    (
        "cwild.zh.test",
        "TXT",
        "NOERROR",
        {"cwild.zh.test. 3600 CNAME x.wild.zh.test.", 'x.wild.zh.test. 3600 TXT "wild"'},
        set(),
    ),
    (
        "cdeleg.zh.test",
        "A",
        "NOERROR",
        {"cdeleg.zh.test. 3600 CNAME host.sub.zh.test."},
        {"sub.zh.test. 3600 NS ns1.sub.zh.test.", "sub.zh.test. 3600 NS ns.other.test."},
    ),
]


@pytest.mark.parametrize(
    "qname,qtype,rcode,answer,authority", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_cname(
    ns: NsServer,
    qname: str,
    qtype: str,
    rcode: str,
    answer: set[str],
    authority: set[str],
) -> None:
    check_reply(ns.udp(qname, qtype), rcode, True, answer, authority)


def test_chain_is_in_order(ns: NsServer) -> None:
    reply = ns.udp("c1.zh.test", "A")
    names = [rrset.name.to_text() for rrset in reply.answer]
    assert names == ["c1.zh.test.", "c2.zh.test.", "www.zh.test."]

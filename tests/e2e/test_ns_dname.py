"""DNAME (RFC 6672): the DNAME, a synthesized CNAME, the target when hosted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.ns_fixtures import NsServer, check_reply, serving


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

SOA_ZH = "zh.test. 300 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"
SOA_OTHER = "other.test. 900 SOA ns.other.test. hostmaster.other.test. 1 7200 3600 1209600 900"
DN = "dn.zh.test. 3600 DNAME other.test."
LONG_TARGET = ".".join(c * 63 for c in "abc") + ".example.net."

CASES = [
    (
        "www.dn.zh.test",
        "A",
        "NOERROR",
        {DN, "www.dn.zh.test. 3600 CNAME www.other.test.", "www.other.test. 3600 A 198.51.100.80"},
        set(),
    ),
    (
        "nowhere.dn.zh.test",
        "A",
        "NXDOMAIN",
        {DN, "nowhere.dn.zh.test. 3600 CNAME nowhere.other.test."},
        {SOA_OTHER},
    ),
    ("dn.zh.test", "A", "NOERROR", {"dn.zh.test. 3600 A 192.0.2.140"}, set()),
    ("dn.zh.test", "DNAME", "NOERROR", {DN}, set()),
    ("dn.zh.test", "TXT", "NOERROR", set(), {SOA_ZH}),
    (
        "x.dnin.zh.test",
        "A",
        "NOERROR",
        {
            "dnin.zh.test. 3600 DNAME inner.zh.test.",
            "x.dnin.zh.test. 3600 CNAME x.inner.zh.test.",
            "x.inner.zh.test. 3600 A 192.0.2.150",
        },
        set(),
    ),
    (
        "a.b.dnin.zh.test",
        "A",
        "NXDOMAIN",
        {
            "dnin.zh.test. 3600 DNAME inner.zh.test.",
            "a.b.dnin.zh.test. 3600 CNAME a.b.inner.zh.test.",
        },
        {SOA_ZH},
    ),
    (
        "a" * 63 + ".dnlong.zh.test",
        "A",
        "YXDOMAIN",
        {"dnlong.zh.test. 3600 DNAME " + LONG_TARGET},
        set(),
    ),
]


@pytest.mark.parametrize(
    "qname,qtype,rcode,answer,authority", CASES, ids=[f"{c[0][:20]}/{c[1]}" for c in CASES]
)
def test_dname(
    ns: NsServer,
    qname: str,
    qtype: str,
    rcode: str,
    answer: set[str],
    authority: set[str],
) -> None:
    check_reply(ns.udp(qname, qtype), rcode, True, answer, authority)


def test_synthesized_cname_owner_keeps_query_case(ns: NsServer) -> None:
    reply = ns.udp("WWW.Dn.zh.test", "A")
    cname = next(r for r in reply.answer if r.rdtype == 5)
    assert cname.name.to_text() == "WWW.Dn.zh.test."

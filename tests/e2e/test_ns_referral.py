"""Delegations: referrals, glue, DS at the parent, parent and child both hosted."""

from __future__ import annotations

from collections.abc import Iterator

import dns.flags
import dns.rcode
import pytest

from tests.e2e.ns_fixtures import NsServer, check_reply, serving
from tests.unit.nameserver.ask import lines


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

SOA_ZH = "zh.test. 300 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"
SUB_NS = {"sub.zh.test. 3600 NS ns1.sub.zh.test.", "sub.zh.test. 3600 NS ns.other.test."}
SUB_GLUE = {"ns1.sub.zh.test. 3600 A 192.0.2.54"}
DS = (
    "sub.zh.test. 3600 DS 12345 13 2 "
    "ddc6e2b224d0fd821669202258386936fc9ce2899e215eec6322b95f8dd96d6a"
)

# (qname, qtype) -> rcode, aa, answer, authority, additional
CASES = [
    ("www.sub.zh.test", "A", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("sub.zh.test", "NS", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("sub.zh.test", "SOA", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("ns1.sub.zh.test", "A", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("deep.www.sub.zh.test", "MX", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("sub.zh.test", "DS", "NOERROR", True, {DS}, set(), set()),
    ("www.sub.zh.test", "DS", "NOERROR", False, set(), SUB_NS, SUB_GLUE),
    ("nods.zh.test", "DS", "NOERROR", True, set(), {SOA_ZH}, set()),
    (
        "x.nods.zh.test",
        "A",
        "NOERROR",
        False,
        set(),
        {"nods.zh.test. 3600 NS ns.example.net."},
        set(),
    ),
    # child zone hosted too: it answers for itself, the parent for DS
    (
        "www.child.zh.test",
        "A",
        "NOERROR",
        True,
        {"www.child.zh.test. 1800 A 203.0.113.10"},
        set(),
        set(),
    ),
    (
        "child.zh.test",
        "NS",
        "NOERROR",
        True,
        {"child.zh.test. 1800 NS ns1.child.zh.test."},
        set(),
        {"ns1.child.zh.test. 1800 A 192.0.2.55"},
    ),
    ("child.zh.test", "DS", "NOERROR", True, set(), {SOA_ZH}, set()),
]


@pytest.mark.parametrize(
    "qname,qtype,rcode,aa,answer,authority,additional", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_referral(
    ns: NsServer,
    qname: str,
    qtype: str,
    rcode: str,
    aa: bool,
    answer: set[str],
    authority: set[str],
    additional: set[str],
) -> None:
    check_reply(ns.udp(qname, qtype), rcode, aa, answer, authority, additional)


def test_referral_over_tcp_is_the_same(ns: NsServer) -> None:
    reply = ns.tcp("www.sub.zh.test", "A")
    assert not reply.flags & dns.flags.AA
    assert lines(reply.authority) == SUB_NS and lines(reply.additional) == SUB_GLUE

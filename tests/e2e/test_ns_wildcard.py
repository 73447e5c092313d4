"""Wildcards over real sockets, RFC 4592 section 2.2.1 first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.ns_fixtures import NsServer, check_reply, serving


@pytest.fixture(scope="module")
def ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server

SOA_EXAMPLE = "example. 3600 SOA ns.example.com. hostmaster.example. 1 7200 3600 1209600 3600"
SOA_ZH = "zh.test. 300 SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300"
SUBDEL = {"subdel.example. 3600 NS ns.example.com.", "subdel.example. 3600 NS ns.example.net."}

# (qname, qtype) -> rcode, aa, answer, authority
CASES = [
    # RFC 4592 section 2.2.1: the example zone and the queries it lists
    ("host3.example", "MX", "NOERROR", True, {"host3.example. 3600 MX 10 host1.example."}, set()),
    ("host3.example", "A", "NOERROR", True, set(), {SOA_EXAMPLE}),
    (
        "foo.bar.example",
        "TXT",
        "NOERROR",
        True,
        {'foo.bar.example. 3600 TXT "this is a wildcard"'},
        set(),
    ),
    ("host1.example", "MX", "NOERROR", True, set(), {SOA_EXAMPLE}),
    ("sub.*.example", "MX", "NOERROR", True, set(), {SOA_EXAMPLE}),
    ("_telnet._tcp.host1.example", "SRV", "NXDOMAIN", True, set(), {SOA_EXAMPLE}),
    ("host.subdel.example", "A", "NOERROR", False, set(), SUBDEL),
    ("ghost.*.example", "MX", "NXDOMAIN", True, set(), {SOA_EXAMPLE}),
    # the wildcard owner itself, and names that exist beside it
    ("*.example", "TXT", "NOERROR", True, {'*.example. 3600 TXT "this is a wildcard"'}, set()),
    (
        "sub.*.example",
        "TXT",
        "NOERROR",
        True,
        {'sub.*.example. 3600 TXT "this is not a wildcard"'},
        set(),
    ),
    ("_tcp.host1.example", "SRV", "NOERROR", True, set(), {SOA_EXAMPLE}),
    # wildcards deeper in a zone, several labels matched, CNAME wildcards
    ("a.b.c.wild.zh.test", "A", "NOERROR", True, {"a.b.c.wild.zh.test. 3600 A 192.0.2.100"}, set()),
    ("FOO.Wild.zh.test", "TXT", "NOERROR", True, {'foo.wild.zh.test. 3600 TXT "wild"'}, set()),
    ("x.exists.wild.zh.test", "A", "NXDOMAIN", True, set(), {SOA_ZH}),
    ("x.wc.zh.test", "AAAA", "NOERROR", True, {"x.wc.zh.test. 3600 CNAME www.zh.test."}, {SOA_ZH}),
]


@pytest.mark.parametrize(
    "qname,qtype,rcode,aa,answer,authority", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_wildcard(
    ns: NsServer,
    qname: str,
    qtype: str,
    rcode: str,
    aa: bool,
    answer: set[str],
    authority: set[str],
) -> None:
    check_reply(ns.udp(qname, qtype), rcode, aa, answer, authority)


def test_synthesized_owner_keeps_the_query_case(ns: NsServer) -> None:
    reply = ns.udp("HoSt3.ExAmPlE", "MX")
    assert reply.answer[0].name.to_text() == "HoSt3.ExAmPlE."

"""Zone-level rules: check_zone() on whole zones, check_edit() on single edits."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import pytest

from storage.dnsdata.errors import Problem
from storage.dnsdata.rrsets import RRsetData, RRsetKey, parse_rrset
from storage.dnsdata.rules import DnsRules
from storage.dnsdata.zonecheck import check_edit, check_zone

ORIGIN = dns.name.from_text("example.com.")
T = dns.rdatatype.RdataType

DATA = {
    "A": "192.0.2.1",
    "AAAA": "2001:db8::1",
    "CNAME": "target.example.net.",
    "DNAME": "example.net.",
    "NS": "ns.example.net.",
    "MX": "10 mail.example.net.",
    "TXT": '"x"',
    "DS": "12345 13 2 " + "ef" * 32,
    "RRSIG": "A 13 3 300 20300101000000 20200101000000 1 example.com. AAAA",
    "NSEC": "z.example.com. A RRSIG NSEC",
    "SOA": "ns1 hostmaster 1 2 3 4 5",
}


def rr(owner: str, rdtype: str) -> RRsetData:
    return parse_rrset(ORIGIN, owner, rdtype, 300, [DATA[rdtype]], DnsRules(allow_soa=True))


def zone(*pairs: str) -> list[RRsetData]:
    return [rr(*pair.split()) for pair in pairs]


def messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


GOOD_ZONES = [
    ["@ NS", "@ MX", "@ A", "www A", "www AAAA", "alias CNAME"],
    ["alias CNAME", "alias RRSIG", "alias NSEC"],  # RFC 4035 section 2.5
    ["@ DNAME", "@ NS", "@ A"],  # DNAME at the apex with NS: RFC 6672 section 2.3
    ["sub NS", "sub DS", "ns.sub A"],  # a delegation with glue
    ["d DNAME", "d A", "other.x A"],  # data at the DNAME owner itself is fine
    ["*.w CNAME", "w A"],
]


@pytest.mark.parametrize("pairs", GOOD_ZONES)
def test_good_zones(pairs: list[str]) -> None:
    assert check_zone(ORIGIN, zone(*pairs)) == []


BAD_ZONES = [
    (["alias CNAME", "alias A", "alias MX"], [
        ("alias.example.com. CNAME: a CNAME cannot share its name with other data (A, MX) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
    ]),
    (["d CNAME", "d DNAME"], [
        ("d.example.com. CNAME: a CNAME cannot share its name with other data (DNAME) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
    ]),
    (["@ CNAME", "@ NS"], ["example.com. CNAME: a CNAME is not allowed at the zone apex"]),
    (["@ CNAME"], ["example.com. CNAME: a CNAME is not allowed at the zone apex"]),
    (["www SOA"], ["www.example.com. SOA: an SOA is only allowed at the zone apex"]),
    (["@ DS"], ["example.com. DS: DS records belong in the parent zone, not at the apex"]),
    (["sub NS", "sub DNAME"], [
        ("sub.example.com. DNAME: DNAME and NS at one name only at the zone apex "
        "(RFC 6672 section 2.3)"),
    ]),
    (["d DNAME", "x.d A", "y.x.d TXT"], [
        ("x.d.example.com. A: no data is allowed below the DNAME at d.example.com. "
        "(RFC 6672 section 2.4)"),
        ("y.x.d.example.com. TXT: no data is allowed below the DNAME at d.example.com. "
        "(RFC 6672 section 2.4)"),
    ]),
    (["@ DNAME", "www A"], [
        ("www.example.com. A: no data is allowed below the DNAME at example.com. "
        "(RFC 6672 section 2.4)"),
    ]),
    (["www A", "www A"], ["www.example.com. A: more than one RRset of this type"]),
]


@pytest.mark.parametrize(("pairs", "expected"), BAD_ZONES)
def test_bad_zones(pairs: list[str], expected: list[str]) -> None:
    assert messages(check_zone(ORIGIN, zone(*pairs))) == expected


def test_outside_the_zone() -> None:
    other = parse_rrset(dns.name.from_text("example.org."), "www", "A", 300, ["192.0.2.1"])
    assert messages(check_zone(ORIGIN, [other])) == [
        "www.example.org. A: outside the zone example.com."
    ]


def test_every_problem_is_reported() -> None:
    problems = check_zone(
        ORIGIN, zone("@ CNAME", "a CNAME", "a A", "s SOA", "@ DS"), require_apex_ns=True
    )
    assert len(problems) == 5
    assert all(p.line is None for p in problems)


def test_require_apex_ns() -> None:
    assert messages(check_zone(ORIGIN, zone("www A"), require_apex_ns=True)) == [
        "example.com. NS: the zone apex needs NS records"
    ]
    assert check_zone(ORIGIN, zone("@ NS"), require_apex_ns=True) == []
    assert check_zone(ORIGIN, zone("www A")) == []


def keys(*pairs: str) -> set[RRsetKey]:
    return {rr(*pair.split()).key for pair in pairs}


EXISTING = keys("@ NS", "@ MX", "www A", "alias CNAME", "d DNAME", "sub NS")

EDITS: list[tuple[list[str], list[str], list[str]]] = [
    # (put, delete, expected problems)
    (["www AAAA"], [], []),
    (["new A"], [], []),
    (["www TXT"], ["www A"], []),
    (["alias CNAME"], [], []),  # replacing the CNAME itself
    (["www CNAME"], ["www A"], []),  # the A goes in the same edit
    (["www CNAME"], [], [
        ("www.example.com. CNAME: a CNAME cannot share its name with other data (A) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
    ]),
    (["alias TXT"], [], [
        ("alias.example.com. CNAME: a CNAME cannot share its name with other data (TXT) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
    ]),
    (["@ CNAME"], [], ["example.com. CNAME: a CNAME is not allowed at the zone apex"]),
    (["@ DS"], [], ["example.com. DS: DS records belong in the parent zone, not at the apex"]),
    (["x.d A"], [], [
        ("x.d.example.com. A: no data is allowed below the DNAME at d.example.com. "
        "(RFC 6672 section 2.4)"),
    ]),
    (["x.d A"], ["d DNAME"], []),
    (["www DNAME"], [], []),
    (["sub DNAME"], [], [
        ("sub.example.com. DNAME: DNAME and NS at one name only at the zone apex "
        "(RFC 6672 section 2.3)"),
    ]),
    (["www A", "www A"], [], ["www.example.com. A: set twice in one edit"]),
]


@pytest.mark.parametrize(("put", "delete", "expected"), EDITS)
def test_check_edit(put: list[str], delete: list[str], expected: list[str]) -> None:
    problems = check_edit(
        ORIGIN, EXISTING, put=zone(*put), delete=[(k[0], k[1]) for k in keys(*delete)]
    )
    assert messages(problems) == expected


def test_check_edit_a_new_dname_above_existing_names() -> None:
    existing = keys("@ NS", "a.w A", "b.w TXT")
    problems = check_edit(ORIGIN, existing, put=zone("w DNAME"))
    assert sorted(messages(problems)) == [
        ("a.w.example.com.: no data is allowed below the DNAME at w.example.com. "
        "(RFC 6672 section 2.4)"),
        ("b.w.example.com.: no data is allowed below the DNAME at w.example.com. "
        "(RFC 6672 section 2.4)"),
    ]


def test_check_edit_judges_only_what_it_touches() -> None:
    broken = keys("@ NS", "alias CNAME", "alias A")  # an old import, say
    assert check_edit(ORIGIN, broken, put=zone("www A")) == []
    assert len(check_zone(ORIGIN, zone("@ NS", "alias CNAME", "alias A"))) == 1


def test_check_edit_apex_ns() -> None:
    ns = keys("@ NS")
    assert messages(check_edit(ORIGIN, ns, delete=list(ns), require_apex_ns=True)) == [
        "example.com. NS: the zone apex needs NS records"
    ]
    assert check_edit(ORIGIN, ns, delete=list(ns)) == []
    assert check_edit(ORIGIN, ns, put=zone("www A"), require_apex_ns=True) == []


def test_check_edit_accepts_a_mapping_and_odd_case() -> None:
    rrsets = {r.key: r for r in zone("@ NS", "www A")}
    upper = (dns.name.from_text("WWW.EXAMPLE.COM."), T.A)
    assert check_edit(ORIGIN, rrsets, put=zone("www CNAME"), delete=[upper]) == []
    assert len(check_edit(ORIGIN, rrsets, put=zone("www CNAME"))) == 1
    as_ints = [(name, int(rdtype)) for name, rdtype in rrsets]  # as a store may hold them
    assert len(check_edit(ORIGIN, as_ints, put=zone("www CNAME"))) == 1
    assert check_edit(ORIGIN, as_ints, put=zone("www CNAME"), delete=[(upper[0], 1)]) == []


def test_check_edit_outside_the_zone() -> None:
    other = parse_rrset(dns.name.from_text("example.org."), "www", "A", 300, ["192.0.2.1"])
    assert messages(check_edit(ORIGIN, set(), put=[other])) == [
        "www.example.org. A: outside the zone example.com."
    ]

"""Master files: syntax, every problem with its line, zone rules, round trip."""

from __future__ import annotations

import textwrap

import dns.name
import dns.rdatatype
import dns.zone
import pytest

from storage.dnsdata.errors import InvalidZone
from storage.dnsdata.masterfile import ZoneContent, from_text, to_text
from storage.dnsdata.names import zone_origin
from storage.dnsdata.rrsets import RRsetData
from storage.dnsdata.rules import API_RULES

ORIGIN = zone_origin("example.com")
T = dns.rdatatype.RdataType
SOA = "@ IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 300\n"


def parse(text: str, **kwargs: object) -> ZoneContent:
    return from_text(textwrap.dedent(text), ORIGIN, **kwargs)  # type: ignore[arg-type]


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(InvalidZone) as info:
        parse(text, **kwargs)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def find(content: ZoneContent, owner: str, rdtype: str) -> RRsetData:
    name = dns.name.from_text(owner, ORIGIN)
    for rrset in content.rrsets:
        if rrset.key == (name, T.from_text(rdtype)):
            return rrset
    raise AssertionError(f"no {owner} {rdtype}")


def test_syntax_features() -> None:
    content = parse(
        """\
        $ORIGIN example.com.
        $TTL 1h
        @ IN SOA ns1 hostmaster.example.com. ( 2024010101 ; serial
                2h 1h 2w 5m )  ; times with units
        \tIN\tNS\tns1
                NS ns2.example.net.
        @ 300 IN MX 10 mail
        @ IN 300 MX 20 mail2
        www 1D A 192.0.2.2
        WWW.example.com. a 192.0.2.3
        txt TXT "semi;colon" "quote\\"d" "back\\\\slash" ( "multi"
           "line" ) ; comment with "quote and ( paren
        ; a comment line

        $ORIGIN sub
        host A 192.0.2.4
        $ORIGIN example.com.
        gen TYPE65280 \\# 4 0a000001
        gen CLASS1 A \\# 4 0a000002
        """
    )
    assert content.origin == ORIGIN
    assert content.soa is not None
    assert (content.soa.serial, content.soa.refresh, content.soa.expire) == (2024010101, 7200, 1209600)
    assert content.soa.minimum == 300
    assert content.soa_ttl == 3600
    assert find(content, "@", "NS").rdata_texts() == ("ns1.example.com.", "ns2.example.net.")
    mx = find(content, "@", "MX")
    assert (mx.ttl, mx.rdata_texts()) == (300, ("10 mail.example.com.", "20 mail2.example.com."))
    www = find(content, "www", "A")
    assert (www.ttl, www.rdata_texts()) == (86400, ("192.0.2.2", "192.0.2.3"))
    assert find(content, "txt", "TXT").rdata_texts() == (
        '"semi;colon" "quote\\"d" "back\\\\slash" "multi" "line"',
    )
    assert find(content, "host.sub", "A").ttl == 3600
    assert find(content, "gen", "TYPE65280").rdata_texts() == ("\\# 4 0a000001",)
    assert find(content, "gen", "A").rdata_texts() == ("10.0.0.2",)
    assert all(r.rdtype != T.SOA for r in content.rrsets)


def test_crlf_and_tabs() -> None:
    content = from_text("$TTL 60\r\n@\tNS\tns1\r\nns1\tA\t192.0.2.1\r\n", ORIGIN)
    assert [r.rdtype for r in content.rrsets] == [T.NS, T.A]


def test_byte_order_mark_is_ignored() -> None:
    content = from_text("\ufeff$TTL 60\n@ NS ns1\n", ORIGIN)
    assert [r.rdtype for r in content.rrsets] == [T.NS]


def test_origin_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        from_text("", dns.name.from_text("example", None))


def test_ttl_defaults() -> None:
    """$TTL wins; without it the last stated TTL; without both the SOA minimum."""
    content = parse(
        """\
        @ SOA ns1 hostmaster 1 2 3 4 300
        a A 192.0.2.1
        b 600 A 192.0.2.1
        c A 192.0.2.1
        $TTL 900
        d A 192.0.2.1
        e 60 A 192.0.2.1
        f A 192.0.2.1
        """
    )
    assert content.soa_ttl == 300
    ttls = {r.name.labels[0].decode(): r.ttl for r in content.rrsets}
    assert ttls == {"a": 300, "b": 600, "c": 600, "d": 900, "e": 60, "f": 900}


def test_rrset_with_different_ttls_takes_the_first() -> None:
    content = parse("$TTL 60\nwww 300 A 192.0.2.1\nwww 100 A 192.0.2.2\nwww A 192.0.2.3\n")
    assert find(content, "www", "A").ttl == 300
    assert len(find(content, "www", "A").rdatas) == 3


def test_duplicates_are_merged() -> None:
    content = parse("$TTL 60\nwww A 192.0.2.1\nwww A 192.0.2.1\nWWW A 192.0.2.1\n")
    assert len(content.rrsets) == 1
    assert len(content.rrsets[0].rdatas) == 1


def test_errors_on_several_lines_are_all_reported() -> None:
    assert problems(
        """\
        $TTL 60
        @ NS ns1
        www A 1.2.3
        ok A 192.0.2.1
        mail MX ten mail
        x A 192.0.2.1
        y AAAA 2001:db8::1
        z TXT "ok"
        bad 300 IN A 300.1.1.1
        """
    ) == [
        "line 3: www.example.com. A: invalid IPv4 address '1.2.3'",
        "line 5: mail.example.com. MX: invalid MX data 'ten mail': expecting an integer",
        "line 9: bad.example.com. A: invalid IPv4 address '300.1.1.1'",
    ]


BAD_LINES = [
    ("$INCLUDE other.zone", "line 2: $INCLUDE is not allowed"),
    ("$include /etc/passwd", "line 2: $INCLUDE is not allowed"),
    ('$INCLUDE "other zone" example.com.', "line 2: $INCLUDE is not allowed"),
    ("$GENERATE 1-100 h$ A 10.0.0.$",
     "line 2: $GENERATE is not supported: expand it first (e.g. named-checkzone -D)"),
    ("$FOO bar", "line 2: unknown directive '$FOO'"),
    ("$ORIGIN", "line 2: $ORIGIN takes exactly one name"),
    ("$ORIGIN a..b", "line 2: invalid $ORIGIN: empty label (leading dot or '..')"),
    ("$TTL forever", "line 2: invalid $TTL 'forever'"),
    ("$TTL 1 2", "line 2: $TTL takes exactly one TTL"),
    ("www.other.org. A 192.0.2.1", "line 2: www.other.org.: not inside the zone example.com."),
    ("www CH A 192.0.2.1", "line 2: www.example.com.: class CH is not supported, only IN"),
    ("www 60 HS A 192.0.2.1", "line 2: www.example.com.: class HS is not supported, only IN"),
    ("www CLASS3 A 192.0.2.1", "line 2: www.example.com.: class CLASS3 is not supported, only IN"),
    ("www FOO bar", "line 2: www.example.com.: unknown record type 'FOO'"),
    ("www TYPE70000 x", "line 2: www.example.com.: unknown record type 'TYPE70000'"),
    ("www CLASS70000 A 192.0.2.1",
     "line 2: www.example.com.: class CLASS70000 is not supported, only IN"),
    ("www 60", "line 2: www.example.com.: the record type is missing"),
    ("www", "line 2: www.example.com.: the record type is missing"),
    ("www 99999999999 A 192.0.2.1", "line 2: www.example.com.: invalid TTL '99999999999'"),
    ("www A", "line 2: www.example.com. A: invalid IPv4 address ''"),
    ("www MX 10", "line 2: www.example.com. MX: invalid MX data '10': a field is missing"),
    ('www TXT "open', "line 2: a quoted string is not closed on its line"),
    ("www TXT ( \"a\"", "line 2: '(' is never closed"),
    ("www A 192.0.2.1 )", "line 2: ')' without a matching '('"),
    ("a..b A 192.0.2.1", "line 2: a..b: empty label (leading dot or '..')"),
    ("x" * 64 + " A 192.0.2.1", "line 2: " + "x" * 64 + ": label '" + "x" * 64
     + "' is 64 octets long (at most 63)"),
    ("www ANY 192.0.2.1", "line 2: www.example.com.: class ANY is not supported, only IN"),
    ("www AXFR x", "line 2: www.example.com. AXFR: AXFR is a meta type, not zone data"),
    ("www SOA ns1 hostmaster 1 2 3 4 5",
     "line 2: www.example.com. SOA: an SOA is only allowed at the zone apex"),
    ("www 3000000000 A 192.0.2.1",
     "line 2: www.example.com. A: TTL 3000000000 is outside 0-2147483647 seconds"),
    ("alias CNAME a\nalias CNAME b",
     "line 2: alias.example.com. CNAME: a CNAME RRset holds exactly one record, got 2"),
    ("a\\ b A 1.2.3", "line 2: a\\032b.example.com. A: invalid IPv4 address '1.2.3'"),
    ("www TXT \"" + "x" * 256 + '"',
     "line 2: www.example.com. TXT: invalid TXT data '\"" + "x" * 76
     + "...': a string is longer than 255 octets; split it into several quoted strings"),
    ("www HTTPS ( 1 .\n  foo=bar )",
     "line 2: www.example.com. HTTPS: invalid HTTPS data '1 . foo=bar': unknown SVCB ParamKey"),
]


@pytest.mark.parametrize(("line", "expected"), BAD_LINES)
def test_bad_lines(line: str, expected: str) -> None:
    assert problems(f"$TTL 60\n{line}\nok A 192.0.2.1\n") == [expected]


def test_blank_owner_needs_a_previous_record() -> None:
    assert problems("$TTL 60\n  A 192.0.2.1\n") == [
        "line 2: a blank owner needs a previous record"
    ]


def test_blank_owner_after_a_refused_owner_is_not_reported_again() -> None:
    assert problems("$TTL 60\nx.other.org. A 192.0.2.1\n  AAAA ::1\n  TXT x\nok A 192.0.2.1\n") == [
        "line 2: x.other.org.: not inside the zone example.com."
    ]


def test_missing_ttl() -> None:
    assert problems("www A 192.0.2.1\n") == [
        "line 1: www.example.com. A: no TTL: give one or add a $TTL line first"
    ]


def test_multiline_record_reports_its_first_line() -> None:
    assert problems('$TTL 60\n\nwww TXT ( "a"\n  "b" )\nmx MX (\n 10\n ; note\n )\n') == [
        "line 5: mx.example.com. MX: invalid MX data '10': a field is missing"
    ]


def test_zone_rules_with_lines() -> None:
    assert problems(
        "$TTL 60\n@ NS ns1\nalias CNAME www\nwww A 192.0.2.1\nalias A 192.0.2.1\n@ CNAME x\n"
    ) == [
        ("line 3: alias.example.com. CNAME: a CNAME cannot share its name with other data (A) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
        "line 6: example.com. CNAME: a CNAME is not allowed at the zone apex",
    ]


def test_syntax_and_zone_problems_together() -> None:
    assert problems("$TTL 60\nalias CNAME www\nalias A 192.0.2.1\nbad A x\n") == [
        ("line 2: alias.example.com. CNAME: a CNAME cannot share its name with other data (A) "
        "(RFC 1034 section 3.6.2, RFC 2181 section 10.1)"),
        "line 4: bad.example.com. A: invalid IPv4 address 'x'",
    ]


def test_soa_rules() -> None:
    assert problems(SOA + "@ SOA ns1 hostmaster 2 7200 3600 1209600 300\n") == [
        "line 2: example.com. SOA: more than one SOA record"
    ]
    same = parse(SOA + SOA + "@ 60 NS ns1\n")
    assert same.soa is not None
    assert problems("$TTL 60\n@ NS ns1\n", require_soa=True) == [
        "example.com. SOA: the zone has no SOA record"
    ]
    none = parse("$TTL 60\n@ NS ns1\n")
    assert (none.soa, none.soa_ttl) == (None, None)


def test_api_rules_on_a_file() -> None:
    assert problems("$TTL 30\na\\032b A 192.0.2.1\nx RRSIG A 13 3 300 20300101000000 "
                    "20200101000000 1 example.com. AAAA\n", rules=API_RULES) == [
        "line 2: a\\032b: contains a backslash (escapes are not allowed)",
        "line 3: x.example.com. RRSIG: RRSIG records are produced by signing and cannot be set",
    ]
    assert problems("$TTL 30\nwww A 192.0.2.1\n", rules=API_RULES) == [
        "line 2: www.example.com. A: TTL 30 is outside 60-604800 seconds"
    ]


def test_hostile_input_never_crashes() -> None:
    nasty = "\x00\x01 A\n(((\n\"\n\\\n$ORIGIN \\\n@ TXT \"\\999\"\n" + "x " * 1000 + "\n"
    with pytest.raises(InvalidZone) as info:
        from_text(nasty, ORIGIN)
    assert info.value.problems


def test_round_trip(round_trip_zone: str) -> None:
    content = from_text(round_trip_zone, ORIGIN)
    exported = to_text(content)
    again = from_text(exported, ORIGIN)
    assert again == content
    assert to_text(again) == exported
    assert exported.startswith("$ORIGIN example.com.\n@\t3600\tIN\tSOA\t")
    lines = exported.splitlines()
    assert lines[2] == "@\t3600\tIN\tNS\tns1"  # apex first, SOA then NS (type order)
    assert "xn--bcher-kva\t3600\tIN\tA\t192.0.2.10" in lines
    assert "a\\032b\t3600\tIN\tA\t192.0.2.11" in lines
    dkim = find(content, "dkim._domainkey", "TXT")
    strings = dkim.rdatas[0].strings  # type: ignore[attr-defined]
    assert [len(s) for s in strings] == [255, 100]
    types = {r.rdtype for r in content.rrsets}
    assert {T.NS, T.MX, T.CAA, T.TXT, T.A, T.AAAA, T.CNAME, T.SRV, T.TLSA, T.SSHFP,
            T.NAPTR, T.DS, T.HTTPS, T.SVCB, T.PTR, T.DNAME, T.LOC, T.make(65280)} <= types


def test_export_is_in_canonical_order(round_trip_zone: str) -> None:
    content = from_text(round_trip_zone, ORIGIN)
    exported = to_text(content)
    owners = [line.split("\t")[0] for line in exported.splitlines()[1:]]
    names = [dns.name.from_text(o, ORIGIN) for o in owners]
    assert names == sorted(names)  # dnspython's Name order is RFC 4034 6.1's


def test_same_data_as_dnspython_zone_reader(round_trip_zone: str) -> None:
    """On a valid file, our reader and dnspython's agree on every RRset."""
    text = round_trip_zone
    content = from_text(text, ORIGIN)
    zone = dns.zone.from_text(text, ORIGIN, relativize=False, check_origin=False)
    theirs = {
        (name, rds.rdtype): (rds.ttl, set(rds))
        for name, node in zone.nodes.items()
        for rds in node.rdatasets
        if rds.rdtype != T.SOA
    }
    mine = {r.key: (r.ttl, set(r.rdatas)) for r in content.rrsets}
    assert mine == theirs


@pytest.mark.parametrize("rdtype", ["OPENPGPKEY", "DHCID", "APL", "TYPE65280"])
def test_empty_data_round_trips(rdtype: str) -> None:
    content = parse(f"$TTL 60\nx {rdtype} \\# 0\n")
    exported = to_text(content)
    assert from_text(exported, ORIGIN) == content
    assert from_text(f"$TTL 60\nx {rdtype} {content.rrsets[0].rdata_texts()[0]}\n", ORIGIN) == (
        content
    )


def test_to_text_of_an_empty_zone() -> None:
    empty = ZoneContent(ORIGIN, None, None, ())
    assert to_text(empty) == "$ORIGIN example.com.\n"
    assert from_text(to_text(empty), ORIGIN) == empty

"""RRset rules: parse_rrset() and rrset_from_rdatas(), good and bad, every reason."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from storage.dnsdata.errors import InvalidRRset
from storage.dnsdata.rrsets import (
    MAX_RRSET_OCTETS,
    RRsetData,
    parse_rdatatype,
    parse_rrset,
    rrset_from_rdatas,
)
from storage.dnsdata.rules import API_RULES, IMPORT_RULES, DnsRules

ORIGIN = dns.name.from_text("example.com.")
T = dns.rdatatype.RdataType

# (type, rdata texts, canonical texts) accepted by both rule sets.
GOOD = [
    ("A", ["192.0.2.1"], ("192.0.2.1",)),
    ("A", ["192.0.2.2", "192.0.2.1", "192.0.2.2"], ("192.0.2.1", "192.0.2.2")),
    ("AAAA", ["2001:DB8:0:0::1"], ("2001:db8::1",)),
    ("NS", ["ns1", "ns2.example.net."], ("ns1.example.com.", "ns2.example.net.")),
    ("CNAME", ["target"], ("target.example.com.",)),
    ("CNAME", ["@"], ("example.com.",)),
    ("DNAME", ["example.net."], ("example.net.",)),
    ("MX", ["10 mail", "0 ."], ("0 .", "10 mail.example.com.")),
    ("MX", ["10 bücher.example."], ("10 xn--bcher-kva.example.",)),
    ("TXT", ['"v=spf1 -all"'], ('"v=spf1 -all"',)),
    ("TXT", ['"a" "b"', "plain"], ('"a" "b"', '"plain"')),
    ("TXT", ['"' + "a" * 255 + '" "' + "b" * 45 + '"'], ('"' + "a" * 255 + '" "' + "b" * 45 + '"',)),
    ("TXT", ['"quote \\" and \\\\ backslash"'], ('"quote \\" and \\\\ backslash"',)),
    ("TXT", ['"caf\\195\\169"'], ('"caf\\195\\169"',)),
    ("SRV", ["10 60 5060 sip.example.com."], ("10 60 5060 sip.example.com.",)),
    ("SRV", ["0 0 0 ."], ("0 0 0 .",)),
    ("CAA", ['0 issue "letsencrypt.org"'], ('0 issue "letsencrypt.org"',)),
    ("TLSA", ["3 1 1 " + "ab" * 32], ("3 1 1 " + "ab" * 32,)),
    ("SSHFP", ["4 2 " + "cd" * 32], ("4 2 " + "cd" * 32,)),
    ("DS", ["12345 13 2 " + "ef" * 32], ("12345 13 2 " + "ef" * 32,)),
    ("DNSKEY", ["257 3 13 AwEAAQ=="], ("257 3 13 AwEAAQ==",)),
    ("HTTPS", ["1 . alpn=h2,h3"], ('1 . alpn="h2,h3"',)),
    ("SVCB", ["0 svc.example.net."], ("0 svc.example.net.",)),
    ("PTR", ["host.example.net."], ("host.example.net.",)),
    ("NAPTR", ['100 10 "u" "E2U+sip" "!^.*$!sip:x@example.com!" .'],
     ('100 10 "u" "E2U+sip" "!^.*$!sip:x@example.com!" .',)),
    ("LOC", ["52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"],
     ("52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000.00m 10.00m",)),
    ("TYPE65280", ["\\# 4 0a000001"], ("\\# 4 0a000001",)),
    ("A", ["\\# 4 0a000001"], ("10.0.0.1",)),  # RFC 3597 syntax for a known type
    ("MX", ["\\# 5 000a 01 61 00"], ("10 a.",)),
]


@pytest.mark.parametrize("rules", [IMPORT_RULES, API_RULES], ids=["import", "api"])
@pytest.mark.parametrize(("rdtype", "texts", "canonical"), GOOD)
def test_parse_rrset_accepts(
    rules: DnsRules, rdtype: str, texts: list[str], canonical: tuple[str, ...]
) -> None:
    rrset = parse_rrset(ORIGIN, "www", rdtype, 3600, texts, rules)
    assert rrset.name == dns.name.from_text("www.example.com.")
    assert rrset.rdtype == parse_rdatatype(rdtype)
    assert rrset.ttl == 3600
    assert rrset.rdata_texts() == canonical
    assert rrset.key == (rrset.name, rrset.rdtype)
    wires = rrset.rdata_wires()
    assert wires == tuple(sorted(wires)) or rrset.rdtype in (T.NS, T.MX, T.CNAME)
    again = [dns.rdata.from_wire(dns.rdataclass.IN, rrset.rdtype, w, 0, len(w)) for w in wires]
    assert rrset_from_rdatas(rrset.name, rrset.rdtype, rrset.ttl, again, rules) == rrset


# (rules, owner, type, ttl, rdatas, every expected reason, in order)
BAD = [
    (IMPORT_RULES, "www", "A", 300, ["1.2.3.4", "300.1.1.1", "1.2.3", "1.2.3.4 5"], [
        "record 2: invalid IPv4 address '300.1.1.1'",
        "record 3: invalid IPv4 address '1.2.3'",
        "record 4: invalid IPv4 address '1.2.3.4 5'",
    ]),
    (IMPORT_RULES, "www", "AAAA", 300, ["::g"], ["record 1: invalid IPv6 address '::g'"]),
    (IMPORT_RULES, "www", "A", 300, [], ["an RRset needs at least one record"]),
    (IMPORT_RULES, "@", "CNAME", 300, ["a", "b"],
     ["a CNAME RRset holds exactly one record, got 2"]),
    (IMPORT_RULES, "d", "DNAME", 300, ["a.example.net.", "b.example.net."],
     ["a DNAME RRset holds exactly one record, got 2"]),
    (IMPORT_RULES, "www", "MX", 300, ["mail", "70000 mail"], [
        "record 1: invalid MX data 'mail': expecting an integer",
        "record 2: invalid MX data '70000 mail': 70000 is not an unsigned 16-bit integer",
    ]),
    (IMPORT_RULES, "www", "CNAME", 300, ["a..b"],
     ["record 1: invalid CNAME data 'a..b': a name has an empty label ('..')"]),
    (IMPORT_RULES, "www", "CNAME", 300, ["x" * 64],
     ["record 1: invalid CNAME data '" + "x" * 64 + "': a name has a label longer than 63 octets"]),
    (IMPORT_RULES, "www", "CNAME", 300, [".".join(["x" * 60] * 5)],
     ["record 1: invalid CNAME data '" + ".".join(["x" * 60] * 5)[:77]
      + "...': a name is longer than 255 octets"]),
    (IMPORT_RULES, "www", "TXT", 300, ['"' + "a" * 256 + '"'],
     ["record 1: invalid TXT data '\"" + "a" * 76 + "...': a string is longer than 255 octets; "
      "split it into several quoted strings"]),
    (IMPORT_RULES, "www", "TXT", 300, ['"open'],
     [("record 1: invalid TXT data '\"open': incomplete (a field is missing or a quote is "
      "not closed)")]),
    (IMPORT_RULES, "www", "TXT", 300, ["a\nb", "a\x00"], [
        ("record 1: line breaks and control characters are not allowed (write them as \\DDD "
        "inside quotes)"),
        ("record 2: line breaks and control characters are not allowed (write them as \\DDD "
        "inside quotes)"),
    ]),
    (IMPORT_RULES, "www", "A", 300, ["1.2.3.4\n5.6.7.8"],
     [("record 1: line breaks and control characters are not allowed (write them as \\DDD "
      "inside quotes)")]),
    (IMPORT_RULES, "www", "A", 300, [42], ["record 1: must be text"]),
    (IMPORT_RULES, "www", "SRV", 300, ["1 2 3"],
     ["record 1: invalid SRV data '1 2 3': a field is missing"]),
    (IMPORT_RULES, "www", "CNAME", 300, ["a b"],
     ["record 1: invalid CNAME data 'a b': unexpected text after the last field"]),
    (IMPORT_RULES, "www", "CAA", 300, ['0 is-sue "x"'],
     ["record 1: invalid CAA data '0 is-sue \"x\"': tag is not alphanumeric"]),
    (IMPORT_RULES, "www", "DS", 300, ["1 8 2 abcd"],
     ["record 1: invalid DS data '1 8 2 abcd': digest length inconsistent with digest type"]),
    (IMPORT_RULES, "www", "HTTPS", 300, ["1 . foo=bar"],
     ["record 1: invalid HTTPS data '1 . foo=bar': unknown SVCB ParamKey"]),
    (IMPORT_RULES, "www", "A", 300, ["\\# 3 0a0000"],
     ["record 1: invalid IPv4 address '\\# 3 0a0000'"]),
    (IMPORT_RULES, "www", "FOO", 300, ["x"], ["unknown record type 'FOO'"]),
    (IMPORT_RULES, "www", "ANY", 300, ["x"], ["ANY is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "AXFR", 300, ["x"], ["AXFR is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "IXFR", 300, ["x"], ["IXFR is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "OPT", 300, ["x"], ["OPT is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "TSIG", 300, ["x"], ["TSIG is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "TKEY", 300, ["x"], ["TKEY is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "MAILA", 300, ["x"], ["MAILA is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "MAILB", 300, ["x"], ["MAILB is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "NONE", 300, ["x"], ["TYPE0 is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "TYPE65535", 300, ["x"], ["TYPE65535 is a meta type, not zone data"]),
    (IMPORT_RULES, "www", "TYPE200", 300, ["x"], ["TYPE200 is a meta type, not zone data"]),
    (IMPORT_RULES, "@", "SOA", 300, ["ns1 host 1 2 3 4 5"],
     ["the SOA record is managed by the system and cannot be set here"]),
    (IMPORT_RULES, "www", "A", -1, ["1.2.3.4"], ["TTL -1 is outside 0-2147483647 seconds"]),
    (IMPORT_RULES, "www", "A", 2**31, ["1.2.3.4"],
     ["TTL 2147483648 is outside 0-2147483647 seconds"]),
    (IMPORT_RULES, "www", "A", "300", ["1.2.3.4"], ["TTL must be an integer, got '300'"]),
    (IMPORT_RULES, "www", "A", True, ["1.2.3.4"], ["TTL must be an integer, got 'True'"]),
    (IMPORT_RULES, "www.other.org.", "A", 300, ["1.2.3.4"],
     ["not inside the zone example.com."]),
    (API_RULES, "www", "A", 59, ["1.2.3.4"], ["TTL 59 is outside 60-604800 seconds"]),
    (API_RULES, "www", "A", 604801, ["1.2.3.4"], ["TTL 604801 is outside 60-604800 seconds"]),
    (API_RULES, "www", "RRSIG", 300, ["A 13 3 300 20300101000000 20200101000000 1 x. AAAA"],
     ["RRSIG records are produced by signing and cannot be set"]),
    (API_RULES, "www", "NSEC", 300, ["a.example.com. A"],
     ["NSEC records are produced by signing and cannot be set"]),
    (API_RULES, "www", "NSEC3", 300, ["1 0 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A"],
     ["NSEC3 records are produced by signing and cannot be set"]),
    (API_RULES, "@", "NSEC3PARAM", 300, ["1 0 0 -"],
     ["NSEC3PARAM records are produced by signing and cannot be set"]),
    (API_RULES, "a b", "MX", 300, ["10 mail", "10 a_b", "10 -x.example."], [
        "contains a space or line break",
        ("record 2: target a_b.example.com. is not a host name (letters, digits, inner "
        "hyphens): label 'a_b'"),
        ("record 3: target -x.example. is not a host name (letters, digits, inner hyphens): "
        "label '-x'"),
    ]),
    (API_RULES, "a\\.b", "A", 300, ["1.2.3.4"],
     ["contains a backslash (escapes are not allowed)"]),
    (API_RULES, "www", "NS", 300, ["."], ["record 1: the target cannot be the root ('.')"]),
    (API_RULES, "www", "CNAME", 300, ["."], ["record 1: the target cannot be the root ('.')"]),
    (API_RULES, "www", "CNAME", 300, ["www"], ["record 1: the CNAME points to itself"]),
    (API_RULES, "www", "CNAME", 300, ["a\\032b.example."],
     [("record 1: target a\\032b.example. is not made of letters, digits, hyphens and "
      "underscores: label 'a b'")]),
    (API_RULES, "d", "DNAME", 300, ["x.d"],
     ["record 1: the DNAME target is inside its own subtree, which loops"]),
    (API_RULES, "*", "NS", 300, ["ns1"],
     ["NS records at a wildcard name are not allowed (RFC 4592 section 4)"]),
    (API_RULES, "*.x", "DNAME", 300, ["example.net."],
     ["DNAME records at a wildcard name are not allowed (RFC 4592 section 4)"]),
    # Every reason at once: owner, TTL, data, count.
    (API_RULES, "foo.*", "A", 5, ["1.2.3.4", "x", "1.2.3.4.5"], [
        "'*' is only allowed as the whole leftmost label",
        "TTL 5 is outside 60-604800 seconds",
        "record 2: invalid IPv4 address 'x'",
        "record 3: invalid IPv4 address '1.2.3.4.5'",
    ]),
]


@pytest.mark.parametrize(("rules", "owner", "rdtype", "ttl", "rdatas", "reasons"), BAD)
def test_parse_rrset_refuses_with_every_reason(
    rules: DnsRules, owner: str, rdtype: str, ttl: int, rdatas: list[str], reasons: list[str]
) -> None:
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, owner, rdtype, ttl, rdatas, rules)
    assert info.value.reasons == reasons
    assert str(info.value).startswith(f"invalid RRset {info.value.owner} {info.value.rdtype}: ")


def test_invalid_rrset_names_owner_and_type() -> None:
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "WWW", "aaaa", 300, ["x"])
    assert (info.value.owner, info.value.rdtype) == ("www.example.com.", "AAAA")
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "a b", "A", 300, ["x"], API_RULES)
    assert (info.value.owner, info.value.rdtype) == ("a b", "A")


def test_import_rules_keep_what_the_api_refuses() -> None:
    """Escaped names, DNSSEC data, odd targets: fine for an import of a real zone."""
    parse_rrset(ORIGIN, "a\\032b", "CNAME", 0, ["."], IMPORT_RULES)
    parse_rrset(ORIGIN, "*", "NS", 300, ["ns_1.example.net."], IMPORT_RULES)
    parse_rrset(ORIGIN, "www", "NSEC", 300, ["a.example.com. A RRSIG NSEC"], IMPORT_RULES)
    rrsig = "A 13 3 300 20300101000000 20200101000000 1 example.com. AAAA"
    assert parse_rrset(ORIGIN, "www", "RRSIG", 300, [rrsig]).rdtype == T.RRSIG


def test_api_rules_keep_published_dnssec_data() -> None:
    for rdtype, text in [
        ("DNSKEY", "257 3 13 AwEAAQ=="),
        ("CDNSKEY", "257 3 13 AwEAAQ=="),
        ("CDS", "12345 13 2 " + "ef" * 32),
        ("DS", "12345 13 2 " + "ef" * 32),
    ]:
        assert parse_rrset(ORIGIN, "sub", rdtype, 300, [text], API_RULES).rdtype == T.from_text(rdtype)


@pytest.mark.parametrize("rdtype", ["aaaa", "AAAA", "TYPE28", 28, " AAAA "])
def test_rdtype_spellings(rdtype: str | int) -> None:
    assert parse_rrset(ORIGIN, "www", rdtype, 300, ["::1"]).rdtype == T.AAAA


@pytest.mark.parametrize("rdtype", ["", "AAAAA", "TYPE70000", 70000, -1, True, "ÄÄ"])
def test_bad_rdtype(rdtype: str | int) -> None:
    with pytest.raises(InvalidRRset, match="record type"):
        parse_rrset(ORIGIN, "www", rdtype, 300, ["::1"])


def test_a_single_string_is_a_caller_bug() -> None:
    with pytest.raises(TypeError):
        parse_rrset(ORIGIN, "www", "A", 300, "1.2.3.4")


def test_too_many_records() -> None:
    rules = DnsRules(max_rdatas_per_rrset=3)
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "www", "A", 300, [f"10.0.0.{i}" for i in range(5)], rules)
    assert info.value.reasons == ["too many records: 5 (at most 3)"]
    assert len(parse_rrset(ORIGIN, "www", "A", 300, ["1.1.1.1"] * 3, rules).rdatas) == 1


def test_rrset_too_large_for_a_message() -> None:
    strings = " ".join(['"' + "x" * 255 + '"'] * 60)  # about 15 kB per record
    texts = [f'"{i}" {strings}' for i in range(5)]
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "www", "TXT", 300, texts)
    assert info.value.reasons == [
        (f"the RRset is 76870 octets long, too large for one DNS message (at most "
        f"{MAX_RRSET_OCTETS})")
    ]


def test_one_record_too_large_for_a_message() -> None:
    strings = " ".join(['"' + "x" * 255 + '"'] * 255)  # 65280 octets: fits RDLENGTH only
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "www", "TXT", 300, [strings])
    assert info.value.reasons == [
        (f"the RRset is 65292 octets long, too large for one DNS message (at most "
        f"{MAX_RRSET_OCTETS})")
    ]


def test_rdata_larger_than_rdlength() -> None:
    strings = " ".join(['"' + "x" * 255 + '"'] * 260)
    with pytest.raises(InvalidRRset) as info:
        parse_rrset(ORIGIN, "www", "TXT", 300, [strings])
    assert info.value.reasons == ["record 1: is 66560 octets long in wire form (at most 65535)"]


def test_canonical_order_and_case() -> None:
    """Dedup ignores the case of names in rdata (RFC 4034 6.2), order is 6.3's."""
    rrset = parse_rrset(ORIGIN, "WWW", "NS", 300, ["NS2.Example.NET.", "ns1", "ns2.example.net."])
    assert rrset.name.to_text() == "www.example.com."
    assert rrset.rdata_texts() == ("ns1.example.com.", "NS2.Example.NET.")
    assert rrset.rdata_wires()[1] == b"\x03NS2\x07Example\x03NET\x00"
    same = parse_rrset(ORIGIN, "www", "NS", 300, ["ns2.example.net.", "ns1.example.com."])
    assert same == rrset


def test_rrset_from_rdatas_checks_what_it_is_given() -> None:
    a = dns.rdata.from_text("IN", "A", "192.0.2.1")
    relative = dns.rdata.from_text("IN", "CNAME", "www")  # relativize: left relative
    with pytest.raises(InvalidRRset) as info:
        rrset_from_rdatas(dns.name.from_text("www", None), T.A, -5, [a, relative])
    assert info.value.reasons == [
        "the owner name must be absolute",
        "TTL -5 is outside 0-2147483647 seconds",
        "record 2: is IN CNAME data, not IN A",
    ]
    with pytest.raises(InvalidRRset) as info:
        rrset_from_rdatas(dns.name.from_text("x.example.com."), T.CNAME, 300, [relative])
    assert info.value.reasons == ["record 1: contains a relative name"]
    with pytest.raises(InvalidRRset, match="at least one record"):
        rrset_from_rdatas(dns.name.from_text("x.example.com."), T.A, 300, [])
    with pytest.raises(InvalidRRset, match="escapes are not allowed|not allowed in a record"):
        rrset_from_rdatas(dns.name.from_text("a\\032b.example.com."), T.A, 300, [a], API_RULES)
    rrset = rrset_from_rdatas(dns.name.from_text("X.Example.COM."), 1, 300, [a, a])
    assert rrset == RRsetData(dns.name.from_text("x.example.com."), T.A, 300, (a,))
    assert rrset.name.labels[0] == b"x"

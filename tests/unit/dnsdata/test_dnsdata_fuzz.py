"""Seeded fuzzing: mutated master files and random RRsets never crash the
rules (only InvalidZone/InvalidRRset), and whatever is accepted round-trips."""

from __future__ import annotations

import random

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from storage.dnsdata.errors import InvalidRRset, InvalidZone
from storage.dnsdata.masterfile import ZoneContent, from_text, to_text
from storage.dnsdata.names import zone_origin
from storage.dnsdata.rrsets import parse_rrset, rrset_from_rdatas
from storage.dnsdata.rules import API_RULES, IMPORT_RULES

ORIGIN = zone_origin("example.com")
INSERTS = [*'()";\\$@*. \t\n\r\x00\x7fAaz09-_é\u200b#', "\\#", "IN", "TYPE70000", "$ORIGIN ",
           "$TTL ", "CNAME", "999999999999", "\\999"]
TOKENS = ["0", "1", "10", "255", "65535", "70000", "-1", "a", "www", "@", ".", "x.example.", "\\#",
          "4", "0a000001", '"s"', '"a b"', "abcd", "AwEAAQ==", "192.0.2.1", "::1", "alpn=h2",
          "port=1", "N", "E", "52", "10m", "A", "20300101000000", "issue", "*", "_tcp", "ab" * 32,
          "(", ")", ";", "\\032", "é", "xn--zz"]
TYPES = [t for t in dns.rdatatype.RdataType if not dns.rdatatype.is_metatype(t)]


@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_master_files(seed: int, round_trip_zone: str) -> None:
    rnd = random.Random(seed)
    accepted = refused = 0
    for _ in range(100):
        chars = list(round_trip_zone)
        for _ in range(rnd.randint(1, 6)):
            pos = rnd.randrange(len(chars))
            if rnd.random() < 0.5:
                chars.insert(pos, rnd.choice(INSERTS))
            else:
                del chars[pos]
        for rules in (IMPORT_RULES, API_RULES):
            try:
                content = from_text("".join(chars), ORIGIN, rules)
            except InvalidZone as exc:
                assert exc.problems
                refused += 1
                continue
            accepted += 1
            assert from_text(to_text(content), ORIGIN, rules) == content
    assert accepted and refused


@pytest.mark.parametrize("seed", [1, 2])
def test_random_rrsets(seed: int) -> None:
    rnd = random.Random(seed)
    accepted = 0
    for _ in range(1500):
        rdtype = rnd.choice(TYPES)
        text = " ".join(rnd.choice(TOKENS) for _ in range(rnd.randint(0, 7)))
        rules = rnd.choice([API_RULES, IMPORT_RULES])
        owner = rnd.choice(["www", "*", "_x", "a.b"])
        try:
            rrset = parse_rrset(ORIGIN, owner, int(rdtype), 300, [text], rules)
        except InvalidRRset as exc:
            assert exc.reasons
            continue
        accepted += 1
        assert parse_rrset(ORIGIN, rrset.name, rrset.rdtype, 300, rrset.rdata_texts(), rules) == (
            rrset
        )
        again = [
            dns.rdata.from_wire(dns.rdataclass.IN, rrset.rdtype, w, 0, len(w))
            for w in rrset.rdata_wires()
        ]
        assert rrset_from_rdatas(rrset.name, rrset.rdtype, 300, again, rules) == rrset
        content = ZoneContent(ORIGIN, None, None, (rrset,))
        assert from_text(to_text(content), ORIGIN, rules) == content
    assert accepted > 50

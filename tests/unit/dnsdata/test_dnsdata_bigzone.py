"""A 100,000-record master file parses: 3-5 s of CPU with the export, more
wall time on a loaded machine (marked slow; no timing is asserted)."""

from __future__ import annotations

import dns.rdatatype
import pytest

from storage.dnsdata.bench import generate
from storage.dnsdata.masterfile import from_text, to_text
from storage.dnsdata.names import zone_origin

T = dns.rdatatype.RdataType


@pytest.mark.slow
def test_100k_records() -> None:
    origin = zone_origin("example.com")
    content = from_text(generate(100_000), origin)
    assert content.soa is not None
    records = sum(len(r.rdatas) for r in content.rrsets) + 1
    assert records == 100_000
    counts: dict[T, int] = {}
    for rrset in content.rrsets:
        counts[rrset.rdtype] = counts.get(rrset.rdtype, 0) + len(rrset.rdatas)
    assert counts == {T.NS: 2, T.A: 50_002, T.AAAA: 19_998, T.MX: 9_999, T.TXT: 9_999,
                      T.CNAME: 9_999}
    assert to_text(content).count("\n") == 100_001  # $ORIGIN and every record


def test_rdata_cache_follows_the_origin() -> None:
    """The same text under another $ORIGIN is other data (the reader caches by both)."""
    origin = zone_origin("example.com")
    content = from_text(
        "$TTL 60\n$ORIGIN a.example.com.\nx CNAME y\n$ORIGIN b.example.com.\nx CNAME y\n", origin
    )
    assert [(r.name.to_text(), r.rdata_texts()) for r in content.rrsets] == [
        ("x.a.example.com.", ("y.a.example.com.",)),
        ("x.b.example.com.", ("y.b.example.com.",)),
    ]

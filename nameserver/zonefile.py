"""Master files as zone snapshots, for the debug entry point and tests.

The server proper loads its zones from the store (storage.snapshot); this
reads an RFC 1035 master file with dnspython into the same values.
"""

from __future__ import annotations

from pathlib import Path

import dns.rdataclass
import dns.rdatatype
import dns.zone

from storage.snapshot import StoredRRset, ZoneSnapshot


def from_text(text: str, origin: str, zone_id: int = 0, active: bool = True) -> ZoneSnapshot:
    """Parse a master file; names and rdata in canonical (lower-case) wire form."""
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=True)
    rrsets = []
    serial = 0
    for name, node in zone.nodes.items():
        owner = name.to_text().lower()
        for rdataset in node.rdatasets:
            if rdataset.rdclass != dns.rdataclass.IN:
                continue
            rdatas = tuple(rd.to_digestable() for rd in rdataset)
            if rdataset.rdtype == dns.rdatatype.SOA:
                serial = int(rdataset[0].serial)
            rrsets.append(StoredRRset(owner, int(rdataset.rdtype), rdataset.ttl, rdatas))
    canonical = str(zone.origin).lower()
    return ZoneSnapshot(zone_id, canonical, serial, active, tuple(rrsets))


def from_file(path: Path, origin: str, zone_id: int = 0) -> ZoneSnapshot:
    return from_text(path.read_text(encoding="utf-8"), origin, zone_id)

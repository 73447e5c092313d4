"""Helpers building zone content for storage tests (through storage.dnsdata)."""

from __future__ import annotations

import dns.name

from storage.dnsdata import RRsetData, parse_rrset, zone_origin
from storage.zones import RRsetChange, SoaFields

SOA = SoaFields(mname="ns1.example.net.", rname="hostmaster.example.net.")


def origin(text: str) -> dns.name.Name:
    return zone_origin(text)


def rrset(zone: str, owner: str, rdtype: str, *rdatas: str, ttl: int = 300) -> RRsetData:
    return parse_rrset(origin(zone), owner, rdtype, ttl, list(rdatas))


def put(zone: str, owner: str, rdtype: str, *rdatas: str, ttl: int = 300) -> RRsetChange:
    data = rrset(zone, owner, rdtype, *rdatas, ttl=ttl)
    return RRsetChange(data.name, data.rdtype, data)


def drop(zone: str, owner: str, rdtype: str) -> RRsetChange:
    data = rrset(zone, owner, rdtype, "192.0.2.1" if rdtype == "A" else "x.example.")
    return RRsetChange(data.name, data.rdtype, None)

"""Read-side value types: what the nameserver loads from the store.

The nameserver never sees ORM objects: it gets these frozen values, with
rdata already in uncompressed wire form, so building its index needs no
presentation-format parsing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import cast

import dns.rdatatype
from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Record, RRset, Zone, ZoneStatus
from storage.zones import soa_from_zone


@dataclass(frozen=True, slots=True)
class StoredRRset:
    name: str  # absolute, canonical (lower case, A-labels), with the trailing dot
    rdtype: int
    ttl: int
    rdatas: tuple[bytes, ...]  # each rdata in uncompressed wire form


@dataclass(frozen=True, slots=True)
class ZoneSnapshot:
    zone_id: int
    origin: str  # absolute, canonical, with the trailing dot
    serial: int
    active: bool  # False when suspended: the nameserver answers REFUSED
    rrsets: tuple[StoredRRset, ...]  # every RRset of the zone, the SOA included


async def load_zones(
    session: AsyncSession, names: Iterable[str] | None = None
) -> list[ZoneSnapshot]:
    """Snapshots of the named zones (all zones when `names` is None).

    Two queries whatever the number of zones: the zone rows, then every
    record joined to its RRset, ordered so that grouping is one pass.
    A zone deleted between the two queries is simply absent.
    """
    zone_query = select(Zone)
    record_query = (
        select(RRset.zone_id, RRset.name, RRset.rdtype, RRset.ttl, Record.wire)
        .join(Record, Record.rrset_id == RRset.id)
        .order_by(RRset.zone_id, RRset.id, Record.id)
    )
    if names is not None:
        wanted = list(names)
        if not wanted:
            return []
        zone_query = zone_query.where(Zone.name.in_(wanted))
        record_query = record_query.join(Zone, Zone.id == RRset.zone_id).where(
            Zone.name.in_(wanted)
        )
    zones = (await session.execute(zone_query)).scalars().all()
    grouped: dict[int, list[StoredRRset]] = {z.id: [] for z in zones}
    async for zone_id, rrset in _stream_rrsets(session, record_query):
        if zone_id in grouped:
            grouped[zone_id].append(rrset)
    return [
        ZoneSnapshot(
            zone_id=z.id,
            origin=z.name,
            serial=z.serial,
            active=z.status == ZoneStatus.ACTIVE,
            rrsets=(soa_rrset(z), *grouped[z.id]),
        )
        for z in zones
    ]


def soa_rrset(zone: Zone) -> StoredRRset:
    """The system-owned SOA, built from the zone row."""
    wire = soa_from_zone(zone).to_wire()
    assert wire is not None  # to_wire() without a file returns the bytes
    return StoredRRset(zone.name, int(dns.rdatatype.SOA), zone.soa_ttl, (wire,))


async def load_rrsets(
    session: AsyncSession, zone_name: str, keys: Iterable[tuple[str, int]]
) -> tuple[Zone, list[StoredRRset]] | None:
    """The zone row and the current RRsets at the (name, rdtype) pairs in
    `keys` (pairs that no longer exist are absent); None if the zone is gone."""
    zone = (await session.execute(select(Zone).where(Zone.name == zone_name))).scalar_one_or_none()
    if zone is None:
        return None
    wanted = set(keys)
    names = sorted({name for name, _ in wanted})
    query = (
        select(RRset.zone_id, RRset.name, RRset.rdtype, RRset.ttl, Record.wire)
        .join(Record, Record.rrset_id == RRset.id)
        .where(RRset.zone_id == zone.id, RRset.name.in_(names))
        .order_by(RRset.id, Record.id)
    )
    found = [r async for _, r in _stream_rrsets(session, query) if (r.name, r.rdtype) in wanted]
    if (zone.name, int(dns.rdatatype.SOA)) in wanted:
        found.append(soa_rrset(zone))
    return zone, found


async def _stream_rrsets(
    session: AsyncSession, query: Executable
) -> AsyncIterator[tuple[int, StoredRRset]]:
    """Group (zone_id, name, rdtype, ttl, wire) rows, ordered by RRset, into
    RRsets. Streams in partitions so that loading a big zone lets the event
    loop answer queries in between."""
    current: tuple[int, str, int] | None = None
    ttl = 0
    wires: list[bytes] = []
    result = await session.stream(query)
    async for partition in result.partitions(500):
        for row in partition:
            zone_id, name, rdtype, row_ttl, wire = cast(tuple[int, str, int, int, bytes], row)
            key = (zone_id, name, rdtype)
            if key != current:
                if current is not None:
                    yield current[0], StoredRRset(current[1], current[2], ttl, tuple(wires))
                current, ttl, wires = key, row_ttl, []
            wires.append(wire)
        await asyncio.sleep(0)
    if current is not None:
        yield current[0], StoredRRset(current[1], current[2], ttl, tuple(wires))

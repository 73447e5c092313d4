"""Read-side value types: what the nameserver loads from the store.

The nameserver never sees ORM objects: it gets these frozen values, with
rdata already in uncompressed wire form, so building its index needs no
presentation-format parsing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.rdatatype
from sqlalchemy import select
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
    current: tuple[int, str, int] | None = None
    ttl = 0
    wires: list[bytes] = []

    def flush() -> None:
        if current is not None and current[0] in grouped:
            grouped[current[0]].append(StoredRRset(current[1], current[2], ttl, tuple(wires)))

    for zone_id, name, rdtype, row_ttl, wire in await session.execute(record_query):
        key = (zone_id, name, rdtype)
        if key != current:
            flush()
            current, ttl, wires = key, row_ttl, []
        wires.append(wire)
    flush()
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
    return StoredRRset(zone.name, int(dns.rdatatype.SOA), zone.soa_ttl, (soa_from_zone(zone).to_wire(),))

"""Read-side value types: what the nameserver loads from the store.

The nameserver never sees ORM objects: it gets these frozen values, with
rdata already in uncompressed wire form, so building its index needs no
presentation-format parsing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import dns.rdatatype
from sqlalchemy import Select, case, null, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from storage.feed import ChangeEvent
from storage.models import Record, RRset, Zone, ZoneChange, ZoneStatus
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


@dataclass(frozen=True, slots=True)
class ZoneHead:
    """A zone row without its RRsets (they come from `stream_rrsets`)."""

    zone_id: int
    origin: str
    serial: int
    active: bool
    soa: StoredRRset  # the system-owned SOA, built from the zone row


async def load_zones(
    session: AsyncSession, names: Iterable[str] | None = None
) -> list[ZoneSnapshot]:
    """Snapshots of the named zones (all zones when `names` is None).

    Two queries whatever the number of zones: the zone rows, then every
    record joined to its RRset, ordered so that grouping is one pass.
    A zone deleted between the two queries is simply absent.
    """
    heads = await load_zone_heads(session, names)
    grouped: dict[int, list[StoredRRset]] = {h.zone_id: [h.soa] for h in heads}
    if heads:
        ids = None if names is None else [h.zone_id for h in heads]
        async for rrsets in stream_rrsets(session, ids):
            for zone_id, rrset in rrsets:
                if zone_id in grouped:
                    grouped[zone_id].append(rrset)
    return [
        ZoneSnapshot(h.zone_id, h.origin, h.serial, h.active, tuple(grouped[h.zone_id]))
        for h in heads
    ]


async def load_zone_heads(
    session: AsyncSession, names: Iterable[str] | None = None
) -> list[ZoneHead]:
    """The named zones' rows (all zones when `names` is None), SOA included."""
    query = select(Zone)
    if names is not None:
        wanted = list(names)
        if not wanted:
            return []
        query = query.where(Zone.name.in_(wanted))
    zones = (await session.execute(query)).scalars().all()
    return [
        ZoneHead(z.id, z.name, z.serial, z.status == ZoneStatus.ACTIVE, soa_rrset(z))
        for z in zones
    ]


async def stream_rrsets(
    session: AsyncSession, zone_ids: Sequence[int] | None = None, batch_rows: int = 1000
) -> AsyncIterator[list[tuple[int, StoredRRset]]]:
    """Every RRset of these zones (all zones when `zone_ids` is None) but the
    SOA, as (zone_id, rrset), ordered by zone, a batch at a time: a caller
    that indexes each batch before asking for the next never holds a big zone
    twice, and the event loop gets a turn between batches."""
    query = (
        select(RRset.zone_id, RRset.name, RRset.rdtype, RRset.ttl, Record.wire)
        .join(Record, Record.rrset_id == RRset.id)
        .order_by(RRset.zone_id, RRset.id, Record.id)
    )
    if zone_ids is not None:
        if not zone_ids:
            return
        query = query.where(RRset.zone_id.in_([int(i) for i in zone_ids]))
    async for batch in _stream_rrsets(session, query, batch_rows, from_driver=True):
        yield batch


async def changes_after(
    session: AsyncSession, after_id: int, limit: int = 1000
) -> list[ChangeEvent]:
    """`storage.feed.changes_after` as a nameserver needs it: the diff of a
    change that reloads its zone whole is left in the store. A wholesale
    replacement of a big zone carries tens of thousands of diff items, and
    decoding them (and freeing them) on the event loop stalled every query
    for 10-20 ms, all for nothing: the follower reloads that zone anyway."""
    query = (
        select(
            ZoneChange.id, ZoneChange.zone_id, ZoneChange.zone_name, ZoneChange.serial,
            ZoneChange.previous_serial, ZoneChange.kind, ZoneChange.full_reload,
            ZoneChange.created_at,
            case((ZoneChange.full_reload, null()), else_=ZoneChange.diff),
        )
        .where(ZoneChange.id > after_id)
        .order_by(ZoneChange.id)
        .limit(limit)
    )
    events = []
    for row in await session.execute(query):
        change_id, zone_id, zone_name, serial, previous, kind, full, created_at, raw = cast(
            tuple[int, int, str, int, "int | None", str, bool, datetime, "dict[str, Any] | None"],
            tuple(row),
        )
        diff = raw or {}
        events.append(ChangeEvent(
            id=change_id, zone_id=zone_id, zone_name=zone_name, serial=serial,
            previous_serial=previous, kind=kind, full_reload=full, created_at=created_at,
            removed=tuple((n, t, ttl, c) for n, t, ttl, c in diff.get("removed", ())),
            added=tuple((n, t, ttl, c) for n, t, ttl, c in diff.get("added", ())),
        ))
    return events


class FeedProbe:
    """The cheapest look at the feed's newest id, for a follower that polls.

    On a SQLite file it is one statement on a connection of its own, run on
    the caller's thread (about 20 us: an indexed max() read from SQLite's
    page cache) instead of an ORM session and two thread hand-offs per poll.
    `newest_id()` returns None when it cannot tell (another backend, or the
    database busy for a moment): the caller then reads the feed itself.
    """

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        path = url.database if url.get_backend_name() == "sqlite" else None
        self._path = path if path and path != ":memory:" else None
        self._conn: sqlite3.Connection | None = None

    def newest_id(self) -> int | None:
        if self._path is None:
            return None
        try:
            if self._conn is None:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=0")  # never wait on the loop
                conn.execute("PRAGMA query_only=1")
                self._conn = conn
            row = self._conn.execute("SELECT max(id) FROM zone_changes").fetchone()
        except sqlite3.Error:
            self.close()
            return None
        return int(row[0] or 0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
    found = [
        r
        async for batch in _stream_rrsets(session, query)
        for _, r in batch
        if (r.name, r.rdtype) in wanted
    ]
    if (zone.name, int(dns.rdatatype.SOA)) in wanted:
        found.append(soa_rrset(zone))
    return zone, found


async def _stream_rrsets(
    session: AsyncSession, query: Select[int, str, int, int, bytes], batch_rows: int = 1000, from_driver: bool = False
) -> AsyncIterator[list[tuple[int, StoredRRset]]]:
    """Group (zone_id, name, rdtype, ttl, wire) rows, ordered by RRset, into
    RRsets, yielded in batches of about `batch_rows` rows (an RRset is never
    split between two batches)."""
    current: tuple[int, str, int] | None = None
    ttl = 0
    wires: list[bytes] = []
    async for rows in _batches(session, query, batch_rows, from_driver):
        batch: list[tuple[int, StoredRRset]] = []
        for zone_id, name, rdtype, row_ttl, wire in rows:
            key = (zone_id, name, rdtype)
            if key != current:
                if current is not None:
                    batch.append((current[0], StoredRRset(current[1], current[2], ttl, tuple(wires))))
                current, ttl, wires = key, row_ttl, []
            wires.append(wire)
        del rows
        yield batch
    if current is not None:
        yield [(current[0], StoredRRset(current[1], current[2], ttl, tuple(wires)))]


async def _batches(
    session: AsyncSession, query: Select[int, str, int, int, bytes], batch_rows: int, from_driver: bool
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The rows of `query`. `from_driver` (only for a query whose parameters
    are all integers: they are rendered into the SQL) reads them from the
    driver itself, in the session's transaction: sqlite3 and asyncpg build
    rows in C, where SQLAlchemy's result rows cost about 5 us each on the
    event loop (half of the time spent loading a zone)."""
    conn = await session.connection()
    dialect = conn.dialect
    if not from_driver or dialect.name not in ("sqlite", "postgresql"):
        result = await session.stream(query)
        async for partition in result.partitions(batch_rows):
            yield partition
        return
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if dialect.name == "sqlite":  # aiosqlite
        cursor = await driver.execute(sql)
        try:
            while rows := await cursor.fetchmany(batch_rows):
                yield rows
        finally:
            await cursor.close()
    else:  # asyncpg, inside the transaction SQLAlchemy began (cursors need one)
        pg_cursor = await driver.cursor(sql)
        while rows := await pg_cursor.fetch(batch_rows):
            yield rows

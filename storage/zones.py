"""Writes to zones: every edit is one transaction with its serial bump,
change-feed row and audit row.

All writers (master-file import, the zone API, billing) go through this
module, so the rules, the serial and the feed cannot be skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, cast

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from storage.dnsdata import RRsetData, ZoneContent, check_edit, check_zone, rrset_from_rdatas
from storage.driver import Row, SessionTx, Tx
from storage.models import Record, RRset, Zone, ZoneStatus
from storage.serial import next_serial

FEED_CHANNEL = "zonehost_changes"
# One advisory lock orders the feed: ids are taken in commit order, so a
# follower reading "id > last" never skips a row committed late.
_FEED_LOCK_KEY = 0x7A6F6E65

DiffItem = tuple[str, int, int, str]  # name, rdtype, ttl, content


class ZoneStoreError(Exception):
    """A zone write was refused."""


class ZoneNotFound(ZoneStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"zone {name} does not exist")
        self.name = name


class ZoneExists(ZoneStoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"zone {name} already exists")
        self.name = name


class ZoneChanged(ZoneStoreError):
    """An edit planned outside a transaction found the zone changed when it
    came to write (its serial moved): nothing was written; plan it again."""

    def __init__(self, name: str) -> None:
        super().__init__(f"zone {name} changed while the edit was planned")
        self.name = name


class ZoneFull(ZoneStoreError):
    """The edit would take the zone past its record limit."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"zone {name}: at most {limit} records")
        self.name = name
        self.limit = limit


class ZoneConflict(ZoneStoreError):
    """The edit would break a zone rule (CNAME exclusivity, ...)."""

    def __init__(self, name: str, reasons: list[str]) -> None:
        super().__init__(f"zone {name}: " + "; ".join(reasons))
        self.name = name
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class Actor:
    """Who writes: recorded in the audit log and the change feed."""

    label: str  # "operator", "user:12", "token:5", "system"
    account_id: int | None = None
    user_id: int | None = None
    source_ip: str | None = None
    credential: str | None = None  # session or token id, never a secret


OPERATOR = Actor("operator")
SYSTEM = Actor("system")


@dataclass(frozen=True, slots=True)
class SoaFields:
    mname: str
    rname: str
    ttl: int = 3600
    refresh: int = 10800
    retry: int = 3600
    expire: int = 1209600
    minimum: int = 3600


@dataclass(frozen=True, slots=True)
class RRsetChange:
    """Set an RRset to `rrset`, or delete (name, rdtype) when rrset is None.

    `owner` is `name` as stored (its text), made once here unless the caller
    has it: an edit needs it several times, and Name.to_text() is costly."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rrset: RRsetData | None
    owner: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.owner:
            object.__setattr__(self, "owner", self.name.to_text())


@dataclass(frozen=True, slots=True)
class WriteResult:
    zone: str
    serial: int
    change_id: int
    removed: tuple[DiffItem, ...] = field(default=())
    added: tuple[DiffItem, ...] = field(default=())


@lru_cache(maxsize=16384)
def name_of(text: str) -> dns.name.Name:
    """The absolute name stored as `text` (names are immutable: parsed once, shared)."""
    return dns.name.from_text(text)


@lru_cache(maxsize=16384)
def _ancestors(text: str) -> tuple[str, ...]:
    """`text` and the names above it, as stored."""
    name = name_of(text)
    return tuple(name.split(depth)[1].to_text() for depth in range(1, len(name) + 1))


def soa_from_zone(zone: Zone) -> dns.rdtypes.ANY.SOA.SOA:
    return dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN,
        dns.rdatatype.SOA,
        dns.name.from_text(zone.soa_mname),
        dns.name.from_text(zone.soa_rname),
        zone.serial,
        zone.soa_refresh,
        zone.soa_retry,
        zone.soa_expire,
        zone.soa_minimum,
    )


async def _stored_rows(
    session: AsyncSession, zone_id: int, names: Iterable[str] | None = None
) -> dict[tuple[str, int], _Rows]:
    """The zone's RRsets as stored (SOA excluded), without parsing any rdata;
    only those at `names` when given."""
    query = (
        select(RRset.name, RRset.rdtype, RRset.ttl, Record.content, Record.wire)
        .join(Record, Record.rrset_id == RRset.id)
        .where(RRset.zone_id == zone_id)
        .order_by(RRset.id, Record.id)
    )
    if names is not None:
        query = query.where(RRset.name.in_(sorted(set(names))))
    grouped: dict[tuple[str, int], tuple[int, list[str], list[bytes]]] = {}
    for name, rdtype, ttl, content, wire in await session.execute(query):
        entry = grouped.setdefault((name, rdtype), (ttl, [], []))
        entry[1].append(content)
        entry[2].append(wire)
    return {
        key: _Rows(key[0], key[1], ttl, tuple(contents), tuple(wires))
        for key, (ttl, contents, wires) in grouped.items()
    }


def _today() -> date:
    return datetime.now(UTC).date()


async def get_zone(session: AsyncSession, name: str, *, for_update: bool = False) -> Zone | None:
    query = select(Zone).where(Zone.name == name)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def find_zone(session: AsyncSession, name: str, *, for_update: bool = False) -> Zone:
    zone = await get_zone(session, name, for_update=for_update)
    if zone is None:
        raise ZoneNotFound(name)
    return zone


_CURRENT = (
    "SELECT s.name, s.rdtype, s.ttl, r.wire FROM rrsets s JOIN records r ON r.rrset_id = s.id"
    " WHERE s.zone_id = $1"
)
_CURRENT_ONE = _CURRENT + " AND s.name = $2 AND s.rdtype = $3"
_CURRENT_AT = _CURRENT + " AND s.name = $2"  # through the (zone_id, name, rdtype) index
_CURRENT_OF = _CURRENT + " AND s.rdtype = $2"


async def current_rrsets(
    db: AsyncSession | Tx, zone_id: int, only: tuple[str, int] | None = None, *,
    name: str | None = None, rdtype: int | None = None,
) -> dict[tuple[str, int], RRsetData]:
    """The zone's RRsets (SOA excluded), rebuilt as validated values; only the
    RRset `only` (name, rdtype) when given, or only those at the owner `name`
    (as stored) and/or of type `rdtype`. Only the records of those are read
    and parsed."""
    tx = SessionTx(db) if isinstance(db, AsyncSession) else db
    if only is None and name is not None and rdtype is not None:
        only = (name, rdtype)
    grouped: dict[tuple[str, int], tuple[int, list[bytes]]] = {}
    if only is not None:
        rows = await tx.fetch(_CURRENT_ONE, zone_id, *only)
    elif name is not None:
        rows = await tx.fetch(_CURRENT_AT, zone_id, name)
    elif rdtype is not None:
        rows = await tx.fetch(_CURRENT_OF, zone_id, rdtype)
    else:
        rows = await tx.fetch(_CURRENT, zone_id)
    for row_name, row_type, ttl, wire in rows:
        grouped.setdefault((row_name, row_type), (ttl, []))[1].append(bytes(wire))
    return {key: _from_wires(key[0], key[1], ttl, wires)
            for key, (ttl, wires) in grouped.items()}


def _from_wires(name: str, rdtype: int, ttl: int, wires: Sequence[bytes]) -> RRsetData:
    kind = dns.rdatatype.RdataType.make(rdtype)
    rdatas = [dns.rdata.from_wire(dns.rdataclass.IN, kind, w, 0, len(w)) for w in wires]
    return rrset_from_rdatas(dns.name.from_text(name), kind, ttl, rdatas)


@dataclass(frozen=True, slots=True)
class _Rows:
    """An RRset as the rows it is stored as: text and wire computed once."""

    name: str
    rdtype: int
    ttl: int
    contents: tuple[str, ...]
    wires: tuple[bytes, ...]

    @classmethod
    def of(cls, rrset: RRsetData) -> _Rows:
        return cls(
            rrset.name.to_text(), int(rrset.rdtype), rrset.ttl, rrset.rdata_texts(),
            rrset.rdata_wires(),
        )

    def items(self) -> list[DiffItem]:
        return [(self.name, self.rdtype, self.ttl, c) for c in self.contents]


def _diff(
    old: Iterable[_Rows], new: Iterable[_Rows]
) -> tuple[tuple[DiffItem, ...], tuple[DiffItem, ...]]:
    before = {i for r in old for i in r.items()}
    after = {i for r in new for i in r.items()}
    return tuple(sorted(before - after)), tuple(sorted(after - before))


# Past this many RRsets, insert them in one executemany and read their ids
# back, instead of one INSERT ... RETURNING per row.
_BULK_INSERT_FROM = 200


async def _insert_rrsets(session: AsyncSession, zone_id: int, rrsets: Sequence[_Rows]) -> None:
    if not rrsets:
        return
    values = [{"zone_id": zone_id, "name": r.name, "rdtype": r.rdtype, "ttl": r.ttl} for r in rrsets]
    if len(rrsets) < _BULK_INSERT_FROM:
        ids: Sequence[int] = (
            await session.execute(
                insert(RRset).returning(RRset.id, sort_by_parameter_order=True), values
            )
        ).scalars().all()
    else:
        await session.execute(insert(RRset), values)
        stored = await session.execute(
            select(RRset.id, RRset.name, RRset.rdtype).where(RRset.zone_id == zone_id)
        )
        by_key = {(name, rdtype): rrset_id for rrset_id, name, rdtype in stored}
        ids = [by_key[(r.name, r.rdtype)] for r in rrsets]
    records = [
        {"rrset_id": rrset_id, "content": content, "wire": wire}
        for rrset_id, r in zip(ids, rrsets, strict=True)
        for content, wire in zip(r.contents, r.wires, strict=True)
    ]
    await session.execute(insert(Record), records)


_LOCK_FEED = "SELECT pg_advisory_xact_lock($1)"
_INSERT_CHANGE = (
    "INSERT INTO zone_changes (zone_id, zone_name, serial, previous_serial, kind, full_reload,"
    " diff, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
)
_INSERT_AUDIT = (
    "INSERT INTO audit_log (at, account_id, user_id, actor, source_ip, credential, action,"
    " object_type, object_name, before, after, change_id)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'zone', $8, $9, $10, $11)"
)
_NOTIFY = "SELECT pg_notify($1, $2)"


async def _append_change(
    tx: Tx,
    zone: ZoneRow | Zone,
    serial: int,
    *,
    kind: str,
    previous_serial: int | None,
    removed: Sequence[DiffItem],
    added: Sequence[DiffItem],
    actor: Actor,
    full_reload: bool = False,
    audit_before: Any = None,
    audit_after: Any = None,
) -> int:
    """Append the feed row and the audit row; the last step of every write.

    On PostgreSQL the feed lock makes ids follow commit order, and the
    NOTIFY is delivered at commit."""
    if tx.is_postgres:
        await tx.execute(_LOCK_FEED, _FEED_LOCK_KEY)
    now = tx.time(datetime.now(UTC))
    removed_json = [list(i) for i in removed]
    added_json = [list(i) for i in added]
    row = await tx.fetchrow(
        _INSERT_CHANGE, zone.id, zone.name, serial, previous_serial, kind, full_reload,
        tx.json({"removed": removed_json, "added": added_json}), actor.label, now,
    )
    assert row is not None
    change_id = int(row[0])
    await tx.execute(
        _INSERT_AUDIT, now, zone.account_id if actor.account_id is None else actor.account_id,
        actor.user_id, actor.label, actor.source_ip, actor.credential, f"zone.{kind}", zone.name,
        tx.json(audit_before if audit_before is not None else removed_json),
        tx.json(audit_after if audit_after is not None else added_json), change_id,
    )
    if tx.is_postgres:
        await tx.execute(_NOTIFY, FEED_CHANNEL, str(change_id))
    return change_id


def _bump(zone: Zone, at_least: int = 0) -> int:
    previous = zone.serial
    zone.serial = max(next_serial(previous, _today()), at_least)
    zone.updated_at = datetime.now(UTC)
    return previous


async def create_zone(
    session: AsyncSession,
    origin: dns.name.Name,
    soa: SoaFields,
    actor: Actor,
    *,
    account_id: int | None = None,
    rrsets: Sequence[RRsetData] = (),
    serial_at_least: int = 0,
) -> WriteResult:
    name = origin.to_text()
    if await get_zone(session, name) is not None:
        raise ZoneExists(name)
    problems = check_zone(origin, rrsets)
    if problems:
        raise ZoneConflict(name, [str(p) for p in problems])
    zone = Zone(
        name=name,
        account_id=account_id,
        serial=max(next_serial(0, _today()), serial_at_least),
        soa_ttl=soa.ttl,
        soa_mname=soa.mname,
        soa_rname=soa.rname,
        soa_refresh=soa.refresh,
        soa_retry=soa.retry,
        soa_expire=soa.expire,
        soa_minimum=soa.minimum,
    )
    session.add(zone)
    await session.flush()
    rows = [_Rows.of(r) for r in rrsets]
    await _insert_rrsets(session, zone.id, rows)
    _, added = _diff((), rows)
    change_id = await _append_change(
        SessionTx(session), zone, zone.serial,
        kind="create", previous_serial=None, removed=(), added=added,
        actor=actor, full_reload=True,
    )
    return WriteResult(name, zone.serial, change_id, (), added)


async def replace_zone(
    session: AsyncSession, content: ZoneContent, actor: Actor, *, create: bool = True,
    default_soa: SoaFields | None = None,
) -> WriteResult:
    """Replace every RRset of the zone with `content` (a master-file import)."""
    origin = content.origin
    name = origin.to_text()
    soa = _soa_fields(content) or default_soa
    file_serial = content.soa.serial if content.soa is not None else 0
    zone = await get_zone(session, name, for_update=True)
    if zone is None:
        if not create:
            raise ZoneNotFound(name)
        if soa is None:
            raise ZoneStoreError(f"zone {name}: a new zone needs an SOA record")
        return await create_zone(
            session, origin, soa, actor, rrsets=content.rrsets, serial_at_least=file_serial
        )
    problems = check_zone(origin, content.rrsets)
    if problems:
        raise ZoneConflict(name, [str(p) for p in problems])
    old = await _stored_rows(session, zone.id)
    rows = [_Rows.of(r) for r in content.rrsets]
    removed, added = _diff(old.values(), rows)
    await session.execute(delete(RRset).where(RRset.zone_id == zone.id))
    await _insert_rrsets(session, zone.id, rows)
    if soa is not None:
        _apply_soa(zone, soa)
    # A file whose serial is ahead of ours (secondaries may hold it) moves ours there.
    previous = _bump(zone, at_least=file_serial)
    change_id = await _append_change(
        SessionTx(session), zone, zone.serial,
        kind="replace", previous_serial=previous, removed=removed, added=added,
        actor=actor, full_reload=True,
    )
    return WriteResult(name, zone.serial, change_id, removed, added)


def _soa_fields(content: ZoneContent) -> SoaFields | None:
    if content.soa is None:
        return None
    soa = content.soa
    return SoaFields(
        mname=soa.mname.to_text(), rname=soa.rname.to_text(),
        ttl=content.soa_ttl if content.soa_ttl is not None else soa.minimum,
        refresh=soa.refresh, retry=soa.retry, expire=soa.expire, minimum=soa.minimum,
    )


def _apply_soa(zone: Zone, soa: SoaFields) -> None:
    zone.soa_mname, zone.soa_rname, zone.soa_ttl = soa.mname, soa.rname, soa.ttl
    zone.soa_refresh, zone.soa_retry = soa.refresh, soa.retry
    zone.soa_expire, zone.soa_minimum = soa.expire, soa.minimum


@dataclass(frozen=True, slots=True)
class ZoneRow:
    """A zone's row as an edit needs it (no ORM object), read with its lock."""

    id: int
    name: str
    account_id: int | None
    business_unit_id: int | None
    status: ZoneStatus
    serial: int
    unit_allowlist: tuple[str, ...] = ()  # the zone's business unit's
    # zones.created_at as the driver returns it (SQLite: the stored text), when
    # read (read_for_edit): with the id, it tells this zone from one hosted
    # again under the same name (see _counts).
    created_at: object = None


_READ_ZONE = (
    "SELECT z.id, z.name, z.account_id, z.business_unit_id, z.status, z.serial, b.ip_allowlist"
    " FROM zones z LEFT JOIN business_units b ON b.id = z.business_unit_id"
    " WHERE z.name = $1"
)
_LOCK_ZONE = _READ_ZONE + " FOR UPDATE OF z"


async def lock_zone(tx: Tx, name: str) -> ZoneRow | None:
    """The zone `name`, locked until the end of `tx` (FOR UPDATE on PostgreSQL;
    on SQLite the transaction holds the database's write lock). Outside a
    transaction (`tx.in_transaction` False) it is only read: apply_changes()
    checks under the lock, in its write, that its serial has not moved."""
    row = await tx.fetchrow(_LOCK_ZONE if tx.in_transaction else _READ_ZONE, name)
    if row is None:
        return None
    allowlist = tx.json_out(row[6]) if row[6] is not None else []
    return ZoneRow(row[0], row[1], row[2], row[3], ZoneStatus(row[4]), row[5],
                   tuple(allowlist or ()))


# What the zone rules can involve for an edit at some names: those names and
# their ancestors (a DNAME that would occlude a name is at one of them), found
# through the unique index, with the records of the RRsets at the edited
# names (the diff's "before"), in one statement. That keeps an edit of a
# 100,000-name zone from reading it all (the DNAMEs used to be read with a
# scan of the zone: 1.8 ms per edit at 10,000 RRsets on SQLite).
_NEAR = (
    "SELECT s.id, s.name, s.rdtype, s.ttl, r.content, r.wire FROM rrsets s"
    " LEFT JOIN records r ON r.rrset_id = s.id AND s.name = ANY($2)"
    " WHERE s.zone_id = $1 AND s.name = ANY($3) ORDER BY s.id, r.id"
)
# A DNAME being added needs the whole zone's names.
_WHOLE = (
    "SELECT s.id, s.name, s.rdtype, s.ttl, r.content, r.wire FROM rrsets s"
    " LEFT JOIN records r ON r.rrset_id = s.id AND s.name = ANY($2)"
    " WHERE s.zone_id = $1 ORDER BY s.id, r.id"
)
_DELETE_RRSETS = "DELETE FROM rrsets WHERE id = ANY($1)"
_INSERT_RRSET = (
    "INSERT INTO rrsets (zone_id, name, rdtype, ttl) VALUES ($1, $2, $3, $4) RETURNING id"
)
_INSERT_RRSETS = "INSERT INTO rrsets (zone_id, name, rdtype, ttl) VALUES ($1, $2, $3, $4)"
_INSERT_RRSETS_PG = (
    "INSERT INTO rrsets (zone_id, name, rdtype, ttl)"
    " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[]) RETURNING id, name, rdtype"
)
_RRSET_IDS = "SELECT id, name, rdtype FROM rrsets WHERE zone_id = $1 AND name = ANY($2)"
_INSERT_RECORDS = "INSERT INTO records (rrset_id, content, wire) VALUES ($1, $2, $3)"
_INSERT_RECORDS_PG = (
    "INSERT INTO records (rrset_id, content, wire)"
    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])"
)
_SET_SERIAL = "UPDATE zones SET serial = $1, updated_at = $2 WHERE id = $3"
_RECORD_COUNT = (
    "SELECT count(*) FROM records r JOIN rrsets s ON s.id = r.rrset_id WHERE s.zone_id = $1"
)


async def _stored_near(
    tx: Tx, zone_id: int, near: Iterable[str] | None, touched: set[tuple[str, int]]
) -> tuple[dict[tuple[str, int], int], list[_Rows]]:
    """(name, rdtype) -> rrset id of the RRsets the rules involve (all with
    `near` None), and the stored rows of those at `touched`."""
    names = tx.array(sorted({name for name, _ in touched}))
    if near is None:
        rows = await tx.fetch(_WHOLE, zone_id, names)
    else:
        related = {ancestor for name in near for ancestor in _ancestors(name)}
        rows = await tx.fetch(_NEAR, zone_id, names, tx.array(sorted(related)))
    return _split_near(rows, touched)


def _split_near(
    rows: Iterable[Row], touched: Collection[tuple[str, int]]
) -> tuple[dict[tuple[str, int], int], list[_Rows]]:
    """_stored_near()'s answer from rows (rrset id, name, rdtype, ttl,
    content, wire), content NULL past the RRsets at the edited names."""
    index: dict[tuple[str, int], int] = {}
    records: dict[tuple[str, int], tuple[int, list[str], list[bytes]]] = {}
    for rrset_id, name, rdtype, ttl, content, wire in rows:
        key = (name, rdtype)
        index[key] = rrset_id
        if key in touched and content is not None:
            entry = records.setdefault(key, (ttl, [], []))
            entry[1].append(content)
            entry[2].append(bytes(wire))
    old = [_Rows(key[0], key[1], ttl, tuple(contents), tuple(wires))
           for key, (ttl, contents, wires) in records.items()]
    return index, old


# The reads of an edit at some names, in one statement (the zone API's RRset
# routes, storage.zones.read_for_edit): the zone row; the rights granted on
# it to the user $3 (NULL: none read); the RRsets _NEAR reads (at the
# ancestors $9 of the edited names $2, with the records of those at $2: all
# the zone's RRsets when $9 is left out, as _WHOLE); and the zone's record
# count, only when the edit may grow the zone (its $4 new records are more
# than those stored at its names $2 and types $5: a one-RRset edit that
# replaces as many records as it writes needs none) and this process does
# not know it already (the zone is not zone $6 created at $8, at serial $7,
# see _counts): a count is a pass over the zone's records, 30 ms at 100,000.
# The subqueries name no column of the outer row, so each runs at most once
# (PostgreSQL's InitPlans, SQLite's constant subqueries), and the CASE runs
# the count only when needed.
_EDIT_READ = """
WITH z AS (SELECT z.id, z.name, z.account_id, z.business_unit_id, z.status, z.serial,
                  b.ip_allowlist, z.created_at
           FROM zones z LEFT JOIN business_units b ON b.id = z.business_unit_id
           WHERE z.name = $1),
near AS (SELECT s.id, s.name, s.rdtype, s.ttl, r.id AS record_id, r.content, r.wire
         FROM rrsets s LEFT JOIN records r ON r.rrset_id = s.id AND s.name = ANY($2)
         WHERE s.zone_id = (SELECT id FROM z){near})
SELECT z.id, z.name, z.account_id, z.business_unit_id, z.status, z.serial, z.ip_allowlist,
       (SELECT string_agg(u."right", ',') FROM user_rights u
        WHERE u.user_id = $3 AND u.zone_id = (SELECT id FROM z)),
       CASE WHEN $4 > (SELECT count(*) FROM near
                       WHERE content IS NOT NULL AND rdtype = ANY($5))
                 AND NOT ((SELECT id FROM z) = $6 AND (SELECT serial FROM z) = $7
                          AND (SELECT created_at FROM z) = $8)
            THEN (SELECT count(*) FROM records r JOIN rrsets s ON s.id = r.rrset_id
                  WHERE s.zone_id = (SELECT id FROM z)) END,
       z.created_at, n.id, n.name, n.rdtype, n.ttl, n.content, n.wire
FROM z LEFT JOIN near n ON true ORDER BY n.id, n.record_id
"""
_EDIT_READ_NEAR = _EDIT_READ.format(near=" AND s.name = ANY($9)")
_EDIT_READ_WHOLE = _EDIT_READ.format(near="")
# "Count whatever is stored": the edit's new records are not known before the read.
_ALWAYS = 2**62

# Zone name -> (zone id, created_at, serial, record count) as this process
# last read or wrote the zone, with the write committed. Those name one
# content of one zone: every write to a zone moves its serial (so another
# process's write, or a storage writer's, makes the next growing edit count
# again), and a zone deleted and hosted again under the same name differs
# in created_at (microseconds, as stored) even where it gets the same id
# back (SQLite reuses the largest rowid: INTEGER PRIMARY KEY without
# AUTOINCREMENT) and the same serial (the day's first, or one an edit moved
# it to). created_at is compared as the driver returns it (SQLite's stored
# text, PostgreSQL's timestamptz), read in the same statement. So a growing
# edit of the zone at that serial needs no count; creating RRsets in a big
# zone then costs what it costs in a small one.
_COUNTS_MAX = 4096
_counts: dict[str, tuple[int, object, int, int]] = {}
_UNKNOWN: tuple[int, object, int, int] = (-1, None, -1, 0)


def _after_write(tx: Tx, zone: ZoneRow, serial: int, records: int) -> None:
    """Remember `records` at `serial` once the write that made them commits
    (a rolled-back serial could be reused by another content)."""
    tx.after_commit(lambda: _remember_count(zone, serial, records))


def _remember_count(zone: ZoneRow, serial: int, records: int) -> None:
    if zone.created_at is None:  # not read by read_for_edit: no key
        return
    if len(_counts) >= _COUNTS_MAX and zone.name not in _counts:
        _counts.clear()
    _counts[zone.name] = (zone.id, zone.created_at, serial, records)


@dataclass(frozen=True, slots=True)
class Near:
    """The RRsets an edit at `names` involves, read by read_for_edit() before
    the edit was planned: those at the names and their ancestors (every
    RRset of the zone when `whole`), the records of those at `names`, and
    the zone's record count when the edit could grow the zone."""

    names: frozenset[str]
    whole: bool
    rows: tuple[Row, ...]
    record_count: int | None

    def covers(self, touched: Iterable[tuple[str, int]], adds_dname: bool) -> bool:
        """Whether these rows are exactly what apply_changes() would read for
        an edit of the RRsets `touched`: at the same names (a rule involves
        only them and their ancestors), and the whole zone if and only if
        the edit adds a DNAME."""
        return self.whole == adds_dname and {name for name, _ in touched} == self.names

    def rrset(self, name: str, rdtype: int) -> RRsetData | None:
        """The RRset stored at (name, rdtype), one of `names`, or None."""
        ttl, wires = 0, []
        for _, row_name, row_type, row_ttl, content, wire in self.rows:
            if row_name == name and row_type == rdtype and content is not None:
                ttl = row_ttl
                wires.append(bytes(wire))
        return _from_wires(name, rdtype, ttl, wires) if wires else None


@dataclass(frozen=True, slots=True)
class EditRead:
    zone: ZoneRow
    granted: tuple[str, ...]  # the rights granted to the user named, if any
    near: Near


async def read_for_edit(
    tx: Tx, zone_name: str, keys: Collection[tuple[str, int]], *, whole: bool = False,
    new_records: int | None = 0, user_id: int | None = None,
) -> EditRead | None:
    """Everything an edit of the RRsets `keys` reads, in one statement
    (_EDIT_READ): the zone, `user_id`'s rights on it, and what
    apply_changes(near=...) needs; None if the zone does not exist.
    `new_records`: the number of records the edit writes (None: not known
    yet), to tell whether the zone's record count is needed.

    Outside a transaction (PostgreSQL, `Database.statements()`) one
    statement reads from one snapshot, so the zone's serial and its RRsets
    agree; apply_changes()'s write then writes only if that serial is still
    the zone's (every write to a zone moves it), so nothing the snapshot
    missed can be overwritten. In a PostgreSQL transaction call lock_zone()
    first: after a wait for the lock this statement sees the other writer's
    commit (READ COMMITTED takes a snapshot per statement), which one
    statement that both locked and read would not. On SQLite the
    transaction already holds the database's write lock."""
    names = sorted({name for name, _ in keys})
    known = _counts.get(zone_name, _UNKNOWN)
    args: list[object] = [
        zone_name, tx.array(names), user_id, _ALWAYS if new_records is None else new_records,
        tx.array(sorted({rdtype for _, rdtype in keys})), known[0], known[2], known[1]]
    if not whole:
        args.append(tx.array(sorted({a for name in names for a in _ancestors(name)})))
    rows = await tx.fetch(_EDIT_READ_WHOLE if whole else _EDIT_READ_NEAR, *args)
    if not rows:
        return None
    first = rows[0]
    allowlist = tx.json_out(first[6]) if first[6] is not None else []
    zone = ZoneRow(first[0], first[1], first[2], first[3], ZoneStatus(first[4]), first[5],
                   tuple(allowlist or ()), first[9])
    granted = tuple(first[7].split(",")) if first[7] else ()
    near = tuple(tuple(row[10:]) for row in rows if row[10] is not None)
    count = int(first[8]) if first[8] is not None else None
    if count is None and known[:3] == (zone.id, zone.created_at, zone.serial):
        count = known[3]
    elif count is not None:  # of committed rows: nothing is written before this read
        _remember_count(zone, zone.serial, count)
    return EditRead(zone, granted, Near(frozenset(names), whole, near, count))


async def _insert_rows(tx: Tx, zone_id: int, rrsets: Sequence[_Rows]) -> None:
    if not rrsets:
        return
    if len(rrsets) == 1:
        row = await tx.fetchrow(_INSERT_RRSET, zone_id, rrsets[0].name, rrsets[0].rdtype,
                                rrsets[0].ttl)
        assert row is not None
        ids = [int(row[0])]
    else:
        if tx.is_postgres:
            stored = await tx.fetch(_INSERT_RRSETS_PG, zone_id, [r.name for r in rrsets],
                                    [r.rdtype for r in rrsets], [r.ttl for r in rrsets])
        else:
            await tx.executemany(_INSERT_RRSETS,
                                 [(zone_id, r.name, r.rdtype, r.ttl) for r in rrsets])
            stored = await tx.fetch(_RRSET_IDS, zone_id,
                                    tx.array(sorted({r.name for r in rrsets})))
        by_key = {(name, rdtype): rrset_id for rrset_id, name, rdtype in stored}
        ids = [by_key[(r.name, r.rdtype)] for r in rrsets]
    if tx.is_postgres:
        rrset_ids: list[int] = []
        contents: list[str] = []
        wires: list[bytes] = []
        for rrset_id, r in zip(ids, rrsets, strict=True):
            rrset_ids.extend([rrset_id] * len(r.contents))
            contents.extend(r.contents)
            wires.extend(r.wires)
        await tx.execute(_INSERT_RECORDS_PG, rrset_ids, contents, wires)
    else:
        await tx.executemany(_INSERT_RECORDS, [
            (rrset_id, content, wire)
            for rrset_id, r in zip(ids, rrsets, strict=True)
            for content, wire in zip(r.contents, r.wires, strict=True)
        ])


async def apply_changes(
    db: AsyncSession | Tx, zone_name: str | Zone | ZoneRow, changes: Sequence[RRsetChange],
    actor: Actor, *, kind: str = "update", max_records: int | None = None,
    near: Near | None = None,
) -> WriteResult:
    """Apply RRset changes atomically; zone rules are checked on the result.

    `db` is an ORM session or a plain driver transaction (storage.driver);
    the statements are the same. `zone_name` may be the zone itself, read
    with its lock in this transaction by a caller that needed it anyway (an
    ORM `Zone` gets its new serial too).

    With `db` outside a transaction (PostgreSQL, `Database.statements()`),
    the zone and its RRsets are read unlocked and the write is one statement
    (its own transaction) that first locks the zone and writes only if its
    serial is still the one read (every write to a zone moves its serial):
    otherwise ZoneChanged, nothing written. `max_records`: an edit that
    would take the zone past it is refused before writing (ZoneFull).

    `near`: what read_for_edit() read for these changes (in this
    transaction, or at the zone's serial `zone_name` carries), so that
    nothing is read again; ignored unless it covers them (Near.covers)."""
    tx = SessionTx(db) if isinstance(db, AsyncSession) else db
    if isinstance(zone_name, str):
        locked = await lock_zone(tx, zone_name)
        if locked is None:
            raise ZoneNotFound(zone_name)
        zone: ZoneRow | Zone = locked
    else:
        zone = zone_name
    origin = name_of(zone.name)
    puts = [c.rrset for c in changes if c.rrset is not None]
    deletes = [(c.name, c.rdtype) for c in changes if c.rrset is None]
    adds_dname = any(r.rdtype == dns.rdatatype.DNAME for r in puts)
    touched = {(c.owner, int(c.rdtype)) for c in changes}
    if near is not None and not near.covers(touched, adds_dname):
        near = None
    if near is not None:
        index, old = _split_near(near.rows, touched)
    else:
        index, old = await _stored_near(
            tx, zone.id, None if adds_dname else [name for name, _ in touched], touched)
    existing = [(name_of(name), rdtype) for name, rdtype in index]
    problems = check_edit(origin, existing, put=puts, delete=deletes)
    if problems:
        raise ZoneConflict(zone.name, [str(p) for p in problems])
    new = [_Rows.of(r) for r in puts]
    removed, added = _diff(old, new)
    if not removed and not added:
        return WriteResult(zone.name, zone.serial, 0)
    previous = zone.serial
    serial = next_serial(previous, _today())
    now = datetime.now(UTC)
    count = near.record_count if near is not None else None
    if max_records is not None and len(added) > len(removed):
        if count is None:
            row = await tx.fetchrow(_RECORD_COUNT, zone.id)
            count = int(row[0]) if row else 0
        if count + len(added) - len(removed) > max_records:
            raise ZoneFull(zone.name, max_records)
    if tx.is_postgres:
        change_id = await _write_pg(tx, zone, index, touched, new, serial, now, kind=kind,
                                    previous_serial=previous, removed=removed, added=added,
                                    actor=actor)
    else:
        stale = [index[k] for k in touched if k in index]
        if stale:
            await tx.execute(_DELETE_RRSETS, tx.array(stale))
        await _insert_rows(tx, zone.id, new)
        await tx.execute(_SET_SERIAL, serial, tx.time(now), zone.id)
        change_id = await _append_change(
            tx, zone, serial, kind=kind, previous_serial=previous, removed=removed, added=added,
            actor=actor,
        )
    if count is not None and isinstance(zone, ZoneRow):  # the count at the new serial
        _after_write(tx, zone, serial, count + len(added) - len(removed))
    if isinstance(zone, Zone):  # the caller's object follows; it was written just now
        set_committed_value(zone, "serial", serial)
        set_committed_value(zone, "updated_at", now)
    return WriteResult(zone.name, serial, change_id, removed, added)


# The whole write of an edit in one round trip to PostgreSQL: the zone
# locked and its serial checked (z), RRsets gone, RRsets kept (new TTL,
# records replaced), RRsets made and their records, the serial, then the
# feed row (its id taken under the feed lock), the audit row and the NOTIFY
# (delivered at commit). The main query reads `change`, so z's lock is
# taken first, then the feed lock; the other sub-statements run after it
# and write only if z found the zone at the serial the edit was planned
# from (else no row comes back and nothing is written). They share one
# snapshot and touch disjoint rows. In a transaction that holds the zone's
# lock z always matches. Outside one (autocommit: the statement is its own
# transaction, the COMMIT no round trip), the snapshot may predate z's wait
# for the lock, but a writer we waited for moved the serial (every write to
# a zone does), so z is empty; if z matches, the snapshot is current.
_WRITE_PG = """
WITH z AS MATERIALIZED (SELECT id FROM zones WHERE id = $4 AND serial = $17 FOR UPDATE),
gone AS (DELETE FROM rrsets WHERE id = ANY($1::bigint[]) AND EXISTS (SELECT FROM z)),
kept AS (UPDATE rrsets s SET ttl = v.ttl FROM unnest($2::bigint[], $3::bigint[]) AS v(id, ttl)
         WHERE s.id = v.id AND EXISTS (SELECT FROM z)),
old AS (DELETE FROM records WHERE rrset_id = ANY($2::bigint[]) AND EXISTS (SELECT FROM z)),
made AS (INSERT INTO rrsets (zone_id, name, rdtype, ttl)
         SELECT $4, * FROM unnest($5::text[], $6::int[], $7::bigint[])
         WHERE EXISTS (SELECT FROM z)
         RETURNING id, name, rdtype),
recs AS (INSERT INTO records (rrset_id, content, wire)
         SELECT coalesce(v.id, made.id), v.content, v.wire
         FROM unnest($8::bigint[], $9::text[], $10::int[], $11::text[], $12::bytea[])
              AS v(id, name, rdtype, content, wire)
         LEFT JOIN made ON v.id IS NULL AND made.name = v.name AND made.rdtype = v.rdtype
         WHERE EXISTS (SELECT FROM z)),
zone AS (UPDATE zones SET serial = $13, updated_at = $14
         WHERE id = $4 AND EXISTS (SELECT FROM z)),
feed_lock AS (SELECT pg_advisory_xact_lock($15) FROM z),
change AS (INSERT INTO zone_changes (zone_id, zone_name, serial, previous_serial, kind,
                                     full_reload, diff, actor, created_at)
           SELECT $4, $16, $13, $17, $18, false, $19, $20, $14 FROM feed_lock RETURNING id),
audit AS (INSERT INTO audit_log (at, account_id, user_id, actor, source_ip, credential, action,
                                 object_type, object_name, before, after, change_id)
          SELECT $14, $21, $22, $20, $23, $24, $25, 'zone', $16, $26, $27, change.id FROM change)
SELECT id, pg_notify($28, id::text) FROM change
"""


async def _write_pg(
    tx: Tx, zone: ZoneRow | Zone, index: dict[tuple[str, int], int],
    touched: set[tuple[str, int]], new: Sequence[_Rows], serial: int, now: datetime, *,
    kind: str, previous_serial: int, removed: Sequence[DiffItem], added: Sequence[DiffItem],
    actor: Actor,
) -> int:
    put_keys = {(r.name, r.rdtype) for r in new}
    gone = [index[k] for k in touched if k in index and k not in put_keys]
    kept = {(r.name, r.rdtype): index[(r.name, r.rdtype)] for r in new
            if (r.name, r.rdtype) in index}
    made = [r for r in new if (r.name, r.rdtype) not in kept]
    record_ids: list[int | None] = []
    record_names: list[str] = []
    record_types: list[int] = []
    contents: list[str] = []
    wires: list[bytes] = []
    for r in new:
        rrset_id = kept.get((r.name, r.rdtype))
        for content, wire in zip(r.contents, r.wires, strict=True):
            record_ids.append(rrset_id)
            record_names.append(r.name)
            record_types.append(r.rdtype)
            contents.append(content)
            wires.append(wire)
    kept_rows = [r for r in new if (r.name, r.rdtype) in kept]
    removed_json = [list(i) for i in removed]
    added_json = [list(i) for i in added]
    row = await tx.fetchrow(
        _WRITE_PG,
        gone, [kept[(r.name, r.rdtype)] for r in kept_rows], [r.ttl for r in kept_rows],
        zone.id, [r.name for r in made], [r.rdtype for r in made], [r.ttl for r in made],
        record_ids, record_names, record_types, contents, wires,
        serial, now, _FEED_LOCK_KEY, zone.name, previous_serial, kind,
        tx.json({"removed": removed_json, "added": added_json}), actor.label,
        zone.account_id if actor.account_id is None else actor.account_id, actor.user_id,
        actor.source_ip, actor.credential, f"zone.{kind}", tx.json(removed_json),
        tx.json(added_json), FEED_CHANNEL,
    )
    if row is None:
        raise ZoneChanged(zone.name)
    return int(row[0])


async def set_zone_status(
    session: AsyncSession, zone_name: str, status: ZoneStatus, actor: Actor
) -> WriteResult:
    """Suspend or reactivate a zone (billing); followers reload it."""
    zone = await find_zone(session, zone_name, for_update=True)
    if zone.status == status:
        return WriteResult(zone.name, zone.serial, 0)
    before = zone.status.value
    zone.status = status
    previous = _bump(zone)
    change_id = await _append_change(
        SessionTx(session), zone, zone.serial,
        kind="status", previous_serial=previous, removed=(), added=(),
        actor=actor, full_reload=True, audit_before={"status": before},
        audit_after={"status": status.value},
    )
    return WriteResult(zone.name, zone.serial, change_id)


async def delete_zone(session: AsyncSession, zone_name: str, actor: Actor) -> WriteResult:
    zone = await find_zone(session, zone_name, for_update=True)
    old = await _stored_rows(session, zone.id)
    removed, _ = _diff(old.values(), ())
    await session.delete(zone)
    await session.flush()
    change_id = await _append_change(
        SessionTx(session), zone, zone.serial,
        kind="delete", previous_serial=zone.serial, removed=removed, added=(),
        actor=actor, full_reload=True,
    )
    return WriteResult(zone.name, zone.serial, change_id, removed, ())


async def list_zones(session: AsyncSession) -> list[tuple[str, int, ZoneStatus, int]]:
    """(name, serial, status, rrset count) of every zone, by name."""
    count = (
        select(func.count(RRset.id)).where(RRset.zone_id == Zone.id).scalar_subquery()
    )
    rows = await session.execute(
        select(Zone.name, Zone.serial, Zone.status, count).order_by(Zone.name)
    )
    return [cast(tuple[str, int, ZoneStatus, int], tuple(row)) for row in rows]

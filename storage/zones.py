"""Writes to zones: every edit is one transaction with its serial bump,
change-feed row and audit row.

All writers (master-file import, the zone API, billing) go through this
module, so the rules, the serial and the feed cannot be skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
from storage.driver import SessionTx, Tx
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
    """Set an RRset to `rrset`, or delete (name, rdtype) when rrset is None."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rrset: RRsetData | None


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


async def current_rrsets(
    db: AsyncSession | Tx, zone_id: int
) -> dict[tuple[str, int], RRsetData]:
    """The zone's RRsets (SOA excluded), rebuilt as validated values."""
    tx = SessionTx(db) if isinstance(db, AsyncSession) else db
    grouped: dict[tuple[str, int], tuple[int, list[bytes]]] = {}
    for name, rdtype, ttl, wire in await tx.fetch(_CURRENT, zone_id):
        grouped.setdefault((name, rdtype), (ttl, []))[1].append(bytes(wire))
    result: dict[tuple[str, int], RRsetData] = {}
    for (name, rdtype), (ttl, wires) in grouped.items():
        owner = dns.name.from_text(name)
        kind = dns.rdatatype.RdataType.make(rdtype)
        rdatas = [dns.rdata.from_wire(dns.rdataclass.IN, kind, w, 0, len(w)) for w in wires]
        result[(name, rdtype)] = rrset_from_rdatas(owner, kind, ttl, rdatas)
    return result


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
    otherwise ZoneChanged, nothing written. `max_records` is then checked
    before the write, from a count read there (ZoneFull); inside a
    transaction the caller counts after the write instead."""
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
    touched = {(c.name.to_text(), int(c.rdtype)) for c in changes}
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
    if not tx.in_transaction and max_records is not None and len(added) > len(removed):
        row = await tx.fetchrow(_RECORD_COUNT, zone.id)
        if (int(row[0]) if row else 0) + len(added) - len(removed) > max_records:
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

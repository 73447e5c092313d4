"""Zone edits as the API makes them: parse, authorise, gate, write.

Every write is one storage transaction (`storage.zones.apply_changes`: the
RRsets, the serial bump, the change-feed row and the audit row). A dry run
makes the very same write and rolls it back, so the diff it returns is
exactly what the write would do. Before writing, each changed RRset is
checked against the caller's rights (an apex NS change needs
edit_nameservers) and token policies, and the sensitive-action gate runs
once per kind of change (zone edit, name-server change).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import dns.name
import dns.rdatatype
from sqlalchemy.ext.asyncio import AsyncSession

from storage import zones as store
from storage.dnsdata import (
    API_RULES,
    IMPORT_RULES,
    DnsRules,
    InvalidName,
    InvalidRRset,
    RRsetData,
    owner_name,
    parse_rdatatype,
    parse_rrset,
    subname,
)
from storage.driver import Tx
from storage.models import Right, UserRole, Zone
from storage.zones import (
    Near,
    RRsetChange,
    WriteResult,
    ZoneChanged,
    ZoneConflict,
    ZoneFull,
    ZoneNotFound,
    ZoneRow,
    lock_zone,
    name_of,
    read_for_edit,
)
from zoneapi.access import (
    actor_of,
    edit_access,
    require_active,
    require_sensitive,
    zone_for_write,
    zone_name,
)
from zoneapi.auth import Principal
from zoneapi.errors import ApiError, Forbidden, NotFound, Unprocessable
from zoneapi.keys import Context
from zoneapi.policy import (
    Operation,
    SensitiveKind,
    ZoneAccess,
    can_write,
    has_right,
    right_for_rrset,
)
from zoneapi.schema import JsonObject

DEFAULT_TTL_S = 3600
DiffItem = tuple[str, int, int, str]
Key = tuple[str, int]  # an RRset's (owner as stored, rdtype)
# Builds the changes from the current content, inside the write transaction.
PlanFn = Callable[[AsyncSession, ZoneAccess, dns.name.Name], Awaitable[Sequence[RRsetChange]]]
# Builds an Edit's changes once its zone is read: `Near` holds the RRsets at
# the Edit's keys (and their names' ancestors), the Tx is there for a plan
# that needs more (the whole zone).
BuildFn = Callable[[Tx, ZoneAccess, Near], Awaitable[Sequence[RRsetChange]]]


@dataclass(frozen=True, slots=True)
class Edit:
    """An RRset edit as its request states it, before the zone is read: the
    RRsets it names (read together with the zone, in one statement) and how
    its changes are built from what is stored there. `keys` None: `build`
    reads what it needs (a replacement of the whole zone)."""

    build: BuildFn
    keys: frozenset[Key] | None = None
    records: int | None = 0  # records the edit writes; None: not known before the read
    dname: bool = False  # the edit may add a DNAME: its rules need every name of the zone


# An Edit from the zone's origin; it may refuse the request (ApiError), and
# that answer is given only once the caller is known to see the zone.
EditPlan = Callable[[dns.name.Name], Edit]


def changes_edit(changes: Sequence[RRsetChange]) -> Edit:
    """The Edit that makes `changes`, whatever is stored (PUT, PATCH)."""

    async def build(tx: Tx, access: ZoneAccess, near: Near) -> Sequence[RRsetChange]:
        return changes

    return key_edit(changes, build)


def key_edit(changes: Sequence[RRsetChange], build: BuildFn) -> Edit:
    """The Edit of the RRsets `changes` name, built by `build` from what is
    stored there, that writes what `changes` write."""
    puts = [c.rrset for c in changes if c.rrset is not None]
    return Edit(build, frozenset((c.owner, int(c.rdtype)) for c in changes),
                sum(len(r.rdatas) for r in puts),
                any(r.rdtype == dns.rdatatype.DNAME for r in puts))


@dataclass(frozen=True, slots=True)
class Outcome:
    result: WriteResult
    dry_run: bool
    nameservers_changed: bool


class _Rollback(Exception):
    def __init__(self, result: WriteResult) -> None:
        super().__init__("dry run")
        self.result = result
        self.access: ZoneAccess | None = None


@lru_cache(maxsize=1024)
def type_text(rdtype: int) -> str:
    return str(dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype)))


@lru_cache(maxsize=16384)
def _subname_of(name: str, origin: dns.name.Name) -> str:
    return subname(name_of(name), origin)


@lru_cache(maxsize=16384)
def _subname_in(owner: str, zone: str) -> str:
    """subname() of names as stored: keyed by text, cheaper to hash than Names."""
    return subname(name_of(owner), name_of(zone))


def type_code_of(text: str) -> int:
    """The rdtype whose type_text() is `text` in upper case (as the RRset list's
    `type` filter compares them), or -1 if none is."""
    wanted = text.upper()
    try:
        code = int(dns.rdatatype.from_text(wanted))
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        return -1
    return code if 0 <= code <= 65535 and type_text(code) == wanted else -1


def diff_json(items: Iterable[DiffItem], origin: dns.name.Name) -> list[dict[str, object]]:
    return [{"name": name, "subname": _subname_of(name, origin), "type": type_text(rdtype),
             "ttl": ttl, "content": content} for name, rdtype, ttl, content in items]


def rrset_json(rrset: RRsetData, origin: dns.name.Name) -> dict[str, object]:
    return {
        "name": rrset.name.to_text(), "subname": subname(rrset.name, origin),
        "type": type_text(int(rrset.rdtype)), "ttl": rrset.ttl,
        "records": list(rrset.rdata_texts()),
    }


def parse_key(origin: dns.name.Name, name: str, rdtype: str) -> tuple[dns.name.Name,
                                                                        dns.rdatatype.RdataType]:
    """An RRset's (owner, type) from the URL or a body; 400/422 with the reason."""
    try:
        owner = owner_name(name, origin)
    except InvalidName as exc:
        raise Unprocessable("invalid_name", str(exc)) from None
    try:
        return owner, parse_rdatatype(rdtype)
    except ValueError as exc:
        raise Unprocessable("invalid_type", str(exc)) from None


def parse_items(origin: dns.name.Name, items: Sequence[JsonObject],
                rules: DnsRules = API_RULES) -> list[RRsetChange]:
    """RRset changes from body items {name, type, ttl, records}; records empty or
    null deletes. Raises 422 `invalid_rrsets` listing every bad item and why."""
    changes: list[RRsetChange] = []
    errors: list[dict[str, object]] = []
    seen: set[tuple[str, int]] = set()
    for i, item in enumerate(items):
        name, rdtype = item.get("name", ""), item.get("type", "")
        ttl, records = item.get("ttl"), item.get("records")
        name_text = name if isinstance(name, str) else ""
        type_str = rdtype if isinstance(rdtype, str) else ""
        try:
            owner = owner_name(name_text, origin)
            t = parse_rdatatype(type_str)
            key = (owner.to_text(), int(t))
            if key in seen:
                raise ValueError("this RRset appears twice in the request")
            seen.add(key)
            if not records:
                changes.append(RRsetChange(owner, t, None, key[0]))
                continue
            texts = [r for r in records if isinstance(r, str)] if isinstance(records, list) else []
            ttl_s = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else DEFAULT_TTL_S
            changes.append(RRsetChange(owner, t, parse_rrset(origin, owner, t, ttl_s, texts,
                                                             rules), key[0]))
        except InvalidRRset as exc:
            errors.append({"index": i, "name": name_text, "type": type_str,
                           "reasons": list(exc.reasons)})
        except (InvalidName, ValueError) as exc:
            errors.append({"index": i, "name": name_text, "type": type_str,
                           "reasons": [str(exc)]})
    if errors:
        first = errors[0]
        raise Unprocessable(
            "invalid_rrsets",
            f"{len(errors)} RRset(s) refused, e.g. {first['name'] or '@'} {first['type']}: "
            f"{first['reasons'][0]}",  # type: ignore[index]
            errors=errors)
    return changes


def authorise(principal: Principal, access: ZoneAccess, origin: dns.name.Name,
              changes: Sequence[RRsetChange]) -> set[SensitiveKind]:
    """403 on the first change the caller may not make; the kinds of change made."""
    kinds: set[SensitiveKind] = set()
    for change in changes:
        owner = change.owner
        rdtype = type_text(int(change.rdtype))
        decision = can_write(access, principal.token, owner, _subname_in(owner, access.name),
                             rdtype)
        if not decision.allowed:
            raise Forbidden(decision.code, decision.detail, name=owner, type=rdtype)
        right = right_for_rrset(access.name, owner, rdtype)
        kinds.add(SensitiveKind.EDIT_NAMESERVERS if right.value == "edit_nameservers"
                  else SensitiveKind.EDIT_ZONE)
    return kinds


def check_if_match(zone: Zone | ZoneRow, if_match: str | None) -> None:
    """Optimistic concurrency: If-Match carries the zone's ETag (its serial)."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if str(zone.serial) not in wanted:
        raise ApiError(412, "precondition_failed",
                       f"the zone changed: its serial is {zone.serial}",
                       extra={"serial": zone.serial}, headers={"ETag": f'"{zone.serial}"'})


async def write(
    session: AsyncSession | Tx, ctx: Context, principal: Principal, access: ZoneAccess,
    zone: Zone | ZoneRow, changes: Sequence[RRsetChange], *, dry_run: bool = False,
    if_match: str | None = None, near: Near | None = None,
) -> Outcome:
    """Authorise, gate and apply `changes` in the caller's transaction (or,
    outside one, at the serial `zone` was read at); `near`: what
    read_for_edit() read with `zone`."""
    require_active(principal)
    if len(changes) > ctx.config.max_rrsets_per_request:
        raise ApiError(413, "too_many_rrsets",
                       f"at most {ctx.config.max_rrsets_per_request} RRsets per request")
    origin = name_of(access.name)
    if not changes:  # a write that turns out empty still needs a writer
        decision = has_right(access, Right.EDIT_ZONE)
        if not decision.allowed:
            raise Forbidden(decision.code, decision.detail)
    kinds = authorise(principal, access, origin, changes)
    for kind in sorted(kinds):
        await require_sensitive(session, ctx, principal, Operation(kind, access.name),
                                access.unit_allowlist)
    if if_match is not None:  # the write happens at this serial or not at all
        check_if_match(zone, if_match)
    try:
        result = await store.apply_changes(session, zone, changes, actor_of(principal),
                                           max_records=ctx.config.max_records_per_zone,
                                           near=near)
    except ZoneFull:
        raise Unprocessable("too_many_records",
                            f"a zone holds at most {ctx.config.max_records_per_zone} records"
                            ) from None
    except ZoneConflict as exc:
        raise Unprocessable("zone_conflict", "; ".join(exc.reasons[:5]),
                            reasons=exc.reasons) from None
    except ZoneNotFound:
        raise NotFound(f"zone {access.name} not found", code="zone_not_found") from None
    if dry_run:
        raise _Rollback(result)
    return Outcome(result, False, SensitiveKind.EDIT_NAMESERVERS in kinds and result.change_id > 0)


async def write_transaction(
    ctx: Context, principal: Principal, zone_text: str,
    plan: PlanFn, *, dry_run: bool = False, if_match: str | None = None,
) -> tuple[ZoneAccess, Outcome]:
    """Open the write transaction, resolve the zone, let `plan` build the
    changes from the current content, and write (or roll back a dry run)."""
    try:
        async with ctx.db.write() as session:
            access, zone = await zone_for_write(session, principal, zone_text)
            origin = name_of(access.name)
            changes = await plan(session, access, origin)
            outcome = await write(session, ctx, principal, access, zone, changes,
                                  dry_run=dry_run, if_match=if_match)
    except _Rollback as rollback:
        return access, Outcome(rollback.result, True, False)
    return access, outcome


# Zones another process was seen editing: their edits lock first for a while.
CONTENDED_S = 1.0
_CONTENDED_MAX = 4096
_contended: dict[str, float] = {}


async def edit_transaction(
    ctx: Context, principal: Principal, zone_text: str,
    plan: EditPlan, *, dry_run: bool = False, if_match: str | None = None,
) -> tuple[ZoneAccess, Outcome]:
    """write_transaction() on a plain driver transaction (storage.driver), for
    plans that need no ORM session: the same checks and the same write, at
    a fraction of the cost. The zone, the caller's rights on it and the
    RRsets the edit names are read in one statement (read_for_edit).

    On PostgreSQL (not a dry run) that read runs outside a transaction and
    the write is one statement, its own transaction, that writes only if
    the zone's serial is still the one read (storage.zones.apply_changes):
    2 round trips besides the token's, and the zone's row lock is held for
    that one statement. Edits of one zone from this process queue, so only
    another process's write makes one start over (ZoneChanged): then in a
    transaction that holds the zone's lock from the start, and so are this
    zone's edits for the next CONTENDED_S seconds (with two processes
    editing one zone, 70% of the edits planned outside a transaction had
    to start over)."""
    name = zone_name(zone_text)
    try:
        edit, refused = plan(name_of(name)), None
    except ApiError as exc:  # told only to a caller who may see the zone
        edit, refused = None, exc
    if not dry_run and _contended.get(name, 0.0) <= time.monotonic():
        try:
            async with ctx.db.statements(queue=f"zone:{name}") as free:
                if free is not None:
                    return await _read_and_write(free, ctx, principal, name, edit, refused,
                                                 if_match=if_match)
        except ZoneChanged:
            if len(_contended) >= _CONTENDED_MAX:
                now = time.monotonic()
                for stale in [k for k, until in _contended.items() if until <= now]:
                    del _contended[stale]
            _contended[name] = time.monotonic() + CONTENDED_S
    try:
        async with ctx.db.transaction(queue=f"zone:{name}") as tx:
            if tx.is_postgres:  # see read_for_edit: the lock first, then the read
                await lock_zone(tx, name)
            return await _read_and_write(tx, ctx, principal, name, edit, refused,
                                         dry_run=dry_run, if_match=if_match)
    except _Rollback as rollback:
        assert rollback.access is not None
        return rollback.access, Outcome(rollback.result, True, False)


async def _read_and_write(
    tx: Tx, ctx: Context, principal: Principal, name: str, edit: Edit | None,
    refused: ApiError | None, *, dry_run: bool = False, if_match: str | None = None,
) -> tuple[ZoneAccess, Outcome]:
    """One statement reads the zone, the caller's rights and what the edit
    needs, then the edit is built and written. Outside a transaction that
    read is safe because the write checks the zone's serial again under
    its lock (storage.zones.read_for_edit)."""
    keys = edit.keys if edit is not None and edit.keys is not None else frozenset()
    read = await read_for_edit(
        tx, name, keys, whole=edit is not None and edit.dname,
        new_records=edit.records if edit is not None and edit.keys is not None else 0,
        user_id=principal.user_id if principal.role == UserRole.USER else None)
    if read is None:
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    access = edit_access(principal, read.zone, read.granted)
    if refused is not None:
        raise refused
    assert edit is not None
    changes = await edit.build(tx, access, read.near)
    try:
        return access, await write(tx, ctx, principal, access, read.zone, changes,
                                   dry_run=dry_run, if_match=if_match, near=read.near)
    except _Rollback as rollback:
        rollback.access = access
        raise


async def current(db: AsyncSession | Tx, zone_id: int, *, name: str | None = None,
                  rdtype: int | None = None) -> dict[tuple[str, int], RRsetData]:
    """The zone's RRsets (SOA excluded); only those at the owner `name` (as
    stored) and/or of type `rdtype` when given."""
    return await store.current_rrsets(db, zone_id, name=name, rdtype=rdtype)


def replace_all(current_sets: dict[tuple[str, int], RRsetData],
                wanted: Sequence[RRsetChange]) -> list[RRsetChange]:
    """Changes turning the zone into exactly `wanted` (SOA untouched); RRsets
    that stay the same are left out, so they need no right and no write."""
    keep = {(c.owner, int(c.rdtype)) for c in wanted if c.rrset is not None}
    changes = [c for c in wanted if c.rrset is not None
               and current_sets.get((c.owner, int(c.rdtype))) != c.rrset]
    for (name, rdtype), rrset in current_sets.items():
        if (name, rdtype) not in keep:
            changes.append(RRsetChange(rrset.name, rrset.rdtype, None))
    return changes


def rebuild(items: Iterable[DiffItem], origin: dns.name.Name) -> list[RRsetChange]:
    """RRsets from stored diff items (history); import rules, as they were stored."""
    grouped: dict[tuple[str, int], tuple[int, list[str]]] = {}
    for name, rdtype, ttl, content in items:
        grouped.setdefault((name, rdtype), (ttl, []))[1].append(content)
    out = []
    for (name, rdtype), (ttl, texts) in sorted(grouped.items()):
        owner = dns.name.from_text(name)
        t = dns.rdatatype.RdataType.make(rdtype)
        out.append(RRsetChange(owner, t, parse_rrset(origin, owner, t, ttl, texts, IMPORT_RULES)))
    return out

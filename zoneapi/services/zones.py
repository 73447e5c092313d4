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
from storage.driver import SessionTx, Tx
from storage.models import Right, Zone
from storage.zones import (
    RRsetChange,
    WriteResult,
    ZoneChanged,
    ZoneConflict,
    ZoneFull,
    ZoneNotFound,
    ZoneRow,
    name_of,
)
from zoneapi.access import (
    actor_of,
    require_active,
    require_sensitive,
    zone_for_edit,
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
# Builds the changes from the current content, inside the write transaction.
PlanFn = Callable[[AsyncSession, ZoneAccess, dns.name.Name], Awaitable[Sequence[RRsetChange]]]
# The same on a plain driver transaction (storage.driver): the RRset routes.
TxPlanFn = Callable[[Tx, ZoneAccess, dns.name.Name], Awaitable[Sequence[RRsetChange]]]


@dataclass(frozen=True, slots=True)
class Outcome:
    result: WriteResult
    dry_run: bool
    nameservers_changed: bool


class _Rollback(Exception):
    def __init__(self, result: WriteResult) -> None:
        super().__init__("dry run")
        self.result = result


@lru_cache(maxsize=1024)
def type_text(rdtype: int) -> str:
    return str(dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype)))


@lru_cache(maxsize=16384)
def _subname_of(name: str, origin: dns.name.Name) -> str:
    return subname(name_of(name), origin)


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
                changes.append(RRsetChange(owner, t, None))
                continue
            texts = [r for r in records if isinstance(r, str)] if isinstance(records, list) else []
            ttl_s = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else DEFAULT_TTL_S
            changes.append(RRsetChange(owner, t, parse_rrset(origin, owner, t, ttl_s, texts,
                                                             rules)))
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
        owner = change.name.to_text()
        rdtype = type_text(int(change.rdtype))
        decision = can_write(access, principal.token, owner, subname(change.name, origin), rdtype)
        if not decision.allowed:
            raise Forbidden(decision.code, decision.detail, name=owner, type=rdtype)
        right = right_for_rrset(access.name, owner, rdtype)
        kinds.add(SensitiveKind.EDIT_NAMESERVERS if right.value == "edit_nameservers"
                  else SensitiveKind.EDIT_ZONE)
    return kinds


_RECORD_COUNT = (
    "SELECT count(*) FROM records r JOIN rrsets s ON s.id = r.rrset_id WHERE s.zone_id = $1"
)


async def record_count(db: AsyncSession | Tx, zone_id: int) -> int:
    tx = SessionTx(db) if isinstance(db, AsyncSession) else db
    row = await tx.fetchrow(_RECORD_COUNT, zone_id)
    return int(row[0]) if row is not None else 0


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
    if_match: str | None = None,
) -> Outcome:
    """Authorise, gate and apply `changes` in the caller's transaction."""
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
    if if_match is not None:  # `zone` is locked: the serial cannot move under the check
        check_if_match(zone, if_match)
    # Outside a transaction the record limit is checked before the one-statement write.
    free = isinstance(session, Tx) and not session.in_transaction
    limit = ctx.config.max_records_per_zone if free else None
    try:
        result = await store.apply_changes(session, zone, changes, actor_of(principal),
                                           max_records=limit)
    except ZoneFull:
        raise Unprocessable("too_many_records",
                            f"a zone holds at most {ctx.config.max_records_per_zone} records"
                            ) from None
    except ZoneConflict as exc:
        raise Unprocessable("zone_conflict", "; ".join(exc.reasons[:5]),
                            reasons=exc.reasons) from None
    except ZoneNotFound:
        raise NotFound(f"zone {access.name} not found", code="zone_not_found") from None
    # Counted only when the zone grows, in the same transaction (a refusal rolls back).
    if limit is None and len(result.added) > len(result.removed) and await record_count(
        session, access.zone_id
    ) > ctx.config.max_records_per_zone:
        raise Unprocessable("too_many_records",
                            f"a zone holds at most {ctx.config.max_records_per_zone} records")
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
    plan: TxPlanFn, *, dry_run: bool = False, if_match: str | None = None,
) -> tuple[ZoneAccess, Outcome]:
    """write_transaction() on a plain driver transaction (storage.driver), for
    plans that need no ORM session: the same checks and the same write, at
    a fraction of the cost.

    On PostgreSQL (not a dry run) the reads run outside a transaction and
    the write is one statement, its own transaction, that writes only if
    the zone's serial is still the one read (storage.zones.apply_changes):
    4 round trips instead of 6, and the zone's row lock is held for that
    one statement instead of across 4 round trips. Edits of one zone from
    this process queue, so only another process's write makes one start
    over (ZoneChanged): then in a transaction that holds the zone's lock
    from the start, and so are this zone's edits for the next
    CONTENDED_S seconds (with two processes editing one zone, 70% of the
    edits planned outside a transaction had to start over)."""
    name = zone_name(zone_text)
    if not dry_run and _contended.get(name, 0.0) <= time.monotonic():
        try:
            async with ctx.db.statements(queue=f"zone:{name}") as free:
                if free is not None:
                    access, zone = await zone_for_edit(free, principal, zone_text)
                    changes = await plan(free, access, name_of(access.name))
                    return access, await write(free, ctx, principal, access, zone, changes,
                                               if_match=if_match)
        except ZoneChanged:
            if len(_contended) >= _CONTENDED_MAX:
                now = time.monotonic()
                for stale in [k for k, until in _contended.items() if until <= now]:
                    del _contended[stale]
            _contended[name] = time.monotonic() + CONTENDED_S
    try:
        async with ctx.db.transaction(queue=f"zone:{name}") as tx:
            access, zone = await zone_for_edit(tx, principal, zone_text)
            origin = name_of(access.name)
            changes = await plan(tx, access, origin)
            outcome = await write(tx, ctx, principal, access, zone, changes,
                                  dry_run=dry_run, if_match=if_match)
    except _Rollback as rollback:
        return access, Outcome(rollback.result, True, False)
    return access, outcome


async def current(db: AsyncSession | Tx, zone_id: int) -> dict[tuple[str, int], RRsetData]:
    return await store.current_rrsets(db, zone_id)


def replace_all(current_sets: dict[tuple[str, int], RRsetData],
                wanted: Sequence[RRsetChange]) -> list[RRsetChange]:
    """Changes turning the zone into exactly `wanted` (SOA untouched); RRsets
    that stay the same are left out, so they need no right and no write."""
    keep = {(c.name.to_text(), int(c.rdtype)) for c in wanted if c.rrset is not None}
    changes = [c for c in wanted if c.rrset is not None
               and current_sets.get((c.name.to_text(), int(c.rdtype))) != c.rrset]
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

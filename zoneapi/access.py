"""The checks an authorised route runs, with I/O: zone lookup with the
caller's rights, the active-account rule, and the sensitive-action gate
(allowlisted address, or a fresh step-up for this session or token).

Route authors call these; see zoneapi/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dnsdata import InvalidName, zone_origin
from storage.driver import SessionTx, Tx
from storage.models import AuditEntry, BusinessUnit, Right, UserRight, UserRole, Zone
from storage.zones import Actor, ZoneRow
from zoneapi.auth import Principal
from zoneapi.errors import BadRequest, Forbidden, NotFound
from zoneapi.jsonio import dumps
from zoneapi.keys import Context
from zoneapi.policy import (
    Decision,
    IPNetwork,
    Operation,
    SensitiveKind,
    ZoneAccess,
    account_active,
    allowlisted,
    can_change_security,
    effective_rights,
    parse_networks,
    token_may_see_zone,
)


def enforce(decision: Decision) -> None:
    """Raise the 403 a denied decision stands for."""
    if not decision.allowed:
        raise Forbidden(decision.code, decision.detail)


def zone_name(text: str) -> str:
    """Canonical zone name from a URL part ('Example.COM' -> 'example.com.'), or 400."""
    try:
        return _canonical_zone(text)
    except InvalidName as exc:
        raise BadRequest("invalid_zone_name", str(exc)) from None


@lru_cache(maxsize=4096)
def _canonical_zone(text: str) -> str:
    """Every zone request names its zone: parsed once per distinct text."""
    return str(zone_origin(text).to_text())


def actor_of(principal: Principal) -> Actor:
    """Who writes, for storage's audit log and change feed."""
    return Actor(
        label=principal.actor_label, account_id=principal.account_id,
        user_id=principal.user_id, source_ip=str(principal.source_ip),
        credential=principal.credential,
    )


def require_active(principal: Principal) -> None:
    """Pending (not yet approved) and suspended accounts change nothing."""
    enforce(account_active(principal.account_status))


# Built once: every zone request runs them.
_ZONE_LOOKUP = (
    select(Zone.id, Zone.account_id, Zone.business_unit_id, BusinessUnit.ip_allowlist)
    .outerjoin(BusinessUnit, BusinessUnit.id == Zone.business_unit_id)
    .where(Zone.name == bindparam("name"))
)
_ZONE_FOR_WRITE = (
    select(Zone, BusinessUnit.ip_allowlist)
    .outerjoin(BusinessUnit, BusinessUnit.id == Zone.business_unit_id)
    .where(Zone.name == bindparam("name"))
    .with_for_update(of=Zone)
)
_GRANTED = select(UserRight.right).where(
    UserRight.user_id == bindparam("user_id"), UserRight.zone_id == bindparam("zone_id")
)


async def zone_access(
    session: AsyncSession, principal: Principal, zone_text: str, need: Right = Right.VIEW
) -> ZoneAccess:
    """The zone with the caller's rights on it.

    404 when the caller may not see the zone at all (another client's zone
    looks exactly like a missing one), 403 `right_missing` when it may see
    it but lacks `need`.
    """
    name = zone_name(zone_text)
    row = (await session.execute(_ZONE_LOOKUP, {"name": name})).first()
    if row is None:
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    return await _access(session, principal, name, *row, need=need)


async def zone_for_write(
    session: AsyncSession, principal: Principal, zone_text: str
) -> tuple[ZoneAccess, Zone]:
    """zone_access() for a write: the zone row itself too, locked (FOR UPDATE on
    PostgreSQL) so that its serial cannot move before the write bumps it."""
    name = zone_name(zone_text)
    row = (await session.execute(_ZONE_FOR_WRITE, {"name": name})).first()
    if row is None:
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    zone, unit_allowlist = row
    access = await _access(session, principal, name, zone.id, zone.account_id,
                           zone.business_unit_id, unit_allowlist)
    return access, zone


def edit_access(principal: Principal, zone: ZoneRow, granted: Sequence[str]) -> ZoneAccess:
    """The caller's access to `zone`, read by an edit (404 and 403 as
    zone_access()); `granted`: the rights granted on it to the caller if it
    is a user account (storage.zones.read_for_edit reads them with the zone)."""
    return _decide(principal, zone.name, zone.id, zone.account_id, zone.business_unit_id,
                   list(zone.unit_allowlist), [Right(r) for r in granted])


async def _access(
    session: AsyncSession, principal: Principal, name: str, zone_id: int,
    account_id: int | None, unit_id: int | None, unit_allowlist: list[str] | None,
    need: Right = Right.VIEW,
) -> ZoneAccess:
    if account_id != principal.account_id or not token_may_see_zone(principal.token, name):
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    granted: list[Right] = []
    if principal.role == UserRole.USER:
        granted = list((await session.execute(
            _GRANTED, {"user_id": principal.user_id, "zone_id": zone_id}
        )).scalars())
    return _decide(principal, name, zone_id, account_id, unit_id, unit_allowlist, granted, need)


def _decide(
    principal: Principal, name: str, zone_id: int, account_id: int | None, unit_id: int | None,
    unit_allowlist: list[str] | None, granted: list[Right], need: Right = Right.VIEW,
) -> ZoneAccess:
    if account_id != principal.account_id or not token_may_see_zone(principal.token, name):
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    rights = effective_rights(principal.role, True, granted)
    if not rights:
        raise NotFound(f"zone {name} not found", code="zone_not_found")
    access = ZoneAccess(zone_id, name, account_id, unit_id, rights,
                        parse_networks(unit_allowlist or ()))
    if need not in rights:
        raise Forbidden("right_missing", f"you lack the right {need.value} on {name}",
                        right=need.value)
    return access


def step_up_how(principal: Principal) -> list[str]:
    """What the caller can do to pass the gate, in the order a client offers them."""
    how = ["allowlist_address"]
    how.append("totp" if principal.totp_enabled else "enrol_totp")
    how.append("sms" if principal.mobile else "register_mobile")
    return how


_STEP_UP = (
    "SELECT id FROM api_step_ups WHERE credential = $1 AND expires_at > $2"
    " AND (operation IS NULL OR operation = $3) LIMIT 1"
)


async def has_step_up(session: AsyncSession | Tx, ctx: Context, principal: Principal,
                      operation: Operation) -> bool:
    tx = SessionTx(session) if isinstance(session, AsyncSession) else session
    row = await tx.fetchrow(_STEP_UP, principal.credential, tx.time(ctx.clock.now()),
                            operation.key)
    return row is not None


async def require_sensitive(
    session: AsyncSession | Tx, ctx: Context, principal: Principal, operation: Operation,
    extra_allowlist: tuple[IPNetwork, ...] = (),
) -> None:
    """Pass only from an allowlisted address or after a fresh step-up (403 otherwise).

    The allowlists are the account's, the caller's business unit's, the
    token's subnets and `extra_allowlist` (the zone's business unit's).
    Tokens are held to the same rule as sessions.
    """
    if allowlisted(principal.source_ip, principal.allowlists() + extra_allowlist):
        return
    if await has_step_up(session, ctx, principal, operation):
        return
    raise Forbidden(
        "step_up_required",
        f"{operation.kind.value} needs an allowlisted address or a fresh second factor",
        operation=operation.key, how=step_up_how(principal),
        address=str(principal.source_ip),
    )


def audit_row(principal: Principal, action: str, object_type: str, object_name: str,
              before: object = None, after: object = None) -> AuditEntry:
    """An audit-log row for a non-zone action by `principal` (zone writes get theirs from storage)."""
    return AuditEntry(
        account_id=principal.account_id, user_id=principal.user_id, actor=principal.actor_label,
        source_ip=str(principal.source_ip), credential=principal.credential, action=action,
        object_type=object_type, object_name=object_name[:320], before=plain_json(before),
        after=plain_json(after),
    )


def plain_json(value: object) -> object:
    """`value` with datetimes as ISO text, as the JSON columns need."""
    return None if value is None else json.loads(dumps(value))


async def require_security_change(session: AsyncSession, ctx: Context, principal: Principal,
                                  *, first_factor: bool = False) -> None:
    """The gate for security settings. `first_factor`: enrolling a second factor
    when the user has none yet passes (nothing could be stepped up with)."""
    enforce(can_change_security(principal.token))
    if first_factor and not principal.totp_enabled and principal.mobile is None:
        return
    await require_sensitive(session, ctx, principal, Operation(SensitiveKind.SECURITY))

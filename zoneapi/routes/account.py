"""The client account: contact details, IP allowlist, business units,
sub-accounts (delegates and users) and their per-zone rights, audit log.

Only the leader and delegates manage the account (`manager_only`); only the
leader creates delegates. A plain user holding manage_accounts on a zone
reads the account's plain users within reach of that zone and grants and
revokes their rights on it (services.accounts.RightsScope). Every change of
who may do what is a security change (allowlisted address or step-up).
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Account,
    AuditEntry,
    BusinessUnit,
    Right,
    User,
    UserRight,
    UserRole,
    Zone,
)
from zoneapi.access import (
    audit_row,
    enforce,
    require_security_change,
    zone_access,
    zone_name,
)
from zoneapi.auth import Principal, principal_of
from zoneapi.endpoints import QueryParam, Routes, body_of
from zoneapi.errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable
from zoneapi.jsonio import as_object, get_str, json_response, opt_int, opt_str, str_list
from zoneapi.keys import CONTEXT
from zoneapi.paging import ascii_digits, limit_param, page_limit
from zoneapi.policy import can_manage_accounts, cidr_problems
from zoneapi.schema import array, boolean, integer, obj, open_object, string
from zoneapi.services import accounts

routes = Routes("account")

ACCOUNT_UPDATE = obj({
    "name": string(200, min_length=1), "postal_address": string(1000),
    "phone": string(32, nullable=True), "language": string(2, min_length=2),
    "vat_number": string(32, nullable=True),
    "country": string(2), "primary_email": string(320),
})
ALLOWLIST = obj({"addresses": array(string(64), 200)}, required=("addresses",))
UNIT = obj({"name": string(200, min_length=1), "ip_allowlist": array(string(64), 200)},
           required=("name",))
UNIT_UPDATE = obj({"name": string(200, min_length=1), "ip_allowlist": array(string(64), 200)})
NEW_USER = obj({
    "login": string(100, min_length=1), "email": string(320, min_length=3),
    "password": string(1000, min_length=1), "role": string(10, enum=("delegate", "user")),
    "business_unit_id": integer(nullable=True),
}, required=("login", "email", "password", "role"))
USER_UPDATE = obj({"email": string(320, min_length=3), "business_unit_id": integer(nullable=True),
                   "disabled": boolean()})
GRANT = obj({"zone": string(255, min_length=1),
             "right": string(32, enum=tuple(r.value for r in Right))},
            required=("zone", "right"))
ZONE_UNIT = obj({"business_unit_id": integer(nullable=True)}, required=("business_unit_id",))
SUPPORT_ONLY = ("country", "primary_email")


def _manager(request: web.Request) -> Principal:
    principal = principal_of(request)
    enforce(can_manage_accounts(principal.role, principal.token))
    return principal


def _allowlist(texts: list[str]) -> list[str]:
    problems = cidr_problems(texts)
    if problems:
        raise Unprocessable("invalid_allowlist", "; ".join(problems[:5]), errors=problems)
    return texts


@routes.get("/account", summary="Your client account", responses={200: open_object()})
async def get_account(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        account = await session.get(Account, principal.account_id)
    assert account is not None
    return json_response(accounts.account_json(account))


@routes.patch("/account", summary="Change contact details (country and primary e-mail: "
              "support only)", body=ACCOUNT_UPDATE, responses={200: open_object()})
async def update_account(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        account = await session.get(Account, principal.account_id, with_for_update=True)
        assert account is not None
        refused = [f for f in SUPPORT_ONLY if f in body and body[f] != getattr(account, f)]
        if refused:
            raise ApiError(403, "support_required",
                           f"a change of {' and '.join(refused)} must be requested from support",
                           extra={"fields": refused})
        before = accounts.account_json(account)
        for field in ("name", "postal_address", "language"):
            if field in body:
                setattr(account, field, get_str(body, field))
        for field in ("phone", "vat_number"):
            if field in body:
                setattr(account, field, opt_str(body, field))
        session.add(audit_row(principal, "account.update", "account", account.name, before,
                              accounts.account_json(account)))
    return json_response(accounts.account_json(account))


@routes.put("/account/allowlist", summary="Set the account's IP allowlist (sensitive)",
            body=ALLOWLIST, responses={200: open_object()})
async def set_account_allowlist(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    addresses = _allowlist(str_list(as_object(body_of(request)), "addresses") or [])
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        account = await session.get(Account, principal.account_id, with_for_update=True)
        assert account is not None
        before = list(account.ip_allowlist or [])
        account.ip_allowlist = addresses
        session.add(audit_row(principal, "account.allowlist", "account", account.name, before,
                              addresses))
    return json_response({"addresses": addresses})


def _unit_json(unit: BusinessUnit) -> dict[str, object]:
    return {"id": unit.id, "name": unit.name, "ip_allowlist": list(unit.ip_allowlist or [])}


@routes.get("/business-units", summary="The account's business units",
            responses={200: array(open_object(), 10_000)})
async def list_units(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        units = (await session.execute(
            select(BusinessUnit).where(BusinessUnit.account_id == principal.account_id)
            .order_by(BusinessUnit.id))).scalars().all()
    return json_response([_unit_json(u) for u in units])


async def _unit(session: AsyncSession, principal: Principal, unit_id: int) -> BusinessUnit:
    unit = await session.get(BusinessUnit, unit_id)
    if unit is None or unit.account_id != principal.account_id:
        raise NotFound("business unit not found", code="business_unit_not_found")
    return unit


@routes.post("/business-units", summary="Create a business unit", body=UNIT,
             responses={201: open_object()})
async def create_unit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    body = as_object(body_of(request))
    allowlist = _allowlist(str_list(body, "ip_allowlist") or [])
    async with ctx.db.write() as session:
        if allowlist:
            await require_security_change(session, ctx, principal)
        name = get_str(body, "name")
        taken = await session.execute(select(BusinessUnit.id).where(
            BusinessUnit.account_id == principal.account_id, BusinessUnit.name == name))
        if taken.first() is not None:
            raise Conflict("name_taken", "a business unit has this name")
        unit = BusinessUnit(account_id=principal.account_id, name=name, ip_allowlist=allowlist)
        session.add(unit)
        await session.flush()
        session.add(audit_row(principal, "unit.create", "business_unit", name, None,
                              _unit_json(unit)))
    return json_response(_unit_json(unit), status=201)


@routes.patch("/business-units/{unit_id:[0-9]{1,18}}", summary="Rename a business unit or set "
              "its allowlist (sensitive)", body=UNIT_UPDATE, responses={200: open_object()})
async def update_unit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        unit = await _unit(session, principal, int(request.match_info["unit_id"]))
        before = _unit_json(unit)
        if "ip_allowlist" in body:
            await require_security_change(session, ctx, principal)
            unit.ip_allowlist = _allowlist(str_list(body, "ip_allowlist") or [])
        if "name" in body:
            unit.name = get_str(body, "name")
        session.add(audit_row(principal, "unit.update", "business_unit", unit.name, before,
                              _unit_json(unit)))
    return json_response(_unit_json(unit))


@routes.delete("/business-units/{unit_id:[0-9]{1,18}}", summary="Delete a business unit (its "
               "zones and users go back to the account)", responses={204: None})
async def delete_unit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        unit = await _unit(session, principal, int(request.match_info["unit_id"]))
        session.add(audit_row(principal, "unit.delete", "business_unit", unit.name,
                              _unit_json(unit), None))
        await session.delete(unit)
    return web.Response(status=204)


@routes.put("/zones/{zone}/business-unit", summary="Put a zone in a business unit (or none)",
            body=ZONE_UNIT, responses={200: open_object()})
async def set_zone_unit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    unit_id = opt_int(as_object(body_of(request)), "business_unit_id")
    name = zone_name(request.match_info["zone"])
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        zone = (await session.execute(select(Zone).where(Zone.name == name))).scalar_one_or_none()
        if zone is None or zone.account_id != principal.account_id:
            raise NotFound(f"zone {name} not found", code="zone_not_found")
        if unit_id is not None:
            await _unit(session, principal, unit_id)
        before = zone.business_unit_id
        zone.business_unit_id = unit_id
        session.add(audit_row(principal, "zone.business_unit", "zone", name, before, unit_id))
    return json_response({"zone": name, "business_unit_id": unit_id})


@routes.get("/users", summary="The account's logins", responses={200: array(open_object(),
                                                                                10_000)})
async def list_users(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        scope = await accounts.rights_scope(session, principal)
        users = (await session.execute(
            select(User).where(User.account_id == principal.account_id,
                               *accounts.managed_users_filter(scope)).order_by(User.id)
        )).scalars().all()
    return json_response([accounts.user_json(u) for u in users])


@routes.post("/users", summary="Create a delegate or a user (sensitive)", body=NEW_USER,
             responses={201: open_object()})
async def create_user(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    body = as_object(body_of(request))
    role = UserRole(get_str(body, "role"))
    if role == UserRole.DELEGATE and principal.role != UserRole.LEADER:
        raise Forbidden("leader_only", "only the leader creates delegates")
    unit_id = opt_int(body, "business_unit_id")
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        if unit_id is not None:
            await _unit(session, principal, unit_id)
        user = await accounts.create_user(
            session, ctx, account_id=principal.account_id, login=get_str(body, "login"),
            email=get_str(body, "email"), password=get_str(body, "password"), role=role,
            business_unit_id=unit_id)
        session.add(audit_row(principal, "user.create", "user", user.login, None,
                              accounts.user_json(user)))
    return json_response(accounts.user_json(user), status=201)


def _user_path(request: web.Request) -> int:
    return int(request.match_info["user_id"])


def _check_target(principal: Principal, user: User) -> None:
    """Nobody but the leader touches the leader; only the leader touches delegates."""
    if user.role == UserRole.LEADER and principal.role != UserRole.LEADER:
        raise Forbidden("leader_only", "only the leader changes the leader's login")
    if user.role == UserRole.DELEGATE and principal.role != UserRole.LEADER:
        raise Forbidden("leader_only", "only the leader changes delegates")


@routes.get("/users/{user_id:[0-9]{1,18}}", summary="One login of the account",
            responses={200: open_object()})
async def get_user(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        scope = await accounts.rights_scope(session, principal)
        user = await accounts.find_managed_user(session, principal.account_id, scope,
                                                _user_path(request))
    return json_response(accounts.user_json(user))


@routes.patch("/users/{user_id:[0-9]{1,18}}", summary="Change a login's e-mail, business unit "
              "or disable it (sensitive)", body=USER_UPDATE, responses={200: open_object()})
async def update_user(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        user = await accounts.find_user_in_account(session, principal.account_id,
                                                   _user_path(request))
        _check_target(principal, user)
        before = accounts.user_json(user)
        if "email" in body:
            accounts.check_email(get_str(body, "email"))
            user.email = get_str(body, "email")
        if "business_unit_id" in body:
            unit_id = opt_int(body, "business_unit_id")
            if unit_id is not None:
                await _unit(session, principal, unit_id)
            user.business_unit_id = unit_id
        if "disabled" in body:
            if user.id == principal.user_id:
                raise Conflict("cannot_disable_self", "you cannot disable your own login")
            user.disabled = bool(body["disabled"])
        session.add(audit_row(principal, "user.update", "user", user.login, before,
                              accounts.user_json(user)))
    return json_response(accounts.user_json(user))


@routes.get("/users/{user_id:[0-9]{1,18}}/rights", summary="A user's rights per zone",
            responses={200: array(open_object(), 100_000)})
async def list_rights(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        scope = await accounts.rights_scope(session, principal)
        user = await accounts.find_managed_user(session, principal.account_id, scope,
                                                _user_path(request))
        query = (select(Zone.name, UserRight.right).join(Zone, Zone.id == UserRight.zone_id)
                 .where(UserRight.user_id == user.id).order_by(Zone.name, UserRight.right))
        if scope.zone_ids is not None:
            query = query.where(Zone.id.in_(scope.zone_ids))
        rows = await session.execute(query)
    return json_response([{"zone": z, "right": r.value} for z, r in rows])


async def _grant_target(session: AsyncSession, principal: Principal, scope: accounts.RightsScope,
                        request: web.Request, zone_text: str, right: Right) -> tuple[User, Zone]:
    """The user and zone of a grant or revoke; 404 for either when the caller may not
    see it (as when it does not exist), 403 when it sees the zone without managing it."""
    user = await accounts.find_managed_user(session, principal.account_id, scope,
                                            _user_path(request))
    if user.role != UserRole.USER:
        raise Conflict("not_a_user", "leaders and delegates hold every right already")
    access = await zone_access(session, principal, zone_text, Right.MANAGE_ACCOUNTS)
    if not scope.everything:
        if user.id == principal.user_id:
            raise Forbidden("own_rights", "your own rights are changed by a leader or delegate")
        if right is Right.MANAGE_ACCOUNTS:
            raise Forbidden("manager_only", "only the leader and delegates hand out or take "
                            "back manage_accounts")
    zone = await session.get(Zone, access.zone_id)
    assert zone is not None
    return user, zone


@routes.post("/users/{user_id:[0-9]{1,18}}/rights", summary="Grant a right on a zone "
             "(sensitive; leaders, delegates, and users holding manage_accounts on the zone)",
             body=GRANT, responses={201: open_object()})
async def grant_right(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    right = Right(get_str(body, "right"))
    async with ctx.db.write() as session:
        scope = await accounts.rights_scope(session, principal)
        await require_security_change(session, ctx, principal)
        user, zone = await _grant_target(session, principal, scope, request,
                                         get_str(body, "zone"), right)
        if user.business_unit_id is not None and zone.business_unit_id != user.business_unit_id:
            raise Unprocessable("zone_outside_unit",
                                "the zone is not in the user's business unit")
        exists = await session.execute(select(UserRight.id).where(
            UserRight.user_id == user.id, UserRight.zone_id == zone.id, UserRight.right == right))
        if exists.first() is None:
            session.add(UserRight(user_id=user.id, zone_id=zone.id, right=right))
            session.add(audit_row(principal, "right.grant", "user", user.login, None,
                                  {"zone": zone.name, "right": right.value}))
    return json_response({"zone": zone.name, "right": right.value}, status=201)


@routes.delete("/users/{user_id:[0-9]{1,18}}/rights/{zone}/{right}", summary="Revoke a right",
               responses={204: None})
async def revoke_right(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        scope = await accounts.rights_scope(session, principal)
        try:
            right = Right(request.match_info["right"])
        except ValueError:
            raise NotFound("no such right", code="right_not_found") from None
        user, zone = await _grant_target(session, principal, scope, request,
                                         request.match_info["zone"], right)
        await session.execute(delete(UserRight).where(
            UserRight.user_id == user.id, UserRight.zone_id == zone.id, UserRight.right == right))
        session.add(audit_row(principal, "right.revoke", "user", user.login,
                              {"zone": zone.name, "right": right.value}, None))
    return web.Response(status=204)


def _audit_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id, "at": entry.at, "actor": entry.actor, "user_id": entry.user_id,
        "source_ip": entry.source_ip, "credential": entry.credential, "action": entry.action,
        "object_type": entry.object_type, "object_name": entry.object_name,
        "before": entry.before, "after": entry.after, "change_id": entry.change_id,
    }


@routes.get("/audit", summary="The account's audit log, newest first (managers)",
            query=(QueryParam("zone", {"type": "string"}, "only this zone"),
                   QueryParam("before", {"type": "integer"}, "entries with a smaller id"),
                   limit_param()),
            responses={200: open_object()})
async def audit_log(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = _manager(request)
    limit = page_limit(request, ctx.config.max_page_size)
    query = select(AuditEntry).where(AuditEntry.account_id == principal.account_id)
    if "zone" in request.query:
        query = query.where(AuditEntry.object_name == zone_name(request.query["zone"]))
    before = request.query.get("before", "")
    if ascii_digits(before) and len(before) < 19:
        query = query.where(AuditEntry.id < int(before))
    async with ctx.db.read() as session:
        rows = (await session.execute(
            query.order_by(AuditEntry.id.desc()).limit(limit))).scalars().all()
        total = (await session.execute(select(func.count(AuditEntry.id)).where(
            AuditEntry.account_id == principal.account_id))).scalar_one()
    items = [_audit_json(e) for e in rows]
    next_before = rows[-1].id if len(rows) == limit else None
    return json_response({"items": items, "next_before": next_before, "total": total})


def setup(app: web.Application) -> None:
    routes.install(app)

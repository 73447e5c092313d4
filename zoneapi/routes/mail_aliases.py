"""Mail aliases of a zone: list, create, read, replace targets, delete, resend a
confirmation; the domain's mail settings; MX set-up; and the public
confirmation link that the target's owner opens.

Every alias call needs the right manage_aliases on the zone (leaders and
delegates hold it on every zone). It is a sensitive action (allowlisted
address or fresh second factor) only when the account chose so for the
domain (`aliases_sensitive`, which only a leader or delegate changes; turning
it off is itself sensitive). A token narrowed by policies manages aliases
only with a write policy for the whole zone. The rules about addresses,
quotas (5 aliases, 50 with the mail-redirect pack) and confirmation live in
storage.aliases, shared with the forwarder and the command line.

Answers say whether the zone's apex MX points at the platform's MX hosts
(`mail_mx_hosts`): aliases only receive mail when it does.
`POST .../mail/setup-mx` writes that MX RRset through the zone-edit path
(rights edit_zone, token policy for `@ MX`, the zone-edit gate).
"""

from __future__ import annotations

import html

import dns.name
import dns.rdatatype
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from storage import aliases
from storage.dnsdata import API_RULES, parse_rrset
from storage.models import Right
from storage.models.mail import TargetState
from storage.zones import RRsetChange
from zoneapi.access import (
    actor_of,
    enforce,
    require_active,
    require_sensitive,
    zone_access,
)
from zoneapi.auth import Principal, principal_of
from zoneapi.endpoints import Auth, QueryParam, Routes, body_of
from zoneapi.errors import ApiError, BadRequest, Conflict, NotFound, Unprocessable
from zoneapi.jsonio import as_object, get_bool, json_response, str_list
from zoneapi.keys import CONTEXT, Context
from zoneapi.paging import query_bool
from zoneapi.policy import (
    Decision,
    Operation,
    SensitiveKind,
    TokenScope,
    ZoneAccess,
    can_manage_accounts,
    deny,
    most_specific,
)
from zoneapi.schema import array, boolean, obj, open_object, string
from zoneapi.services.zones import write_transaction

routes = Routes("mail")
HTML = "text/html"

MX_TTL_S = 3600
TARGETS = array(string(320, min_length=3), aliases.MAX_TARGETS, min_items=1)
NEW_ALIAS = obj({"local_part": string(64, min_length=1), "targets": TARGETS},
                required=("local_part", "targets"))
TARGETS_BODY = obj({"targets": TARGETS}, required=("targets",))
SETTINGS = obj({"aliases_sensitive": boolean("alias changes need a second factor or an "
                                             "allowlisted address")}, required=("aliases_sensitive",))
SETUP_MX = obj({"replace": boolean("replace an apex MX RRset that points elsewhere")})
DRY_RUN = QueryParam("dry_run", {"type": "boolean"}, "validate and return the diff; write nothing")
ALIAS = open_object("an alias with each target's state (pending until its owner confirms)")


# -- rules ------------------------------------------------------------------


def token_may_manage(scope: TokenScope | None, zone: str) -> Decision:
    """Rule `token_scope`: a narrowed token needs a write policy for the whole zone."""
    if scope is None or not scope.narrowed:
        return Decision(True)
    policy = most_specific(scope.policies, zone, None, None)  # whole-zone policies only
    if policy is None or not policy.write:
        return deny("token_scope", f"this token may not manage the mail aliases of {zone}")
    return Decision(True)


def domain_of(access: ZoneAccess) -> str:
    return access.name.rstrip(".")


def address_of(access: ZoneAccess, local_part: str) -> str:
    """`local@zone`, refused (400) unless it is a plain address of this very zone."""
    if "@" in local_part:
        raise BadRequest("invalid_address", "give the local part only, without '@'")
    text = f"{local_part}@{domain_of(access)}"
    try:
        return str(aliases.parse_address(text))
    except aliases.InvalidAddress as exc:
        raise BadRequest("invalid_address", exc.reason, address=text[:400]) from None


def api_error(exc: aliases.AliasError) -> ApiError:
    """storage.aliases' refusals as API answers."""
    match exc:
        case aliases.InvalidAddress():
            return BadRequest("invalid_address", exc.reason, address=exc.text[:400])
        case aliases.QuotaExceeded():
            return Unprocessable("quota_exceeded", str(exc), limit=exc.limit)
        case aliases.TooManyTargets():
            return Unprocessable("too_many_targets", str(exc), limit=aliases.MAX_TARGETS)
        case aliases.AliasLoop():
            return Unprocessable("alias_loop", str(exc))
        case aliases.AliasNotFound():
            return NotFound(str(exc), code="alias_not_found")
        case aliases.TargetNotFound():
            return NotFound(str(exc), code="target_not_found")
        case aliases.TargetAlreadyVerified():
            return Conflict("target_verified", str(exc))
        case aliases.ResendTooSoon():
            retry = max(1, int(exc.retry_after.total_seconds()))
            return ApiError(429, "resend_too_soon", str(exc), extra={"retry_after_s": retry},
                            headers={"Retry-After": str(retry)})
        case aliases.InvalidToken():
            return NotFound(str(exc), code="confirmation_not_found")
    return Unprocessable("alias_refused", str(exc))


async def alias_access(session: AsyncSession, ctx: Context, principal: Principal,
                       zone_text: str, *, write: bool) -> ZoneAccess:
    """The zone, if the caller may manage its aliases (and pass the gate, for a write)."""
    access = await zone_access(session, principal, zone_text, Right.MANAGE_ALIASES)
    enforce(token_may_manage(principal.token, access.name))
    if write:
        require_active(principal)
        service = await aliases.get_mail_service(session, domain_of(access))
        if service is not None and service.aliases_sensitive:
            await require_sensitive(session, ctx, principal,
                                    Operation(SensitiveKind.EDIT_ZONE, access.name),
                                    access.unit_allowlist)
    return access


# -- rendering --------------------------------------------------------------


def alias_json(info: aliases.AliasInfo) -> dict[str, object]:
    return {
        "address": str(info.address), "local_part": info.address.local,
        "created_at": info.created_at,
        "receives_mail": any(t.state is TargetState.VERIFIED for t in info.targets),
        "targets": [{"address": t.address, "state": t.state.value,
                     "verified_at": t.verified_at,
                     "confirmation_sent_at": t.confirmation_sent_at} for t in info.targets],
    }


def platform_mx(ctx: Context) -> list[str]:
    return [h.lower().rstrip(".") for h in ctx.config.mail_mx_hosts]


async def mx_json(session: AsyncSession, ctx: Context, access: ZoneAccess) -> dict[str, object]:
    """Whether the apex MX sends the domain's mail to the platform's MX hosts."""
    current = await aliases.zone_mx_hosts(session, domain_of(access))
    expected = platform_mx(ctx)
    points_here = bool(current) and bool(expected) and set(current) <= set(expected)
    answer: dict[str, object] = {"points_here": points_here, "current": current,
                                 "expected": expected}
    if not points_here:
        answer["detail"] = (
            "the platform's MX hosts are not configured" if not expected else
            "the zone has no MX record: no mail reaches the aliases" if not current else
            "the zone's MX points elsewhere: mail for the aliases does not reach us")
    return answer


async def service_json(session: AsyncSession, ctx: Context,
                       access: ZoneAccess) -> dict[str, object]:
    info = await aliases.get_mail_service(session, domain_of(access))
    pack = info.redirect_pack if info else False
    return {
        "enabled": info.enabled if info else True,
        "redirect_pack": pack,
        "quota": info.quota if info else aliases.quota_for(pack),
        "used": info.alias_count if info else 0,
        "aliases_sensitive": info.aliases_sensitive if info else False,
        "mx": await mx_json(session, ctx, access),
    }


def targets_of(request: web.Request) -> list[str]:
    return str_list(as_object(body_of(request)), "targets") or []


# -- aliases ----------------------------------------------------------------


@routes.get("/zones/{zone}/mail/aliases", summary="List the zone's mail aliases, their "
            "targets' states, the quota and whether the MX points here",
            responses={200: open_object()})
async def mail_list_aliases(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    async with ctx.db.read() as session:
        access = await alias_access(session, ctx, principal_of(request),
                                    request.match_info["zone"], write=False)
        items = await aliases.list_aliases(session, domain_of(access))
        service = await service_json(session, ctx, access)
    return json_response({"zone": access.name, "mail": service,
                          "items": [alias_json(i) for i in items]})


@routes.post("/zones/{zone}/mail/aliases", summary="Create an alias (targets get a "
             "confirmation mail and no mail until confirmed)", body=NEW_ALIAS,
             responses={201: ALIAS})
async def mail_create_alias(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        access = await alias_access(session, ctx, principal, request.match_info["zone"],
                                    write=True)
        address = address_of(access, str(body["local_part"]))
        if await aliases.get_alias(session, address) is not None:
            raise Conflict("alias_exists", f"{address} exists: PUT its targets instead")
        try:
            info = await aliases.add_alias(session, address, targets_of(request),
                                           actor=actor_of(principal))
        except aliases.AliasError as exc:
            raise api_error(exc) from None
        mx = await mx_json(session, ctx, access)
    return json_response({**alias_json(info), "mx": mx}, status=201)


@routes.get("/zones/{zone}/mail/aliases/{local_part}", summary="One alias and its targets",
            responses={200: ALIAS})
async def mail_get_alias(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    async with ctx.db.read() as session:
        access = await alias_access(session, ctx, principal_of(request),
                                    request.match_info["zone"], write=False)
        address = address_of(access, request.match_info["local_part"])
        info = await aliases.get_alias(session, address)
    if info is None:
        raise NotFound(f"alias {address} does not exist", code="alias_not_found")
    return json_response(alias_json(info))


@routes.put("/zones/{zone}/mail/aliases/{local_part}", summary="Replace an alias's targets "
            "(kept targets keep their state; new ones wait for confirmation)",
            body=TARGETS_BODY, responses={200: ALIAS})
async def mail_replace_targets(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        access = await alias_access(session, ctx, principal, request.match_info["zone"],
                                    write=True)
        address = address_of(access, request.match_info["local_part"])
        try:
            info = await aliases.replace_targets(session, address, targets_of(request),
                                                 actor=actor_of(principal))
        except aliases.AliasError as exc:
            raise api_error(exc) from None
    return json_response(alias_json(info))


@routes.delete("/zones/{zone}/mail/aliases/{local_part}", summary="Delete an alias",
               responses={204: None})
async def mail_delete_alias(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        access = await alias_access(session, ctx, principal, request.match_info["zone"],
                                    write=True)
        address = address_of(access, request.match_info["local_part"])
        try:
            await aliases.remove_alias(session, address, actor=actor_of(principal))
        except aliases.AliasError as exc:
            raise api_error(exc) from None
    return web.Response(status=204)


@routes.post("/zones/{zone}/mail/aliases/{local_part}/targets/{target}/resend",
             summary="Send a new confirmation link to a pending target (the old one stops "
             "working; at most one every 10 minutes)", responses={202: open_object()})
async def mail_resend_confirmation(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.write() as session:
        access = await alias_access(session, ctx, principal, request.match_info["zone"],
                                    write=True)
        address = address_of(access, request.match_info["local_part"])
        try:
            await aliases.resend_confirmation(session, address, request.match_info["target"])
        except aliases.AliasError as exc:
            raise api_error(exc) from None
    return json_response({"alias": address, "target": request.match_info["target"].lower(),
                          "state": "pending", "confirmation": "queued"}, status=202)


# -- the domain's mail settings and MX --------------------------------------


@routes.get("/zones/{zone}/mail", summary="The domain's mail service: quota, pack, "
            "whether alias changes are sensitive, MX status", responses={200: open_object()})
async def mail_get_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    async with ctx.db.read() as session:
        access = await alias_access(session, ctx, principal_of(request),
                                    request.match_info["zone"], write=False)
        return json_response({"zone": access.name, **await service_json(session, ctx, access)})


@routes.patch("/zones/{zone}/mail", summary="Choose whether alias changes are sensitive "
              "(leader or delegate; turning it off is itself sensitive)", body=SETTINGS,
              responses={200: open_object()})
async def mail_update_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    wanted = get_bool(as_object(body_of(request)), "aliases_sensitive")
    async with ctx.db.write() as session:
        access = await zone_access(session, principal, request.match_info["zone"],
                                   Right.MANAGE_ALIASES)
        enforce(can_manage_accounts(principal.role, principal.token))
        require_active(principal)
        current = await aliases.get_mail_service(session, domain_of(access))
        if not wanted and current is not None and current.aliases_sensitive:
            await require_sensitive(session, ctx, principal, Operation(SensitiveKind.SECURITY),
                                    access.unit_allowlist)
        await aliases.set_mail_service(session, domain_of(access), aliases_sensitive=wanted,
                                       actor=actor_of(principal))
        return json_response({"zone": access.name, **await service_json(session, ctx, access)})


@routes.post("/zones/{zone}/mail/setup-mx", summary="Point the zone's apex MX at the "
             "platform's MX hosts (a zone edit; 503 when none are configured)", body=SETUP_MX,
             query=(DRY_RUN,), errors=(503,),
             responses={200: open_object()})
async def mail_setup_mx(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    replace = get_bool(as_object(body_of(request)), "replace")
    hosts = platform_mx(ctx)
    if not hosts:
        async with ctx.db.read() as session:  # rights first: a 404 stays a 404
            await zone_access(session, principal, request.match_info["zone"], Right.EDIT_ZONE)
        raise ApiError(503, "mx_not_configured", "the platform's MX hosts are not configured")

    async def plan(session: AsyncSession, access: ZoneAccess,
                   origin: dns.name.Name) -> list[RRsetChange]:
        current = await aliases.zone_mx_hosts(session, domain_of(access))
        if current and not set(current) <= set(hosts) and not replace:
            raise Conflict("mx_elsewhere", "the zone's MX points elsewhere; send "
                           '{"replace": true} to send its mail here instead', current=current)
        records = [f"{10 * (i + 1)} {h}." for i, h in enumerate(hosts)]
        rrset = parse_rrset(origin, origin, dns.rdatatype.MX, MX_TTL_S, records, API_RULES)
        return [RRsetChange(origin, dns.rdatatype.MX, rrset)]

    access, outcome = await write_transaction(ctx, principal, request.match_info["zone"], plan,
                                              dry_run=query_bool(request, "dry_run"))
    async with ctx.db.read() as session:
        mx = await mx_json(session, ctx, access)
    result = outcome.result
    return json_response({"zone": access.name, "change_id": result.change_id,
                          "serial": result.serial, "dry_run": outcome.dry_run, "mx": mx})


# -- the confirmation link (public) -------------------------------------------


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def page(title: str, text: str, form: bool = False, status: int = 200) -> web.Response:
    button = ('<form method="post"><button type="submit">Confirm</button></form>'
              if form else "")
    body = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
            f"{button}</body></html>")
    return web.Response(text=body, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.get("/mail/confirm/{token}", auth=Auth.NONE, other_media=(HTML,),
            summary="What a confirmation link "
            "would confirm (nothing changes: mail scanners open links too)",
            responses={200: open_object()})
async def mail_confirm_show(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        async with ctx.db.read() as session:
            pending = await aliases.peek_confirmation(session, request.match_info["token"])
    except aliases.InvalidToken as exc:
        if wants_html(request):
            return page("Link not valid", str(exc), status=404)
        raise api_error(exc) from None
    text = (f"Mail sent to {pending.alias} will be forwarded to {pending.target} once you "
            "confirm. If you did not ask for this, close this page: nothing is forwarded.")
    if wants_html(request):
        return page("Confirm mail forwarding", text, form=True)
    return json_response({"alias": pending.alias, "target": pending.target, "state": "pending",
                          "detail": text + " POST to this URL to confirm."})


@routes.post("/mail/confirm/{token}", auth=Auth.NONE, other_media=(HTML,),
             summary="Confirm a forwarding target (an HTML page when the client accepts one)",
             responses={200: open_object()})
async def mail_confirm(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        async with ctx.db.write() as session:
            pending = await aliases.peek_confirmation(session, request.match_info["token"])
            await aliases.confirm_target(session, request.match_info["token"])
    except aliases.InvalidToken as exc:
        if wants_html(request):
            return page("Link not valid", str(exc), status=404)
        raise api_error(exc) from None
    if wants_html(request):
        return page("Forwarding confirmed",
                    f"Mail sent to {pending.alias} is now forwarded to {pending.target}.")
    return json_response({"alias": pending.alias, "target": pending.target,
                          "state": "verified"})


def setup(app: web.Application) -> None:
    routes.install(app)


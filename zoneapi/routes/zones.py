"""Zones and their RRsets: list, read, create, replace, delete, single
records, atomic PATCH, bulk replace, dry runs, master files, ETags."""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
import dns.rdatatype
from aiohttp import web
from sqlalchemy import func, select

from storage import zones as store
from storage.dnsdata import (
    API_RULES,
    DnsDataError,
    InvalidRRset,
    InvalidZone,
    ZoneContent,
    parse_rrset,
    zone_from_text,
    zone_to_text,
)
from storage.driver import Tx
from storage.models import Right, RRset, UserRight, UserRole, Zone, ZoneStatus
from storage.zones import Near, RRsetChange, name_of, soa_from_zone
from zoneapi.access import zone_access, zone_name
from zoneapi.auth import Principal, principal_of
from zoneapi.endpoints import DNS_TEXT, QueryParam, Routes, body_of
from zoneapi.errors import Conflict, NotFound, Unprocessable
from zoneapi.jsonio import as_object, get_str, json_response, read_bytes, require_type
from zoneapi.keys import CONTEXT, Context
from zoneapi.paging import ascii_digits, limit_param, page_limit, query_bool, query_text
from zoneapi.policy import ALL_RIGHTS, ZoneAccess, token_may_see_zone
from zoneapi.routes.billing_common import BILLING
from zoneapi.schema import JsonObject, array, integer, obj, open_object, string
from zoneapi.services import notices
from zoneapi.services.hosting import host_zone
from zoneapi.services.zones import (
    Edit,
    EditPlan,
    Outcome,
    PlanFn,
    changes_edit,
    current,
    diff_json,
    edit_transaction,
    key_edit,
    parse_items,
    parse_key,
    replace_all,
    rrset_json,
    type_code_of,
    type_text,
    write_transaction,
)

routes = Routes("zones")

RECORDS = array(string(4000), 1000)
RRSET_ITEM = obj({"name": string(255), "type": string(16, min_length=1),
                  "ttl": integer(0, 2**31 - 1), "records": array(string(4000), 1000,
                                                                 nullable=True)},
                 required=("name", "type"))
RRSET_LIST = array(RRSET_ITEM, 100_000)
RRSET_BODY = obj({"ttl": integer(0, 2**31 - 1), "records": RECORDS}, required=("records",))
RECORD_BODY = obj({"content": string(4000, min_length=1), "ttl": integer(0, 2**31 - 1)},
                  required=("content",))
DIFF_ITEM = obj({"name": string(255), "subname": string(255), "type": string(16),
                 "ttl": integer(0), "content": string(70_000)},
                required=("name", "subname", "type", "ttl", "content"))
WRITE_RESULT = obj({"zone": string(255), "change_id": integer(nullable=True), "serial": integer(),
                    "dry_run": {"type": "boolean"},
                    "diff": obj({"removed": array(DIFF_ITEM, 10**6), "added": array(DIFF_ITEM, 10**6)},
                                required=("removed", "added"))},
                   required=("zone", "change_id", "serial", "dry_run", "diff"))
DRY_RUN = QueryParam("dry_run", {"type": "boolean"}, "validate and return the diff; write nothing")
ZONE_PATH = "/zones/{zone}"
RRSET_PATH = ZONE_PATH + "/rrsets/{name}/{type}"


def _etag(serial: int) -> dict[str, str]:
    return {"ETag": f'"{serial}"'}


def _write_answer(ctx: Context, principal: Principal, access: ZoneAccess, outcome: Outcome,
                  status: int = 200) -> web.Response:
    result = outcome.result
    origin = name_of(access.name)
    if outcome.nameservers_changed:
        names = [c for n, t, _, c in result.added if t == 2 and n == access.name]
        notices.nameservers_changed(ctx, [principal.email, principal.account_email], access.name,
                                    principal.login, names)
    body = {
        "zone": access.name, "change_id": result.change_id or None, "serial": result.serial,
        "dry_run": outcome.dry_run,
        "diff": {"removed": diff_json(result.removed, origin),
                 "added": diff_json(result.added, origin)},
    }
    headers = {} if outcome.dry_run else _etag(result.serial)
    return json_response(body, status=status, headers=headers)


async def _edit(request: web.Request, plan: EditPlan, status: int = 200) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    access, outcome = await edit_transaction(
        ctx, principal, request.match_info["zone"], plan,
        dry_run=query_bool(request, "dry_run"), if_match=request.headers.get("If-Match"))
    return _write_answer(ctx, principal, access, outcome, status)


async def _edit_in_session(request: web.Request, plan: PlanFn) -> web.Response:
    """_edit() for a plan that reads through the ORM (the zone history)."""
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    access, outcome = await write_transaction(
        ctx, principal, request.match_info["zone"], plan,
        dry_run=query_bool(request, "dry_run"), if_match=request.headers.get("If-Match"))
    return _write_answer(ctx, principal, access, outcome)


def _zone_json(zone: Zone, rights: frozenset[Right] | None = None) -> dict[str, object]:
    answer: dict[str, object] = {
        "name": zone.name, "serial": zone.serial, "status": zone.status.value,
        "business_unit_id": zone.business_unit_id, "updated_at": zone.updated_at,
    }
    if rights is not None:
        answer["rights"] = sorted(r.value for r in rights)
        answer["soa"] = {"mname": zone.soa_mname, "rname": zone.soa_rname, "ttl": zone.soa_ttl,
                         "refresh": zone.soa_refresh, "retry": zone.soa_retry,
                         "expire": zone.soa_expire, "minimum": zone.soa_minimum}
    return answer


@routes.get("/zones", summary="The zones you may see, by name (paged, filtered)",
            query=(QueryParam("q", {"type": "string"}, "name contains"),
                   QueryParam("status", {"type": "string", "enum": ["active", "suspended"]}),
                   QueryParam("after", {"type": "string"}, "names after this one (cursor)"),
                   limit_param()),
            responses={200: open_object()})
async def list_zones(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    limit = page_limit(request, ctx.config.max_page_size)
    query = select(Zone).where(Zone.account_id == principal.account_id)
    if principal.role == UserRole.USER:
        query = query.where(Zone.id.in_(
            select(UserRight.zone_id).where(UserRight.user_id == principal.user_id)))
    if principal.token is not None and principal.token.narrowed:
        domains = [p.domain for p in principal.token.policies]
        if None not in domains:
            query = query.where(Zone.name.in_([d for d in domains if d]))
    if (q := query_text(request, "q")) is not None:
        query = query.where(Zone.name.contains(q.lower(), autoescape=True))
    if (status := query_text(request, "status")) is not None:
        try:
            query = query.where(Zone.status == ZoneStatus(status))
        except ValueError:
            raise Unprocessable("invalid_query", "status is active or suspended") from None
    if (after := query_text(request, "after")) is not None:
        query = query.where(Zone.name > after)
    async with ctx.db.read() as session:
        zones = (await session.execute(query.order_by(Zone.name).limit(limit))).scalars().all()
    items = [_zone_json(z) for z in zones if token_may_see_zone(principal.token, z.name)]
    next_after = zones[-1].name if len(zones) == limit else None
    return json_response({"items": items, "next_after": next_after})


ZONE_CREATE = obj({"name": string(255, min_length=1)}, required=("name",))


@routes.post("/zones", summary="Host a zone for a domain of your portfolio (SOA and apex NS "
             "set to the platform's name servers)", body=ZONE_CREATE,
             responses={201: open_object()})
async def create_zone(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    name = zone_name(get_str(as_object(body_of(request)), "name"))
    billing = request.app.get(BILLING)
    nameservers = billing.config.nameservers if billing is not None else ()
    async with ctx.db.write() as session:
        hosted = await host_zone(session, ctx, principal, name, nameservers)
    answer = _zone_json(hosted.zone, ALL_RIGHTS)
    answer["change_id"] = hosted.result.change_id
    return json_response(answer, status=201, headers=_etag(hosted.zone.serial))


@routes.get(ZONE_PATH, summary="One zone: serial (also the ETag), status, SOA, your rights",
            responses={200: open_object()})
async def get_zone(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        zone = await store.find_zone(session, access.name)
        count = (await session.execute(
            select(func.count(RRset.id)).where(RRset.zone_id == zone.id))).scalar_one()
    answer = _zone_json(zone, access.rights)
    answer["rrset_count"] = count
    return json_response(answer, headers=_etag(zone.serial))


@routes.get(ZONE_PATH + "/rrsets", summary="RRsets of a zone (filter by name and type, paged)",
            query=(QueryParam("name", {"type": "string"}, "owner, relative or absolute"),
                   QueryParam("type", {"type": "string"}),
                   QueryParam("offset", {"type": "integer", "minimum": 0}), limit_param()),
            responses={200: open_object()})
async def list_rrsets(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        zone = await store.find_zone(session, access.name)
        origin = dns.name.from_text(access.name)
        name, rdtype = query_text(request, "name"), query_text(request, "type", 16)
        owner = parse_key(origin, name, "A")[0].to_text() if name is not None else None
        type_code = type_code_of(rdtype) if rdtype is not None else None
        # A filter is applied in SQL (a name through the zone's unique index),
        # so only the RRsets it keeps are read and parsed, not the whole zone.
        sets = {} if type_code == -1 else await current(session, zone.id, name=owner,
                                                         rdtype=type_code)
    soa = {"name": access.name, "subname": "", "type": "SOA", "ttl": zone.soa_ttl,
           "records": [soa_from_zone(zone).to_text()]}
    items = [soa] + [rrset_json(r, origin) for _, r in sorted(sets.items())]
    if owner is not None:
        items = [i for i in items if i["name"] == owner]
    if rdtype is not None:
        items = [i for i in items if i["type"] == rdtype.upper()]
    offset_text = request.query.get("offset", "0")
    offset = int(offset_text) if ascii_digits(offset_text) and len(offset_text) < 10 else 0
    limit = page_limit(request, ctx.config.max_page_size * 10)
    page = items[offset:offset + limit]
    return json_response({"items": page, "total": len(items),
                          "next_offset": offset + limit if offset + limit < len(items) else None},
                         headers=_etag(zone.serial))


@routes.get(RRSET_PATH, summary="One RRset ('@' is the apex)", responses={200: RRSET_ITEM})
async def get_rrset(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        zone = await store.find_zone(session, access.name)
        origin = name_of(access.name)
        owner, rdtype = parse_key(origin, request.match_info["name"],
                                  request.match_info["type"])
        if owner == origin and rdtype == dns.rdatatype.SOA:
            item: dict[str, object] = {"name": access.name, "subname": "", "type": "SOA",
                                       "ttl": zone.soa_ttl,
                                       "records": [soa_from_zone(zone).to_text()]}
            return json_response(item, headers=_etag(zone.serial))
        # That RRset alone, through the unique index: not the whole zone.
        sets = await store.current_rrsets(session, zone.id, (owner.to_text(), int(rdtype)))
    if not sets:
        raise NotFound("no such RRset", code="rrset_not_found")
    (rrset,) = sets.values()
    return json_response(rrset_json(rrset, origin), headers=_etag(zone.serial))


def _one(request: web.Request, origin: dns.name.Name, body: JsonObject | None) -> RRsetChange:
    name, rdtype = request.match_info["name"], request.match_info["type"]
    item: JsonObject = {"name": name, "type": rdtype}
    if body is not None:
        item.update(body)
    return parse_items(origin, [item])[0]


@routes.post(ZONE_PATH + "/rrsets", summary="Create an RRset (409 if it exists)",
             body=RRSET_ITEM, query=(DRY_RUN,), responses={201: WRITE_RESULT})
async def create_rrset(request: web.Request) -> web.Response:
    body = as_object(body_of(request))

    def plan(origin: dns.name.Name) -> Edit:
        change = parse_items(origin, [body])[0]
        if change.rrset is None:
            raise Unprocessable("invalid_rrsets", "an RRset needs records")

        async def build(tx: Tx, access: ZoneAccess, near: Near) -> Sequence[RRsetChange]:
            if near.rrset(change.owner, int(change.rdtype)) is not None:
                raise Conflict("rrset_exists", "this RRset exists; use PUT to replace it")
            return [change]

        return key_edit([change], build)

    return await _edit(request, plan, status=201)


@routes.put(RRSET_PATH, summary="Create or replace one RRset", body=RRSET_BODY,
            query=(DRY_RUN,), responses={200: WRITE_RESULT})
async def put_rrset(request: web.Request) -> web.Response:
    body = as_object(body_of(request))

    def plan(origin: dns.name.Name) -> Edit:
        return changes_edit([_one(request, origin, body)])

    return await _edit(request, plan)


@routes.delete(RRSET_PATH, summary="Delete one RRset", query=(DRY_RUN,),
               responses={200: WRITE_RESULT})
async def delete_rrset(request: web.Request) -> web.Response:
    def plan(origin: dns.name.Name) -> Edit:
        change = _one(request, origin, {"records": None})

        async def build(tx: Tx, access: ZoneAccess, near: Near) -> Sequence[RRsetChange]:
            if near.rrset(change.owner, int(change.rdtype)) is None:
                raise NotFound("no such RRset", code="rrset_not_found")
            return [change]

        return key_edit([change], build)

    return await _edit(request, plan)


def _with_record(existing: Sequence[str], content: str, origin: dns.name.Name,
                 change: RRsetChange, ttl: int, add: bool) -> RRsetChange:
    rdtype = change.rdtype
    try:
        probe = parse_rrset(origin, change.name, rdtype, ttl, [content], API_RULES)
    except InvalidRRset as exc:
        raise Unprocessable("invalid_rrsets", "; ".join(exc.reasons), errors=[{
            "index": 0, "name": change.name.to_text(), "type": type_text(int(rdtype)),
            "reasons": exc.reasons}]) from None
    text = probe.rdata_texts()[0]
    if add:
        records = [*existing, text]
    else:
        if text not in existing:
            raise NotFound("no such record in this RRset", code="record_not_found")
        records = [r for r in existing if r != text]
    item: JsonObject = {"name": change.name.to_text(), "type": type_text(int(rdtype)),
                        "ttl": ttl, "records": list(records)}
    return parse_items(origin, [item])[0]


def _record_edit(request: web.Request, origin: dns.name.Name, content: str, ttl: object,
                 add: bool) -> Edit:
    """Add `content` to the RRset the URL names, or remove it from it (its
    records as stored, read with the zone)."""
    key = _one(request, origin, {"records": None})

    async def build(tx: Tx, access: ZoneAccess, near: Near) -> Sequence[RRsetChange]:
        existing = near.rrset(key.owner, int(key.rdtype))
        if add:
            ttl_s = ttl if isinstance(ttl, int) else (existing.ttl if existing else 3600)
        elif existing is None:
            raise NotFound("no such RRset", code="rrset_not_found")
        else:
            ttl_s = existing.ttl
        texts = list(existing.rdata_texts()) if existing else []
        return [_with_record(texts, content, origin, key, ttl_s, add=add)]

    # The RRset's records are not known before the read: an addition may grow
    # the zone, and may put a DNAME, whose rules need every name of the zone.
    return Edit(build, frozenset({(key.owner, int(key.rdtype))}),
                None if add else 0, add and key.rdtype == dns.rdatatype.DNAME)


@routes.post(RRSET_PATH + "/records", summary="Add one record to an RRset (created if needed)",
             body=RECORD_BODY, query=(DRY_RUN,), responses={200: WRITE_RESULT})
async def add_record(request: web.Request) -> web.Response:
    body = as_object(body_of(request))

    def plan(origin: dns.name.Name) -> Edit:
        return _record_edit(request, origin, str(body["content"]), body.get("ttl"), add=True)

    return await _edit(request, plan)


@routes.delete(RRSET_PATH + "/records", summary="Remove one record from an RRset",
               query=(QueryParam("content", {"type": "string"}, "the record", required=True),
                      DRY_RUN),
               responses={200: WRITE_RESULT})
async def remove_record(request: web.Request) -> web.Response:
    content = query_text(request, "content", 4000)
    if content is None:
        raise Unprocessable("invalid_query", "give the record as ?content=")

    def plan(origin: dns.name.Name) -> Edit:
        return _record_edit(request, origin, content, None, add=False)

    return await _edit(request, plan)


@routes.patch(ZONE_PATH + "/rrsets", summary="Change many RRsets atomically (empty records "
              "delete); all or nothing, per-item errors", body=RRSET_LIST, query=(DRY_RUN,),
              responses={200: WRITE_RESULT})
async def patch_rrsets(request: web.Request) -> web.Response:
    items = [i for i in body_of(request) if isinstance(i, dict)]  # type: ignore[union-attr]

    def plan(origin: dns.name.Name) -> Edit:
        return changes_edit(parse_items(origin, items))

    return await _edit(request, plan)


def _replace_edit(wanted: Sequence[RRsetChange]) -> Edit:
    """The Edit that leaves the zone holding exactly `wanted` (it reads the whole zone)."""

    async def build(tx: Tx, access: ZoneAccess, near: Near) -> Sequence[RRsetChange]:
        return replace_all(await current(tx, access.zone_id), wanted)

    return Edit(build)


@routes.put(ZONE_PATH + "/rrsets", summary="Replace every RRset of the zone (the SOA stays)",
            body=RRSET_LIST, query=(DRY_RUN,), responses={200: WRITE_RESULT})
async def replace_rrsets(request: web.Request) -> web.Response:
    items = [i for i in body_of(request) if isinstance(i, dict)]  # type: ignore[union-attr]

    def plan(origin: dns.name.Name) -> Edit:
        return _replace_edit(parse_items(origin, items))

    return await _edit(request, plan)


@routes.get(ZONE_PATH + "/file", summary="The zone as an RFC 1035 master file",
            responses={200: None}, response_media=DNS_TEXT)
async def export_zone(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        zone = await store.find_zone(session, access.name)
        sets = await current(session, zone.id)
    content = ZoneContent(dns.name.from_text(zone.name), soa_from_zone(zone), zone.soa_ttl,
                          tuple(sets.values()))
    return web.Response(text=zone_to_text(content), content_type=DNS_TEXT,
                        headers=_etag(zone.serial))


@routes.put(ZONE_PATH + "/file", summary="Replace the zone's RRsets from a master file "
            "(its SOA is ignored: the system owns it)", body=open_object(), body_media=DNS_TEXT,
            query=(DRY_RUN,), responses={200: WRITE_RESULT})
async def import_zone(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    require_type(request, DNS_TEXT, "text/plain")
    raw = await read_bytes(request, ctx.config.max_import_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("invalid_zone_file", "the master file is not UTF-8") from None

    def plan(origin: dns.name.Name) -> Edit:
        try:
            content = zone_from_text(text, origin, API_RULES)
        except InvalidZone as exc:
            problems = [str(p) for p in exc.problems]
            raise Unprocessable("invalid_zone_file", "; ".join(problems[:5]),
                                errors=problems[:1000]) from None
        except DnsDataError as exc:
            raise Unprocessable("invalid_zone_file", str(exc)) from None
        return _replace_edit([RRsetChange(r.name, r.rdtype, r) for r in content.rrsets])

    return await _edit(request, plan)


def setup(app: web.Application) -> None:
    routes.install(app)


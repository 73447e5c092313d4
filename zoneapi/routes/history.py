"""Propagation status of a change, and zone history: versions, diffs, restore."""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from storage.feed import ChangeEvent, zone_history
from storage.models import ZoneChange
from storage.nsstatus import change_status
from storage.zones import RRsetChange
from zoneapi.access import zone_access
from zoneapi.auth import principal_of
from zoneapi.endpoints import QueryParam, Routes
from zoneapi.errors import BadRequest, NotFound
from zoneapi.jsonio import json_response
from zoneapi.keys import CONTEXT
from zoneapi.paging import ascii_digits, query_bool
from zoneapi.policy import ZoneAccess
from zoneapi.routes.zones import DRY_RUN, WRITE_RESULT, ZONE_PATH, _edit_in_session
from zoneapi.schema import open_object
from zoneapi.services.zones import DiffItem, current, diff_json, rebuild, replace_all

routes = Routes("history")


@routes.get("/changes/{change_id:[0-9]{1,18}}", summary="Propagation of a change: PENDING "
            "until every running nameserver serves it, then INSYNC",
            responses={200: open_object()})
async def get_change(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    change_id = int(request.match_info["change_id"])
    async with ctx.db.read() as session:
        change = await session.get(ZoneChange, change_id)
        if change is None:
            raise NotFound("change not found", code="change_not_found")
        try:
            await zone_access(session, principal, change.zone_name)
        except NotFound:
            raise NotFound("change not found", code="change_not_found") from None
        status = await change_status(session, change_id)
    return json_response({"id": change.id, "zone": change.zone_name, "serial": change.serial,
                          "kind": change.kind, "at": change.created_at,
                          "status": status.value})


def _states(events: Sequence[ChangeEvent]) -> list[tuple[ChangeEvent, frozenset[DiffItem]]]:
    """The zone's content after each change of its current life (since its last creation)."""
    content: set[DiffItem] = set()
    states: list[tuple[ChangeEvent, frozenset[DiffItem]]] = []
    for event in events:
        if event.kind == "create":
            content, states = set(), []
        elif event.kind == "delete":
            content, states = set(), []
            continue
        content.difference_update(event.removed)
        content.update(event.added)
        states.append((event, frozenset(content)))
    return states


async def _history(session: AsyncSession, name: str
                   ) -> list[tuple[ChangeEvent, frozenset[DiffItem]]]:
    return _states(await zone_history(session, name))


def _version(states: list[tuple[ChangeEvent, frozenset[DiffItem]]],
             serial_text: str) -> frozenset[DiffItem]:
    if not ascii_digits(serial_text) or len(serial_text) > 10:
        raise BadRequest("invalid_serial", "a version is a zone serial")
    serial = int(serial_text)
    for event, content in reversed(states):
        if event.serial == serial:
            return content
    raise NotFound(f"no version with serial {serial}", code="version_not_found")


@routes.get(ZONE_PATH + "/versions", summary="Every version of the zone, oldest first",
            responses={200: open_object()})
async def list_versions(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        states = await _history(session, access.name)
    return json_response({"zone": access.name, "items": [
        {"serial": e.serial, "change_id": e.id, "kind": e.kind, "at": e.created_at,
         "records": len(content), "changes": len(e.removed) + len(e.added)}
        for e, content in states]})


@routes.get(ZONE_PATH + "/versions/{serial}", summary="The zone's records at a version",
            responses={200: open_object()})
async def get_version(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        content = _version(await _history(session, access.name), request.match_info["serial"])
    origin = dns.name.from_text(access.name)
    return json_response({"zone": access.name, "serial": int(request.match_info["serial"]),
                          "records": diff_json(sorted(content), origin)})


@routes.get(ZONE_PATH + "/diff", summary="What changed between two versions",
            query=(QueryParam("from", {"type": "integer"}, "serial", required=True),
                   QueryParam("to", {"type": "integer"}, "serial", required=True)),
            responses={200: open_object()})
async def diff_versions(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        access = await zone_access(session, principal, request.match_info["zone"])
        states = await _history(session, access.name)
    old = _version(states, request.query.get("from", ""))
    new = _version(states, request.query.get("to", ""))
    origin = dns.name.from_text(access.name)
    return json_response({"zone": access.name, "removed": diff_json(sorted(old - new), origin),
                          "added": diff_json(sorted(new - old), origin)})


@routes.post(ZONE_PATH + "/versions/{serial}/restore", summary="Make a version current again "
             "(an edit like any other: new serial, audit, rights)", query=(DRY_RUN,),
             responses={200: WRITE_RESULT})
async def restore_version(request: web.Request) -> web.Response:
    query_bool(request, "dry_run")

    async def plan(session: AsyncSession, access: ZoneAccess,
                   origin: dns.name.Name) -> Sequence[RRsetChange]:
        content = _version(await _history(session, access.name), request.match_info["serial"])
        sets = await current(session, access.zone_id)
        wanted = rebuild(content, origin)
        return replace_all(sets, wanted)

    return await _edit_in_session(request, plan)


def setup(app: web.Application) -> None:
    routes.install(app)


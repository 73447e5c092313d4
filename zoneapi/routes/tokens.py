"""API tokens: bearer secrets shown once, stored as a digest, optionally
narrowed by deSEC-style policies and pinned to source subnets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dns.rdatatype
from aiohttp import web
from sqlalchemy import select

from storage.dnsdata import InvalidName, owner_name, parse_rdatatype, subname, zone_origin
from storage.models.auth import ApiToken
from zoneapi.access import audit_row, enforce, require_security_change
from zoneapi.auth import principal_of
from zoneapi.clock import aware
from zoneapi.crypto import digest, new_token
from zoneapi.endpoints import Routes, body_of
from zoneapi.errors import NotFound, Unprocessable
from zoneapi.jsonio import as_object, get_bool, get_str, json_response, obj_list, opt_int, str_list
from zoneapi.keys import CONTEXT
from zoneapi.policy import can_change_security, cidr_problems
from zoneapi.schema import JsonObject, array, boolean, integer, obj, string
from zoneapi.services import notices

routes = Routes("tokens")

POLICY = obj({"domain": string(255, nullable=True), "subname": string(255, nullable=True),
              "type": string(16, nullable=True), "write": boolean()})
TOKEN_FIELDS = {
    "name": string(100), "expires_in_s": integer(60, 10 * 365 * 86400, nullable=True),
    "max_unused_s": integer(60, 10 * 365 * 86400, nullable=True),
    "allowed_subnets": array(string(64), 100), "policies": array(POLICY, 100),
    "perm_manage": boolean("may change account and security settings"),
}
CREATE = obj(TOKEN_FIELDS)
UPDATE = obj({k: v for k, v in TOKEN_FIELDS.items() if k != "perm_manage"})
TOKEN = obj({"id": integer(), "name": string(), "created_at": string(),
             "expires_at": string(nullable=True), "max_unused_s": integer(nullable=True),
             "last_used_at": string(nullable=True), "allowed_subnets": array(string(64)),
             "policies": array(POLICY), "perm_manage": boolean(), "token": string()})


def token_json(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id, "name": token.name, "created_at": aware(token.created_at),
        "expires_at": aware(token.expires_at) if token.expires_at else None,
        "max_unused_s": token.max_unused_s,
        "last_used_at": aware(token.last_used_at) if token.last_used_at else None,
        "allowed_subnets": list(token.allowed_subnets or []),
        "policies": list(token.policies or []), "perm_manage": token.perm_manage,
    }


def _policies(raw: list[JsonObject]) -> list[dict[str, Any]]:
    """Canonical policies: zone names absolute, owners relative, types upper case."""
    policies: list[dict[str, Any]] = []
    seen: set[tuple[object, object, object]] = set()
    problems: list[str] = []
    for i, item in enumerate(raw):
        domain, sub, rdtype = item.get("domain"), item.get("subname"), item.get("type")
        try:
            origin = zone_origin(domain) if isinstance(domain, str) else None
            if isinstance(sub, str):
                if origin is None:
                    raise ValueError("a subname needs a domain")
                sub = subname(owner_name(sub, origin), origin)
            if isinstance(rdtype, str):
                rdtype = dns.rdatatype.to_text(parse_rdatatype(rdtype))
        except (InvalidName, ValueError) as exc:
            problems.append(f"policies[{i}]: {exc}")
            continue
        key = (origin.to_text() if origin else None, sub, rdtype)
        if key in seen:
            problems.append(f"policies[{i}]: duplicate policy")
        seen.add(key)
        policies.append({"domain": key[0], "subname": sub, "type": rdtype,
                         "write": bool(item.get("write", False))})
    if policies and (None, None, None) not in seen:
        problems.append("policies: a default policy (domain, subname and type all null) is "
                        "required once any policy is given, as in deSEC")
    if problems:
        raise Unprocessable("invalid_policies", "; ".join(problems[:5]), errors=problems)
    return policies


def _subnets(texts: list[str]) -> list[str]:
    problems = cidr_problems(texts)
    if problems:
        raise Unprocessable("invalid_subnets", "; ".join(problems[:5]), errors=problems)
    return texts


def _apply(token: ApiToken, body: JsonObject, now: datetime) -> None:
    if "name" in body:
        token.name = get_str(body, "name")
    if "expires_in_s" in body:
        seconds = opt_int(body, "expires_in_s")
        token.expires_at = now + timedelta(seconds=seconds) if seconds else None
    if "max_unused_s" in body:
        token.max_unused_s = opt_int(body, "max_unused_s")
    if "allowed_subnets" in body:
        token.allowed_subnets = _subnets(str_list(body, "allowed_subnets") or [])
    if "policies" in body:
        token.policies = _policies(obj_list(body, "policies"))
    if token.perm_manage and token.policies:
        raise Unprocessable("invalid_policies", "a token with perm_manage cannot be narrowed")


@routes.get("/tokens", summary="Your API tokens (never their secrets)",
            responses={200: array(TOKEN, 10_000)})
async def list_tokens(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    async with ctx.db.read() as session:
        rows = (await session.execute(
            select(ApiToken).where(ApiToken.user_id == principal.user_id,
                                   ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
        )).scalars().all()
    return json_response([token_json(t) for t in rows])


@routes.post("/tokens", summary="Create a token (sensitive); the secret is shown once",
             body=CREATE, responses={201: TOKEN})
async def create_token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    now = ctx.clock.now()
    secret = new_token()
    token = ApiToken(token_hash=digest(secret), user_id=principal.user_id, created_at=now,
                     perm_manage=get_bool(body, "perm_manage"), allowed_subnets=[], policies=[],
                     name="")
    _apply(token, body, now)
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        session.add(token)
        await session.flush()
        session.add(audit_row(principal, "token.create", "token", token.name or str(token.id),
                              None, token_json(token)))
    notices.token_created(ctx, principal.email, principal.login, token.name)
    return json_response({**token_json(token), "token": secret}, status=201)


async def _own_token(request: web.Request, session: Any, *, lock: bool = False) -> ApiToken:
    principal = principal_of(request)
    query = select(ApiToken).where(
        ApiToken.id == int(request.match_info["token_id"]), ApiToken.user_id == principal.user_id,
        ApiToken.revoked_at.is_(None))
    token = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if token is None:
        raise NotFound("token not found", code="token_not_found")
    assert isinstance(token, ApiToken)
    return token


@routes.get("/tokens/{token_id:[0-9]{1,18}}", summary="One of your tokens",
            responses={200: TOKEN})
async def get_token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    async with ctx.db.read() as session:
        token = await _own_token(request, session)
    return json_response(token_json(token))


@routes.patch("/tokens/{token_id:[0-9]{1,18}}", summary="Change a token's name, expiry, "
              "subnets or policies (sensitive)", body=UPDATE, responses={200: TOKEN})
async def update_token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    body = as_object(body_of(request))
    async with ctx.db.write() as session:
        await require_security_change(session, ctx, principal)
        token = await _own_token(request, session, lock=True)
        before = token_json(token)
        _apply(token, body, ctx.clock.now())
        session.add(audit_row(principal, "token.update", "token", token.name or str(token.id),
                              before, token_json(token)))
    return json_response(token_json(token))


@routes.delete("/tokens/{token_id:[0-9]{1,18}}", summary="Revoke a token",
               responses={204: None})
async def revoke_token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    principal = principal_of(request)
    enforce(can_change_security(principal.token))
    async with ctx.db.write() as session:
        token = await _own_token(request, session, lock=True)
        token.revoked_at = ctx.clock.now()
        session.add(audit_row(principal, "token.revoke", "token", token.name or str(token.id)))
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    routes.install(app)

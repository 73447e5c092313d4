"""Harness for the zone API's integration tests: a real server on a loopback
port over the test database, and a small client that returns
(status, json, headers). Other test_api_* modules import from here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from storage.db import Database
from zoneapi.app import create_app
from zoneapi.clock import OffsetClock
from zoneapi.config import RateLimit, ZoneApiConfig, new_secret_key
from zoneapi.delivery import SmsGateway
from zoneapi.endpoints import Routes

FAST: dict[str, Any] = {
    "argon2_time_cost": 1, "argon2_memory_kib": 8 * 1024,
    "rate_per_address": RateLimit(10_000, 10_000), "rate_per_token": RateLimit(10_000, 10_000)}


def api_config(**overrides: Any) -> ZoneApiConfig:
    config = ZoneApiConfig(secret_key=new_secret_key(), min_password_chars=10, **FAST)
    return replace(config, **overrides)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]
    text: str

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class ApiClient:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http

    async def call(self, method: str, path: str, *, token: str | None = None,
                   cookie: tuple[str, str] | None = None, csrf: str | None = None,
                   json_body: Any = None, data: str | bytes | None = None,
                   headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None) -> Reply:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if cookie:
            h["Cookie"] = f"{cookie[0]}={cookie[1]}"
        if csrf:
            h["X-CSRF-Token"] = csrf
        kwargs: dict[str, Any] = {"headers": h, "params": params}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body)
            h.setdefault("Content-Type", "application/json")
        elif data is not None:
            kwargs["data"] = data
        async with self.http.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return Reply(response.status, body, response.headers.copy(), text)


@dataclass
class ApiServer:
    app: web.Application
    server: TestServer
    client: ApiClient
    clock: OffsetClock
    db: Database


async def start_server(db: Database, config: ZoneApiConfig | None = None,
                       sms: SmsGateway | None = None, extra: Routes | None = None) -> ApiServer:
    clock = OffsetClock()
    app = create_app(config or api_config(), db, clock=clock, sms=sms)
    if extra is not None:  # as a route module's setup() would, before the first request
        extra.install(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    return ApiServer(app, server, ApiClient(str(server.make_url("")).rstrip("/"), http),
                     clock, db)


async def stop_server(api: ApiServer) -> None:
    await api.client.http.close()
    await api.server.close()


@asynccontextmanager
async def running_api(db: Database, config: ZoneApiConfig | None = None,
                      sms: SmsGateway | None = None,
                      extra: Routes | None = None) -> AsyncIterator[ApiServer]:
    """Use in each module's `api` fixture: `async with running_api(db) as s: yield s`."""
    server = await start_server(db, config, sms, extra)
    try:
        yield server
    finally:
        await stop_server(server)


# Seeding through the project's own services (what sign-up + approval do).

PASSWORD = "correct horse battery"


@dataclass
class Login:
    user_id: int
    login: str
    account_id: int


@dataclass
class Browser:
    cookie: tuple[str, str]
    csrf: str


async def seed_account(api: ApiServer, login: str, *, active: bool = True) -> Login:
    from zoneapi.keys import CONTEXT
    from zoneapi.services import accounts

    ctx = api.app[CONTEXT]
    async with api.db.write() as session:
        account, user = await accounts.sign_up(
            session, ctx, login=login, password=PASSWORD, email=f"{login}@example.net",
            name=f"{login} Ltd", country="FR", postal_address="1 rue X", phone=None)
        if active:
            await accounts.approve(session, login)
        return Login(user.id, user.login, account.id)


async def seed_user(api: ApiServer, leader: Login, login: str, role: str,
                    unit_id: int | None = None) -> Login:
    from storage.models import UserRole
    from zoneapi.keys import CONTEXT
    from zoneapi.services import accounts

    async with api.db.write() as session:
        user = await accounts.create_user(
            session, api.app[CONTEXT], account_id=leader.account_id, login=login,
            email=f"{login}@example.net", password=PASSWORD, role=UserRole(role),
            business_unit_id=unit_id)
        return Login(user.id, user.login, leader.account_id)


async def seed_token(api: ApiServer, user: Login, **fields: Any) -> str:
    """A token inserted directly (setting one up through the API needs a step-up)."""
    from storage.models.auth import ApiToken
    from zoneapi.crypto import digest, new_token

    secret = new_token()
    values: dict[str, Any] = {"name": "test", "allowed_subnets": [], "policies": [],
                              "perm_manage": False}
    values.update(fields)
    async with api.db.write() as session:
        session.add(ApiToken(token_hash=digest(secret), user_id=user.user_id, **values))
    return secret


async def browser_login(api: ApiServer, login: str, password: str = PASSWORD,
                        **extra: str) -> Browser:
    reply = await api.client.call("POST", "/api/v1/auth/login",
                                  json_body={"login": login, "password": password, **extra})
    assert reply.status == 200, reply.text
    name, _, rest = reply.headers["Set-Cookie"].partition("=")
    return Browser((name, rest.split(";")[0]), reply.body["csrf_token"])


async def outbox(api: ApiServer, recipient: str, channel: str = "mail") -> list[tuple[str, str]]:
    """(subject, body) of messages to `recipient`, oldest first, once background sends finish."""
    from sqlalchemy import select

    from storage.models.auth import OutboxMessage
    from zoneapi.keys import CONTEXT

    await api.app[CONTEXT].notifier.drain()
    async with api.db.read() as session:
        rows = await session.execute(
            select(OutboxMessage.subject, OutboxMessage.body).where(
                OutboxMessage.recipient == recipient, OutboxMessage.channel == channel)
            .order_by(OutboxMessage.id))
        return [(s, b) for s, b in rows]


ZONE_TEXT = """\
$ORIGIN {origin}
@ 3600 IN SOA ns1.host.example. hostmaster.host.example. 1 7200 3600 1209600 300
@ 3600 IN NS ns1.host.example.
@ 3600 IN NS ns2.host.example.
@ 300 IN A 192.0.2.1
www 300 IN A 192.0.2.2
mail 300 IN MX 10 mx.host.example.
"""


async def seed_zone(api: ApiServer, owner: Login, name: str, unit_id: int | None = None) -> None:
    """A zone of `owner`'s account, created through storage as the order flow would."""
    from sqlalchemy import update

    from storage import zones as store
    from storage.dnsdata import zone_from_text, zone_origin
    from storage.models import Zone

    origin = zone_origin(name)
    content = zone_from_text(ZONE_TEXT.format(origin=origin.to_text()), origin)
    async with api.db.write() as session:
        await store.replace_zone(session, content, store.OPERATOR)
        await session.execute(update(Zone).where(Zone.name == origin.to_text()).values(
            account_id=owner.account_id, business_unit_id=unit_id))


async def allowlist(api: ApiServer, owner: Login, cidrs: list[str]) -> None:
    from storage.models import Account

    async with api.db.write() as session:
        account = await session.get(Account, owner.account_id)
        assert account is not None
        account.ip_allowlist = cidrs

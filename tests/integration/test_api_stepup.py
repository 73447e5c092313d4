"""Sensitive actions end to end: an allowlisted address passes; any other
gets 403 with how to unlock, asks for an SMS code which a stand-in HTTP
SMS gateway receives, and the code unlocks that one operation for a few
minutes and no longer. Tokens are held to the same rule; TOTP works too."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from storage.db import Database
from tests.integration.test_api_harness import (
    ApiServer,
    Browser,
    Login,
    allowlist,
    api_config,
    browser_login,
    outbox,
    running_api,
    seed_account,
    seed_token,
    seed_user,
    seed_zone,
)
from zoneapi import totp
from zoneapi.config import SmsGatewayConfig
from zoneapi.keys import CONTEXT

Z = "/api/v1/zones/example.com"
MOBILE = "+33612345678"


@dataclass
class Gateway:
    """Stands in for the SMS provider: records what it is asked to send."""

    messages: list[dict[str, str]] = field(default_factory=list)
    fail: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"sms-user:sms-pass").decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        if self.fail:
            return web.Response(status=503)
        self.messages.append(await request.json())
        return web.json_response({"queued": True})

    def last_code(self) -> str:
        match = re.search(r"code (\d{6})", self.messages[-1]["text"])
        assert match is not None
        return match.group(1)


@dataclass
class World:
    api: ApiServer
    gateway: Gateway
    leader: Login
    browser: Browser


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    gateway = Gateway()
    app = web.Application()
    app.router.add_post("/send", gateway.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    config = api_config(sms=SmsGatewayConfig(str(server.make_url("/send")), "sms-user",
                                             "sms-pass", "zonehost", timeout_s=5),
                        step_up_s=300, sms_per_hour=6)
    try:
        async with running_api(db, config) as api:
            leader = await seed_account(api, "acme")
            await seed_zone(api, leader, "example.com")
            await allowlist(api, leader, ["192.0.2.0/24"])
            yield World(api, gateway, leader, await browser_login(api, "acme"))
    finally:
        await server.close()


async def _edit(w: World, browser: Browser, name: str = "www", rdtype: str = "A",
                records: list[str] | None = None) -> tuple[int, dict[str, object]]:
    reply = await w.api.client.call(
        "PUT", f"{Z}/rrsets/{name}/{rdtype}", cookie=browser.cookie, csrf=browser.csrf,
        json_body={"ttl": 300, "records": records or ["192.0.2.80"]})
    return reply.status, reply.body


async def _register_mobile(w: World) -> None:
    c, b = w.api.client, w.browser
    reg = await c.call("PUT", "/api/v1/me/mobile", cookie=b.cookie, csrf=b.csrf,
                       json_body={"mobile": MOBILE})
    assert reg.status == 202, reg.text
    assert w.gateway.messages[-1]["to"] == MOBILE
    ok = await c.call("POST", "/api/v1/me/mobile/verify", cookie=b.cookie, csrf=b.csrf,
                      json_body={"code": w.gateway.last_code()})
    assert ok.status == 204, ok.text


async def test_sms_step_up_unlocks_one_operation_for_a_few_minutes(world: World) -> None:
    w, c = world, world.api.client
    status, body = await _edit(w, w.browser)
    assert status == 403 and body["code"] == "step_up_required"
    assert body["operation"] == "edit_zone:example.com."
    assert body["how"] == ["allowlist_address", "enrol_totp", "register_mobile"]
    await _register_mobile(w)
    assert any("second factor added" in s for s, _ in await outbox(w.api, "acme@example.net"))
    status, body = await _edit(w, w.browser)
    assert status == 403 and "sms" in body["how"]  # type: ignore[operator]
    asked = await c.call("POST", "/api/v1/auth/step-up/sms", cookie=w.browser.cookie,
                         csrf=w.browser.csrf, json_body={"operation": body["operation"]})
    assert asked.status == 202
    code = w.gateway.last_code()
    assert "edit_zone:example.com." in w.gateway.messages[-1]["text"]
    wrong = await c.call("POST", "/api/v1/auth/step-up", cookie=w.browser.cookie,
                         csrf=w.browser.csrf,
                         json_body={"sms_code": "000000" if code != "000000" else "111111",
                                    "operation": "edit_zone:example.com."})
    assert wrong.status == 403
    other_op = await c.call("POST", "/api/v1/auth/step-up", cookie=w.browser.cookie,
                            csrf=w.browser.csrf, json_body={
                                "sms_code": code, "operation": "edit_nameservers:example.com."})
    assert other_op.status == 403
    passed = await c.call("POST", "/api/v1/auth/step-up", cookie=w.browser.cookie,
                          csrf=w.browser.csrf, json_body={
                              "sms_code": code, "operation": "edit_zone:example.com."})
    assert passed.status == 200, passed.text
    # The session id was rotated: the old cookie is dead, the new one works.
    assert (await c.call("GET", "/api/v1/me", cookie=w.browser.cookie)).status == 401
    name, _, rest = passed.headers["Set-Cookie"].partition("=")
    stepped = Browser((name, rest.split(";")[0]), passed.body["csrf_token"])
    assert (await _edit(w, stepped))[0] == 200
    # Only that operation: the name servers stay locked.
    status, body = await _edit(w, stepped, "@", "NS", ["ns9.host.example."])
    assert status == 403 and body["operation"] == "edit_nameservers:example.com."
    replay = await c.call("POST", "/api/v1/auth/step-up", cookie=stepped.cookie,
                          csrf=stepped.csrf, json_body={
                              "sms_code": code, "operation": "edit_zone:example.com."})
    assert replay.status == 403
    w.api.clock.advance(299)
    assert (await _edit(w, stepped, records=["192.0.2.81"]))[0] == 200
    w.api.clock.advance(2)
    assert (await _edit(w, stepped, records=["192.0.2.82"]))[0] == 403


async def test_allowlisted_address_passes_and_tokens_obey_the_gate(world: World) -> None:
    w, c = world, world.api.client
    token = await seed_token(w.api, w.leader)
    put = await c.call("PUT", f"{Z}/rrsets/www/A", token=token,
                       json_body={"ttl": 300, "records": ["192.0.2.90"]})
    assert put.status == 403 and put.code == "step_up_required"
    pinned = await seed_token(w.api, w.leader, allowed_subnets=["127.0.0.0/8"])
    ok = await c.call("PUT", f"{Z}/rrsets/www/A", token=pinned,
                      json_body={"ttl": 300, "records": ["192.0.2.91"]})
    assert ok.status == 200
    await allowlist(w.api, w.leader, ["192.0.2.0/24", "127.0.0.1/32"])
    assert (await _edit(w, w.browser))[0] == 200
    ns = await _edit(w, w.browser, "@", "NS", ["ns1.host.example.", "ns3.host.example."])
    assert ns[0] == 200
    mails = await outbox(w.api, "acme@example.net")
    assert any("name servers of example.com. changed" in s for s, _ in mails)


async def test_nameserver_change_is_mailed_to_the_account_primary_address(world: World) -> None:
    w, c = world, world.api.client
    delegate = await seed_user(w.api, w.leader, "acme-ops", "delegate")
    token = await seed_token(w.api, delegate, allowed_subnets=["127.0.0.0/8"])
    edit = await c.call("PUT", f"{Z}/rrsets/www/A", token=token,
                        json_body={"ttl": 300, "records": ["192.0.2.77"]})
    assert edit.status == 200, edit.text
    ns = await c.call("PUT", f"{Z}/rrsets/@/NS", token=token,
                      json_body={"ttl": 3600, "records": ["ns1.host.example.", "ns4.host.example."]})
    assert ns.status == 200, ns.text
    # The delegate who changed them and the account's primary address, once each.
    for address in ("acme-ops@example.net", "acme@example.net"):
        mails = [(s, b) for s, b in await outbox(w.api, address) if "name servers" in s]
        assert len(mails) == 1, (address, mails)
        assert "ns4.host.example." in mails[0][1] and "acme-ops" in mails[0][1]


async def test_totp_step_up_for_a_token(world: World) -> None:
    w, c, b = world, world.api.client, world.browser
    enrol = await c.call("POST", "/api/v1/me/totp", cookie=b.cookie, csrf=b.csrf)
    secret = enrol.body["secret"]
    confirm = await c.call("POST", "/api/v1/me/totp/confirm", cookie=b.cookie, csrf=b.csrf,
                           json_body={"code": totp.code_at(secret, w.api.clock.now())})
    assert confirm.status == 200
    token = await seed_token(w.api, w.leader)
    denied = await c.call("DELETE", f"{Z}/rrsets/mail/MX", token=token)
    assert denied.status == 403 and "totp" in denied.body["how"]
    w.api.clock.advance(30)
    up = await c.call("POST", "/api/v1/auth/step-up", token=token,
                      json_body={"totp_code": totp.code_at(secret, w.api.clock.now())})
    assert up.status == 200 and up.body["operation"] is None
    assert (await c.call("DELETE", f"{Z}/rrsets/mail/MX", token=token)).status == 200
    # The step-up belongs to that token, not to the browser session.
    assert (await _edit(w, b))[0] == 403
    # Removing the second factor is itself a sensitive action: stepped up? No: 403.
    assert (await c.call("DELETE", "/api/v1/me/totp", cookie=b.cookie, csrf=b.csrf)).status == 403


async def test_totp_guesses_are_limited_per_user(world: World) -> None:
    """Five wrong codes (step-up or enrolment) lock the user's TOTP checks for
    `lockout_s`: the right code is refused too until then, and nothing is granted."""
    w, c, b = world, world.api.client, world.browser
    secret = (await c.call("POST", "/api/v1/me/totp", cookie=b.cookie, csrf=b.csrf)).body["secret"]
    right = totp.code_at(secret, w.api.clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        reply = await c.call("POST", "/api/v1/me/totp/confirm", cookie=b.cookie, csrf=b.csrf,
                             json_body={"code": wrong})
        assert (reply.status, reply.code) == (422, "invalid_second_factor")
    confirm = await c.call("POST", "/api/v1/me/totp/confirm", cookie=b.cookie, csrf=b.csrf,
                           json_body={"code": right})
    assert confirm.status == 200  # two failures are below the limit; success clears them
    token = await seed_token(w.api, w.leader)
    for _ in range(w.api.app[CONTEXT].config.login_max_failures):
        w.api.clock.advance(30)
        wrong = f"{(int(totp.code_at(secret, w.api.clock.now())) + 1) % 1_000_000:06d}"
        reply = await c.call("POST", "/api/v1/auth/step-up", token=token,
                             json_body={"totp_code": wrong})
        assert (reply.status, reply.code) == (403, "invalid_second_factor")
    w.api.clock.advance(30)
    locked = await c.call("POST", "/api/v1/auth/step-up", token=token,
                          json_body={"totp_code": totp.code_at(secret, w.api.clock.now())})
    assert (locked.status, locked.code) == (429, "too_many_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= w.api.app[CONTEXT].config.lockout_s
    assert (await c.call("DELETE", f"{Z}/rrsets/mail/MX", token=token)).status == 403
    w.api.clock.advance(w.api.app[CONTEXT].config.lockout_s + 30)
    up = await c.call("POST", "/api/v1/auth/step-up", token=token,
                      json_body={"totp_code": totp.code_at(secret, w.api.clock.now())})
    assert up.status == 200
    assert (await c.call("DELETE", f"{Z}/rrsets/mail/MX", token=token)).status == 200


async def test_sms_limits(world: World) -> None:
    w, c, b = world, world.api.client, world.browser
    no_mobile = await c.call("POST", "/api/v1/auth/step-up/sms", cookie=b.cookie, csrf=b.csrf,
                             json_body={"operation": "edit_zone:example.com."})
    assert no_mobile.status == 409 and no_mobile.code == "no_verified_mobile"
    await _register_mobile(w)
    bogus = await c.call("POST", "/api/v1/auth/step-up/sms", cookie=b.cookie, csrf=b.csrf,
                         json_body={"operation": "nonsense"})
    assert bogus.status == 400
    # Sent at once, so the hourly limit must hold across concurrent transactions.
    replies = await asyncio.gather(*(
        c.call("POST", "/api/v1/auth/step-up/sms", cookie=b.cookie, csrf=b.csrf,
               json_body={"operation": "edit_zone:example.com."}) for _ in range(8)))
    assert sorted(r.status for r in replies) == [202] * 5 + [429] * 3
    w.api.clock.advance(3601)
    b = await browser_login(w.api, "acme")
    w.gateway.fail = True
    failed = await c.call("POST", "/api/v1/auth/step-up/sms", cookie=b.cookie, csrf=b.csrf,
                          json_body={"operation": "edit_zone:example.com."})
    assert failed.status == 502 and failed.code == "sms_failed"

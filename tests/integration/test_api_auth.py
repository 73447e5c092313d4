"""Accounts and authentication over a real server and database: sign-up and
approval, login throttling without enumeration, sessions (cookie flags,
CSRF, idle and absolute timeouts, revocation), TOTP with replay refusal and
recovery codes, tokens (expiry, revocation, subnets), password reset."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator

import pytest

from storage.db import Database
from tests.integration.test_api_harness import (
    PASSWORD,
    ApiServer,
    api_config,
    browser_login,
    outbox,
    running_api,
    seed_account,
    seed_token,
)
from zoneapi import totp
from zoneapi.keys import CONTEXT
from zoneapi.services.accounts import AccountError, approve


@pytest.fixture
async def api(db: Database) -> AsyncIterator[ApiServer]:
    async with running_api(db, api_config(session_idle_s=600, session_absolute_s=3600)) as s:
        yield s


async def test_signup_pending_then_cli_approval(api: ApiServer, cli_env: dict[str, str]) -> None:
    body = {"login": "newco", "password": PASSWORD, "email": "boss@newco.example",
            "name": "NewCo", "country": "DE"}
    reply = await api.client.call("POST", "/api/v1/auth/signup", json_body=body)
    assert reply.status == 201 and reply.body["account"]["status"] == "pending"
    again = await api.client.call("POST", "/api/v1/auth/signup", json_body=body)
    assert again.status == 409 and again.code == "login_taken"
    browser = await browser_login(api, "newco")
    me = await api.client.call("GET", "/api/v1/me", cookie=browser.cookie)
    assert me.body["account_status"] == "pending"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zonehost", "account", "approve", "newco", env=cli_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert b"approved" in out
    me = await api.client.call("GET", "/api/v1/me", cookie=browser.cookie)
    assert me.body["account_status"] == "active"
    async with api.db.write() as session:
        with pytest.raises(AccountError, match="already active"):
            await approve(session, "newco")


async def test_weak_password_and_bad_login_refused(api: ApiServer) -> None:
    body = {"login": "x y", "password": "short", "email": "a@b.example", "name": "n",
            "country": "FR"}
    reply = await api.client.call("POST", "/api/v1/auth/signup", json_body=body)
    assert reply.status == 422


async def test_login_errors_do_not_enumerate_and_lock_out(api: ApiServer) -> None:
    await seed_account(api, "alice")
    wrong = await api.client.call("POST", "/api/v1/auth/login",
                                  json_body={"login": "alice", "password": "nope nope nope"})
    ghost = await api.client.call("POST", "/api/v1/auth/login",
                                  json_body={"login": "ghost", "password": "nope nope nope"})
    assert wrong.status == ghost.status == 401
    assert wrong.body == ghost.body
    for name in ("alice", "ghost"):
        for _ in range(5):
            await api.client.call("POST", "/api/v1/auth/login",
                                  json_body={"login": name, "password": "bad bad bad"})
        locked = await api.client.call("POST", "/api/v1/auth/login",
                                       json_body={"login": name, "password": PASSWORD})
        assert locked.status == 429 and locked.code == "too_many_attempts"
        assert int(locked.headers["Retry-After"]) > 0
    api.clock.advance(api.app[CONTEXT].config.lockout_s + 1)
    await browser_login(api, "alice")


async def test_concurrent_failed_logins_all_count(api: ApiServer) -> None:
    """First failures for one login racing each other: no duplicate-key 500,
    and every one counts (the fifth locks the login)."""
    await seed_account(api, "carol")
    limit = api.app[CONTEXT].config.login_max_failures
    replies = await asyncio.gather(*(
        api.client.call("POST", "/api/v1/auth/login",
                        json_body={"login": "carol", "password": f"wrong password {i}"})
        for i in range(limit)))
    assert sorted(r.status for r in replies) == [401] * limit, [r.text for r in replies]
    locked = await api.client.call("POST", "/api/v1/auth/login",
                                   json_body={"login": "carol", "password": PASSWORD})
    assert (locked.status, locked.code) == (429, "too_many_attempts")


async def test_session_cookie_csrf_timeouts_and_logout(api: ApiServer) -> None:
    await seed_account(api, "bob")
    reply = await api.client.call("POST", "/api/v1/auth/login",
                                  json_body={"login": "bob", "password": PASSWORD})
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    browser = await browser_login(api, "bob")
    ok = await api.client.call("GET", "/api/v1/me", cookie=browser.cookie)
    assert ok.status == 200 and ok.body["login"] == "bob"
    no_csrf = await api.client.call("POST", "/api/v1/auth/logout", cookie=browser.cookie)
    assert no_csrf.status == 403 and no_csrf.code == "csrf_failed"
    listed = await api.client.call("GET", "/api/v1/auth/sessions", cookie=browser.cookie)
    assert len(listed.body) == 2 and sum(s["current"] for s in listed.body) == 1
    out = await api.client.call("POST", "/api/v1/auth/logout", cookie=browser.cookie,
                                csrf=browser.csrf)
    assert out.status == 204
    gone = await api.client.call("GET", "/api/v1/me", cookie=browser.cookie)
    assert gone.status == 401 and gone.code == "session_expired"
    # Idle timeout: 600 s without a request.
    idle = await browser_login(api, "bob")
    api.clock.advance(601)
    assert (await api.client.call("GET", "/api/v1/me", cookie=idle.cookie)).status == 401
    # Absolute timeout: 3600 s even when active.
    active = await browser_login(api, "bob")
    for _ in range(6):
        api.clock.advance(550)
        assert (await api.client.call("GET", "/api/v1/me", cookie=active.cookie)).status == 200
    api.clock.advance(300)
    assert (await api.client.call("GET", "/api/v1/me", cookie=active.cookie)).status == 401


async def test_login_rotates_session_and_revokes_old(api: ApiServer) -> None:
    await seed_account(api, "carol")
    first = await browser_login(api, "carol")
    reply = await api.client.call("POST", "/api/v1/auth/login", cookie=first.cookie,
                                  json_body={"login": "carol", "password": PASSWORD})
    assert reply.status == 200
    assert (await api.client.call("GET", "/api/v1/me", cookie=first.cookie)).status == 401


async def test_totp_enrolment_login_replay_and_recovery(api: ApiServer) -> None:
    await seed_account(api, "dave")
    browser = await browser_login(api, "dave")
    enrol = await api.client.call("POST", "/api/v1/me/totp", cookie=browser.cookie,
                                  csrf=browser.csrf)
    assert enrol.status == 200, enrol.text
    secret = enrol.body["secret"]
    assert enrol.body["otpauth_uri"].startswith("otpauth://totp/")
    assert enrol.body["qr_svg"].lstrip().startswith("<svg")
    now = api.clock.now()
    confirm = await api.client.call("POST", "/api/v1/me/totp/confirm", cookie=browser.cookie,
                                    csrf=browser.csrf, json_body={"code": totp.code_at(secret, now)})
    assert confirm.status == 200
    recovery = confirm.body["recovery_codes"]
    assert len(recovery) == 10
    mails = await outbox(api, "dave@example.net")
    assert any("second factor added" in subject for subject, _ in mails)
    no_code = await api.client.call("POST", "/api/v1/auth/login",
                                    json_body={"login": "dave", "password": PASSWORD})
    assert no_code.status == 401 and no_code.code == "second_factor_required"
    # The enrolment code was used already: replay refused.
    replay = await api.client.call("POST", "/api/v1/auth/login", json_body={
        "login": "dave", "password": PASSWORD, "totp_code": totp.code_at(secret, now)})
    assert replay.status == 401 and replay.code == "invalid_second_factor"
    api.clock.advance(30)
    fresh = totp.code_at(secret, api.clock.now())
    await browser_login(api, "dave", totp_code=fresh)
    again = await api.client.call("POST", "/api/v1/auth/login", json_body={
        "login": "dave", "password": PASSWORD, "totp_code": fresh})
    assert again.status == 401 and again.code == "invalid_second_factor"
    await browser_login(api, "dave", recovery_code=recovery[0])
    used = await api.client.call("POST", "/api/v1/auth/login", json_body={
        "login": "dave", "password": PASSWORD, "recovery_code": recovery[0]})
    assert used.status == 401


async def test_token_lifecycle(api: ApiServer) -> None:
    alice = await seed_account(api, "erin")
    token = await seed_token(api, alice)
    me = await api.client.call("GET", "/api/v1/me", token=token)
    assert me.status == 200 and me.body["credential"].startswith("token:")
    assert (await api.client.call("GET", "/api/v1/me", token="zh_" + "x" * 40)).code == \
        "invalid_token"
    short = await seed_token(api, alice, max_unused_s=120)
    assert (await api.client.call("GET", "/api/v1/me", token=short)).status == 200
    api.clock.advance(121)
    expired = await api.client.call("GET", "/api/v1/me", token=short)
    assert expired.status == 401 and expired.code == "token_expired"
    pinned = await seed_token(api, alice, allowed_subnets=["192.0.2.0/24"])
    refused = await api.client.call("GET", "/api/v1/me", token=pinned)
    assert refused.status == 403 and refused.code == "token_address_refused"
    # Creating tokens is a security change: 403 with how to unlock, then allowed
    # from an allowlisted address.
    manage = await seed_token(api, alice, perm_manage=True)
    denied = await api.client.call("POST", "/api/v1/tokens", token=manage,
                                   json_body={"name": "ci"})
    assert denied.status == 403 and denied.code == "step_up_required"
    assert denied.body["how"][0] == "allowlist_address" and "register_mobile" in denied.body["how"]
    plain = await api.client.call("POST", "/api/v1/tokens", token=token,
                                  json_body={"name": "ci"})
    assert plain.status == 403 and plain.code == "token_scope"
    lab = await seed_token(api, alice, perm_manage=True, allowed_subnets=["127.0.0.0/8"])
    created = await api.client.call("POST", "/api/v1/tokens", token=lab, json_body={
        "name": "acme", "policies": [
            {"domain": None, "subname": None, "type": None, "write": False},
            {"domain": "example.com", "subname": "_acme-challenge", "type": "txt",
             "write": True}]})
    assert created.status == 201, created.text
    assert created.body["policies"][1] == {"domain": "example.com.",
                                           "subname": "_acme-challenge", "type": "TXT",
                                           "write": True}
    secret = created.body["token"]
    assert (await api.client.call("GET", "/api/v1/me", token=secret)).status == 200
    assert any("token created" in s for s, _ in await outbox(api, "erin@example.net"))
    listed = await api.client.call("GET", "/api/v1/tokens", token=token)
    assert all("token" not in t for t in listed.body)
    gone = await api.client.call("DELETE", f"/api/v1/tokens/{created.body['id']}", token=lab)
    assert gone.status == 204
    assert (await api.client.call("GET", "/api/v1/me", token=secret)).code == "invalid_token"
    bad = await api.client.call("POST", "/api/v1/tokens", token=lab, json_body={
        "name": "x", "policies": [{"domain": "../etc", "write": True}],
        "allowed_subnets": ["300.1.1.1/8"]})
    assert bad.status == 422


async def test_password_reset(api: ApiServer) -> None:
    await seed_account(api, "frank")
    browser = await browser_login(api, "frank")
    for login, email in (("frank", "frank@example.net"), ("ghost", "ghost@example.net"),
                         ("frank", "wrong@example.net")):
        reply = await api.client.call("POST", "/api/v1/auth/password-reset",
                                      json_body={"login": login, "email": email})
        assert reply.status == 202
    mails = await outbox(api, "frank@example.net")
    assert len(mails) == 1 and not await outbox(api, "ghost@example.net")
    token = re.search(r"#token=(\S+)", mails[0][1]).group(1)  # type: ignore[union-attr]
    new_password = "a much better passphrase"
    done = await api.client.call("POST", "/api/v1/auth/password-reset/confirm",
                                 json_body={"token": token, "password": new_password})
    assert done.status == 204
    assert (await api.client.call("GET", "/api/v1/me", cookie=browser.cookie)).status == 401
    reuse = await api.client.call("POST", "/api/v1/auth/password-reset/confirm",
                                  json_body={"token": token, "password": "another passphrase"})
    assert reuse.status == 400 and reuse.code == "invalid_reset_token"
    await browser_login(api, "frank", new_password)


async def test_contact_details_rules(api: ApiServer) -> None:
    leader = await seed_account(api, "gina")
    token = await seed_token(api, leader, perm_manage=True)
    ok = await api.client.call("PATCH", "/api/v1/account", token=token,
                               json_body={"postal_address": "2 rue Y", "phone": "+33100000000",
                                          "country": "FR"})
    assert ok.status == 200 and ok.body["postal_address"] == "2 rue Y"
    for field, value in (("country", "DE"), ("primary_email", "new@example.net")):
        refused = await api.client.call("PATCH", "/api/v1/account", token=token,
                                        json_body={field: value})
        assert refused.status == 403 and refused.code == "support_required"
        assert "support" in refused.body["detail"]

"""The zone API's mail alias routes over HTTP with a real store: who may do
what, quotas, bad input, target confirmation, the sensitive option and MX."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from storage import aliases
from storage.db import Database
from storage.models import AuditEntry, Right, UserRight, Zone
from tests.integration.test_api_harness import (
    ApiServer,
    Login,
    allowlist,
    api_config,
    running_api,
    seed_account,
    seed_token,
    seed_user,
    seed_zone,
)

MX_HOSTS = ("mx1.zonehost.test", "mx2.zonehost.test")
A = "/api/v1/zones/one.example/mail/aliases"
M = "/api/v1/zones/one.example/mail"


@dataclass
class World:
    api: ApiServer
    leader: Login
    tokens: dict[str, str | None]


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    async with running_api(db, api_config(mail_mx_hosts=MX_HOSTS)) as api:
        leader = await seed_account(api, "lead")
        await seed_zone(api, leader, "one.example")
        other = await seed_account(api, "rival")
        await seed_zone(api, other, "rival.example")
        people = {
            "leader": leader, "other_client": other,
            "delegate": await seed_user(api, leader, "deleg", "delegate"),
            "user_aliases": await seed_user(api, leader, "mailer", "user"),
            "user_view": await seed_user(api, leader, "viewer", "user"),
            "user_none": await seed_user(api, leader, "nobody", "user"),
        }
        async with db.write() as session:
            zone_id = (await session.execute(
                select(Zone.id).where(Zone.name == "one.example."))).scalar_one()
            session.add(UserRight(user_id=people["user_aliases"].user_id, zone_id=zone_id,
                                  right=Right.MANAGE_ALIASES))
            session.add(UserRight(user_id=people["user_view"].user_id, zone_id=zone_id,
                                  right=Right.VIEW))
        tokens: dict[str, str | None] = {
            name: await seed_token(api, login) for name, login in people.items()}
        tokens["anonymous"] = None
        tokens["leader_manage"] = await seed_token(api, leader, perm_manage=True)
        tokens["zone_token"] = await seed_token(api, leader, policies=[
            {"domain": "one.example.", "subname": None, "type": None, "write": True}])
        tokens["record_token"] = await seed_token(api, leader, policies=[
            {"domain": "one.example.", "subname": None, "type": None, "write": False},
            {"domain": "one.example.", "subname": "www", "type": "A", "write": True}])
        yield World(api, leader, tokens)


async def call(w: World, who: str, method: str, path: str, body: object = None,
               **kw: object) -> tuple[int, object, str | None]:
    reply = await w.api.client.call(method, path, token=w.tokens[who], json_body=body,
                                    **kw)  # type: ignore[arg-type]
    return reply.status, reply.body, reply.code


async def token_for(db: Database, target: str) -> str:
    """The confirmation link's token, as the forwarder's housekeeping mails it."""
    async with db.write() as session:
        requests = await aliases.claim_confirmations(session)
    (request,) = [r for r in requests if r.target == target]
    return request.token


MANAGERS = {"leader", "delegate", "user_aliases", "zone_token"}
DENIALS = {  # zones of other accounts, or without any right, look missing
    "user_view": (403, "right_missing"), "user_none": (404, "zone_not_found"),
    "other_client": (404, "zone_not_found"), "anonymous": (401, "unauthenticated"),
    "record_token": (403, "token_scope"),
}
CALLERS = [*sorted(MANAGERS), "user_view", "user_none", "other_client", "anonymous",
           "record_token"]


async def test_who_may_manage_aliases(world: World) -> None:
    problems = []
    for n, who in enumerate(CALLERS):
        allowed = who in MANAGERS
        steps = [
            ("POST", A, {"local_part": f"a{n}", "targets": [f"t{n}@dest.test"]}, 201),
            ("GET", A, None, 200),
            ("GET", f"{A}/a{n}", None, 200),
            ("PUT", f"{A}/a{n}", {"targets": [f"t{n}@dest.test", "u@dest.test"]}, 200),
            ("POST", f"{A}/a{n}/targets/u@dest.test/resend", None, 202),
            ("GET", M, None, 200),
            ("DELETE", f"{A}/a{n}", None, 204),
        ]
        if not allowed:  # the alias exists, so a denial cannot be a mere 404 of it
            async with world.api.db.write() as session:
                await aliases.add_alias(session, f"a{n}@one.example", ["u@dest.test"])
        for method, path, body, ok in steps:
            status, _, code = await call(world, who, method, path, body)
            if allowed and status != ok:
                problems.append(f"{who} {method} {path}: {status} {code}")
            if not allowed and (status, code) != DENIALS[who]:
                problems.append(f"{who} {method} {path}: {status} {code}, wanted deny")
    assert not problems, "\n".join(problems)
    # another client's zone looks missing even to the leader
    status, _, code = await call(world, "leader", "GET", "/api/v1/zones/rival.example/mail/aliases")
    assert (status, code) == (404, "zone_not_found")


async def test_quota_five_then_fifty_with_the_pack(world: World) -> None:
    for i in range(5):
        status, _, code = await call(world, "leader", "POST", A,
                                     {"local_part": f"a{i}", "targets": ["t@dest.test"]})
        assert status == 201, code
    status, body, code = await call(world, "leader", "POST", A,
                                    {"local_part": "a5", "targets": ["t@dest.test"]})
    assert (status, code) == (422, "quota_exceeded") and body["limit"] == 5  # type: ignore[index]
    async with world.api.db.write() as session:  # billing records the pack option
        await aliases.set_mail_service(session, "one.example", redirect_pack=True)
    for i in range(5, 50):
        status, _, code = await call(world, "leader", "POST", A,
                                     {"local_part": f"a{i}", "targets": ["t@dest.test"]})
        assert status == 201, (i, code)
    status, body, code = await call(world, "leader", "POST", A,
                                    {"local_part": "a50", "targets": ["t@dest.test"]})
    assert (status, code) == (422, "quota_exceeded") and body["limit"] == 50  # type: ignore[index]
    listing = (await call(world, "leader", "GET", A))[1]
    assert listing["mail"]["quota"] == 50 and listing["mail"]["used"] == 50  # type: ignore[index]
    assert len(listing["items"]) == 50  # type: ignore[index]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"local_part": "a%b", "targets": ["t@dest.test"]}, 400, "invalid_address"),
    ({"local_part": "a@b", "targets": ["t@dest.test"]}, 400, "invalid_address"),
    ({"local_part": '"q"', "targets": ["t@dest.test"]}, 400, "invalid_address"),
    ({"local_part": "a!b", "targets": ["t@dest.test"]}, 400, "invalid_address"),
    ({"local_part": "x" * 65, "targets": ["t@dest.test"]}, 400, None),
    ({"local_part": "a", "targets": ["t@[192.0.2.1]"]}, 400, "invalid_address"),
    ({"local_part": "a", "targets": ["t@192.0.2.1"]}, 400, "invalid_address"),
    ({"local_part": "a", "targets": ["no-domain"]}, 400, "invalid_address"),
    ({"local_part": "a", "targets": ["x%y@dest.test"]}, 400, "invalid_address"),
    ({"local_part": "a", "targets": ["@relay:t@dest.test"]}, 400, "invalid_address"),
    ({"local_part": "a", "targets": []}, 400, None),
    ({"local_part": "a", "targets": [f"t{i}@dest.test" for i in range(11)]}, 400, None),
    ({"local_part": "a", "targets": ["a@one.example"]}, 422, "alias_loop"),
    ({"local_part": "a"}, 400, None),
    ({"local_part": "a", "targets": ["t@dest.test"], "extra": 1}, 400, None),
    ({"local_part": 5, "targets": ["t@dest.test"]}, 400, None),
])
async def test_bad_input_is_refused(world: World, body: object, status: int,
                                    code: str | None) -> None:
    got, _, got_code = await call(world, "leader", "POST", A, body)
    assert got == status and (code is None or got_code == code), (got, got_code)
    assert (await call(world, "leader", "GET", A))[1]["items"] == []  # type: ignore[index]


async def test_bad_paths_and_conflicts(world: World) -> None:
    assert (await call(world, "leader", "POST", A,
                       {"local_part": "a", "targets": ["t@dest.test"]}))[0] == 201
    status, _, code = await call(world, "leader", "POST", A,
                                 {"local_part": "A", "targets": ["t@dest.test"]})
    assert (status, code) == (409, "alias_exists")
    assert (await call(world, "leader", "GET", f"{A}/nobody"))[2] == "alias_not_found"
    assert (await call(world, "leader", "DELETE", f"{A}/nobody"))[2] == "alias_not_found"
    assert (await call(world, "leader", "PUT", f"{A}/nobody",
                       {"targets": ["t@dest.test"]}))[2] == "alias_not_found"
    assert (await call(world, "leader", "GET", f"{A}/a%25b"))[2] == "invalid_address"
    assert (await call(world, "leader", "POST", f"{A}/a/targets/x@dest.test/resend"))[2] == \
        "target_not_found"
    assert (await call(world, "leader", "GET",
                       "/api/v1/zones/bad..name/mail/aliases"))[2] == "invalid_zone_name"


async def test_targets_confirmed_through_the_public_link(world: World) -> None:
    db = world.api.db
    status, alias, _ = await call(world, "leader", "POST", A,
                                  {"local_part": "Contact", "targets": ["Me@Dest.test"]})
    assert status == 201
    assert alias["address"] == "contact@one.example"  # type: ignore[index]
    assert alias["targets"][0]["state"] == "pending"  # type: ignore[index]
    assert alias["receives_mail"] is False  # type: ignore[index]
    token = await token_for(db, "me@dest.test")
    link = f"/api/v1/mail/confirm/{token}"
    shown = await world.api.client.call("GET", link)  # a mail scanner's visit changes nothing
    assert shown.status == 200 and shown.body["state"] == "pending"
    assert shown.body["alias"] == "contact@one.example" and shown.body["target"] == "me@dest.test"
    page = await world.api.client.call("GET", link, headers={"Accept": "text/html"})
    assert page.status == 200 and '<form method="post">' in page.text
    assert (await call(world, "leader", "GET", f"{A}/contact"))[1]["targets"][0][  # type: ignore[index]
        "state"] == "pending"
    confirmed = await world.api.client.call("POST", link)
    assert confirmed.status == 200 and confirmed.body["state"] == "verified"
    again = await world.api.client.call("POST", link)
    assert (again.status, again.code) == (404, "confirmation_not_found")
    bad = await world.api.client.call("GET", "/api/v1/mail/confirm/not-a-token",
                                      headers={"Accept": "text/html"})
    assert bad.status == 404 and "not valid" in bad.text
    _, alias, _ = await call(world, "leader", "GET", f"{A}/contact")
    assert alias["receives_mail"] is True  # type: ignore[index]
    assert alias["targets"][0]["verified_at"] is not None  # type: ignore[index]
    # replacing the targets keeps the confirmed one confirmed; the new one waits
    _, alias, _ = await call(world, "leader", "PUT", f"{A}/contact",
                             {"targets": ["me@dest.test", "new@dest.test"]})
    states = {t["address"]: t["state"] for t in alias["targets"]}  # type: ignore[index]
    assert states == {"me@dest.test": "verified", "new@dest.test": "pending"}
    async with db.read() as session:
        found = await aliases.lookup_alias(session, aliases.parse_address("contact@one.example"))
    assert found.targets == ("me@dest.test",)  # the pending one gets no mail
    # resend: only for a pending target, at most every 10 minutes
    await token_for(db, "new@dest.test")  # the first mail went out
    status, _, code = await call(world, "leader", "POST",
                                 f"{A}/contact/targets/new@dest.test/resend")
    assert (status, code) == (429, "resend_too_soon")
    status, _, code = await call(world, "leader", "POST",
                                 f"{A}/contact/targets/me@dest.test/resend")
    assert (status, code) == (409, "target_verified")


async def test_changes_are_audited_as_the_caller(world: World) -> None:
    await call(world, "user_aliases", "POST", A, {"local_part": "a", "targets": ["t@dest.test"]})
    await call(world, "user_aliases", "DELETE", f"{A}/a")
    async with world.api.db.read() as session:
        rows = (await session.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.account_id)
            .where(AuditEntry.object_type == "mail_alias").order_by(AuditEntry.id))).all()
    assert [r.action for r in rows] == ["alias_add", "alias_remove"]
    assert {r.account_id for r in rows} == {world.leader.account_id}
    assert all(r.actor.startswith("token:") or r.actor.startswith("user:") for r in rows)


async def test_sensitive_only_when_the_account_chose_so(world: World) -> None:
    new = {"local_part": "a", "targets": ["t@dest.test"]}
    assert (await call(world, "leader", "POST", A, new))[0] == 201  # no gate by default
    # only a leader or delegate chooses; switching it on needs no second factor
    status, _, code = await call(world, "user_aliases", "PATCH", M, {"aliases_sensitive": True})
    assert (status, code) == (403, "manager_only")
    status, _, code = await call(world, "leader", "PATCH", M, {"aliases_sensitive": True})
    assert (status, code) == (403, "token_scope")  # a token needs perm_manage for settings
    status, body, _ = await call(world, "leader_manage", "PATCH", M,
                                 {"aliases_sensitive": True})
    assert status == 200 and body["aliases_sensitive"] is True  # type: ignore[index]
    status, body, code = await call(world, "user_aliases", "DELETE", f"{A}/a")
    assert (status, code) == (403, "step_up_required")
    assert (await call(world, "leader", "GET", A))[0] == 200  # reading stays open
    status, _, code = await call(world, "leader_manage", "PATCH", M,
                                 {"aliases_sensitive": False})
    assert (status, code) == (403, "step_up_required")  # lowering the guard is guarded
    await allowlist(world.api, world.leader, ["127.0.0.0/8"])
    assert (await call(world, "user_aliases", "DELETE", f"{A}/a"))[0] == 204
    status, body, _ = await call(world, "leader_manage", "PATCH", M,
                                 {"aliases_sensitive": False})
    assert status == 200 and body["aliases_sensitive"] is False  # type: ignore[index]


async def test_mx_status_and_setup(world: World) -> None:
    _, listing, _ = await call(world, "leader", "GET", A)
    mx = listing["mail"]["mx"]  # type: ignore[index]
    assert mx["points_here"] is False and mx["current"] == []
    assert mx["expected"] == list(MX_HOSTS) and "no MX" in mx["detail"]
    # a user who manages aliases but may not edit the zone cannot write MX records
    status, _, code = await call(world, "user_aliases", "POST", f"{M}/setup-mx", {})
    assert (status, code) == (403, "right_missing")
    status, _, code = await call(world, "leader", "POST", f"{M}/setup-mx", {})
    assert (status, code) == (403, "step_up_required")  # a zone edit, gated like any other
    await allowlist(world.api, world.leader, ["127.0.0.0/8"])
    status, body, _ = await call(world, "leader", "POST", f"{M}/setup-mx?dry_run=true", {})
    assert status == 200 and body["dry_run"] is True  # type: ignore[index]
    assert body["mx"]["points_here"] is False  # type: ignore[index]
    status, body, _ = await call(world, "leader", "POST", f"{M}/setup-mx", {})
    assert status == 200 and body["change_id"] > 0  # type: ignore[index]
    assert body["mx"] == {"points_here": True, "current": list(MX_HOSTS),  # type: ignore[index]
                          "expected": list(MX_HOSTS)}
    rrset = await world.api.client.call("GET", "/api/v1/zones/one.example/rrsets/@/MX",
                                        token=world.tokens["leader"])
    assert rrset.body["records"] == ["10 mx1.zonehost.test.", "20 mx2.zonehost.test."]
    # MX elsewhere: refused unless the caller asks to replace it
    put = await world.api.client.call("PUT", "/api/v1/zones/one.example/rrsets/@/MX",
                                      token=world.tokens["leader"],
                                      json_body={"ttl": 300, "records": ["5 mail.other.test."]})
    assert put.status == 200
    _, created, _ = await call(world, "leader", "POST", A,
                               {"local_part": "b", "targets": ["t@dest.test"]})
    assert created["mx"]["points_here"] is False  # type: ignore[index]
    status, body, code = await call(world, "leader", "POST", f"{M}/setup-mx", {})
    assert (status, code) == (409, "mx_elsewhere")
    assert body["current"] == ["mail.other.test"]  # type: ignore[index]
    status, body, _ = await call(world, "leader", "POST", f"{M}/setup-mx", {"replace": True})
    assert status == 200 and body["mx"]["points_here"] is True  # type: ignore[index]


async def test_setup_mx_needs_the_platform_hosts(db: Database) -> None:
    async with running_api(db) as api:  # mail_mx_hosts not configured
        leader = await seed_account(api, "lead")
        await seed_zone(api, leader, "one.example")
        token = await seed_token(api, leader)
        reply = await api.client.call("POST", f"{M}/setup-mx", token=token, json_body={})
        assert (reply.status, reply.code) == (503, "mx_not_configured")
        reply = await api.client.call("GET", M, token=token)
        assert reply.status == 200 and "not configured" in reply.body["mx"]["detail"]

"""The authorisation matrix: every endpoint, driven as every kind of caller,
over a real server and database, checked for allow or deny.

Callers: the leader, a delegate, a user without rights, a user holding
exactly one right on the zone (one caller per right), a user of another
business unit (with rights on that unit's zone only), another client's
leader, an anonymous caller, a token narrowed to writing `www A` of the
zone, and a token used from a subnet it does not allow. The account
allowlists 127.0.0.0/8 so sensitive actions pass the gate here (the gate
has its own tests in test_api_stepup.py); write endpoints that would
change the zone's shape run as dry runs, which authorise exactly like real
writes.

Denials must not leak existence: a case naming an object (zone, user,
change, ...) says how to aim the same request at one that does not exist
(`missing`), and every caller outside `seers` (those entitled to know the
object exists) must get exactly the same status and code for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dns.name
import dns.rdatatype

from storage import zones as store
from storage.db import Database
from storage.dnsdata import API_RULES, parse_rrset
from storage.models import BusinessUnit, Right, UserRight, Zone
from tests.integration.test_api_harness import (
    PASSWORD,
    ApiServer,
    Login,
    Reply,
    allowlist,
    browser_login,
    running_api,
    seed_account,
    seed_token,
    seed_user,
    seed_zone,
)
from tests.unit.billing.support import add_domain

ZONE = "one.example."
Z = "/api/v1/zones/one.example"
RIGHT_USERS = {f"user_{r.value}": r for r in Right}
MANAGERS = {"leader", "delegate"}
NARROW = "narrow_token"
ALL_USERS = {"user_none", *RIGHT_USERS, "user_other_bu"}
CALLERS = [*sorted(MANAGERS), *sorted(ALL_USERS), "other_client", "anonymous", NARROW,
           "bad_subnet_token"]
VIEWERS = MANAGERS | set(RIGHT_USERS) | {NARROW}
EDITORS = MANAGERS | {"user_edit_zone"}
USER_MANAGERS = MANAGERS | {"user_manage_accounts"}  # grant and revoke rights
NS_EDITORS = MANAGERS | {"user_edit_nameservers"}
SIGNED_IN = MANAGERS | ALL_USERS | {"other_client", NARROW}
SECURITY = SIGNED_IN - {NARROW}  # tokens narrowed by policies never change settings
EVERYONE = set(CALLERS)
# The leader's own sessions and tokens: its tokens (the narrow one too) read them.
OWNER = {"leader", NARROW}


# (path, body) of a request -> the same request aimed at an object that does not exist.
Missing = Callable[[str, Any], tuple[str, Any]]


def no_zone(path: str, body: Any) -> tuple[str, Any]:
    return path.replace("/one.example", "/nowhere.example"), body


def no_user(path: str, body: Any) -> tuple[str, Any]:
    return re.sub(r"/users/[0-9]+", "/users/999999999", path), body


def no_id(path: str, body: Any) -> tuple[str, Any]:
    """The numeric id in the path (token, session, unit) of nothing."""
    return re.sub(r"/[0-9]+$", "/999999999", path), body


def wrong_password(path: str, body: Any) -> tuple[str, Any]:
    return path, {**body, "current_password": "not the password at all"}


def body_zone(name: str) -> Missing:
    """The body names the object: {"zone": ...} or {"name": ...} set to `name`."""
    def swap(path: str, body: Any) -> tuple[str, Any]:
        key = "zone" if "zone" in body else "name"
        return path, {**body, key: name}
    return swap


@dataclass
class Case:
    name: str
    method: str
    path: str | Callable[[World, int], str]
    allowed: set[str]
    body: Any = None  # or a function of (world, n)
    prepare: Callable[[World, int], Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    raw: str | None = None
    missing: Sequence[Missing] = ()
    seers: set[str] = field(default_factory=set)  # may tell the object exists
    # The code of the documented 503 an allowed caller gets, the service it needs
    # not being configured here (the card provider); None: allowed means 2xx.
    unavailable: str | None = None

    def __post_init__(self) -> None:
        assert not self.missing or self.seers >= self.allowed, self.name


@dataclass
class World:
    api: ApiServer
    tokens: dict[str, str | None]
    leader: Login
    target_user: int  # a plain user of the account (no unit, no right), object of /users
    change_id: int
    change_serial: int
    rights_manager: int  # user_manage_accounts's user id
    unit_one: int  # one.example's business unit, and the right users'
    unit_two: int
    spare: dict[int, int]  # n -> id of what case n's prepare made (token, session, unit)


async def _direct(w: World, name: str, rdtype: str, records: list[str]) -> None:
    origin = dns.name.from_text(ZONE)
    t = dns.rdatatype.from_text(rdtype)
    owner = dns.name.from_text(name, origin)
    rrset = parse_rrset(origin, owner, t, 300, records, API_RULES)
    async with w.api.db.write() as session:
        await store.apply_changes(session, ZONE, [store.RRsetChange(owner, t, rrset)],
                                  store.OPERATOR)


async def _portfolio_domain(w: World, name: str) -> None:
    """A domain in the leader's portfolio, as a paid registration leaves it."""
    await add_domain(w.api.db, w.leader.account_id, name, date.today() + timedelta(days=365))


async def _spare_token(w: World, n: int) -> None:
    """One more token of the leader, to read, rename or revoke."""
    from sqlalchemy import select

    from storage.models.auth import ApiToken
    from zoneapi.crypto import digest

    secret = await seed_token(w.api, w.leader, name=f"spare{n}")
    async with w.api.db.read() as session:
        w.spare[n] = (await session.execute(select(ApiToken.id).where(
            ApiToken.token_hash == digest(secret)))).scalar_one()


async def _leader_session(w: World, n: int) -> None:
    """A browser session of the leader, to revoke."""
    await browser_login(w.api, w.leader.login)
    listed = await w.api.client.call("GET", "/api/v1/auth/sessions", token=w.tokens["leader"])
    w.spare[n] = max(s["id"] for s in listed.body)


async def _spare_unit(w: World, n: int) -> None:
    async with w.api.db.write() as session:
        unit = BusinessUnit(account_id=w.leader.account_id, name=f"gone{n}", ip_allowlist=[])
        session.add(unit)
        await session.flush()
        w.spare[n] = unit.id


async def _serial(w: World) -> int:
    async with w.api.db.read() as session:
        return (await store.find_zone(session, ZONE)).serial


def cases() -> list[Case]:
    ns = ["ns1.host.example.", "ns2.host.example."]
    zone: dict[str, Any] = {"missing": (no_zone,), "seers": VIEWERS}
    user: dict[str, Any] = {"missing": (no_user,), "seers": USER_MANAGERS}
    return [
        Case("health", "GET", "/api/v1/health", EVERYONE),
        Case("openapi", "GET", "/api/v1/openapi.json", EVERYONE),
        Case("me", "GET", "/api/v1/me", SIGNED_IN),
        Case("account", "GET", "/api/v1/account", SIGNED_IN),
        Case("sessions", "GET", "/api/v1/auth/sessions", SIGNED_IN),
        Case("logout", "POST", "/api/v1/auth/logout", SIGNED_IN),
        Case("session revoke", "DELETE", lambda w, n: f"/api/v1/auth/sessions/{w.spare[n]}",
             {"leader"}, prepare=_leader_session, missing=(no_id,), seers=OWNER),
        Case("tokens", "GET", "/api/v1/tokens", SIGNED_IN),
        Case("token create", "POST", "/api/v1/tokens", SECURITY, body={"name": "m"}),
        Case("token", "GET", lambda w, n: f"/api/v1/tokens/{w.spare[n]}", OWNER,
             prepare=_spare_token, missing=(no_id,), seers=OWNER),
        Case("token update", "PATCH", lambda w, n: f"/api/v1/tokens/{w.spare[n]}", {"leader"},
             body={"name": "renamed"}, prepare=_spare_token, missing=(no_id,), seers=OWNER),
        Case("token revoke", "DELETE", lambda w, n: f"/api/v1/tokens/{w.spare[n]}",
             {"leader"}, prepare=_spare_token, missing=(no_id,), seers=OWNER),
        # The caller's own login: every signed-in caller but a narrowed token, and a wrong
        # current password answers as the right one to whoever may not change it.
        Case("password", "PUT", "/api/v1/me/password", SECURITY,
             body={"current_password": PASSWORD, "new_password": PASSWORD},
             missing=(wrong_password,), seers=SECURITY),
        Case("totp enrol", "POST", "/api/v1/me/totp", SECURITY),
        Case("mobile", "PUT", "/api/v1/me/mobile", SECURITY, body={"mobile": "+33612345678"}),
        Case("units", "GET", "/api/v1/business-units", SIGNED_IN),
        Case("unit update", "PATCH", lambda w, n: f"/api/v1/business-units/{w.unit_two}",
             MANAGERS, body={"name": "two"}, missing=(no_id,), seers=MANAGERS),
        Case("unit delete", "DELETE", lambda w, n: f"/api/v1/business-units/{w.spare[n]}",
             MANAGERS, prepare=_spare_unit, missing=(no_id,), seers=MANAGERS),
        Case("zones", "GET", "/api/v1/zones", SIGNED_IN),
        Case("zone create", "POST", "/api/v1/zones", MANAGERS,
             body=lambda w, n: {"name": f"new{n}.example"},
             prepare=lambda w, n: _portfolio_domain(w, f"new{n}.example"),
             missing=(body_zone("nowhere.example"),), seers=MANAGERS),
        Case("zone", "GET", Z, VIEWERS, **zone),
        Case("rrsets", "GET", Z + "/rrsets", VIEWERS, **zone),
        Case("rrset", "GET", Z + "/rrsets/www/A", VIEWERS, **zone),
        Case("export", "GET", Z + "/file", VIEWERS, **zone),
        Case("versions", "GET", Z + "/versions", VIEWERS, **zone),
        Case("version", "GET", lambda w, n: f"{Z}/versions/{w.change_serial}", VIEWERS, **zone),
        Case("diff", "GET", lambda w, n: f"{Z}/diff?from={w.change_serial}&to="
             f"{w.change_serial}", VIEWERS, **zone),
        Case("change", "GET", lambda w, n: f"/api/v1/changes/{w.change_id}", VIEWERS,
             missing=(lambda p, b: ("/api/v1/changes/999999999", b),), seers=VIEWERS),
        Case("put rrset", "PUT", Z + "/rrsets/www/A", EDITORS | {NARROW},
             body=lambda w, n: {"ttl": 300, "records": [f"192.0.2.{n % 200 + 1}"]}, **zone),
        Case("create rrset", "POST", Z + "/rrsets", EDITORS,
             body=lambda w, n: {"name": f"new{n}", "type": "A", "records": ["192.0.2.1"]},
             **zone),
        Case("delete rrset", "DELETE", lambda w, n: f"{Z}/rrsets/del{n}/A", EDITORS,
             prepare=lambda w, n: _direct(w, f"del{n}", "A", ["192.0.2.1"]), **zone),
        Case("add record", "POST", Z + "/rrsets/rec/A/records", EDITORS,
             body=lambda w, n: {"content": f"198.51.100.{n % 200 + 1}"}, **zone),
        Case("remove record", "DELETE", Z + "/rrsets/rec/A/records", EDITORS,
             prepare=lambda w, n: _direct(w, "rec", "A", ["192.0.2.1", "192.0.2.2"]),
             params={"content": "192.0.2.2"}, **zone),
        Case("patch", "PATCH", Z + "/rrsets", EDITORS,
             body=lambda w, n: [{"name": "patch", "type": "TXT", "ttl": 300,
                                 "records": [f'"v{n}"']}], **zone),
        Case("patch apex NS", "PATCH", Z + "/rrsets?dry_run=true", NS_EDITORS,
             body=[{"name": "@", "type": "NS", "ttl": 3600, "records": ["ns9.host.example."]}],
             **zone),
        Case("put apex NS", "PUT", Z + "/rrsets/@/NS?dry_run=true", NS_EDITORS,
             body={"ttl": 3600, "records": ["ns9.host.example."]}, **zone),
        Case("bulk replace", "PUT", Z + "/rrsets?dry_run=true", EDITORS,
             body=[{"name": "@", "type": "NS", "ttl": 3600, "records": ns},
                   {"name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.250"]}],
             **zone),
        Case("import", "PUT", Z + "/file?dry_run=true", EDITORS,
             raw="@ 3600 IN NS ns1.host.example.\n@ 3600 IN NS ns2.host.example.\n"
                 "www 300 IN A 192.0.2.251\n", **zone),
        Case("restore", "POST", lambda w, n: f"{Z}/versions/{w.change_serial}/restore"
             "?dry_run=true", EDITORS, **zone),
        Case("zone unit", "PUT", Z + "/business-unit", MANAGERS,
             body=lambda w, n: {"business_unit_id": w.unit_one}, missing=(no_zone,),
             seers=MANAGERS),
        Case("users", "GET", "/api/v1/users", USER_MANAGERS | {"other_client"}),
        Case("user create", "POST", "/api/v1/users", MANAGERS | {"other_client"},
             body=lambda w, n: {"login": f"made{n}", "email": "m@example.net",
                                "password": "a fine long password", "role": "user"}),
        Case("user", "GET", lambda w, n: f"/api/v1/users/{w.target_user}", USER_MANAGERS,
             **user),
        # A leader's or delegate's login is none of a rights-managing user's business.
        Case("leader", "GET", lambda w, n: f"/api/v1/users/{w.leader.user_id}", MANAGERS,
             missing=(no_user,), seers=MANAGERS),
        Case("user update", "PATCH", lambda w, n: f"/api/v1/users/{w.target_user}", MANAGERS,
             body={"email": "target@example.net"}, missing=(no_user,), seers=USER_MANAGERS),
        Case("rights", "GET", lambda w, n: f"/api/v1/users/{w.target_user}/rights",
             USER_MANAGERS, **user),
        Case("grant", "POST", lambda w, n: f"/api/v1/users/{w.target_user}/rights",
             USER_MANAGERS, body={"zone": "one.example", "right": "view"},
             missing=(no_user, body_zone("nowhere.example")), seers=USER_MANAGERS),
        # two.example (unit two) is hidden from the unit-one user managing one.example.
        Case("grant elsewhere", "POST", lambda w, n: f"/api/v1/users/{w.target_user}/rights",
             MANAGERS, body={"zone": "two.example", "right": "view"},
             missing=(body_zone("nowhere.example"),), seers=MANAGERS),
        Case("grant manage_accounts", "POST",
             lambda w, n: f"/api/v1/users/{w.target_user}/rights", MANAGERS,
             body={"zone": "one.example", "right": "manage_accounts"}),
        Case("grant self", "POST",
             lambda w, n: f"/api/v1/users/{w.rights_manager}/rights", MANAGERS,
             body={"zone": "one.example", "right": "edit_zone"}),
        Case("revoke", "DELETE",
             lambda w, n: f"/api/v1/users/{w.target_user}/rights/one.example/renew",
             USER_MANAGERS, missing=(no_user, no_zone), seers=USER_MANAGERS),
        Case("account update", "PATCH", "/api/v1/account", MANAGERS | {"other_client"},
             body={"postal_address": "3 rue Z"}),
        Case("allowlist", "PUT", "/api/v1/account/allowlist", MANAGERS | {"other_client"},
             body={"addresses": ["127.0.0.0/8"]}),
        Case("unit create", "POST", "/api/v1/business-units", MANAGERS | {"other_client"},
             body=lambda w, n: {"name": f"unit{n}"}),
        Case("audit", "GET", "/api/v1/audit", MANAGERS | {"other_client"}),
    ]


async def build(api: ApiServer) -> World:
    leader = await seed_account(api, "lead")
    await allowlist(api, leader, ["127.0.0.0/8"])
    async with api.db.write() as session:
        unit1 = BusinessUnit(account_id=leader.account_id, name="one", ip_allowlist=[])
        unit2 = BusinessUnit(account_id=leader.account_id, name="two", ip_allowlist=[])
        session.add_all([unit1, unit2])
        await session.flush()
        units = (unit1.id, unit2.id)
    await seed_zone(api, leader, "one.example", units[0])
    await seed_zone(api, leader, "two.example", units[1])
    other = await seed_account(api, "rival")
    await allowlist(api, other, ["127.0.0.0/8"])
    await seed_zone(api, other, "rival.example")
    people: dict[str, Login] = {"leader": leader, "other_client": other,
                                "delegate": await seed_user(api, leader, "deleg", "delegate"),
                                "user_none": await seed_user(api, leader, "nobody", "user")}
    for caller in RIGHT_USERS:
        people[caller] = await seed_user(api, leader, caller.replace("_", "-"), "user",
                                         units[0])
    people["user_other_bu"] = await seed_user(api, leader, "otherbu", "user", units[1])
    target = await seed_user(api, leader, "target", "user")
    async with api.db.write() as session:
        zone_ids = {z.name: z.id for z in (await session.execute(
            Zone.__table__.select())).all()}
        for caller, right in RIGHT_USERS.items():
            session.add(UserRight(user_id=people[caller].user_id,
                                  zone_id=zone_ids[ZONE], right=right))
        for right in (Right.VIEW, Right.EDIT_ZONE):
            session.add(UserRight(user_id=people["user_other_bu"].user_id,
                                  zone_id=zone_ids["two.example."], right=right))
    tokens: dict[str, str | None] = {
        name: await seed_token(api, login, perm_manage=True) for name, login in people.items()}
    tokens["anonymous"] = None
    tokens[NARROW] = await seed_token(api, leader, policies=[
        {"domain": ZONE, "subname": None, "type": None, "write": False},
        {"domain": ZONE, "subname": "www", "type": "A", "write": True}])
    tokens["bad_subnet_token"] = await seed_token(api, leader, perm_manage=True,
                                                  allowed_subnets=["192.0.2.0/24"])
    change = await api.client.call("PUT", Z + "/rrsets/www/A", token=tokens["leader"],
                                   json_body={"ttl": 300, "records": ["192.0.2.3"]})
    assert change.status == 200 and change.body["change_id"], change.text
    return World(api, tokens, leader, target.user_id, change.body["change_id"],
                 change.body["serial"], people["user_manage_accounts"].user_id, units[0],
                 units[1], {})


async def send(api: ApiServer, method: str, path: str, token: str | None, body: Any,
               params: dict[str, str], raw: str | None = None) -> Reply:
    """One request; PDFs and CSV come back as text decoded leniently."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data: str | None = raw
    if raw is not None:
        headers["Content-Type"] = "text/dns"
    elif body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    c = api.client
    async with c.http.request(method, c.base + path, headers=headers, data=data,
                              params=params or None) as response:
        text = (await response.read()).decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(response.status, parsed, response.headers.copy(), text)


@dataclass
class Outcome:
    checked: int  # (case, caller) pairs
    compared: int  # denials compared with the same request on a missing object
    problems: dict[tuple[str, str], str]


async def run_matrix(world: World, table: Sequence[Case]) -> Outcome:
    """Drive every case as every caller; collect what departs from the model."""
    api = world.api
    problems: dict[tuple[str, str], str] = {}
    checked = compared = n = 0
    for case in table:
        for caller in CALLERS:
            n += 1
            if case.prepare is not None:
                await case.prepare(world, n)
            path = case.path(world, n) if callable(case.path) else case.path
            body = case.body(world, n) if callable(case.body) else case.body
            token = world.tokens[caller]
            reply = await send(api, case.method, path, token, body, case.params, case.raw)
            allowed = caller in case.allowed
            ok = 200 <= reply.status < 300
            if case.unavailable is not None:
                ok = (reply.status, reply.code) == (503, case.unavailable)
            # A denial is an answer of the security model, never a routing miss.
            denied = reply.status in (401, 403, 404) and reply.code not in (None, "not_found")
            if caller == "anonymous" and not allowed:
                denied = reply.status == 401
            if caller == "bad_subnet_token" and not allowed:
                denied = reply.code == "token_address_refused"
            if (allowed and not ok) or (not allowed and not denied):
                problems[(case.name, caller)] = (
                    f"expected {'allow' if allowed else 'deny'}, got {reply.status} "
                    f"{reply.text[:120]}")
            checked += 1
            if caller in case.seers:
                continue
            for aim in case.missing:
                other_path, other_body = aim(path, body)
                assert (other_path, other_body) != (path, body), case.name
                other = await send(api, case.method, other_path, token, other_body,
                                   case.params, case.raw)
                compared += 1
                if (other.status, other.code) != (reply.status, reply.code):
                    problems[(case.name, caller)] = (
                        f"the denial tells what it hides: {reply.status} {reply.code} here, "
                        f"{other.status} {other.code} for {other_path} {other_body or ''}")
    return Outcome(checked, compared, problems)


def report(problems: dict[tuple[str, str], str]) -> str:
    return "\n".join(f"{case} as {who}: {why}" for (case, who), why in problems.items())


async def test_authorisation_matrix(db: Database) -> None:
    async with running_api(db) as api:
        world = await build(api)
        outcome = await run_matrix(world, cases())
        assert outcome.checked == len(cases()) * len(CALLERS) > 500
        assert outcome.compared > 200
        assert not outcome.problems, report(outcome.problems)

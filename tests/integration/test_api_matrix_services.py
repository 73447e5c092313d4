"""The authorisation matrix over billing's routes and the mail alias routes.

The same world and callers as test_api_matrix.py (one.example in the
leader's account and business unit one, a user per right, a user of
unit two, another client, anonymous, a token narrowed to writing `www A`,
a token used from a subnet it does not allow), plus what billing needs:
one.example in the leader's portfolio and due for renewal, prices, a
pending order on it, and three paid orders with their invoices: an option
on one.example alone, options on one.example and paid.example together,
and a renewal of paid.example (a domain not hosted here). The account
allowlists 127.0.0.0/8, so sensitive actions pass the gate in the matrix;
the last test shows the gate for a leader whose account has no allowlist.

Expected callers come from the right each route needs (billing_common.py,
mail_aliases.py); a denial is an answer of the security model (401, 403,
or 404 with a security code), never a routing miss, and tells a caller
outside `seers` nothing about whether the object exists (run_matrix).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billing import orders, payments
from billing.config import BillingConfig
from billing.gateway import WorkQueueGateway
from storage import aliases
from storage.db import Database
from storage.models import Right
from storage.models.billing import OrderStatus, PaymentMethod
from storage.zones import OPERATOR
from tests.integration.test_api_harness import (
    ApiServer,
    Reply,
    api_config,
    running_api,
    seed_account,
    seed_token,
    seed_zone,
)
from tests.integration.test_api_matrix import (
    CALLERS,
    EDITORS,
    EVERYONE,
    MANAGERS,
    NARROW,
    NS_EDITORS,
    RIGHT_USERS,
    SIGNED_IN,
    VIEWERS,
    Case,
    World,
    build,
    no_zone,
    report,
    run_matrix,
    send,
)
from tests.integration.test_api_matrix import cases as zone_cases
from tests.integration.test_api_matrix_auth import auth_cases
from tests.unit.billing.support import add_domain, set_prices

B = "/api/v1/billing"
Z = "/api/v1/zones/one.example"
MAIL = Z + "/mail"
MX_HOSTS = ("mx1.host.example", "mx2.host.example")


def holders(right: Right) -> set[str]:
    """Leaders and delegates hold every right; a plain user the one granted."""
    return MANAGERS | {f"user_{right.value}"}


ALIASERS = holders(Right.MANAGE_ALIASES)
# Account-wide billing (invoices, payments, registrations): the managers of each account,
# so another client's leader is served its own (empty) records, as for /users and /audit.
ACCOUNT_MANAGERS = MANAGERS | {"other_client"}
INVOICE_READERS = holders(Right.VIEW_INVOICES)


def no_order(path: str, body: Any) -> tuple[str, Any]:
    return re.sub(r"/orders/[^/]+", "/orders/ZH99999999", path), body


def no_invoice(path: str, body: Any) -> tuple[str, Any]:
    return re.sub(r"/invoices/[0-9]+", "/invoices/99999999", path), body


def no_alias(path: str, body: Any) -> tuple[str, Any]:
    return path.replace("/aliases/info", "/aliases/nothere"), body


def no_renewal(path: str, body: Any) -> tuple[str, Any]:
    return path, {"selections": [{**body["selections"][0], "id": 999_999_999}]}


def no_domain_item(path: str, body: Any) -> tuple[str, Any]:
    return path, {**body, "items": [{**body["items"][0], "domain": "nowhere.example"}]}


@dataclass
class ServicesWorld(World):
    order: str  # pending renewal of one.example, ordered by the leader
    invoices: dict[str, int]  # "one", "mixed", "unhosted" -> invoice number
    renewal_id: int  # one.example's entry in the renewal schedule
    pending: str = ""  # the latest pending order on one.example (one at a time)
    confirmations: dict[int, str] = field(default_factory=dict)  # n -> link token


def sw(w: World) -> ServicesWorld:
    assert isinstance(w, ServicesWorld)
    return w


async def _leader(w: World, method: str, path: str, body: Any = None) -> Reply:
    reply = await w.api.client.call(method, path, token=w.tokens["leader"], json_body=body)
    assert 200 <= reply.status < 300, reply.text
    return reply


def _pack(domain: str) -> dict[str, str]:
    return {"kind": "option", "domain": domain, "product": "mail_redirect_pack"}


async def _paid_order(w: World, items: list[dict[str, str]]) -> str:
    """An order of the leader, paid by transfer (its invoice issued): its number."""
    today = datetime.now(UTC).date()
    number = str((await _leader(w, "POST", f"{B}/orders", {"items": items})).body["number"])
    await payments.record_payment(
        w.api.db, BillingConfig(), WorkQueueGateway(), order_number=number,
        method=PaymentMethod.TRANSFER, amount_cents=None, reference=f"VIR {number}",
        received_on=today, actor=OPERATOR, today=today)
    return number


async def build_services(api: ApiServer) -> ServicesWorld:
    base = await build(api)
    db, today = api.db, datetime.now(UTC).date()
    await set_prices(db, renew=1000, restore=2500, register=900, mail_redirect_pack=500)
    await add_domain(db, base.leader.account_id, "one.example", today + timedelta(days=20))
    await add_domain(db, base.leader.account_id, "paid.example", today + timedelta(days=30))
    paid = {"one": await _paid_order(base, [_pack("one.example")]),
            "mixed": await _paid_order(base, [_pack("one.example"), _pack("paid.example")]),
            "unhosted": await _paid_order(base, [{"kind": "renew", "domain": "paid.example"}])}
    order = await _leader(base, "POST", f"{B}/orders",
                          {"items": [{"kind": "renew", "domain": "one.example"}]})
    issued = {i["order"]: i["number"]
              for i in (await _leader(base, "GET", f"{B}/invoices")).body["invoices"]}
    schedule = (await _leader(base, "GET", f"{B}/renewals")).body["entries"]
    (entry,) = [e for e in schedule if e["domain"] == "one.example"]
    async with db.write() as session:
        # The pack lifts the quota to 50: every allowed create keeps its alias.
        await aliases.set_mail_service(session, "one.example", redirect_pack=True)
        await aliases.add_alias(session, "info@one.example", ["info@elsewhere.example"])
        await aliases.add_alias(session, "conf@one.example", ["conf@elsewhere.example"])
    return ServicesWorld(**vars(base), order=order.body["number"],
                         invoices={k: issued[n] for k, n in paid.items()},
                         renewal_id=entry["id"], pending=order.body["number"])


async def _fresh_order(w: World, n: int) -> None:
    """A new pending renewal of one.example (the previous one cancelled if still open)."""
    world, today = sw(w), datetime.now(UTC).date()
    async with w.api.db.write() as session:
        previous = await orders.find_order(session, world.pending, for_update=True)
        if previous.status is OrderStatus.PENDING_PAYMENT:
            await orders.cancel_order(session, previous, OPERATOR)
        made = await orders.create_order(
            session, BillingConfig(), w.leader.account_id,
            [orders.OrderItem(orders.ItemKind.RENEW, "one.example")], OPERATOR, today)
        world.pending = made.number


async def _alias(w: World, address: str, targets: list[str]) -> None:
    async with w.api.db.write() as session:
        await aliases.add_alias(session, address, targets)


async def _pending_link(w: World, n: int) -> None:
    """A fresh pending target on conf@ and its confirmation token, as mailed."""
    target = f"t{n}@elsewhere.example"
    async with w.api.db.write() as session:
        await aliases.replace_targets(session, "conf@one.example", [target])
        claimed = await aliases.claim_confirmations(session)
    (request,) = [r for r in claimed if r.target == target]
    sw(w).confirmations[n] = request.token
def billing_cases() -> list[Case]:
    renew = [{"kind": "renew", "domain": "one.example"}]
    domain: dict[str, Any] = {"missing": (no_zone,), "seers": VIEWERS}
    order: dict[str, Any] = {"missing": (no_order,), "seers": VIEWERS}

    def invoice(key: str) -> Callable[[World, int], str]:
        return lambda w, n: f"{B}/invoices/{sw(w).invoices[key]}/pdf"

    return [
        Case("portfolio", "GET", f"{B}/domains", SIGNED_IN),
        Case("portfolio csv", "GET", f"{B}/domains", SIGNED_IN, params={"format": "csv"}),
        Case("domain", "GET", f"{B}/domains/one.example", VIEWERS, **domain),
        Case("stats", "GET", f"{B}/domains/one.example/stats", VIEWERS, **domain),
        Case("stats csv", "GET", f"{B}/domains/one.example/stats", VIEWERS,
             params={"format": "csv"}, **domain),
        Case("nameservers", "PUT", f"{B}/domains/one.example/nameservers",
             NS_EDITORS, body={"nameservers": []}, **domain),
        Case("lock", "PUT", f"{B}/domains/one.example/lock", holders(Right.TRANSFER),
             body={"locked": True}, **domain),
        Case("transfer code", "POST", f"{B}/domains/one.example/transfer-code",
             holders(Right.TRANSFER), **domain),
        Case("orders", "GET", f"{B}/orders", SIGNED_IN),
        Case("order price", "POST", f"{B}/orders", holders(Right.RENEW),
             body={"items": renew, "dry_run": True}, missing=(no_domain_item,), seers=VIEWERS),
        Case("order register price", "POST", f"{B}/orders", ACCOUNT_MANAGERS,
             body={"items": [{"kind": "register", "domain": "fresh.example"}],
                   "dry_run": True}),
        Case("order", "GET", lambda w, n: f"{B}/orders/{sw(w).order}", VIEWERS, **order),
        Case("proforma", "GET", lambda w, n: f"{B}/orders/{sw(w).order}/proforma.pdf",
             VIEWERS, **order),
        Case("payments", "GET", f"{B}/payments", ACCOUNT_MANAGERS | INVOICE_READERS),
        Case("invoices", "GET", f"{B}/invoices", ACCOUNT_MANAGERS | INVOICE_READERS),
        # Another client's leader asks for an invoice number of this account: 404.
        Case("invoice pdf", "GET", invoice("one"), INVOICE_READERS,
             missing=(no_invoice,), seers=INVOICE_READERS),
        # Spanning a domain the user holds no right on: the managers' only.
        Case("mixed invoice pdf", "GET", invoice("mixed"), MANAGERS,
             missing=(no_invoice,), seers=MANAGERS),
        Case("unhosted invoice pdf", "GET", invoice("unhosted"), MANAGERS,
             missing=(no_invoice,), seers=MANAGERS),
        Case("renewals", "GET", f"{B}/renewals", SIGNED_IN),
        Case("renewal cancel", "POST", f"{B}/renewals", holders(Right.CANCEL),
             body=lambda w, n: {"selections": [
                 {"kind": "domain", "id": sw(w).renewal_id, "action": "cancel"}]},
             missing=(no_renewal,), seers=VIEWERS),
        # No card provider here: who may pay gets the documented 503, after the rights.
        Case("checkout", "POST", lambda w, n: f"{B}/orders/{sw(w).order}/checkout",
             holders(Right.RENEW), body={}, unavailable="card_unavailable", **order),
        Case("webhook", "POST", f"{B}/payments/webhook", EVERYONE, body={},
             unavailable="card_unavailable"),
        # After the order's own cases: each call cancels a fresh order.
        Case("order cancel", "POST", lambda w, n: f"{B}/orders/{sw(w).pending}/cancel",
             holders(Right.RENEW), prepare=_fresh_order, **order),
        Case("quote", "POST", f"{B}/quote", EVERYONE,
             body={"items": [{"kind": "register", "domain": "visitor.example"}],
                   "country": "FR"}),
    ]


def mail_cases() -> list[Case]:
    zone: dict[str, Any] = {"missing": (no_zone,), "seers": VIEWERS}
    alias: dict[str, Any] = {"missing": (no_zone, no_alias), "seers": VIEWERS}
    return [
        Case("aliases", "GET", f"{MAIL}/aliases", ALIASERS, **zone),
        Case("alias create", "POST", f"{MAIL}/aliases", ALIASERS,
             body=lambda w, n: {"local_part": f"new{n}",
                                "targets": ["someone@elsewhere.example"]}, **zone),
        Case("alias", "GET", f"{MAIL}/aliases/info", ALIASERS, **alias),
        Case("alias replace", "PUT", f"{MAIL}/aliases/info", ALIASERS,
             body={"targets": ["info@elsewhere.example"]}, **alias),
        Case("alias delete", "DELETE", f"{MAIL}/aliases/gone", ALIASERS,
             prepare=lambda w, n: _alias(w, "gone@one.example", ["g@elsewhere.example"]),
             **zone),
        # The target was never mailed, so a resend is never "too soon".
        Case("alias resend", "POST",
             f"{MAIL}/aliases/info/targets/info@elsewhere.example/resend", ALIASERS, **alias),
        Case("mail settings", "GET", MAIL, ALIASERS, **zone),
        Case("mail settings update", "PATCH", MAIL, MANAGERS,
             body={"aliases_sensitive": False}, **zone),
        Case("setup mx", "POST", f"{MAIL}/setup-mx?dry_run=true", EDITORS, body={}, **zone),
        # Last: claiming confirmation tokens marks every pending target as mailed.
        Case("confirm page", "GET", lambda w, n: f"/api/v1/mail/confirm/"
             f"{sw(w).confirmations[n]}", EVERYONE, prepare=_pending_link),
        Case("confirm", "POST", lambda w, n: f"/api/v1/mail/confirm/"
             f"{sw(w).confirmations[n]}", EVERYONE, prepare=_pending_link),
    ]


def cases() -> list[Case]:
    return billing_cases() + mail_cases()


async def test_services_authorisation_matrix(db: Database) -> None:
    async with running_api(db, api_config(mail_mx_hosts=MX_HOSTS)) as api:
        world = await build_services(api)
        outcome = await run_matrix(world, cases())
        assert outcome.checked == len(cases()) * len(CALLERS) > 400
        assert outcome.compared > 150
        assert not outcome.problems, report(outcome.problems)


async def test_rights_cover_every_right_user() -> None:
    """Every right has a case its single-right user may do and a user without it may
    not (for view, implied by any right: the user without rights), so the two
    matrices drive each right both ways."""
    table = zone_cases() + cases()
    for right in Right:
        holder = f"user_{right.value}"
        assert any(holder in c.allowed and "user_none" not in c.allowed
                   and (right is Right.VIEW or not set(RIGHT_USERS) <= c.allowed)
                   for c in table), right
    assert NARROW in set().union(*(c.allowed for c in table))


class _Ids(dict[int, Any]):
    """Any case's prepared object: an id (or link token) of the right shape."""

    def __missing__(self, key: int) -> int:
        return 9


async def test_every_endpoint_is_in_a_matrix(db: Database) -> None:
    """Every endpoint the API serves is driven by a row of one of the three matrices
    (zones and accounts, billing and mail, the login and second-factor endpoints),
    and every row drives an endpoint the API serves."""
    from aiohttp.test_utils import make_mocked_request

    from tests.integration.test_api_harness import Login
    from zoneapi.endpoints import API_PREFIX, ENDPOINTS

    def shape(path: str) -> str:  # "/x/{id:[0-9]{1,18}}" -> "/x/{id}"
        return re.sub(r"\{([^}:]+)(?::(?:[^{}]|\{[^}]*\})*)?\}", r"{\1}", path)

    async with running_api(db) as api:
        app = api.app
        served = {(e.method, shape(API_PREFIX + e.path)) for e in app[ENDPOINTS]}
        # Paths rendered on a stand-in world: only their shape matters here.
        world = ServicesWorld(
            api=api, tokens={}, leader=Login(1, "x", 1), target_user=2, change_id=3,
            change_serial=4, rights_manager=5, unit_one=6, unit_two=7, spare=_Ids(),
            order="ZH00000001", invoices={"one": 1, "mixed": 2, "unhosted": 3}, renewal_id=8,
            pending="ZH00000002", confirmations=_Ids())
        rows = [(c.name, c.method, c.path(world, 1) if callable(c.path) else c.path)
                for c in zone_cases() + cases()]
        rows += [(c.name, c.method, c.path) for c in auth_cases()]
        driven = set()
        for name, method, path in rows:
            match = await app.router.resolve(make_mocked_request(
                method, path.split("?")[0], app=app))
            resource = match.route.resource
            assert resource is not None and match.http_exception is None, name
            info = resource.get_info()
            driven.add((method, shape(info.get("path") or info["formatter"])))
        assert driven == served, sorted(driven ^ served)
        assert len(served) >= 89


async def test_another_clients_order_is_not_named(db: Database) -> None:
    """Two clients may race to register a name: the loser is refused, and is not
    told the winner's order number (its own, it is)."""
    async with running_api(db, api_config(mail_mx_hosts=MX_HOSTS)) as api:
        world = await build_services(api)
        register = {"items": [{"kind": "register", "domain": "race.example"}]}
        mine = await _leader(world, "POST", f"{B}/orders", register)
        theirs = await send(api, "POST", f"{B}/orders", world.tokens["other_client"],
                            register, {})
        assert theirs.status == 400 and theirs.body["reasons"] == [
            "race.example is already being ordered"], theirs.text
        assert mine.body["number"] not in theirs.text
        again = await send(api, "POST", f"{B}/orders", world.tokens["delegate"], register, {})
        assert again.status == 400 and mine.body["number"] in again.text


async def test_invoices_of_a_users_domains_only(db: Database) -> None:
    """view_invoices on one.example shows the invoices and payments of orders about
    one.example alone: not those spanning paid.example too, nor paid.example's own.
    Orders follow the same rule for every viewer."""
    async with running_api(db, api_config(mail_mx_hosts=MX_HOSTS)) as api:
        world = await build_services(api)

        async def get(path: str, caller: str) -> Any:
            reply = await send(api, "GET", f"{B}/{path}", world.tokens[caller], None, {})
            assert reply.status == 200, reply.text
            return reply.body

        listed = (await get("invoices", "user_view_invoices"))["invoices"]
        assert [i["number"] for i in listed] == [world.invoices["one"]]
        everything = (await get("invoices", "leader"))["invoices"]
        assert {i["number"] for i in everything} == set(world.invoices.values())
        paid = [p["order"] for p in (await get("payments", "user_view_invoices"))["payments"]]
        assert paid == [listed[0]["order"]]
        seen = {o["number"] for o in (await get("orders", "user_view"))["orders"]}
        assert seen == {listed[0]["order"], world.order}
        for caller in ("user_none", "user_view", "user_other_bu"):
            refused = await send(api, "GET", f"{B}/invoices", world.tokens[caller], None, {})
            assert (refused.status, refused.code) == (403, "right_missing"), caller


async def test_sensitive_billing_and_mail_actions_need_step_up(db: Database) -> None:
    """A leader of an account without an allowlist, with a plain token (no subnets),
    is asked to step up for transfer unlock, cancellation and sensitive alias changes;
    reads still pass, so the 403 is the gate and not a missing right."""
    async with running_api(db, api_config(mail_mx_hosts=MX_HOSTS)) as api:
        solo = await seed_account(api, "solo")
        await seed_zone(api, solo, "solo.example")
        today = datetime.now(UTC).date()
        await add_domain(db, solo.account_id, "solo.example", today + timedelta(days=20))
        async with db.write() as session:
            await aliases.set_mail_service(session, "solo.example", aliases_sensitive=True)
        token = await seed_token(api, solo, perm_manage=True)
        c = api.client
        schedule = await c.call("GET", f"{B}/renewals", token=token)
        (entry,) = schedule.body["entries"]
        gated = {
            "transfer:solo.example.": await c.call(
                "PUT", f"{B}/domains/solo.example/lock", token=token,
                json_body={"locked": False}),
            "cancel:solo.example.": await c.call("POST", f"{B}/renewals", token=token, json_body={
                "selections": [{"kind": "domain", "id": entry["id"], "action": "cancel"}]}),
            "edit_zone:solo.example.": await c.call(
                "POST", "/api/v1/zones/solo.example/mail/aliases", token=token,
                json_body={"local_part": "info", "targets": ["a@elsewhere.example"]}),
        }
        for operation, reply in gated.items():
            assert (reply.status, reply.code) == (403, "step_up_required"), reply.text
            assert reply.body["operation"] == operation
        turn_off = await c.call("PATCH", "/api/v1/zones/solo.example/mail", token=token,
                                json_body={"aliases_sensitive": False})
        assert (turn_off.status, turn_off.code) == (403, "step_up_required"), turn_off.text
        domain = await c.call("GET", f"{B}/domains/solo.example", token=token)
        assert domain.status == 200 and domain.body["locked"] is True
        assert domain.body["cancel_at_term"] is False
        listed = await c.call("GET", "/api/v1/zones/solo.example/mail/aliases", token=token)
        assert listed.status == 200 and listed.body["items"] == []
        assert listed.body["mail"]["aliases_sensitive"] is True

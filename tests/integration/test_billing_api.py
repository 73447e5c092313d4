"""Billing's routes in the zone API: portfolio, orders, quotes, renewal
schedule, invoices, transfer actions and the card webhook, with the zone
API's rights and step-up matrix."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from billing import payments
from billing.config import BillingConfig, ProviderConfig
from billing.errors import AlreadyPaid
from billing.gateway import WorkQueueGateway
from billing.provider import sign
from storage.db import Database
from storage.models import AuditEntry, Right, UserRight, Zone
from storage.models.billing import Domain, PaymentMethod, WorkItem
from storage.zones import OPERATOR
from tests.integration.test_api_harness import (
    ApiClient,
    ApiServer,
    Login,
    allowlist,
    api_config,
    seed_account,
    seed_token,
    seed_user,
    seed_zone,
)
from tests.unit.billing.provider_standin import StandInProvider
from tests.unit.billing.support import add_domain, set_prices
from zoneapi.app import create_app
from zoneapi.clock import OffsetClock
from zoneapi.routes.billing_common import install_billing

B = "/api/v1/billing"
SECRET = "whsec-api"


@dataclass
class World:
    api: ApiServer
    leader: Login
    token: str  # the leader's
    user_token: str  # a plain user with rights on one.fr only
    other_token: str  # another account's leader
    standin: StandInProvider


def _expiry(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    standin = StandInProvider(secret=SECRET, api_key="sk")
    base = await standin.start()
    config = replace(BillingConfig(), provider=ProviderConfig(base, "sk", SECRET, 300))
    app = create_app(api_config(), db, clock=OffsetClock())
    install_billing(app, config)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    api = ApiServer(app, server, ApiClient(str(server.make_url("")).rstrip("/"), http),
                    OffsetClock(), db)
    standin.webhook_url = f"{api.client.base}{B}/payments/webhook"
    leader = await seed_account(api, "acme")
    other = await seed_account(api, "rival")
    bob = await seed_user(api, leader, "bob", "user")
    await set_prices(db, renew=1000, restore=2500, mail_redirect_pack=500, register=900)
    today = datetime.now(UTC).date()
    for name, days in (("one.fr", 20), ("two.fr", 40), ("far.fr", 300)):
        await seed_zone(api, leader, name)
        await add_domain(db, leader.account_id, name, today + timedelta(days=days))
    await add_domain(db, leader.account_id, "nozone.com", today + timedelta(days=10))
    await seed_zone(api, other, "rival.fr")
    await add_domain(db, other.account_id, "rival.fr", today + timedelta(days=20),
                     owner_email="o@rival.example")
    async with db.write() as session:
        zone_id = (await session.execute(select(Zone.id).where(Zone.name == "one.fr."))
                   ).scalar_one()
        session.add(UserRight(user_id=bob.user_id, zone_id=zone_id, right=Right.VIEW))
    yield World(api, leader, await seed_token(api, leader), await seed_token(api, bob),
                await seed_token(api, other), standin)
    await http.close()
    await server.close()
    await standin.stop()


async def get_bytes(c: ApiClient, path: str, token: str) -> tuple[int, str, bytes]:
    """A binary download (the harness client decodes text)."""
    async with c.http.get(c.base + path, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


async def grant(db: Database, login: Login | None, zone: str, right: Right, user_id: int) -> None:
    async with db.write() as session:
        zone_id = (await session.execute(select(Zone.id).where(Zone.name == zone))).scalar_one()
        session.add(UserRight(user_id=user_id, zone_id=zone_id, right=right))


async def test_portfolio_filters_csv_and_visibility(world: World) -> None:
    c = world.api.client
    reply = await c.call("GET", f"{B}/domains", token=world.token)
    assert reply.status == 200, reply.text
    assert [d["name"] for d in reply.body["domains"]] == ["far.fr", "nozone.com", "one.fr",
                                                           "two.fr"]
    one = reply.body["domains"][2]
    assert (one["plan"], one["status"], one["hosted"], one["renew_cents"]) == (
        "Basic Plus", "active", True, 1000)
    assert one["owner"]["email"] == "owner@acme.example" and one["locked"] is True
    nozone = reply.body["domains"][1]
    assert (nozone["hosted"], nozone["profile"]) == (False, "icann-errp")
    reply = await c.call("GET", f"{B}/domains", token=world.token,
                         params={"expires_before": _expiry(30), "extension": "fr"})
    assert [d["name"] for d in reply.body["domains"]] == ["one.fr"]
    reply = await c.call("GET", f"{B}/domains", token=world.token, params={"q": "two"})
    assert [d["name"] for d in reply.body["domains"]] == ["two.fr"]
    reply = await c.call("GET", f"{B}/domains", token=world.token, params={"format": "csv"})
    assert reply.headers["Content-Type"].startswith("text/csv")
    lines = reply.text.splitlines()
    assert lines[0].startswith("domain,plan,status,expiry date") and len(lines) == 5
    # A plain user sees the domains it holds a right on; another account sees none of them.
    reply = await c.call("GET", f"{B}/domains", token=world.user_token)
    assert [d["name"] for d in reply.body["domains"]] == ["one.fr"]
    assert (await c.call("GET", f"{B}/domains/two.fr", token=world.user_token)).status == 404
    assert (await c.call("GET", f"{B}/domains/one.fr", token=world.other_token)).status == 404
    assert (await c.call("GET", f"{B}/domains", params={"status": "x"},
                         token=world.token)).status == 400
    assert (await c.call("GET", f"{B}/domains")).status == 401


async def test_orders_rights_and_dry_run(world: World) -> None:
    c = world.api.client
    renew = {"items": [{"kind": "renew", "domain": "one.fr"}]}
    quote = await c.call("POST", f"{B}/orders", token=world.token,
                         json_body={**renew, "dry_run": True})
    assert quote.status == 200 and quote.body["total_cents"] == 1200
    assert (await c.call("GET", f"{B}/orders", token=world.token)).body["orders"] == []
    denied = await c.call("POST", f"{B}/orders", token=world.user_token, json_body=renew)
    assert (denied.status, denied.code) == (403, "right_missing")
    await grant(world.api.db, None, "one.fr.", Right.RENEW,
                await _user_id(world.api.db, "bob"))
    made = await c.call("POST", f"{B}/orders", token=world.user_token, json_body=renew)
    assert made.status == 201, made.text
    number = made.body["number"]
    assert made.body["status"] == "pending_payment" and made.body["total_cents"] == 1200
    again = await c.call("POST", f"{B}/orders", token=world.token, json_body=renew)
    assert again.status == 400 and "awaiting payment" in again.text
    bad = await c.call("POST", f"{B}/orders", token=world.token, json_body={"items": [
        {"kind": "renew", "domain": "far.fr"}, {"kind": "renew", "domain": "far.fr"},
        {"kind": "option", "domain": "far.fr", "product": "nope"}]})
    assert bad.status == 400 and len(bad.body["reasons"]) == 2, bad.text
    schema = await c.call("POST", f"{B}/orders", token=world.token, json_body={
        "items": [{"kind": "renew", "domain": "far.fr", "years": 11}]})
    assert schema.status == 400
    assert (await c.call("POST", f"{B}/orders", token=world.user_token, json_body={
        "items": [{"kind": "register", "domain": "new.fr"}]})).code == "manager_required"
    assert (await c.call("POST", f"{B}/orders", token=world.token, json_body={
        "items": [{"kind": "owner_change", "domain": "one.fr"}]})).code == "operator_only"
    assert (await c.call("POST", f"{B}/orders", token=world.other_token,
                         json_body=renew)).status == 404
    listed = await c.call("GET", f"{B}/orders", token=world.token,
                          params={"status": "pending_payment"})
    assert [o["number"] for o in listed.body["orders"]] == [number]
    status, media, data = await get_bytes(c, f"{B}/orders/{number}/proforma.pdf", world.token)
    assert (status, media, data[:5]) == (200, "application/pdf", b"%PDF-")
    assert (await c.call("GET", f"{B}/orders/{number}",
                         token=world.other_token)).status == 404
    cancelled = await c.call("POST", f"{B}/orders/{number}/cancel", token=world.token)
    assert cancelled.body["status"] == "cancelled"


async def _user_id(db: Database, login: str) -> int:
    from storage.models import User

    async with db.read() as session:
        return int((await session.execute(select(User.id).where(User.login == login))
                    ).scalar_one())


async def test_visitor_quote_is_public_and_uses_default_prices(world: World) -> None:
    c = world.api.client
    reply = await c.call("POST", f"{B}/quote", json_body={
        "items": [{"kind": "register", "domain": "brand-new.fr", "years": 2}],
        "country": "DE", "vat_number": "DE123456789"})
    assert reply.status == 200, reply.text
    assert (reply.body["total_cents"], reply.body["vat_treatment"]) == (1800, "reverse_charge")
    refused = await c.call("POST", f"{B}/quote", json_body={
        "items": [{"kind": "renew", "domain": "one.fr"}], "country": "FR"})
    assert refused.status == 400


async def test_renewal_schedule_and_cancellation_needs_step_up(world: World) -> None:
    c = world.api.client
    schedule = await c.call("GET", f"{B}/renewals", token=world.token)
    entries = {e["domain"]: e for e in schedule.body["entries"]}
    assert set(entries) == {"nozone.com", "one.fr", "two.fr"}  # far.fr is not due yet
    one, two = entries["one.fr"], entries["two.fr"]
    selection = {"selections": [{"kind": "domain", "id": one["id"], "action": "renew"},
                                {"kind": "domain", "id": two["id"], "action": "cancel"}]}
    gated = await c.call("POST", f"{B}/renewals", token=world.token, json_body=selection)
    assert (gated.status, gated.code) == (403, "step_up_required")
    assert gated.body["operation"] == "cancel:two.fr."
    # An entry outside the schedule is not found (as one the caller may not see),
    # before the selection's own checks.
    unknown = await c.call("POST", f"{B}/renewals", token=world.token, json_body={
        "selections": [{"kind": "domain", "id": one["id"], "action": "renew"},
                       {"kind": "domain", "id": 999999, "action": "renew"}]})
    assert (unknown.status, unknown.code) == (404, "renewal_not_found"), unknown.text
    twice = await c.call("POST", f"{B}/renewals", token=world.token, json_body={
        "selections": [{"kind": "domain", "id": one["id"], "action": "renew"},
                       {"kind": "domain", "id": one["id"], "action": "renew"}]})
    assert twice.status == 400
    assert twice.body["reasons"] == [f"domain {one['id']} is selected twice"]
    await allowlist(world.api, world.leader, ["127.0.0.0/8"])
    done = await c.call("POST", f"{B}/renewals", token=world.token, json_body=selection)
    assert done.status == 201, done.text
    assert done.body["cancelled"] == ["two.fr"] and done.body["order"]["total_cents"] == 1200
    async with world.api.db.read() as session:
        cancelled = (await session.execute(
            select(Domain.cancel_at_term).where(Domain.name == "two.fr."))).scalar_one()
        audit = (await session.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "billing.domain.cancel"))).scalars().all()
    assert cancelled is True and audit == [f"user:{world.leader.user_id}"]
    # A plain user without the cancel right is refused even from an allowlisted address.
    await grant(world.api.db, None, "one.fr.", Right.RENEW, await _user_id(world.api.db, "bob"))
    mine = await c.call("GET", f"{B}/renewals", token=world.user_token)
    assert [e["domain"] for e in mine.body["entries"]] == ["one.fr"]
    refused = await c.call("POST", f"{B}/renewals", token=world.user_token, json_body={
        "selections": [{"kind": "domain", "id": one["id"], "action": "cancel"}]})
    assert (refused.status, refused.code) == (403, "right_missing")


async def test_transfer_lock_and_code_are_sensitive_and_audited(world: World) -> None:
    c, db = world.api.client, world.api.db
    unlock = await c.call("PUT", f"{B}/domains/one.fr/lock", token=world.token,
                          json_body={"locked": False})
    assert (unlock.status, unlock.code) == (403, "step_up_required")
    await allowlist(world.api, world.leader, ["127.0.0.0/8"])
    unlock = await c.call("PUT", f"{B}/domains/one.fr/lock", token=world.token,
                          json_body={"locked": False})
    assert unlock.status == 200 and unlock.body == {"locked": False, "changed": True}
    requested = await c.call("POST", f"{B}/domains/one.fr/transfer-code", token=world.token)
    assert requested.status == 202
    async with db.read() as session:
        kinds = (await session.execute(select(WorkItem.kind).order_by(WorkItem.id))
                 ).scalars().all()
        item_id = (await session.execute(select(WorkItem.id).where(
            WorkItem.kind == "transfer_code"))).scalar_one()
    assert kinds == ["unlock", "transfer_code"]
    from billing import workqueue

    async with db.write() as session:
        await workqueue.complete(session, BillingConfig(), item_id, OPERATOR,
                                 transfer_code="Xy7-secret")
    revealed = await c.call("POST", f"{B}/domains/one.fr/transfer-code", token=world.token)
    assert revealed.body == {"transfer_code": "Xy7-secret"}
    async with db.read() as session:
        stored = (await session.execute(select(Domain.transfer_code_enc).where(
            Domain.name == "one.fr."))).scalar_one()
        actions = (await session.execute(select(AuditEntry.action).where(
            AuditEntry.object_name == "one.fr.").order_by(AuditEntry.id))).scalars().all()
    assert stored is not None and "Xy7-secret" not in stored  # encrypted at rest
    assert "billing.domain.unlock" in actions
    assert "billing.domain.transfer_code.reveal" in actions
    ns = await c.call("PUT", f"{B}/domains/one.fr/nameservers", token=world.token, json_body={
        "nameservers": [{"host": "ns1.one.fr"}, {"host": "ns.elsewhere.net",
                                                 "addresses": ["192.0.2.1"]}]})
    assert ns.status == 400 and len(ns.body["reasons"]) == 2  # glue missing, glue not allowed
    ns = await c.call("PUT", f"{B}/domains/one.fr/nameservers", token=world.token, json_body={
        "nameservers": [{"host": "ns1.one.fr", "addresses": ["192.0.2.53"]},
                        {"host": "ns.elsewhere.net"}]})
    assert ns.status == 202 and ns.body["nameservers"] == ["ns1.one.fr", "ns.elsewhere.net"]
    assert (await c.call("PUT", f"{B}/domains/one.fr/lock", token=world.user_token,
                         json_body={"locked": True})).code == "right_missing"


async def test_card_payment_invoice_list_and_pdf(world: World) -> None:
    c = world.api.client
    made = await c.call("POST", f"{B}/orders", token=world.token,
                        json_body={"items": [{"kind": "renew", "domain": "far.fr"}]})
    number = made.body["number"]
    checkout = await c.call("POST", f"{B}/orders/{number}/checkout", token=world.token,
                            json_body={"idempotency_key": "checkout-key-1"})
    assert checkout.status == 200, checkout.text
    async with aiohttp.ClientSession() as http, http.post(checkout.body["url"],
                                                          json={}) as response:
        sent = await response.json()
    assert sent["status"] == 200 and '"paid"' in sent["response"]
    replay = await c.call("POST", f"{B}/payments/webhook", data=sent["body"],
                          headers={"Payment-Signature": sent["signature"]})
    assert (replay.status, replay.code) == (400, "webhook_rejected")
    forged = sent["body"].replace(checkout.body["checkout_id"], "cs_999")
    bad = await c.call("POST", f"{B}/payments/webhook", data=forged,
                       headers={"Payment-Signature": sign("guess", int(time.time()),
                                                          forged.encode())})
    assert bad.status == 400 and "bad payment signature" in bad.text
    listed = await c.call("GET", f"{B}/invoices", token=world.token)
    assert [(i["number"], i["order"], i["total_cents"]) for i in listed.body["invoices"]] == [
        (1, number, 1200)]
    status, media, data = await get_bytes(c, f"{B}/invoices/1/pdf", world.token)
    assert (status, media, data[:5]) == (200, "application/pdf", b"%PDF-")
    assert (await get_bytes(c, f"{B}/invoices/1/pdf", world.other_token))[0] == 404
    assert (await c.call("GET", f"{B}/invoices", token=world.user_token)).status == 403
    paid = await c.call("GET", f"{B}/payments", token=world.token)
    assert [(p["method"], p["status"]) for p in paid.body["payments"]] == [("card", "succeeded")]
    # Paying the same order again by transfer is refused, nothing charged twice.
    with pytest.raises(AlreadyPaid):
        await payments.record_payment(
            world.api.db, BillingConfig(), WorkQueueGateway(), order_number=number,
            method=PaymentMethod.TRANSFER, amount_cents=None, reference=f"VIR {number}",
            received_on=datetime.now(UTC).date(), actor=OPERATOR,
            today=datetime.now(UTC).date())


async def test_query_statistics_by_day_type_and_rcode(world: World) -> None:
    from storage import nsstatus

    c, db = world.api.client, world.api.db
    today = datetime.now(UTC).date()
    async with db.write() as session:
        await nsstatus.add_query_counts(session, today, {
            ("one.fr.", 1, 0): 7, ("one.fr.", 28, 0): 2, ("one.fr.", 1, 3): 4,
            ("two.fr.", 1, 0): 100})
        await nsstatus.add_query_counts(session, today - timedelta(days=2), {
            ("one.fr.", 15, 0): 3, ("one.fr.", 0, 5): 1})
        await nsstatus.add_query_counts(session, today - timedelta(days=40), {
            ("one.fr.", 1, 0): 50})
    reply = await c.call("GET", f"{B}/domains/one.fr/stats", token=world.token)
    assert reply.status == 200, reply.text
    body = reply.body
    assert (body["domain"], body["to"], body["total"]) == ("one.fr", today.isoformat(), 17)
    assert body["from"] == (today - timedelta(days=29)).isoformat()
    assert len(body["days"]) == 30 and body["days"][-1] == {"day": today.isoformat(),
                                                            "queries": 13}
    assert body["days"][-3]["queries"] == 4 and body["days"][-2]["queries"] == 0
    assert body["by_qtype"] == {"A": 11, "MX": 3, "AAAA": 2, "other": 1}
    assert body["by_rcode"] == {"NOERROR": 12, "NXDOMAIN": 4, "REFUSED": 1}
    assert body["rows"][0] == {"day": (today - timedelta(days=2)).isoformat(),
                               "qtype": "other", "rcode": "REFUSED", "queries": 1}
    assert len(body["rows"]) == 5
    # An explicit period reaches the older day; CSV has one line per day, type and rcode.
    since = (today - timedelta(days=40)).isoformat()
    reply = await c.call("GET", f"{B}/domains/one.fr/stats", token=world.token,
                         params={"from": since, "to": since, "format": "csv"})
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert reply.text.splitlines() == ["day,qtype,rcode,queries", f"{since},A,NOERROR,50"]
    # A domain not hosted here has a period without queries.
    reply = await c.call("GET", f"{B}/domains/nozone.com/stats", token=world.token)
    assert reply.status == 200 and reply.body["total"] == 0 and reply.body["rows"] == []
    # Bad periods are refused with the reason.
    for params in ({"from": "2027-02-01", "to": "2027-01-01"}, {"from": "2025-01-01",
                                                               "to": "2027-01-01"},
                   {"from": "yesterday"}, {"format": "xml"}):
        bad = await c.call("GET", f"{B}/domains/one.fr/stats", token=world.token,
                           params=params)
        assert bad.status == 400, (params, bad.text)
    # Rights: a user with a right on one.fr reads it, not two.fr; another client sees
    # neither; a user with no right at all sees nothing; signing in is required.
    mine = await c.call("GET", f"{B}/domains/one.fr/stats", token=world.user_token)
    assert mine.status == 200 and mine.body["total"] == 17
    for token, domain in ((world.user_token, "two.fr"), (world.other_token, "one.fr"),
                          (world.other_token, "two.fr")):
        assert (await c.call("GET", f"{B}/domains/{domain}/stats",
                             token=token)).status == 404
    nobody = await seed_user(world.api, world.leader, "carol", "user")
    assert (await c.call("GET", f"{B}/domains/one.fr/stats",
                         token=await seed_token(world.api, nobody))).status == 404
    assert (await c.call("GET", f"{B}/domains/one.fr/stats")).status == 401
    rival = await c.call("GET", f"{B}/domains/rival.fr/stats", token=world.other_token)
    assert rival.status == 200 and rival.body["total"] == 0

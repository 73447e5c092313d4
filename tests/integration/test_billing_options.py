"""Options and the mail service, the renewal schedule, the work queue, and
the outbox relayed through a real local SMTP server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from typing import cast

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from billing import orders, outbox, payments, portfolio, renewals, workqueue
from billing.config import BillingConfig, SmtpRelay
from billing.errors import InvalidRequest
from billing.gateway import WorkQueueGateway
from billing.job import run_daily
from billing.mailer import SmtpMailer
from storage import aliases
from storage.db import Database
from storage.models.billing import OrderStatus, OutboxMessage, OutboxStatus, PaymentMethod
from storage.zones import OPERATOR
from tests.conftest import free_port
from tests.unit.billing.support import add_domain, host_zone, make_account, set_prices

CONFIG = BillingConfig()
TODAY = date(2027, 3, 1)


async def _pay(db: Database, account: int, items: list[orders.OrderItem],
               today: date = TODAY) -> str:
    async with db.write() as session:
        order = await orders.create_order(session, CONFIG, account, items, OPERATOR, today)
        number = order.number
    await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=number, method=PaymentMethod.CHEQUE,
        amount_cents=None, reference=f"CHQ {number}", received_on=today, actor=OPERATOR,
        today=today)
    return number


async def _quota(db: Database, name: str) -> int:
    async with db.read() as session:
        info = await aliases.get_mail_service(session, name)
    return info.quota if info else aliases.BASE_QUOTA


async def test_the_mail_redirect_pack_raises_the_alias_quota_while_active(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, renew=1000, mail_redirect_pack=500)
    await host_zone(db, "pack.fr", account)
    await add_domain(db, account, "pack.fr", date(2028, 12, 31))
    assert await _quota(db, "pack.fr") == 5
    number = await _pay(db, account, [
        orders.OrderItem(orders.ItemKind.OPTION, "pack.fr", product="mail_redirect_pack")])
    assert await _quota(db, "pack.fr") == 50
    async with db.read() as session:
        order = await orders.find_order(session, number)
        view = (await portfolio.list_domains(session, CONFIG, account,
                                             portfolio.PortfolioFilter(), TODAY))[0]
    assert order.status is OrderStatus.DONE  # nothing for the registry to do
    assert [(o.product, o.expires_on) for o in view.options] == [
        ("mail_redirect_pack", date(2028, 3, 1))]
    await run_daily(CONFIG, db, date(2028, 3, 2))  # the option's term passed
    assert await _quota(db, "pack.fr") == 5



async def _mails(db: Database, domain: str) -> list[tuple[str, list[str], str, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(OutboxMessage.kind, OutboxMessage.recipients, OutboxMessage.subject,
                   OutboxMessage.body).where(OutboxMessage.domain_name == domain,
                                             OutboxMessage.kind.contains("reminder"))
            .order_by(OutboxMessage.id))
        return [(str(k), [str(x) for x in cast(list[object], r)], str(s), str(b)) for k, r, s, b in rows]


async def test_an_option_ending_on_its_own_date_gets_reminders_of_its_own(
    db: Database,
) -> None:
    account = await make_account(db)
    await set_prices(db, renew=1000, mail_redirect_pack=500)
    await add_domain(db, account, "pack.fr", date(2029, 12, 31))
    await add_domain(db, account, "with.fr", date(2028, 3, 1))  # the pack ends with it
    await _pay(db, account, [  # bought on TODAY: both packs end on 2028-03-01
        orders.OrderItem(orders.ItemKind.OPTION, "pack.fr", product="mail_redirect_pack"),
        orders.OrderItem(orders.ItemKind.OPTION, "with.fr", product="mail_redirect_pack")])

    first = await run_daily(CONFIG, db, date(2028, 1, 1))  # two months before
    assert first.option_reminders_sent == [("pack.fr.", "mail_redirect_pack", 1)]
    assert first.reminders_sent == [("with.fr.", 1)] and not first.errors
    again = await run_daily(CONFIG, db, date(2028, 1, 1))
    assert again.option_reminders_sent == [] and again.reminders_sent == []
    (kind, to, subject, body), = await _mails(db, "pack.fr.")
    assert (kind, to) == ("option_reminder.1", ["billing@acme.example"])
    assert subject.endswith("action needed \u2013 reminder 1")
    assert ("The option Mail-redirect pack (50 aliases) of the domain pack.fr expires on "
            "2028-03-01 (60 days from now); the domain itself runs until 2029-12-31.") in body
    assert "The option for one year: 5.00 EUR before VAT." in body
    # The pack ending with its domain is announced in the domain's own reminder.
    (_, _, _, with_body), = await _mails(db, "with.fr.")
    assert "Options expiring with it: Mail-redirect pack (50 aliases)." in with_body

    assert (await run_daily(CONFIG, db, date(2028, 2, 1))).option_reminders_sent == [
        ("pack.fr.", "mail_redirect_pack", 2)]
    late = await run_daily(CONFIG, db, date(2028, 3, 1))  # N=3 (-5 days) was missed
    assert late.option_reminders_sent == [("pack.fr.", "mail_redirect_pack", 4)]
    kinds = [(k, to) for k, to, _, _ in await _mails(db, "pack.fr.")]
    assert kinds == [("option_reminder.1", ["billing@acme.example"]),
                     ("option_reminder.2", ["billing@acme.example"]),
                     ("option_reminder.4", ["billing@acme.example", "owner@acme.example"])]
    assert "expires today, 2028-03-01" in (await _mails(db, "pack.fr."))[-1][3]
    # Renewed on its last day, the pack starts a fresh cycle from its new expiry date.
    await _pay(db, account, [
        orders.OrderItem(orders.ItemKind.OPTION, "pack.fr", product="mail_redirect_pack")],
        today=date(2028, 3, 1))
    ended = await run_daily(CONFIG, db, date(2028, 3, 2))
    assert ended.option_reminders_sent == [] and ended.options_expired == 1  # with.fr's
    assert (await run_daily(CONFIG, db, date(2029, 1, 1))).option_reminders_sent == [
        ("pack.fr.", "mail_redirect_pack", 1)]


async def test_a_cancelled_option_gets_no_reminder(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, mail_redirect_pack=500)
    await add_domain(db, account, "stop.fr", date(2029, 12, 31))
    await _pay(db, account, [
        orders.OrderItem(orders.ItemKind.OPTION, "stop.fr", product="mail_redirect_pack")])
    async with db.read() as session:
        entry, = [e for e in await renewals.schedule(session, CONFIG, account,
                                                     date(2028, 1, 1))
                  if e.kind is renewals.EntryKind.OPTION]
    async with db.write() as session:
        await renewals.apply_selection(session, CONFIG, account, [
            renewals.Selection(renewals.EntryKind.OPTION, entry.id, renewals.Action.CANCEL),
        ], OPERATOR, date(2028, 1, 1))
    report = await run_daily(CONFIG, db, date(2028, 2, 1))
    assert report.option_reminders_sent == [] and await _mails(db, "stop.fr.") == []


async def test_a_pack_bought_before_hosting_reaches_the_zone(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, mail_redirect_pack=500)
    await add_domain(db, account, "later.fr", date(2027, 12, 31))
    await _pay(db, account, [
        orders.OrderItem(orders.ItemKind.OPTION, "later.fr", product="mail_redirect_pack")])
    await host_zone(db, "later.fr", account)
    assert await _quota(db, "later.fr") == 5
    await run_daily(CONFIG, db, TODAY)
    assert await _quota(db, "later.fr") == 50


async def test_the_renewal_schedule_validates_the_selection_as_one(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, renew=1000, restore=2500, mail_redirect_pack=500)
    await add_domain(db, account, "soon.fr", date(2027, 4, 15))
    await add_domain(db, account, "late.fr", date(2027, 1, 10))  # + 50 on TODAY: restore
    await add_domain(db, account, "far.fr", date(2028, 1, 1))
    await _pay(db, account, [
        orders.OrderItem(orders.ItemKind.OPTION, "soon.fr", product="mail_redirect_pack")])
    async with db.read() as session:
        entries = await renewals.schedule(session, CONFIG, account, TODAY)
    assert [(e.domain, e.kind.value, e.offer.value, e.price_cents) for e in entries] == [
        ("late.fr", "domain", "restore", 3500), ("soon.fr", "domain", "renew", 1000)]
    late, soon = entries
    with pytest.raises(InvalidRequest) as info:
        async with db.write() as session:
            await renewals.apply_selection(session, CONFIG, account, [
                renewals.Selection(renewals.EntryKind.DOMAIN, soon.id, renewals.Action.RENEW),
                renewals.Selection(renewals.EntryKind.DOMAIN, soon.id, renewals.Action.CANCEL),
                renewals.Selection(renewals.EntryKind.DOMAIN, late.id, renewals.Action.CANCEL),
                renewals.Selection(renewals.EntryKind.OPTION, 424242, renewals.Action.RENEW),
            ], OPERATOR, TODAY)
    assert len(info.value.reasons) == 3  # twice, past its term, not in the schedule
    async with db.write() as session:
        result = await renewals.apply_selection(session, CONFIG, account, [
            renewals.Selection(renewals.EntryKind.DOMAIN, late.id, renewals.Action.RENEW),
            renewals.Selection(renewals.EntryKind.DOMAIN, soon.id, renewals.Action.CANCEL),
        ], OPERATOR, TODAY)
        assert result.cancelled == ("soon.fr",) and result.order is not None
        view = await orders.view(session, result.order)
    assert [ln.description for ln in view.lines] == [
        "Restore fee for late.fr", "Renewal of late.fr for 1 year(s)"]


async def test_work_queue_completion_finishes_the_order(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, register=900)
    number = await _pay(db, account, [orders.OrderItem(orders.ItemKind.REGISTER, "fresh.fr",
                                                       years=2)])
    async with db.read() as session:
        open_items = await workqueue.list_work(session)
        domain = await portfolio.find_domain(session, "fresh.fr")
    assert [(w.kind, w.domain, w.order_number, w.payload["years"]) for w in open_items] == [
        ("register", "fresh.fr", number, 2)]
    assert domain.expires_on == date(2029, 3, 1)
    async with db.write() as session:
        await workqueue.complete(session, CONFIG, open_items[0].id, OPERATOR, note="ok")
        order = await orders.find_order(session, number)
        assert order.status is OrderStatus.DONE
    with pytest.raises(Exception, match="already done"):
        async with db.write() as session:
            await workqueue.complete(session, CONFIG, open_items[0].id, OPERATOR)


async def test_the_outbox_is_relayed_through_smtp(db: Database) -> None:
    received: list[tuple[str, list[str], bytes]] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append((envelope.mail_from, list(envelope.rcpt_tos),  # type: ignore[attr-defined]
                             envelope.original_content))  # type: ignore[attr-defined]
            return "250 OK"

    port = free_port()
    relay = Controller(Handler(), hostname="127.0.0.1", port=port)
    relay.start()
    try:
        account = await make_account(db)
        await add_domain(db, account, "mail.fr", date(2027, 3, 31))
        config = replace(CONFIG, smtp=SmtpRelay("127.0.0.1", port, timeout_s=10))
        report = await run_daily(config, db, date(2027, 3, 26))  # reminder 3: billing + owner
        assert report.mails_sent == 1
        await asyncio.sleep(0)
    finally:
        relay.stop()
    assert len(received) == 1
    sender, rcpts, data = received[0]
    assert sender == "domains@zonehost.invalid"
    assert rcpts == ["billing@acme.example", "owner@acme.example"]
    assert b"reminder 3" in data.replace(b"\r\n ", b" ")
    async with db.read() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert row.status is OutboxStatus.SENT
    # Nothing left to send: a second delivery sends nothing again.
    again = await outbox.deliver(db, config, SmtpMailer(config.smtp))  # type: ignore[arg-type]
    assert again.sent == 0

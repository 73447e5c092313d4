"""The lifecycle job on the real store, walked one simulated day at a time.

Three .fr domains (standard profile) expire on 2027-03-31:
- walk.fr gets reminders 1-5, is suspended at +5 and renewed at +20, at the
  normal price, which brings its zone and aliases back at once;
- back.fr is restored at +45 with the restore fee;
- gone.fr is left alone and deleted at +61.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from billing import orders, payments
from billing.config import BillingConfig
from billing.errors import InvalidRequest
from billing.gateway import WorkQueueGateway
from billing.job import run_daily
from storage import aliases
from storage.db import Database
from storage.models import AuditEntry, Zone, ZoneStatus
from storage.models.billing import (
    Domain,
    DomainStatus,
    OrderStatus,
    OutboxMessage,
    PaymentMethod,
    Reminder,
    ReminderStatus,
)
from storage.zones import OPERATOR
from tests.unit.billing.support import add_domain, host_zone, make_account, set_prices

EXPIRY = date(2027, 3, 31)
CONFIG = BillingConfig()
OWNER, BILLING = "owner@acme.example", "billing@acme.example"


def day(offset: int) -> date:
    return EXPIRY + timedelta(days=offset)


async def zone_status(db: Database, name: str) -> ZoneStatus | None:
    async with db.read() as session:
        return (await session.execute(
            select(Zone.status).where(Zone.name == name)
        )).scalar_one_or_none()


async def domain_row(db: Database, name: str) -> Domain:
    async with db.read() as session:
        return (await session.execute(
            select(Domain).where(Domain.name == name).order_by(Domain.id.desc())
        )).scalars().first()  # type: ignore[return-value]


async def rcpt(db: Database, address: str) -> aliases.RcptOutcome:
    async with db.read() as session:
        return (await aliases.lookup_alias(session, aliases.parse_address(address))).outcome


async def pay_by_transfer(db: Database, account: int, kind: orders.ItemKind, name: str,
                          today: date) -> orders.OrderView:
    async with db.write() as session:
        order = await orders.create_order(session, CONFIG, account,
                                          [orders.OrderItem(kind, name)], OPERATOR, today)
        number = order.number
    await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=number, method=PaymentMethod.TRANSFER,
        amount_cents=None, reference=f"VIR {number} ACME", received_on=today, actor=OPERATOR,
        today=today,
    )
    async with db.read() as session:
        return await orders.view(session, await orders.find_order(session, number))


async def test_one_year_of_lifecycle_day_by_day(db: Database) -> None:
    account = await make_account(db)
    await set_prices(db, renew=1200, restore=3000)
    for name in ("walk.fr", "back.fr", "gone.fr"):
        await host_zone(db, name, account)
        await add_domain(db, account, name, EXPIRY)
    async with db.write() as session:
        await aliases.add_alias(session, "info@walk.fr", ["someone@example.org"], verified=True)
    assert await rcpt(db, "info@walk.fr") is aliases.RcptOutcome.ACCEPT

    sent_on: dict[tuple[str, int], list[date]] = {}
    for offset in range(-70, 63):
        today = day(offset)
        report = await run_daily(CONFIG, db, today)
        assert report.errors == []
        if offset % 10 == 0:  # a second run the same day changes nothing
            again = await run_daily(CONFIG, db, today)
            assert again.reminders_sent == [] and again.suspended == [] and again.deleted == []
        for name, n in report.reminders_sent:
            sent_on.setdefault((name, n), []).append(today)

        if offset == 4:
            assert await zone_status(db, "walk.fr.") is ZoneStatus.ACTIVE
            assert (await domain_row(db, "walk.fr.")).status is DomainStatus.EXPIRED
        if offset == 5:
            assert "walk.fr." in report.suspended
            assert await zone_status(db, "walk.fr.") is ZoneStatus.SUSPENDED
            assert (await domain_row(db, "walk.fr.")).status is DomainStatus.SUSPENDED
            assert await rcpt(db, "info@walk.fr") is aliases.RcptOutcome.SUSPENDED
        if offset == 20:
            view = await pay_by_transfer(db, account, orders.ItemKind.RENEW, "walk.fr", today)
            assert view.total_cents == 1440  # 12.00 + 20 % VAT, no fee
            assert view.status is OrderStatus.IN_PROGRESS  # the registry's part is queued
            assert await zone_status(db, "walk.fr.") is ZoneStatus.ACTIVE
            assert await rcpt(db, "info@walk.fr") is aliases.RcptOutcome.ACCEPT
            walk = await domain_row(db, "walk.fr.")
            assert (walk.status, walk.expires_on) == (DomainStatus.ACTIVE, date(2028, 3, 31))
        if offset == 31:
            assert (await domain_row(db, "back.fr.")).status is DomainStatus.REDEMPTION
        if offset == 45:
            async with db.read() as session:
                with pytest.raises(InvalidRequest, match="can only be restored"):
                    await orders.price_items(
                        session, CONFIG, account,
                        [orders.OrderItem(orders.ItemKind.RENEW, "back.fr")], today, "en")
            view = await pay_by_transfer(db, account, orders.ItemKind.RESTORE, "back.fr", today)
            assert view.total_cents == (3000 + 1200) * 12 // 10
            assert [ln.description for ln in view.lines] == [
                "Restore fee for back.fr", "Renewal of back.fr for 1 year(s)"]
            assert await zone_status(db, "back.fr.") is ZoneStatus.ACTIVE
            assert (await domain_row(db, "back.fr.")).expires_on == date(2028, 3, 31)
        if offset == 60:
            assert await zone_status(db, "gone.fr.") is ZoneStatus.SUSPENDED
            assert (await domain_row(db, "gone.fr.")).status is DomainStatus.REDEMPTION
        if offset == 61:
            assert report.deleted == ["gone.fr."]
            assert await zone_status(db, "gone.fr.") is None
            gone = await domain_row(db, "gone.fr.")
            assert (gone.status, gone.deleted_on) == (DomainStatus.DELETED, today)

    expected = {1: day(-59), 2: day(-31), 3: day(-5), 4: day(0), 5: day(3)}
    assert expected[1] == date(2027, 1, 31) and expected[2] == date(2027, 2, 28)
    for name in ("walk.fr.", "back.fr.", "gone.fr."):
        for n, when in expected.items():
            assert sent_on[(name, n)] == [when], (name, n)
    assert set(sent_on) == {(name, n) for name in ("walk.fr.", "back.fr.", "gone.fr.")
                            for n in expected}

    async with db.read() as session:
        mails = list((await session.execute(
            select(OutboxMessage).where(OutboxMessage.domain_name == "walk.fr.")
            .order_by(OutboxMessage.id)
        )).scalars())
        audit = list((await session.execute(
            select(AuditEntry).where(AuditEntry.object_name == "gone.fr.")
        )).scalars())
    assert [m.kind for m in mails] == [f"reminder.{n}" for n in range(1, 6)]
    assert [m.recipients for m in mails] == [
        [BILLING], [BILLING], [BILLING, OWNER], [BILLING, OWNER], [BILLING, OWNER]]
    assert mails[0].subject == (
        "Your subscriptions are about to expire \u2013 action needed \u2013 reminder 1")
    assert "12.00 EUR" in mails[0].body and "30.00 EUR" in mails[0].body
    actions = Counter(a.action for a in audit)
    assert actions["zone.delete"] == 1 and actions["billing.domain.delete"] == 1
    deleted_zone = next(a for a in audit if a.action == "zone.delete")
    assert ["www.gone.fr.", 1, 300, "192.0.2.10"] in deleted_zone.before  # data kept


async def test_a_late_run_catches_up_and_sends_only_the_current_reminder(db: Database) -> None:
    account = await make_account(db, language="fr")
    await host_zone(db, "late.fr", account)
    await add_domain(db, account, "late.fr", EXPIRY)
    report = await run_daily(CONFIG, db, day(6))  # the job did not run for months
    assert report.reminders_sent == [("late.fr.", 5)]
    assert sorted(n for _, n in report.reminders_skipped) == [1, 2, 3, 4]
    assert report.suspended == ["late.fr."]
    assert await zone_status(db, "late.fr.") is ZoneStatus.SUSPENDED
    again = await run_daily(CONFIG, db, day(7))
    assert again.reminders_sent == [] and again.reminders_skipped == []
    async with db.read() as session:
        rows = (await session.execute(select(Reminder.reminder, Reminder.status))).all()
        mail = (await session.execute(select(OutboxMessage))).scalar_one()
    assert sorted(rows) == [(1, ReminderStatus.SKIPPED), (2, ReminderStatus.SKIPPED),
                            (3, ReminderStatus.SKIPPED), (4, ReminderStatus.SKIPPED),
                            (5, ReminderStatus.SENT)]
    assert mail.subject.startswith("Vos abonnements arrivent")
    assert "05/04/2027" in mail.body  # French dates: suspension day


async def test_a_domain_without_hosted_zone_follows_the_same_lifecycle(db: Database) -> None:
    account = await make_account(db)
    await add_domain(db, account, "nozone.fr", EXPIRY)
    for offset in (5, 61):
        report = await run_daily(CONFIG, db, day(offset))
        assert report.errors == []
    assert (await domain_row(db, "nozone.fr.")).status is DomainStatus.DELETED


async def test_a_cancelled_domain_gets_no_reminder_and_goes_after_its_term(db: Database) -> None:
    account = await make_account(db)
    await host_zone(db, "bye.fr", account)
    domain_id = await add_domain(db, account, "bye.fr", EXPIRY)
    async with db.write() as session:
        row = await session.get(Domain, domain_id)
        assert row is not None
        row.cancel_at_term = True
    assert (await run_daily(CONFIG, db, day(0))).reminders_sent == []
    report = await run_daily(CONFIG, db, day(1))
    assert report.deleted == ["bye.fr."]
    assert await zone_status(db, "bye.fr.") is None


async def test_errp_profile_for_a_generic_tld(db: Database) -> None:
    account = await make_account(db)
    await host_zone(db, "generic.com", account)
    await add_domain(db, account, "generic.com", EXPIRY)
    sent = []
    for offset in range(-40, 2):
        sent += [n for _, n in (await run_daily(CONFIG, db, day(offset))).reminders_sent]
    assert sent == [1, 2]
    assert await zone_status(db, "generic.com.") is ZoneStatus.SUSPENDED  # cut at +1
    assert (await run_daily(CONFIG, db, day(3))).reminders_sent == [("generic.com.", 3)]


async def test_the_daily_loop_catches_up_at_start_and_stops(db: Database) -> None:
    import asyncio
    from datetime import UTC, datetime

    from billing.job import JobReport
    from billing.scheduler import run_every_day

    account = await make_account(db)
    await host_zone(db, "loop.fr", account)
    await add_domain(db, account, "loop.fr", EXPIRY)
    stop = asyncio.Event()
    reports: list[JobReport] = []

    def seen(report: JobReport) -> None:
        reports.append(report)
        stop.set()

    await asyncio.wait_for(run_every_day(
        CONFIG, db, stop, clock=lambda: datetime(2027, 4, 5, 12, tzinfo=UTC), on_report=seen,
    ), timeout=30)
    assert [r.suspended for r in reports] == [["loop.fr."]]

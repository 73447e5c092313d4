"""The billing tables' own guarantees, checked on the real migrated store."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models.billing import (
    Domain,
    DomainStatus,
    ImmutableInvoice,
    Invoice,
    InvoiceKind,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Price,
    Reminder,
    ReminderStatus,
)
from tests.unit.billing.support import make_account


def _domain(account_id: int, name: str = "acme.fr.", status: DomainStatus = DomainStatus.ACTIVE
            ) -> Domain:
    return Domain(
        name=name, extension="fr", account_id=account_id, profile="standard",
        expires_on=date(2027, 1, 31), status=status,
    )


async def test_live_domain_names_are_unique_but_a_deleted_one_can_come_back(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        session.add(_domain(account, status=DomainStatus.DELETED))
        session.add(_domain(account))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(_domain(account))
    async with db.read() as session:
        rows = (await session.execute(select(Domain.status))).scalars().all()
    assert sorted(rows) == [DomainStatus.ACTIVE, DomainStatus.DELETED]


async def test_one_default_price_per_extension_and_product(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        session.add(Price(account_id=None, extension="fr", product="renew", cents=1200))
        session.add(Price(account_id=account, extension="fr", product="renew", cents=1000))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(Price(account_id=None, extension="fr", product="renew", cents=1300))


def _order(account_id: int, number: str) -> Order:
    return Order(
        number=number, account_id=account_id, subtotal_cents=1000, vat_cents=200,
        total_cents=1200, vat_rate_bp=2000, vat_country="FR", created_by="operator",
    )


async def test_an_order_holds_one_successful_payment_at_most(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        order = _order(account, "ZH00000001")
        session.add(order)
        await session.flush()
        order_id = order.id
        for status in (PaymentStatus.FAILED, PaymentStatus.SUCCEEDED):
            session.add(Payment(order_id=order_id, method=PaymentMethod.CARD, status=status,
                                amount_cents=1200, recorded_by="test"))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(Payment(order_id=order_id, method=PaymentMethod.CHEQUE,
                                status=PaymentStatus.SUCCEEDED, amount_cents=1200,
                                recorded_by="test"))


async def test_a_bank_reference_is_recorded_once(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        first, second = _order(account, "ZH00000001"), _order(account, "ZH00000002")
        session.add_all([first, second])
        await session.flush()
        session.add(Payment(order_id=first.id, method=PaymentMethod.TRANSFER,
                            status=PaymentStatus.SUCCEEDED, amount_cents=1200,
                            reference="VIR ZH00000001", recorded_by="alice"))
        second_id = second.id
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(Payment(order_id=second_id, method=PaymentMethod.TRANSFER,
                                status=PaymentStatus.SUCCEEDED, amount_cents=1200,
                                reference="VIR ZH00000001", recorded_by="bob"))


async def test_an_issued_invoice_cannot_be_changed_or_deleted(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        session.add(Invoice(
            number=1, kind=InvoiceKind.INVOICE, account_id=account, issued_on=date(2027, 1, 1),
            language="en", currency="EUR", seller={}, buyer={}, lines=[], subtotal_cents=1000,
            vat_cents=200, total_cents=1200, vat_rate_bp=2000,
        ))
    with pytest.raises(ImmutableInvoice):
        async with db.write() as session:
            invoice = (await session.execute(select(Invoice))).scalar_one()
            invoice.total_cents = 1
    with pytest.raises(ImmutableInvoice):
        async with db.write() as session:
            invoice = (await session.execute(select(Invoice))).scalar_one()
            await session.delete(invoice)
    async with db.read() as session:
        assert (await session.execute(select(Invoice.total_cents))).scalar_one() == 1200


async def test_a_reminder_is_logged_once_per_domain_number_and_expiry(db: Database) -> None:
    account = await make_account(db)
    async with db.write() as session:
        domain = _domain(account)
        session.add(domain)
        await session.flush()
        domain_id = domain.id

    def reminder() -> Reminder:
        return Reminder(domain_id=domain_id, domain_name="acme.fr.", reminder=1,
                        expires_on=date(2027, 1, 31), status=ReminderStatus.SENT,
                        due_on=date(2026, 11, 30), sent_on=date(2026, 11, 30))

    async with db.write() as session:
        session.add(reminder())
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(reminder())

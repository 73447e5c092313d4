"""Invoices: one gapless sequence under concurrent payments, frozen snapshots,
credit notes, VAT treatments, and the PDFs in English and French."""

from __future__ import annotations

import asyncio
import re
import zlib
from datetime import date

import pytest
from sqlalchemy import select

from billing import invoices, orders, payments, pdf
from billing.config import BillingConfig
from billing.errors import AmountMismatch, InvoiceError
from billing.gateway import WorkQueueGateway
from storage.db import Database
from storage.models import Account
from storage.models.billing import Invoice, InvoiceKind, PaymentMethod
from storage.zones import OPERATOR, Actor
from tests.unit.billing.support import add_domain, make_account, set_prices

TODAY = date(2027, 3, 1)
CONFIG = BillingConfig()


def pdf_text(data: bytes) -> str:
    """The text drawn by an fpdf2 document (its page streams, inflated)."""
    assert data.startswith(b"%PDF-")
    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            chunks.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            chunks.append(stream.decode("latin-1"))
    shown = re.findall(r"\(((?:\\.|[^\\)])*)\)\s*Tj", "".join(chunks))
    return "".join(re.sub(r"\\(.)", r"\1", t) for t in shown)


async def _orders(db: Database, count: int, **account: str | None) -> tuple[int, list[str]]:
    account_id = await make_account(db, **account)  # type: ignore[arg-type]
    await set_prices(db, renew=1000, restore=2500)
    numbers = []
    for i in range(count):
        name = f"n{i}.fr"
        await add_domain(db, account_id, name, date(2027, 3, 31),
                         owner_email=f"o{i}@acme.example")
        async with db.write() as session:
            order = await orders.create_order(
                session, CONFIG, account_id, [orders.OrderItem(orders.ItemKind.RENEW, name)],
                OPERATOR, TODAY)
            numbers.append(order.number)
    return account_id, numbers


async def test_invoice_numbers_stay_gapless_under_concurrent_payments(db: Database) -> None:
    _, numbers = await _orders(db, 12)

    async def pay(number: str, index: int, wrong: bool) -> int | None:
        result = await payments.record_payment(
            db, CONFIG, WorkQueueGateway(), order_number=number, method=PaymentMethod.CHEQUE,
            amount_cents=1 if wrong else 1200, reference=f"CHQ {index}", received_on=TODAY,
            actor=Actor(f"operator:{index}"), today=TODAY)
        return result.invoice_number

    # A quarter of them fail inside the transaction (wrong amount).
    results = await asyncio.gather(*(pay(n, i, i % 4 == 3) for i, n in enumerate(numbers)),
                                   return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 3 and all(isinstance(f, AmountMismatch) for f in failures)
    issued = sorted(r for r in results if isinstance(r, int))
    assert issued == list(range(1, 10))  # 9 payments, numbers 1..9, none skipped or reused
    # The failed ones pay later and continue the sequence.
    for index, number in enumerate(numbers):
        if index % 4 == 3:
            assert await pay(number, index + 100, False) in (10, 11, 12)
    async with db.read() as session:
        stored = sorted((await session.execute(select(Invoice.number))).scalars())
    assert stored == list(range(1, 13))


async def test_credit_notes_continue_the_sequence_and_cannot_overcredit(db: Database) -> None:
    _, numbers = await _orders(db, 1)
    paid = await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=numbers[0], method=PaymentMethod.TRANSFER,
        amount_cents=1200, reference=f"VIR {numbers[0]}", received_on=TODAY, actor=OPERATOR,
        today=TODAY)
    assert paid.invoice_number is not None
    async with db.write() as session:
        invoice = await invoices.find_invoice(session, paid.invoice_number)
        partial = await invoices.issue_credit_note(session, CONFIG, invoice, "goodwill", TODAY,
                                                   OPERATOR, subtotal_cents=300)
        assert (partial.number, partial.subtotal_cents, partial.total_cents) == (2, -300, -360)
        rest = await invoices.issue_credit_note(session, CONFIG, invoice, "cancelled", TODAY,
                                                OPERATOR)
        assert (rest.number, rest.subtotal_cents, rest.vat_cents) == (3, -700, -140)
    with pytest.raises(InvoiceError, match="credited by 1 to 0 cents"):
        async with db.write() as session:
            invoice = await invoices.find_invoice(session, paid.invoice_number)
            await invoices.issue_credit_note(session, CONFIG, invoice, "again", TODAY, OPERATOR)
    async with db.read() as session:
        views = await invoices.list_invoices(session, CONFIG, None)
        original = await invoices.find_invoice(session, 1)
    assert [(v.number, v.kind) for v in views] == [
        (3, InvoiceKind.CREDIT_NOTE), (2, InvoiceKind.CREDIT_NOTE), (1, InvoiceKind.INVOICE)]
    assert views[0].credited_number == 1 and views[0].display_number == "F00000003"
    assert original.total_cents == 1200  # the invoice itself never changes


async def test_the_invoice_is_a_snapshot(db: Database) -> None:
    account_id, numbers = await _orders(db, 1)
    paid = await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=numbers[0], method=PaymentMethod.CHEQUE,
        amount_cents=None, reference="CHQ 1", received_on=TODAY, actor=OPERATOR, today=TODAY)
    async with db.write() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        account.name = "Renamed Ltd"
    await set_prices(db, renew=9999)
    async with db.read() as session:
        view = await invoices.to_view(session, CONFIG,
                                      await invoices.find_invoice(session, paid.invoice_number or 0))
    assert view.buyer["name"] == "Acme" and view.lines[0]["amount_cents"] == 1000


@pytest.mark.parametrize(
    ("country", "vat_number", "rate", "total", "mention"),
    [
        ("FR", None, 2000, 1200, None),
        ("DE", "DE123456789", 0, 1000, "Reverse charge"),
        ("DE", None, 1900, 1190, None),
        ("US", None, 0, 1000, "outside the EU"),
    ],
)
async def test_vat_on_orders_and_invoices(
    db: Database, country: str, vat_number: str | None, rate: int, total: int,
    mention: str | None,
) -> None:
    _, numbers = await _orders(db, 1, country=country, vat_number=vat_number)
    async with db.read() as session:
        order = await orders.find_order(session, numbers[0])
    assert (order.vat_rate_bp, order.total_cents) == (rate, total)
    assert order.reverse_charge == (mention == "Reverse charge")
    paid = await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=numbers[0], method=PaymentMethod.CHEQUE,
        amount_cents=total, reference="CHQ 5", received_on=TODAY, actor=OPERATOR, today=TODAY)
    async with db.read() as session:
        view = await invoices.to_view(session, CONFIG,
                                      await invoices.find_invoice(session, paid.invoice_number or 0))
    body = pdf_text(pdf.invoice_pdf(view))
    assert "Invoice F00000001" in body
    if mention:
        assert mention in body
    else:
        assert "Reverse charge" not in body and "outside the EU" not in body


async def test_pdfs_in_french_and_the_proforma(db: Database) -> None:
    account_id, numbers = await _orders(db, 1, language="fr")
    async with db.read() as session:
        order = await orders.find_order(session, numbers[0])
        account = await session.get(Account, account_id)
        assert account is not None
        proforma = pdf.proforma_pdf(await orders.view(session, order),
                                    invoices.seller_snapshot(CONFIG),
                                    invoices.buyer_snapshot(account, order), TODAY)
    text = pdf_text(proforma)
    assert f"Facture pro forma {numbers[0]}" in text
    assert "Renouvellement de n0.fr pour 1 an(s)" in text
    assert "12,00 EUR" in text and "TVA 20 %" in text
    assert f"mentionner le num\xe9ro de commande {numbers[0]}" in text
    paid = await payments.record_payment(
        db, CONFIG, WorkQueueGateway(), order_number=numbers[0], method=PaymentMethod.CHEQUE,
        amount_cents=None, reference="CHQ 3", received_on=TODAY, actor=OPERATOR, today=TODAY)
    async with db.read() as session:
        view = await invoices.to_view(session, CONFIG,
                                      await invoices.find_invoice(session, paid.invoice_number or 0))
    text = pdf_text(pdf.invoice_pdf(view))
    assert "Facture F00000001" in text and "01/03/2027" in text and "Total TTC" in text

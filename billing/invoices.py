"""Invoices and credit notes: issued once, numbered in one gapless sequence.

An invoice is issued in the transaction that records the payment, with a
number taken from the counter row (see counters.py), so concurrent
payments get consecutive numbers and a failed payment leaves no hole.
The row is a frozen snapshot of seller, buyer, lines and amounts: nothing
that changes later (prices, addresses) alters an issued invoice, and the
store refuses updates to it. Corrections are credit notes, in the same
sequence, with negative amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import counters
from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import InvoiceError, NotFound
from billing.names import shown
from billing.orders import orders_within
from billing.vat import amounts
from storage.models import Account
from storage.models.billing import Invoice, InvoiceKind, Order, OrderLine
from storage.zones import Actor


class InvoiceNotFound(NotFound):
    """This invoice does not exist."""


@dataclass(frozen=True, slots=True)
class InvoiceView:
    number: int
    display_number: str
    kind: InvoiceKind
    order_number: str | None
    credited_number: int | None
    account_id: int
    issued_on: date
    issued_at: datetime
    currency: str
    language: str
    subtotal_cents: int
    vat_cents: int
    total_cents: int
    vat_rate_bp: int
    reverse_charge: bool
    seller: dict[str, Any]
    buyer: dict[str, Any]
    lines: tuple[dict[str, Any], ...]
    reason: str


def display_number(config: BillingConfig, number: int) -> str:
    return f"{config.invoice_prefix}{number:08d}"


def seller_snapshot(config: BillingConfig) -> dict[str, Any]:
    s = config.seller
    return {"name": s.name, "address": s.address, "country": s.country,
            "vat_number": s.vat_number, "email": s.email}


def buyer_snapshot(account: Account, order: Order) -> dict[str, Any]:
    return {"account_id": account.id, "name": account.name, "address": account.postal_address,
            "country": account.country, "vat_number": order.vat_number or "",
            "email": account.primary_email}


def line_snapshot(line: OrderLine) -> dict[str, Any]:
    return {"description": line.description, "domain": shown(line.domain_name),
            "kind": line.kind, "years": line.years, "unit_cents": line.unit_cents,
            "amount_cents": line.amount_cents}


async def issue_invoice(
    session: AsyncSession, config: BillingConfig, order: Order, lines: Sequence[OrderLine],
    today: date, actor: Actor,
) -> Invoice:
    """Issue the invoice of a paid order (inside the payment's transaction)."""
    account = await session.get(Account, order.account_id)
    if account is None:
        raise InvoiceError(f"order {order.number} has no account")
    number = await counters.next_value(session, counters.INVOICE)
    invoice = Invoice(
        number=number, kind=InvoiceKind.INVOICE, order_id=order.id,
        account_id=order.account_id, issued_on=today, language=order.language,
        currency=order.currency, seller=seller_snapshot(config),
        buyer=buyer_snapshot(account, order), lines=[line_snapshot(ln) for ln in lines],
        subtotal_cents=order.subtotal_cents, vat_cents=order.vat_cents,
        total_cents=order.total_cents, vat_rate_bp=order.vat_rate_bp,
        reverse_charge=order.reverse_charge,
    )
    session.add(invoice)
    await session.flush()
    audit(session, actor, "billing.invoice.issue", "invoice", display_number(config, number),
          account_id=order.account_id, after={"order": order.number, "total": order.total_cents})
    return invoice


async def find_invoice(
    session: AsyncSession, number: int, *, account_id: int | None = None,
    names: frozenset[str] | None = None,
) -> Invoice:
    """The invoice `number`, if it is `account_id`'s and (with `names`) concerns
    only these domains; InvoiceNotFound otherwise, whichever the reason."""
    query = select(Invoice).where(Invoice.number == number)
    if names is not None:
        query = query.where(Invoice.order_id.in_(orders_within(names)))
    invoice = (await session.execute(query)).scalar_one_or_none()
    if invoice is None or (account_id is not None and invoice.account_id != account_id):
        raise InvoiceNotFound(f"invoice {number} does not exist")
    return invoice


async def credited_so_far(session: AsyncSession, invoice_id: int) -> int:
    """The sum of the credit notes on an invoice (a negative number, or 0)."""
    value = await session.scalar(
        select(func.coalesce(func.sum(Invoice.subtotal_cents), 0))
        .where(Invoice.credited_invoice_id == invoice_id)
    )
    return int(value or 0)


async def issue_credit_note(
    session: AsyncSession, config: BillingConfig, invoice: Invoice, reason: str, today: date,
    actor: Actor, *, subtotal_cents: int | None = None,
) -> Invoice:
    """Credit all of an invoice, or `subtotal_cents` of it (before VAT)."""
    if invoice.kind is not InvoiceKind.INVOICE:
        raise InvoiceError("a credit note cannot be credited")
    if not reason.strip():
        raise InvoiceError("a credit note needs a reason")
    remaining = invoice.subtotal_cents + await credited_so_far(session, invoice.id)
    amount = remaining if subtotal_cents is None else subtotal_cents
    if amount <= 0 or amount > remaining:
        raise InvoiceError(
            f"invoice {display_number(config, invoice.number)} can be credited by 1 to "
            f"{remaining} cents before VAT"
        )
    if amount == invoice.subtotal_cents:
        lines = [{**ln, "unit_cents": -ln["unit_cents"], "amount_cents": -ln["amount_cents"]}
                 for ln in invoice.lines]
    else:
        lines = [{"description": reason.strip(), "domain": "", "kind": "credit", "years": 1,
                  "unit_cents": -amount, "amount_cents": -amount}]
    total = amounts([-amount], invoice.vat_rate_bp)
    number = await counters.next_value(session, counters.INVOICE)
    note = Invoice(
        number=number, kind=InvoiceKind.CREDIT_NOTE, order_id=invoice.order_id,
        credited_invoice_id=invoice.id, account_id=invoice.account_id, issued_on=today,
        language=invoice.language, currency=invoice.currency, seller=seller_snapshot(config),
        buyer=dict(invoice.buyer), lines=lines, subtotal_cents=total.subtotal_cents,
        vat_cents=total.vat_cents, total_cents=total.total_cents,
        vat_rate_bp=invoice.vat_rate_bp, reverse_charge=invoice.reverse_charge,
        reason=reason.strip(),
    )
    session.add(note)
    await session.flush()
    audit(session, actor, "billing.invoice.credit", "invoice", display_number(config, number),
          account_id=invoice.account_id,
          after={"credits": invoice.number, "subtotal": -amount, "reason": reason.strip()})
    return note


async def to_view(session: AsyncSession, config: BillingConfig, invoice: Invoice) -> InvoiceView:
    return (await to_views(session, config, [invoice]))[0]


async def to_views(
    session: AsyncSession, config: BillingConfig, invoices: Sequence[Invoice]
) -> list[InvoiceView]:
    order_ids = {i.order_id for i in invoices if i.order_id is not None}
    numbers = dict((await session.execute(
        select(Order.id, Order.number).where(Order.id.in_(order_ids))
    )).all()) if order_ids else {}
    credited_ids = {i.credited_invoice_id for i in invoices if i.credited_invoice_id}
    credited = dict((await session.execute(
        select(Invoice.id, Invoice.number).where(Invoice.id.in_(credited_ids))
    )).all()) if credited_ids else {}
    return [
        InvoiceView(
            number=i.number, display_number=display_number(config, i.number), kind=i.kind,
            order_number=numbers.get(i.order_id) if i.order_id else None,
            credited_number=credited.get(i.credited_invoice_id) if i.credited_invoice_id
            else None,
            account_id=i.account_id, issued_on=i.issued_on, issued_at=i.issued_at,
            currency=i.currency, language=i.language, subtotal_cents=i.subtotal_cents,
            vat_cents=i.vat_cents, total_cents=i.total_cents, vat_rate_bp=i.vat_rate_bp,
            reverse_charge=i.reverse_charge, seller=dict(i.seller), buyer=dict(i.buyer),
            lines=tuple(i.lines), reason=i.reason,
        )
        for i in invoices
    ]


async def list_invoices(
    session: AsyncSession, config: BillingConfig, account_id: int | None, *,
    names: frozenset[str] | None = None, limit: int = 1000,
) -> list[InvoiceView]:
    """Newest first; `names` keeps the invoices and credit notes of orders that
    concern only these domains (an invoice spanning others is not shown)."""
    query = select(Invoice).order_by(Invoice.number.desc()).limit(limit)
    if account_id is not None:
        query = query.where(Invoice.account_id == account_id)
    if names is not None:
        query = query.where(Invoice.order_id.in_(orders_within(names)))
    return await to_views(session, config, list((await session.execute(query)).scalars()))

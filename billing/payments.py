"""Payments: card through the provider, cheque / transfer / direct debit
recorded by an operator. Each successful payment, in one transaction:
locks the order row, checks it is payable and can still be served, stores
the payment, marks the order paid, issues the invoice (gapless number),
applies the order and queues the invoice e-mail.

Nothing is charged twice: an order holds one successful payment (the
order row lock, then a unique index as the last guard); a bank reference is
recorded once per method; a card webhook is accepted once per event id and
only with a fresh, valid signature; money that arrives for an order that
was already paid or can no longer be served is kept as "refund due" with
a work item for the operator, and no invoice.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing import fulfil, messages, outbox
from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import (
    AlreadyPaid,
    AmountMismatch,
    BillingError,
    DuplicatePayment,
    InvalidRequest,
    NotPayable,
    ReferenceMismatch,
    Unavailable,
    WebhookRejected,
)
from billing.gateway import RegistryGateway, RegistryOp, RegistryRequest
from billing.invoices import display_number, issue_invoice
from billing.orders import find_order, order_lines, order_number_in, orders_within
from billing.provider import CheckoutRequest, PaymentProvider
from storage.db import Database
from storage.models import Account
from storage.models.billing import (
    Order,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    WebhookEvent,
)
from storage.zones import Actor

log = logging.getLogger(__name__)

OPERATOR_METHODS = frozenset({PaymentMethod.CHEQUE, PaymentMethod.TRANSFER,
                              PaymentMethod.DIRECT_DEBIT})


class WebhookOutcome(StrEnum):
    PAID = "paid"
    FAILED = "failed"  # the provider says the card payment failed
    REFUND_DUE = "refund_due"  # money taken that we cannot use: an operator refunds it
    IGNORED = "ignored"  # an event about a checkout already settled


@dataclass(frozen=True, slots=True)
class PaymentResult:
    order_number: str
    payment_id: int
    order_status: OrderStatus
    invoice_number: int | None
    replayed: bool = False  # the same idempotency key: the first result, nothing new


@dataclass(frozen=True, slots=True)
class CheckoutView:
    order_number: str
    checkout_id: str
    url: str


@dataclass(frozen=True, slots=True)
class WebhookResult:
    outcome: WebhookOutcome
    order_number: str
    invoice_number: int | None = None


@dataclass(frozen=True, slots=True)
class PaymentView:
    id: int
    order_number: str
    method: PaymentMethod
    status: PaymentStatus
    amount_cents: int
    currency: str
    reference: str | None
    recorded_by: str
    received_on: date | None
    created_at: datetime


async def _who_paid(session: AsyncSession, order: Order) -> str:
    paid = (await session.execute(
        select(Payment).where(Payment.order_id == order.id,
                              Payment.status == PaymentStatus.SUCCEEDED)
    )).scalar_one_or_none()
    if paid is None:
        return f"order {order.number} is {order.status.value}"
    ref = f" {paid.reference!r}" if paid.reference else ""
    return (f"order {order.number} was already paid: {paid.method.value}{ref} "
            f"recorded by {paid.recorded_by}")


async def _check_payable(session: AsyncSession, order: Order) -> None:
    if order.status is OrderStatus.PENDING_PAYMENT:
        return
    if order.status is OrderStatus.CANCELLED:
        raise NotPayable(f"order {order.number} is cancelled")
    raise AlreadyPaid(await _who_paid(session, order))


async def _settle(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, order: Order,
    payment: Payment, today: date, actor: Actor,
) -> int:
    """Mark paid, invoice, apply, mail. Returns the invoice number."""
    lines = await order_lines(session, order.id)
    payment.status = PaymentStatus.SUCCEEDED
    payment.completed_at = datetime.now(UTC)
    order.status = OrderStatus.PAID
    order.paid_at = payment.completed_at
    await session.flush()  # the unique index on paid orders speaks here
    invoice = await issue_invoice(session, config, order, lines, today, actor)
    await fulfil.apply(session, config, gateway, order, lines, today, actor)
    audit(session, actor, "billing.payment.succeeded", "order", order.number,
          account_id=order.account_id,
          after={"method": payment.method.value, "amount": payment.amount_cents,
                 "invoice": invoice.number})
    account = await session.get(Account, order.account_id)
    if account is not None:
        mail = messages.invoice_issued(
            config, order.language, number=display_number(config, invoice.number),
            order=order.number, total_cents=order.total_cents,
        )
        outbox.enqueue(session, config, kind="invoice", recipients=[account.primary_email],
                       subject=mail.subject, body=mail.body, language=order.language,
                       account_id=order.account_id)
    return invoice.number


async def record_payment(
    db: Database, config: BillingConfig, gateway: RegistryGateway, *, order_number: str,
    method: PaymentMethod, amount_cents: int | None, reference: str | None, received_on: date,
    actor: Actor, today: date, idempotency_key: str | None = None,
) -> PaymentResult:
    """An operator records money received by cheque, bank transfer or direct debit
    (`amount_cents` None: the order's total)."""
    if method not in OPERATOR_METHODS:
        raise InvalidRequest([f"{method.value} payments come from the payment provider"])
    reference = (reference or "").strip() or None
    if method is PaymentMethod.TRANSFER and reference is None:
        raise InvalidRequest(["a bank transfer is recorded with its reference"])
    try:
        async with db.write() as session:
            order = await find_order(session, order_number, for_update=True)
            if idempotency_key:
                earlier = (await session.execute(
                    select(Payment).where(Payment.idempotency_key == idempotency_key)
                )).scalar_one_or_none()
                if earlier is not None:
                    return await _replayed(session, earlier, order)
            await _check_payable(session, order)
            if amount_cents is None:  # the operator saw the order's total arrive
                amount_cents = order.total_cents
            if amount_cents != order.total_cents:
                raise AmountMismatch(
                    f"{amount_cents} cents received, order {order.number} totals "
                    f"{order.total_cents} cents"
                )
            if method is PaymentMethod.TRANSFER and reference is not None and (
                not order_number_in(config, reference, order.number)
            ):
                raise ReferenceMismatch(
                    f"the transfer reference {reference!r} does not name order {order.number}"
                )
            if reference is not None:
                same = (await session.execute(
                    select(Payment).where(Payment.method == method,
                                          Payment.reference == reference)
                )).scalar_one_or_none()
                if same is not None:
                    raise DuplicatePayment(
                        f"{method.value} {reference!r} was already recorded by "
                        f"{same.recorded_by}"
                    )
            reasons = await fulfil.check(session, config, order, await order_lines(
                session, order.id), today)
            if reasons:
                raise Unavailable(f"order {order.number} cannot be served: "
                                  + "; ".join(reasons) + " (cancel it and refund)")
            payment = Payment(
                order_id=order.id, method=method, status=PaymentStatus.PENDING,
                amount_cents=amount_cents, currency=order.currency, reference=reference,
                idempotency_key=idempotency_key, recorded_by=actor.label,
                received_on=received_on, details={},
            )
            session.add(payment)
            await session.flush()
            invoice_number = await _settle(session, config, gateway, order, payment, today,
                                           actor)
            return PaymentResult(order.number, payment.id, order.status, invoice_number)
    except IntegrityError:
        # Lost a race the row lock could not see (another order, same reference).
        async with db.read() as session:
            order = await find_order(session, order_number)
            if order.status is not OrderStatus.PENDING_PAYMENT:
                raise AlreadyPaid(await _who_paid(session, order)) from None
        raise DuplicatePayment(f"{method.value} {reference!r} was already recorded") from None


async def _replayed(session: AsyncSession, payment: Payment, order: Order) -> PaymentResult:
    if payment.order_id != order.id:
        raise InvalidRequest(["this idempotency key was used for another order"])
    from storage.models.billing import Invoice

    invoice = (await session.execute(
        select(Invoice.number).where(Invoice.order_id == order.id).order_by(Invoice.number)
    )).scalars().first()
    return PaymentResult(order.number, payment.id, order.status, invoice, replayed=True)


async def start_card_payment(
    db: Database, config: BillingConfig, provider: PaymentProvider, *, order_number: str,
    account_id: int | None, actor: Actor, today: date, idempotency_key: str | None = None,
) -> CheckoutView:
    """Open a checkout at the provider for an unpaid order; the customer pays there."""
    key = idempotency_key or secrets.token_urlsafe(18)
    async with db.read() as session:
        order = await find_order(session, order_number, account_id=account_id)
        earlier = (await session.execute(
            select(Payment).where(Payment.idempotency_key == key)
        )).scalar_one_or_none()
        if earlier is not None and earlier.order_id == order.id and earlier.reference:
            return CheckoutView(order.number, earlier.reference, str(earlier.details.get("url")))
        await _check_payable(session, order)
        reasons = await fulfil.check(session, config, order, await order_lines(
            session, order.id), today)
        if reasons:
            raise Unavailable(f"order {order.number} cannot be served: " + "; ".join(reasons))
        request = CheckoutRequest(
            order_number=order.number, amount_cents=order.total_cents, currency=order.currency,
            description=f"Order {order.number}", idempotency_key=key,
            success_url=f"{config.public_url}/orders/{order.number}?paid=1",
            cancel_url=f"{config.public_url}/orders/{order.number}",
        )
    checkout = await provider.create_checkout(request)
    try:
        async with db.write() as session:
            session.add(Payment(
                order_id=order.id, method=PaymentMethod.CARD, status=PaymentStatus.PENDING,
                amount_cents=order.total_cents, currency=order.currency,
                reference=checkout.id, idempotency_key=key, recorded_by=actor.label,
                details={"url": checkout.url},
            ))
            audit(session, actor, "billing.payment.checkout", "order", order.number,
                  account_id=order.account_id, after={"checkout": checkout.id})
    except IntegrityError:
        pass  # the same checkout, opened twice with one key: the provider deduplicated it
    return CheckoutView(order.number, checkout.id, checkout.url)


async def handle_webhook(
    db: Database, config: BillingConfig, provider: PaymentProvider, gateway: RegistryGateway,
    *, body: bytes, signature: str | None, now: datetime, today: date,
) -> WebhookResult:
    """Apply one provider event. WebhookRejected for a bad, stale or replayed one."""
    event = provider.verify(body, signature, now)
    actor = Actor("provider")
    try:
        async with db.write() as session:
            seen = (await session.execute(
                select(WebhookEvent.id).where(WebhookEvent.event_id == event.id)
            )).scalar_one_or_none()
            if seen is not None:
                raise WebhookRejected(f"payment notification {event.id} was already processed")
            session.add(WebhookEvent(event_id=event.id, payload={
                "type": event.type, "checkout_id": event.checkout_id,
                "amount_cents": event.amount_cents, "currency": event.currency,
            }))
            payment = (await session.execute(
                select(Payment).where(Payment.method == PaymentMethod.CARD,
                                      Payment.reference == event.checkout_id)
                .with_for_update()
            )).scalar_one_or_none()
            if payment is None:
                raise WebhookRejected(f"unknown checkout {event.checkout_id}")
            order = (await session.execute(
                select(Order).where(Order.id == payment.order_id).with_for_update()
            )).scalar_one()
            if payment.status is not PaymentStatus.PENDING:
                return WebhookResult(WebhookOutcome.IGNORED, order.number)
            if event.type == "checkout.failed":
                payment.status = PaymentStatus.FAILED
                payment.completed_at = datetime.now(UTC)
                return WebhookResult(WebhookOutcome.FAILED, order.number)
            if event.type != "checkout.succeeded":
                return WebhookResult(WebhookOutcome.IGNORED, order.number)
            problem = await _card_problem(session, config, order, payment, event.amount_cents,
                                          event.currency, today)
            if problem is not None:
                await _refund_due(session, gateway, order, payment, problem, actor)
                return WebhookResult(WebhookOutcome.REFUND_DUE, order.number)
            payment.received_on = today
            invoice_number = await _settle(session, config, gateway, order, payment, today,
                                           actor)
            return WebhookResult(WebhookOutcome.PAID, order.number, invoice_number)
    except IntegrityError:
        raise WebhookRejected(f"payment notification {event.id} was already processed") from None


async def _card_problem(
    session: AsyncSession, config: BillingConfig, order: Order, payment: Payment,
    amount_cents: int, currency: str, today: date,
) -> str | None:
    if amount_cents != payment.amount_cents or currency != payment.currency:
        return (f"the provider took {amount_cents} {currency}, "
                f"the checkout was for {payment.amount_cents} {payment.currency}")
    try:
        await _check_payable(session, order)
    except BillingError as exc:
        return str(exc)
    reasons = await fulfil.check(session, config, order, await order_lines(session, order.id),
                                 today)
    return "; ".join(reasons) if reasons else None


async def _refund_due(
    session: AsyncSession, gateway: RegistryGateway, order: Order, payment: Payment,
    problem: str, actor: Actor,
) -> None:
    payment.status = PaymentStatus.REFUND_DUE
    payment.completed_at = datetime.now(UTC)
    payment.details = {**payment.details, "problem": problem}
    log.warning("order=%s card payment=%d refund due: %s", order.number, payment.id, problem)
    audit(session, actor, "billing.payment.refund_due", "order", order.number,
          account_id=order.account_id, after={"payment": payment.id, "problem": problem})
    await gateway.submit(session, RegistryRequest(
        RegistryOp.REFUND, "", order.account_id, order.id,
        {"payment": payment.id, "amount_cents": payment.amount_cents, "problem": problem},
    ), actor)


async def list_payments(
    session: AsyncSession, account_id: int | None, *, names: frozenset[str] | None = None,
    limit: int = 500,
) -> list[PaymentView]:
    """Newest first; `names` keeps the payments of orders concerning only these domains."""
    query = (select(Payment, Order.number).join(Order, Order.id == Payment.order_id)
             .order_by(Payment.id.desc()).limit(limit))
    if account_id is not None:
        query = query.where(Order.account_id == account_id)
    if names is not None:
        query = query.where(Order.id.in_(orders_within(names)))
    return [
        PaymentView(p.id, number, p.method, p.status, p.amount_cents, p.currency, p.reference,
                    p.recorded_by, p.received_on, p.created_at)
        for p, number in (await session.execute(query))
    ]

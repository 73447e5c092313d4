"""Payments on the real store: card through a stand-in provider over HTTP,
cheque and bank transfer recorded by operators, and every way to pay wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pytest
from aiohttp import web
from sqlalchemy import func, select

from billing import orders, payments
from billing.config import BillingConfig, ProviderConfig
from billing.errors import (
    AlreadyPaid,
    AmountMismatch,
    DuplicatePayment,
    ReferenceMismatch,
    Unavailable,
    WebhookRejected,
)
from billing.gateway import WorkQueueGateway
from billing.provider import SIGNATURE_HEADER, HostedPageProvider
from storage.db import Database
from storage.models.billing import (
    Invoice,
    Order,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    WorkItem,
)
from storage.zones import OPERATOR, Actor
from tests.conftest import free_port
from tests.unit.billing.provider_standin import StandInProvider, post
from tests.unit.billing.support import add_domain, make_account, set_prices

TODAY = date(2027, 3, 1)
SECRET = "whsec-test-secret"


@dataclass
class CardRig:
    config: BillingConfig
    provider: HostedPageProvider
    standin: StandInProvider


async def _receiver(db: Database, config: BillingConfig, provider: HostedPageProvider,
                    port: int) -> web.AppRunner:
    """What the zone API's webhook route does: body and signature to billing."""

    async def webhook(request: web.Request) -> web.Response:
        try:
            result = await payments.handle_webhook(
                db, config, provider, WorkQueueGateway(), body=await request.read(),
                signature=request.headers.get(SIGNATURE_HEADER),
                now=datetime.now(UTC), today=TODAY,
            )
        except WebhookRejected as exc:
            return web.json_response({"error": exc.code, "detail": str(exc)}, status=400)
        return web.json_response({"outcome": result.outcome.value})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def card(db: Database) -> AsyncIterator[CardRig]:
    standin = StandInProvider(secret=SECRET, api_key="sk-test")
    base = await standin.start()
    config = replace(BillingConfig(), provider=ProviderConfig(base, "sk-test", SECRET, 300))
    assert config.provider is not None
    provider = HostedPageProvider(config.provider)
    port = free_port()
    runner = await _receiver(db, config, provider, port)
    standin.webhook_url = f"http://127.0.0.1:{port}/webhook"
    yield CardRig(config, provider, standin)
    await runner.cleanup()
    await standin.stop()


async def _renewal_order(db: Database, name: str = "pay.fr", **account: str) -> tuple[int, str]:
    account_id = await make_account(db, **account)
    await set_prices(db, renew=1000)
    await add_domain(db, account_id, name, date(2027, 3, 31))
    async with db.write() as session:
        order = await orders.create_order(
            session, BillingConfig(), account_id,
            [orders.OrderItem(orders.ItemKind.RENEW, name)], OPERATOR, TODAY)
        return account_id, order.number


async def _count(db: Database, model: type[Invoice | WorkItem]) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _order(db: Database, number: str) -> Order:
    async with db.read() as session:
        return await orders.find_order(session, number)


async def _pay_on_page(rig: CardRig, url: str, **options: object) -> dict[str, object]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(url, json=options) as response:
        assert response.status == 200
        return dict(await response.json())


async def test_card_payment_through_the_provider(db: Database, card: CardRig) -> None:
    account, number = await _renewal_order(db)
    checkout = await payments.start_card_payment(
        db, card.config, card.provider, order_number=number, account_id=account,
        actor=Actor("user:1"), today=TODAY, idempotency_key="k1")
    assert checkout.url.startswith(card.standin.base_url)
    assert card.standin.checkouts[checkout.checkout_id]["amount_cents"] == 1200
    again = await payments.start_card_payment(
        db, card.config, card.provider, order_number=number, account_id=account,
        actor=Actor("user:1"), today=TODAY, idempotency_key="k1")
    assert again.checkout_id == checkout.checkout_id  # one checkout per key

    paid = await _pay_on_page(card, checkout.url)
    assert paid["status"] == 200 and '"paid"' in str(paid["response"])
    order = await _order(db, number)
    assert order.status is OrderStatus.IN_PROGRESS and order.paid_at is not None
    assert await _count(db, Invoice) == 1

    # The very same notification again: refused, nothing charged or invoiced twice.
    replay = await post(card.standin.webhook_url, str(paid["body"]).encode(),
                        str(paid["signature"]))
    assert replay.status == 400 and "already processed" in replay.response
    assert await _count(db, Invoice) == 1

    # Paying the same order again by transfer: a clear error naming the card payment.
    with pytest.raises(AlreadyPaid, match="already paid: card"):
        await payments.record_payment(
            db, card.config, WorkQueueGateway(), order_number=number,
            method=PaymentMethod.TRANSFER, amount_cents=1200, reference=f"VIR {number}",
            received_on=TODAY, actor=OPERATOR, today=TODAY)


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({"secret": "not-the-secret"}, "bad payment signature"),
        ({"timestamp": int(time.time()) - 3600}, "outside the time window"),
    ],
)
async def test_a_bad_or_stale_signature_is_refused(
    db: Database, card: CardRig, options: dict[str, object], detail: str
) -> None:
    account, number = await _renewal_order(db)
    checkout = await payments.start_card_payment(
        db, card.config, card.provider, order_number=number, account_id=account,
        actor=OPERATOR, today=TODAY)
    sent = await _pay_on_page(card, checkout.url, **options)
    assert sent["status"] == 400 and detail in str(sent["response"])
    assert (await _order(db, number)).status is OrderStatus.PENDING_PAYMENT
    assert await _count(db, Invoice) == 0
    # The genuine notification still goes through afterwards.
    good = await _pay_on_page(card, checkout.url)
    assert good["status"] == 200
    assert (await _order(db, number)).status is OrderStatus.IN_PROGRESS


async def test_a_wrong_amount_is_kept_for_refund_not_invoiced(db: Database, card: CardRig) -> None:
    account, number = await _renewal_order(db)
    checkout = await payments.start_card_payment(
        db, card.config, card.provider, order_number=number, account_id=account,
        actor=OPERATOR, today=TODAY)
    sent = await _pay_on_page(card, checkout.url, amount_cents=100)
    assert sent["status"] == 200 and "refund_due" in str(sent["response"])
    assert (await _order(db, number)).status is OrderStatus.PENDING_PAYMENT
    assert await _count(db, Invoice) == 0
    async with db.read() as session:
        payment = (await session.execute(select(Payment))).scalar_one()
        item = (await session.execute(select(WorkItem))).scalar_one()
    assert payment.status is PaymentStatus.REFUND_DUE and item.kind == "refund"


async def test_a_failed_card_payment_leaves_the_order_payable(db: Database, card: CardRig) -> None:
    account, number = await _renewal_order(db)
    checkout = await payments.start_card_payment(
        db, card.config, card.provider, order_number=number, account_id=account,
        actor=OPERATOR, today=TODAY)
    sent = await _pay_on_page(card, checkout.url, outcome="failed")
    assert sent["status"] == 200 and "failed" in str(sent["response"])
    assert (await _order(db, number)).status is OrderStatus.PENDING_PAYMENT


async def test_a_webhook_without_signature_or_malformed_is_refused(
    db: Database, card: CardRig
) -> None:
    body = b'{"id": "evt_x", "type": "checkout.succeeded"}'
    for signature in ("", "t=abc,v1=00", f"t={int(time.time())},v1=00"):
        sent = await post(card.standin.webhook_url, body, signature)
        assert sent.status == 400


async def test_transfer_reference_must_name_the_order(db: Database) -> None:
    config = BillingConfig()
    _, number = await _renewal_order(db)
    common = {"order_number": number, "method": PaymentMethod.TRANSFER,
              "received_on": TODAY, "actor": OPERATOR, "today": TODAY}
    with pytest.raises(ReferenceMismatch):
        await payments.record_payment(db, config, WorkQueueGateway(), amount_cents=1200,
                                      reference="VIREMENT ACME MARS", **common)  # type: ignore[arg-type]
    with pytest.raises(AmountMismatch, match="1100 cents received"):
        await payments.record_payment(db, config, WorkQueueGateway(), amount_cents=1100,
                                      reference=f"VIR {number}", **common)  # type: ignore[arg-type]
    short = f"vir acme {config.order_prefix.lower()}-{int(number[2:])}"  # 'zh-1'
    result = await payments.record_payment(db, config, WorkQueueGateway(), amount_cents=1200,
                                           reference=short, **common)  # type: ignore[arg-type]
    assert result.invoice_number == 1 and not result.replayed


async def test_two_operators_record_the_same_transfer(db: Database) -> None:
    config = BillingConfig()
    _, number = await _renewal_order(db)

    async def record(who: str) -> payments.PaymentResult:
        return await payments.record_payment(
            db, config, WorkQueueGateway(), order_number=number,
            method=PaymentMethod.TRANSFER, amount_cents=1200, reference=f"VIR {number}",
            received_on=TODAY, actor=Actor(f"operator:{who}"), today=TODAY)

    results = await asyncio.gather(record("alice"), record("bob"), return_exceptions=True)
    won = [r for r in results if isinstance(r, payments.PaymentResult)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], AlreadyPaid | DuplicatePayment)
    assert "recorded by operator:" in str(lost[0])
    assert await _count(db, Invoice) == 1
    # A cheque already recorded on one order cannot pay another.
    _, other = await _renewal_order(db, "other.fr", email="x@other.example")
    _, third = await _renewal_order(db, "third.fr", email="y@third.example")
    for order_number in (other, third):
        call = payments.record_payment(
            db, config, WorkQueueGateway(), order_number=order_number,
            method=PaymentMethod.CHEQUE, amount_cents=1200, reference="CHQ 77",
            received_on=TODAY, actor=OPERATOR, today=TODAY)
        if order_number == other:
            await call
        else:
            with pytest.raises(DuplicatePayment, match="already recorded by operator"):
                await call


async def test_cheque_with_idempotency_key_is_recorded_once(db: Database) -> None:
    config = BillingConfig()
    _, number = await _renewal_order(db)
    kwargs = {"order_number": number, "method": PaymentMethod.CHEQUE, "amount_cents": 1200,
              "reference": "CHQ 0012345", "received_on": TODAY, "actor": OPERATOR,
              "today": TODAY, "idempotency_key": "cheque-0012345"}
    first = await payments.record_payment(db, config, WorkQueueGateway(), **kwargs)  # type: ignore[arg-type]
    second = await payments.record_payment(db, config, WorkQueueGateway(), **kwargs)  # type: ignore[arg-type]
    assert second.replayed and second.invoice_number == first.invoice_number == 1
    assert await _count(db, Invoice) == 1


async def test_a_renewal_that_became_a_restore_cannot_be_paid(db: Database) -> None:
    config = BillingConfig()
    _, number = await _renewal_order(db)
    late = date(2027, 5, 15)  # expiry + 45: only a restore brings it back
    with pytest.raises(Unavailable, match="needs a restore"):
        await payments.record_payment(
            db, config, WorkQueueGateway(), order_number=number, method=PaymentMethod.CHEQUE,
            amount_cents=None, reference="CHQ 1", received_on=late, actor=OPERATOR, today=late)
    assert (await _order(db, number)).status is OrderStatus.PENDING_PAYMENT
    assert await _count(db, Invoice) == 0


async def test_a_cancelled_order_cannot_be_paid(db: Database) -> None:
    _, number = await _renewal_order(db)
    async with db.write() as session:
        await orders.cancel_order(session, await orders.find_order(session, number), OPERATOR)
    with pytest.raises(Exception, match="cancelled"):
        await payments.record_payment(
            db, BillingConfig(), WorkQueueGateway(), order_number=number,
            method=PaymentMethod.CHEQUE, amount_cents=None, reference="CHQ 9",
            received_on=TODAY, actor=OPERATOR, today=TODAY)

"""Quotes and orders: items priced from the account's list, VAT, a number.

An order is what the customer follows: pending payment, paid, in progress
(the registry gateway is at work), done, or cancelled. Its number
(e.g. ZH00000042) must appear in a bank transfer's reference.
Every item is checked against the domain's lifecycle on the day: renewing
a deleted domain, or renewing at the normal price a domain that needs a
restore, is refused with the reason.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import counters, lifecycle
from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import InvalidRequest, NotFound, NotPayable, PriceMissing
from billing.i18n import language_of, text
from billing.names import canonical, extension_of, shown
from billing.portfolio import get_domain
from billing.prices import OPTION_PRODUCTS, PriceBook, Product, load_price_book
from billing.sealing import seal
from billing.vat import VatDecision, amounts, decide
from storage.models import Account
from storage.models.billing import Contact, Domain, Order, OrderLine, OrderStatus
from storage.zones import Actor

MAX_YEARS = 10
MAX_ITEMS = 200


class ItemKind(enum.StrEnum):
    REGISTER = "register"
    TRANSFER_IN = "transfer_in"
    RENEW = "renew"
    RESTORE = "restore"  # a restore fee line plus a one-year renewal line
    OPTION = "option"
    OWNER_CHANGE = "owner_change"  # created by an operator: a paid support service


class LineKind(enum.StrEnum):
    REGISTER = "register"
    TRANSFER_IN = "transfer_in"
    RENEW = "renew"
    RESTORE = "restore"  # the fee; the renewal is its own line
    OPTION = "option"
    OWNER_CHANGE = "owner_change"


# Lines that decide a domain's registration: one pending order at a time per domain.
_EXCLUSIVE = frozenset({LineKind.REGISTER, LineKind.TRANSFER_IN, LineKind.RENEW})


class OrderNotFound(NotFound):
    """This order does not exist."""


@dataclass(frozen=True, slots=True)
class OrderItem:
    kind: ItemKind
    domain: str
    years: int = 1
    product: str | None = None  # the option, for OPTION
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Buyer:
    country: str
    vat_number: str | None
    language: str


@dataclass(frozen=True, slots=True)
class QuoteLine:
    kind: LineKind
    product: Product
    domain: str  # canonical
    extension: str
    years: int
    unit_cents: int
    amount_cents: int
    description: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Quote:
    lines: tuple[QuoteLine, ...]
    subtotal_cents: int
    vat_cents: int
    total_cents: int
    vat: VatDecision
    currency: str
    language: str


@dataclass(frozen=True, slots=True)
class LineView:
    position: int
    kind: str
    domain: str  # shown
    years: int
    unit_cents: int
    amount_cents: int
    description: str
    done: bool


@dataclass(frozen=True, slots=True)
class OrderView:
    id: int
    number: str
    account_id: int
    status: OrderStatus
    currency: str
    subtotal_cents: int
    vat_cents: int
    total_cents: int
    vat_rate_bp: int
    reverse_charge: bool
    language: str
    created_at: datetime
    paid_at: datetime | None
    lines: tuple[LineView, ...]


def buyer_of(account: Account) -> Buyer:
    return Buyer(account.country, account.vat_number, language_of(account.language))


async def _domain_reasons(
    item: OrderItem, domain: Domain | None, account_id: int | None, config: BillingConfig,
    today: date, name: str,
) -> tuple[list[str], lifecycle.Offer]:
    if domain is None or account_id is None or domain.account_id != account_id:
        return [f"{shown(name)} is not in your portfolio"], lifecycle.Offer.NONE
    plan = lifecycle.plan(
        config.profile(domain.profile), domain.expires_on, today, cancelled=False
    )
    return [], plan.offer


async def price_items(
    session: AsyncSession, config: BillingConfig, account_id: int | None,
    items: Sequence[OrderItem], today: date, language: str,
) -> list[QuoteLine]:
    """Check and price every item; InvalidRequest lists every problem at once."""
    if not items:
        raise InvalidRequest(["an order needs at least one item"])
    if len(items) > MAX_ITEMS:
        raise InvalidRequest([f"at most {MAX_ITEMS} items per order"])
    book = await load_price_book(session, account_id)
    reasons: list[str] = []
    lines: list[QuoteLine] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        try:
            lines.extend(await _price_item(session, config, book, account_id, item, today,
                                           language, seen))
        except (InvalidRequest, PriceMissing) as exc:
            reasons.extend(exc.reasons if isinstance(exc, InvalidRequest) else [str(exc)])
    if reasons:
        raise InvalidRequest(reasons)
    return lines


async def _price_item(
    session: AsyncSession, config: BillingConfig, book: PriceBook, account_id: int | None,
    item: OrderItem, today: date, language: str, seen: set[tuple[str, str]],
) -> list[QuoteLine]:
    name = canonical(item.domain)
    ext = extension_of(name)
    shown_name = shown(name)
    reasons: list[str] = []
    if not 1 <= item.years <= MAX_YEARS:
        reasons.append(f"{shown_name}: from 1 to {MAX_YEARS} years")
    key = (name, "option:" + (item.product or "") if item.kind is ItemKind.OPTION
           else "registration")
    if key in seen:
        reasons.append(f"{shown_name} is in this order twice")
    seen.add(key)
    domain = await get_domain(session, name)

    def line(kind: LineKind, product: Product, years: int, desc: str,
             params: dict[str, Any] | None = None) -> QuoteLine:
        unit = book.require(ext, product)
        return QuoteLine(kind, product, name, ext, years, unit, unit * years, desc, params or {})

    def describe(kind: str, years: int = 1, product: str = "") -> str:
        return text(language, f"line.{kind}", domain=shown_name, years=years,
                    product=text(language, f"product.{product}") if product else "")

    if item.kind in (ItemKind.REGISTER, ItemKind.TRANSFER_IN):
        if domain is not None:
            reasons.append(f"{shown_name} is already in a portfolio")
        if reasons:
            raise InvalidRequest(reasons)
        if item.kind is ItemKind.REGISTER:
            return [line(LineKind.REGISTER, Product.REGISTER, item.years,
                         describe("register", item.years))]
        params: dict[str, Any] = {}
        code = str(item.params.get("auth_code", "")).strip()
        if code:
            params["auth_code_sealed"] = seal(config.secret_key, code)
        return [line(LineKind.TRANSFER_IN, Product.TRANSFER_IN, 1, describe("transfer_in"),
                     params)]
    domain_reasons, offer = await _domain_reasons(item, domain, account_id, config, today, name)
    reasons.extend(domain_reasons)
    if reasons:
        raise InvalidRequest(reasons)
    assert domain is not None
    if item.kind is ItemKind.RENEW:
        if offer is lifecycle.Offer.RESTORE:
            raise InvalidRequest([f"{shown_name} is in redemption: it can only be restored"])
        if offer is lifecycle.Offer.NONE:
            raise InvalidRequest([f"{shown_name} was deleted and cannot be renewed"])
        return [line(LineKind.RENEW, Product.RENEW, item.years, describe("renew", item.years))]
    if item.kind is ItemKind.RESTORE:
        if offer is lifecycle.Offer.RENEW:
            raise InvalidRequest([f"{shown_name} needs no restore: renew it"])
        if offer is lifecycle.Offer.NONE:
            raise InvalidRequest([f"{shown_name} was deleted and cannot be restored"])
        return [
            line(LineKind.RESTORE, Product.RESTORE, 1, describe("restore")),
            line(LineKind.RENEW, Product.RENEW, 1, describe("renew", 1)),
        ]
    if item.kind is ItemKind.OPTION:
        try:
            product = Product(item.product or "")
        except ValueError:
            product = None
        if product is None or product not in OPTION_PRODUCTS:
            known = ", ".join(sorted(p.value for p in OPTION_PRODUCTS))
            raise InvalidRequest([f"{shown_name}: unknown option {item.product!r} ({known})"])
        if offer is not lifecycle.Offer.RENEW:
            raise InvalidRequest([f"{shown_name} must be renewed before adding an option"])
        return [line(LineKind.OPTION, product, item.years,
                     describe("option", item.years, product.value),
                     {"product": product.value})]
    # OWNER_CHANGE
    contact_id = item.params.get("owner_contact_id")
    if not isinstance(contact_id, int):
        raise InvalidRequest([f"{shown_name}: a change of owner names the new owner contact"])
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.account_id != account_id:
        raise InvalidRequest([f"{shown_name}: contact {contact_id} is not a contact of yours"])
    return [line(LineKind.OWNER_CHANGE, Product.OWNER_CHANGE, 1, describe("owner_change"),
                 {"owner_contact_id": contact_id})]


def _quote(config: BillingConfig, lines: Sequence[QuoteLine], buyer: Buyer) -> Quote:
    vat = decide(config.seller.country, buyer.country, buyer.vat_number, config.vat_rates_bp)
    total = amounts([ln.amount_cents for ln in lines], vat.rate_bp)
    return Quote(tuple(lines), total.subtotal_cents, total.vat_cents, total.total_cents, vat,
                 config.currency, buyer.language)


async def quote(
    session: AsyncSession, config: BillingConfig, account_id: int | None,
    items: Sequence[OrderItem], buyer: Buyer, today: date,
) -> Quote:
    """Price items without ordering (a visitor's quote uses the default price list)."""
    if account_id is None:
        refused = [f"{shown(canonical(i.domain))}: ask from your client space"
                   for i in items if i.kind not in (ItemKind.REGISTER, ItemKind.TRANSFER_IN)]
        if refused:
            raise InvalidRequest(refused)
    lines = await price_items(session, config, account_id, items, today, buyer.language)
    return _quote(config, lines, buyer)


async def _pending_conflicts(
    session: AsyncSession, lines: Sequence[QuoteLine], account_id: int
) -> list[str]:
    """Why these lines cannot be ordered now. Another account's pending order is
    told without its number: that number is none of this account's business."""
    names = {ln.domain for ln in lines if ln.kind in _EXCLUSIVE}
    if not names:
        return []
    rows = (await session.execute(
        select(OrderLine.domain_name, Order.number, Order.account_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.status == OrderStatus.PENDING_PAYMENT, OrderLine.domain_name.in_(names),
               OrderLine.kind.in_([k.value for k in _EXCLUSIVE]))
    )).all()
    return sorted({f"{shown(name)} is already in order {number}, awaiting payment"
                   if owner == account_id else f"{shown(name)} is already being ordered"
                   for name, number, owner in rows})


async def create_order(
    session: AsyncSession, config: BillingConfig, account_id: int,
    items: Sequence[OrderItem], actor: Actor, today: date,
) -> Order:
    account = await session.get(Account, account_id)
    if account is None:
        raise InvalidRequest([f"account {account_id} does not exist"])
    buyer = buyer_of(account)
    lines = await price_items(session, config, account_id, items, today, buyer.language)
    conflicts = await _pending_conflicts(session, lines, account_id)
    if conflicts:
        raise InvalidRequest(conflicts)
    q = _quote(config, lines, buyer)
    number = f"{config.order_prefix}{await counters.next_value(session, counters.ORDER):08d}"
    order = Order(
        number=number, account_id=account_id, status=OrderStatus.PENDING_PAYMENT,
        currency=q.currency, subtotal_cents=q.subtotal_cents, vat_cents=q.vat_cents,
        total_cents=q.total_cents, vat_rate_bp=q.vat.rate_bp, vat_country=q.vat.country,
        vat_number=buyer.vat_number, reverse_charge=q.vat.reverse_charge,
        language=buyer.language, created_by=actor.label,
    )
    session.add(order)
    await session.flush()
    for position, ln in enumerate(lines, start=1):
        session.add(OrderLine(
            order_id=order.id, position=position, kind=ln.kind.value, product=ln.product.value,
            domain_name=ln.domain, extension=ln.extension, years=ln.years,
            unit_cents=ln.unit_cents, amount_cents=ln.amount_cents, description=ln.description,
            params=ln.params,
        ))
    await session.flush()
    audit(session, actor, "billing.order.create", "order", number, account_id=account_id,
          after={"total_cents": q.total_cents,
                 "lines": [f"{ln.kind.value} {shown(ln.domain)}" for ln in lines]})
    return order


_NUMBER_IN_TEXT = re.compile(r"([A-Za-z]+)[\s\-_/.]*0*(\d+)")


def order_number_in(config: BillingConfig, reference: str, number: str) -> bool:
    """The order number appears in a bank reference (banks drop or add separators
    and leading zeros: 'VIR ZH-42 ACME' names ZH00000042)."""
    want_digits = int(number[len(config.order_prefix):])
    for prefix, digits in _NUMBER_IN_TEXT.findall(reference):
        if prefix.upper().endswith(config.order_prefix) and int(digits) == want_digits:
            return True
    return False


async def find_order(
    session: AsyncSession, number: str, *, account_id: int | None = None,
    for_update: bool = False,
) -> Order:
    query = select(Order).where(Order.number == number.strip().upper())
    if for_update:
        query = query.with_for_update()
    order = (await session.execute(query)).scalar_one_or_none()
    if order is None or (account_id is not None and order.account_id != account_id):
        raise OrderNotFound(f"order {number} does not exist")
    return order


async def order_lines(session: AsyncSession, order_id: int) -> list[OrderLine]:
    return list((await session.execute(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.position)
    )).scalars())


async def view(session: AsyncSession, order: Order) -> OrderView:
    lines = await order_lines(session, order.id)
    return _view(order, lines)


def _view(order: Order, lines: Sequence[OrderLine]) -> OrderView:
    return OrderView(
        id=order.id, number=order.number, account_id=order.account_id, status=order.status,
        currency=order.currency, subtotal_cents=order.subtotal_cents,
        vat_cents=order.vat_cents, total_cents=order.total_cents,
        vat_rate_bp=order.vat_rate_bp, reverse_charge=order.reverse_charge,
        language=order.language, created_at=order.created_at, paid_at=order.paid_at,
        lines=tuple(
            LineView(ln.position, ln.kind, shown(ln.domain_name), ln.years, ln.unit_cents,
                     ln.amount_cents, ln.description, ln.done)
            for ln in lines
        ),
    )


def orders_within(names: frozenset[str]) -> Select[int]:
    """Ids of the orders that concern these domains and no other (at least one
    line, every line's domain among `names`): what a caller limited to some
    domains may see of orders, and of their payments and invoices."""
    outside = func.sum(case((OrderLine.domain_name.in_(names), 0), else_=1))
    return select(OrderLine.order_id).group_by(OrderLine.order_id).having(outside == 0)


async def list_orders(
    session: AsyncSession, account_id: int | None, *, status: OrderStatus | None = None,
    names: frozenset[str] | None = None, limit: int = 500,
) -> list[OrderView]:
    """Orders, newest first; `names` keeps those concerning only these domains."""
    query = select(Order).order_by(Order.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(Order.account_id == account_id)
    if status is not None:
        query = query.where(Order.status == status)
    if names is not None:
        query = query.where(Order.id.in_(orders_within(names)))
    orders = list((await session.execute(query)).scalars())
    if not orders:
        return []
    lines: dict[int, list[OrderLine]] = {}
    for ln in (await session.execute(
        select(OrderLine).where(OrderLine.order_id.in_([o.id for o in orders]))
        .order_by(OrderLine.position)
    )).scalars():
        lines.setdefault(ln.order_id, []).append(ln)
    return [_view(o, lines.get(o.id, [])) for o in orders]


async def cancel_order(session: AsyncSession, order: Order, actor: Actor) -> None:
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise NotPayable(f"order {order.number} is {order.status.value}: it cannot be cancelled")
    order.status = OrderStatus.CANCELLED
    order.cancelled_at = datetime.now(UTC)
    audit(session, actor, "billing.order.cancel", "order", order.number,
          account_id=order.account_id)

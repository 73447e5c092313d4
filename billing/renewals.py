"""The renewal schedule: every subscription coming to term (domains and
options), each with "renew for 1 year" or "cancel", validated as one
selection. The renewals become one order to pay; the cancellations take
effect at once (the subscription ends at its term, no more reminders).
Domains past expiry but not deleted are listed too (the "domains being
deleted"), with a restore instead of a renewal when the fee applies.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import lifecycle
from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import InvalidRequest
from billing.names import shown
from billing.orders import ItemKind, OrderItem, create_order
from billing.prices import Product, load_price_book
from storage.models.billing import Domain, DomainOption, DomainStatus, OptionStatus, Order
from storage.zones import Actor


class EntryKind(enum.StrEnum):
    DOMAIN = "domain"
    OPTION = "option"


class Action(enum.StrEnum):
    RENEW = "renew"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    kind: EntryKind
    id: int
    domain: str  # shown
    product: str  # "renew" for a domain, the option's product
    expires_on: date
    status: str
    offer: lifecycle.Offer
    price_cents: int | None  # renewal (+ restore fee) before VAT; None: ask support
    cancel_at_term: bool


@dataclass(frozen=True, slots=True)
class Selection:
    kind: EntryKind
    id: int
    action: Action


@dataclass(frozen=True, slots=True)
class SelectionResult:
    order: Order | None
    cancelled: tuple[str, ...]


async def schedule(
    session: AsyncSession, config: BillingConfig, account_id: int, today: date, *,
    names: frozenset[str] | None = None,
) -> list[ScheduleEntry]:
    horizon = today + timedelta(days=config.renewal_window_days)
    query = select(Domain).where(
        Domain.account_id == account_id, Domain.status != DomainStatus.DELETED,
        Domain.expires_on <= horizon,
    ).order_by(Domain.expires_on, Domain.name)
    if names is not None:
        query = query.where(Domain.name.in_(names))
    domains = list((await session.execute(query)).scalars())
    book = await load_price_book(session, account_id)
    entries: list[ScheduleEntry] = []
    for d in domains:
        offer = lifecycle.plan(config.profile(d.profile), d.expires_on, today).offer
        if offer is lifecycle.Offer.NONE:
            continue
        renew = book.get(d.extension, Product.RENEW)
        fee = book.get(d.extension, Product.RESTORE) if offer is lifecycle.Offer.RESTORE else 0
        price = None if renew is None or fee is None else renew + fee
        entries.append(ScheduleEntry(EntryKind.DOMAIN, d.id, shown(d.name), Product.RENEW.value,
                                     d.expires_on, d.status.value, offer, price,
                                     d.cancel_at_term))
    option_query = (
        select(DomainOption, Domain)
        .join(Domain, Domain.id == DomainOption.domain_id)
        .where(Domain.account_id == account_id, Domain.status != DomainStatus.DELETED,
               DomainOption.status == OptionStatus.ACTIVE, DomainOption.expires_on <= horizon)
        .order_by(DomainOption.expires_on)
    )
    if names is not None:
        option_query = option_query.where(Domain.name.in_(names))
    for option, d in (await session.execute(option_query)):
        entries.append(ScheduleEntry(
            EntryKind.OPTION, option.id, shown(d.name), option.product, option.expires_on,
            option.status.value, lifecycle.Offer.RENEW,
            book.get(d.extension, Product(option.product)), option.cancel_at_term,
        ))
    return sorted(entries, key=lambda e: (e.expires_on, e.domain, e.kind.value))


async def apply_selection(
    session: AsyncSession, config: BillingConfig, account_id: int,
    selections: Sequence[Selection], actor: Actor, today: date, *,
    names: frozenset[str] | None = None,
) -> SelectionResult:
    """Check the whole selection first (every reason at once), then order and cancel."""
    entries = {(e.kind, e.id): e for e in await schedule(session, config, account_id, today,
                                                          names=names)}
    reasons: list[str] = []
    seen: set[tuple[EntryKind, int]] = set()
    items: list[OrderItem] = []
    cancels: list[ScheduleEntry] = []
    if not selections:
        reasons.append("select at least one subscription")
    for sel in selections:
        key = (sel.kind, sel.id)
        entry = entries.get(key)
        if key in seen:
            reasons.append(f"{sel.kind.value} {sel.id} is selected twice")
            continue
        seen.add(key)
        if entry is None:
            reasons.append(f"{sel.kind.value} {sel.id} is not in your renewal schedule")
            continue
        if sel.action is Action.CANCEL:
            cancels.append(entry)
        elif entry.kind is EntryKind.OPTION:
            items.append(OrderItem(ItemKind.OPTION, entry.domain, product=entry.product))
        elif entry.offer is lifecycle.Offer.RESTORE:
            items.append(OrderItem(ItemKind.RESTORE, entry.domain))
        else:
            items.append(OrderItem(ItemKind.RENEW, entry.domain))
    cancelled_domains = {e.domain for e in cancels if e.kind is EntryKind.DOMAIN}
    for item in items:
        if item.kind is ItemKind.OPTION and item.domain in cancelled_domains:
            reasons.append(f"{item.domain}: an option cannot be renewed on a domain you cancel")
    for entry in cancels:
        if entry.kind is EntryKind.DOMAIN and entry.offer is not lifecycle.Offer.RENEW:
            reasons.append(f"{entry.domain} is past its term: leave it or restore it")
    if reasons:
        raise InvalidRequest(reasons)
    order = await create_order(session, config, account_id, items, actor, today) if items \
        else None
    done: list[str] = []
    for entry in cancels:
        await _cancel(session, entry, actor)
        done.append(entry.domain if entry.kind is EntryKind.DOMAIN
                    else f"{entry.domain} {entry.product}")
    return SelectionResult(order, tuple(done))


async def _cancel(session: AsyncSession, entry: ScheduleEntry, actor: Actor) -> None:
    if entry.kind is EntryKind.DOMAIN:
        row: Domain | DomainOption | None = await session.get(
            Domain, entry.id, with_for_update=True)
        name = entry.domain
        account_id = row.account_id if isinstance(row, Domain) else None
    else:
        row = await session.get(DomainOption, entry.id, with_for_update=True)
        name = f"{entry.domain} {entry.product}"
        domain = await session.get(Domain, row.domain_id) if row is not None else None
        account_id = domain.account_id if domain is not None else None
    if row is None or row.cancel_at_term:
        return
    row.cancel_at_term = True
    audit(session, actor, f"billing.{entry.kind.value}.cancel", entry.kind.value, name,
          account_id=account_id, after={"cancel_at_term": True,
                                        "expires_on": entry.expires_on.isoformat()})

"""What a paid order does: checked first as a whole, then applied.

`check()` runs before any money is recorded, so an order that can no
longer be served (its domain was deleted meanwhile, a renewal now needs a
restore) is refused without an invoice. `apply()` then changes the
portfolio at once (a renewal brings the zone and the aliases back in the
same transaction) and hands the registry's part to the gateway; the order
is done when the gateway has nothing left open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import lifecycle
from billing.audit import audit
from billing.config import BillingConfig
from billing.gateway import RegistryGateway, RegistryOp, RegistryRequest
from billing.names import shown
from billing.orders import LineKind
from billing.portfolio import add_domain, get_domain
from billing.prices import Product
from storage import aliases
from storage.models import ZoneStatus
from storage.models.billing import (
    Domain,
    DomainOption,
    DomainStatus,
    OptionStatus,
    Order,
    OrderLine,
    OrderStatus,
)
from storage.zones import SYSTEM, Actor, get_zone, set_zone_status

_REVIVED = (DomainStatus.EXPIRED, DomainStatus.SUSPENDED, DomainStatus.REDEMPTION)


async def check(
    session: AsyncSession, config: BillingConfig, order: Order, lines: Sequence[OrderLine],
    today: date,
) -> list[str]:
    """Every reason why the order cannot be served on `today` (empty: it can)."""
    reasons: list[str] = []
    restores = {ln.domain_name for ln in lines if ln.kind == LineKind.RESTORE}
    for ln in lines:
        kind = LineKind(ln.kind)
        domain = await get_domain(session, ln.domain_name)
        name = shown(ln.domain_name)
        if kind in (LineKind.REGISTER, LineKind.TRANSFER_IN):
            if domain is not None:
                reasons.append(f"{name} is already in a portfolio")
            continue
        if domain is None or domain.account_id != order.account_id:
            reasons.append(f"{name} is no longer in the portfolio")
            continue
        offer = lifecycle.plan(
            config.profile(domain.profile), domain.expires_on, today
        ).offer
        if offer is lifecycle.Offer.NONE:
            reasons.append(f"{name} was deleted")
        elif kind is LineKind.RENEW and offer is lifecycle.Offer.RESTORE and (
            ln.domain_name not in restores
        ):
            reasons.append(f"{name} is in redemption now: it needs a restore, not a renewal")
    return reasons


async def apply(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, order: Order,
    lines: Sequence[OrderLine], today: date, actor: Actor,
) -> None:
    all_done = True
    for ln in lines:
        done = await _apply_line(session, config, gateway, order, ln, today, actor)
        ln.done = done
        all_done = all_done and done
    order.status = OrderStatus.DONE if all_done else OrderStatus.IN_PROGRESS
    if all_done:
        order.completed_at = datetime.now(UTC)


async def _apply_line(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, order: Order,
    ln: OrderLine, today: date, actor: Actor,
) -> bool:
    kind = LineKind(ln.kind)

    def request(op: RegistryOp, **payload: object) -> RegistryRequest:
        return RegistryRequest(op, ln.domain_name, order.account_id, order.id, dict(payload))

    if kind in (LineKind.REGISTER, LineKind.TRANSFER_IN):
        await add_domain(
            session, config, account_id=order.account_id, name=ln.domain_name,
            expires_on=lifecycle.renewed_expiry(today, ln.years), actor=actor, today=today,
        )
        op = RegistryOp.REGISTER if kind is LineKind.REGISTER else RegistryOp.TRANSFER_IN
        return (await gateway.submit(session, request(op, years=ln.years, **ln.params),
                                     actor)).done
    domain = await get_domain(session, ln.domain_name, for_update=True)
    assert domain is not None  # check() ran in this transaction
    if kind is LineKind.RENEW:
        await renew(session, domain, ln.years, today, actor)
        return (await gateway.submit(session, request(RegistryOp.RENEW, years=ln.years),
                                     actor)).done
    if kind is LineKind.RESTORE:
        return (await gateway.submit(session, request(RegistryOp.RESTORE), actor)).done
    if kind is LineKind.OPTION:
        await add_option(session, domain, Product(ln.product), ln.years, today, actor)
        return True
    # OWNER_CHANGE
    before = domain.owner_contact_id
    domain.owner_contact_id = int(ln.params["owner_contact_id"])
    audit(session, actor, "billing.domain.owner", "domain", domain.name,
          account_id=domain.account_id, before=before, after=domain.owner_contact_id)
    return (await gateway.submit(
        session, request(RegistryOp.OWNER_CHANGE, owner_contact_id=domain.owner_contact_id),
        actor,
    )).done


async def renew(
    session: AsyncSession, domain: Domain, years: int, today: date, actor: Actor
) -> None:
    """Extend the expiry from the previous date and bring a lapsed domain back at once."""
    before = {"expires_on": domain.expires_on.isoformat(), "status": domain.status.value}
    domain.expires_on = lifecycle.renewed_expiry(domain.expires_on, years)
    domain.cancel_at_term = False
    if domain.status in _REVIVED:
        domain.status = DomainStatus.ACTIVE
        domain.status_since = today
    domain.updated_at = datetime.now(UTC)
    zone = await get_zone(session, domain.name)
    if zone is not None and zone.status is ZoneStatus.SUSPENDED:
        await set_zone_status(session, domain.name, ZoneStatus.ACTIVE, SYSTEM)
    audit(session, actor, "billing.domain.renew", "domain", domain.name,
          account_id=domain.account_id, before=before,
          after={"expires_on": domain.expires_on.isoformat(), "status": domain.status.value})


async def add_option(
    session: AsyncSession, domain: Domain, product: Product, years: int, today: date,
    actor: Actor,
) -> DomainOption:
    option = (await session.execute(
        select(DomainOption).where(DomainOption.domain_id == domain.id,
                                   DomainOption.product == product.value).with_for_update()
    )).scalar_one_or_none()
    if option is None:
        option = DomainOption(domain_id=domain.id, product=product.value,
                              status=OptionStatus.ACTIVE, starts_on=today,
                              expires_on=lifecycle.renewed_expiry(today, years))
        session.add(option)
    elif option.status is OptionStatus.ACTIVE and option.expires_on >= today:
        option.expires_on = lifecycle.renewed_expiry(option.expires_on, years)
        option.cancel_at_term = False
    else:
        option.status = OptionStatus.ACTIVE
        option.starts_on = today
        option.expires_on = lifecycle.renewed_expiry(today, years)
        option.cancel_at_term = False
    await session.flush()
    audit(session, actor, "billing.option.active", "domain", domain.name,
          account_id=domain.account_id,
          after={"product": product.value, "expires_on": option.expires_on.isoformat()})
    await apply_option_effect(session, domain.name, product, True, actor)
    return option


async def apply_option_effect(
    session: AsyncSession, domain_name: str, product: Product, active: bool, actor: Actor
) -> bool:
    """Make the service agree with the option; False when the zone is not hosted here."""
    if product is not Product.MAIL_REDIRECT_PACK:
        return True
    try:
        if not active:  # never create a mail service just to switch its pack off
            current = await aliases.get_mail_service(session, shown(domain_name))
            if current is None or not current.redirect_pack:
                return True
        await aliases.set_mail_service(
            session, shown(domain_name), redirect_pack=active, actor=actor
        )
    except aliases.DomainNotHosted:
        return False
    return True

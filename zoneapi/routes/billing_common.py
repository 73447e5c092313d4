"""What the billing routes share: billing's runtime on the app, error
mapping, and which portfolio domains a caller may see or act on.

Rights follow the zone API's model: leaders and delegates hold every right
on their account's domains; a plain user holds the rights granted on the
domain's zone (a domain whose zone is not hosted here is the managers'
only). A narrowed token sees only its policies' domains.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.config import BillingConfig
from billing.errors import BillingError, InvalidRequest
from billing.gateway import RegistryGateway, WorkQueueGateway
from billing.names import canonical
from billing.provider import HostedPageProvider, PaymentProvider
from storage.models import BusinessUnit, Right, UserRight, UserRole, Zone
from storage.models.billing import Domain, DomainStatus
from zoneapi.access import require_sensitive
from zoneapi.auth import Principal
from zoneapi.errors import ApiError, Forbidden, NotFound
from zoneapi.keys import Context
from zoneapi.policy import IPNetwork, Operation, SensitiveKind, parse_networks, token_may_see_zone


@dataclass(frozen=True, slots=True)
class BillingRuntime:
    config: BillingConfig
    gateway: RegistryGateway
    provider: PaymentProvider | None

    @classmethod
    def from_config(cls, config: BillingConfig) -> BillingRuntime:
        provider = HostedPageProvider(config.provider) if config.provider is not None else None
        return cls(config, WorkQueueGateway(), provider)


BILLING = web.AppKey("billing.runtime", BillingRuntime)


def install_billing(app: web.Application, config: BillingConfig) -> None:
    """Give the API the deployment's billing config (zonehost calls this before serving)."""
    app[BILLING] = BillingRuntime.from_config(config)


def runtime(request: web.Request) -> BillingRuntime:
    return request.app[BILLING]


def today(ctx: Context) -> date:
    return ctx.clock.now().date()


@contextmanager
def billing_errors() -> Iterator[None]:
    """Billing's refusals as the API's JSON errors, with every reason listed."""
    try:
        yield
    except BillingError as exc:
        extra: dict[str, object] = {}
        if isinstance(exc, InvalidRequest):
            extra["reasons"] = exc.reasons
        raise ApiError(exc.status, exc.code, str(exc), extra=extra) from None


async def visible_names(
    session: AsyncSession, principal: Principal, right: Right = Right.VIEW
) -> frozenset[str] | None:
    """The domain names the caller holds `right` on; None: all of the account's."""
    if principal.role in (UserRole.LEADER, UserRole.DELEGATE):
        if principal.token is None or not principal.token.narrowed:
            return None
        names = (await session.execute(
            select(Domain.name).where(Domain.account_id == principal.account_id)
        )).scalars()
        return frozenset(n for n in names if token_may_see_zone(principal.token, n))
    query = (select(Zone.name).join(UserRight, UserRight.zone_id == Zone.id)
             .where(UserRight.user_id == principal.user_id,
                    Zone.account_id == principal.account_id))
    if right is not Right.VIEW:  # any granted right implies viewing
        query = query.where(UserRight.right == right)
    names = (await session.execute(query)).scalars()
    return frozenset(n for n in names if token_may_see_zone(principal.token, n))


async def domain_access(
    session: AsyncSession, principal: Principal, name_text: str, right: Right,
    *, for_update: bool = False,
) -> Domain:
    """The caller's live domain: 404 when it may not see it, 403 without `right`."""
    with billing_errors():
        name = canonical(name_text)
    query = select(Domain).where(Domain.name == name, Domain.status != DomainStatus.DELETED,
                                 Domain.account_id == principal.account_id)
    if for_update:
        query = query.with_for_update()
    domain = (await session.execute(query)).scalar_one_or_none()
    seen = await visible_names(session, principal, Right.VIEW)
    if domain is None or (seen is not None and name not in seen):
        raise NotFound(f"domain {name} not found", code="domain_not_found")
    if right is not Right.VIEW:
        refuse_narrowed_token(principal, f"{right.value} on {name}")
    allowed = await visible_names(session, principal, right)
    if allowed is not None and name not in allowed:
        raise Forbidden("right_missing", f"you lack the right {right.value} on {name}",
                        right=right.value)
    return domain


async def require_domain_sensitive(
    session: AsyncSession, ctx: Context, principal: Principal, kind: SensitiveKind,
    domain: Domain,
) -> None:
    """The sensitive-action gate, with the domain's business unit allowlist too."""
    extra: tuple[IPNetwork, ...] = ()
    if domain.business_unit_id is not None:
        unit = await session.get(BusinessUnit, domain.business_unit_id)
        if unit is not None:
            extra = parse_networks(unit.ip_allowlist or ())
    await require_sensitive(session, ctx, principal, Operation(kind, domain.name), extra)


def require_manager(principal: Principal, what: str) -> None:
    if principal.role not in (UserRole.LEADER, UserRole.DELEGATE):
        raise Forbidden("manager_required", f"{what} is for the account's leader or delegates")
    refuse_narrowed_token(principal, what)


def refuse_narrowed_token(principal: Principal, what: str) -> None:
    """Rule `token_scope`: a token narrowed to some records (deSEC-style
    policies) may read the portfolio but never order, cancel, transfer or
    change a delegation: those are not record edits."""
    if principal.token is not None and principal.token.narrowed:
        raise Forbidden("token_scope", f"a token narrowed by policies may not do this: {what}")

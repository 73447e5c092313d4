"""The domain portfolio: domains, contacts, views with filters, CSV export,
transfer lock and code, and delegation changes handed to the registry.

A domain is linked to its hosted zone by name: it exists in the portfolio
whether or not the zone is hosted here.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import dns.name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import lifecycle
from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import InvalidRequest, NotFound
from billing.gateway import RegistryGateway, RegistryOp, RegistryRequest
from billing.i18n import text
from billing.names import canonical, extension_of, shown
from billing.prices import PriceBook, Product, load_price_book
from billing.sealing import seal, unseal
from storage.models import Account, BusinessUnit, Zone, ZoneStatus
from storage.models.billing import Contact, Domain, DomainOption, DomainStatus, OptionStatus
from storage.zones import Actor

PLAN = "Basic Plus"  # one registration plan, whatever the extension
MAX_NAMESERVERS = 13


class DomainNotFound(NotFound):
    """This domain is not in the portfolio."""


@dataclass(frozen=True, slots=True)
class ContactInfo:
    id: int
    name: str
    email: str
    organisation: str = ""


@dataclass(frozen=True, slots=True)
class OptionView:
    id: int
    product: str
    status: OptionStatus
    expires_on: date
    cancel_at_term: bool


@dataclass(frozen=True, slots=True)
class DomainView:
    id: int
    name: str  # shown, no trailing dot
    extension: str
    plan: str
    status: DomainStatus
    expires_on: date
    profile: str
    hosted: bool
    zone_status: ZoneStatus | None
    owner: ContactInfo | None
    admin: ContactInfo | None
    billing: ContactInfo | None
    business_unit_id: int | None
    business_unit: str | None
    locked: bool
    nameservers: tuple[str, ...]
    cancel_at_term: bool
    options: tuple[OptionView, ...]
    offer: lifecycle.Offer
    renew_cents: int | None  # what renewing costs this account today (None: no price)
    restore_fee_cents: int | None


@dataclass(frozen=True, slots=True)
class PortfolioFilter:
    status: DomainStatus | None = None
    extension: str | None = None
    business_unit_id: int | None = None
    expires_before: date | None = None
    search: str | None = None  # a substring of the name
    names: frozenset[str] | None = None  # only these (canonical): a user's visible domains
    include_deleted: bool = False


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str  # canonical, trailing dot
    addresses: tuple[str, ...] = field(default=())  # glue, only for hosts inside the domain


async def add_contact(
    session: AsyncSession, account_id: int, name: str, email: str, *, organisation: str = "",
    phone: str | None = None, country: str = "FR", postal_address: str = "",
) -> int:
    reasons = []
    if not name.strip():
        reasons.append("a contact needs a name")
    if "@" not in email or len(email) > 320:
        reasons.append(f"invalid e-mail address {email!r}")
    if reasons:
        raise InvalidRequest(reasons)
    contact = Contact(
        account_id=account_id, name=name.strip(), email=email.strip(),
        organisation=organisation, phone=phone, country=country.upper(),
        postal_address=postal_address,
    )
    session.add(contact)
    await session.flush()
    return contact.id


async def get_domain(
    session: AsyncSession, name: str, *, for_update: bool = False
) -> Domain | None:
    """The live (not deleted) portfolio domain called `name`."""
    query = select(Domain).where(
        Domain.name == canonical(name), Domain.status != DomainStatus.DELETED
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def find_domain(
    session: AsyncSession, name: str, *, account_id: int | None = None, for_update: bool = False
) -> Domain:
    """The live domain `name`, of `account_id` when given (else DomainNotFound)."""
    domain = await get_domain(session, name, for_update=for_update)
    if domain is None or (account_id is not None and domain.account_id != account_id):
        raise DomainNotFound(f"{shown(canonical(name))} is not in the portfolio")
    return domain


async def _check_contacts(
    session: AsyncSession, account_id: int, contact_ids: Sequence[int | None]
) -> list[str]:
    wanted = {c for c in contact_ids if c is not None}
    if not wanted:
        return []
    found = set((await session.execute(
        select(Contact.id).where(Contact.id.in_(wanted), Contact.account_id == account_id)
    )).scalars())
    return [f"contact {c} is not a contact of this account" for c in sorted(wanted - found)]


async def add_domain(
    session: AsyncSession, config: BillingConfig, *, account_id: int, name: str,
    expires_on: date, actor: Actor, owner_contact_id: int | None = None,
    admin_contact_id: int | None = None, billing_contact_id: int | None = None,
    business_unit_id: int | None = None, profile: str | None = None, locked: bool = True,
    transfer_code: str | None = None, today: date | None = None,
) -> Domain:
    """Put a domain in the portfolio (an operator import, or a paid registration)."""
    canon = canonical(name)
    ext = extension_of(canon)
    reasons = await _check_contacts(
        session, account_id, [owner_contact_id, admin_contact_id, billing_contact_id]
    )
    if await session.get(Account, account_id) is None:
        reasons.append(f"account {account_id} does not exist")
    if business_unit_id is not None:
        unit = await session.get(BusinessUnit, business_unit_id)
        if unit is None or unit.account_id != account_id:
            reasons.append(f"business unit {business_unit_id} is not a unit of this account")
    profile_name = profile or config.profile_for(ext).name
    if profile_name not in config.profiles:
        reasons.append(f"unknown lifecycle profile {profile_name!r}")
    if await get_domain(session, canon) is not None:
        reasons.append(f"{shown(canon)} is already in the portfolio")
    if reasons:
        raise InvalidRequest(reasons)
    domain = Domain(
        name=canon, extension=ext, account_id=account_id, business_unit_id=business_unit_id,
        plan=PLAN, profile=profile_name, expires_on=expires_on, status=DomainStatus.ACTIVE,
        status_since=today or datetime.now(UTC).date(), owner_contact_id=owner_contact_id,
        admin_contact_id=admin_contact_id, billing_contact_id=billing_contact_id,
        locked=locked, nameservers=[],
        transfer_code_enc=seal(config.secret_key, transfer_code) if transfer_code else None,
    )
    session.add(domain)
    await session.flush()
    audit(session, actor, "billing.domain.add", "domain", canon, account_id=account_id,
          after={"expires_on": expires_on.isoformat(), "profile": profile_name})
    return domain


async def set_expiry(
    session: AsyncSession, domain: Domain, expires_on: date, actor: Actor
) -> None:
    """An operator correction (e.g. the registry's date after a transfer in)."""
    before = domain.expires_on.isoformat()
    domain.expires_on = expires_on
    domain.updated_at = datetime.now(UTC)
    audit(session, actor, "billing.domain.expiry", "domain", domain.name,
          account_id=domain.account_id, before=before, after=expires_on.isoformat())


async def list_domains(
    session: AsyncSession, config: BillingConfig, account_id: int | None,
    filters: PortfolioFilter, today: date,
) -> list[DomainView]:
    query = select(Domain).order_by(Domain.name)
    if account_id is not None:
        query = query.where(Domain.account_id == account_id)
    if filters.status is not None:
        query = query.where(Domain.status == filters.status)
    elif not filters.include_deleted:
        query = query.where(Domain.status != DomainStatus.DELETED)
    if filters.extension:
        query = query.where(Domain.extension == filters.extension.lower().strip("."))
    if filters.business_unit_id is not None:
        query = query.where(Domain.business_unit_id == filters.business_unit_id)
    if filters.expires_before is not None:
        query = query.where(Domain.expires_on <= filters.expires_before)
    if filters.search:
        needle = filters.search.lower().strip().rstrip(".")
        query = query.where(Domain.name.contains(needle, autoescape=True))
    if filters.names is not None:
        query = query.where(Domain.name.in_(filters.names))
    domains = list((await session.execute(query)).scalars())
    return await views(session, config, domains, today)


async def views(
    session: AsyncSession, config: BillingConfig, domains: Sequence[Domain], today: date
) -> list[DomainView]:
    """Render domains with their contacts, units, options, zone and prices (few queries)."""
    if not domains:
        return []
    ids = [d.id for d in domains]
    contact_ids = {
        c for d in domains
        for c in (d.owner_contact_id, d.admin_contact_id, d.billing_contact_id) if c is not None
    }
    contacts = {
        c.id: ContactInfo(c.id, c.name, c.email, c.organisation)
        for c in (await session.execute(
            select(Contact).where(Contact.id.in_(contact_ids))
        )).scalars()
    } if contact_ids else {}
    unit_ids = {d.business_unit_id for d in domains if d.business_unit_id is not None}
    units = dict((await session.execute(
        select(BusinessUnit.id, BusinessUnit.name).where(BusinessUnit.id.in_(unit_ids))
    )).all()) if unit_ids else {}
    zones = dict((await session.execute(
        select(Zone.name, Zone.status).where(Zone.name.in_([d.name for d in domains]))
    )).all())
    options: dict[int, list[OptionView]] = {}
    for o in (await session.execute(
        select(DomainOption).where(DomainOption.domain_id.in_(ids)).order_by(DomainOption.id)
    )).scalars():
        options.setdefault(o.domain_id, []).append(
            OptionView(o.id, o.product, o.status, o.expires_on, o.cancel_at_term)
        )
    books: dict[int, PriceBook] = {}
    result = []
    for d in domains:
        if d.account_id not in books:
            books[d.account_id] = await load_price_book(session, d.account_id)
        book = books[d.account_id]
        profile = config.profile(d.profile)
        plan = lifecycle.plan(profile, d.expires_on, today, cancelled=d.cancel_at_term)
        offer = lifecycle.Offer.NONE if d.status is DomainStatus.DELETED else plan.offer
        result.append(DomainView(
            id=d.id, name=shown(d.name), extension=d.extension, plan=d.plan, status=d.status,
            expires_on=d.expires_on, profile=d.profile, hosted=d.name in zones,
            zone_status=zones.get(d.name),
            owner=contacts.get(d.owner_contact_id or 0),
            admin=contacts.get(d.admin_contact_id or 0),
            billing=contacts.get(d.billing_contact_id or 0),
            business_unit_id=d.business_unit_id, business_unit=units.get(d.business_unit_id or 0),
            locked=d.locked, nameservers=tuple(str(n["host"]) for n in d.nameservers),
            cancel_at_term=d.cancel_at_term, options=tuple(options.get(d.id, ())),
            offer=offer, renew_cents=book.get(d.extension, Product.RENEW),
            restore_fee_cents=book.get(d.extension, Product.RESTORE),
        ))
    return result


CSV_COLUMNS = (
    "domain", "plan", "status", "expires_on", "owner", "admin", "billing", "business_unit",
    "options", "locked", "hosted",
)


def to_csv(domains: Sequence[DomainView], language: str = "en") -> str:
    """The portfolio as CSV (UTF-8, header in the account's language)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([text(language, f"csv.{c}") for c in CSV_COLUMNS])
    for d in domains:
        writer.writerow([
            _cell(d.name), d.plan, text(language, f"status.{d.status.value}"),
            d.expires_on.isoformat(),
            _cell(d.owner.email if d.owner else ""), _cell(d.admin.email if d.admin else ""),
            _cell(d.billing.email if d.billing else ""), _cell(d.business_unit or ""),
            " ".join(o.product for o in d.options if o.status is OptionStatus.ACTIVE),
            "yes" if d.locked else "no", "yes" if d.hosted else "no",
        ])
    return out.getvalue()


def _cell(value: str) -> str:
    """No spreadsheet formula injection from customer-chosen text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def set_lock(
    session: AsyncSession, gateway: RegistryGateway, domain: Domain, locked: bool, actor: Actor
) -> bool:
    """Lock or unlock the domain for transfer (a sensitive, audited action)."""
    if domain.locked == locked:
        return False
    domain.locked = locked
    domain.updated_at = datetime.now(UTC)
    op = RegistryOp.LOCK if locked else RegistryOp.UNLOCK
    audit(session, actor, f"billing.domain.{op.value}", "domain", domain.name,
          account_id=domain.account_id, before={"locked": not locked}, after={"locked": locked})
    await gateway.submit(session, RegistryRequest(op, domain.name, domain.account_id), actor)
    return True


async def reveal_transfer_code(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, domain: Domain,
    actor: Actor,
) -> str | None:
    """The transfer code (audited), or None after asking the registry for one."""
    if domain.transfer_code_enc:
        audit(session, actor, "billing.domain.transfer_code.reveal", "domain", domain.name,
              account_id=domain.account_id)
        return unseal(config.secret_key, domain.transfer_code_enc)
    audit(session, actor, "billing.domain.transfer_code.request", "domain", domain.name,
          account_id=domain.account_id)
    await gateway.submit(
        session, RegistryRequest(RegistryOp.TRANSFER_CODE, domain.name, domain.account_id),
        actor,
    )
    return None


def store_transfer_code(config: BillingConfig, domain: Domain, code: str) -> None:
    if not code.strip() or len(code) > 128:
        raise InvalidRequest(["a transfer code has 1 to 128 characters"])
    domain.transfer_code_enc = seal(config.secret_key, code.strip())


def parse_nameservers(domain_name: str, items: Sequence[tuple[str, Sequence[str]]]
                      ) -> list[Nameserver]:
    """Validate a delegation: hosts, glue exactly for hosts inside the domain."""
    reasons: list[str] = []
    origin = dns.name.from_text(domain_name)
    result: list[Nameserver] = []
    seen: set[str] = set()
    if len(items) == 1 or len(items) > MAX_NAMESERVERS:
        reasons.append(f"a delegation has 2 to {MAX_NAMESERVERS} name servers (none: ours)")
    for host_text, addresses in items:
        try:
            host = canonical(host_text)
        except InvalidRequest as exc:
            reasons.extend(exc.reasons)
            continue
        if host in seen:
            reasons.append(f"{shown(host)} is listed twice")
        seen.add(host)
        inside = dns.name.from_text(host).is_subdomain(origin)
        glue: list[str] = []
        for address in addresses:
            try:
                glue.append(str(ipaddress.ip_address(address.strip())))
            except ValueError:
                reasons.append(f"{shown(host)}: invalid address {address!r}")
        if inside and not glue:
            reasons.append(f"{shown(host)} is inside the domain: it needs glue addresses")
        if not inside and glue:
            reasons.append(f"{shown(host)} is outside the domain: glue is not allowed")
        result.append(Nameserver(host, tuple(glue)))
    if reasons:
        raise InvalidRequest(reasons)
    return result


async def change_nameservers(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, domain: Domain,
    nameservers: Sequence[Nameserver], actor: Actor,
) -> list[str]:
    """Set the delegation (empty: the platform's name servers) and hand it to the registry."""
    before = list(domain.nameservers)
    after = [{"host": n.host, "addresses": list(n.addresses)} for n in nameservers]
    if before == after:
        return [str(n["host"]) for n in after] or list(config.nameservers)
    domain.nameservers = after
    domain.updated_at = datetime.now(UTC)
    audit(session, actor, "billing.domain.nameservers", "domain", domain.name,
          account_id=domain.account_id, before=before, after=after)
    effective = [n["host"] for n in after] or [canonical(h) for h in config.nameservers]
    await gateway.submit(session, RegistryRequest(
        RegistryOp.NAMESERVERS, domain.name, domain.account_id,
        payload={"nameservers": after or [{"host": h, "addresses": []} for h in effective]},
    ), actor)
    return [str(h) for h in effective]


async def recipients(
    session: AsyncSession, domain: Domain, roles: Sequence[lifecycle.Recipient]
) -> list[str]:
    """The e-mail addresses of the domain's contacts in `roles` (account e-mail as fallback)."""
    by_role = {
        lifecycle.Recipient.OWNER: domain.owner_contact_id,
        lifecycle.Recipient.ADMIN: domain.admin_contact_id,
        lifecycle.Recipient.BILLING: domain.billing_contact_id,
    }
    ids = {by_role[r] for r in roles if by_role[r] is not None}
    emails = dict((await session.execute(
        select(Contact.id, Contact.email).where(Contact.id.in_(ids))
    )).all()) if ids else {}
    result: list[str] = []
    fallback: str | None = None
    for role in roles:
        contact_id = by_role[role]
        email = emails.get(contact_id) if contact_id is not None else None
        if email is None:
            if fallback is None:
                account = await session.get(Account, domain.account_id)
                fallback = account.primary_email if account else ""
            email = fallback
        if email and email not in result:
            result.append(email)
    return result

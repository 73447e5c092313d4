"""Hosting a new zone for a domain of the caller's portfolio.

Zones come from the registrar's side: a domain registered (or transferred
in) through billing is in the account's portfolio, and its leader or a
delegate then asks for it to be hosted here. The new zone holds the SOA
(the system's) and the apex NS of the platform's name servers, the ones
billing delegates the domain to by default; it belongs to the domain's
business unit, and starts suspended when the domain is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype
from sqlalchemy.ext.asyncio import AsyncSession

from billing.portfolio import get_domain
from storage import zones as store
from storage.dnsdata import API_RULES, DnsDataError, parse_rrset, zone_origin
from storage.models import BusinessUnit, Zone, ZoneStatus
from storage.models.billing import DomainStatus
from zoneapi.access import actor_of, enforce, require_active, require_sensitive
from zoneapi.auth import Principal
from zoneapi.errors import Conflict, NotFound, Unprocessable
from zoneapi.keys import Context
from zoneapi.policy import Operation, SensitiveKind, can_host_zone, parse_networks

NS_TTL_S = 3600
# A domain in these states is not served: its new zone starts suspended too.
_NOT_SERVED = frozenset({DomainStatus.SUSPENDED, DomainStatus.REDEMPTION})


@dataclass(frozen=True, slots=True)
class Hosted:
    zone: Zone
    result: store.WriteResult


def default_soa(nameservers: Sequence[str]) -> store.SoaFields:
    """The first name server is the primary; hostmaster@ its parent domain."""
    mname = dns_name(nameservers[0])
    parent = mname.parent() if len(mname.labels) > 2 else mname
    return store.SoaFields(mname=mname.to_text(), rname=("hostmaster." + parent.to_text()))


def dns_name(text: str) -> dns.name.Name:
    try:
        return zone_origin(text)
    except DnsDataError as exc:
        raise Unprocessable("invalid_nameservers", f"bad name server {text!r}: {exc}") from None


async def host_zone(session: AsyncSession, ctx: Context, principal: Principal, name: str,
                    nameservers: Sequence[str]) -> Hosted:
    """Create the zone `name` (canonical) for the caller's portfolio domain.

    404 `domain_not_found` unless the domain is in the caller's portfolio
    (another client's domain looks exactly like a missing one), 409
    `zone_exists` if it is hosted already.
    """
    require_active(principal)
    enforce(can_host_zone(principal.role, principal.token, name))
    domain = await get_domain(session, name)
    if domain is None or domain.account_id != principal.account_id:
        raise NotFound(f"{name} is not a domain of your account", code="domain_not_found")
    unit = (await session.get(BusinessUnit, domain.business_unit_id)
            if domain.business_unit_id is not None else None)
    unit_allowlist = parse_networks(unit.ip_allowlist or ()) if unit is not None else ()
    await require_sensitive(session, ctx, principal,
                            Operation(SensitiveKind.EDIT_NAMESERVERS, name), unit_allowlist)
    if not nameservers:
        raise Unprocessable("invalid_nameservers", "the platform has no name servers configured")
    origin = zone_origin(name)
    ns = parse_rrset(origin, origin, dns.rdatatype.NS, NS_TTL_S,
                     [dns_name(n).to_text() for n in nameservers], API_RULES)
    actor = actor_of(principal)
    try:
        result = await store.create_zone(session, origin, default_soa(nameservers), actor,
                                         account_id=principal.account_id, rrsets=[ns])
    except store.ZoneExists:
        raise Conflict("zone_exists", f"{name} is hosted already") from None
    zone = await store.find_zone(session, name)
    zone.business_unit_id = domain.business_unit_id
    if domain.status in _NOT_SERVED:
        result = await store.set_zone_status(session, name, ZoneStatus.SUSPENDED, actor)
    await session.flush()
    return Hosted(zone, result)


"""Mail aliases: the address rules and the lookups shared by the forwarder,
the zone API and the command line.

An alias `local@domain` forwards to one or more target addresses. It only
works while the domain's zone is hosted here, active, and has the mail
service; a target gets mail only once its owner has confirmed it (or an
operator vouched for it). The plan allows `BASE_QUOTA` aliases per domain,
`PACK_QUOTA` with the mail-redirect pack option.

Addresses are strict on purpose: a dot-atom local part without `%` or `!`
(no percent hack, no bang paths), no quoted local parts, no source routes,
no IP literals, so no address trick can make the forwarder relay.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Protocol

import idna
from sqlalchemy import delete, func, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, RRset, Zone, ZoneChange, ZoneStatus
from storage.models.core import Record
from storage.models.mail import (
    MailAlias,
    MailAliasTarget,
    MailChange,
    MailService,
    TargetState,
)

BASE_QUOTA = 5
PACK_QUOTA = 50
MAX_TARGETS = 10
TOKEN_TTL = timedelta(days=7)
RESEND_INTERVAL = timedelta(minutes=10)  # confirmation mails to one target, at most this often
_MAIL_FEED_LOCK_KEY = 0x6D61696C  # "mail": serialises mail feed appends on PostgreSQL

# RFC 5322 atext without '%' and '!' (relay tricks), plus '.' between atoms.
_ATOM = r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]+"
_LOCAL_RE = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


# -- errors -----------------------------------------------------------------


class AliasError(Exception):
    """An alias operation was refused."""


class InvalidAddress(AliasError):
    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid address {text!r}: {reason}")
        self.text = text
        self.reason = reason


class DomainNotHosted(AliasError):
    def __init__(self, domain: str) -> None:
        super().__init__(f"domain {domain} is not hosted here")
        self.domain = domain


class QuotaExceeded(AliasError):
    def __init__(self, domain: str, limit: int) -> None:
        super().__init__(f"domain {domain} already has its {limit} aliases")
        self.domain = domain
        self.limit = limit


class TooManyTargets(AliasError):
    def __init__(self, address: str) -> None:
        super().__init__(f"alias {address} would have more than {MAX_TARGETS} targets")
        self.address = address


class AliasNotFound(AliasError):
    def __init__(self, address: str) -> None:
        super().__init__(f"alias {address} does not exist")
        self.address = address


class TargetNotFound(AliasError):
    def __init__(self, address: str, target: str) -> None:
        super().__init__(f"alias {address} has no target {target}")
        self.address = address
        self.target = target


class ResendTooSoon(AliasError):
    def __init__(self, target: str, retry_after: timedelta) -> None:
        super().__init__(f"a confirmation mail went to {target} less than "
                         f"{int(RESEND_INTERVAL.total_seconds() // 60)} minutes ago")
        self.target = target
        self.retry_after = retry_after


class TargetAlreadyVerified(AliasError):
    def __init__(self, target: str) -> None:
        super().__init__(f"{target} is confirmed already")
        self.target = target


class InvalidToken(AliasError):
    """The confirmation link is unknown, already used or expired."""

    def __init__(self) -> None:
        super().__init__("the confirmation link is unknown, already used or expired")


class AliasLoop(AliasError):
    def __init__(self, address: str) -> None:
        super().__init__(f"alias {address} cannot forward to itself")
        self.address = address


# -- addresses --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """A normalised mailbox address: lower-case local part, A-label domain."""

    local: str
    domain: str  # no trailing dot

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def zone_name(self) -> str:
        return f"{self.domain}."


def normalise_domain(text: str) -> str:
    """An A-label, lower-case domain without trailing dot; InvalidAddress if not a host name."""
    raw = text.strip()
    if raw.startswith("[") or raw.endswith("]"):
        raise InvalidAddress(text, "IP literals are not accepted")
    raw = raw.removesuffix(".")
    if not raw:
        raise InvalidAddress(text, "empty domain")
    try:
        ascii_name = raw.lower() if raw.isascii() else idna.encode(raw, uts46=True).decode()
    except idna.IDNAError as exc:
        raise InvalidAddress(text, f"bad domain: {exc}") from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253:
        raise InvalidAddress(text, "not a fully qualified domain")
    if not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidAddress(text, "bad domain label")
    if labels[-1].isdigit():
        raise InvalidAddress(text, "IP addresses are not accepted")
    return ascii_name


def parse_address(text: str) -> Address:
    """Parse `local@domain` (with or without angle brackets), refusing relay tricks."""
    raw = text.strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    if not raw:
        raise InvalidAddress(text, "empty address")
    if raw.startswith("@") or ":" in raw:
        raise InvalidAddress(text, "source routes are not accepted")
    if '"' in raw or "\\" in raw:
        raise InvalidAddress(text, "quoted local parts are not accepted")
    local, at, domain = raw.rpartition("@")
    if not at or not local:
        raise InvalidAddress(text, "no local part or domain")
    if "@" in local:
        raise InvalidAddress(text, "more than one @")
    if "%" in local or "!" in local:
        raise InvalidAddress(text, "'%' and '!' are not accepted (relay tricks)")
    if len(local) > 64:
        raise InvalidAddress(text, "local part longer than 64 characters")
    if not _LOCAL_RE.match(local):
        raise InvalidAddress(text, "local part is not a plain dot-atom")
    return Address(local.lower(), normalise_domain(domain))


# -- results ----------------------------------------------------------------


class RcptOutcome(enum.Enum):
    ACCEPT = "accept"
    UNKNOWN_ALIAS = "unknown_alias"  # 550 5.1.1
    NOT_HOSTED = "not_hosted"  # 550 5.7.1 relay denied
    SUSPENDED = "suspended"  # 550 5.7.1 relay denied
    NO_MAIL_SERVICE = "no_mail_service"  # 550 5.7.1 relay denied
    UNCONFIRMED = "unconfirmed"  # 450 4.2.1: no target is confirmed yet


@dataclass(frozen=True, slots=True)
class AliasLookup:
    outcome: RcptOutcome
    address: Address
    alias: Address | None = None  # the alias matched (may drop a +tag)
    targets: tuple[str, ...] = ()  # verified targets only


@dataclass(frozen=True, slots=True)
class TargetInfo:
    id: int
    address: str
    state: TargetState
    verified_at: datetime | None
    confirmation_sent_at: datetime | None = None  # the last confirmation mail (pending only)


@dataclass(frozen=True, slots=True)
class AliasInfo:
    id: int
    address: Address
    created_at: datetime
    targets: tuple[TargetInfo, ...]


@dataclass(frozen=True, slots=True)
class MailServiceInfo:
    domain: str
    enabled: bool
    redirect_pack: bool
    quota: int
    alias_count: int
    aliases_sensitive: bool = False  # the account wants a second factor for alias changes


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """What a confirmation link is about, shown before it is used."""

    alias: str
    target: str


@dataclass(frozen=True, slots=True)
class ConfirmationRequest:
    """A target to ask for confirmation; `token` exists only here and in the mail."""

    target_id: int
    alias: str
    target: str
    token: str


class AuditActor(Protocol):
    """Who acts (storage.zones.Actor fits)."""

    @property
    def label(self) -> str: ...
    @property
    def account_id(self) -> int | None: ...
    @property
    def user_id(self) -> int | None: ...
    @property
    def source_ip(self) -> str | None: ...
    @property
    def credential(self) -> str | None: ...


def quota_for(redirect_pack: bool) -> int:
    return PACK_QUOTA if redirect_pack else BASE_QUOTA


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- lookup (the forwarder's RCPT check) ------------------------------------


@dataclass(frozen=True, slots=True)
class DomainMail:
    """Everything the RCPT check needs about one domain, read in one go.

    The forwarder caches these per domain, so that a dictionary attack on
    random local parts or a burst of mail to one alias costs no query.
    """

    domain: str  # A-label, no trailing dot
    state: RcptOutcome  # ACCEPT when mail may flow, else why not (relay denied)
    aliases: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # local part -> verified targets (empty: none confirmed yet)

    def lookup(self, address: Address) -> AliasLookup:
        if self.state is not RcptOutcome.ACCEPT:
            return AliasLookup(self.state, address)
        candidates = [address.local]
        if "+" in address.local.strip("+"):  # alias+tag@ reaches alias@
            candidates.append(address.local.split("+", 1)[0])
        for local in candidates:
            targets = self.aliases.get(local)
            if targets is None:
                continue
            alias = Address(local, address.domain)
            if not targets:
                return AliasLookup(RcptOutcome.UNCONFIRMED, address, alias)
            return AliasLookup(RcptOutcome.ACCEPT, address, alias, targets)
        return AliasLookup(RcptOutcome.UNKNOWN_ALIAS, address)


async def load_domain_mail(session: AsyncSession, domain: str) -> DomainMail:
    """The domain's state and all its aliases (at most PACK_QUOTA), in two queries."""
    row = (
        await session.execute(
            select(Zone.id, Zone.status, MailService.enabled)
            .outerjoin(MailService, MailService.zone_id == Zone.id)
            .where(Zone.name == f"{domain}.")
        )
    ).one_or_none()
    if row is None:
        return DomainMail(domain, RcptOutcome.NOT_HOSTED)
    zone_id, status, enabled = row
    if status != ZoneStatus.ACTIVE:
        return DomainMail(domain, RcptOutcome.SUSPENDED)
    if not enabled:
        return DomainMail(domain, RcptOutcome.NO_MAIL_SERVICE)
    rows = (
        await session.execute(
            select(MailAlias.local_part, MailAliasTarget.address, MailAliasTarget.state)
            .outerjoin(MailAliasTarget, MailAliasTarget.alias_id == MailAlias.id)
            .where(MailAlias.zone_id == zone_id)
        )
    ).all()
    verified: dict[str, list[str]] = {}
    for local, target, state in rows:
        found = verified.setdefault(local, [])
        if target and state == TargetState.VERIFIED:
            found.append(target)
    return DomainMail(domain, RcptOutcome.ACCEPT, MappingProxyType(
        {local: tuple(sorted(targets)) for local, targets in verified.items()}
    ))


async def lookup_alias(session: AsyncSession, address: Address) -> AliasLookup:
    """Decide what to do with mail for `address`, in at most two queries."""
    return (await load_domain_mail(session, address.domain)).lookup(address)


# -- the mail change feed (what the forwarders' caches follow) ---------------


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """How far a follower has read: the last zone change and the last mail change."""

    zone_change_id: int
    mail_change_id: int


@dataclass(frozen=True, slots=True)
class ChangedDomains:
    position: FeedPosition
    domains: frozenset[str]  # A-labels without trailing dot
    everything: bool = False  # too many to list: forget every domain


async def feed_position(session: AsyncSession) -> FeedPosition:
    zone_id = await session.scalar(select(func.max(ZoneChange.id)))
    mail_id = await session.scalar(select(func.max(MailChange.id)))
    return FeedPosition(int(zone_id or 0), int(mail_id or 0))


async def changed_domains(
    session: AsyncSession, since: FeedPosition, limit: int = 1000
) -> ChangedDomains:
    """Domains whose RCPT answers may have changed after `since` (zone or mail writes),
    read from both feeds in one statement."""
    zones = (
        select(ZoneChange.id, ZoneChange.zone_name, literal(0).label("feed"))
        .where(ZoneChange.id > since.zone_change_id).order_by(ZoneChange.id).limit(limit)
        .subquery()
    )
    mails = (
        select(MailChange.id, MailChange.zone_name, literal(1).label("feed"))
        .where(MailChange.id > since.mail_change_id).order_by(MailChange.id).limit(limit)
        .subquery()
    )
    rows = (await session.execute(
        union_all(select(zones.c.id, zones.c.zone_name, zones.c.feed),
                  select(mails.c.id, mails.c.zone_name, mails.c.feed))
    )).all()
    zone_ids = [r[0] for r in rows if r[2] == 0]
    mail_ids = [r[0] for r in rows if r[2] == 1]
    if len(zone_ids) >= limit or len(mail_ids) >= limit:
        return ChangedDomains(await feed_position(session), frozenset(), everything=True)
    position = FeedPosition(max(zone_ids, default=since.zone_change_id),
                            max(mail_ids, default=since.mail_change_id))
    return ChangedDomains(position, frozenset(r[1].rstrip(".").lower() for r in rows))


async def _record_change(session: AsyncSession, zone_name: str) -> None:
    """Append to the mail feed inside the caller's transaction.

    On PostgreSQL the appends are serialised by an advisory lock held to
    commit, so ids become visible in order and a follower that has read up
    to id N never misses a smaller id committed later.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_MAIL_FEED_LOCK_KEY)))
    await session.execute(insert(MailChange).values(zone_name=zone_name,
                                                    created_at=datetime.now(UTC)))


async def prune_changes(session: AsyncSession, older_than: timedelta) -> int:
    """Forget feed rows older than `older_than`, always keeping the newest (ids stay monotonic)."""
    newest = select(func.max(MailChange.id)).scalar_subquery()
    result = await session.execute(
        delete(MailChange).where(MailChange.created_at < datetime.now(UTC) - older_than,
                                 MailChange.id < newest)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- the mail service of a domain -------------------------------------------


async def _hosted_zone(session: AsyncSession, domain: str) -> Zone:
    zone = (
        await session.execute(select(Zone).where(Zone.name == f"{domain}."))
    ).scalar_one_or_none()
    if zone is None:
        raise DomainNotHosted(domain)
    return zone


async def _service(session: AsyncSession, zone_id: int, *, create: bool) -> MailService | None:
    service = (
        await session.execute(select(MailService).where(MailService.zone_id == zone_id))
    ).scalar_one_or_none()
    if service is None and create:
        service = MailService(zone_id=zone_id, enabled=True, redirect_pack=False,
                              aliases_sensitive=False)
        session.add(service)
        await session.flush()
    return service


async def _alias_count(session: AsyncSession, zone_id: int) -> int:
    count = await session.scalar(
        select(func.count(MailAlias.id)).where(MailAlias.zone_id == zone_id)
    )
    return int(count or 0)


def _settings(service: MailService) -> dict[str, bool]:
    return {"enabled": service.enabled, "redirect_pack": service.redirect_pack,
            "aliases_sensitive": service.aliases_sensitive}


async def _service_info(session: AsyncSession, name: str, zone_id: int,
                        service: MailService) -> MailServiceInfo:
    return MailServiceInfo(name, service.enabled, service.redirect_pack,
                           quota_for(service.redirect_pack),
                           await _alias_count(session, zone_id), service.aliases_sensitive)


async def set_mail_service(
    session: AsyncSession, domain: str, *, enabled: bool | None = None,
    redirect_pack: bool | None = None, aliases_sensitive: bool | None = None,
    actor: AuditActor | None = None,
) -> MailServiceInfo:
    """Create or change a domain's mail service (billing sets the pack option)."""
    name = normalise_domain(domain)
    zone = await _hosted_zone(session, name)
    service = await _service(session, zone.id, create=True)
    assert service is not None
    before = _settings(service)
    if enabled is not None:
        service.enabled = enabled
    if redirect_pack is not None:
        service.redirect_pack = redirect_pack
    if aliases_sensitive is not None:
        service.aliases_sensitive = aliases_sensitive
    service.updated_at = datetime.now(UTC)
    after = _settings(service)
    if before != after:
        _audit(session, actor, "mail_service", "mail_service", name, before, after,
               zone.account_id)
        await _record_change(session, zone.name)
    return await _service_info(session, name, zone.id, service)


async def get_mail_service(session: AsyncSession, domain: str) -> MailServiceInfo | None:
    name = normalise_domain(domain)
    zone = await _hosted_zone(session, name)
    service = await _service(session, zone.id, create=False)
    if service is None:
        return None
    return await _service_info(session, name, zone.id, service)


async def zone_mx_hosts(session: AsyncSession, domain: str) -> list[str]:
    """The MX exchanges at the zone's apex, lower case without trailing dot."""
    name = normalise_domain(domain)
    rows = await session.execute(
        select(Record.content)
        .join(RRset, Record.rrset_id == RRset.id)
        .join(Zone, RRset.zone_id == Zone.id)
        .where(Zone.name == f"{name}.", RRset.name == f"{name}.", RRset.rdtype == 15)
    )
    hosts = []
    for (content,) in rows:
        parts = content.split()
        if len(parts) == 2:
            hosts.append(parts[1].lower().rstrip("."))
    return sorted(hosts)


# -- aliases ----------------------------------------------------------------


async def _find_alias(session: AsyncSession, address: Address) -> tuple[Zone, MailAlias | None]:
    zone = await _hosted_zone(session, address.domain)
    alias = (
        await session.execute(
            select(MailAlias).where(
                MailAlias.zone_id == zone.id, MailAlias.local_part == address.local
            )
        )
    ).scalar_one_or_none()
    return zone, alias


async def _targets(session: AsyncSession, alias_ids: Sequence[int]) -> dict[int, list[TargetInfo]]:
    grouped: dict[int, list[TargetInfo]] = {i: [] for i in alias_ids}
    if not alias_ids:
        return grouped
    rows = (
        await session.execute(
            select(MailAliasTarget)
            .where(MailAliasTarget.alias_id.in_(alias_ids))
            .order_by(MailAliasTarget.address)
        )
    ).scalars()
    for t in rows:
        grouped[t.alias_id].append(TargetInfo(
            t.id, t.address, t.state, t.verified_at,
            t.token_sent_at if t.state == TargetState.PENDING else None))
    return grouped


async def add_alias(
    session: AsyncSession, address: str, targets: Iterable[str], *, verified: bool = False,
    actor: AuditActor | None = None,
) -> AliasInfo:
    """Create the alias if needed (within the quota) and add the targets.

    New targets are pending (they get a confirmation mail) unless `verified`
    (an operator vouches for them). Adding a target already there is a no-op,
    except that `verified` confirms it. The domain gets the mail service if
    it had none.
    """
    alias_address = parse_address(address)
    target_addresses = sorted({str(parse_address(t)) for t in targets})
    if not target_addresses:
        raise InvalidAddress("", "an alias needs at least one target")
    if str(alias_address) in target_addresses:
        raise AliasLoop(str(alias_address))
    zone, alias = await _find_alias(session, alias_address)
    service = await _service(session, zone.id, create=True)
    assert service is not None
    changed = alias is None
    if alias is None:
        limit = quota_for(service.redirect_pack)
        if await _alias_count(session, zone.id) >= limit:
            raise QuotaExceeded(alias_address.domain, limit)
        alias = MailAlias(zone_id=zone.id, local_part=alias_address.local)
        session.add(alias)
        await session.flush()
    existing = {
        t.address: t
        for t in (
            await session.execute(
                select(MailAliasTarget).where(MailAliasTarget.alias_id == alias.id)
            )
        ).scalars()
    }
    if len(set(existing) | set(target_addresses)) > MAX_TARGETS:
        raise TooManyTargets(str(alias_address))
    now = datetime.now(UTC)
    added = []
    for target in target_addresses:
        row = existing.get(target)
        if row is None:
            row = MailAliasTarget(alias_id=alias.id, address=target, state=TargetState.PENDING)
            session.add(row)
            added.append(target)
        if verified and row.state != TargetState.VERIFIED:
            row.state = TargetState.VERIFIED
            row.verified_at = now
            row.token_hash = None
            changed = True
    await session.flush()
    if added:
        _audit(session, actor, "alias_add", "mail_alias", str(alias_address), None,
               {"targets": added, "verified": verified}, zone.account_id)
    if changed or added:
        await _record_change(session, zone.name)
    return (await _alias_infos(session, [alias], alias_address.domain))[0]


async def _alias_infos(
    session: AsyncSession, aliases: Sequence[MailAlias], domain: str
) -> list[AliasInfo]:
    targets = await _targets(session, [a.id for a in aliases])
    return [
        AliasInfo(a.id, Address(a.local_part, domain), a.created_at, tuple(targets[a.id]))
        for a in aliases
    ]


async def remove_alias(
    session: AsyncSession, address: str, *, actor: AuditActor | None = None
) -> None:
    alias_address = parse_address(address)
    zone, alias = await _find_alias(session, alias_address)
    if alias is None:
        raise AliasNotFound(str(alias_address))
    await session.execute(delete(MailAlias).where(MailAlias.id == alias.id))
    _audit(session, actor, "alias_remove", "mail_alias", str(alias_address), None, None,
           zone.account_id)
    await _record_change(session, zone.name)


async def remove_target(
    session: AsyncSession, address: str, target: str, *, actor: AuditActor | None = None
) -> None:
    """Remove one target; removing the last one removes the alias."""
    alias_address = parse_address(address)
    target_address = str(parse_address(target))
    zone, alias = await _find_alias(session, alias_address)
    if alias is None:
        raise AliasNotFound(str(alias_address))
    result = await session.execute(
        delete(MailAliasTarget).where(
            MailAliasTarget.alias_id == alias.id, MailAliasTarget.address == target_address
        )
    )
    if getattr(result, "rowcount", 0) == 0:
        raise TargetNotFound(str(alias_address), target_address)
    left = await session.scalar(
        select(func.count(MailAliasTarget.id)).where(MailAliasTarget.alias_id == alias.id)
    )
    if not left:
        await session.execute(delete(MailAlias).where(MailAlias.id == alias.id))
    _audit(session, actor, "alias_target_remove", "mail_alias", str(alias_address),
           {"target": target_address}, None, zone.account_id)
    await _record_change(session, zone.name)


async def replace_targets(
    session: AsyncSession, address: str, targets: Iterable[str], *,
    actor: AuditActor | None = None,
) -> AliasInfo:
    """Make the alias forward to exactly `targets`: targets kept keep their state
    (a confirmed one stays confirmed), new ones are pending, the others go."""
    alias_address = parse_address(address)
    wanted = sorted({str(parse_address(t)) for t in targets})
    if not wanted:
        raise InvalidAddress("", "an alias needs at least one target")
    if len(wanted) > MAX_TARGETS:
        raise TooManyTargets(str(alias_address))
    if str(alias_address) in wanted:
        raise AliasLoop(str(alias_address))
    zone, alias = await _find_alias(session, alias_address)
    if alias is None:
        raise AliasNotFound(str(alias_address))
    existing = {
        t.address: t
        for t in (await session.execute(
            select(MailAliasTarget).where(MailAliasTarget.alias_id == alias.id)
        )).scalars()
    }
    removed = sorted(set(existing) - set(wanted))
    added = [t for t in wanted if t not in existing]
    if removed:
        await session.execute(delete(MailAliasTarget).where(
            MailAliasTarget.alias_id == alias.id, MailAliasTarget.address.in_(removed)))
    for target in added:
        session.add(MailAliasTarget(alias_id=alias.id, address=target,
                                    state=TargetState.PENDING))
    await session.flush()
    if removed or added:
        _audit(session, actor, "alias_targets", "mail_alias", str(alias_address),
               {"targets": sorted(existing)}, {"targets": wanted}, zone.account_id)
        await _record_change(session, zone.name)
    return (await _alias_infos(session, [alias], alias_address.domain))[0]


async def get_alias(session: AsyncSession, address: str) -> AliasInfo | None:
    alias_address = parse_address(address)
    _, alias = await _find_alias(session, alias_address)
    if alias is None:
        return None
    return (await _alias_infos(session, [alias], alias_address.domain))[0]


async def list_aliases(session: AsyncSession, domain: str | None = None) -> list[AliasInfo]:
    """Every alias of `domain` (or of every domain), by address."""
    query = select(MailAlias, Zone.name).join(Zone, MailAlias.zone_id == Zone.id)
    if domain is not None:
        name = normalise_domain(domain)
        await _hosted_zone(session, name)
        query = query.where(Zone.name == f"{name}.")
    rows = (await session.execute(query.order_by(Zone.name, MailAlias.local_part))).all()
    targets = await _targets(session, [a.id for a, _ in rows])
    return [
        AliasInfo(a.id, Address(a.local_part, zone_name.rstrip(".")), a.created_at,
                  tuple(targets[a.id]))
        for a, zone_name in rows
    ]


# -- target confirmation ----------------------------------------------------


async def claim_confirmations(session: AsyncSession, limit: int = 20) -> list[ConfirmationRequest]:
    """Give a fresh token to pending targets whose confirmation mail is not sent.

    Call inside the write transaction that queues the mails, so a token is
    recorded exactly when its mail is.
    """
    rows = (
        await session.execute(
            select(MailAliasTarget, MailAlias.local_part, Zone.name)
            .join(MailAlias, MailAliasTarget.alias_id == MailAlias.id)
            .join(Zone, MailAlias.zone_id == Zone.id)
            .where(
                MailAliasTarget.state == TargetState.PENDING,
                MailAliasTarget.token_sent_at.is_(None),
            )
            .order_by(MailAliasTarget.id)
            .limit(limit)
        )
    ).all()
    now = datetime.now(UTC)
    requests = []
    for target, local, zone_name in rows:
        token = secrets.token_urlsafe(24)
        target.token_hash = hash_token(token)
        target.token_sent_at = now
        requests.append(
            ConfirmationRequest(target.id, f"{local}@{zone_name.rstrip('.')}", target.address,
                                token)
        )
    await session.flush()
    return requests


async def resend_confirmation(session: AsyncSession, address: str, target: str) -> None:
    """Send a new confirmation link (the old one stops working)."""
    alias_address = parse_address(address)
    target_address = str(parse_address(target))
    _, alias = await _find_alias(session, alias_address)
    if alias is None:
        raise AliasNotFound(str(alias_address))
    row = (
        await session.execute(
            select(MailAliasTarget).where(
                MailAliasTarget.alias_id == alias.id, MailAliasTarget.address == target_address
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise TargetNotFound(str(alias_address), target_address)
    if row.state != TargetState.PENDING:
        raise TargetAlreadyVerified(target_address)
    if row.token_sent_at is not None:
        wait = _aware(row.token_sent_at) + RESEND_INTERVAL - datetime.now(UTC)
        if wait > timedelta(0):  # no flooding a stranger's mailbox through us
            raise ResendTooSoon(target_address, wait)
    row.token_hash = None
    row.token_sent_at = None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite: naive UTC


async def _pending_row(
    session: AsyncSession, token: str
) -> tuple[MailAliasTarget, str, str]:
    """The pending target a live token belongs to, with its alias's local part and zone."""
    if not token or len(token) > 200:
        raise InvalidToken()
    row = (await session.execute(
        select(MailAliasTarget, MailAlias.local_part, Zone.name)
        .join(MailAlias, MailAlias.id == MailAliasTarget.alias_id)
        .join(Zone, Zone.id == MailAlias.zone_id)
        .where(MailAliasTarget.token_hash == hash_token(token))
    )).one_or_none()
    if row is None:
        raise InvalidToken()
    target, local, zone_name = row
    if target.state != TargetState.PENDING or target.token_sent_at is None:
        raise InvalidToken()
    if datetime.now(UTC) - _aware(target.token_sent_at) > TOKEN_TTL:
        raise InvalidToken()
    return target, local, zone_name


async def peek_confirmation(session: AsyncSession, token: str) -> PendingConfirmation:
    """What the link would confirm, without confirming it (link scanners only look)."""
    target, local, zone_name = await _pending_row(session, token)
    return PendingConfirmation(f"{local}@{zone_name.rstrip('.')}", target.address)


async def confirm_target(session: AsyncSession, token: str) -> TargetInfo:
    """Confirm the target whose link carried `token`; InvalidToken otherwise."""
    row, _, zone_name = await _pending_row(session, token)
    now = datetime.now(UTC)
    row.state = TargetState.VERIFIED
    row.verified_at = now
    row.token_hash = None
    await session.flush()
    await _record_change(session, zone_name)
    return TargetInfo(row.id, row.address, row.state, row.verified_at)


# -- audit ------------------------------------------------------------------


def _audit(
    session: AsyncSession, actor: AuditActor | None, action: str, object_type: str,
    object_name: str, before: object, after: object, account_id: int | None,
) -> None:
    session.add(
        AuditEntry(
            account_id=account_id if actor is None or actor.account_id is None
            else actor.account_id,
            user_id=None if actor is None else actor.user_id,
            actor="operator" if actor is None else actor.label,
            source_ip=None if actor is None else actor.source_ip,
            credential=None if actor is None else actor.credential,
            action=action,
            object_type=object_type,
            object_name=object_name,
            before=before,
            after=after,
        )
    )

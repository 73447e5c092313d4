"""Who may do what: pure rules, no I/O.

Each rule is a small function returning a `Decision` with a stable code
(`right_missing`, `token_scope`, `account_pending`, ...) that the API puts
in its 403 answer. Rights come from the role (a leader or delegate holds
every right on every zone of the account; a plain user holds what was
granted per zone; any right implies viewing the zone), narrowed by the
token's policies when the caller uses a scoped token.

Token policies follow deSEC: each policy names a domain, a subname and a
record type (each may be None, meaning any) and whether it allows writes.
For a given (domain, subname, type) the most specific matching policy wins
(a domain match counts more than a subname match, which counts more than a
type match); no matching policy means no access.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from storage.models import AccountStatus, Right, UserRole

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALL_RIGHTS = frozenset(Right)
MANAGER_ROLES = frozenset({UserRole.LEADER, UserRole.DELEGATE})


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    code: str = "ok"
    detail: str = ""


ALLOW = Decision(True)


def deny(code: str, detail: str) -> Decision:
    return Decision(False, code, detail)


class SensitiveKind(enum.StrEnum):
    """Actions that need an allowlisted address or a fresh second factor."""

    EDIT_ZONE = "edit_zone"
    EDIT_NAMESERVERS = "edit_nameservers"
    TRANSFER = "transfer"
    CANCEL = "cancel"
    SECURITY = "security"  # allowlists, second factors, tokens, passwords, sub-accounts


@dataclass(frozen=True, slots=True)
class Operation:
    """A sensitive action on a target; an SMS code approves exactly one."""

    kind: SensitiveKind
    target: str = ""  # a zone name, or "" for account-wide actions

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.target}"

    @classmethod
    def from_key(cls, key: str) -> Operation | None:
        kind, sep, target = key.partition(":")
        try:
            return cls(SensitiveKind(kind), target) if sep else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    domain: str | None  # canonical zone name ("example.com.") or None: any
    subname: str | None  # relative owner ("", "www", "*.dev") or None: any
    rdtype: str | None  # "A", "MX", ... or None: any
    write: bool = False

    def matches(self, domain: str, subname: str | None, rdtype: str | None) -> bool:
        return (
            (self.domain is None or self.domain == domain)
            and (self.subname is None or self.subname == subname)
            and (self.rdtype is None or self.rdtype == rdtype)
        )

    @property
    def specificity(self) -> tuple[bool, bool, bool]:
        return (self.domain is not None, self.subname is not None, self.rdtype is not None)


@dataclass(frozen=True, slots=True)
class TokenScope:
    token_id: int
    policies: tuple[TokenPolicy, ...]  # empty: the user's own rights, unnarrowed
    perm_manage: bool  # may change account and security settings
    allowed_subnets: tuple[IPNetwork, ...]

    @property
    def narrowed(self) -> bool:
        return bool(self.policies)


@dataclass(frozen=True, slots=True)
class ZoneAccess:
    """A zone as the caller sees it, with the caller's rights on it."""

    zone_id: int
    name: str
    account_id: int | None
    business_unit_id: int | None
    rights: frozenset[Right]
    unit_allowlist: tuple[IPNetwork, ...] = ()  # the zone's business unit's


def effective_rights(
    role: UserRole, same_account: bool, granted: Iterable[Right]
) -> frozenset[Right]:
    """The caller's rights on a zone: by role, or as granted; any right implies VIEW."""
    if not same_account:
        return frozenset()
    if role in MANAGER_ROLES:
        return ALL_RIGHTS
    rights = frozenset(granted)
    return rights | {Right.VIEW} if rights else rights


def most_specific(
    policies: Iterable[TokenPolicy], domain: str, subname: str | None, rdtype: str | None
) -> TokenPolicy | None:
    best: TokenPolicy | None = None
    for policy in policies:
        if policy.matches(domain, subname, rdtype) and (
            best is None or policy.specificity > best.specificity
        ):
            best = policy
    return best


def token_may_see_zone(scope: TokenScope | None, domain: str) -> bool:
    if scope is None or not scope.narrowed:
        return True
    return any(p.domain is None or p.domain == domain for p in scope.policies)


def token_permits(
    scope: TokenScope | None, domain: str, subname: str, rdtype: str, *, write: bool
) -> Decision:
    """Rule `token_scope`: the token's most specific policy must allow it."""
    if scope is None or not scope.narrowed:
        return ALLOW
    policy = most_specific(scope.policies, domain, subname, rdtype)
    if policy is None or (write and not policy.write):
        what = "write" if write else "read"
        return deny("token_scope",
                    f"this token may not {what} {rdtype} records at '{subname or '@'}' of {domain}")
    return ALLOW


def account_active(status: AccountStatus) -> Decision:
    """Rule `account_pending` / `account_inactive`: only active accounts change anything."""
    if status == AccountStatus.ACTIVE:
        return ALLOW
    if status == AccountStatus.PENDING:
        return deny("account_pending", "the account is waiting for an operator's approval")
    return deny("account_inactive", f"the account is {status.value}")


def has_right(zone: ZoneAccess, right: Right) -> Decision:
    """Rule `right_missing`."""
    if right in zone.rights:
        return ALLOW
    return deny("right_missing", f"you lack the right {right.value} on {zone.name}")


def right_for_rrset(zone_name: str, owner: str, rdtype: str) -> Right:
    """Apex NS records are the delegation: a name-server change, not a zone edit."""
    return Right.EDIT_NAMESERVERS if owner == zone_name and rdtype == "NS" else Right.EDIT_ZONE


def can_write(
    zone: ZoneAccess, scope: TokenScope | None, owner: str, subname: str, rdtype: str
) -> Decision:
    """May the caller change RRset (owner, rdtype) of `zone`?"""
    decision = has_right(zone, right_for_rrset(zone.name, owner, rdtype))
    if not decision.allowed:
        return decision
    return token_permits(scope, zone.name, subname, rdtype, write=True)


def can_host_zone(role: UserRole, scope: TokenScope | None, domain: str) -> Decision:
    """Rule `manager_only` / `token_scope`: hosting a new zone sets its apex NS,
    so a token must be allowed to write them."""
    if role not in MANAGER_ROLES:
        return deny("manager_only", "only the account's leader and delegates may host a zone")
    return token_permits(scope, domain, "", "NS", write=True)


def can_manage_accounts(role: UserRole, scope: TokenScope | None) -> Decision:
    """Rule `manager_only` / `token_scope`: sub-accounts, units, rights, contact details."""
    if role not in MANAGER_ROLES:
        return deny("manager_only", "only the account's leader and delegates may do this")
    return can_change_security(scope)


def can_change_security(scope: TokenScope | None) -> Decision:
    """Rule `token_scope`: a token changes settings only with perm_manage and no policies."""
    if scope is None or (scope.perm_manage and not scope.narrowed):
        return ALLOW
    return deny("token_scope", "this token may not change account or security settings")


def allowlisted(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Stored CIDRs back into networks (bad entries are skipped, never fatal)."""
    networks: list[IPNetwork] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def cidr_problems(texts: Iterable[str]) -> list[str]:
    problems = []
    for text in texts:
        try:
            ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            problems.append(f"{text[:60]!r}: {exc}")
    return problems

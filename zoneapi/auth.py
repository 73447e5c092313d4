"""Credentials in, `Principal` out.

A request authenticates with `Authorization: Bearer <token>` (scripts) or
with the session cookie (the browser; unsafe methods then also need the
`X-CSRF-Token` header from the login answer). Both are looked up by the
SHA-256 digest of the secret through a unique index, in one query that
also loads the user, the account and the business unit's allowlist, so an
authenticated request costs one indexed read (plain driver SQL, no ORM
objects). `last_used_at` and `last_seen_at` are written at most once a
minute per credential.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web

from storage.models import AccountStatus, UserRole
from zoneapi.clock import aware
from zoneapi.crypto import digest, same
from zoneapi.errors import Forbidden, TooManyRequests, Unauthenticated
from zoneapi.keys import CONTEXT, Context
from zoneapi.policy import (
    IPAddress,
    IPNetwork,
    TokenPolicy,
    TokenScope,
    allowlisted,
    parse_networks,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
TOUCH_EVERY = timedelta(seconds=60)


class CredentialKind(enum.StrEnum):
    SESSION = "session"
    TOKEN = "token"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    account_id: int
    login: str
    email: str
    role: UserRole
    business_unit_id: int | None
    account_status: AccountStatus
    credential_kind: CredentialKind
    credential_id: int
    source_ip: IPAddress
    token: TokenScope | None  # set for bearer tokens
    account_allowlist: tuple[IPNetwork, ...]
    unit_allowlist: tuple[IPNetwork, ...]
    totp_enabled: bool
    mobile: str | None  # verified mobile number, if any
    account_email: str = ""  # the account's primary address (security notices go there too)

    @property
    def credential(self) -> str:
        """'session:3' or 'token:7': recorded in the audit log, never the secret."""
        return f"{self.credential_kind.value}:{self.credential_id}"

    @property
    def actor_label(self) -> str:
        return f"user:{self.user_id}"

    @property
    def is_manager(self) -> bool:
        return self.role in (UserRole.LEADER, UserRole.DELEGATE)

    def allowlists(self) -> tuple[IPNetwork, ...]:
        token = self.token.allowed_subnets if self.token is not None else ()
        return self.account_allowlist + self.unit_allowlist + token


PRINCIPAL = web.RequestKey("zoneapi.principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The caller of an endpoint declared with auth (the default)."""
    return request[PRINCIPAL]


def client_address(request: web.Request, trusted: tuple[IPNetwork, ...]) -> IPAddress:
    """The peer, or the last untrusted hop of X-Forwarded-For behind trusted proxies."""
    peer = _ip(request.remote) or ipaddress.IPv4Address("0.0.0.0")
    if not trusted or not allowlisted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break
        if not allowlisted(address, trusted):
            return address
    return peer


def _ip(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _networks(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """parse_networks() of a stored allowlist: the same lists come with every request."""
    return parse_networks(texts)


def source_address(request: web.Request) -> IPAddress:
    ctx = request.app[CONTEXT]
    return client_address(request, _networks(tuple(ctx.config.trusted_proxies)))


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def authenticate(request: web.Request) -> Principal:
    """The caller, or 401 (403 for a token used from a disallowed subnet)."""
    ctx = request.app[CONTEXT]
    address = source_address(request)
    token = bearer_token(request)
    if token is not None:
        return await _from_token(ctx, token, address)
    if request.headers.get("Authorization"):
        raise Unauthenticated("invalid_token", "use 'Authorization: Bearer <token>'")
    sid = request.cookies.get(ctx.config.cookie_name)
    if sid:
        principal, csrf = await _from_session(ctx, sid, address)
        if request.method not in SAFE_METHODS and not same(
            request.headers.get(CSRF_HEADER, ""), csrf
        ):
            raise Forbidden("csrf_failed",
                            f"unsafe requests with a session cookie need the {CSRF_HEADER} header "
                            "from the login answer")
        return principal
    raise Unauthenticated()


# The user, account and business-unit columns a Principal is made of.
_CALLER = (
    "u.id, u.account_id, u.login, u.email, u.role, u.business_unit_id,"
    " u.totp_confirmed_at IS NOT NULL, u.mobile, u.mobile_verified, u.disabled,"
    " a.status, a.ip_allowlist, a.primary_email, b.ip_allowlist"
)
_CALLER_JOINS = (
    " JOIN users u ON u.id = c.user_id JOIN accounts a ON a.id = u.account_id"
    " LEFT JOIN business_units b ON b.id = u.business_unit_id"
)
# Every request runs one of these: the credential by digest (a unique index),
# with its user, account and the user's business-unit allowlist, as plain
# driver SQL (storage.driver: no ORM objects).
_TOKEN_LOOKUP = (
    "SELECT c.id, c.revoked_at, c.expires_at, c.max_unused_s, c.last_used_at, c.created_at,"
    " c.allowed_subnets, c.policies, c.perm_manage, " + _CALLER + " FROM api_tokens c"
    + _CALLER_JOINS + " WHERE c.token_hash = $1"
)
_SESSION_LOOKUP = (
    "SELECT c.id, c.revoked_at, c.expires_at, c.last_seen_at, c.csrf_token, " + _CALLER
    + " FROM api_sessions c" + _CALLER_JOINS + " WHERE c.sid_hash = $1"
)
_TOUCH_TOKEN = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
_TOUCH_SESSION = "UPDATE api_sessions SET last_seen_at = $1 WHERE id = $2"


@dataclass(frozen=True, slots=True)
class _Caller:
    """The user and account columns of a credential lookup."""

    user_id: int
    account_id: int
    login: str
    email: str
    role: UserRole
    business_unit_id: int | None
    totp_enabled: bool
    mobile: str | None
    account_status: AccountStatus
    account_allowlist: list[str]
    account_email: str
    unit_allowlist: list[str]
    usable: bool

    @classmethod
    def of(cls, ctx: Context, row: Sequence[Any]) -> _Caller:
        (user_id, account_id, login, email, role, unit_id, totp, mobile, mobile_verified,
         disabled, status, account_allowlist, account_email, unit_allowlist) = row
        sql = ctx.db.sql
        account_status = AccountStatus(status)
        return cls(
            user_id=user_id, account_id=account_id, login=login, email=email,
            role=UserRole(role), business_unit_id=unit_id, totp_enabled=bool(totp),
            mobile=mobile if mobile_verified else None, account_status=account_status,
            account_allowlist=sql.json_out(account_allowlist) or [],
            account_email=account_email,
            unit_allowlist=(sql.json_out(unit_allowlist) if unit_allowlist is not None
                            else None) or [],
            usable=not disabled and account_status != AccountStatus.CLOSED,
        )

    def principal(self, kind: CredentialKind, credential_id: int, address: IPAddress,
                  scope: TokenScope | None) -> Principal:
        return Principal(
            user_id=self.user_id, account_id=self.account_id, login=self.login,
            email=self.email, role=self.role, business_unit_id=self.business_unit_id,
            account_status=self.account_status, credential_kind=kind,
            credential_id=credential_id, source_ip=address, token=scope,
            account_allowlist=_networks(tuple(self.account_allowlist)),
            unit_allowlist=_networks(tuple(self.unit_allowlist)),
            totp_enabled=self.totp_enabled, mobile=self.mobile,
            account_email=self.account_email,
        )


async def _touch(ctx: Context, sql: str, now: datetime, row_id: int) -> None:
    async with ctx.db.transaction() as tx:
        await tx.execute(sql, tx.time(now), row_id)


async def _from_token(ctx: Context, secret: str, address: IPAddress) -> Principal:
    if len(secret) > 200:
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    now = ctx.clock.now()
    row = await ctx.db.fetchrow(_TOKEN_LOOKUP, digest(secret))
    if row is None:
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    (token_id, revoked_at, expires_at, max_unused_s, last_used_at, created_at, subnets_json,
     policies_json, perm_manage) = row[:9]
    caller = _Caller.of(ctx, row[9:])
    sql = ctx.db.sql
    if revoked_at is not None or not caller.usable:
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    expires = sql.time_out(expires_at)
    if expires is not None and aware(expires) <= now:
        raise Unauthenticated("token_expired", "the token has expired")
    last = aware(sql.time_out(last_used_at) or sql.time_out(created_at))  # type: ignore[arg-type]
    if max_unused_s is not None and last + timedelta(seconds=max_unused_s) <= now:
        raise Unauthenticated("token_expired", "the token expired after going unused")
    subnets = _networks(tuple(sql.json_out(subnets_json) or ()))
    if subnets and not allowlisted(address, subnets):
        raise Forbidden("token_address_refused",
                        "this token may not be used from your address", address=str(address))
    wait_s = ctx.token_limiter.take(f"token:{token_id}")
    if wait_s > 0:
        raise TooManyRequests(int(wait_s) + 1)
    if now - last >= TOUCH_EVERY:
        await _touch(ctx, _TOUCH_TOKEN, now, token_id)
    scope = TokenScope(
        token_id=token_id, policies=tuple(_policy(p) for p in sql.json_out(policies_json) or ()),
        perm_manage=bool(perm_manage), allowed_subnets=subnets,
    )
    return caller.principal(CredentialKind.TOKEN, token_id, address, scope)


def _policy(raw: dict[str, Any]) -> TokenPolicy:
    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    return TokenPolicy(domain=text("domain"), subname=text("subname"), rdtype=text("type"),
                       write=bool(raw.get("write", False)))


async def _from_session(ctx: Context, sid: str, address: IPAddress) -> tuple[Principal, str]:
    if len(sid) > 200:
        raise Unauthenticated("session_expired", "the session has ended; log in again")
    now = ctx.clock.now()
    row = await ctx.db.fetchrow(_SESSION_LOOKUP, digest(sid))
    if row is None:
        raise Unauthenticated("session_expired", "the session has ended; log in again")
    session_id, revoked_at, expires_at, last_seen_at, csrf_token = row[:5]
    caller = _Caller.of(ctx, row[5:])
    sql = ctx.db.sql
    idle = timedelta(seconds=ctx.config.session_idle_s)
    last_seen = aware(sql.time_out(last_seen_at))  # type: ignore[arg-type]
    if (
        revoked_at is not None
        or aware(sql.time_out(expires_at)) <= now  # type: ignore[arg-type]
        or last_seen + idle <= now
        or not caller.usable
    ):
        raise Unauthenticated("session_expired", "the session has ended; log in again")
    if now - last_seen >= TOUCH_EVERY:
        await _touch(ctx, _TOUCH_SESSION, now, session_id)
    principal = caller.principal(CredentialKind.SESSION, session_id, address, None)
    return principal, str(csrf_token)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and aware(expires_at) <= now

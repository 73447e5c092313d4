"""Credentials in, `Principal` out.

A request authenticates with `Authorization: Bearer <token>` (scripts) or
with the session cookie (the browser; unsafe methods then also need the
`X-CSRF-Token` header from the login answer). Both are looked up by the
SHA-256 digest of the secret through a unique index, in one query that
also loads the user, the account and the business unit's allowlist, so an
authenticated request costs one indexed read. `last_used_at` and
`last_seen_at` are written at most once a minute per credential.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, select, update

from storage.models import Account, AccountStatus, BusinessUnit, User, UserRole
from storage.models.auth import ApiSession, ApiToken
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


def source_address(request: web.Request) -> IPAddress:
    ctx = request.app[CONTEXT]
    return client_address(request, parse_networks(ctx.config.trusted_proxies))


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


def _principal(
    user: User, account: Account, unit_allowlist: list[str] | None, kind: CredentialKind,
    credential_id: int, address: IPAddress, scope: TokenScope | None,
) -> Principal:
    return Principal(
        user_id=user.id, account_id=account.id, login=user.login, email=user.email,
        role=user.role, business_unit_id=user.business_unit_id, account_status=account.status,
        credential_kind=kind, credential_id=credential_id, source_ip=address, token=scope,
        account_allowlist=parse_networks(account.ip_allowlist or ()),
        unit_allowlist=parse_networks(unit_allowlist or ()),
        totp_enabled=user.totp_confirmed_at is not None,
        mobile=user.mobile if user.mobile_verified else None,
        account_email=account.primary_email,
    )


def _usable(user: User, account: Account) -> bool:
    return not user.disabled and account.status != AccountStatus.CLOSED


# Built once (every request runs one of them): the credential by digest,
# with its user, account and the user's business-unit allowlist.
_TOKEN_LOOKUP = (
    select(ApiToken, User, Account, BusinessUnit.ip_allowlist)
    .join(User, User.id == ApiToken.user_id)
    .join(Account, Account.id == User.account_id)
    .outerjoin(BusinessUnit, BusinessUnit.id == User.business_unit_id)
    .where(ApiToken.token_hash == bindparam("digest"))
)
_SESSION_LOOKUP = (
    select(ApiSession, User, Account, BusinessUnit.ip_allowlist)
    .join(User, User.id == ApiSession.user_id)
    .join(Account, Account.id == User.account_id)
    .outerjoin(BusinessUnit, BusinessUnit.id == User.business_unit_id)
    .where(ApiSession.sid_hash == bindparam("digest"))
)


async def _from_token(ctx: Context, secret: str, address: IPAddress) -> Principal:
    if len(secret) > 200:
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    now = ctx.clock.now()
    async with ctx.db.read() as session:
        row = (await session.execute(_TOKEN_LOOKUP, {"digest": digest(secret)})).first()
    if row is None:
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    token, user, account, unit_allowlist = row
    if token.revoked_at is not None or not _usable(user, account):
        raise Unauthenticated("invalid_token", "unknown or revoked token")
    if token.expires_at is not None and aware(token.expires_at) <= now:
        raise Unauthenticated("token_expired", "the token has expired")
    last = aware(token.last_used_at or token.created_at)
    if token.max_unused_s is not None and last + timedelta(seconds=token.max_unused_s) <= now:
        raise Unauthenticated("token_expired", "the token expired after going unused")
    subnets = parse_networks(token.allowed_subnets or ())
    if subnets and not allowlisted(address, subnets):
        raise Forbidden("token_address_refused",
                        "this token may not be used from your address", address=str(address))
    wait_s = ctx.token_limiter.take(f"token:{token.id}")
    if wait_s > 0:
        raise TooManyRequests(int(wait_s) + 1)
    if now - last >= TOUCH_EVERY:
        async with ctx.db.write() as session:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )
    scope = TokenScope(
        token_id=token.id, policies=tuple(_policy(p) for p in token.policies or ()),
        perm_manage=token.perm_manage, allowed_subnets=subnets,
    )
    return _principal(user, account, unit_allowlist, CredentialKind.TOKEN, token.id, address,
                      scope)


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
    async with ctx.db.read() as session:
        row = (await session.execute(_SESSION_LOOKUP, {"digest": digest(sid)})).first()
    if row is None:
        raise Unauthenticated("session_expired", "the session has ended; log in again")
    api_session, user, account, unit_allowlist = row
    idle = timedelta(seconds=ctx.config.session_idle_s)
    last_seen = aware(api_session.last_seen_at)
    if (
        api_session.revoked_at is not None
        or aware(api_session.expires_at) <= now
        or last_seen + idle <= now
        or not _usable(user, account)
    ):
        raise Unauthenticated("session_expired", "the session has ended; log in again")
    if now - last_seen >= TOUCH_EVERY:
        async with ctx.db.write() as session:
            await session.execute(
                update(ApiSession).where(ApiSession.id == api_session.id).values(last_seen_at=now)
            )
    principal = _principal(user, account, unit_allowlist, CredentialKind.SESSION,
                           api_session.id, address, None)
    return principal, api_session.csrf_token


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and aware(expires_at) <= now

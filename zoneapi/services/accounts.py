"""Accounts and their users: sign-up, approval, sub-accounts, rendering."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Account,
    AccountStatus,
    AuditEntry,
    Right,
    User,
    UserRight,
    UserRole,
    Zone,
)
from zoneapi.access import enforce
from zoneapi.auth import Principal
from zoneapi.errors import Conflict, NotFound, Unprocessable
from zoneapi.keys import Context
from zoneapi.passwords import password_problem
from zoneapi.policy import can_change_security, can_manage_accounts

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}[a-z0-9]$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")


class AccountError(Exception):
    """An account operation was refused (CLI side)."""


def normalise_login(text: str) -> str:
    return text.strip().lower()


def check_login(login: str) -> None:
    if not LOGIN.match(login):
        raise Unprocessable("invalid_login", "a login has 3-64 characters: letters, digits, "
                            "'.', '_' and '-', starting and ending with a letter or digit")


def check_email(email: str) -> None:
    if not EMAIL.match(email):
        raise Unprocessable("invalid_email", "not an e-mail address")


async def check_password(ctx: Context, password: str, login: str) -> None:
    problem = password_problem(password, login, ctx.config.min_password_chars)
    if problem:
        raise Unprocessable("weak_password", problem)


async def login_taken(session: AsyncSession, login: str) -> bool:
    found = await session.execute(select(User.id).where(func.lower(User.login) == login))
    return found.first() is not None


async def create_user(
    session: AsyncSession, ctx: Context, *, account_id: int, login: str, email: str,
    password: str, role: UserRole, business_unit_id: int | None = None,
) -> User:
    login = normalise_login(login)
    check_login(login)
    check_email(email)
    await check_password(ctx, password, login)
    if await login_taken(session, login):
        raise Conflict("login_taken", "this login is taken")
    user = User(
        account_id=account_id, business_unit_id=business_unit_id, login=login, email=email,
        role=role, password_hash=await ctx.passwords.hash(password), disabled=False,
        mobile_verified=False,
    )
    session.add(user)
    await session.flush()
    return user


async def sign_up(session: AsyncSession, ctx: Context, *, login: str, password: str,
                  email: str, name: str, country: str, postal_address: str,
                  phone: str | None) -> tuple[Account, User]:
    """A pending client account led by a new user; an operator approves it."""
    check_email(email)
    account = Account(
        name=name, status=AccountStatus.PENDING, primary_email=email, country=country.upper(),
        language="en", postal_address=postal_address, phone=phone, mobile_verified=False,
        ip_allowlist=[], created_at=ctx.clock.now(),
    )
    session.add(account)
    await session.flush()
    user = await create_user(session, ctx, account_id=account.id, login=login, email=email,
                             password=password, role=UserRole.LEADER)
    session.add(audit(account.id, user.id, f"user:{user.id}", None, None, "account.signup",
                      "account", name, None, {"login": user.login}))
    return account, user


async def approve(session: AsyncSession, login: str) -> Account:
    """Activate the account led by `login` (the operator's `zonehost account approve`)."""
    row = (await session.execute(
        select(User, Account).join(Account, Account.id == User.account_id)
        .where(func.lower(User.login) == normalise_login(login))
    )).first()
    if row is None:
        raise AccountError(f"no user {login!r}")
    user, account = row
    if account.status == AccountStatus.ACTIVE:
        raise AccountError(f"the account of {user.login} is already active")
    if account.status != AccountStatus.PENDING:
        raise AccountError(f"the account of {user.login} is {account.status.value}, not pending")
    from storage.models.base import utcnow

    account.status = AccountStatus.ACTIVE
    account.approved_at = utcnow()
    session.add(audit(account.id, None, "operator", None, None, "account.approve", "account",
                      account.name, {"status": "pending"}, {"status": "active"}))
    return account


async def pending_accounts(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(leader login, account name, e-mail) of every pending account."""
    rows = await session.execute(
        select(User.login, Account.name, Account.primary_email)
        .join(Account, Account.id == User.account_id)
        .where(Account.status == AccountStatus.PENDING, User.role == UserRole.LEADER)
        .order_by(Account.id)
    )
    return [(a, b, c) for a, b, c in rows]


async def find_user_in_account(session: AsyncSession, account_id: int, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or user.account_id != account_id:
        raise NotFound("user not found", code="user_not_found")
    return user


def audit(account_id: int | None, user_id: int | None, actor: str, source_ip: str | None,
          credential: str | None, action: str, object_type: str, object_name: str,
          before: Any, after: Any) -> AuditEntry:
    return AuditEntry(
        account_id=account_id, user_id=user_id, actor=actor, source_ip=source_ip,
        credential=credential, action=action, object_type=object_type,
        object_name=object_name[:320], before=before, after=after,
    )


def user_json(user: User) -> dict[str, object]:
    return {
        "id": user.id, "login": user.login, "email": user.email, "role": user.role.value,
        "business_unit_id": user.business_unit_id, "disabled": user.disabled,
        "totp_enabled": user.totp_confirmed_at is not None,
        "mobile": user.mobile, "mobile_verified": user.mobile_verified,
        "created_at": user.created_at,
    }


def account_json(account: Account) -> dict[str, object]:
    return {
        "id": account.id, "name": account.name, "status": account.status.value,
        "primary_email": account.primary_email, "country": account.country,
        "language": account.language, "vat_number": account.vat_number,
        "postal_address": account.postal_address, "phone": account.phone,
        "mobile": account.mobile, "ip_allowlist": list(account.ip_allowlist or []),
        "created_at": account.created_at, "approved_at": account.approved_at,
    }


@dataclass(frozen=True, slots=True)
class RightsScope:
    """Whose rights on which zones the caller hands out and reads.

    Leaders and delegates: every plain user, every zone of the account
    (`zone_ids` None). A plain user holding manage_accounts on some zones:
    on those zones only, for the account's plain users who may hold rights
    there (no business unit, or the unit of one of those zones), never
    itself, and it never hands out manage_accounts.
    """

    user_id: int
    zone_ids: frozenset[int] | None
    unit_ids: frozenset[int | None] = frozenset()

    @property
    def everything(self) -> bool:
        return self.zone_ids is None


async def rights_scope(session: AsyncSession, principal: Principal) -> RightsScope:
    """The caller's RightsScope; 403 `manager_only` when it manages no rights at all."""
    decision = can_manage_accounts(principal.role, principal.token)
    if decision.allowed:
        return RightsScope(principal.user_id, None)
    if principal.role is not UserRole.USER:
        enforce(decision)
    enforce(can_change_security(principal.token))
    rows = (await session.execute(
        select(Zone.id, Zone.business_unit_id).join(UserRight, UserRight.zone_id == Zone.id)
        .where(UserRight.user_id == principal.user_id, UserRight.right == Right.MANAGE_ACCOUNTS,
               Zone.account_id == principal.account_id))).all()
    if not rows:
        enforce(decision)
    return RightsScope(principal.user_id, frozenset(z for z, _ in rows),
                       frozenset(u for _, u in rows))


async def find_managed_user(session: AsyncSession, account_id: int, scope: RightsScope,
                            user_id: int) -> User:
    """A login of the account the caller may see: 404 `user_not_found` for any other,
    exactly as for a login that does not exist."""
    user = await find_user_in_account(session, account_id, user_id)
    in_reach = user.business_unit_id is None or user.business_unit_id in scope.unit_ids
    if not scope.everything and (user.role is not UserRole.USER or not in_reach):
        raise NotFound("user not found", code="user_not_found")
    return user


def managed_users_filter(scope: RightsScope) -> list[ColumnElement[bool]]:
    """WHERE clauses keeping the logins `scope` may see (none for managers)."""
    if scope.everything:
        return []
    units = [u for u in scope.unit_ids if u is not None]
    return [User.role == UserRole.USER,
            or_(User.business_unit_id.is_(None), User.business_unit_id.in_(units))]

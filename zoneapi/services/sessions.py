"""Browser sessions and step-ups.

The cookie holds a random session id; the table holds its digest. The id
changes at login (any session presented then is revoked: no fixation) and
at step-up. A session ends at its absolute expiry, after `session_idle_s`
without requests, at logout, on revocation and on a password reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.auth import ApiSession, StepUp
from zoneapi.auth import Principal
from zoneapi.clock import aware
from zoneapi.crypto import digest, new_csrf_token, new_session_id
from zoneapi.keys import Context


@dataclass(frozen=True, slots=True)
class NewSession:
    id: int
    sid: str  # the cookie value: never stored
    csrf_token: str
    expires_at: datetime


async def create_session(session: AsyncSession, ctx: Context, user_id: int, source_ip: str,
                         user_agent: str) -> NewSession:
    now = ctx.clock.now()
    sid, csrf = new_session_id(), new_csrf_token()
    row = ApiSession(
        sid_hash=digest(sid), user_id=user_id, csrf_token=csrf, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(seconds=ctx.config.session_absolute_s),
        source_ip=source_ip, user_agent=user_agent[:200],
    )
    session.add(row)
    await session.flush()
    return NewSession(row.id, sid, csrf, row.expires_at)


async def rotate_session(session: AsyncSession, ctx: Context, session_id: int) -> NewSession:
    """A new id (and CSRF token) for the same session, e.g. after a step-up."""
    row = await session.get(ApiSession, session_id, with_for_update=True)
    assert row is not None
    sid, csrf = new_session_id(), new_csrf_token()
    row.sid_hash, row.csrf_token = digest(sid), csrf
    return NewSession(row.id, sid, csrf, aware(row.expires_at))


async def revoke_by_sid(session: AsyncSession, ctx: Context, sid: str) -> None:
    await session.execute(
        update(ApiSession).where(ApiSession.sid_hash == digest(sid), ApiSession.revoked_at.is_(None))
        .values(revoked_at=ctx.clock.now())
    )


async def revoke_session(session: AsyncSession, ctx: Context, user_id: int,
                         session_id: int) -> bool:
    result = await session.execute(
        update(ApiSession).where(
            ApiSession.id == session_id, ApiSession.user_id == user_id,
            ApiSession.revoked_at.is_(None),
        ).values(revoked_at=ctx.clock.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all(session: AsyncSession, ctx: Context, user_id: int) -> None:
    await session.execute(
        update(ApiSession).where(ApiSession.user_id == user_id, ApiSession.revoked_at.is_(None))
        .values(revoked_at=ctx.clock.now())
    )


async def active_sessions(session: AsyncSession, ctx: Context, user_id: int) -> list[ApiSession]:
    now = ctx.clock.now()
    idle = timedelta(seconds=ctx.config.session_idle_s)
    rows = (await session.execute(
        select(ApiSession).where(
            ApiSession.user_id == user_id, ApiSession.revoked_at.is_(None),
            ApiSession.expires_at > now, ApiSession.last_seen_at > now - idle,
        ).order_by(ApiSession.id)
    )).scalars().all()
    return list(rows)


def set_cookie(response: web.StreamResponse, ctx: Context, new: NewSession) -> None:
    max_age = int((new.expires_at - ctx.clock.now()).total_seconds())
    response.set_cookie(
        ctx.config.cookie_name, new.sid, max_age=max(0, max_age), path="/", httponly=True,
        secure=ctx.config.cookie_secure, samesite="Strict",
    )


def clear_cookie(response: web.StreamResponse, ctx: Context) -> None:
    response.del_cookie(ctx.config.cookie_name, path="/")


async def grant_step_up(session: AsyncSession, ctx: Context, principal: Principal,
                        operation: str | None) -> datetime:
    """A fresh second factor for this session or token; `operation` None: any."""
    expires = ctx.clock.now() + timedelta(seconds=ctx.config.step_up_s)
    session.add(StepUp(credential=principal.credential, operation=operation, expires_at=expires))
    return expires

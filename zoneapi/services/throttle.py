"""Login throttling in the store, so every API process shares it.

Failures are counted per key ("login:alice", "addr:192.0.2.7") within a
window; reaching the maximum locks the key for `lockout_s`. Keys exist
whether or not the login does, so the answers never reveal which logins
exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.auth import LoginThrottle
from zoneapi.clock import aware
from zoneapi.config import ZoneApiConfig


def login_key(login: str) -> str:
    return f"login:{login.lower()[:150]}"


def totp_key(user_id: int) -> str:
    """TOTP guesses outside login (step-up, enrolment), per user."""
    return f"totp:{user_id}"


def address_key(address: str) -> str:
    return f"addr:{address}"


async def locked_for_s(session: AsyncSession, keys: list[str], now: datetime) -> int:
    """Seconds until every key is unlocked (0: none is locked)."""
    rows = (await session.execute(
        select(LoginThrottle.locked_until).where(LoginThrottle.key.in_(keys))
    )).scalars()
    wait = 0.0
    for until in rows:
        if until is not None and aware(until) > now:
            wait = max(wait, (aware(until) - now).total_seconds())
    return int(wait) + 1 if wait else 0


async def record_failure(session: AsyncSession, config: ZoneApiConfig, key: str,
                         limit: int, now: datetime) -> None:
    # The row is created if missing without a duplicate-key error when two first
    # failures for one key race, then locked, so concurrent failures all count.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(LoginThrottle).values(
        key=key, failures=0, window_start=now, locked_until=None
    ).on_conflict_do_nothing(index_elements=[LoginThrottle.key]))
    row = await session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
    assert row is not None
    window = timedelta(seconds=config.login_window_s)
    if aware(row.window_start) + window <= now:
        row.failures, row.window_start = 0, now
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + timedelta(seconds=config.lockout_s)
        row.failures, row.window_start = 0, now


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))

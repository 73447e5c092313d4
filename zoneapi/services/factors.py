"""Second factors: TOTP (with replay refusal), recovery codes, SMS codes.

An SMS code is sent only to the user's number (verified, for step-ups),
at most `sms_per_hour` per user, lives `sms_code_ttl_s`, allows
`code_max_attempts` guesses, and is bound to the session or token and the
operation it was requested for.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import User
from storage.models.auth import OneTimeCode, RecoveryCode
from zoneapi import totp
from zoneapi.crypto import digest, new_numeric_code, new_recovery_code, same
from zoneapi.delivery import DeliveryError
from zoneapi.errors import ApiError, TooManyRequests
from zoneapi.keys import Context
from zoneapi.services import throttle

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class CodePurpose:
    STEP_UP = "step_up"
    VERIFY_MOBILE = "verify_mobile"


def check_totp(ctx: Context, user: User, code: str) -> bool:
    """Accept a TOTP code once: its time step must be after the last one used."""
    if user.totp_secret is None:
        return False
    secret = ctx.box.open(user.totp_secret)
    if secret is None:
        return False
    step = totp.matching_step(secret, code, ctx.clock.now())
    if step is None or (user.totp_last_counter is not None and step <= user.totp_last_counter):
        return False
    user.totp_last_counter = step
    return True


async def check_totp_throttled(session: AsyncSession, ctx: Context, user: User,
                               code: str) -> bool:
    """check_totp, with at most `login_max_failures` wrong codes per user within
    the login window before a `lockout_s` lock (TooManyRequests). The caller
    commits the session even when this returns False, so failures count."""
    key, now = throttle.totp_key(user.id), ctx.clock.now()
    wait_s = await throttle.locked_for_s(session, [key], now)
    if wait_s:
        raise TooManyRequests(wait_s, "too_many_attempts",
                              "too many wrong codes; try again later")
    if check_totp(ctx, user, code):
        await throttle.clear(session, key)
        return True
    await throttle.record_failure(session, ctx.config, key, ctx.config.login_max_failures, now)
    return False


def qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode()


async def new_recovery_codes(session: AsyncSession, ctx: Context, user_id: int) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_recovery_code() for _ in range(ctx.config.recovery_codes)]
    session.add_all(RecoveryCode(user_id=user_id, code_hash=digest(c)) for c in codes)
    return codes


async def use_recovery_code(session: AsyncSession, ctx: Context, user_id: int,
                            code: str) -> bool:
    hashed = digest(code.strip().lower())
    row = (await session.execute(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user_id, RecoveryCode.code_hash == hashed,
            RecoveryCode.used_at.is_(None),
        ).with_for_update()
    )).scalar_one_or_none()
    if row is None:
        return False
    row.used_at = ctx.clock.now()
    return True


@dataclass(frozen=True, slots=True)
class Sms:
    """A code's text message, sent by send_sms() once the code's row is committed."""

    to: str
    text: str
    expires_at: datetime


async def new_code(session: AsyncSession, ctx: Context, user_id: int, mobile: str,
                   purpose: str, credential: str, operation: str) -> Sms:
    """Create a code (429 past the hourly limit) and the SMS that carries it.

    The SMS is sent after the transaction, never inside it: the development
    outbox writes through its own transaction (which on SQLite would wait for
    ours for ever), and a gateway's HTTP call must not hold the write lock.
    """
    now = ctx.clock.now()
    # The user's row lock orders concurrent requests, so the hourly count holds.
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    sent = (await session.execute(
        select(func.count(OneTimeCode.id)).where(
            OneTimeCode.user_id == user_id, OneTimeCode.created_at > now - timedelta(hours=1)
        )
    )).scalar_one()
    if sent >= ctx.config.sms_per_hour:
        raise TooManyRequests(3600, "sms_rate_limited", "too many codes sent; try later")
    code = new_numeric_code()
    expires = now + timedelta(seconds=ctx.config.sms_code_ttl_s)
    session.add(OneTimeCode(
        user_id=user_id, purpose=purpose, credential=credential, operation=operation,
        code_hash=digest(code), created_at=now, expires_at=expires, attempts=0,
    ))
    minutes = max(1, ctx.config.sms_code_ttl_s // 60)
    what = f" to approve {operation}" if operation else ""
    return Sms(mobile, f"zonehost code {code}{what}. Valid {minutes} min.", expires)


async def send_sms(ctx: Context, sms: Sms) -> None:
    """Text a committed code; 502 if the gateway fails (the code then goes unused)."""
    try:
        await ctx.sms.send(sms.to, sms.text)
    except DeliveryError as exc:
        raise ApiError(502, "sms_failed", "the SMS could not be sent; try again later") from exc


async def check_code(session: AsyncSession, ctx: Context, user_id: int, purpose: str,
                     credential: str, operation: str, code: str) -> bool:
    """Use the newest live code for exactly this credential and operation."""
    now = ctx.clock.now()
    row = (await session.execute(
        select(OneTimeCode).where(
            OneTimeCode.user_id == user_id, OneTimeCode.purpose == purpose,
            OneTimeCode.credential == credential, OneTimeCode.operation == operation,
            OneTimeCode.used_at.is_(None), OneTimeCode.expires_at > now,
        ).order_by(OneTimeCode.id.desc()).limit(1).with_for_update()
    )).scalar_one_or_none()
    if row is None or row.attempts >= ctx.config.code_max_attempts:
        return False
    row.attempts += 1
    if not same(row.code_hash, digest(code.strip())):
        return False
    row.used_at = now
    await session.execute(
        update(OneTimeCode).where(
            OneTimeCode.user_id == user_id, OneTimeCode.purpose == purpose,
            OneTimeCode.used_at.is_(None),
        ).values(used_at=now)
    )
    return True

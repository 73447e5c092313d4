"""Tables of the zone API's security model: sessions, API tokens, second
factors, login throttling, password resets and the development outbox.

Secrets never sit here in the clear: session ids, tokens, recovery codes,
reset links and SMS codes are stored as SHA-256 digests (they are random
and long, so a plain digest is enough and lets us look them up by index);
passwords are argon2id hashes; the TOTP secret (on `users`) is encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, utcnow


class ApiSession(Base):
    """A browser session (cookie). `sid_hash` is the digest of the cookie value."""

    __tablename__ = "api_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # absolute timeout
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    revoked_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token. `policies` narrows it deSEC-style (see zoneapi.policy)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    max_unused_s: Mapped[int | None] = mapped_column(Integer)  # unused-expiry period
    last_used_at: Mapped[datetime | None]
    allowed_subnets: Mapped[list[str]] = mapped_column(JSON, default=list)
    policies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    perm_manage: Mapped[bool] = mapped_column(default=False)  # account and security settings
    revoked_at: Mapped[datetime | None]


class StepUp(Base):
    """A fresh second factor for one session or token, for `operation` or any (NULL)."""

    __tablename__ = "api_step_ups"
    __table_args__ = (Index("ix_api_step_ups_credential", "credential"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    credential: Mapped[str] = mapped_column(String(64))  # "session:3", "token:7"
    operation: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime]


class OneTimeCode(Base):
    """An SMS code (step-up or mobile verification), stored as a digest."""

    __tablename__ = "api_one_time_codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))  # "step_up", "verify_mobile"
    credential: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(320), default="")
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None]


class RecoveryCode(Base):
    __tablename__ = "api_recovery_codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]


class PasswordReset(Base):
    __tablename__ = "api_password_resets"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed logins per key ("login:alice", "addr:192.0.2.1") in the current window."""

    __tablename__ = "api_login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class KnownAddress(Base):
    """Addresses a user has logged in from (for "new address" notifications)."""

    __tablename__ = "api_known_addresses"
    __table_args__ = (Index("ix_api_known_addresses_user_address", "user_id", "address", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """Development outbox: mail and SMS that would have been sent."""

    __tablename__ = "api_outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))  # "mail", "sms"
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Tables of the mail service: aliases, their targets, the per-domain mail
service, and the durable forwarding queue (filled by migration 0004).

`mail_changes` is the mail side's change feed: every write that can change
what a domain's RCPT check answers appends a row naming the zone, so the
forwarders' alias caches drop exactly that domain (zone suspension,
deletion and creation come through the zone feed, `zone_changes`).

The queue is shared by every MX host: a delivery row is claimed with a
lease (`locked_by`, `locked_until`), taken with `FOR UPDATE SKIP LOCKED` on
PostgreSQL and inside a BEGIN IMMEDIATE transaction on SQLite, so a worker
that dies leaves its rows to be picked up again when the lease runs out.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, utcnow


class TargetState(enum.StrEnum):
    PENDING = "pending"  # waiting for its owner to confirm: gets no mail
    VERIFIED = "verified"


class MessageKind(enum.StrEnum):
    FORWARD = "forward"  # accepted from the internet for an alias
    BOUNCE = "bounce"  # a bounce to one of our SRS addresses, sent back to its sender
    DSN = "dsn"  # our own delivery-status notification
    VERIFICATION = "verification"  # a target confirmation request


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"  # a temporary failure; retried at next_attempt_at
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # permanent failure or too old: a DSN went to the sender


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class MailService(Base):
    """The mail service of one hosted domain (one row per zone)."""

    __tablename__ = "mail_services"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), unique=True
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    redirect_pack: Mapped[bool] = mapped_column(default=False)  # 50 aliases instead of 5
    # the account chose to treat alias changes as sensitive (second factor or allowlist)
    aliases_sensitive: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailChange(Base):
    """One committed change to a domain's aliases or mail service (ids commit in order)."""

    __tablename__ = "mail_changes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    zone_name: Mapped[str] = mapped_column(String(255))  # with the trailing dot
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class MailAlias(Base):
    __tablename__ = "mail_aliases"
    __table_args__ = (UniqueConstraint("zone_id", "local_part"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), index=True
    )
    local_part: Mapped[str] = mapped_column(String(64))  # normalised: lower case
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailAliasTarget(Base):
    __tablename__ = "mail_alias_targets"
    __table_args__ = (UniqueConstraint("alias_id", "address"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    alias_id: Mapped[int] = mapped_column(
        ForeignKey("mail_aliases.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    state: Mapped[TargetState] = mapped_column(_enum(TargetState), default=TargetState.PENDING)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256 hex
    token_sent_at: Mapped[datetime | None]  # NULL: the confirmation mail is still to send
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailMessage(Base):
    """One accepted message. The bytes are `body`, or a spool file (`spool_path`)."""

    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind), default=MessageKind.FORWARD)
    envelope_sender: Mapped[str] = mapped_column(String(320))  # as sent on; "" = null sender
    original_sender: Mapped[str] = mapped_column(String(320))  # MAIL FROM as received
    client_address: Mapped[str | None] = mapped_column(String(64))
    client_helo: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    spool_path: Mapped[str | None] = mapped_column(Text)


class MailDelivery(Base):
    """One target of one message, tracked on its own."""

    __tablename__ = "mail_deliveries"
    __table_args__ = (Index("ix_mail_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("mail_messages.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320))  # the address the sender used
    target: Mapped[str] = mapped_column(String(320))  # where it goes
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

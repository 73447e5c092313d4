"""Accounts, zones, RRsets, the change feed and the audit log.

The account model follows the registrar's: a client account (led by its
leader user) holds business units, delegated and plain user accounts, and
domains (zones). Plain users get rights per zone through `UserRight`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, BigIntPK, utcnow


class AccountStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, waiting for an operator's approval
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class UserRole(enum.StrEnum):
    LEADER = "leader"  # the client account's owner
    DELEGATE = "delegate"  # same rights as the leader on every domain
    USER = "user"  # only the rights granted per domain


class Right(enum.StrEnum):
    VIEW = "view"
    EDIT_ZONE = "edit_zone"
    EDIT_NAMESERVERS = "edit_nameservers"
    MANAGE_ALIASES = "manage_aliases"
    RENEW = "renew"
    CANCEL = "cancel"
    TRANSFER = "transfer"
    VIEW_INVOICES = "view_invoices"
    MANAGE_ACCOUNTS = "manage_accounts"


class ZoneStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # not served: the nameserver answers REFUSED


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[AccountStatus] = mapped_column(
        _enum(AccountStatus), default=AccountStatus.PENDING
    )
    primary_email: Mapped[str] = mapped_column(String(320))
    country: Mapped[str] = mapped_column(String(2), default="FR")  # ISO 3166-1 alpha-2
    language: Mapped[str] = mapped_column(String(2), default="en")
    vat_number: Mapped[str | None] = mapped_column(String(32))
    postal_address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    mobile: Mapped[str | None] = mapped_column(String(32))
    mobile_verified: Mapped[bool] = mapped_column(default=False)
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]

    business_units: Mapped[list[BusinessUnit]] = relationship(
        back_populates="account", lazy="raise_on_sql"
    )


class BusinessUnit(Base):
    __tablename__ = "business_units"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)

    account: Mapped[Account] = relationship(back_populates="business_units", lazy="raise_on_sql")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    business_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("business_units.id", ondelete="SET NULL")
    )
    login: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id
    totp_secret: Mapped[str | None] = mapped_column(String(200))  # encrypted at rest
    totp_confirmed_at: Mapped[datetime | None]
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)  # no code replay
    mobile: Mapped[str | None] = mapped_column(String(32))
    mobile_verified: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Zone(Base):
    """A hosted zone. Its SOA lives here: the system owns it."""

    __tablename__ = "zones"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # canonical, trailing dot
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    business_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("business_units.id", ondelete="SET NULL")
    )
    status: Mapped[ZoneStatus] = mapped_column(_enum(ZoneStatus), default=ZoneStatus.ACTIVE)
    serial: Mapped[int] = mapped_column(BigInteger)
    soa_ttl: Mapped[int] = mapped_column(Integer, default=3600)
    soa_mname: Mapped[str] = mapped_column(String(255))
    soa_rname: Mapped[str] = mapped_column(String(255))
    soa_refresh: Mapped[int] = mapped_column(Integer, default=10800)
    soa_retry: Mapped[int] = mapped_column(Integer, default=3600)
    soa_expire: Mapped[int] = mapped_column(Integer, default=1209600)
    soa_minimum: Mapped[int] = mapped_column(Integer, default=3600)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserRight(Base):
    """One right of a plain user on one zone."""

    __tablename__ = "user_rights"
    __table_args__ = (UniqueConstraint("user_id", "zone_id", "right"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), index=True)
    right: Mapped[Right] = mapped_column(_enum(Right))


class RRset(Base):
    __tablename__ = "rrsets"
    __table_args__ = (UniqueConstraint("zone_id", "name", "rdtype"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))  # absolute, canonical, trailing dot
    rdtype: Mapped[int] = mapped_column(Integer)
    ttl: Mapped[int] = mapped_column(BigInteger)

    records: Mapped[list[Record]] = relationship(
        back_populates="rrset", lazy="raise_on_sql", cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Record(Base):
    __tablename__ = "records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rrset_id: Mapped[int] = mapped_column(
        ForeignKey("rrsets.id", ondelete="CASCADE"), index=True
    )
    content: Mapped[str] = mapped_column(Text)  # canonical presentation format
    wire: Mapped[bytes] = mapped_column(LargeBinary)  # uncompressed wire format

    rrset: Mapped[RRset] = relationship(back_populates="records", lazy="raise_on_sql")


class ZoneChange(Base):
    """The change feed: one row per committed write to a zone.

    `diff` holds {"removed": [...], "added": [...]}, each item
    [name, rdtype, ttl, content]: enough for IXFR, the zone history and a
    follower that patches its index without reloading the zone. A wholesale
    replacement (`kind="replace"`) may carry a large diff; `full_reload`
    tells followers to reload the zone instead.
    """

    __tablename__ = "zone_changes"
    __table_args__ = (Index("ix_zone_changes_zone_serial", "zone_name", "serial"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    zone_id: Mapped[int] = mapped_column(BigInteger)  # no FK: outlives a deleted zone
    zone_name: Mapped[str] = mapped_column(String(255))
    serial: Mapped[int] = mapped_column(BigInteger)
    previous_serial: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # create, update, replace, delete, status
    full_reload: Mapped[bool] = mapped_column(default=False)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    account_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))  # "user:12", "token:5", "operator", "system"
    source_ip: Mapped[str | None] = mapped_column(String(64))
    credential: Mapped[str | None] = mapped_column(String(64))  # session or token id, never the secret
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_name: Mapped[str] = mapped_column(String(320))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    change_id: Mapped[int | None] = mapped_column(BigInteger)

"""Tables of the billing service: the domain portfolio and its lifecycle,
price lists, orders, payments, invoices, reminders, the registry work queue
and the e-mail outbox (migration 0005).

A portfolio domain is linked to its hosted zone by name only: the domain
exists (and is billed) whether or not its zone is hosted here. Money is
always an integer number of cents. Invoices and credit notes are written
once and never updated: corrections are new credit notes.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from storage.models.base import Base, BigIntPK, utcnow


class DomainStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"  # past expiry, still served
    SUSPENDED = "suspended"  # zone not served; renewal at the normal price
    REDEMPTION = "redemption"  # zone not served; restore fee
    DELETED = "deleted"


class OptionStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    IN_PROGRESS = "in_progress"  # waiting for the registry gateway
    DONE = "done"
    CANCELLED = "cancelled"


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    CHEQUE = "cheque"
    TRANSFER = "transfer"
    DIRECT_DEBIT = "direct_debit"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # a card checkout opened at the provider
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUND_DUE = "refund_due"  # money received for an order that could not be served


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class ReminderStatus(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # overtaken by a later reminder when the job ran late


class WorkStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after too many attempts


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Contact(Base):
    """A person or organisation named as a domain's owner, admin or billing contact."""

    __tablename__ = "billing_contacts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str] = mapped_column(String(2), default="FR")
    postal_address: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Domain(Base):
    """One domain of the portfolio (hosted zone or not)."""

    __tablename__ = "billing_domains"
    __table_args__ = (
        # A deleted domain may be registered again: only live names are unique.
        Index(
            "uq_billing_domains_live_name", "name", unique=True,
            sqlite_where=text("status != 'deleted'"),
            postgresql_where=text("status != 'deleted'"),
        ),
        Index("ix_billing_domains_expires_on", "expires_on"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))  # canonical, trailing dot, = Zone.name
    extension: Mapped[str] = mapped_column(String(63))  # "fr", "com", "co.uk"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    business_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("business_units.id", ondelete="SET NULL")
    )
    plan: Mapped[str] = mapped_column(String(64), default="Basic Plus")
    profile: Mapped[str] = mapped_column(String(64))
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[DomainStatus] = mapped_column(_enum(DomainStatus), default=DomainStatus.ACTIVE)
    status_since: Mapped[date | None] = mapped_column(Date)
    owner_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_contacts.id", ondelete="SET NULL")
    )
    admin_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_contacts.id", ondelete="SET NULL")
    )
    billing_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_contacts.id", ondelete="SET NULL")
    )
    locked: Mapped[bool] = mapped_column(default=True)  # registry transfer lock
    transfer_code_enc: Mapped[str | None] = mapped_column(String(512))  # encrypted at rest
    nameservers: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [] = the platform's
    cancel_at_term: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_on: Mapped[date | None] = mapped_column(Date)


class DomainOption(Base):
    """A subscription attached to a domain, e.g. the mail-redirect pack."""

    __tablename__ = "billing_options"
    __table_args__ = (UniqueConstraint("domain_id", "product"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("billing_domains.id", ondelete="CASCADE"), index=True
    )
    product: Mapped[str] = mapped_column(String(64))
    status: Mapped[OptionStatus] = mapped_column(_enum(OptionStatus), default=OptionStatus.ACTIVE)
    starts_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    cancel_at_term: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Price(Base):
    """One price of a price list: per account (NULL: the default list), extension
    ("*" for any) and product."""

    __tablename__ = "billing_prices"
    __table_args__ = (
        Index(
            "uq_billing_prices_account", "account_id", "extension", "product", unique=True,
            sqlite_where=text("account_id IS NOT NULL"),
            postgresql_where=text("account_id IS NOT NULL"),
        ),
        Index(
            "uq_billing_prices_default", "extension", "product", unique=True,
            sqlite_where=text("account_id IS NULL"),
            postgresql_where=text("account_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    extension: Mapped[str] = mapped_column(String(63))
    product: Mapped[str] = mapped_column(String(64))
    cents: Mapped[int] = mapped_column(BigInteger)  # before VAT
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """A gapless number sequence (orders, invoices), locked FOR UPDATE to take a number."""

    __tablename__ = "billing_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)  # the last number issued


class Order(Base):
    __tablename__ = "billing_orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    status: Mapped[OrderStatus] = mapped_column(
        _enum(OrderStatus), default=OrderStatus.PENDING_PAYMENT, index=True
    )
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(Integer)  # basis points: 2000 = 20 %
    vat_country: Mapped[str] = mapped_column(String(2))
    vat_number: Mapped[str | None] = mapped_column(String(32))
    reverse_charge: Mapped[bool] = mapped_column(default=False)
    language: Mapped[str] = mapped_column(String(2), default="en")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class OrderLine(Base):
    __tablename__ = "billing_order_lines"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("billing_orders.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # register, renew, restore, option, ...
    product: Mapped[str] = mapped_column(String(64))  # the price-list product
    domain_name: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(63))
    years: Mapped[int] = mapped_column(Integer, default=1)
    unit_cents: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(300))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    done: Mapped[bool] = mapped_column(default=False)


class Payment(Base):
    __tablename__ = "billing_payments"
    __table_args__ = (
        # An order is paid once: a second successful payment cannot be stored.
        Index(
            "uq_billing_payments_paid_order", "order_id", unique=True,
            sqlite_where=text("status = 'succeeded'"),
            postgresql_where=text("status = 'succeeded'"),
        ),
        UniqueConstraint("method", "reference"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("billing_orders.id"), index=True)
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod))
    status: Mapped[PaymentStatus] = mapped_column(_enum(PaymentStatus))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    # Bank reference, cheque number or the provider's checkout id; unique per method.
    reference: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    recorded_by: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. the checkout URL
    received_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """A payment-provider event already processed: a replay is refused."""

    __tablename__ = "billing_webhook_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Invoice(Base):
    """An issued invoice or credit note: a frozen snapshot, never updated."""

    __tablename__ = "billing_invoices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)  # one gapless sequence
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("billing_orders.id"), index=True)
    credited_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("billing_invoices.id"))
    account_id: Mapped[int] = mapped_column(BigInteger, index=True)  # no FK: kept for ever
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_on: Mapped[date] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    seller: Mapped[dict[str, Any]] = mapped_column(JSON)
    buyer: Mapped[dict[str, Any]] = mapped_column(JSON)
    lines: Mapped[list[Any]] = mapped_column(JSON)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)  # negative on a credit note
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate_bp: Mapped[int] = mapped_column(Integer)
    reverse_charge: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text, default="")  # why a credit note was issued


class ImmutableInvoice(Exception):
    """An issued invoice cannot be changed: issue a credit note."""


@event.listens_for(Invoice, "before_update")
def _refuse_invoice_update(_mapper: Mapper[Invoice], _conn: Connection, target: Invoice) -> None:
    raise ImmutableInvoice(f"invoice {target.number} is issued and cannot be changed")


@event.listens_for(Invoice, "before_delete")
def _refuse_invoice_delete(_mapper: Mapper[Invoice], _conn: Connection, target: Invoice) -> None:
    raise ImmutableInvoice(f"invoice {target.number} is issued and cannot be deleted")


class Reminder(Base):
    """A reminder e-mail, sent (or skipped) once per domain, number and expiry date."""

    __tablename__ = "billing_reminders"
    __table_args__ = (UniqueConstraint("domain_id", "reminder", "expires_on"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("billing_domains.id", ondelete="CASCADE"))
    domain_name: Mapped[str] = mapped_column(String(255))
    reminder: Mapped[int] = mapped_column(Integer)
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[ReminderStatus] = mapped_column(_enum(ReminderStatus))
    due_on: Mapped[date] = mapped_column(Date)
    sent_on: Mapped[date] = mapped_column(Date)  # the job's date
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OptionReminder(Base):
    """A reminder e-mail for an option ending on its own date (not with its domain),
    sent (or skipped) once per option, number and expiry date."""

    __tablename__ = "billing_option_reminders"
    __table_args__ = (UniqueConstraint("option_id", "reminder", "expires_on"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    option_id: Mapped[int] = mapped_column(ForeignKey("billing_options.id", ondelete="CASCADE"))
    domain_name: Mapped[str] = mapped_column(String(255))
    product: Mapped[str] = mapped_column(String(64))
    reminder: Mapped[int] = mapped_column(Integer)
    expires_on: Mapped[date] = mapped_column(Date)
    status: Mapped[ReminderStatus] = mapped_column(_enum(ReminderStatus))
    due_on: Mapped[date] = mapped_column(Date)
    sent_on: Mapped[date] = mapped_column(Date)  # the job's date
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkItem(Base):
    """A registry operation waiting for an operator (the built-in registry gateway)."""

    __tablename__ = "billing_work_items"
    __table_args__ = (Index("ix_billing_work_items_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    domain_name: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_orders.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[WorkStatus] = mapped_column(_enum(WorkStatus), default=WorkStatus.OPEN)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class OutboxMessage(Base):
    """An e-mail written in the same transaction as what caused it, sent later."""

    __tablename__ = "billing_outbox"
    __table_args__ = (Index("ix_billing_outbox_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # "reminder", "invoice", ...
    account_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    domain_name: Mapped[str | None] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

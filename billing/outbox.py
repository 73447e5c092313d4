"""The outbox: e-mails written with what caused them, delivered afterwards."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.config import BillingConfig
from billing.mailer import Mailer, MailerError, OutgoingMail
from storage.db import Database
from storage.models.billing import OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int
    failed: int  # will be retried
    given_up: int


def enqueue(
    session: AsyncSession, config: BillingConfig, *, kind: str, recipients: Sequence[str],
    subject: str, body: str, language: str, account_id: int | None,
    domain_name: str | None = None,
) -> OutboxMessage:
    message = OutboxMessage(
        kind=kind, account_id=account_id, domain_name=domain_name, sender=config.mail_from,
        recipients=list(recipients), subject=subject, body=body, language=language,
        status=OutboxStatus.PENDING,
    )
    session.add(message)
    return message


async def deliver(
    db: Database, config: BillingConfig, mailer: Mailer, *, limit: int = 200
) -> DeliveryReport:
    """Send pending messages one by one; each outcome is committed on its own."""
    async with db.read() as session:
        ids = list((await session.execute(
            select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING)
            .order_by(OutboxMessage.id).limit(limit)
        )).scalars())
    sent = failed = given_up = 0
    for message_id in ids:
        # Send outside any transaction (no lock held over the network), then record
        # the outcome: a crash in between sends the message again (at least once).
        async with db.read() as session:
            row = await session.get(OutboxMessage, message_id)
            if row is None or row.status is not OutboxStatus.PENDING:
                continue
            mail = OutgoingMail(row.id, row.sender, tuple(row.recipients), row.subject,
                                row.body, row.language)
        error: str | None = None
        try:
            await mailer.send(mail)
        except MailerError as exc:
            error = str(exc)[:1000]
        async with db.write() as session:
            row = await session.get(OutboxMessage, message_id)
            if row is None:
                continue
            row.attempts += 1
            if error is None:
                row.status = OutboxStatus.SENT
                row.sent_at = datetime.now(UTC)
                row.last_error = None
                sent += 1
            elif row.attempts >= config.outbox_max_attempts:
                row.status = OutboxStatus.FAILED
                row.last_error = error
                given_up += 1
                log.error("outbox message=%d given up after %d attempts: %s",
                          row.id, row.attempts, error)
            else:
                row.last_error = error
                failed += 1
    return DeliveryReport(sent, failed, given_up)

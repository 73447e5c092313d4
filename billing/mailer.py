"""The mailer seam: how an outbox message leaves.

Billing never sends mail inside a business transaction: it writes an
outbox row (outbox.py) in the same transaction as the reminder log or the
invoice, and `deliver()` hands pending rows to a Mailer afterwards. In
development and tests no relay is configured and the rows simply stay in
the outbox table, to be read there; with `billing_smtp_host` set they go
to that relay through aiosmtplib.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import aiosmtplib

from billing.config import SmtpRelay


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    id: int
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    language: str


class MailerError(Exception):
    """The relay refused or could not be reached (temporary: retried later)."""


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail) -> None: ...


def to_message(mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = ", ".join(mail.recipients)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"billing.{mail.id}")
    message["Content-Language"] = mail.language
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    return message


async def send_via_relay(relay: SmtpRelay, message: EmailMessage) -> None:
    """Hand one message to the relay; MailerError when it refuses or cannot be reached.

    The zone API's security notifications go through here too."""
    try:
        await aiosmtplib.send(
            message, hostname=relay.host, port=relay.port, username=relay.username,
            password=relay.password, start_tls=relay.starttls, timeout=relay.timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailerError(f"mail relay {relay.host}:{relay.port}: {exc}") from exc


class SmtpMailer:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def send(self, mail: OutgoingMail) -> None:
        await send_via_relay(self.relay, to_message(mail))

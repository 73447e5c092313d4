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


class SmtpMailer:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def send(self, mail: OutgoingMail) -> None:
        try:
            await aiosmtplib.send(
                to_message(mail), hostname=self.relay.host, port=self.relay.port,
                username=self.relay.username, password=self.relay.password,
                start_tls=self.relay.starttls, timeout=self.relay.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailerError(str(exc)) from exc

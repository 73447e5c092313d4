"""Sending mail and SMS: seams with a real adapter and a development outbox.

- Mail goes through aiosmtplib to the configured relay; without one it is
  written to the `api_outbox` table.
- SMS go to an HTTP gateway (POST JSON {"to", "text", "sender"}, HTTP
  basic auth, any 2xx is success); without one, to the same outbox.
Notifications are sent in the background (`Notifier`), so neither the
relay's latency nor its failures slow or fail the request, and the timing
of "password reset" answers does not reveal whether an account exists.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from email.message import EmailMessage
from typing import Protocol

import aiohttp

from billing.config import SmtpRelay
from billing.mailer import MailerError, send_via_relay
from storage.db import Database
from storage.models.auth import OutboxMessage
from zoneapi.config import SmsGatewayConfig

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A message could not be handed over for delivery."""


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class SmsGateway(Protocol):
    async def send(self, to: str, text: str) -> None: ...

    async def close(self) -> None: ...


class OutboxMailer:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(self, to: str, subject: str, body: str) -> None:
        async with self._db.write() as session:
            session.add(OutboxMessage(channel="mail", recipient=to, subject=subject[:200],
                                      body=body))


class SmtpMailer:
    def __init__(self, relay: SmtpRelay, sender: str) -> None:
        self._relay = relay
        self._sender = sender

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await send_via_relay(self._relay, message)
        except MailerError as exc:
            raise DeliveryError(str(exc)) from exc


class OutboxSms:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(self, to: str, text: str) -> None:
        async with self._db.write() as session:
            session.add(OutboxMessage(channel="sms", recipient=to, subject="", body=text))

    async def close(self) -> None:
        return None


class HttpSmsGateway:
    def __init__(self, config: SmsGatewayConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def send(self, to: str, text: str) -> None:
        config = self._config
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=config.timeout_s)
            )
        headers = {}
        if config.username:
            pair = f"{config.username}:{config.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            async with self._session.post(
                config.url, json={"to": to, "text": text, "sender": config.sender},
                headers=headers,
            ) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"SMS gateway answered HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"SMS gateway: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Notifier:
    """Security notifications, sent in the background and awaited at shutdown."""

    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, to: str, subject: str, body: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(to, subject, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, to: str, subject: str, body: str) -> None:
        try:
            await self._mailer.send(to, subject, body)
        except Exception as exc:  # noqa: BLE001  (a notification must never fail a request)
            log.warning("notification to %s not sent: %s", to, exc)

    async def drain(self, timeout_s: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

"""The zone API's security notifications leave through a real SMTP relay."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller

from billing.config import SmtpRelay
from tests.conftest import free_port
from zoneapi.delivery import DeliveryError, SmtpMailer


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received.append((
            envelope.mail_from, list(envelope.rcpt_tos),  # type: ignore[attr-defined]
            message_from_bytes(envelope.original_content),  # type: ignore[attr-defined]
        ))
        return "250 OK"


async def test_a_notification_reaches_the_relay() -> None:
    sink = Sink()
    port = free_port()
    relay = Controller(sink, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        mailer = SmtpMailer(SmtpRelay("127.0.0.1", port, timeout_s=10), "noreply@zonehost.test")
        await mailer.send("owner@acme.example", "New login", "A new session was opened.\n")
    finally:
        relay.stop()
    [(sender, rcpts, message)] = sink.received
    assert (sender, rcpts) == ("noreply@zonehost.test", ["owner@acme.example"])
    assert message["Subject"] == "New login"
    assert message.get_payload(decode=True) == b"A new session was opened.\r\n"  # SMTP line ends


async def test_an_unreachable_relay_is_a_delivery_error() -> None:
    port = free_port()  # nothing listens there
    mailer = SmtpMailer(SmtpRelay("127.0.0.1", port, timeout_s=5), "noreply@zonehost.test")
    with pytest.raises(DeliveryError, match=f"mail relay 127.0.0.1:{port}"):
        await mailer.send("owner@acme.example", "New login", "body")

"""Mail the forwarder writes itself: delivery-status notifications (RFC 3464)
and target confirmation requests. Both go out with the null sender, so
nothing ever bounces back to us about them (no loops)."""

from __future__ import annotations

import email.utils
import uuid

from mx_forwarder.message import header_block
from mx_forwarder.queue import Claimed, NewMessage
from storage.aliases import ConfirmationRequest
from storage.models.mail import MessageKind

MAX_RETURNED_HEADERS = 64 * 1024


def wants_dsn(claimed: Claimed) -> bool:
    """Never to the null sender, never about our own notices."""
    return bool(claimed.original_sender) and claimed.kind in (
        MessageKind.FORWARD, MessageKind.BOUNCE,
    )


def _header(name: str, value: str) -> str:
    return f"{name}: {''.join(c for c in value if c.isprintable())}\r\n"


def build_dsn(claimed: Claimed, *, hostname: str, status: str, diagnostic: str,
              remote_mta: str | None) -> NewMessage:
    """A multipart/report to the original sender about one failed target."""
    boundary = f"zonehost-{uuid.uuid4().hex}"
    sender = claimed.original_sender
    arrival = email.utils.format_datetime(claimed.received_at)
    human = (
        "This is the mail system at host {host}.\r\n\r\n"
        "Your message could not be delivered to one or more recipients.\r\n"
        "It was sent to <{rcpt}>, which forwards to <{target}>.\r\n\r\n"
        "    <{target}>: {diag}\r\n"
    ).format(host=hostname, rcpt=claimed.recipient, target=claimed.target,
             diag=diagnostic.replace("\r", " ").replace("\n", " "))
    per_message = (
        _header("Reporting-MTA", f"dns; {hostname}")
        + _header("X-Zonehost-Queue-ID", str(claimed.message_id))
        + _header("Arrival-Date", arrival)
    )
    per_recipient = (
        _header("Original-Recipient", f"rfc822; {claimed.recipient}")
        + _header("Final-Recipient", f"rfc822; {claimed.target}")
        + _header("Action", "failed")
        + _header("Status", status)
        + (_header("Remote-MTA", f"dns; {remote_mta}") if remote_mta else "")
        + _header("Diagnostic-Code", f"smtp; {diagnostic[:900]}")
        + _header("Last-Attempt-Date", email.utils.formatdate(usegmt=True))
    )
    headers = header_block(claimed.data)[:MAX_RETURNED_HEADERS]
    text = (
        _header("From", f"Mail Delivery System <MAILER-DAEMON@{hostname}>")
        + _header("To", f"<{sender}>")
        + _header("Subject", "Undelivered Mail Returned to Sender")
        + _header("Date", email.utils.formatdate(usegmt=True))
        + _header("Message-ID", f"<{uuid.uuid4().hex}@{hostname}>")
        + _header("Auto-Submitted", "auto-replied")
        + "MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/report; report-type=delivery-status;\r\n'
        f'\tboundary="{boundary}"\r\n'
        + "\r\n"
        + f"--{boundary}\r\n"
        + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + human + "\r\n"
        + f"--{boundary}\r\n"
        + "Content-Type: message/delivery-status\r\n\r\n"
        + per_message + "\r\n" + per_recipient + "\r\n"
        + f"--{boundary}\r\n"
        + "Content-Type: text/rfc822-headers\r\n\r\n"
    )
    data = text.encode("utf-8") + headers + f"\r\n--{boundary}--\r\n".encode()
    return NewMessage(MessageKind.DSN, "", "", data, ((sender, sender),))


def build_confirmation(request: ConfirmationRequest, *, hostname: str,
                       confirm_url: str) -> NewMessage:
    link = confirm_url.replace("{token}", request.token)
    body = (
        f"Hello,\r\n\r\n"
        f"Someone asked for mail sent to {request.alias} to be forwarded to\r\n"
        f"{request.target}. Nothing will be forwarded until you confirm it\r\n"
        f"by opening this link:\r\n\r\n    {link}\r\n\r\n"
        f"If you did not ask for this, ignore this message: no mail will be\r\n"
        f"forwarded to you.\r\n"
    )
    text = (
        _header("From", f"Mail forwarding <postmaster@{hostname}>")
        + _header("To", f"<{request.target}>")
        + _header("Subject", f"Confirm forwarding of {request.alias}")
        + _header("Date", email.utils.formatdate(usegmt=True))
        + _header("Message-ID", f"<{uuid.uuid4().hex}@{hostname}>")
        + _header("Auto-Submitted", "auto-generated")
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Transfer-Encoding: 8bit\r\n\r\n"
        + body
    )
    return NewMessage(MessageKind.VERIFICATION, "", "", text.encode("utf-8"),
                      ((request.target, request.target),))

"""The SMTP side: aiosmtpd with our own DATA reader, policy at RCPT time, the
queue at DATA time, nothing delivered inline.

DATA is read here rather than by aiosmtpd so that only <CRLF>.<CRLF> ends a
message: a bare LF or bare CR anywhere in the data (the raw material of SMTP
smuggling: <LF>.<LF>, <CR>.<CR><LF>, <LF>.<CR><LF> ...) makes the message
rejected once the real end of data arrives, like Postfix's
smtpd_forbid_bare_newline, so no ambiguous bytes are ever passed on to a
server that might split them differently. NUL bytes and lines over 1,000
bytes are refused as well. A client that disconnects mid-DATA leaves
nothing queued: the queue is only called once the whole message is in.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from mx_forwarder import metrics
from mx_forwarder.authres import AuthChecker
from mx_forwarder.errors import QueueError, SrsError
from mx_forwarder.limits import ClientLimits
from mx_forwarder.message import delivered_to, header_fields, hop_count, received_header
from mx_forwarder.overload import OverloadGuard
from mx_forwarder.policy import Accept, RcptPolicy, Reject
from mx_forwarder.queue import NewMessage
from mx_forwarder.signing import Signer
from mx_forwarder.srs import Srs
from storage.models.mail import MessageKind

log = logging.getLogger(__name__)

MAX_LINE = 1000  # RFC 5321 4.5.3.1.6, CRLF included
IDENT = "zonehost ESMTP"


class Enqueuer(Protocol):
    async def enqueue(self, message: NewMessage) -> int: ...


class DataProblem(enum.Enum):
    NONE = "none"
    TOO_BIG = "too_big"
    LINE_TOO_LONG = "line_too_long"
    BARE_NEWLINE = "bare_newline"
    NUL = "nul"


DATA_REPLIES = {
    DataProblem.TOO_BIG: "552 5.3.4 Message size exceeds fixed limit",
    DataProblem.LINE_TOO_LONG: "500 5.5.2 Line longer than 1000 bytes (RFC 5321 4.5.3.1.6)",
    DataProblem.BARE_NEWLINE: "550 5.5.2 Bare <CR> or <LF> in message data (RFC 5321 2.3.8)",
    DataProblem.NUL: "550 5.6.0 NUL byte in message data",
}


@dataclass(slots=True)
class DataResult:
    content: bytes
    problem: DataProblem


async def read_data(reader: asyncio.StreamReader, max_bytes: int) -> DataResult:
    """Read message data up to <CRLF>.<CRLF>, undoing dot-stuffing.

    Raises asyncio.IncompleteReadError when the client goes away first.
    """
    chunks: list[bytes] = []
    size = 0
    problem = DataProblem.NONE
    tail = b"\r\n"  # the last two bytes read: DATA's own line ended with CRLF
    while True:
        at_line_start = tail == b"\r\n"
        try:
            chunk = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            # a line longer than the reader's limit: take what is there, keep reading it
            chunk = await reader.readexactly(max(1, exc.consumed))
            if problem is DataProblem.NONE:
                problem = DataProblem.LINE_TOO_LONG
            size += len(chunk)
            chunks.clear()
            tail = (tail + chunk)[-2:]
            continue
        if at_line_start and chunk == b".\r\n":
            break
        ends_crlf = (tail + chunk)[-2:] == b"\r\n"
        if problem is DataProblem.NONE:
            if not ends_crlf or b"\r" in chunk[:-2]:
                problem = DataProblem.BARE_NEWLINE
            elif b"\x00" in chunk:
                problem = DataProblem.NUL
            elif len(chunk) > MAX_LINE + (1 if at_line_start and chunk[:1] == b"." else 0):
                problem = DataProblem.LINE_TOO_LONG
        size += len(chunk)
        if problem is DataProblem.NONE and size > max_bytes:
            problem = DataProblem.TOO_BIG
        if problem is DataProblem.NONE:
            chunks.append(chunk[1:] if at_line_start and chunk[:1] == b"." else chunk)
        elif chunks:
            chunks.clear()  # no point keeping what is going to be refused
        tail = (tail + chunk)[-2:]
    return DataResult(b"".join(chunks), problem)


class ForwarderEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[Accept] = []


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    hostname: str
    max_message_bytes: int
    max_recipients: int
    max_hops: int
    command_timeout_s: float
    data_timeout_s: float
    tls: ssl.SSLContext | None = None
    ident: str = IDENT
    extra: dict[str, Any] = field(default_factory=dict)


class ForwarderHandler:
    """aiosmtpd hooks: the policy decides at RCPT, the queue takes it at DATA."""

    def __init__(self, settings: SmtpSettings, policy: RcptPolicy, queue: Enqueuer,
                 srs: Srs, limits: ClientLimits, auth: AuthChecker | None,
                 overload: OverloadGuard | None = None, signer: Signer | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.overload = overload
        self.policy = policy
        self.queue = queue
        self.srs = srs
        self.limits = limits
        self.auth = auth

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if not r[4:].upper().startswith("AUTH")]
        return [*kept, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.overload is not None:
            pressure = self.overload.check()
            if pressure.reply is not None:
                metrics.REJECTED.labels(pressure.pressure.value).inc()
                return pressure.reply
            if pressure.delay_s > 0:  # tarpit: this connection's next message comes later
                metrics.TARPIT.inc(pressure.delay_s)
                await asyncio.sleep(pressure.delay_s)
        client = _client_ip(session)
        if not self.limits.allow_message(client):
            metrics.REJECTED.labels("rate_limited").inc()
            return "451 4.7.1 Too many messages from your address, slow down"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: ForwarderEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            metrics.REJECTED.labels("too_many_recipients").inc()
            return "452 4.5.3 Too many recipients"
        verdict = await self.policy.check_rcpt(address)
        if isinstance(verdict, Reject):
            metrics.REJECTED.labels(verdict.reason).inc()
            log.info("rcpt refused client=%s rcpt=%s reason=%s", _client_ip(session),
                     address, verdict.reason)
            return verdict.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.accepted.append(verdict)
        metrics.ACCEPTED_RECIPIENTS.inc()
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: ForwarderEnvelope) -> str:
        data: bytes = envelope.original_content or b""
        fields = header_fields(data)
        if hop_count(fields) >= self.settings.max_hops:
            metrics.REJECTED.labels("too_many_hops").inc()
            return "554 5.4.6 Too many hops: mail forwarding loop"
        seen = delivered_to(fields)
        for accepted in envelope.accepted:
            if accepted.kind is MessageKind.FORWARD and accepted.recipient.lower() in seen:
                metrics.REJECTED.labels("loop").inc()
                return f"554 5.4.6 Mail forwarding loop for <{accepted.recipient}>"
        sender = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        try:
            envelope_sender = self.srs.forward(sender)
        except SrsError:
            metrics.REJECTED.labels("bad_sender").inc()
            return "553 5.1.7 Bad sender address"
        client = _client_ip(session)
        helo = session.host_name or "unknown"
        tls = session.ssl is not None
        utf8 = bool(envelope.smtp_utf8)
        protocol = ("UTF8SMTP" if utf8 else "ESMTP") + ("S" if tls else "")
        if not session.extended_smtp:
            protocol = "SMTP"
        recipients = {a.recipient for a in envelope.accepted}
        prefix = received_header(
            helo=helo, client_ip=client, hostname=self.settings.hostname, protocol=protocol,
            recipient=next(iter(recipients)) if len(recipients) == 1 else None,
        )
        if self.auth is not None:
            prefix = await self.auth.check(client_ip=client, helo=helo, mail_from=sender,
                                           data=data) + prefix
        if self.signer is not None:  # on top of everything: our signatures come last
            prefix = await asyncio.to_thread(self.signer.sign, prefix, data) + prefix
        deliveries: dict[str, str] = {}
        for accepted in envelope.accepted:
            for target in accepted.targets:
                deliveries.setdefault(target.lower(), accepted.recipient)
        kinds = {a.kind for a in envelope.accepted}
        message = NewMessage(
            kind=MessageKind.BOUNCE if kinds == {MessageKind.BOUNCE} else MessageKind.FORWARD,
            envelope_sender=envelope_sender, original_sender=sender, data=prefix + data,
            deliveries=tuple((rcpt, target) for target, rcpt in deliveries.items()),
            client_address=client, client_helo=helo[:255],
        )
        try:
            message_id = await self.queue.enqueue(message)
        except QueueError:
            metrics.REJECTED.labels("queue_unavailable").inc()
            return "451 4.3.0 Queue unavailable, try again later"
        metrics.ACCEPTED.inc()
        if self.overload is not None:
            self.overload.queued(len(deliveries))
        log.info("queued message=%d client=%s size=%d deliveries=%d", message_id, client,
                 len(data), len(deliveries))
        return f"250 2.0.0 OK queued as {message_id}"


def _client_ip(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class ForwarderSMTP(SMTP):
    """aiosmtpd's SMTP with connection limits and a strict DATA reader."""

    def __init__(self, handler: ForwarderHandler, **kwargs: Any) -> None:
        settings = handler.settings
        super().__init__(
            handler,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=settings.hostname,
            ident=settings.ident,
            tls_context=settings.tls,
            timeout=settings.command_timeout_s,
            **kwargs,
        )
        self._fwd = handler
        self._counted: str | None = None

    def _create_envelope(self) -> ForwarderEnvelope:
        return ForwarderEnvelope()

    async def _handle_client(self) -> None:
        assert self.session is not None
        client = _client_ip(self.session)
        metrics.SESSIONS.inc()
        if not self._fwd.limits.open(client):
            metrics.REJECTED.labels("too_many_connections").inc()
            await self.push("421 4.7.0 Too many connections, try again later")
            if self.transport is not None:
                self.transport.close()
            return
        try:
            await super()._handle_client()
        finally:
            self._fwd.limits.close(client)

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        envelope = self.envelope
        assert isinstance(envelope, ForwarderEnvelope)
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._reset_timeout(self._fwd.settings.data_timeout_s)
        try:
            result = await read_data(self._reader, self.data_size_limit or 2**62)
        except asyncio.IncompleteReadError:
            log.info("disconnected during DATA: nothing queued")
            if self.transport is not None:
                self.transport.close()
            return
        self._reset_timeout()
        if result.problem is not DataProblem.NONE:
            metrics.REJECTED.labels(result.problem.value).inc()
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(DATA_REPLIES[result.problem])
            return
        envelope.content = envelope.original_content = result.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)


async def start_smtp_server(
    handler: ForwarderHandler, host: str, port: int
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ForwarderSMTP(handler, loop=loop), host, port)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context

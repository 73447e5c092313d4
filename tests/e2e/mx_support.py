"""Support for the mail forwarder's end-to-end tests: a scriptable SMTP sink,
zones and aliases in the store, a forwarder config for loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from mx_forwarder.config import ForwarderConfig
from storage import aliases
from storage.db import Database
from storage.models import Zone
from storage.models.mail import MailDelivery, MailMessage
from tests.conftest import REPO_ROOT, free_port

SRS_DOMAIN = "fwd.zonehost.test"
SRS_KEY = b"test-srs-key"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Sink:
    """An SMTP server on loopback that records what it gets.

    `script` maps a recipient to the codes its successive RCPTs get (then 250).
    """

    messages: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    rcpt_attempts: dict[str, int] = field(default_factory=dict)
    server: asyncio.Server | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0  # SMTP sessions opened by clients
    idle_timeout_s: float = 300.0  # aiosmtpd closes a connection idle this long

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpt_attempts[address] = self.rcpt_attempts.get(address, 0) + 1
        codes = self.script.get(address.lower())
        if codes:
            code = codes.pop(0)
            if code != 250:
                return f"{code} {'4.2.0 try later' if code < 500 else '5.1.1 no such user'}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        if session.host_name is None:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail_from, content = envelope.mail_from, envelope.original_content
        assert mail_from is not None and content is not None  # DATA comes after MAIL
        self.messages.append(
            Received(
                "" if mail_from == "<>" else mail_from,
                list(envelope.rcpt_tos),
                content,
            )
        )
        self.arrived.set()
        return "250 2.0.0 stored"

    async def start(self, port: int = 0) -> Sink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(
                self, decode_data=False, enable_SMTPUTF8=True, loop=loop, hostname="sink.test",
                timeout=self.idle_timeout_s,
            ),
            "127.0.0.1",
            port,
        )
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"sink got {len(self.messages)} messages, wanted {count}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return self.messages


async def add_zone(db: Database, name: str) -> None:
    async with db.write() as session:
        session.add(
            Zone(
                name=f"{name}.",
                serial=1,
                soa_mname="ns1.zonehost.test.",
                soa_rname="hostmaster.zonehost.test.",
            )
        )


async def add_alias(db: Database, address: str, *targets: str, verified: bool = True) -> None:
    async with db.write() as session:
        await aliases.add_alias(session, address, targets, verified=verified)


def config(**overrides: Any) -> ForwarderConfig:
    base = ForwarderConfig(
        listen=("127.0.0.1", 0),
        hostname="mx.zonehost.test",
        srs_domain=SRS_DOMAIN,
        srs_keys=(SRS_KEY,),
        resolver=("127.0.0.1", 9),
        dns_timeout_s=0.5,
        poll_interval_s=0.1,
        retry_base_s=0.2,
        retry_max_s=1.0,
        connect_timeout_s=5,
        delivery_timeout_s=10,
        auth_results=False,
        sync_commit=False,
        alias_cache_check_s=0.0,  # tests edit aliases and send at once: no staleness at all
    )
    return replace(base, **overrides)


async def queue_counts(db: Database) -> tuple[int, int]:
    async with db.read() as session:
        messages = await session.scalar(select(func.count(MailMessage.id)))
        deliveries = await session.scalar(select(func.count(MailDelivery.id)))
    return int(messages or 0), int(deliveries or 0)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def smtp_send(
    port: int, sender: str, recipients: Sequence[str], data: bytes, *, starttls: bool = False
) -> dict[str, tuple[int, bytes]]:
    """Send with smtplib; returns the refused recipients (raises on total failure)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        if starttls:
            client.starttls()
            client.ehlo("client.test")
        return client.sendmail(sender, list(recipients), data)


async def send(
    port: int, sender: str, recipients: Sequence[str], data: bytes, **kwargs: Any
) -> dict[str, tuple[int, bytes]]:
    return await asyncio.to_thread(smtp_send, port, sender, recipients, data, **kwargs)


class RawClient:
    """A raw SMTP connection for sending exactly the bytes a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.reply()
        return client

    async def reply(self, timeout_s: float = 10.0) -> str:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout_s)
            if not line:
                raise ConnectionError("closed")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    async def cmd(self, raw: bytes) -> str:
        self.writer.write(raw)
        await self.writer.drain()
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


SOA = "@ 300 IN SOA ns1.{z}. hostmaster.{z}. 1 3600 600 86400 300\n@ 300 IN NS ns1.{z}.\n" \
      "ns1 300 IN A 127.0.0.1\n"


@dataclass
class Nameserver:
    port: int
    process: subprocess.Popen[bytes]


async def import_zones(cli_env: dict[str, str], tmp_path: Path, zones: Mapping[str, str]) -> None:
    """`zonehost zone import-dir` of one master file per zone (SOA and NS added)."""
    folder = tmp_path / "zones"
    folder.mkdir()
    for name, records in zones.items():
        (folder / f"{name}.zone").write_text(
            "$ORIGIN " + name + ".\n" + SOA.format(z=name) + records)
    imported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "zonehost", "zone", "import-dir", str(folder)],
        env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert imported.returncode == 0, imported.stderr


@contextlib.asynccontextmanager
async def zonehost_nameserver(cli_env: dict[str, str],
                              probe: str = "dest.test.") -> AsyncIterator[Nameserver]:
    """`zonehost nameserver` on a free loopback port, once it answers for `probe`."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220  (started once; polled without blocking below)
        [sys.executable, "-m", "zonehost", "nameserver", "--listen", f"127.0.0.1:{port}"],
        env=cli_env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        query = dns.message.make_query(probe, "SOA")
        for _ in range(300):
            try:
                reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=0.2)
                if reply.answer:
                    break
            except (TimeoutError, dns.exception.Timeout, OSError):
                pass
            if proc.poll() is not None:
                raise RuntimeError("zonehost nameserver exited")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("zonehost nameserver did not answer")
        yield Nameserver(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rsa_key() -> tuple[bytes, str]:
    """(PEM private key, TXT record text of its public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    text = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    chunks = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
    return pem, chunks

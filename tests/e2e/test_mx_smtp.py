"""The SMTP side over real sockets: recipient checks, relay tricks, smuggling,
limits, timeouts, STARTTLS; nothing refused is ever queued."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from mx_forwarder.service import ForwarderHandle, start_forwarder
from storage import aliases
from storage.db import Database
from storage.models import Zone, ZoneStatus
from tests.e2e.mx_support import RawClient, add_alias, add_zone, config, queue_counts, send


@pytest.fixture
async def forwarder(db: Database) -> AsyncIterator[ForwarderHandle]:
    await add_zone(db, "hosted.test")
    await add_zone(db, "nomail.test")
    await add_zone(db, "suspended.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    await add_alias(db, "new@hosted.test", "pending@dest.test", verified=False)
    await add_alias(db, "x@suspended.test", "me@dest.test")
    async with db.write() as session:
        await session.execute(update(Zone).where(Zone.name == "suspended.test.")
                              .values(status=ZoneStatus.SUSPENDED))
        await aliases.set_mail_service(session, "nomail.test", enabled=False)
    handle = await start_forwarder(
        config(run_delivery=False, max_recipients=3, max_message_bytes=20_000,
               command_timeout_s=1.0, data_timeout_s=1.0), db)
    yield handle
    await handle.close()


async def session_to_rcpt(port: int) -> RawClient:
    client = await RawClient.connect(port)
    assert (await client.cmd(b"EHLO client.test\r\n")).startswith("250")
    assert (await client.cmd(b"MAIL FROM:<alice@sender.test>\r\n")).startswith("250")
    return client


RCPT_CASES = [
    ("<contact@hosted.test>", "250 2.1.5"),
    ("<CONTACT+tag@Hosted.Test>", "250 2.1.5"),
    ("<nobody@hosted.test>", "550 5.1.1"),
    ("<new@hosted.test>", "450 4.2.1"),  # target not confirmed yet
    ("<a@nomail.test>", "550 5.7.1"),
    ("<x@suspended.test>", "550 5.7.1"),
    ("<victim@elsewhere.test>", "550 5.7.1"),
    ("<victim%elsewhere.test@hosted.test>", "550 5.7.1"),  # percent hack
    ("<elsewhere.test!victim@hosted.test>", "550 5.7.1"),  # bang path
    ('<"victim@elsewhere.test"@hosted.test>', "550 5.7.1"),  # quoted local part
    ("<victim@[127.0.0.1]>", "550 5.7.1"),  # IP literal
    ("<@hosted.test:victim@elsewhere.test>", "550 5.7.1"),  # source route: never relayed
    ("<SRS0=abcd=AB=elsewhere.test=victim@fwd.zonehost.test>", "550 5.1.1"),  # forged SRS
]


@pytest.mark.parametrize(("rcpt", "expected"), RCPT_CASES)
async def test_recipient_checks(forwarder: ForwarderHandle, rcpt: str, expected: str) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    try:
        assert (await client.cmd(f"RCPT TO:{rcpt}\r\n".encode())).startswith(expected)
    finally:
        await client.close()


async def test_source_route_to_hosted_alias_goes_to_the_alias_only(
    forwarder: ForwarderHandle, db: Database
) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    try:
        reply = await client.cmd(b"RCPT TO:<@elsewhere.test:contact@hosted.test>\r\n")
        assert reply.startswith("250")
        assert (await client.cmd(b"DATA\r\n")).startswith("354")
        assert (await client.cmd(b"Subject: s\r\n\r\nbody\r\n.\r\n")).startswith("250")
    finally:
        await client.close()
    assert await queue_counts(db) == (1, 1)  # one delivery: to me@dest.test


async def test_ehlo_extensions(forwarder: ForwarderHandle) -> None:
    assert forwarder.port is not None
    client = await RawClient.connect(forwarder.port)
    try:
        reply = await client.cmd(b"EHLO client.test\r\n")
    finally:
        await client.close()
    for ext in ("SIZE 20000", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"):
        assert ext in reply
    assert "STARTTLS" not in reply  # no certificate configured
    assert "AUTH" not in reply


SMUGGLING = [
    b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<contact@hosted.test>\r\n",
    b"Subject: s\r\n\r\nbody\r.\r\nMAIL FROM:<evil@x.test>\r\n",
    b"Subject: s\r\n\r\nbody\r\n.\nMAIL FROM:<evil@x.test>\r\n",
    b"Subject: s\r\n\r\nbody\n.\r\nMAIL FROM:<evil@x.test>\r\n",
    b"Subject: s\r\n\r\nbare\nlf\r\n",
    b"Subject: s\r\n\r\nnul\x00byte\r\n",
    b"Subject: s\r\n\r\n" + b"x" * 1001 + b"\r\n",
    b"Subject: s\r\n\r\n" + b"y" * 30_000 + b"\r\n",
]


@pytest.mark.parametrize("payload", SMUGGLING)
async def test_bad_data_refused_and_session_goes_on(
    forwarder: ForwarderHandle, db: Database, payload: bytes
) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    try:
        assert (await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")).startswith("250")
        assert (await client.cmd(b"DATA\r\n")).startswith("354")
        reply = await client.cmd(payload + b".\r\n")
        assert reply[:1] == "5", reply
        assert await queue_counts(db) == (0, 0)
        # the session is still in sync: a clean message goes through
        assert (await client.cmd(b"MAIL FROM:<alice@sender.test>\r\n")).startswith("250")
        assert (await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")).startswith("250")
        assert (await client.cmd(b"DATA\r\n")).startswith("354")
        assert (await client.cmd(b"Subject: ok\r\n\r\nfine\r\n.\r\n")).startswith("250 2.0.0")
    finally:
        await client.close()
    assert await queue_counts(db) == (1, 1)


async def test_pipelined_session(forwarder: ForwarderHandle, db: Database) -> None:
    assert forwarder.port is not None
    client = await RawClient.connect(forwarder.port)
    try:
        await client.cmd(b"EHLO client.test\r\n")
        client.writer.write(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<contact@hosted.test>\r\n"
                            b"RCPT TO:<nobody@hosted.test>\r\nDATA\r\n")
        replies = [await client.reply() for _ in range(4)]
        assert [r[:3] for r in replies] == ["250", "250", "550", "354"]
        assert (await client.cmd(b"Subject: p\r\n\r\npipelined\r\n.\r\n")).startswith("250")
    finally:
        await client.close()
    assert await queue_counts(db) == (1, 1)


async def test_commands_out_of_order(forwarder: ForwarderHandle, db: Database) -> None:
    assert forwarder.port is not None
    client = await RawClient.connect(forwarder.port)
    try:
        assert (await client.cmd(b"MAIL FROM:<a@b.test>\r\n"))[:1] == "5"  # before EHLO
        await client.cmd(b"EHLO client.test\r\n")
        assert (await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n"))[:3] == "503"
        assert (await client.cmd(b"DATA\r\n"))[:3] == "503"
        await client.cmd(b"MAIL FROM:<alice@sender.test>\r\n")
        assert (await client.cmd(b"MAIL FROM:<alice@sender.test>\r\n"))[:3] == "503"
        assert (await client.cmd(b"DATA\r\n"))[:3] == "503"
        assert (await client.cmd(b"BOGUS\r\n"))[:1] == "5"
    finally:
        await client.close()
    assert await queue_counts(db) == (0, 0)


async def test_too_many_recipients(forwarder: ForwarderHandle) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    try:
        for _ in range(3):
            assert (await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")).startswith("250")
        assert (await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")).startswith("452 4.5.3")
    finally:
        await client.close()


async def test_oversized_message(forwarder: ForwarderHandle, db: Database) -> None:
    assert forwarder.port is not None
    with pytest.raises(smtplib.SMTPException) as info:
        await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"],
                   b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 400)
    assert "552" in str(info.value)
    assert await queue_counts(db) == (0, 0)


async def test_disconnect_mid_data_queues_nothing(forwarder: ForwarderHandle,
                                                  db: Database) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")
    assert (await client.cmd(b"DATA\r\n")).startswith("354")
    client.writer.write(b"Subject: cut\r\n\r\nhalf a message\r\n")
    await client.writer.drain()
    await client.close()
    await asyncio.sleep(0.3)
    assert await queue_counts(db) == (0, 0)


async def test_slow_client_times_out(forwarder: ForwarderHandle, db: Database) -> None:
    assert forwarder.port is not None
    client = await session_to_rcpt(forwarder.port)
    await client.cmd(b"RCPT TO:<contact@hosted.test>\r\n")
    assert (await client.cmd(b"DATA\r\n")).startswith("354")
    client.writer.write(b"Subject: slow\r\n")  # then nothing: data_timeout_s is 1 s
    await client.writer.drain()
    closed = await asyncio.wait_for(client.reader.read(), 5)
    assert closed == b""  # the server hung up
    await client.close()
    idle = await RawClient.connect(forwarder.port)
    assert await asyncio.wait_for(idle.reader.read(), 5) == b""  # idle too
    await idle.close()
    assert await queue_counts(db) == (0, 0)


async def test_hop_limit_and_alias_loop(forwarder: ForwarderHandle, db: Database) -> None:
    assert forwarder.port is not None
    looped = b"Delivered-To: contact@hosted.test\r\nSubject: l\r\n\r\nloop\r\n"
    with pytest.raises(smtplib.SMTPDataError) as info:
        await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"], looped)
    assert info.value.smtp_code == 554
    hops = b"".join(b"Received: from a by b; x\r\n" for _ in range(30)) + b"\r\nbody\r\n"
    with pytest.raises(smtplib.SMTPDataError) as info:
        await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"], hops)
    assert info.value.smtp_code == 554
    assert await queue_counts(db) == (0, 0)


async def test_connection_and_message_rate_limits(db: Database) -> None:
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    handle = await start_forwarder(
        config(run_delivery=False, max_connections_per_client=1,
               max_messages_per_client_per_minute=1), db)
    try:
        assert handle.port is not None
        first = await RawClient.connect(handle.port)
        second_reader, second_writer = await asyncio.open_connection("127.0.0.1", handle.port)
        line = await asyncio.wait_for(second_reader.readline(), 5)
        assert line.startswith(b"421 4.7.0")
        second_writer.close()
        await first.cmd(b"EHLO client.test\r\n")
        assert (await first.cmd(b"MAIL FROM:<a@sender.test>\r\n")).startswith("250")
        await first.cmd(b"RSET\r\n")
        assert (await first.cmd(b"MAIL FROM:<a@sender.test>\r\n")).startswith("451 4.7.1")
        await first.close()
    finally:
        await handle.close()


def _self_signed(tmp: Path) -> tuple[str, str]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mx.zonehost.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


async def test_starttls(db: Database, tmp_path: Path) -> None:
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    cert, key = _self_signed(tmp_path)
    handle = await start_forwarder(config(run_delivery=False, tls_cert=cert, tls_key=key), db)
    try:
        assert handle.port is not None
        port = handle.port

        def run() -> str:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("client.test")
                assert client.has_extn("starttls")
                client.starttls(context=context)
                client.ehlo("client.test")
                assert not client.has_extn("starttls")
                client.sendmail("alice@sender.test", ["contact@hosted.test"],
                                b"Subject: tls\r\n\r\nover tls\r\n")
                return str(client.sock.version())  # type: ignore[union-attr]

        assert (await asyncio.to_thread(run)).startswith("TLS")
        assert await queue_counts(db) == (1, 1)
    finally:
        await handle.close()

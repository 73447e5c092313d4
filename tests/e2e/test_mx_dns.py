"""The whole path with zonehost's own nameserver answering the MX lookups:
smtplib -> forwarder -> (MX from `zonehost nameserver`) -> aiosmtpd sink, and
the bounce to the SRS address back to the original sender. SPF and DMARC
for the sender come from the same nameserver (Authentication-Results)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mx_forwarder.service import start_forwarder
from mx_forwarder.srs import Srs
from storage import aliases
from storage.db import Database
from tests.e2e.mx_support import (
    SRS_DOMAIN,
    SRS_KEY,
    Nameserver,
    Sink,
    config,
    import_zones,
    send,
    zonehost_nameserver,
)

ZONES = {
    "hosted.test": "@ 300 IN MX 10 mx.zonehost.test.\n",
    "dest.test": "@ 300 IN MX 10 mx.dest.test.\n@ 300 IN MX 20 backup.dest.test.\n"
                 "mx 300 IN A 127.0.0.1\n",  # backup.dest.test has no address: skipped
    "sender.test": "@ 300 IN MX 10 mx.sender.test.\nmx 300 IN A 127.0.0.1\n"
                   '@ 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
                   '_dmarc 300 IN TXT "v=DMARC1; p=reject"\n',
}

MESSAGE = (b"From: Alice <alice@sender.test>\r\nTo: contact@hosted.test\r\n"
           b"Subject: via MX\r\n\r\nHello through the real MX lookup.\r\n")


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    await import_zones(cli_env, tmp_path, ZONES)
    async with db.write() as session:
        await aliases.add_alias(session, "contact@hosted.test", ["me@dest.test"], verified=True)
    async with zonehost_nameserver(cli_env) as server:
        yield server


async def test_mx_from_zonehost_nameserver(db: Database, nameserver: Nameserver) -> None:
    sink = await Sink().start()
    handle = await start_forwarder(
        config(resolver=("127.0.0.1", nameserver.port), delivery_port=sink.port,
               auth_results=True, dns_timeout_s=2.0), db)
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
        (got,) = await sink.wait_for(1)
        assert got.rcpt_tos == ["me@dest.test"]
        assert got.data.endswith(MESSAGE)
        assert Srs(SRS_DOMAIN, (SRS_KEY,)).reverse(got.mail_from) == "alice@sender.test"
        head = got.data[: -len(MESSAGE)].decode()
        assert "Authentication-Results: mx.zonehost.test;" in head
        assert "spf=pass smtp.mailfrom=sender.test" in head
        assert "dkim=none" in head
        assert "dmarc=pass header.from=sender.test" in head  # SPF aligned
        # the destination bounces: the bounce to the SRS address reaches alice via MX
        await send(handle.port, "<>", [got.mail_from],
                   b"From: MAILER-DAEMON@dest.test\r\nSubject: bounce\r\n\r\nno\r\n")
        messages = await sink.wait_for(2)
        assert messages[1].rcpt_tos == ["alice@sender.test"] and messages[1].mail_from == ""
    finally:
        await handle.close()
        await sink.close()


async def test_unknown_domain_bounces_at_once(db: Database, nameserver: Nameserver) -> None:
    sink = await Sink().start()
    async with db.write() as session:
        await aliases.add_alias(session, "lost@hosted.test", ["x@nowhere.dest.test"],
                                verified=True)
    handle = await start_forwarder(
        config(resolver=("127.0.0.1", nameserver.port), delivery_port=sink.port), db)
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["lost@hosted.test"], MESSAGE)
        (dsn,) = await sink.wait_for(1)
        assert dsn.rcpt_tos == ["alice@sender.test"]
        assert b"Status: 5.1.2" in dsn.data
    finally:
        await handle.close()
        await sink.close()

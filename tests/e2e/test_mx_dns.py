"""The whole path with zonehost's own nameserver answering the MX lookups:
smtplib -> forwarder -> (MX from `zonehost nameserver`) -> aiosmtpd sink, and
the bounce to the SRS address back to the original sender. SPF and DMARC
for the sender come from the same nameserver (Authentication-Results)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest

from mx_forwarder.service import start_forwarder
from mx_forwarder.srs import Srs
from storage import aliases
from storage.db import Database
from tests.conftest import REPO_ROOT, free_port
from tests.e2e.mx_support import SRS_DOMAIN, SRS_KEY, Sink, config, send

SOA = "@ 300 IN SOA ns1.{z}. hostmaster.{z}. 1 3600 600 86400 300\n@ 300 IN NS ns1.{z}.\n" \
      "ns1 300 IN A 127.0.0.1\n"
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


@dataclass
class Nameserver:
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    zones = tmp_path / "zones"
    zones.mkdir()
    for name, records in ZONES.items():
        (zones / f"{name}.zone").write_text(
            "$ORIGIN " + name + ".\n" + SOA.format(z=name) + records)
    imported = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "zonehost", "zone", "import-dir", str(zones)],
        env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert imported.returncode == 0, imported.stderr
    async with db.write() as session:
        await aliases.add_alias(session, "contact@hosted.test", ["me@dest.test"], verified=True)
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220  (started once; polled without blocking below)
        [sys.executable, "-m", "zonehost", "nameserver", "--listen", f"127.0.0.1:{port}"],
        env=cli_env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        query = dns.message.make_query("dest.test.", "MX")
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

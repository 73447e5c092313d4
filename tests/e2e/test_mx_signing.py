"""Our own DKIM signature and ARC seal, end to end: the public keys are TXT
records served by `zonehost nameserver`, looked up over UDP, both at the
forwarder (checking the ARC set a message arrives with) and at the receiving
end, where dkimpy verifies what the aiosmtpd sink got."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import dkim
import dns.exception
import dns.resolver
import pytest

from mx_forwarder.errors import ForwarderError
from mx_forwarder.service import ForwarderHandle, start_forwarder
from storage.db import Database
from tests.conftest import free_port
from tests.e2e.mx_support import (
    Nameserver,
    Sink,
    add_alias,
    config,
    import_zones,
    rsa_key,
    send,
    zonehost_nameserver,
)

MESSAGE = (
    # a sender's claim under our authserv-id: forwarded as it is, never sealed
    b"Authentication-Results: mx.zonehost.test; arc=pass; spf=pass smtp.mailfrom=evil.test\r\n"
    b"From: Alice <alice@sender.test>\r\nTo: contact@hosted.test\r\n"
    b"Subject: signed on the way\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <m1@sender.test>\r\n\r\nBody, byte for byte.\r\n"
)


class Dns:
    """dkimpy's dnsfunc, answered by zonehost's nameserver over UDP (TCP if truncated)."""

    def __init__(self, port: int) -> None:
        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = ["127.0.0.1"]
        self.resolver.port = port
        self.resolver.lifetime = 3.0

    def txt(self, name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = self.resolver.resolve(name.decode().rstrip("."), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(answer[0].strings)


@pytest.fixture
async def keys() -> dict[str, bytes]:
    return {}


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str], tmp_path: Path,
                     keys: dict[str, bytes]) -> AsyncIterator[Nameserver]:
    ours, our_txt = rsa_key()
    lists, lists_txt = rsa_key()
    keys.update(ours=ours, lists=lists)
    await import_zones(cli_env, tmp_path, {
        "hosted.test": "@ 300 IN MX 10 mx.zonehost.test.\n",
        "fwd.test": f"sel._domainkey 300 IN TXT {our_txt}\n",
        "lists.test": f"arc._domainkey 300 IN TXT {lists_txt}\n",
        "sender.test": '@ 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n',
    })
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    async with zonehost_nameserver(cli_env, probe="fwd.test.") as server:
        yield server


async def forwarder(db: Database, ns: Nameserver, sink: Sink, key_file: Path,
                    **overrides: object) -> ForwarderHandle:
    settings: dict[str, object] = {
        "resolver": ("127.0.0.1", ns.port), "dns_timeout_s": 2.0, "auth_results": True,
        "transport": MappingProxyType({"dest.test": ("127.0.0.1", sink.port)}),
        "sign_dkim": True, "sign_arc": True, "signing_domain": "fwd.test",
        "signing_selector": "sel", "signing_key_file": str(key_file),
    }
    settings.update(overrides)
    return await start_forwarder(config(**settings), db)


def tag(header: bytes, name: str, data: bytes) -> str:
    """Tag `name` of the first `header` field of `data`."""
    match = re.search(rb"^" + header + rb":(.*?)\r\n(?![ \t])", data,
                      re.MULTILINE | re.DOTALL | re.IGNORECASE)
    assert match, header
    tags = dict(t.strip().split("=", 1) for t in
                re.sub(r"\s+", "", match.group(1).decode()).split(";") if "=" in t)
    return tags[name]


async def forward(db: Database, nameserver: Nameserver, keys: dict[str, bytes],
                  tmp_path: Path, message: bytes) -> bytes:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(keys["ours"])
    sink = await Sink().start()
    handle = await forwarder(db, nameserver, sink, key_file)
    try:
        assert handle.port is not None
        assert await send(handle.port, "alice@sender.test", ["contact@hosted.test"],
                          message) == {}
        (got,) = await sink.wait_for(1)
    finally:
        await handle.close()
        await sink.close()
    assert got.data.endswith(message)  # only header fields added on top
    return got.data


async def test_first_hop_dkim_and_arc_seal(db: Database, nameserver: Nameserver,
                                           keys: dict[str, bytes], tmp_path: Path) -> None:
    data = await forward(db, nameserver, keys, tmp_path, MESSAGE)
    lookup = Dns(nameserver.port).txt
    assert tag(b"DKIM-Signature", "d", data) == "fwd.test"
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=lookup)
    cv, results, reason = await asyncio.to_thread(dkim.arc_verify, data, dnsfunc=lookup)
    assert cv == dkim.CV_Pass, reason
    assert [r["instance"] for r in results] == [1]
    assert (tag(b"ARC-Seal", "i", data), tag(b"ARC-Seal", "cv", data)) == ("1", "none")
    # the seal carries what we found, not what the sender claimed
    aar = data.split(b"ARC-Authentication-Results:")[1].split(b"\r\nARC-")[0]
    aar = aar.split(b"\r\nDKIM-Signature")[0]
    assert b"spf=pass smtp.mailfrom=sender.test" in aar
    assert b"evil.test" not in aar and b"arc=pass" not in aar
    # a tampered body breaks both
    broken = data.replace(b"byte for byte", b"byte for bite")
    assert not await asyncio.to_thread(dkim.verify, broken, dnsfunc=lookup)
    cv, _, _ = await asyncio.to_thread(dkim.arc_verify, broken, dnsfunc=lookup)
    assert cv == dkim.CV_Fail


async def test_second_hop_extends_a_passing_chain(db: Database, nameserver: Nameserver,
                                                  keys: dict[str, bytes],
                                                  tmp_path: Path) -> None:
    # a mailing list sealed the message before it reached us (i=1)
    original = MESSAGE.split(b"\r\n", 1)[1]
    listed = b"Authentication-Results: lists.test; spf=pass smtp.mailfrom=sender.test\r\n" \
        + original
    first = await asyncio.to_thread(dkim.arc_sign, listed, b"arc", b"lists.test",
                                    keys["lists"], b"lists.test")
    assert first
    incoming = b"".join(first) + listed
    data = await forward(db, nameserver, keys, tmp_path, incoming)
    lookup = Dns(nameserver.port).txt
    head = data[: -len(incoming)]
    assert b"arc=pass" in head  # our Authentication-Results checked the chain
    assert (tag(b"ARC-Seal", "i", data), tag(b"ARC-Seal", "cv", data)) == ("2", "pass")
    cv, results, reason = await asyncio.to_thread(dkim.arc_verify, data, dnsfunc=lookup)
    assert cv == dkim.CV_Pass, reason
    assert sorted(r["instance"] for r in results) == [1, 2]
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=lookup)


async def test_our_own_notices_are_dkim_signed(db: Database, nameserver: Nameserver,
                                               keys: dict[str, bytes], tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(keys["ours"])
    await add_alias(db, "new@hosted.test", "pending@dest.test", verified=False)
    sink = await Sink().start()
    sink.script["me@dest.test"] = [550]  # the forwarded message bounces: a DSN to alice
    transport = MappingProxyType({"dest.test": ("127.0.0.1", sink.port),
                                  "sender.test": ("127.0.0.1", sink.port)})
    handle = await forwarder(db, nameserver, sink, key_file, transport=transport)
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
        got = await sink.wait_for(2)
    finally:
        await handle.close()
        await sink.close()
    lookup = Dns(nameserver.port).txt
    kinds = {}
    for notice in got:
        assert notice.mail_from == "" and notice.data.startswith(b"DKIM-Signature:")
        assert b"ARC-Seal" not in notice.data.split(b"\r\n\r\n")[0]  # only DKIM
        assert tag(b"DKIM-Signature", "d", notice.data) == "fwd.test"
        assert await asyncio.to_thread(dkim.verify, notice.data, dnsfunc=lookup)
        kinds[notice.rcpt_tos[0]] = notice.data
    assert b"Confirm forwarding of new@hosted.test" in kinds["pending@dest.test"]
    assert b"Undelivered Mail Returned to Sender" in kinds["alice@sender.test"]


async def test_misconfigured_signing_refuses_to_start(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ForwarderError, match="signing_key_file"):
        await start_forwarder(config(sign_dkim=True), db)
    with pytest.raises(ForwarderError, match="auth_results"):
        await start_forwarder(config(sign_arc=True, auth_results=False,
                                     signing_key_file=str(tmp_path / "k.pem")), db)
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(ForwarderError, match="signing key"):
        await start_forwarder(config(sign_dkim=True, signing_key_file=str(tmp_path / "k.pem")),
                              db)


@pytest.mark.parametrize("command", [["mx-forwarder", "--listen", "127.0.0.1:{smtp}"],
                                     ["serve", "--dns", "127.0.0.1:{dns}", "--http",
                                      "127.0.0.1:{http}", "--smtp", "127.0.0.1:{smtp}",
                                      "--metrics", "127.0.0.1:{metrics}"]])
async def test_commands_say_why_signing_cannot_start(cli_env: dict[str, str], tmp_path: Path,
                                                     command: list[str]) -> None:
    ports = {name: free_port() for name in ("smtp", "dns", "http", "metrics")}
    env = {**cli_env, "ZONEHOST_MX_FORWARDER_SRS_KEYS": "k",
           "ZONEHOST_MX_FORWARDER_SIGN_DKIM": "true",
           "ZONEHOST_MX_FORWARDER_SIGNING_KEY_FILE": str(tmp_path / "missing.pem")}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "zonehost", *[c.format(**ports) for c in command]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "missing.pem" in done.stderr and "Traceback" not in done.stderr
